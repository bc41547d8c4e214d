//! One connected agent: authentication, tunnel binding, and cleanup when it goes.

use crate::registry::LeaseKey;
use crate::router::Route;
use crate::state::RelayState;
use crate::tcp;
use actix::prelude::*;
use burrow_protocol::control::{
    self, BindTls, ClientMessage, ServerMessage, TunnelProto, TunnelRequest,
};
use burrow_protocol::frame::DEFAULT_MAX_FRAME;
use burrow_protocol::mux::{MuxEvent, MuxHandle};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{info, warn};

struct Bound {
    keys: Vec<LeaseKey>,
}

/// The relay's side of one agent session.
pub struct Session {
    id: u64,
    peer: SocketAddr,
    state: Arc<RelayState>,
    mux: MuxHandle,
    client_id: Option<String>,
    tunnels: HashMap<u64, Bound>,
    /// Held until the agent authenticates.
    pending: Option<Pending>,
}

impl Session {
    /// A session over an established mux.
    pub fn new(state: Arc<RelayState>, peer: SocketAddr, mux: MuxHandle, pending: Pending) -> Self {
        let id = state.next_id();
        Session {
            id,
            peer,
            state,
            mux,
            client_id: None,
            tunnels: HashMap::new(),
            pending: Some(pending),
        }
    }

    fn send(&self, msg: &ServerMessage) {
        let _ = self.mux.send_control(control::encode(msg));
    }

    fn fail(&self, ctx: &mut Context<Self>, message: String) {
        warn!(session = self.id, peer = %self.peer, err = %message, "closing agent session");
        self.send(&ServerMessage::Error { message });
        self.mux.close("protocol error");
        ctx.stop();
    }

    fn on_control(&mut self, msg: ClientMessage, ctx: &mut Context<Self>) {
        match (msg, &self.client_id) {
            (
                ClientMessage::Auth {
                    agent_version,
                    client_id,
                    token,
                },
                None,
            ) => {
                if !self.state.registry.token_ok(token.as_deref()) {
                    warn!(session = self.id, peer = %self.peer, "agent refused: invalid auth token");
                    let message = if token.is_none() {
                        "this relay requires an auth token; pass one with --authtoken".to_string()
                    } else {
                        "the auth token was not accepted by the relay".to_string()
                    };
                    self.send(&ServerMessage::AuthFailed { message });
                    self.mux.close("auth failed");
                    ctx.stop();
                    return;
                }
                if client_id.is_empty() || client_id.len() > 128 {
                    return self.fail(ctx, "invalid client id".into());
                }
                info!(session = self.id, peer = %self.peer, %agent_version, "agent session started");
                self.client_id = Some(client_id);
                self.pending = None;
                self.mux.set_max_frame(DEFAULT_MAX_FRAME);
                self.send(&ServerMessage::AuthOk {
                    relay_version: env!("CARGO_PKG_VERSION").into(),
                    session_id: format!("{:016x}", self.id),
                });
            }
            (ClientMessage::Auth { .. }, Some(_)) => self.fail(ctx, "authenticated twice".into()),
            (_, None) => self.fail(ctx, "a message came before authentication".into()),
            (ClientMessage::Bind { req, tunnel }, Some(client)) => {
                let client = client.clone();
                let reply = match self.bind(&tunnel, &client) {
                    Ok((tunnel_id, urls)) => {
                        info!(session = self.id, tunnel = tunnel_id, urls = ?urls, "tunnel bound");
                        ServerMessage::Bound {
                            req,
                            tunnel_id,
                            urls,
                        }
                    }
                    Err(message) => {
                        info!(session = self.id, err = %message, "tunnel refused");
                        ServerMessage::BindFailed { req, message }
                    }
                };
                self.send(&reply);
            }
            (
                ClientMessage::SetSchemes {
                    req,
                    tunnel_id,
                    bind_tls,
                },
                Some(_),
            ) => {
                let reply = match self.set_schemes(tunnel_id, bind_tls) {
                    Ok(urls) => ServerMessage::Bound {
                        req,
                        tunnel_id,
                        urls,
                    },
                    Err(message) => ServerMessage::BindFailed { req, message },
                };
                self.send(&reply);
            }
            (ClientMessage::Unbind { tunnel_id }, Some(client)) => {
                let client = client.clone();
                if let Some(b) = self.tunnels.remove(&tunnel_id) {
                    self.unroute(tunnel_id, &b);
                    for k in &b.keys {
                        self.state.registry.forget(k, &client);
                    }
                    info!(session = self.id, tunnel = tunnel_id, "tunnel unbound");
                }
            }
        }
    }

