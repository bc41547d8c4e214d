//! A model-based property test: random operations on an agent and a relay machine wired
//! back to back through in-memory frame queues, checked against what streams promise.
//!
//! After every step: bytes read are exactly the bytes written, in order, once; nothing is
//! read after a reset arrived beyond what was already buffered; a fin is read only after
//! all the data; the sender's credit plus what is in flight equals what the receiver
//! still allows, which never exceeds its window; the stream limit holds. At the end,
//! every stream either ended cleanly with all its bytes or was reset, and once every
//! handle is released both machines hold no stream state and no window budget.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::task::Poll;
use std::time::Duration;

const MAX_STREAMS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Open(usize),
    Write(usize, usize, usize),
    Read(usize, usize, usize),
    Finish(usize, usize),
    Reset(usize, usize),
    Release(usize, usize),
    Deliver(usize, usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    let h = any::<prop::sample::Index>().prop_map(|i| i.index(1 << 16));
    prop_oneof![
        2 => side.clone().prop_map(Op::Open),
        6 => (side.clone(), h.clone(), 1..150_000usize).prop_map(|(s, h, n)| Op::Write(s, h, n)),
        6 => (side.clone(), h.clone(), 1..8usize).prop_map(|(s, h, n)| Op::Read(s, h, n)),
        2 => (side.clone(), h.clone()).prop_map(|(s, h)| Op::Finish(s, h)),
        1 => (side.clone(), h.clone()).prop_map(|(s, h)| Op::Reset(s, h)),
        1 => (side.clone(), h).prop_map(|(s, h)| Op::Release(s, h)),
        8 => (side, 1..20usize).prop_map(|(s, n)| Op::Deliver(s, n)),
        2 => (0..30u64).prop_map(Op::Advance),
    ]
}

/// One end's view of a stream through its handle.
#[derive(Debug, Default)]
struct Handle {
    id: u32,
    read: u64,
    fin_read: bool,
    failed: bool,
    released: bool,
    /// Set when a reset arrived: the most that may ever be read.
    cap: Option<u64>,
}

/// What one side wrote on a stream.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    written: u64,
    fin_at: Option<u64>,
}

/// The byte at `offset` of what `side` writes on stream `id`.
fn pattern(side: usize, id: u32, offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (id as u64 * 7) ^ side as u64) as u8
}

