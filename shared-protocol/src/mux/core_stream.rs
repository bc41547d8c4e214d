//! One stream's state inside the sans-IO [`Machine`], and the operations a stream handle
//! performs on it: read, acknowledge, send within credit, half-close, reset, release.

use super::machine::{Event, Machine};
use super::Role;
use crate::frame::{Frame, MAX_DATA_CHUNK};
use crate::window::{RecvWindow, WindowBudget, INITIAL_WINDOW};
use crate::ProtocolError;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

/// Why an operation on a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream was reset (the text says by whom and why) or its session ended.
    #[error("stream {0}")]
    Reset(String),
    /// We already half-closed it.
    #[error("stream already half-closed")]
    Finished,
    /// More bytes than the peer's credit allows.
    #[error("stream has {credit} bytes of credit, {len} were sent")]
    NoCredit {
        /// Credit left.
        credit: u64,
        /// Bytes offered.
        len: usize,
    },
}

/// A snapshot of one stream's flow-control state, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes we may still send.
    pub credit: u64,
    /// Our receive window now.
    pub window: u32,
    /// Bytes the peer may still send us.
    pub peer_credit: u32,
    /// The most the peer may have in flight or buffered here: the window plus credit
    /// still withheld after it shrank.
    pub limit: u32,
    /// Bytes received and not yet read.
    pub buffered: usize,
    /// The peer half-closed.
    pub recv_fin: bool,
    /// We half-closed.
    pub sent_fin: bool,
    /// The stream was reset.
    pub reset: bool,
}

pub(super) struct StreamCore<U> {
    pub(super) recv: VecDeque<Bytes>,
    pub(super) buffered: usize,
    pub(super) recv_fin: bool,
    pub(super) reset: Option<String>,
    pub(super) window: RecvWindow,
    pub(super) credit: u64,
    pub(super) sent_fin: bool,
    pub(super) user: U,
}

impl<U: Default> StreamCore<U> {
    pub(super) fn new(max: u32, session: Arc<WindowBudget>, process: Arc<WindowBudget>) -> Self {
        StreamCore {
            recv: VecDeque::new(),
            buffered: 0,
            recv_fin: false,
            reset: None,
            window: RecvWindow::new(max, session, process),
            credit: INITIAL_WINDOW as u64,
            sent_fin: false,
            user: U::default(),
        }
    }
}

impl<U> StreamCore<U> {
    fn writable(&self) -> Result<(), StreamError> {
        if let Some(reason) = &self.reset {
            return Err(StreamError::Reset(reason.clone()));
        }
        if self.sent_fin {
            return Err(StreamError::Finished);
        }
        Ok(())
    }
}

fn gone() -> StreamError {
    StreamError::Reset("closed".into())
}

/// Received frames that concern one stream.
impl<U: Default> Machine<U> {
    pub(super) fn theirs(&self, id: u32) -> bool {
        match self.cfg.role {
            Role::Relay => id & 1 == 0,
            Role::Agent => id & 1 == 1,
        }
    }

    /// Whether `id` was ever opened, by either side.
    fn was_opened(&self, id: u32) -> bool {
        if self.theirs(id) {
            id <= self.peer_last_id
        } else {
            id < self.next_id
        }
    }

    pub(super) fn on_open(&mut self, id: u32, meta: Bytes) -> Result<(), ProtocolError> {
        let malformed = |reason: String| ProtocolError::Malformed {
            kind: "open",
            reason,
        };
        if !self.theirs(id) {
            return Err(malformed(format!("stream id {id} has our parity")));
        }
        if self.streams.contains_key(&id) {
            return Err(malformed(format!("stream {id} is already open")));
        }
        if id <= self.peer_last_id {
            return Err(malformed(format!("stream id {id} reused or out of order")));
        }
        self.peer_last_id = id;
        if self.live >= self.cfg.max_streams {
            self.queue(Frame::Reset {
                stream: id,
                reason: "too many streams".into(),
            });
            return Ok(());
        }
        self.insert(id);
        self.events.push_back(Event::Opened { id, meta });
        Ok(())
    }

    pub(super) fn on_data(&mut self, id: u32, fin: bool, payload: Bytes) {
        let Some(s) = self.streams.get_mut(&id) else {
            // Data for a stream we dropped is late: our reset is already on its way.
            // Data for one nobody opened gets a reset so the sender stops.
            if !self.was_opened(id) {
                self.queue(Frame::Reset {
                    stream: id,
                    reason: "unknown stream".into(),
                });
            }
            return;
        };
        if s.reset.is_some() {
            return;
        }
        if s.recv_fin {
            self.kill(id, "data after fin".into(), true);
            return;
        }
        if !s.window.on_received(payload.len()) {
            self.kill(id, ProtocolError::WindowExceeded(id).to_string(), true);
            return;
        }
        s.buffered += payload.len();
        if !payload.is_empty() {
            s.recv.push_back(payload);
        }
        s.recv_fin = fin;
        self.events.push_back(Event::Readable(id));
    }