    fn bind(&mut self, t: &TunnelRequest, client: &str) -> Result<(u64, Vec<String>), String> {
        let tunnel_id = self.state.next_id();
        match t.proto {
            TunnelProto::Http | TunnelProto::Tls => {
                if let Some(h) = &t.host_header {
                    burrow_http::hostname::validate_host_header(h)?;
                }
                if t.proto == TunnelProto::Tls && self.state.https_port.is_none() {
                    return Err("this relay has no TLS listener for tls tunnels".into());
                }
                let host = self.state.pick_host(t, client)?;
                let key = LeaseKey::Host(host.clone());
                self.state
                    .registry
                    .claim(&key, client, self.id)
                    .map_err(|e| e.to_string())?;
                let route = Route {
                    tunnel_id,
                    mux: self.mux.clone(),
                    bind_tls: t.bind_tls,
                    session_id: self.id,
                    client_id: client.to_string(),
                    auth: t.auth.as_deref().map(crate::http::auth::expected_header),
                    proto: t.proto,
                    host_header: t.host_header.clone(),
                };
                if !self.state.router.insert(&host, route) {
                    return Err(format!(
                        "hostname {host} is already in use by another tunnel"
                    ));
                }
                let urls = match t.proto {
                    TunnelProto::Tls => self.state.url("tls", &host).into_iter().collect(),
                    _ => self.urls(&host, t.bind_tls),
                };
                if urls.is_empty() {
                    self.state.router.remove(&host, tunnel_id);
                    return Err("this relay has no listener for the requested scheme".into());
                }
                self.tunnels.insert(tunnel_id, Bound { keys: vec![key] });
                Ok((tunnel_id, urls))
            }
            TunnelProto::Tcp => {
                if let Some(p) = t.remote_port {
                    if let Some(r) = self.state.router.lookup_port(p) {
                        if !r.mux.is_closed() && (r.client_id != client || r.session_id == self.id)
                        {
                            return Err(format!("port {p} is already in use by another tunnel"));
                        }
                    }
                }
                let port = tcp::bind_port(&self.state, t.remote_port, client, self.id)?;
                let route = Route {
                    tunnel_id,
                    mux: self.mux.clone(),
                    bind_tls: BindTls::Both,
                    session_id: self.id,
                    client_id: client.to_string(),
                    auth: None,
                    proto: TunnelProto::Tcp,
                    host_header: None,
                };
                self.state.router.insert_port(port, route);
                self.tunnels.insert(
                    tunnel_id,
                    Bound {
                        keys: vec![LeaseKey::Port(port)],
                    },
                );
                Ok((
                    tunnel_id,
                    vec![format!("tcp://{}:{port}", self.state.cfg.domain)],
                ))
            }
        }
    }

    fn set_schemes(&mut self, tunnel_id: u64, bind_tls: BindTls) -> Result<Vec<String>, String> {
        let b = self.tunnels.get(&tunnel_id).ok_or("unknown tunnel")?;
        let Some(LeaseKey::Host(host)) = b.keys.first() else {
            return Err("only http tunnels have schemes".into());
        };
        let route = self
            .state
            .router
            .lookup_exact(host)
            .filter(|r| r.tunnel_id == tunnel_id)
            .ok_or("tunnel is not routed")?;
        if route.proto != TunnelProto::Http {
            return Err("only http tunnels have schemes".into());
        }
        let mut updated = (*route).clone();
        updated.bind_tls = bind_tls;
        if !self.state.router.update(host, updated) {
            return Err("tunnel is not routed".into());
        }
        Ok(self.urls(host, bind_tls))
    }

    fn urls(&self, host: &str, bind_tls: BindTls) -> Vec<String> {
        let mut urls = Vec::new();
        if bind_tls != BindTls::Http {
            urls.extend(self.state.url("https", host));
        }
        if bind_tls != BindTls::Https {
            urls.extend(self.state.url("http", host));
        }
        urls
    }

    fn unroute(&self, tunnel_id: u64, b: &Bound) {
        for k in &b.keys {
            match k {
                LeaseKey::Host(h) => self.state.router.remove(h, tunnel_id),
                LeaseKey::Port(p) => self.state.router.remove_port(*p, tunnel_id),
            }
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // An agent that never authenticates is dropped after the handshake timeout.
        ctx.run_later(self.state.cfg.limits.handshake_timeout, |act, ctx| {
            if act.client_id.is_none() {
                act.fail(ctx, "no authentication in time".into());
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let client = self.client_id.clone().unwrap_or_default();
        let tunnels = std::mem::take(&mut self.tunnels);
        for (id, b) in tunnels {
            self.unroute(id, &b);
            for k in &b.keys {
                self.state.registry.release(k, &client, self.id);
            }
        }
        self.mux.close("session ended");
        info!(session = self.id, peer = %self.peer, "agent session ended");
    }
}

impl StreamHandler<MuxEvent> for Session {
    fn handle(&mut self, ev: MuxEvent, ctx: &mut Self::Context) {
        match ev {
            MuxEvent::Control(bytes) => match control::decode::<ClientMessage>(&bytes) {
                Ok(msg) => self.on_control(msg, ctx),
                Err(e) => self.fail(ctx, format!("bad control message: {e}")),
            },
            MuxEvent::Stream(_, stream) => {
                stream.reset("agents may not open streams");
            }
            MuxEvent::Closed(err) => {
                if let Some(err) = err {
                    info!(session = self.id, peer = %self.peer, %err, "agent connection lost");
                }
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Largest frame payload an agent may send before it has authenticated.
pub const PREAUTH_MAX_FRAME: u32 = 16 * 1024;

/// One agent connection counted against `max_pending_agents` until it authenticates or
/// goes away.
#[derive(Debug)]
pub struct Pending(Arc<std::sync::atomic::AtomicUsize>);

impl Pending {
    /// Counts one more waiting connection; `None` (and nothing counted) when the queue is
    /// full.
    pub fn admit(state: &RelayState) -> Option<Pending> {
        let count = &state.pending_agents;
        let prev = count.fetch_add(1, Ordering::AcqRel);
        let pending = Pending(count.clone());
        (prev < state.cfg.limits.max_pending_agents).then_some(pending)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
