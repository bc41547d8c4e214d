//! One connected agent: authentication, its lanes, its tunnels (an actor each), and
//! telling them when it goes.

use crate::door::{LaneDoor, LaneEvent};
use crate::state::RelayState;
use crate::team::live::{Kick, LiveSession};
use crate::team::{lease_owner, Principal};
use crate::tunnel::{Binder, SessionEnded, SetSchemes, Tunnel, Unbind as TunnelUnbind};
use actix::prelude::*;
use burrow_protocol::control::{self, ClientMessage, ServerMessage};
use burrow_protocol::frame::DEFAULT_MAX_FRAME;
use burrow_protocol::lanes::Lanes;
use burrow_protocol::mux::MuxEvent;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{info, warn};

/// The relay's side of one agent session.
pub struct Session {
    id: u64,
    peer: SocketAddr,
    state: Arc<RelayState>,
    lanes: Lanes,
    client_id: Option<String>,
    tunnels: HashMap<u64, Addr<Tunnel>>,
    /// Held until the agent authenticates.
    pending: Option<Pending>,
    /// The account it authenticated as (none on an open relay).
    principal: Option<Principal>,
    /// The region the session is served in; empty until it authenticates.
    region: String,
    /// Who it is before it says so, when something else than a token vouched for it.
    vouched: Option<Vouched>,
    /// How it came, for the admin side.
    via: &'static str,
}

/// A session whose peer was authenticated before it started: the SSH gateway's, whose
/// user proved a registered key, not a token.
#[derive(Debug, Clone)]
pub struct Vouched {
    /// The account behind it (none on an open relay).
    pub principal: Option<Principal>,
    /// How it came (`ssh`).
    pub via: &'static str,
}

impl Session {
    /// A session over its first lane.
    pub fn new(state: Arc<RelayState>, peer: SocketAddr, lanes: Lanes, pending: Pending) -> Self {
        Session {
            pending: Some(pending),
            ..Session::unauthenticated(state, peer, lanes, "agent")
        }
    }

    /// A session whose peer `vouched` already authenticated: its `Auth` carries no token
    /// and is not checked against one.
    pub fn vouched(
        state: Arc<RelayState>,
        peer: SocketAddr,
        lanes: Lanes,
        vouched: Vouched,
    ) -> Self {
        let via = vouched.via;
        Session {
            vouched: Some(vouched),
            ..Session::unauthenticated(state, peer, lanes, via)
        }
    }

    fn unauthenticated(
        state: Arc<RelayState>,
        peer: SocketAddr,
        lanes: Lanes,
        via: &'static str,
    ) -> Self {
        let id = state.next_id();
        Session {
            id,
            peer,
            state,
            lanes,
            client_id: None,
            tunnels: HashMap::new(),
            pending: None,
            principal: None,
            region: String::new(),
            vouched: None,
            via,
        }
    }

    fn send(&self, msg: &ServerMessage) {
        let _ = self.lanes.send_control(control::encode(msg));
    }

    fn fail(&self, ctx: &mut Context<Self>, message: String) {
        warn!(session = self.id, peer = %self.peer, err = %message, "closing agent session");
        self.send(&ServerMessage::Error { message });
        self.lanes.close("protocol error");
        ctx.stop();
    }

