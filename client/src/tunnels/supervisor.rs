//! The Supervisor: owns the desired set of tunnels (configuration, command line, API),
//! reconciles the bound tunnels with it through typed changes, re-binds everything with
//! the names it had after a reconnect, and retries failed binds with back-off.

use crate::tunnels::connection::Observers;
use crate::tunnels::reconcile::{diff, Change, Desired};
use crate::tunnels::session::{
    Bind, Close, Reports, Session, SessionConfig, SessionDown, SessionFatal, SessionUp, SetSchemes,
    TunnelFailed, TunnelUp, Unbind,
};
use crate::tunnels::spec::{sticky, TunnelSpec};
use actix::prelude::*;
use burrow_protocol::control::{BindTls, TunnelProto};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// Why the supervisor refused an API request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No tunnel of that name.
    #[error("tunnel {0:?} not found")]
    NotFound(String),
    /// The name is in use.
    #[error("a tunnel named {0:?} already exists")]
    NameTaken(String),
    /// No relay session yet.
    #[error("a successful ngrok tunnel session has not yet been established")]
    NotOnline,
    /// The relay refused the bind.
    #[error("{0}")]
    BindFailed(String),
}

/// An API-visible tunnel: one scheme of a tunnel ("NAME" or "NAME (http)").
#[derive(Debug, Clone)]
pub struct TunnelView {
    /// API name.
    pub name: String,
    /// The tunnel it belongs to.
    pub spec: Arc<TunnelSpec>,
    /// `https`, `http`, `tcp` or `tls`.
    pub proto: String,
    /// Its public URL.
    pub public_url: String,
}

struct Bound {
    tunnel_id: u64,
    urls: Vec<String>,
}

struct Running {
    spec: Arc<TunnelSpec>,
    bound: Option<Bound>,
    /// URLs of the first bind, asked for again after reconnects.
    first_urls: Vec<String>,
    /// API names and the scheme each shows.
    twins: Vec<(String, String)>,
    waiters: Vec<oneshot::Sender<Result<(), SupervisorError>>>,
    failures: u32,
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
    /// The session is online.
    Online,
    /// The session dropped and is reconnecting.
    Reconnecting(String),
    /// The agent cannot go on: the relay refused it or a tunnel could not start.
    Fatal(String),
}

/// Owns the tunnels and the session.
pub struct Supervisor {
    session_cfg: SessionConfig,
    session: Option<Addr<Session>>,
    obs: Observers,
    desired: Desired,
    running: HashMap<String, Running>,
    online: bool,
    /// Whether a failed first bind ends the agent (command line and config tunnels do).
    fatal_first_failure: bool,
    events: Box<dyn Fn(AgentEvent)>,
}

fn twins_for(spec: &TunnelSpec) -> Vec<(String, String)> {
    let n = spec.name.clone();
    match (spec.proto(), spec.request.bind_tls) {
        (TunnelProto::Http, BindTls::Both) => vec![
            (n.clone(), "https".into()),
            (format!("{n} (http)"), "http".into()),
        ],
        (TunnelProto::Http, BindTls::Https) => vec![(n, "https".into())],
        (TunnelProto::Http, BindTls::Http) => vec![(n, "http".into())],
        (p, _) => vec![(n, p.to_string())],
    }
}

impl Supervisor {
    /// A supervisor for `tunnels`, reaching the relay with `session_cfg`.
    pub fn new(
        session_cfg: SessionConfig,
        tunnels: Vec<TunnelSpec>,
        obs: Observers,
        events: Box<dyn Fn(AgentEvent)>,
    ) -> Self {
        Supervisor {
            session_cfg,
            session: None,
            obs,
            desired: tunnels
                .into_iter()
                .map(|t| (t.name.clone(), Arc::new(t)))
                .collect(),
            running: HashMap::new(),
            online: false,
            fatal_first_failure: true,
            events,
        }
    }

    fn fatal(&self, msg: String) {
        error!(obj = "tunnels", err = %msg, "session failed");
        (self.events)(AgentEvent::Fatal(msg));
    }

    fn bind(&self, r: &Running) {
        if let (Some(s), true) = (&self.session, self.online) {
            let spec = if r.first_urls.is_empty() {
                r.spec.clone()
            } else {
                Arc::new(TunnelSpec {
                    request: sticky(&r.spec.request, &r.first_urls),
                    ..(*r.spec).clone()
                })
            };
            s.do_send(Bind(spec));
        }
    }

