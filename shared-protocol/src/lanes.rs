//! The lanes of one agent session: several TLS connections, each its own mux living on one
//! worker thread, so a public connection served on a worker can reach the agent through a
//! lane on that same thread and its bytes never wait for another thread to wake up.

use crate::frame::{Frame, FrameDecoder};
use crate::mux::{MuxHandle, MuxStream};
use crate::ProtocolError;
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::ThreadId;
use tokio::io::{AsyncRead, AsyncReadExt};

/// One lane: a mux and the worker thread that drives it.
struct Lane {
    /// Position of the lane's worker in its owner's worker pool.
    worker: usize,
    /// The thread that worker runs on.
    thread: ThreadId,
    mux: MuxHandle,
}

/// The live lanes of a session; cloning shares them.
#[derive(Clone, Default)]
pub struct Lanes {
    lanes: Arc<RwLock<Vec<Lane>>>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").field("live", &self.live()).finish()
    }
}

thread_local! {
    static THREAD: ThreadId = std::thread::current().id();
}

fn this_thread() -> ThreadId {
    THREAD.with(|t| *t)
}

impl Lanes {
    /// No lanes yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Lane>> {
        // A poisoned lock means a panic elsewhere; the list itself is still whole.
        self.lanes.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a lane driven by worker `worker` of the pool; must be called on that worker's
    /// thread, which is how streams opened there find it.
    pub fn add(&self, worker: usize, mux: MuxHandle) {
        let lane = Lane {
            worker,
            thread: this_thread(),
            mux,
        };
        let mut lanes = self.lanes.write().unwrap_or_else(|e| e.into_inner());
        lanes.retain(|l| !l.mux.is_closed());
        lanes.push(lane);
    }

    /// Forgets lanes whose mux has ended; returns how many are left.
    pub fn prune(&self) -> usize {
        let mut lanes = self.lanes.write().unwrap_or_else(|e| e.into_inner());
        lanes.retain(|l| !l.mux.is_closed());
        lanes.len()
    }

    /// Lanes whose mux is still running.
    pub fn live(&self) -> usize {
        self.read().iter().filter(|l| !l.mux.is_closed()).count()
    }

    /// Pool positions of the workers that drive a live lane.
    pub fn workers(&self) -> Vec<usize> {
        self.read()
            .iter()
            .filter(|l| !l.mux.is_closed())
            .map(|l| l.worker)
            .collect()
    }

    /// Whether no lane is left running.
    pub fn is_closed(&self) -> bool {
        self.read().iter().all(|l| l.mux.is_closed())
    }

    /// Whether the calling thread drives a live lane of this session.
    pub fn here(&self) -> bool {
        let me = this_thread();
        self.read()
            .iter()
            .any(|l| l.thread == me && !l.mux.is_closed())
    }

    /// Opens a stream on the lane of the calling thread, or else on the next live lane in
    /// turn (a connection served on a worker without a lane of this session).
    pub fn open(&self, meta: Bytes) -> Result<MuxStream, ProtocolError> {
        self.open_noting(meta).map(|(stream, _)| stream)
    }

    /// As [`Lanes::open`], also telling whether the stream is on the calling thread's lane.
    pub fn open_noting(&self, meta: Bytes) -> Result<(MuxStream, bool), ProtocolError> {
        let lanes = self.read();
        let me = this_thread();
        if let Some(l) = lanes.iter().find(|l| l.thread == me && !l.mux.is_closed()) {
            return Ok((l.mux.open(meta)?, true));
        }

        let live = || lanes.iter().filter(|l| !l.mux.is_closed());
        let n = live().count();
        if n == 0 {
            return Err(ProtocolError::Closed);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let lane = live().nth(i).ok_or(ProtocolError::Closed)?;
        Ok((lane.mux.open(meta)?, false))
    }

    /// Sends a control message on the oldest live lane, so control messages keep their
    /// order while that lane lives.
    pub fn send_control(&self, payload: Bytes) -> Result<(), ProtocolError> {
        let lanes = self.read();
        let lane = lanes.iter().find(|l| !l.mux.is_closed());
        lane.ok_or(ProtocolError::Closed)?.mux.send_control(payload)
    }

    /// Changes the largest frame payload every lane accepts (see `MuxHandle::set_max_frame`).
    pub fn set_max_frame(&self, max: u32) {
        for l in self.read().iter() {
            l.mux.set_max_frame(max);
        }
    }

    /// Closes every lane.
    pub fn close(&self, reason: &str) {
        for l in self.read().iter() {
            l.mux.close(reason);
        }
    }

    /// Streams open over all lanes.
    pub fn open_streams(&self) -> usize {
        self.read().iter().map(|l| l.mux.open_streams()).sum()
    }

    /// Round-trip time measured on the oldest live lane.
    pub fn rtt(&self) -> std::time::Duration {
        self.read()
            .iter()
            .find(|l| !l.mux.is_closed())
            .map(|l| l.mux.rtt())
            .unwrap_or_default()
    }
}

/// Reads a connection's first control message before any mux runs on it (a relay learns
/// from it whether the connection authenticates a session or joins one as a lane, and so
/// which worker should drive it). Heartbeats ahead of it are skipped; anything else is
/// refused. Returns the message and whatever was read after it.
pub async fn read_first_control<R: AsyncRead + Unpin>(
    io: &mut R,
    max_frame: u32,
) -> Result<(Bytes, BytesMut), ProtocolError> {
    let decoder = FrameDecoder::new(max_frame);
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        while let Some(frame) = decoder.decode(&mut buf)? {
            match frame {
                Frame::Control(payload) => return Ok((payload, buf)),
                Frame::Ping(_) | Frame::Pong(_) => {}
                other => {
                    return Err(ProtocolError::Malformed {
                        kind: other.kind_name(),
                        reason: "a connection must start with a control message".into(),
                    })
                }
            }
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(match decoder.decode_eof(&mut buf)? {
                Some(_) => ProtocolError::TruncatedFrame,
                None => ProtocolError::Closed,
            });
        }
    }
}

