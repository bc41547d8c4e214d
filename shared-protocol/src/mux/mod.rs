//! The stream multiplexer: many streams over one byte connection (a TLS session).
//!
//! The protocol logic is a sans-IO state machine ([`Machine`]: frames and bytes in, frames
//! and events out, time passed in); a thin tokio shell per connection drives it with a
//! reader, a writer that coalesces queued frames into large (vectored) writes, and a timer
//! for heartbeats. Streams hold credit-based flow control, so the bytes queued toward the
//! writer never exceed the sum of the peer's windows.

mod batch;
mod core_stream;
mod machine;
mod shell;
mod splice;
mod stream;
#[cfg(test)]
mod tests;

pub use batch::WriteBatch;
pub use machine::{Event, Machine, StreamError, StreamStats};
pub use splice::{
    pump_from_mux, pump_from_mux_observed, pump_to_mux, pump_to_mux_observed, pump_to_mux_or,
    splice, SpliceStats,
};
pub use stream::MuxStream;

use crate::frame::DEFAULT_MAX_FRAME;
use crate::window::{
    WindowBudget, DEFAULT_MAX_WINDOW, DEFAULT_PROCESS_BUDGET, DEFAULT_SESSION_BUDGET,
};
use crate::ProtocolError;
use bytes::{Bytes, BytesMut};
use shell::{Conn, Phase};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Which end of the session we are; it decides the parity of the stream ids we open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The agent: opens even stream ids.
    Agent,
    /// The relay: opens odd stream ids.
    Relay,
}

/// Limits and timers of a mux session.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// Our end of the session.
    pub role: Role,
    /// Largest frame payload accepted.
    pub max_frame: u32,
    /// Ceiling for per-stream window auto-tuning.
    pub max_window: u32,
    /// Most bytes all of this session's windows may grow beyond their initial size.
    pub session_budget: u64,
    /// Shared by every session of the process: the most all their windows may grow.
    pub process_budget: Arc<WindowBudget>,
    /// Most streams open at once; more are refused with a reset.
    pub max_streams: usize,
    /// How often to ping.
    pub heartbeat_interval: Duration,
    /// Silence after which the peer is declared dead.
    pub heartbeat_timeout: Duration,
}

impl MuxConfig {
    /// Defaults for the given role.
    pub fn new(role: Role) -> Self {
        MuxConfig {
            role,
            max_frame: DEFAULT_MAX_FRAME,
            max_window: DEFAULT_MAX_WINDOW,
            session_budget: DEFAULT_SESSION_BUDGET,
            process_budget: WindowBudget::new(DEFAULT_PROCESS_BUDGET),
            max_streams: 16_384,
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(8),
        }
    }
}

/// What the session delivers to its owner.
#[derive(Debug)]
pub enum MuxEvent {
    /// A control message from the peer.
    Control(Bytes),
    /// The peer opened a stream with this metadata.
    Stream(Bytes, MuxStream),
    /// The session ended; `None` for a clean close by the peer.
    Closed(Option<Arc<ProtocolError>>),
}

/// A cloneable handle to a running session: open streams, send control messages, close.
#[derive(Clone)]
pub struct MuxHandle {
    conn: Arc<Conn>,
}

impl std::fmt::Debug for MuxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxHandle")
            .field("streams", &self.open_streams())
            .finish()
    }
}

impl MuxHandle {
    /// Opens a stream carrying `meta` in its open frame.
    pub fn open(&self, meta: Bytes) -> Result<MuxStream, ProtocolError> {
        let id = self.conn.with(|c| c.open(meta))?;
        Ok(MuxStream::new(id, self.conn.clone()))
    }

    /// Sends a control message.
    pub fn send_control(&self, payload: Bytes) -> Result<(), ProtocolError> {
        self.conn.with(|c| c.send_control(payload))
    }

    /// Tells the peer we are going away: the goodbye is written after everything queued,
    /// then the connection is shut.
    pub fn close(&self, reason: &str) {
        self.conn.with(|c| c.close(reason));
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        !self.conn.is_open()
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        let mut rx = self.conn.phase.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Open).await;
    }

    /// Latest measured round-trip time (zero until the first pong).
    pub fn rtt(&self) -> Duration {
        self.conn.lock().core.rtt()
    }

    /// Changes the largest frame payload accepted from now on: a relay keeps it small
    /// until the agent has authenticated, so a stranger cannot make it buffer much.
    pub fn set_max_frame(&self, max: u32) {
        self.conn.lock().core.set_max_frame(max);
    }

    /// Streams currently open.
    pub fn open_streams(&self) -> usize {
        self.conn.lock().core.open_streams()
    }
}

/// Starts a session over `io`; returns its handle and the receiver of its events.
pub fn start<T>(io: T, cfg: MuxConfig) -> (MuxHandle, mpsc::UnboundedReceiver<MuxEvent>)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    start_with(io, cfg, BytesMut::new())
}

/// Starts a session over `io` whose first bytes were already read into `initial` (a
/// relay reads a lane's first frame itself to learn which session it joins).
pub fn start_with<T>(
    io: T,
    cfg: MuxConfig,
    initial: BytesMut,
) -> (MuxHandle, mpsc::UnboundedReceiver<MuxEvent>)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let conn = Conn::new(Machine::new(cfg, shell::now()), events_tx);
    shell::spawn(io, conn.clone(), initial);
    (MuxHandle { conn }, events_rx)
}