    /// Applies the changes from the running set to `new`.
    fn reconcile(&mut self, new: Desired) {
        let changes = diff(&self.desired, &new);
        self.desired = new;
        for change in changes {
            match change {
                Change::Add(spec) => {
                    let r = Running {
                        twins: twins_for(&spec),
                        spec,
                        bound: None,
                        first_urls: Vec::new(),
                        waiters: Vec::new(),
                        failures: 0,
                    };
                    self.bind(&r);
                    self.running.insert(r.spec.name.clone(), r);
                }
                Change::Remove(name) => {
                    if let Some(r) = self.running.remove(&name) {
                        if let (Some(b), Some(s)) = (&r.bound, &self.session) {
                            s.do_send(Unbind(b.tunnel_id));
                        }
                        for (api_name, scheme) in &r.twins {
                            self.obs.metrics.forget(&(name.clone(), scheme.clone()));
                            if r.bound.is_some() {
                                info!(obj = "tunnels", name = %api_name, "stopped tunnel");
                            }
                        }
                    }
                }
                Change::SetSchemes(name, bind_tls) => {
                    if let Some(r) = self.running.get_mut(&name) {
                        let spec = self.desired[&name].clone();
                        r.spec = spec;
                        if let (Some(b), Some(s)) = (&r.bound, &self.session) {
                            s.do_send(SetSchemes(name.clone(), b.tunnel_id, bind_tls));
                        }
                    }
                }
            }
        }
    }

    fn views(&self) -> Vec<TunnelView> {
        let mut out = Vec::new();
        let mut names: Vec<_> = self.running.keys().collect();
        names.sort();
        for n in names {
            let r = &self.running[n];
            // While reconnecting, a tunnel keeps the URLs it will get back.
            let urls = r.bound.as_ref().map_or(&r.first_urls, |b| &b.urls);
            for (api_name, scheme) in &r.twins {
                let prefix = format!("{scheme}://");
                if let Some(url) = urls.iter().find(|u| u.starts_with(&prefix)) {
                    out.push(TunnelView {
                        name: api_name.clone(),
                        spec: r.spec.clone(),
                        proto: scheme.clone(),
                        public_url: url.clone(),
                    });
                }
            }
        }
        out
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(obj = "tunnels.session", "tunnel session started");
        let initial = std::mem::take(&mut self.desired);
        self.session = Some(
            Session::new(
                self.session_cfg.clone(),
                Reports {
                    up: ctx.address().recipient(),
                    down: ctx.address().recipient(),
                    fatal: ctx.address().recipient(),
                    tunnel_up: ctx.address().recipient(),
                    tunnel_failed: ctx.address().recipient(),
                },
                self.obs.clone(),
            )
            .start(),
        );
        self.reconcile(initial);
    }
}

/// Stop: unbind, close the session and stop the system with exit code 0.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<SessionUp> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: SessionUp, _: &mut Self::Context) {
        self.online = true;
        (self.events)(AgentEvent::Online);
        for r in self.running.values_mut() {
            r.bound = None;
        }
        for r in self.running.values() {
            self.bind(r);
        }
    }
}

impl Handler<SessionDown> for Supervisor {
    type Result = ();
    fn handle(&mut self, SessionDown(why): SessionDown, _: &mut Self::Context) {
        self.online = false;
        for r in self.running.values_mut() {
            r.bound = None;
        }
        (self.events)(AgentEvent::Reconnecting(why));
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
        let Some(r) = self.running.get_mut(&up.name) else {
            // Removed while the bind was in flight.
            if let Some(s) = &self.session {
                s.do_send(Unbind(up.tunnel_id));
            }
            return;
        };
        let first = r.first_urls.is_empty();
        if first {
            for url in &up.urls {
                (self.events)(AgentEvent::Forwarding {
                    spec: r.spec.clone(),
                    url: url.clone(),
                });
            }
            r.first_urls = up.urls.clone();
        } else if !up.urls.iter().all(|u| r.first_urls.contains(u)) {
            warn!(obj = "tunnels", name = %up.name, old = ?r.first_urls, new = ?up.urls, "tunnel came back on different URLs");
        }
        let was: Vec<String> = r.bound.as_ref().map(|b| b.urls.clone()).unwrap_or_default();
        for (api_name, scheme) in &r.twins {
            let prefix = format!("{scheme}://");
            if let Some(url) = up
                .urls
                .iter()
                .find(|u| u.starts_with(&prefix) && !was.contains(u))
            {
                info!(obj = "tunnels", name = %api_name, addr = %r.spec.local.display(), url = %url, "started tunnel");
            }
        }
        r.failures = 0;
        r.bound = Some(Bound {
            tunnel_id: up.tunnel_id,
            urls: up.urls,
        });
        for w in r.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }
}

