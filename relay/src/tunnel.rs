//! One bound tunnel on the relay: an actor that owns its name or port (the lease and the
//! route visitors are sent by) and its policy (schemes, basic auth, Host rewrite), and
//! gives them back when it stops: for good on an unbind, for the lease's grace period when
//! its session ended.

use crate::registry::LeaseKey;
use crate::router::Route;
use crate::state::RelayState;
use crate::tcp;
use actix::prelude::*;
use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};
use burrow_protocol::mux::MuxHandle;
use std::sync::Arc;
use tracing::info;

/// Who binds: the session and the agent identity behind it.
#[derive(Clone)]
pub struct Binder {
    /// The relay's id of the session.
    pub session: u64,
    /// The agent's identity (its names survive its reconnects).
    pub client: String,
    /// The session's mux, which public connections open streams on.
    pub mux: MuxHandle,
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
    ) -> Result<(Tunnel, Vec<String>), String> {
        let id = state.next_id();
        let client = binder.client.as_str();
        let route = Route {
            tunnel_id: id,
            mux: binder.mux.clone(),
            bind_tls: t.bind_tls,
            session_id: binder.session,
            client_id: client.to_string(),
            auth: t.auth.as_deref().map(crate::http::auth::expected_header),
            proto: t.proto,
            host_header: t.host_header.clone(),
        };
        let (key, urls) = match t.proto {
            TunnelProto::Http | TunnelProto::Tls => {
                if let Some(h) = &t.host_header {
                    burrow_http::hostname::validate_host_header(h)?;
                }
                if t.proto == TunnelProto::Tls && state.https_port.is_none() {
                    return Err("this relay has no TLS listener for tls tunnels".into());
                }
                let host = state.pick_host(t, client)?;
                let key = LeaseKey::Host(host.clone());
                state
                    .registry
                    .claim(&key, client, binder.session)
                    .map_err(|e| e.to_string())?;
                let urls = match t.proto {
                    TunnelProto::Tls => state.url("tls", &host).into_iter().collect(),
                    _ => urls(state, &host, t.bind_tls),
                };
                if urls.is_empty() {
                    return Err("this relay has no listener for the requested scheme".into());
                }
                if !state.router.insert(&host, route) {
                    return Err(format!(
                        "hostname {host} is already in use by another tunnel"
                    ));
                }
                (key, urls)
            }
            TunnelProto::Tcp => {
                if let Some(p) = t.remote_port {
                    if let Some(r) = state.router.lookup_port(p) {
                        let theirs = r.client_id != client || r.session_id == binder.session;
                        if !r.mux.is_closed() && theirs {
                            return Err(format!("port {p} is already in use by another tunnel"));
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
#[rtype(result = "Result<Vec<String>, String>")]
pub struct SetSchemes(pub BindTls);

impl Handler<SetSchemes> for Tunnel {
    type Result = Result<Vec<String>, String>;
    fn handle(&mut self, SetSchemes(bind_tls): SetSchemes, _: &mut Self::Context) -> Self::Result {
        let LeaseKey::Host(host) = &self.key else {
            return Err("only http tunnels have schemes".into());
        };
        if self.proto != TunnelProto::Http {
            return Err("only http tunnels have schemes".into());
        }
        let route = self
            .state
            .router
            .lookup_exact(host)
            .filter(|r| r.tunnel_id == self.id)
            .ok_or("tunnel is not routed")?;
        let mut updated = (*route).clone();
        updated.bind_tls = bind_tls;
        if !self.state.router.update(host, updated) {
            return Err("tunnel is not routed".into());
        }
        Ok(urls(&self.state, host, bind_tls))
    }
}
