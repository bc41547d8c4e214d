//! How further lanes join an authenticated session: its door (the grant and the hash of
//! the secret handed out) and the message each lane's events reach the session by.

use actix::prelude::*;
use burrow_protocol::lanes::Lanes;
use burrow_protocol::mux::MuxEvent;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Something that happened on lane `.0` of a session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LaneEvent(pub u32, pub MuxEvent);

/// How an authenticated session lets its further lanes in.
pub struct LaneDoor {
    /// Lanes the session was granted, the first included.
    pub granted: usize,
    /// The session's lanes; a joining lane is added here.
    pub lanes: Lanes,
    /// The session, which hears each lane's control messages and closes.
    pub session: Recipient<LaneEvent>,
    /// SHA-256 of the secret handed to the agent: the secret itself is never kept.
    secret_hash: [u8; 32],
    next_lane: AtomicU32,
}

impl LaneDoor {
    /// A door for `granted` lanes; returns it and the secret to hand out.
    pub fn new(
        granted: usize,
        lanes: Lanes,
        session: Recipient<LaneEvent>,
    ) -> (Arc<LaneDoor>, String) {
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
    pub fn opens(&self, secret: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        given.ct_eq(&self.secret_hash).into()
    }
}

impl LaneDoor {
    /// The number of the next lane to join.
    pub fn next_lane(&self) -> u32 {
        self.next_lane.fetch_add(1, Ordering::Relaxed)
    }
}
