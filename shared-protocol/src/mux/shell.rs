//! The tokio shell around the sans-IO [`Machine`]: one reader task feeds it what the
//! connection reads, one writer task writes what it queues, one timer task calls its
//! `tick`. Stream handles drive it from their own tasks through an uncontended mutex; the
//! wakers they park live here, in each stream's driver slot, not in the protocol logic.

use super::batch::{WriteBatch, MAX_SLICES};
use super::machine::{Event, Machine};
use super::{MuxEvent, MuxStream};
use crate::ProtocolError;
use bytes::BytesMut;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};

/// Coalescing stops adding frames to a write past this many bytes.
const WRITE_BATCH: usize = 256 * 1024;
/// Room kept free in the read buffer, so one read takes whatever has arrived.
const READ_SPACE: usize = 64 * 1024;

/// Where the session is; the reader, the timer and `MuxHandle::closed` watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// Ended; the writer still sends what was queued (a goodbye last).
    Closed,
    /// Ended on an error: nothing more is worth writing.
    Failed,
}

/// The wakers of one stream's handle.
#[derive(Default)]
pub(crate) struct Wakers {
    pub(crate) read: Option<Waker>,
    pub(crate) write: Option<Waker>,
}

pub(crate) fn park(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

pub(crate) struct Inner {
    pub(crate) core: Machine<Wakers>,
    writer_idle: bool,
    events: mpsc::UnboundedSender<MuxEvent>,
}

/// One connection's machine and what its tasks wait on.
pub(crate) struct Conn {
    inner: Mutex<Inner>,
    writer: Notify,
    pub(crate) phase: watch::Sender<Phase>,
}

/// Work left over from a locked section, done once the lock is released: waking tasks
/// and dropping handles (a handle's drop takes the lock again).
#[derive(Default)]
struct After {
    /// Most calls wake one task at most: it needs no allocation.
    first: Option<Waker>,
    more: Vec<Waker>,
    drop: Vec<MuxEvent>,
}

impl After {
    fn wake_later(&mut self, w: Option<Waker>) {
        let Some(w) = w else { return };
        match self.first {
            None => self.first = Some(w),
            Some(_) => self.more.push(w),
        }
    }

    fn run(self) {
        self.first
            .into_iter()
            .chain(self.more)
            .for_each(Waker::wake);
        drop(self.drop);
    }
}

/// The shell's clock: tokio's, so paused-time tests drive the heartbeat too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Conn {
    pub(crate) fn new(core: Machine<Wakers>, events: mpsc::UnboundedSender<MuxEvent>) -> Arc<Self> {
        Arc::new(Conn {
            inner: Mutex::new(Inner {
                core,
                writer_idle: false,
                events,
            }),
            writer: Notify::new(),
            phase: watch::channel(Phase::Open).0,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere; the machine itself is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the machine, then hands its events out and wakes whoever they concern.
    pub(crate) fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Machine<Wakers>) -> R) -> R {
        let mut after = After::default();
        let r = {
            let mut inner = self.lock();
            let r = f(&mut inner.core);
            self.dispatch(&mut inner, &mut after);
            r
        };
        after.run();
        r
    }

    fn dispatch(self: &Arc<Self>, inner: &mut Inner, after: &mut After) {
        while let Some(ev) = inner.core.poll_event() {
            let out = match ev {
                Event::Control(p) => MuxEvent::Control(p),
                Event::Opened { id, meta } => {
                    MuxEvent::Stream(meta, MuxStream::new(id, self.clone()))
                }
                Event::Readable(id) => {
                    after.wake_later(inner.core.user(id).and_then(|w| w.read.take()));
                    continue;
                }
                Event::Writable(id) => {
                    after.wake_later(inner.core.user(id).and_then(|w| w.write.take()));
                    continue;
                }
                Event::Reset(id) => {
                    if let Some(w) = inner.core.user(id) {
                        let (read, write) = (w.read.take(), w.write.take());
                        after.wake_later(read);
                        after.wake_later(write);
                    }
                    continue;
                }
                Event::Closed(err) => {
                    let phase = if err.is_some() {
                        Phase::Failed
                    } else {
                        Phase::Closed
                    };
                    self.phase.send_replace(phase);
                    MuxEvent::Closed(err)
                }
            };
            // Sent under the lock so events keep their order; a handle coming back
            // because nobody listens any more is dropped after it.
            if let Err(mpsc::error::SendError(ev)) = inner.events.send(out) {
                after.drop.push(ev);
            }
        }
        if inner.writer_idle && (inner.core.has_transmit() || inner.core.is_closed()) {
            inner.writer_idle = false;
            self.writer.notify_one();
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        *self.phase.borrow() == Phase::Open
    }
}

/// Spawns the three tasks of a session over `io`, whose first bytes are `initial`.
pub(crate) fn spawn<T>(io: T, conn: Arc<Conn>, initial: BytesMut)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    tokio::spawn(writer(w, conn.clone()));
    tokio::spawn(timer(conn.clone()));
    tokio::spawn(async move {
        let mut phase = conn.phase.subscribe();
        tokio::select! {
            _ = reader(r, initial, &conn) => {}
            _ = phase.wait_for(|p| *p != Phase::Open) => {}
        }
    });
}

async fn reader<R: AsyncRead>(r: R, mut buf: BytesMut, conn: &Arc<Conn>) {
    tokio::pin!(r);
    loop {
        if !buf.is_empty() && conn.with(|c| c.handle_bytes(&mut buf, now())).is_err() {
            return;
        }
        if buf.capacity() - buf.len() < READ_SPACE / 4 {
            buf.reserve(READ_SPACE);
        }
        match r.read_buf(&mut buf).await {
            Ok(0) => return conn.with(|c| drop(c.handle_eof(&buf))),
            Ok(_) => {}
            Err(e) => return conn.with(|c| drop(c.handle_error(ProtocolError::Io(e)))),
        }
    }
}

async fn timer(conn: Arc<Conn>) {
    let mut phase = conn.phase.subscribe();
    loop {
        let Some(deadline) = conn.lock().core.poll_timeout() else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = phase.wait_for(|p| *p != Phase::Open) => return,
        }
        conn.with(|c| c.tick(now()));
    }
}

