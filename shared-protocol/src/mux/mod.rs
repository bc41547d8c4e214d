//! The stream multiplexer: many streams over one byte connection (a TLS session).
//!
//! Three tasks drive a session: a reader that decodes frames and routes them to streams,
//! a writer that coalesces queued frames into large writes, and a heartbeat that pings and
//! declares the peer dead after a silence. Streams hold credit-based flow control, so the
//! bytes queued toward the writer never exceed the sum of the peer's windows.

mod splice;
mod stream;

pub use splice::{
    pump_from_mux, pump_from_mux_observed, pump_to_mux, pump_to_mux_observed, pump_to_mux_or,
    splice, SpliceStats,
};
pub use stream::MuxStream;

use crate::frame::{Frame, FrameDecoder, DEFAULT_MAX_FRAME};
use crate::window::{
    RecvWindow, WindowBudget, DEFAULT_MAX_WINDOW, DEFAULT_PROCESS_BUDGET, DEFAULT_SESSION_BUDGET,
};
use crate::ProtocolError;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

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

pub(crate) struct StreamState {
    pub(crate) recv: std::collections::VecDeque<Bytes>,
    pub(crate) recv_fin: bool,
    pub(crate) reset: Option<String>,
    pub(crate) read_waker: Option<std::task::Waker>,
    pub(crate) window: RecvWindow,
    pub(crate) credit: u64,
    pub(crate) write_waker: Option<std::task::Waker>,
    pub(crate) sent_fin: bool,
}

pub(crate) struct StreamShared {
    pub(crate) id: u32,
    pub(crate) state: Mutex<StreamState>,
}

impl StreamShared {
    fn new(id: u32, shared: &Shared) -> Arc<Self> {
        Arc::new(StreamShared {
            id,
            state: Mutex::new(StreamState {
                recv: Default::default(),
                recv_fin: false,
                reset: None,
                read_waker: None,
                window: RecvWindow::new(
                    shared.cfg.max_window,
                    shared.session_budget.clone(),
                    shared.cfg.process_budget.clone(),
                ),
                credit: crate::window::INITIAL_WINDOW as u64,
                write_waker: None,
                sent_fin: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        // A poisoned lock means a panic elsewhere; the state itself is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, reason: &str) {
        let mut st = self.lock();
        if st.reset.is_none() {
            st.reset = Some(reason.to_string());
        }
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
        if let Some(w) = st.write_waker.take() {
            w.wake();
        }
    }
}

pub(crate) struct Shared {
    pub(crate) cfg: MuxConfig,
    pub(crate) tx: mpsc::UnboundedSender<Frame>,
    pub(crate) streams: Mutex<HashMap<u32, Arc<StreamShared>>>,
    next_id: AtomicU32,
    pub(crate) rtt_micros: AtomicU64,
    closed: AtomicBool,
    close_tx: watch::Sender<bool>,
    epoch: Instant,
    last_rx_micros: AtomicU64,
    /// Largest frame payload accepted now (raised once a peer has authenticated).
    max_frame: AtomicU32,
    session_budget: Arc<WindowBudget>,
}

impl Shared {
    pub(crate) fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<StreamShared>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn send(&self, frame: Frame) -> bool {
        self.tx.send(frame).is_ok()
    }

    pub(crate) fn forget(&self, id: u32) {
        self.streams().remove(&id);
    }

    fn now_micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn shut(&self, reason: &str) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.close_tx.send(true);
        let streams: Vec<_> = self.streams().drain().map(|(_, s)| s).collect();
        for s in streams {
            s.fail(reason);
        }
    }
}

/// A cloneable handle to a running session: open streams, send control messages, close.
#[derive(Clone)]
pub struct MuxHandle {
    shared: Arc<Shared>,
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
        if self.is_closed() {
            return Err(ProtocolError::Closed);
        }
        let id = self.shared.next_id.fetch_add(2, Ordering::Relaxed);
        let st = StreamShared::new(id, &self.shared);
        {
            let mut streams = self.shared.streams();
            if streams.len() >= self.shared.cfg.max_streams {
                return Err(ProtocolError::Malformed {
                    kind: "open",
                    reason: format!("too many streams (limit {})", self.shared.cfg.max_streams),
                });
            }
            streams.insert(id, st.clone());
        }
        if !self.shared.send(Frame::Open { stream: id, meta }) {
            self.shared.forget(id);
            return Err(ProtocolError::Closed);
        }
        Ok(MuxStream::new(st, self.shared.clone()))
    }

    /// Sends a control message.
    pub fn send_control(&self, payload: Bytes) -> Result<(), ProtocolError> {
        if self.shared.send(Frame::Control(payload)) {
            Ok(())
        } else {
            Err(ProtocolError::Closed)
        }
    }

    /// Tells the peer we are going away and closes the session once queued frames are out.
    pub fn close(&self, reason: &str) {
        self.shared.send(Frame::GoAway(reason.to_string()));
        // The writer drains what is queued before it sees the close signal.
        let shared = self.shared.clone();
        let reason = reason.to_string();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    shared.shut(&reason);
                });
            }
            // The runtime is already gone (process exit): nothing is left to drain.
            Err(_) => shared.shut(&reason),
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        let mut rx = self.shared.close_tx.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Latest measured round-trip time (zero until the first pong).
    pub fn rtt(&self) -> Duration {
        self.shared.rtt()
    }

