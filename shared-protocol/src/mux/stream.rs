//! One multiplexed stream: chunk-level `recv`/`send` plus `AsyncRead`/`AsyncWrite`.
//!
//! A handle is an id and the connection's shell; each call locks the connection's
//! machine, acts, and parks its waker in the stream's slot when it must wait.

use super::shell::{now, park, Conn};
use super::StreamError;
use bytes::Bytes;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bidirectional byte stream inside a mux session, with its own flow control.
pub struct MuxStream {
    id: u32,
    conn: Arc<Conn>,
    /// The rest of a chunk `poll_read` could not hand over in one go.
    pending: Bytes,
    /// Payload bytes sent and received so far, for the relay's per-tunnel traffic.
    sent: AtomicU64,
    received: AtomicU64,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream").field("id", &self.id).finish()
    }
}

fn io_error(kind: io::ErrorKind, e: StreamError) -> io::Error {
    io::Error::new(kind, e.to_string())
}

impl MuxStream {
    pub(crate) fn new(id: u32, conn: Arc<Conn>) -> Self {
        MuxStream {
            id,
            conn,
            pending: Bytes::new(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    /// Payload bytes (sent, received) on this stream so far.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The current receive window (grows with auto-tuning).
    pub fn window(&self) -> u32 {
        let inner = self.conn.lock();
        inner.core.stats(self.id).map_or(0, |s| s.window)
    }

    /// Bytes received and not yet read.
    pub fn buffered(&self) -> usize {
        let inner = self.conn.lock();
        self.pending.len() + inner.core.stats(self.id).map_or(0, |s| s.buffered)
    }

    /// Polls for the next received chunk; `None` once the peer half-closed.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.pending))));
        }
        let r = self.poll_recv_unacked(cx);
        if let Poll::Ready(Ok(Some(chunk))) = &r {
            self.ack(chunk.len());
        }
        r
    }

    /// Hands `len` bytes' worth of credit back to the peer: they have left toward the
    /// reader. Pairs with [`MuxStream::recv_unacked`].
    pub fn ack(&self, len: usize) {
        self.conn.with(|c| c.ack(self.id, len, now()));
    }

    /// The next received chunk through a shared reference (so the two directions of a
    /// splice run concurrently; do not mix with `AsyncRead`). Its credit goes back to the
    /// peer only when [`MuxStream::ack`] says so, once it has been written on, so a reader
    /// that stops never lets the peer send more than the window.
    pub async fn recv_unacked(&self) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_recv_unacked(cx)).await
    }

    fn poll_recv_unacked(&self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut inner = self.conn.lock();
        match inner.core.poll_read(self.id) {
            Poll::Ready(r) => {
                if let Ok(Some(chunk)) = &r {
                    self.received
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(r.map_err(|e| io_error(io::ErrorKind::ConnectionReset, e)))
            }
            Poll::Pending => {
                if let Some(w) = inner.core.user(self.id) {
                    park(&mut w.read, cx.waker());
                }
                Poll::Pending
            }
        }
    }

    /// The next received chunk; `None` once the peer half-closed.
    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_credit(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut inner = self.conn.lock();
        match inner.core.poll_credit(self.id) {
            Poll::Ready(r) => Poll::Ready(r.map_err(|e| io_error(io::ErrorKind::BrokenPipe, e))),
            Poll::Pending => {
                if let Some(w) = inner.core.user(self.id) {
                    park(&mut w.write, cx.waker());
                }
                Poll::Pending
            }
        }
    }

    fn push(&self, payload: Bytes) -> io::Result<()> {
        self.sent.fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.conn
            .with(|c| c.send(self.id, payload))
            .map_err(|e| io_error(io::ErrorKind::BrokenPipe, e))
    }

    /// Sends `data`, waiting for credit; large buffers go out in several frames, uncopied.
    pub async fn send(&self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            let credit = poll_fn(|cx| self.poll_credit(cx)).await?;
            let chunk = data.split_to(credit.min(data.len()));
            self.push(chunk)?;
        }
        Ok(())
    }

    /// Half-closes: tells the peer no more data follows.
    pub fn finish(&self) -> io::Result<()> {
        self.conn
            .with(|c| c.finish(self.id))
            .map_err(|e| io_error(io::ErrorKind::BrokenPipe, e))
    }

    /// Aborts the stream in both directions.
    pub fn reset(self, reason: &str) {
        self.conn.with(|c| c.reset(self.id, reason));
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        self.conn.with(|c| c.release(self.id));
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = match self.poll_recv(cx) {
            Poll::Ready(Ok(Some(c))) => c,
            Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk.split_to(n));
        self.pending = chunk;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let credit = match self.poll_credit(cx) {
            Poll::Ready(Ok(c)) => c,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = credit.min(buf.len());
        Poll::Ready(self.push(Bytes::copy_from_slice(&buf[..n])).map(|_| n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish())
    }
}
