//! The mux's protocol logic as a sans-IO state machine: frames and bytes in, frames and
//! events out, time passed in as an argument.
//!
//! [`Machine`] holds every stream's state (received chunks, fin, reset, credit, receive
//! window) and the session's (ids, the stream limit, heartbeats). It reads no clock,
//! spawns nothing and touches no socket, so every rule is tested on its own; the tokio
//! shell in `shell.rs` feeds it what a connection reads, writes what it queues and calls
//! [`Machine::tick`] when [`Machine::poll_timeout`] says so. Each stream carries a slot of
//! the driver's own (`U`), where the shell keeps its wakers.

use super::{MuxConfig, Role};
use crate::frame::{Frame, FrameDecoder};
use crate::window::WindowBudget;
use crate::ProtocolError;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core_stream::StreamCore;
pub use super::core_stream::{StreamError, StreamStats};

/// What the machine tells its driver, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// A control message from the peer.
    Control(Bytes),
    /// The peer opened a stream.
    Opened {
        /// Its id.
        id: u32,
        /// The metadata of its open frame.
        meta: Bytes,
    },
    /// Data or the peer's fin arrived on a stream.
    Readable(u32),
    /// The peer granted credit on a stream.
    Writable(u32),
    /// A stream ended abnormally: reset by the peer, for breaking the rules, or because
    /// the session closed.
    Reset(u32),
    /// The session ended; `None` for a clean close.
    Closed(Option<Arc<ProtocolError>>),
}

/// The state of one mux session, without any I/O.
pub struct Machine<U = ()> {
    pub(super) cfg: MuxConfig,
    /// Ping tokens count microseconds from here.
    epoch: Instant,
    max_frame: u32,
    pub(super) streams: HashMap<u32, StreamCore<U>>,
    /// Streams neither reset nor released: what the limit counts.
    pub(super) live: usize,
    pub(super) next_id: u32,
    /// Highest id the peer has opened; ids only grow, so lower ones are late, not unknown.
    pub(super) peer_last_id: u32,
    out: VecDeque<Frame>,
    pub(super) events: VecDeque<Event>,
    pub(super) session_budget: Arc<WindowBudget>,
    pub(super) rtt: Duration,
    last_rx: Instant,
    next_ping: Instant,
    closed: bool,
}

impl<U: Default> Machine<U> {
    /// A session that starts at `now`; its first ping is due at once.
    pub fn new(cfg: MuxConfig, now: Instant) -> Self {
        let next_id = match cfg.role {
            Role::Relay => 1,
            Role::Agent => 2,
        };
        Machine {
            max_frame: cfg.max_frame,
            session_budget: WindowBudget::new(cfg.session_budget),
            cfg,
            epoch: now,
            streams: HashMap::new(),
            live: 0,
            next_id,
            peer_last_id: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            rtt: Duration::ZERO,
            last_rx: now,
            next_ping: now,
            closed: false,
        }
    }

    /// Opens a stream carrying `meta`; returns its id.
    pub fn open(&mut self, meta: Bytes) -> Result<u32, ProtocolError> {
        if self.closed {
            return Err(ProtocolError::Closed);
        }
        if self.live >= self.cfg.max_streams {
            return Err(ProtocolError::Malformed {
                kind: "open",
                reason: format!("too many streams (limit {})", self.cfg.max_streams),
            });
        }
        let id = self.next_id;
        self.next_id = id.checked_add(2).ok_or(ProtocolError::Malformed {
            kind: "open",
            reason: "stream ids exhausted".into(),
        })?;
        self.insert(id);
        self.queue(Frame::Open { stream: id, meta });
        Ok(id)
    }