    /// Changes the largest frame payload accepted from now on: a relay keeps it small
    /// until the agent has authenticated, so a stranger cannot make it buffer much.
    pub fn set_max_frame(&self, max: u32) {
        self.shared.max_frame.store(max, Ordering::Relaxed);
    }

    /// Streams currently open.
    pub fn open_streams(&self) -> usize {
        self.shared.streams().len()
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
    let (tx, rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let cfg_max_frame = cfg.max_frame;
    let session_budget = cfg.session_budget;
    let (close_tx, _) = watch::channel(false);
    let first_id = match cfg.role {
        Role::Relay => 1,
        Role::Agent => 2,
    };
    let shared = Arc::new(Shared {
        cfg,
        tx,
        streams: Mutex::new(HashMap::new()),
        next_id: AtomicU32::new(first_id),
        rtt_micros: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        close_tx,
        epoch: Instant::now(),
        last_rx_micros: AtomicU64::new(0),
        max_frame: AtomicU32::new(cfg_max_frame),
        session_budget: WindowBudget::new(session_budget),
    });
    let (r, w) = tokio::io::split(io);
    tokio::spawn(writer(w, rx, shared.clone()));
    tokio::spawn(heartbeat(shared.clone()));
    let s = shared.clone();
    tokio::spawn(async move {
        let mut closed = s.close_tx.subscribe();
        let result = tokio::select! {
            r = reader(r, initial, &s, &events_tx) => r,
            _ = closed.wait_for(|c| *c) => Ok(()),
        };
        let err = result.err().map(Arc::new);
        let reason = err
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "session closed".into());
        s.shut(&reason);
        let _ = events_tx.send(MuxEvent::Closed(err));
    });
    (MuxHandle { shared }, events_rx)
}

/// Coalescing stops adding frames to a write past this many bytes.
const WRITE_BATCH: usize = 256 * 1024;

async fn writer<W: AsyncWrite>(w: W, mut rx: mpsc::UnboundedReceiver<Frame>, shared: Arc<Shared>) {
    tokio::pin!(w);
    let mut closed = shared.close_tx.subscribe();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => f,
            _ = closed.wait_for(|c| *c) => None,
        };
        let Some(first) = first else { break };
        first.encode(&mut buf);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(f) => f.encode(&mut buf),
                Err(_) => break,
            }
        }
        if let Err(e) = async {
            w.write_all(&buf).await?;
            w.flush().await
        }
        .await
        {
            shared.shut(&format!("write failed: {e}"));
            break;
        }
        buf.clear();
        // Give back a buffer a bulk burst inflated, so idle sessions stay small.
        if buf.capacity() > WRITE_BATCH * 2 {
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
    let _ = w.shutdown().await;
}

async fn heartbeat(shared: Arc<Shared>) {
    let mut closed = shared.close_tx.subscribe();
    let mut tick = tokio::time::interval(shared.cfg.heartbeat_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closed.wait_for(|c| *c) => return,
        }
        let now = shared.now_micros();
        let silent = Duration::from_micros(now - shared.last_rx_micros.load(Ordering::Relaxed));
        if silent > shared.cfg.heartbeat_timeout {
            let err = ProtocolError::HeartbeatTimeout(silent);
            tracing::debug!(%err, "peer silent");
            shared.shut(&err.to_string());
            return;
        }
        if !shared.send(Frame::Ping(now)) {
            return;
        }
    }
}