    pub(super) fn on_window(&mut self, id: u32, increment: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.reset.is_none() {
                s.credit += increment as u64;
                if !s.sent_fin {
                    self.events.push_back(Event::Writable(id));
                }
            }
        }
    }
}

impl<U: Default> Machine<U> {
    /// The next received chunk of stream `id`: `Ready(Ok(None))` once the peer
    /// half-closed and everything before was read, `Pending` while nothing is there.
    /// The chunk's credit goes back to the peer only on [`Machine::ack`].
    pub fn poll_read(&mut self, id: u32) -> Poll<Result<Option<Bytes>, StreamError>> {
        let Some(s) = self.streams.get_mut(&id) else {
            return Poll::Ready(Err(gone()));
        };
        if let Some(chunk) = s.recv.pop_front() {
            s.buffered -= chunk.len();
            return Poll::Ready(Ok(Some(chunk)));
        }
        if s.recv_fin {
            return Poll::Ready(Ok(None));
        }
        if let Some(reason) = &s.reset {
            return Poll::Ready(Err(StreamError::Reset(reason.clone())));
        }
        Poll::Pending
    }

    /// Accounts for `len` bytes of stream `id` that left toward the reader at `now`,
    /// queueing a window update when one is due.
    pub fn ack(&mut self, id: u32, len: usize, now: Instant) {
        let rtt = self.rtt;
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        // After the peer's fin or a reset, more credit would never be used.
        if s.reset.is_some() || s.recv_fin {
            return;
        }
        if let Some(increment) = s.window.on_consumed(len, now, rtt) {
            self.queue(Frame::Window {
                stream: id,
                increment,
            });
        }
    }

    /// How many bytes stream `id` may send now (at most one data chunk); `Pending` at
    /// zero credit, until an [`Event::Writable`](super::machine::Event::Writable).
    pub fn poll_credit(&self, id: u32) -> Poll<Result<usize, StreamError>> {
        let Some(s) = self.streams.get(&id) else {
            return Poll::Ready(Err(gone()));
        };
        if let Err(e) = s.writable() {
            return Poll::Ready(Err(e));
        }
        match s.credit.min(MAX_DATA_CHUNK as u64) {
            0 => Poll::Pending,
            n => Poll::Ready(Ok(n as usize)),
        }
    }

    /// Queues `payload` on stream `id`; it must fit the credit. Large payloads go out
    /// in several frames, uncopied.
    pub fn send(&mut self, id: u32, mut payload: Bytes) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or_else(gone)?;
        s.writable()?;
        if payload.len() as u64 > s.credit {
            return Err(StreamError::NoCredit {
                credit: s.credit,
                len: payload.len(),
            });
        }
        s.credit -= payload.len() as u64;
        while !payload.is_empty() {
            let chunk = payload.split_to(payload.len().min(MAX_DATA_CHUNK));
            self.queue(Frame::Data {
                stream: id,
                fin: false,
                payload: chunk,
            });
        }
        Ok(())
    }

    /// Half-closes stream `id`: no more data follows.
    pub fn finish(&mut self, id: u32) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or_else(gone)?;
        if s.sent_fin {
            return Ok(());
        }
        if let Some(reason) = &s.reset {
            return Err(StreamError::Reset(reason.clone()));
        }
        s.sent_fin = true;
        self.queue(Frame::Data {
            stream: id,
            fin: true,
            payload: Bytes::new(),
        });
        Ok(())
    }

    /// Aborts stream `id` in both directions and forgets it.
    pub fn reset(&mut self, id: u32, reason: &str) {
        self.kill(id, reason.to_string(), true);
        self.release(id);
    }

    /// The handle of stream `id` is gone: its state is freed, and the peer is told with
    /// a reset unless both directions had already ended.
    pub fn release(&mut self, id: u32) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        if s.reset.is_none() {
            self.live -= 1;
            if !(s.sent_fin && s.recv_fin) {
                self.queue(Frame::Reset {
                    stream: id,
                    reason: "closed".into(),
                });
            }
        }
    }

    /// The driver's slot of stream `id`.
    pub fn user(&mut self, id: u32) -> Option<&mut U> {
        self.streams.get_mut(&id).map(|s| &mut s.user)
    }

    /// Flow-control state of stream `id`.
    pub fn stats(&self, id: u32) -> Option<StreamStats> {
        self.streams.get(&id).map(|s| StreamStats {
            credit: s.credit,
            window: s.window.size(),
            peer_credit: s.window.available(),
            limit: s.window.limit(),
            buffered: s.buffered,
            recv_fin: s.recv_fin,
            sent_fin: s.sent_fin,
            reset: s.reset.is_some(),
        })
    }
}
