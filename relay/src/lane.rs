//! Lanes of an agent session on the relay: joining one through its session's door, the
//! worker each lane is placed on, and the pump that carries a lane's events to its session.

use crate::door::{LaneDoor, LaneEvent};
use crate::session::Session;
use crate::state::RelayState;
use actix::prelude::*;
use burrow_http::workers::{Movable, MovableTcp};
use burrow_protocol::control::{self, ServerMessage};
use burrow_protocol::lanes::{self, Lanes};
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, Role};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_rustls::server::TlsStream;
use tracing::{info, warn};

/// The mux settings of every lane of the relay.
pub fn mux_config(state: &RelayState) -> MuxConfig {
    let mut cfg = MuxConfig::new(Role::Relay);
    cfg.process_budget = state.window_budget.clone();
    cfg.session_budget = state.cfg.limits.session_window_budget;
    cfg
}

/// What the relay knows of a session's first connection before its mux starts.
#[derive(Debug)]
pub struct FirstLane {
    /// Bytes already read after `first`.
    pub rest: BytesMut,
    /// A control message read before the mux started, handed to the session first.
    pub first: Option<Bytes>,
    /// The worker of the calling thread, which drives the mux.
    pub worker: usize,
    /// Largest frame accepted until the session authenticates.
    pub max_frame: u32,
}

/// Starts the relay's side of a session over `io`, its first lane: the mux on the calling
/// worker and the `Session` actor `session` makes, fed by it and closed with the relay.
/// Agents come through here over TLS; the SSH gateway over an in-memory pipe.
pub fn start_session<T>(
    io: T,
    lane: FirstLane,
    state: Arc<RelayState>,
    session: impl FnOnce(Arc<RelayState>, Lanes) -> Session + 'static,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let mut cfg = mux_config(&state);
    cfg.max_frame = lane.max_frame;
    let (handle, events) = mux::start_with(io, cfg, lane.rest);
    let lanes = Lanes::new();
    lanes.add(lane.worker, handle);
    let mut closing = state.closing.clone();
    let first = lane.first;
    Session::create(move |ctx| {
        forward(events, ctx.address().recipient(), 0, first);
        let all = lanes.clone();
        actix_rt::spawn(async move {
            let _ = closing.wait_for(|c| *c).await;
            all.close("relay shutting down");
        });
        session(state, lanes)
    });
}

/// Carries a lane's events to its session (`first`: a control message read before the
/// mux started). Stream bytes never pass here: only control messages, the odd stream an
/// agent may not open, and the lane's end.
pub fn forward(
    mut events: UnboundedReceiver<MuxEvent>,
    session: Recipient<LaneEvent>,
    lane: u32,
    first: Option<Bytes>,
) {
    if let Some(first) = first {
        session.do_send(LaneEvent(lane, MuxEvent::Control(first)));
    }
    actix_rt::spawn(async move {
        while let Some(ev) = events.recv().await {
            if !session.connected() {
                break;
            }
            session.do_send(LaneEvent(lane, ev));
        }
    });
}

/// A connection whose first message asks to join session `id` as a further lane.
pub async fn join(
    mut tls: TlsStream<MovableTcp>,
    rest: BytesMut,
    peer: SocketAddr,
    state: Arc<RelayState>,
    (id, secret): (String, String),
    worker: usize,
) {
    let door = match admit(&state, &id, &secret) {
        Ok(door) => door,
        Err(message) => {
            warn!(%peer, session = %id, err = %message, "lane refused");
            let answer = control::encode(&ServerMessage::AuthFailed { message });
            let _ = tls.write_all(&lanes::control_frame(answer)).await;
            let _ = tls.shutdown().await;
            return;
        }
    };
    // A lane belongs on a worker that has none of this session's lanes yet, so that
    // every worker serving its visitors finds one of its own.
    let used = door.lanes.workers();
    let target = if used.contains(&worker) {
        (0..state.pool.len())
            .find(|w| !used.contains(w))
            .unwrap_or(worker)
    } else {
        worker
    };
    if target == worker {
        return run(tls, rest, &state, door, worker, &id);
    }
    if let Err(e) = tls.park() {
        return warn!(%peer, err = %e, "lane could not move to its worker");
    }
    let worker_of_target = state.pool.get(target).clone();
    worker_of_target.spawn(async move {
        if let Err(e) = tls.unpark() {
            return warn!(%peer, err = %e, "lane could not move to its worker");
        }
        run(tls, rest, &state, door, target, &id);
    });
}

/// The door of session `id` if `secret` opens it and a lane is still free; else why not.
fn admit(state: &RelayState, id: &str, secret: &str) -> Result<Arc<LaneDoor>, String> {
    let door = state
        .lane_doors
        .get(id)
        .map(|d| d.clone())
        .ok_or_else(|| format!("there is no session {id} to join"))?;
    if !door.opens(secret) {
        return Err("the lane secret was not accepted".into());
    }
    if door.lanes.live() >= door.granted {
        return Err(format!(
            "session {id} already has the {} lanes it was granted",
            door.granted
        ));
    }
    Ok(door)
}

/// Starts a joined lane's mux on the calling worker and opens it to visitors.
fn run(
    tls: TlsStream<MovableTcp>,
    rest: BytesMut,
    state: &RelayState,
    door: Arc<LaneDoor>,
    worker: usize,
    id: &str,
) {
    let (handle, events) = mux::start_with(tls, mux_config(state), rest);
    // The agent hears LaneOk before any stream this lane will carry.
    if handle
        .send_control(control::encode(&ServerMessage::LaneOk))
        .is_err()
    {
        return;
    }
    let lane = door.next_lane();
    door.lanes.add(worker, handle);
    forward(events, door.session.clone(), lane, None);
    info!(session = %id, lane, worker, "lane joined");
}