struct World {
    m: [Machine; 2],
    wire: [VecDeque<Frame>; 2],
    handles: [Vec<Handle>; 2],
    sent: HashMap<(usize, u32), Sent>,
    now: Instant,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        let cfg = |role| {
            let mut c = config(role);
            c.max_streams = MAX_STREAMS;
            c.max_window = 1 << 20;
            c.session_budget = 1 << 19;
            c.heartbeat_interval = Duration::from_millis(20);
            c.heartbeat_timeout = Duration::from_secs(3600);
            c
        };
        World {
            m: [
                Machine::new(cfg(Role::Agent), now),
                Machine::new(cfg(Role::Relay), now),
            ],
            wire: Default::default(),
            handles: Default::default(),
            sent: HashMap::new(),
            now,
        }
    }

    fn handle(&mut self, side: usize, pick: usize) -> Option<usize> {
        let n = self.handles[side].len();
        (n > 0)
            .then(|| pick % n)
            .filter(|&i| !self.handles[side][i].released)
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Open(s) => {
                if let Ok(id) = self.m[s].open(Bytes::new()) {
                    self.handles[s].push(Handle {
                        id,
                        ..Handle::default()
                    });
                }
            }
            Op::Write(s, h, n) => self.write(s, h, n),
            Op::Read(s, h, n) => {
                if let Some(i) = self.handle(s, h) {
                    (0..n).for_each(|_| self.read_one(s, i));
                }
            }
            Op::Finish(s, h) => {
                if let Some(i) = self.handle(s, h) {
                    let id = self.handles[s][i].id;
                    if self.m[s].finish(id).is_ok() {
                        let sent = self.sent.entry((s, id)).or_default();
                        sent.fin_at.get_or_insert(sent.written);
                    }
                }
            }
            Op::Reset(s, h) | Op::Release(s, h) => {
                if let Some(i) = self.handle(s, h) {
                    let id = self.handles[s][i].id;
                    match op {
                        Op::Reset(..) => self.m[s].reset(id, "model"),
                        _ => self.m[s].release(id),
                    }
                    self.handles[s][i].released = true;
                }
            }
            Op::Deliver(s, n) => self.deliver(s, n),
            Op::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                self.m.iter_mut().for_each(|m| m.tick(self.now));
            }
        }
        self.collect();
        self.check();
    }

    fn write(&mut self, s: usize, h: usize, mut n: usize) {
        let Some(i) = self.handle(s, h) else { return };
        let id = self.handles[s][i].id;
        while n > 0 {
            let Poll::Ready(Ok(credit)) = self.m[s].poll_credit(id) else {
                break;
            };
            let sent = self.sent.entry((s, id)).or_default();
            let k = credit.min(n);
            let bytes: Vec<u8> = (0..k as u64)
                .map(|o| pattern(s, id, sent.written + o))
                .collect();
            self.m[s].send(id, Bytes::from(bytes)).unwrap();
            sent.written += k as u64;
            n -= k;
        }
        let credit = self.m[s].stats(id).map_or(0, |st| st.credit);
        if credit == 0
            && !self.m[s]
                .stats(id)
                .is_some_and(|st| st.reset || st.sent_fin)
        {
            let over = self.m[s].send(id, Bytes::from_static(b"x"));
            assert!(
                matches!(over, Err(StreamError::NoCredit { credit: 0, .. })),
                "{over:?}"
            );
        }
    }

    fn read_one(&mut self, s: usize, i: usize) {
        let h = &mut self.handles[s][i];
        let r = self.m[s].poll_read(h.id);
        match r {
            Poll::Ready(Ok(Some(chunk))) => {
                assert!(
                    !h.failed && !h.fin_read,
                    "data after the end of stream {}",
                    h.id
                );
                for (k, b) in chunk.iter().enumerate() {
                    assert_eq!(
                        *b,
                        pattern(1 - s, h.id, h.read + k as u64),
                        "stream {}",
                        h.id
                    );
                }
                h.read += chunk.len() as u64;
                assert!(h.cap.is_none_or(|c| h.read <= c), "read after a reset");
                self.m[s].ack(h.id, chunk.len(), self.now);
            }
            Poll::Ready(Ok(None)) => {
                let sent = self.sent.get(&(1 - s, h.id)).copied().unwrap_or_default();
                assert_eq!(sent.fin_at, Some(h.read), "fin before all data of {}", h.id);
                h.fin_read = true;
            }
            Poll::Ready(Err(_)) => h.failed = true,
            Poll::Pending => assert!(!h.fin_read && !h.failed),
        }
    }

    fn deliver(&mut self, from: usize, n: usize) {
        let to = 1 - from;
        let mut bytes = BytesMut::new();
        for _ in 0..n {
            match self.wire[from].pop_front() {
                Some(f) => f.encode(&mut bytes),
                None => break,
            }
        }
        self.m[to]
            .handle_bytes(&mut bytes, self.now)
            .expect("no protocol error");
    }

    /// Moves queued frames onto the wire and handles the machines' events.
    fn collect(&mut self) {
        for s in 0..2 {
            self.wire[s].extend(std::iter::from_fn(|| self.m[s].poll_transmit()));
            while let Some(ev) = self.m[s].poll_event() {
                match ev {
                    Event::Opened { id, .. } => self.handles[s].push(Handle {
                        id,
                        ..Handle::default()
                    }),
                    Event::Reset(id) => {
                        let buffered = self.m[s].stats(id).map_or(0, |st| st.buffered as u64);
                        if let Some(h) = self.handles[s].iter_mut().find(|h| h.id == id) {
                            h.cap.get_or_insert(h.read + buffered);
                        }
                    }
                    Event::Closed(err) => panic!("session closed: {err:?}"),
                    Event::Control(_) | Event::Readable(_) | Event::Writable(_) => {}
                }
            }
        }
    }

    fn in_flight(&self, side: usize, id: u32) -> (u64, u64, bool) {
        let (mut data, mut window, mut reset) = (0, 0, false);
        for f in &self.wire[side] {
            match f {
                Frame::Data {
                    stream, payload, ..
                } if *stream == id => data += payload.len() as u64,
                Frame::Window { stream, increment } if *stream == id => window += *increment as u64,
                Frame::Reset { stream, .. } if *stream == id => reset = true,
                _ => {}
            }
        }
        (data, window, reset)
    }

    fn check(&self) {
        for s in 0..2 {
            assert!(
                self.m[s].open_streams() <= MAX_STREAMS,
                "stream limit exceeded"
            );
            for h in self.handles[s].iter().filter(|h| !h.released) {
                let (Some(tx), Some(rx)) = (self.m[s].stats(h.id), self.m[1 - s].stats(h.id))
                else {
                    continue;
                };
                let (data, _, reset_out) = self.in_flight(s, h.id);
                let (_, window, reset_back) = self.in_flight(1 - s, h.id);
                if tx.reset || rx.reset || reset_out || reset_back {
                    continue;
                }
                assert_eq!(
                    tx.credit + data + window,
                    rx.peer_credit as u64,
                    "credit of {}",
                    h.id
                );
                assert!(rx.peer_credit <= rx.limit && tx.credit <= rx.limit as u64);
            }
        }
    }

    fn finish_open_handles(&mut self) {
        for s in 0..2 {
            for h in self.handles[s].iter().filter(|h| !h.released) {
                if self.m[s].finish(h.id).is_ok() {
                    let sent = self.sent.entry((s, h.id)).or_default();
                    sent.fin_at.get_or_insert(sent.written);
                }
            }
        }
    }

    fn read_rest(&mut self, s: usize, i: usize) {
        loop {
            let h = &self.handles[s][i];
            let more = self.m[s]
                .stats(h.id)
                .is_some_and(|st| st.buffered > 0 || st.recv_fin || st.reset);
            if h.released || h.fin_read || h.failed || !more {
                return;
            }
            self.read_one(s, i);
        }
    }

    /// Ends every stream, delivers everything, and checks nothing is left behind.
    fn finish_all(&mut self) {
        loop {
            self.finish_open_handles();
            for s in 0..2 {
                for i in 0..self.handles[s].len() {
                    self.read_rest(s, i);
                }
            }
            self.collect();
            self.check();
            if self.wire[0].is_empty() && self.wire[1].is_empty() {
                break;
            }
            self.deliver(0, usize::MAX);
            self.deliver(1, usize::MAX);
            self.collect();
        }
        for s in 0..2 {
            for h in self.handles[s].iter().filter(|h| !h.released) {
                assert!(h.fin_read || h.failed, "stream {} is stuck", h.id);
                if h.fin_read {
                    assert_eq!(
                        h.read,
                        self.sent.get(&(1 - s, h.id)).map_or(0, |x| x.written)
                    );
                }
            }
        }
        for s in 0..2 {
            for h in &mut self.handles[s] {
                if !std::mem::replace(&mut h.released, true) {
                    self.m[s].release(h.id);
                }
            }
        }
        self.collect();
        self.deliver(0, usize::MAX);
        self.deliver(1, usize::MAX);
        for m in &self.m {
            assert_eq!(
                (m.held_streams(), m.open_streams()),
                (0, 0),
                "stream state left behind"
            );
            assert_eq!(m.session_budget.used(), 0, "window budget left behind");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn two_machines_keep_every_stream_promise(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in ops {
            world.apply(op);
        }
        world.finish_all();
    }
}