async fn reader<R: AsyncRead>(
    r: R,
    mut buf: BytesMut,
    shared: &Arc<Shared>,
    events: &mpsc::UnboundedSender<MuxEvent>,
) -> Result<(), ProtocolError> {
    tokio::pin!(r);
    buf.reserve(16 * 1024);
    loop {
        let decoder = FrameDecoder::new(shared.max_frame.load(Ordering::Relaxed));
        while let Some(frame) = decoder.decode(&mut buf)? {
            if !handle(frame, shared, events)? {
                return Ok(());
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        if r.read_buf(&mut buf).await? == 0 {
            if decoder.decode_eof(&mut buf)?.is_some() {
                return Err(ProtocolError::TruncatedFrame);
            }
            return Ok(());
        }
        shared
            .last_rx_micros
            .store(shared.now_micros(), Ordering::Relaxed);
    }
}

/// Routes one received frame; `Ok(false)` when the peer said goodbye.
fn handle(
    frame: Frame,
    shared: &Arc<Shared>,
    events: &mpsc::UnboundedSender<MuxEvent>,
) -> Result<bool, ProtocolError> {
    let lookup = |id: u32| shared.streams().get(&id).cloned();
    match frame {
        Frame::Control(p) => {
            let _ = events.send(MuxEvent::Control(p));
        }
        Frame::Open { stream, meta } => {
            let theirs = match shared.cfg.role {
                Role::Relay => stream % 2 == 0,
                Role::Agent => stream % 2 == 1,
            };
            if !theirs {
                return Err(ProtocolError::Malformed {
                    kind: "open",
                    reason: format!("stream id {stream} has our parity"),
                });
            }
            let st = StreamShared::new(stream, shared);
            {
                let mut streams = shared.streams();
                if streams.contains_key(&stream) {
                    return Err(ProtocolError::Malformed {
                        kind: "open",
                        reason: format!("stream {stream} is already open"),
                    });
                }
                if streams.len() >= shared.cfg.max_streams {
                    drop(streams);
                    shared.send(Frame::Reset {
                        stream,
                        reason: "too many streams".into(),
                    });
                    return Ok(true);
                }
                streams.insert(stream, st.clone());
            }
            let _ = events.send(MuxEvent::Stream(meta, MuxStream::new(st, shared.clone())));
        }
        Frame::Data {
            stream,
            fin,
            payload,
        } => {
            // Copy out of the read buffer so it stays uniquely owned and is reused in
            // place; holding slices of it would force a fresh allocation per read.
            let payload = Bytes::copy_from_slice(&payload);
            // Data for a stream we already dropped is late, not wrong: we reset it.
            let Some(st) = lookup(stream) else {
                return Ok(true);
            };
            let mut s = st.lock();
            if !s.window.on_received(payload.len()) {
                drop(s);
                let err = ProtocolError::WindowExceeded(stream);
                shared.send(Frame::Reset {
                    stream,
                    reason: err.to_string(),
                });
                shared.forget(stream);
                st.fail(&err.to_string());
                return Ok(true);
            }
            if !payload.is_empty() {
                s.recv.push_back(payload);
            }
            s.recv_fin |= fin;
            if let Some(w) = s.read_waker.take() {
                w.wake();
            }
        }
        Frame::Window { stream, increment } => {
            if let Some(st) = lookup(stream) {
                let mut s = st.lock();
                s.credit += increment as u64;
                if let Some(w) = s.write_waker.take() {
                    w.wake();
                }
            }
        }
        Frame::Reset { stream, reason } => {
            if let Some(st) = shared.streams().remove(&stream) {
                st.fail(&format!("reset by peer: {reason}"));
            }
        }
        Frame::Ping(t) => {
            shared.send(Frame::Pong(t));
        }
        Frame::Pong(t) => {
            let rtt = shared.now_micros().saturating_sub(t).max(1);
            shared.rtt_micros.store(rtt, Ordering::Relaxed);
        }
        Frame::GoAway(reason) => {
            tracing::debug!(%reason, "peer is going away");
            return Ok(false);
        }
    }
    Ok(true)
}
