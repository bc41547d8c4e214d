//! Tests of the sans-IO machine: unit tests of each rule and a model-based property test
//! of two machines wired back to back. No sockets, no sleeps: time is passed in.

mod machine;
mod model;
mod session;

use super::{Event, Machine, MuxConfig, Role, StreamError};
use crate::frame::Frame;
use crate::window::WindowBudget;
use bytes::{Bytes, BytesMut};
use std::time::Instant;

/// A config with a process budget of its own, so parallel tests do not share one.
fn config(role: Role) -> MuxConfig {
    let mut c = MuxConfig::new(role);
    c.process_budget = WindowBudget::new(c.session_budget * 2);
    c
}

/// An agent and a relay machine started at the same instant.
fn pair() -> (Machine, Machine, Instant) {
    let now = Instant::now();
    (
        Machine::new(config(Role::Agent), now),
        Machine::new(config(Role::Relay), now),
        now,
    )
}

/// Everything `m` queued, in order.
fn frames(m: &mut Machine) -> Vec<Frame> {
    std::iter::from_fn(|| m.poll_transmit()).collect()
}

/// Everything `m` has to say, in order.
fn events(m: &mut Machine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Moves what `from` queued into `to` through the codec; returns how many frames.
fn pump(from: &mut Machine, to: &mut Machine, now: Instant) -> usize {
    let out = frames(from);
    let mut wire = BytesMut::new();
    out.iter().for_each(|f| f.encode(&mut wire));
    to.handle_bytes(&mut wire, now)
        .expect("peer accepts our frames");
    assert!(wire.is_empty());
    out.len()
}

/// Reads everything stream `id` holds now, acknowledging it at `now`.
fn read_all(m: &mut Machine, id: u32, now: Instant) -> Vec<u8> {
    let mut got = Vec::new();
    while let std::task::Poll::Ready(Ok(Some(c))) = m.poll_read(id) {
        m.ack(id, c.len(), now);
        got.extend_from_slice(&c);
    }
    got
}

fn data(stream: u32, payload: &'static [u8], fin: bool) -> Frame {
    Frame::Data {
        stream,
        fin,
        payload: Bytes::from_static(payload),
    }
}
