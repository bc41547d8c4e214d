//! One tunnel on the agent: an actor that owns its options (the spec), its binding with
//! the relay (id, URLs, and the first URLs it asks for again after reconnects), its
//! rebinding with back-off, the API callers waiting for its first bind, and its metrics
//! keys, which it forgets when it stops. It tells its owner what the API should show
//! whenever that changes, so listing tunnels never has to ask each of them.

use crate::metrics::MetricsHub;
use crate::tunnels::session::{
    Bind, Session, SessionDown, SessionUp, SetSchemes, TunnelFailed, TunnelUp, Unbind,
};
use crate::tunnels::spec::{sticky, TunnelSpec};
use actix::prelude::*;
use burrow_protocol::control::{BindTls, TunnelProto};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

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

/// What a tunnel shows the API.
#[derive(Debug, Clone, Default)]
pub struct Card {
    /// API names and the scheme each shows, bound or not.
    pub twins: Vec<(String, String)>,
    /// Those of them that have a public URL.
    pub views: Vec<TunnelView>,
}

/// The relay refused a tunnel's bind; the text is the relay's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BindRefused(pub String);

/// Told to the tunnel's owner; `serial` tells a tunnel from an older one of the same name.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TunnelReport {
    /// The serial the tunnel was started with.
    pub serial: u64,
    /// Tunnel name.
    pub name: String,
    /// What happened.
    pub what: Report,
}

/// What a tunnel reports.
#[derive(Debug)]
pub enum Report {
    /// What the API shows of it changed.
    Card(Card),
    /// Its first bind succeeded on these URLs.
    Forwarding(Arc<TunnelSpec>, Vec<String>),
    /// Its first bind failed and the agent cannot go on without it.
    Fatal(String),
    /// Its first bind failed and the API caller who asked for it heard why: it is not wanted.
    Refused,
}

/// Everything a tunnel starts from.
pub struct TunnelOptions {
    /// What to bind and where to forward.
    pub spec: Arc<TunnelSpec>,
    /// Told apart from older tunnels of the same name in reports.
    pub serial: u64,
    /// The session it binds on.
    pub session: Addr<Session>,
    /// Whether the session is up now.
    pub online: bool,
    /// Whether a failed first bind ends the agent (command line and config tunnels do).
    pub fatal_first_failure: bool,
    /// Its counters, forgotten when it stops.
    pub metrics: MetricsHub,
    /// Where it reports.
    pub reports: Recipient<TunnelReport>,
}

struct Bound {
    tunnel_id: u64,
    urls: Vec<String>,
}

/// One tunnel.
pub struct Tunnel {
    opts: TunnelOptions,
    bound: Option<Bound>,
    /// URLs of the first bind, asked for again after reconnects.
    first_urls: Vec<String>,
    /// API names and the scheme each shows.
    twins: Vec<(String, String)>,
    waiters: Vec<oneshot::Sender<Result<(), BindRefused>>>,
    failures: u32,
}

/// The API names an http tunnel shows per scheme; other tunnels show one.
pub fn twins_for(spec: &TunnelSpec) -> Vec<(String, String)> {
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

impl Tunnel {
    /// A tunnel not yet bound.
    pub fn new(opts: TunnelOptions) -> Self {
        Tunnel {
            twins: twins_for(&opts.spec),
            opts,
            bound: None,
            first_urls: Vec::new(),
            waiters: Vec::new(),
            failures: 0,
        }
    }

    /// What the API shows of it now.
    pub fn card(&self) -> Card {
        // While reconnecting, a tunnel keeps the URLs it will get back.
        let urls = self.bound.as_ref().map_or(&self.first_urls, |b| &b.urls);
        let views = self
            .twins
            .iter()
            .filter_map(|(api_name, scheme)| {
                let prefix = format!("{scheme}://");
                urls.iter()
                    .find(|u| u.starts_with(&prefix))
                    .map(|url| TunnelView {
                        name: api_name.clone(),
                        spec: self.opts.spec.clone(),
                        proto: scheme.clone(),
                        public_url: url.clone(),
                    })
            })
            .collect();
        Card {
            twins: self.twins.clone(),
            views,
        }
    }

    fn report(&self, what: Report) {
        self.opts.reports.do_send(TunnelReport {
            serial: self.opts.serial,
            name: self.opts.spec.name.clone(),
            what,
        });
    }

    fn report_card(&self) {
        self.report(Report::Card(self.card()));
    }

    fn bind(&self) {
        if !self.opts.online {
            return;
        }
        let spec = if self.first_urls.is_empty() {
            self.opts.spec.clone()
        } else {
            Arc::new(TunnelSpec {
                request: sticky(&self.opts.spec.request, &self.first_urls),
                ..(*self.opts.spec).clone()
            })
        };
        self.opts.session.do_send(Bind(spec));
    }
}

impl Actor for Tunnel {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.bind();
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let name = &self.opts.spec.name;
        for (_, scheme) in &self.twins {
            self.opts.metrics.forget(&(name.clone(), scheme.clone()));
        }
    }
}

