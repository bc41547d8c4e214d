//! Lanes of an agent session on the relay: the door further lanes join through, the
//! worker each lane is placed on, and the pump that carries a lane's events to its session.

use crate::session::{LaneEvent, Session};
use crate::state::RelayState;
use actix::prelude::*;
use burrow_http::workers::MovableTcp;
use burrow_protocol::control::{self, ServerMessage};
use burrow_protocol::lanes::{self, Lanes};
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, Role};
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_rustls::server::TlsStream;
use tracing::{info, warn};

/// How an authenticated session lets its further lanes in.
pub struct LaneDoor {
    /// Lanes the session was granted, the first included.
    pub granted: usize,
    /// The session's lanes; a joining lane is added here.
    pub lanes: Lanes,
    /// The session, which hears each lane's control messages and closes.
    pub session: Addr<Session>,
    /// SHA-256 of the secret handed to the agent: the secret itself is never kept.
    secret_hash: [u8; 32],
    next_lane: AtomicU32,
}

impl LaneDoor {
    /// A door for `granted` lanes; returns it and the secret to hand out.
    pub fn new(granted: usize, lanes: Lanes, session: Addr<Session>) -> (Arc<LaneDoor>, String) {
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let door = LaneDoor {
            granted,
            lanes,
            session,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
            next_lane: AtomicU32::new(1),
        };
        (Arc::new(door), secret)
    }

    /// Whether `secret` is the one handed out, compared in constant time.
    fn opens(&self, secret: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        given.ct_eq(&self.secret_hash).into()
    }
}

/// The mux settings of every lane of the relay.
pub fn mux_config(state: &RelayState) -> MuxConfig {
    let mut cfg = MuxConfig::new(Role::Relay);
    cfg.process_budget = state.window_budget.clone();
    cfg.session_budget = state.cfg.limits.session_window_budget;
    cfg
}

/// Carries a lane's events to its session (`first`: a control message read before the
/// mux started). Stream bytes never pass here: only control messages, the odd stream an
/// agent may not open, and the lane's end.
pub fn forward(
    mut events: UnboundedReceiver<MuxEvent>,
    session: Addr<Session>,
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
    let door = state.lane_doors.get(&id).map(|d| d.clone());
    let refusal = match &door {
        None => Some(format!("there is no session {id} to join")),
        Some(d) if !d.opens(&secret) => Some("the lane secret was not accepted".to_string()),
        Some(d) if d.lanes.live() >= d.granted => Some(format!(
            "session {id} already has the {} lanes it was granted",
            d.granted
        )),
        Some(_) => None,
    };
    let (Some(door), None) = (door, refusal.clone()) else {
        let message = refusal.unwrap_or_default();
        warn!(%peer, session = %id, err = %message, "lane refused");
        let answer = control::encode(&ServerMessage::AuthFailed { message });
        let _ = tls.write_all(&lanes::control_frame(answer)).await;
        let _ = tls.shutdown().await;
        return;
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
    if let Err(e) = tls.get_mut().0.park() {
        return warn!(%peer, err = %e, "lane could not move to its worker");
    }
    let worker_of_target = state.pool.get(target).clone();
    worker_of_target.spawn(async move {
        if let Err(e) = tls.get_mut().0.unpark() {
            return warn!(%peer, err = %e, "lane could not move to its worker");
        }
        run(tls, rest, &state, door, target, &id);
    });
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
    let lane = door.next_lane.fetch_add(1, Ordering::Relaxed);
    door.lanes.add(worker, handle);
    forward(events, door.session.clone(), lane, None);
    info!(session = %id, lane, worker, "lane joined");
}