/// Encodes a control message as a whole frame, for writing before a mux runs.
pub fn control_frame(payload: Bytes) -> BytesMut {
    let frame = Frame::Control(payload);
    let mut buf = BytesMut::with_capacity(frame.encoded_len());
    frame.encode(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::{self, MuxConfig, MuxEvent, Role};

    #[tokio::test]
    async fn first_control_skips_heartbeats_and_keeps_what_follows() {
        let mut wire = BytesMut::new();
        Frame::Ping(7).encode(&mut wire);
        Frame::Control(Bytes::from_static(b"hello")).encode(&mut wire);
        Frame::Ping(8).encode(&mut wire);
        let (msg, rest) = read_first_control(&mut &wire[..], 1024).await.unwrap();
        assert_eq!(&msg[..], b"hello");
        let mut ping = BytesMut::new();
        Frame::Ping(8).encode(&mut ping);
        assert_eq!(rest, ping);
    }

    #[tokio::test]
    async fn first_frame_must_be_control() {
        let mut wire = BytesMut::new();
        Frame::Open {
            stream: 2,
            meta: Bytes::new(),
        }
        .encode(&mut wire);
        let err = read_first_control(&mut &wire[..], 1024).await.unwrap_err();
        assert!(err.to_string().contains("control message"), "{err}");
        let err = read_first_control(&mut &b""[..], 1024).await.unwrap_err();
        assert!(matches!(err, ProtocolError::Closed), "{err}");
        let cut = &control_frame(Bytes::from_static(b"abc"))[..5];
        let err = read_first_control(&mut &cut[..], 1024).await.unwrap_err();
        assert!(matches!(err, ProtocolError::TruncatedFrame), "{err}");
    }

    /// Two muxes back to back over an in-memory pipe: the relay's handle and the agent's
    /// events.
    fn pair() -> (MuxHandle, tokio::sync::mpsc::UnboundedReceiver<MuxEvent>) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (relay, _) = mux::start(a, MuxConfig::new(Role::Relay));
        let (_, events) = mux::start(b, MuxConfig::new(Role::Agent));
        (relay, events)
    }

    #[tokio::test]
    async fn streams_go_to_the_callers_lane_and_skip_closed_ones() {
        let lanes = Lanes::new();
        assert!(lanes.is_closed());
        assert!(lanes.open(Bytes::new()).is_err());
        let (first, mut first_events) = pair();
        let (second, mut second_events) = pair();
        lanes.add(0, first.clone());
        lanes.add(1, second.clone());
        assert_eq!(lanes.live(), 2);
        // Both lanes were added on this thread; the first of them wins.
        let _s = lanes.open(Bytes::from_static(b"a")).unwrap();
        assert!(matches!(
            first_events.recv().await,
            Some(MuxEvent::Stream(..))
        ));
        first.close("gone");
        first.closed().await;
        assert_eq!(lanes.live(), 1);
        assert_eq!(lanes.workers(), vec![1]);
        let _t = lanes.open(Bytes::from_static(b"b")).unwrap();
        assert!(matches!(
            second_events.recv().await,
            Some(MuxEvent::Stream(..))
        ));
        lanes.send_control(Bytes::from_static(b"c")).unwrap();
        assert!(matches!(
            second_events.recv().await,
            Some(MuxEvent::Control(_))
        ));
        assert_eq!(lanes.prune(), 1);
        second.close("gone");
        second.closed().await;
        assert!(lanes.is_closed());
        assert!(lanes.send_control(Bytes::new()).is_err());
    }
}