    fn on_control(&mut self, msg: ClientMessage, ctx: &mut Context<Self>) {
        match (msg, &self.client_id) {
            (
                ClientMessage::Auth {
                    agent_version,
                    client_id,
                    token,
                    lanes,
                    region,
                },
                None,
            ) => {
                let checked = match self.vouched.take() {
                    Some(v) => Ok(v.principal),
                    None => self.state.team.authenticate(token.as_deref(), &client_id),
                };
                let principal = match checked {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(session = self.id, peer = %self.peer, err = %e, "agent refused");
                        let message = e.to_string();
                        self.send(&ServerMessage::AuthFailed { message });
                        self.lanes.close("auth failed");
                        ctx.stop();
                        return;
                    }
                };
                match self.state.cfg.session_region(region.as_deref()) {
                    Ok(region) => self.region = region,
                    Err(message) => {
                        warn!(session = self.id, peer = %self.peer, err = %message, "agent refused: region");
                        self.send(&ServerMessage::AuthFailed { message });
                        self.lanes.close("auth failed");
                        ctx.stop();
                        return;
                    }
                }
                if client_id.is_empty() || client_id.len() > 128 {
                    return self.fail(ctx, "invalid client id".into());
                }
                let account = principal.as_ref().map(|p| p.account.as_str());
                info!(session = self.id, peer = %self.peer, %agent_version, account, via = self.via, "agent session started");
                let owner = lease_owner(account, &client_id);
                self.client_id = Some(owner.clone());
                self.state.team.live.add(LiveSession {
                    id: self.id,
                    agent: owner,
                    account: principal.as_ref().map(|p| p.account.clone()),
                    token_id: principal.as_ref().map(|p| p.token_id.clone()),
                    via: self.via,
                    client_version: agent_version,
                    peer: self.peer,
                    region: self.region.clone(),
                    started: crate::registry::now_secs(),
                    tunnels: Default::default(),
                    kick: ctx.address().recipient(),
                });
                self.principal = principal;
                self.pending = None;
                self.lanes.set_max_frame(DEFAULT_MAX_FRAME);
                let session_id = format!("{:016x}", self.id);
                let granted = self.state.lanes_for(lanes);
                let lane_secret = (granted > 1).then(|| {
                    let (door, secret) =
                        LaneDoor::new(granted, self.lanes.clone(), ctx.address().recipient());
                    self.state.lane_doors.insert(session_id.clone(), door);
                    secret
                });
                self.send(&ServerMessage::AuthOk {
                    relay_version: env!("CARGO_PKG_VERSION").into(),
                    session_id,
                    lanes: granted as u32,
                    lane_secret,
                    region: self.region.clone(),
                });
            }
            (ClientMessage::Auth { .. }, Some(_)) => self.fail(ctx, "authenticated twice".into()),
            (ClientMessage::JoinLane { .. }, _) => {
                self.fail(
                    ctx,
                    "a lane joins only as a new connection's first message".into(),
                );
            }
            (_, None) => self.fail(ctx, "a message came before authentication".into()),
            (ClientMessage::Bind { req, tunnel }, Some(client)) => {
                let binder = Binder {
                    session: self.id,
                    client: client.clone(),
                    lanes: self.lanes.clone(),
                    principal: self.principal.clone(),
                };
                let reply = match Tunnel::bind(&self.state, &binder, &tunnel) {
                    Ok((t, urls)) => {
                        let tunnel_id = t.id();
                        info!(session = self.id, tunnel = tunnel_id, urls = ?urls, "tunnel bound");
                        self.tunnels.insert(tunnel_id, t.start());
                        ServerMessage::Bound {
                            req,
                            tunnel_id,
                            urls,
                        }
                    }
                    Err(e) => {
                        info!(session = self.id, err = %e, "tunnel refused");
                        let message = e.to_string();
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
                let Some(t) = self.tunnels.get(&tunnel_id) else {
                    let message = "unknown tunnel".to_string();
                    return self.send(&ServerMessage::BindFailed { req, message });
                };
                let asked = t.send(SetSchemes(bind_tls));
                ctx.spawn(asked.into_actor(self).map(move |answer, act, _| {
                    let reply = match answer {
                        Ok(Ok(urls)) => ServerMessage::Bound {
                            req,
                            tunnel_id,
                            urls,
                        },
                        Ok(Err(e)) => ServerMessage::BindFailed {
                            req,
                            message: e.to_string(),
                        },
                        Err(_) => ServerMessage::BindFailed {
                            req,
                            message: "tunnel is not routed".into(),
                        },
                    };
                    act.send(&reply);
                }));
            }
            (ClientMessage::Unbind { tunnel_id }, Some(_)) => {
                if let Some(t) = self.tunnels.remove(&tunnel_id) {
                    t.do_send(TunnelUnbind);
                    info!(session = self.id, tunnel = tunnel_id, "tunnel unbound");
                }
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
        self.state.team.live.remove(self.id);
        self.state.lane_doors.remove(&format!("{:016x}", self.id));
        for (_, t) in self.tunnels.drain() {
            t.do_send(SessionEnded);
        }
        self.lanes.close("session ended");
        info!(session = self.id, peer = %self.peer, "agent session ended");
    }
}

impl Handler<LaneEvent> for Session {
    type Result = ();

    fn handle(&mut self, LaneEvent(lane, ev): LaneEvent, ctx: &mut Self::Context) {
        match ev {
            MuxEvent::Control(bytes) => match control::decode::<ClientMessage>(&bytes) {
                Ok(msg) => self.on_control(msg, ctx),
                Err(e) => self.fail(ctx, format!("bad control message: {e}")),
            },
            MuxEvent::Stream(_, stream) => {
                stream.reset("agents may not open streams");
            }
            MuxEvent::Closed(err) => {
                let left = self.lanes.prune();
                let err = err.map(|e| e.to_string());
                if left > 0 {
                    // Its streams were reset with it; the session and its tunnels stay.
                    info!(session = self.id, lane, left, err = ?err, "agent lane lost");
                    return;
                }
                if let Some(err) = err {
                    info!(session = self.id, peer = %self.peer, %err, "agent connection lost");
                }
                ctx.stop();
            }
        }
    }
}

impl Handler<Kick> for Session {
    type Result = ();

    fn handle(&mut self, Kick(why): Kick, ctx: &mut Self::Context) {
        info!(session = self.id, peer = %self.peer, %why, "ending agent session");
        self.send(&ServerMessage::Error {
            message: why.clone(),
        });
        self.lanes.close(&why);
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