    /// Decodes and applies every complete frame at the front of `buf`, which holds bytes
    /// read from the connection at `now`; a partial frame stays for the next call.
    pub fn handle_bytes(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<(), Arc<ProtocolError>> {
        self.last_rx = now;
        while !self.closed {
            let frame = match FrameDecoder::new(self.max_frame).decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e)),
            };
            // Copy out of the read buffer so it stays uniquely owned and is reused in
            // place; holding slices of it would force a fresh allocation per read.
            let frame = match frame {
                Frame::Data {
                    stream,
                    fin,
                    payload,
                } if !payload.is_empty() => Frame::Data {
                    stream,
                    fin,
                    payload: Bytes::copy_from_slice(&payload),
                },
                f => f,
            };
            self.handle_frame(frame, now)?;
        }
        Ok(())
    }

    /// The connection ended with `rest` unparsed: clean between frames, an error inside one.
    pub fn handle_eof(&mut self, rest: &[u8]) -> Result<(), Arc<ProtocolError>> {
        if !rest.is_empty() {
            return Err(self.fail(ProtocolError::TruncatedFrame));
        }
        self.shut(None, "session closed");
        Ok(())
    }

    /// Applies one received frame.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), Arc<ProtocolError>> {
        if self.closed {
            return Ok(());
        }
        self.last_rx = self.last_rx.max(now);
        match self.apply(frame, now) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn apply(&mut self, frame: Frame, now: Instant) -> Result<(), ProtocolError> {
        match frame {
            Frame::Control(p) => self.events.push_back(Event::Control(p)),
            Frame::Open { stream, meta } => self.on_open(stream, meta)?,
            Frame::Data {
                stream,
                fin,
                payload,
            } => self.on_data(stream, fin, payload),
            Frame::Window { stream, increment } => self.on_window(stream, increment),
            Frame::Reset { stream, reason } => {
                self.kill(stream, format!("reset by peer: {reason}"), false);
            }
            Frame::Ping(t) => self.queue(Frame::Pong(t)),
            Frame::Pong(t) => {
                let sent = self.epoch + Duration::from_micros(t);
                self.rtt = now
                    .saturating_duration_since(sent)
                    .max(Duration::from_micros(1));
            }
            Frame::GoAway(reason) => {
                tracing::debug!(%reason, "peer is going away");
                // Nobody reads what is still queued.
                self.out.clear();
                self.shut(None, "session closed");
            }
        }
        Ok(())
    }

    pub(super) fn insert(&mut self, id: u32) {
        let s = StreamCore::new(
            self.cfg.max_window,
            self.session_budget.clone(),
            self.cfg.process_budget.clone(),
        );
        self.streams.insert(id, s);
        self.live += 1;
    }

    /// Marks a stream reset, telling the peer when `tell`; its state stays until the
    /// driver releases it, so the reason can still be read.
    pub(super) fn kill(&mut self, id: u32, reason: String, tell: bool) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset.is_some() {
            return;
        }
        s.reset = Some(reason.clone());
        self.live -= 1;
        self.events.push_back(Event::Reset(id));
        if tell {
            self.queue(Frame::Reset { stream: id, reason });
        }
    }

    /// Sends a control message.
    pub fn send_control(&mut self, payload: Bytes) -> Result<(), ProtocolError> {
        if self.closed {
            return Err(ProtocolError::Closed);
        }
        self.queue(Frame::Control(payload));
        Ok(())
    }

    /// Queues a frame unless the session is over: nothing follows our goodbye.
    pub(super) fn queue(&mut self, frame: Frame) {
        if !self.closed {
            self.out.push_back(frame);
        }
    }

    /// Heartbeat bookkeeping at `now`: pings when one is due, closes the session with
    /// [`ProtocolError::HeartbeatTimeout`] once the peer has been silent too long.
    pub fn tick(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let silent = now.saturating_duration_since(self.last_rx);
        if silent > self.cfg.heartbeat_timeout {
            let err = ProtocolError::HeartbeatTimeout(silent);
            tracing::debug!(%err, "peer silent");
            self.fail(err);
            return;
        }
        if now >= self.next_ping {
            let token = now.saturating_duration_since(self.epoch).as_micros() as u64;
            self.queue(Frame::Ping(token));
            self.next_ping = now + self.cfg.heartbeat_interval;
        }
    }

    /// When [`Machine::tick`] next has work; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dead = self.last_rx + self.cfg.heartbeat_timeout + Duration::from_micros(1);
        (!self.closed).then(|| self.next_ping.min(dead))
    }

    /// Says goodbye: a GoAway is queued last, every stream ends, and the driver writes
    /// out what is queued and then shuts the connection.
    pub fn close(&mut self, reason: &str) {
        if self.closed {
            return;
        }
        self.queue(Frame::GoAway(reason.to_string()));
        self.shut(None, reason);
    }

    /// The transport failed; the session ends with `err`.
    pub fn handle_error(&mut self, err: ProtocolError) -> Arc<ProtocolError> {
        self.fail(err)
    }

    fn fail(&mut self, err: ProtocolError) -> Arc<ProtocolError> {
        let err = Arc::new(err);
        if !self.closed {
            // The connection is going down: queued frames would never be read.
            self.out.clear();
            self.shut(Some(err.clone()), &err.to_string());
        }
        err
    }

    fn shut(&mut self, err: Option<Arc<ProtocolError>>, reason: &str) {
        // The end is reported once: a peer's goodbye is usually followed by its EOF.
        if self.closed {
            return;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.kill(id, reason.to_string(), false);
        }
        self.closed = true;
        self.events.push_back(Event::Closed(err));
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next frame to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    /// Moves queued frames into `batch` until it holds about `limit` bytes.
    pub fn transmit(&mut self, batch: &mut super::WriteBatch, limit: usize) {
        while batch.len() < limit {
            match self.out.pop_front() {
                Some(f) => batch.push(&f),
                None => break,
            }
        }
    }

    /// Whether frames wait to be written.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether the session has ended (frames may still wait to be written).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Latest measured round-trip time (zero until the first pong).
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// Changes the largest frame payload accepted from now on.
    pub fn set_max_frame(&mut self, max: u32) {
        self.max_frame = max;
    }

    /// Streams open now (neither reset nor released): what the limit counts.
    pub fn open_streams(&self) -> usize {
        self.live
    }

    /// Streams whose state is still held, including reset ones not yet released.
    pub fn held_streams(&self) -> usize {
        self.streams.len()
    }
}
