//! One multiplexed stream: chunk-level `recv`/`send` plus `AsyncRead`/`AsyncWrite`.

use super::{Shared, StreamShared};
use crate::frame::{Frame, MAX_DATA_CHUNK};
use bytes::Bytes;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A bidirectional byte stream inside a mux session, with its own flow control.
pub struct MuxStream {
    st: Arc<StreamShared>,
    mux: Arc<Shared>,
    /// The rest of a chunk `poll_read` could not hand over in one go.
    pending: Bytes,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream")
            .field("id", &self.st.id)
            .finish()
    }
}

fn reset_error(kind: io::ErrorKind, reason: &str) -> io::Error {
    io::Error::new(kind, format!("stream {reason}"))
}

impl MuxStream {
    pub(crate) fn new(st: Arc<StreamShared>, mux: Arc<Shared>) -> Self {
        MuxStream {
            st,
            mux,
            pending: Bytes::new(),
        }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.st.id
    }

    /// The current receive window (grows with auto-tuning).
    pub fn window(&self) -> u32 {
        self.st.lock().window.size()
    }

    /// Bytes received and not yet read.
    pub fn buffered(&self) -> usize {
        self.pending.len() + self.st.lock().recv.iter().map(|b| b.len()).sum::<usize>()
    }

    /// Polls for the next received chunk; `None` once the peer half-closed.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.pending))));
        }
        self.poll_recv_chunk(cx)
    }

    fn poll_recv_chunk(&self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let r = self.poll_recv_unacked(cx);
        if let Poll::Ready(Ok(Some(chunk))) = &r {
            self.ack(chunk.len());
        }
        r
    }

    /// Hands `len` bytes' worth of credit back to the peer: they have left toward the
    /// reader. Pairs with [`MuxStream::recv_unacked`].
    pub fn ack(&self, len: usize) {
        let mut s = self.st.lock();
        if let Some(increment) = s.window.on_consumed(len, Instant::now(), self.mux.rtt()) {
            drop(s);
            self.mux.send(Frame::Window {
                stream: self.st.id,
                increment,
            });
        }
    }

    /// The next received chunk through a shared reference (so the two directions of a
    /// splice run concurrently; do not mix with `AsyncRead`). Its credit goes back to the
    /// peer only when [`MuxStream::ack`] says so, once it has been written on, so a reader
    /// that stops never lets the peer send more than the window.
    pub async fn recv_unacked(&self) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_recv_unacked(cx)).await
    }

    fn poll_recv_unacked(&self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut s = self.st.lock();
        if let Some(chunk) = s.recv.pop_front() {
            return Poll::Ready(Ok(Some(chunk)));
        }
        if s.recv_fin {
            return Poll::Ready(Ok(None));
        }
        if let Some(reason) = &s.reset {
            return Poll::Ready(Err(reset_error(io::ErrorKind::ConnectionReset, reason)));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The next received chunk; `None` once the peer half-closed.
    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_credit(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut s = self.st.lock();
        if let Some(reason) = &s.reset {
            return Poll::Ready(Err(reset_error(io::ErrorKind::BrokenPipe, reason)));
        }
        if s.sent_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream already half-closed",
            )));
        }
        if s.credit > 0 {
            return Poll::Ready(Ok(s.credit.min(MAX_DATA_CHUNK as u64) as usize));
        }
        s.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn push(&self, payload: Bytes) -> io::Result<()> {
        self.st.lock().credit -= payload.len() as u64;
        if self.mux.send(Frame::Data {
            stream: self.st.id,
            fin: false,
            payload,
        }) {
            Ok(())
        } else {
            Err(reset_error(io::ErrorKind::BrokenPipe, "session closed"))
        }
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
        let mut s = self.st.lock();
        if s.sent_fin {
            return Ok(());
        }
        if let Some(reason) = &s.reset {
            return Err(reset_error(io::ErrorKind::BrokenPipe, reason));
        }
        s.sent_fin = true;
        drop(s);
        self.mux.send(Frame::Data {
            stream: self.st.id,
            fin: true,
            payload: Bytes::new(),
        });
        Ok(())
    }

    /// Aborts the stream in both directions.
    pub fn reset(self, reason: &str) {
        let mut s = self.st.lock();
        if s.reset.is_none() {
            s.reset = Some(reason.to_string());
            drop(s);
            self.mux.send(Frame::Reset {
                stream: self.st.id,
                reason: reason.to_string(),
            });
        }
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let s = self.st.lock();
        let done = (s.sent_fin && s.recv_fin) || s.reset.is_some();
        drop(s);
        if !done {
            self.mux.send(Frame::Reset {
                stream: self.st.id,
                reason: "closed".into(),
            });
        }
        self.mux.forget(self.st.id);
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