/// Unbind and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Tunnel {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        if let Some(b) = &self.bound {
            self.opts.session.do_send(Unbind(b.tunnel_id));
            for (api_name, _) in &self.twins {
                info!(obj = "tunnels", name = %api_name, "stopped tunnel");
            }
        }
        ctx.stop();
    }
}

/// Serve only the schemes of this spec (same tunnel otherwise), keeping URL and connections.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rescheme(pub Arc<TunnelSpec>);

impl Handler<Rescheme> for Tunnel {
    type Result = ();
    fn handle(&mut self, Rescheme(spec): Rescheme, _: &mut Self::Context) {
        let bind_tls = spec.request.bind_tls;
        self.opts.spec = spec;
        if let Some(b) = &self.bound {
            self.opts.session.do_send(SetSchemes(
                self.opts.spec.name.clone(),
                b.tunnel_id,
                bind_tls,
            ));
        }
        self.report_card();
    }
}

/// Stop showing one API name (the API removed it); its scheme's counters go with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropTwin(pub String);

impl Handler<DropTwin> for Tunnel {
    type Result = ();
    fn handle(&mut self, DropTwin(api_name): DropTwin, _: &mut Self::Context) {
        let Some(i) = self.twins.iter().position(|(n, _)| *n == api_name) else {
            return;
        };
        let (removed, scheme) = self.twins.remove(i);
        info!(obj = "tunnels", name = %removed, "stopped tunnel");
        self.opts
            .metrics
            .forget(&(self.opts.spec.name.clone(), scheme));
        self.report_card();
    }
}

/// An API caller waits for the first bind: told `Ok` when bound, the reason when refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wait(pub oneshot::Sender<Result<(), BindRefused>>);

impl Handler<Wait> for Tunnel {
    type Result = ();
    fn handle(&mut self, Wait(w): Wait, _: &mut Self::Context) {
        self.waiters.push(w);
    }
}

impl Handler<SessionUp> for Tunnel {
    type Result = ();
    fn handle(&mut self, _: SessionUp, _: &mut Self::Context) {
        self.opts.online = true;
        if self.bound.take().is_some() {
            self.report_card();
        }
        self.bind();
    }
}

impl Handler<SessionDown> for Tunnel {
    type Result = ();
    fn handle(&mut self, _: SessionDown, _: &mut Self::Context) {
        self.opts.online = false;
        if self.bound.take().is_some() {
            self.report_card();
        }
    }
}

impl Handler<TunnelUp> for Tunnel {
    type Result = ();
    fn handle(&mut self, up: TunnelUp, _: &mut Self::Context) {
        let first = self.first_urls.is_empty();
        if first {
            self.first_urls = up.urls.clone();
        } else if !up.urls.iter().all(|u| self.first_urls.contains(u)) {
            warn!(obj = "tunnels", name = %up.name, old = ?self.first_urls, new = ?up.urls, "tunnel came back on different URLs");
        }
        let was: Vec<String> = self
            .bound
            .as_ref()
            .map(|b| b.urls.clone())
            .unwrap_or_default();
        for (api_name, scheme) in &self.twins {
            let prefix = format!("{scheme}://");
            if let Some(url) = up
                .urls
                .iter()
                .find(|u| u.starts_with(&prefix) && !was.contains(u))
            {
                info!(obj = "tunnels", name = %api_name, addr = %self.opts.spec.local.display(), url = %url, "started tunnel");
            }
        }
        self.failures = 0;
        self.bound = Some(Bound {
            tunnel_id: up.tunnel_id,
            urls: up.urls.clone(),
        });
        // The card goes first: whoever hears of the URLs may list the tunnels at once.
        self.report_card();
        if first {
            self.report(Report::Forwarding(self.opts.spec.clone(), up.urls));
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }
}

impl Handler<TunnelFailed> for Tunnel {
    type Result = ();
    fn handle(&mut self, f: TunnelFailed, ctx: &mut Self::Context) {
        if !self.waiters.is_empty() {
            // An API caller is waiting: the tunnel is not started, and it hears why. The
            // owner hears first, so the name is free again by the time the caller answers.
            self.report(Report::Refused);
            for w in self.waiters.drain(..) {
                let _ = w.send(Err(BindRefused(f.message.clone())));
            }
            return;
        }
        if self.first_urls.is_empty() && self.opts.fatal_first_failure {
            let msg = format!("failed to start tunnel {}: {}", f.name, f.message);
            return self.report(Report::Fatal(msg));
        }
        // A rebind can lose a race with our own previous session's cleanup; back off.
        self.failures += 1;
        let delay = Duration::from_millis(500) * 2u32.pow(self.failures.min(6));
        warn!(obj = "tunnels", name = %f.name, err = %f.message, retry_in = ?delay, "failed to bind tunnel; retrying");
        ctx.run_later(delay, |act, _| {
            if act.bound.is_none() {
                act.bind();
            }
        });
    }
}
