//! The Supervisor: owns the desired set of tunnels (configuration, command line, API),
//! reconciles the running `Tunnel` actors with it through typed changes, and passes each
//! of them what the session reports. It keeps only what the API shows of each tunnel,
//! which the tunnels report when it changes, so listing them is a synchronous read.

use crate::tunnels::connection::Observers;
use crate::tunnels::reconcile::{diff, Change, Desired};
use crate::tunnels::session::{
    Close, Reports, Session, SessionConfig, SessionDown, SessionFatal, SessionUp, TunnelFailed,
    TunnelUp, Unbind,
};
use crate::tunnels::spec::TunnelSpec;
use crate::tunnels::tunnel::{
    Card, DropTwin, Report, Rescheme, Stop, Tunnel, TunnelOptions, TunnelReport, TunnelView, Wait,
};
use actix::prelude::*;
use burrow_protocol::control::BindTls;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{error, info};

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
    Online {
        /// The region the relay serves it in (empty from relays without regions).
        region: String,
    },
    /// The session dropped and is reconnecting.
    Reconnecting(String),
    /// The agent cannot go on: the relay refused it or a tunnel could not start.
    Fatal(String),
}

/// A running tunnel as the supervisor sees it.
struct Running {
    addr: Addr<Tunnel>,
    /// Tells this tunnel's reports from those of a removed one of the same name.
    serial: u64,
    card: Card,
}

/// Owns the tunnels and the session.
pub struct Supervisor {
    session_cfg: SessionConfig,
    session: Option<Addr<Session>>,
    obs: Observers,
    desired: Desired,
    running: BTreeMap<String, Running>,
    next_serial: u64,
    online: bool,
    /// Whether a failed first bind ends the agent (command line and config tunnels do).
    fatal_first_failure: bool,
    events: Box<dyn Fn(AgentEvent)>,
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
            running: BTreeMap::new(),
            next_serial: 0,
            online: false,
            fatal_first_failure: true,
            events,
        }
    }

    fn fatal(&self, msg: String) {
        error!(obj = "tunnels", err = %msg, "session failed");
        (self.events)(AgentEvent::Fatal(msg));
    }

    /// Applies the changes from the running set to `new`.
    fn reconcile(&mut self, new: Desired, ctx: &mut Context<Self>) {
        let changes = diff(&self.desired, &new);
        self.desired = new;
        for change in changes {
            match change {
                Change::Add(spec) => {
                    let Some(session) = self.session.clone() else {
                        continue;
                    };
                    self.next_serial += 1;
                    let tunnel = Tunnel::new(TunnelOptions {
                        spec: spec.clone(),
                        serial: self.next_serial,
                        session,
                        online: self.online,
                        fatal_first_failure: self.fatal_first_failure,
                        metrics: self.obs.metrics.clone(),
                        reports: ctx.address().recipient(),
                    });
                    let card = tunnel.card();
                    let running = Running {
                        addr: tunnel.start(),
                        serial: self.next_serial,
                        card,
                    };
                    self.running.insert(spec.name.clone(), running);
                }
                Change::Remove(name) => {
                    if let Some(r) = self.running.remove(&name) {
                        r.addr.do_send(Stop);
                    }
                }
                Change::SetSchemes(name, _) => {
                    if let Some(r) = self.running.get_mut(&name) {
                        let spec = self.desired[&name].clone();
                        for v in &mut r.card.views {
                            v.spec = spec.clone();
                        }
                        r.addr.do_send(Rescheme(spec));
                    }
                }
            }
        }
    }

    fn views(&self) -> Vec<TunnelView> {
        self.running
            .values()
            .flat_map(|r| r.card.views.iter().cloned())
            .collect()
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
        self.reconcile(initial, ctx);
    }
}

/// Stop: unbind, close the session and stop the system with exit code 0.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<SessionUp> for Supervisor {
    type Result = ();
    fn handle(&mut self, up: SessionUp, _: &mut Self::Context) {
        self.online = true;
        (self.events)(AgentEvent::Online {
            region: up.region.clone(),
        });
        for r in self.running.values() {
            r.addr.do_send(up.clone());
        }
    }
}

impl Handler<SessionDown> for Supervisor {
    type Result = ();
    fn handle(&mut self, SessionDown(why): SessionDown, _: &mut Self::Context) {
        self.online = false;
        for r in self.running.values() {
            r.addr.do_send(SessionDown(why.clone()));
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
        match self.running.get(&up.name) {
            Some(r) => r.addr.do_send(up),
            // Removed while the bind was in flight.
            None => {
                if let Some(s) = &self.session {
                    s.do_send(Unbind(up.tunnel_id));
                }
            }
        }
    }
}

impl Handler<TunnelFailed> for Supervisor {
    type Result = ();
    fn handle(&mut self, f: TunnelFailed, _: &mut Self::Context) {
        if let Some(r) = self.running.get(&f.name) {
            r.addr.do_send(f);
        }
    }
}

impl Handler<TunnelReport> for Supervisor {
    type Result = ();
    fn handle(&mut self, report: TunnelReport, ctx: &mut Self::Context) {
        let Some(r) = self.running.get_mut(&report.name) else {
            return;
        };
        if r.serial != report.serial {
            return;
        }
        match report.what {
            Report::Card(mut card) => {
                // API names only ever go away, and the supervisor drops them at once: a
                // card sent before the tunnel heard of that must not bring them back.
                card.twins.retain(|t| r.card.twins.contains(t));
                card.views
                    .retain(|v| card.twins.iter().any(|(n, _)| *n == v.name));
                if let Some(spec) = self.desired.get(&report.name) {
                    for v in &mut card.views {
                        v.spec = spec.clone();
                    }
                }
                r.card = card;
            }
            Report::Forwarding(spec, urls) => {
                for url in urls {
                    (self.events)(AgentEvent::Forwarding {
                        spec: spec.clone(),
                        url,
                    });
                }
            }
            Report::Fatal(msg) => self.fatal(msg),
            Report::Refused => {
                let mut new = self.desired.clone();
                new.remove(&report.name);
                self.reconcile(new, ctx);
            }
        }
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
    fn handle(&mut self, AddTunnel(spec, reply): AddTunnel, ctx: &mut Self::Context) {
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
        self.reconcile(new, ctx);
        if let Some(r) = self.running.get(&name) {
            let (tx, rx) = oneshot::channel();
            r.addr.do_send(Wait(tx));
            actix::spawn(async move {
                if let Ok(result) = rx.await {
                    let _ = reply.send(result.map_err(|e| SupervisorError::BindFailed(e.0)));
                }
            });
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
        ctx: &mut Self::Context,
    ) -> Self::Result {
        let found = self.running.iter_mut().find_map(|(name, r)| {
            let i = r.card.twins.iter().position(|(n, _)| *n == api_name)?;
            Some((name.clone(), i, r))
        });
        let Some((name, i, r)) = found else {
            return Err(SupervisorError::NotFound(api_name));
        };
        // The tunnel logs and forgets the scheme; the list stops showing it now.
        r.card.twins.remove(i);
        r.card.views.retain(|v| v.name != api_name);
        r.addr.do_send(DropTwin(api_name));
        let mut new = self.desired.clone();
        match r.card.twins.first() {
            None => {
                new.remove(&name);
            }
            Some((_, scheme)) => {
                let remaining = if scheme == "https" {
                    BindTls::Https
                } else {
                    BindTls::Http
                };
                let mut spec = (*new[&name]).clone();
                spec.request.bind_tls = remaining;
                new.insert(name, Arc::new(spec));
            }
        }
        self.reconcile(new, ctx);
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