async fn writer<W: AsyncWrite>(w: W, conn: Arc<Conn>) {
    tokio::pin!(w);
    let mut batch = WriteBatch::new(w.is_write_vectored());
    let mut phase = conn.phase.subscribe();
    loop {
        let done = {
            let mut inner = conn.lock();
            inner.core.transmit(&mut batch, WRITE_BATCH);
            let done = batch.is_empty() && inner.core.is_closed();
            inner.writer_idle = batch.is_empty();
            done
        };
        if done {
            break;
        }
        if batch.is_empty() {
            conn.writer.notified().await;
            continue;
        }
        let result = tokio::select! {
            r = write_batch(w.as_mut(), &mut batch) => r,
            _ = phase.wait_for(|p| *p == Phase::Failed) => break,
        };
        if let Err(e) = result {
            conn.with(|c| drop(c.handle_error(ProtocolError::Io(e))));
            break;
        }
        batch.shrink(WRITE_BATCH * 2);
    }
    let _ = w.shutdown().await;
}

async fn write_batch<W: AsyncWrite>(
    mut w: Pin<&mut W>,
    batch: &mut WriteBatch,
) -> std::io::Result<()> {
    while !batch.is_empty() {
        let n = match batch.contiguous() {
            Some(buf) => w.write(buf).await?,
            None => {
                poll_fn(|cx| {
                    let mut slots = [IoSlice::new(&[]); MAX_SLICES];
                    let k = batch.slices(&mut slots);
                    w.as_mut().poll_write_vectored(cx, &slots[..k])
                })
                .await?
            }
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        batch.advance(n);
    }
    w.flush().await
}
