//! The Supervisor: owns the desired set of tunnels, binds them whenever a session comes
//! up (with the names they got the first time), and reports them to the user.

use crate::session::{Bind, Close, Session, SessionConfig};
use crate::tunnel::{sticky, TunnelSpec};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

struct Desired {
    spec: Arc<TunnelSpec>,
    urls: Vec<String>,
}

/// Owns the tunnels and the session.
pub struct Supervisor {
    session_cfg: SessionConfig,
    session: Option<Addr<Session>>,
    tunnels: Vec<Desired>,
    online: bool,
    events: Box<dyn Fn(AgentEvent)>,
}

/// What the supervisor tells its owner (the console, or a test).
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// A tunnel got a public URL (reported once per URL).
    Forwarding {
        /// The tunnel.
        spec: Arc<TunnelSpec>,
        /// The URL.
        url: String,
    },
    /// The agent cannot go on: the relay refused it or a tunnel could not start.
    Fatal(String),
}

impl Supervisor {
    /// A supervisor for `tunnels`, reaching the relay with `session_cfg`.
    pub fn new(
        session_cfg: SessionConfig,
        tunnels: Vec<TunnelSpec>,
        events: Box<dyn Fn(AgentEvent)>,
    ) -> Self {
        Supervisor {
            session_cfg,
            session: None,
            tunnels: tunnels
                .into_iter()
                .map(|spec| Desired {
                    spec: Arc::new(spec),
                    urls: Vec::new(),
                })
                .collect(),
            online: false,
            events,
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(obj = "tunnels.session", "tunnel session started");
        self.session = Some(Session::new(self.session_cfg.clone(), ctx.address()).start());
    }
}

/// The session is authenticated.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionUp;

/// The session dropped; it is reconnecting.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionDown;

/// The relay refused the agent for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionFatal(pub String);

/// A tunnel is bound.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TunnelUp {
    /// Tunnel name.
    pub name: String,
    /// Relay's id for it.
    pub tunnel_id: u64,
    /// Its public URLs.
    pub urls: Vec<String>,
}

/// A bind was refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TunnelFailed {
    /// Tunnel name.
    pub name: String,
    /// The relay's reason.
    pub message: String,
}

/// Stop: unbind, close the session and stop the system with exit code 0.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Supervisor {
    fn fatal(&self, msg: String) {
        error!(obj = "tunnels", err = %msg, "session failed");
        (self.events)(AgentEvent::Fatal(msg));
    }
}

impl Handler<SessionUp> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: SessionUp, _: &mut Self::Context) {
        self.online = true;
        let Some(session) = &self.session else { return };
        for t in &self.tunnels {
            let spec = if t.urls.is_empty() {
                t.spec.clone()
            } else {
                Arc::new(TunnelSpec {
                    request: sticky(&t.spec.request, &t.urls),
                    ..(*t.spec).clone()
                })
            };
            session.do_send(Bind(spec));
        }
    }
}

impl Handler<SessionDown> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: SessionDown, _: &mut Self::Context) {
        self.online = false;
    }
}

impl Handler<SessionFatal> for Supervisor {
    type Result = ();
    fn handle(&mut self, SessionFatal(msg): SessionFatal, _: &mut Self::Context) {
        self.fatal(msg);
    }
}

impl Handler<TunnelUp> for Supervisor {
    type Result = ();
    fn handle(&mut self, up: TunnelUp, _: &mut Self::Context) {
        let Some(t) = self.tunnels.iter_mut().find(|t| t.spec.name == up.name) else {
            return;
        };
        if t.urls.is_empty() {
            for url in &up.urls {
                (self.events)(AgentEvent::Forwarding {
                    spec: t.spec.clone(),
                    url: url.clone(),
                });
            }
        } else if t.urls != up.urls {
            warn!(obj = "tunnels", name = %up.name, old = ?t.urls, new = ?up.urls, "tunnel came back on different URLs");
        }
        for url in &up.urls {
            info!(obj = "tunnels", name = %up.name, addr = %t.spec.local.display(), url = %url, "started tunnel");
        }
        t.urls = up.urls;
    }
}

impl Handler<TunnelFailed> for Supervisor {
    type Result = ();
    fn handle(&mut self, f: TunnelFailed, ctx: &mut Self::Context) {
        let Some(t) = self.tunnels.iter().find(|t| t.spec.name == f.name) else {
            return;
        };
        if t.urls.is_empty() {
            return self.fatal(format!("failed to start tunnel {}: {}", f.name, f.message));
        }
        // A rebind can lose a race with our own previous session's cleanup; try again.
        warn!(obj = "tunnels", name = %f.name, err = %f.message, "failed to rebind tunnel; retrying");
        let spec = t.spec.clone();
        let urls = t.urls.clone();
        ctx.run_later(Duration::from_secs(1), move |act, _| {
            if let (Some(s), true) = (&act.session, act.online) {
                s.do_send(Bind(Arc::new(TunnelSpec {
                    request: sticky(&spec.request, &urls),
                    ..(*spec).clone()
                })));
            }
        });
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let session = self.session.take();
        Box::pin(
            async move {
                if let Some(s) = session {
                    let _ = s.send(Close).await;
                }
                // Let the unbind and goodbye frames reach the wire.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            .into_actor(self)
            .map(|_, _, _| System::current().stop_with_code(0)),
        )
    }
}