impl Handler<TunnelFailed> for Supervisor {
    type Result = ();
    fn handle(&mut self, f: TunnelFailed, ctx: &mut Self::Context) {
        let Some(r) = self.running.get_mut(&f.name) else {
            return;
        };
        if !r.waiters.is_empty() {
            // An API caller is waiting: the tunnel is not started, and it hears why.
            for w in r.waiters.drain(..) {
                let _ = w.send(Err(SupervisorError::BindFailed(f.message.clone())));
            }
            let name = f.name.clone();
            let mut new = self.desired.clone();
            new.remove(&name);
            self.reconcile(new);
            return;
        }
        if r.first_urls.is_empty() && self.fatal_first_failure {
            return self.fatal(format!("failed to start tunnel {}: {}", f.name, f.message));
        }
        // A rebind can lose a race with our own previous session's cleanup; back off.
        r.failures += 1;
        let delay = Duration::from_millis(500) * 2u32.pow(r.failures.min(6));
        warn!(obj = "tunnels", name = %f.name, err = %f.message, retry_in = ?delay, "failed to bind tunnel; retrying");
        let name = f.name;
        ctx.run_later(delay, move |act, _| {
            if let Some(r) = act.running.get(&name) {
                if r.bound.is_none() {
                    act.bind(r);
                }
            }
        });
    }
}

/// Adds a tunnel from the API; answers once it is bound or refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddTunnel(
    pub TunnelSpec,
    pub oneshot::Sender<Result<(), SupervisorError>>,
);

impl Handler<AddTunnel> for Supervisor {
    type Result = ();
    fn handle(&mut self, AddTunnel(spec, reply): AddTunnel, _: &mut Self::Context) {
        if self.desired.contains_key(&spec.name) || self.views().iter().any(|v| v.name == spec.name)
        {
            let _ = reply.send(Err(SupervisorError::NameTaken(spec.name)));
            return;
        }
        if !self.online {
            let _ = reply.send(Err(SupervisorError::NotOnline));
            return;
        }
        let name = spec.name.clone();
        let mut new = self.desired.clone();
        new.insert(name.clone(), Arc::new(spec));
        self.reconcile(new);
        if let Some(r) = self.running.get_mut(&name) {
            r.waiters.push(reply);
        }
    }
}

/// Removes an API tunnel by its API name (`NAME` or `NAME (http)`).
#[derive(Message)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct RemoveTunnel(pub String);

impl Handler<RemoveTunnel> for Supervisor {
    type Result = Result<(), SupervisorError>;
    fn handle(
        &mut self,
        RemoveTunnel(api_name): RemoveTunnel,
        _: &mut Self::Context,
    ) -> Self::Result {
        let found = self.running.iter().find_map(|(name, r)| {
            r.twins
                .iter()
                .position(|(n, _)| *n == api_name)
                .map(|i| (name.clone(), i))
        });
        let Some((name, i)) = found else {
            return Err(SupervisorError::NotFound(api_name));
        };
        let r = self.running.get_mut(&name).expect("found above");
        let (removed, scheme) = r.twins.remove(i);
        info!(obj = "tunnels", name = %removed, "stopped tunnel");
        self.obs.metrics.forget(&(name.clone(), scheme));
        let mut new = self.desired.clone();
        if r.twins.is_empty() {
            new.remove(&name);
        } else {
            let remaining = if r.twins[0].1 == "https" {
                BindTls::Https
            } else {
                BindTls::Http
            };
            let mut spec = (*new[&name]).clone();
            spec.request.bind_tls = remaining;
            new.insert(name, Arc::new(spec));
        }
        self.reconcile(new);
        Ok(())
    }
}

/// Lists the API-visible tunnels that are bound.
#[derive(Message)]
#[rtype(result = "Vec<TunnelView>")]
pub struct ListTunnels;

impl Handler<ListTunnels> for Supervisor {
    type Result = MessageResult<ListTunnels>;
    fn handle(&mut self, _: ListTunnels, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.views())
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
