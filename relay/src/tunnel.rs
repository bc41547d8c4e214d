//! One bound tunnel on the relay: an actor that owns its name or port (the lease and the
//! route visitors are sent by) and its policy (schemes, basic auth, Host rewrite), and
//! gives them back when it stops: for good on an unbind, for the lease's grace period when
//! its session ended.

use crate::registry::LeaseKey;
use crate::router::Route;
use crate::state::RelayState;
use crate::tcp;
use crate::team::live::{LiveTunnel, TunnelCounters};
use crate::team::{Principal, TeamError};
use actix::prelude::*;
use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};
use burrow_protocol::lanes::Lanes;
use std::sync::Arc;
use tracing::info;

/// Why a bind was refused; the text goes back to the agent.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A `host_header` value that cannot go into a request head.
    #[error(transparent)]
    HostHeader(#[from] burrow_http::hostname::HostnameError),
    /// The name asked for is invalid, or no random one was free.
    #[error(transparent)]
    Host(#[from] crate::state::PickError),
    /// Someone else holds the name or port (a live session or a lease).
    #[error(transparent)]
    Taken(#[from] crate::registry::ClaimError),
    /// The tcp port could not be had.
    #[error(transparent)]
    Port(#[from] tcp::BindPortError),
    /// Another live tunnel is routed on the name or port.
    #[error("{0} is already in use by another tunnel")]
    InUse(String),
    /// The relay has no listener for what the tunnel needs.
    #[error("this relay has no {0}")]
    NoListener(&'static str),
    /// The account's reservations, region or quotas do not allow it.
    #[error(transparent)]
    Team(#[from] TeamError),
}

/// Why the schemes of a tunnel could not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SchemesError {
    /// Only http tunnels serve http and https.
    #[error("only http tunnels have schemes")]
    NotHttp,
    /// The route went away (the tunnel is stopping).
    #[error("tunnel is not routed")]
    NotRouted,
}

/// Who binds: the session and the agent identity behind it.
#[derive(Clone)]
pub struct Binder {
    /// The relay's id of the session.
    pub session: u64,
    /// The agent's identity (its names survive its reconnects).
    pub client: String,
    /// The session's lanes, which public connections open streams on.
    pub lanes: Lanes,
    /// The account behind the session (none on an open relay).
    pub principal: Option<Principal>,
}

/// How a tunnel left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// Still bound.
    Bound,
    /// The agent unbound it: the name is free at once.
    Unbound,
    /// Its session ended: the name waits for the agent for the lease's grace period.
    SessionEnded,
}

/// A bound tunnel.
pub struct Tunnel {
    id: u64,
    key: LeaseKey,
    proto: TunnelProto,
    binder: Binder,
    state: Arc<RelayState>,
    departure: Departure,
}

impl Tunnel {
    /// Claims and routes what `t` asks for; on success returns the tunnel (to be started)
    /// and its public URLs.
    pub fn bind(
        state: &Arc<RelayState>,
        binder: &Binder,
        t: &TunnelRequest,
    ) -> Result<(Tunnel, Vec<String>), BindError> {
        let id = state.next_id();
        let client = binder.client.as_str();
        let who = binder.principal.as_ref();
        state
            .team
            .check_quota(who, client, t.proto == TunnelProto::Tcp)?;
        let counters = Arc::new(TunnelCounters::default());
        let route = Route {
            tunnel_id: id,
            lanes: binder.lanes.clone(),
            bind_tls: t.bind_tls,
            session_id: binder.session,
            client_id: client.to_string(),
            auth: t.auth.as_deref().map(crate::http::auth::expected_header),
            proto: t.proto,
            host_header: t.host_header.clone(),
            account: who.map(|w| Arc::from(w.account.as_str())),
            counters: counters.clone(),
        };
        let (key, urls) = match t.proto {
            TunnelProto::Http | TunnelProto::Tls => {
                if let Some(h) = &t.host_header {
                    burrow_http::hostname::validate_host_header(h)?;
                }
                if t.proto == TunnelProto::Tls && state.https_port.is_none() {
                    return Err(BindError::NoListener("TLS listener for tls tunnels"));
                }
                let host = state.pick_host(t, client)?;
                state.team.check_host(who, &host)?;
                let key = LeaseKey::Host(host.clone());
                state.registry.claim(&key, client, binder.session)?;
                let urls = match t.proto {
                    TunnelProto::Tls => state.url("tls", &host).into_iter().collect(),
                    _ => urls(state, &host, t.bind_tls),
                };
                if urls.is_empty() {
                    return Err(BindError::NoListener("listener for the requested scheme"));
                }
                if !state.router.insert(&host, route) {
                    return Err(BindError::InUse(format!("hostname {host}")));
                }
                (key, urls)
            }
            TunnelProto::Tcp => {
                state
                    .team
                    .check_addr(who, t.remote_addr.as_deref(), t.remote_port)?;
                if let Some(p) = t.remote_port {
                    if let Some(r) = state.router.lookup_port(p) {
                        let theirs = r.client_id != client || r.session_id == binder.session;
                        if !r.lanes.is_closed() && theirs {
                            return Err(BindError::InUse(format!("port {p}")));
                        }
                    }
                }
                let port = tcp::bind_port(state, t.remote_port, client, binder.session)?;
                let route = Route {
                    bind_tls: BindTls::Both,
                    auth: None,
                    host_header: None,
                    ..route
                };
                state.router.insert_port(port, route);
                let url = format!("tcp://{}:{port}", state.cfg.domain);
                (LeaseKey::Port(port), vec![url])
            }
        };
        state.team.live.add_tunnel(
            binder.session,
            LiveTunnel {
                id,
                proto: proto_name(t.proto).into(),
                urls: urls.clone(),
                metadata: t.metadata.clone(),
                counters,
            },
        );
        let tunnel = Tunnel {
            id,
            key,
            proto: t.proto,
            binder: binder.clone(),
            state: state.clone(),
            departure: Departure::Bound,
        };
        Ok((tunnel, urls))
    }

    /// The relay's id of the tunnel.
    pub fn id(&self) -> u64 {
        self.id
    }
}

fn proto_name(proto: TunnelProto) -> &'static str {
    match proto {
        TunnelProto::Http => "http",
        TunnelProto::Tls => "tls",
        TunnelProto::Tcp => "tcp",
    }
}

fn urls(state: &RelayState, host: &str, bind_tls: BindTls) -> Vec<String> {
    let mut urls = Vec::new();
    if bind_tls != BindTls::Http {
        urls.extend(state.url("https", host));
    }
    if bind_tls != BindTls::Https {
        urls.extend(state.url("http", host));
    }
    urls
}

impl Actor for Tunnel {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.state
            .team
            .live
            .remove_tunnel(self.binder.session, self.id);
        match &self.key {
            LeaseKey::Host(h) => self.state.router.remove(h, self.id),
            LeaseKey::Port(p) => self.state.router.remove_port(*p, self.id),
        }
        let registry = &self.state.registry;
        match self.departure {
            Departure::Unbound => registry.forget(&self.key, &self.binder.client),
            // A tunnel stopped any other way (its session or the relay going) keeps its
            // name for the agent's return.
            Departure::SessionEnded | Departure::Bound => {
                registry.release(&self.key, &self.binder.client, self.binder.session);
            }
        }
        info!(
            session = self.binder.session,
            tunnel = self.id,
            unbound = self.departure == Departure::Unbound,
            "tunnel stopped"
        );
    }
}

/// The agent released the tunnel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unbind;

impl Handler<Unbind> for Tunnel {
    type Result = ();
    fn handle(&mut self, _: Unbind, ctx: &mut Self::Context) {
        self.departure = Departure::Unbound;
        ctx.stop();
    }
}

/// The tunnel's session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded;

impl Handler<SessionEnded> for Tunnel {
    type Result = ();
    fn handle(&mut self, _: SessionEnded, ctx: &mut Self::Context) {
        self.departure = Departure::SessionEnded;
        ctx.stop();
    }
}

/// Serve http, https or both from now on; answers the new URLs.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, SchemesError>")]
pub struct SetSchemes(pub BindTls);

impl Handler<SetSchemes> for Tunnel {
    type Result = Result<Vec<String>, SchemesError>;
    fn handle(&mut self, SetSchemes(bind_tls): SetSchemes, _: &mut Self::Context) -> Self::Result {
        let LeaseKey::Host(host) = &self.key else {
            return Err(SchemesError::NotHttp);
        };
        if self.proto != TunnelProto::Http {
            return Err(SchemesError::NotHttp);
        }
        let route = self
            .state
            .router
            .lookup_exact(host)
            .filter(|r| r.tunnel_id == self.id)
            .ok_or(SchemesError::NotRouted)?;
        let mut updated = (*route).clone();
        updated.bind_tls = bind_tls;
        if !self.state.router.update(host, updated) {
            return Err(SchemesError::NotRouted);
        }
        let urls = urls(&self.state, host, bind_tls);
        let live = &self.state.team.live;
        live.set_urls(self.binder.session, self.id, urls.clone());
        Ok(urls)
    }
}
