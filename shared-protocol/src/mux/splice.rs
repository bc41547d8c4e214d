//! Copies bytes both ways between a mux stream and another byte stream, with half-close.
//!
//! The socket-to-stream direction reads into an adaptive buffer (small while traffic is
//! small, up to one data chunk under bulk load) and hands each read to the mux without a
//! copy; the other direction writes received chunks straight out. An idle spliced
//! connection therefore holds only a few KiB. The two directions run concurrently, so a
//! stalled one never blocks the other.

use super::MuxStream;
use crate::frame::MAX_DATA_CHUNK;
use bytes::{Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MIN_READ: usize = 4 * 1024;

/// Bytes moved by a finished splice.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpliceStats {
    /// From the other side into the mux stream.
    pub to_mux: u64,
    /// From the mux stream to the other side.
    pub from_mux: u64,
}

/// Copies from `rd` into the stream until EOF, then half-closes the stream.
pub async fn pump_to_mux<R: AsyncRead + Unpin>(rd: &mut R, stream: &MuxStream) -> io::Result<u64> {
    pump_to_mux_observed(rd, stream, |_| {}).await
}

/// Like [`pump_to_mux`], showing each chunk to `observe` before it is sent.
pub async fn pump_to_mux_observed<R: AsyncRead + Unpin>(
    rd: &mut R,
    stream: &MuxStream,
    observe: impl FnMut(&[u8]),
) -> io::Result<u64> {
    pump_to_mux_or(rd, stream, observe, None::<fn() -> Bytes>).await
}

/// Like [`pump_to_mux_observed`]; if `rd` ends or fails before giving a single byte, what
/// `if_silent` makes (when given) is observed and sent instead, so the visitor gets an
/// answer (an error page) rather than a closed connection. It is only called then.
pub async fn pump_to_mux_or<R: AsyncRead + Unpin>(
    rd: &mut R,
    stream: &MuxStream,
    mut observe: impl FnMut(&[u8]),
    mut if_silent: Option<impl FnOnce() -> Bytes>,
) -> io::Result<u64> {
    let mut buf = BytesMut::new();
    let mut want = MIN_READ;
    let mut total = 0u64;
    loop {
        buf.reserve(want);
        let read = rd.read_buf(&mut buf).await;
        if total == 0 && !matches!(read, Ok(n) if n > 0) {
            if let Some(make) = if_silent.take() {
                let page = make();
                observe(&page);
                stream.send(page).await?;
            }
        }
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                let _ = stream.finish();
                return Err(e);
            }
        };
        if n == 0 {
            stream.finish()?;
            return Ok(total);
        }
        // Grow under bulk load, shrink back when reads get small.
        want = if n >= want {
            (want * 2).min(MAX_DATA_CHUNK)
        } else {
            MIN_READ
        };
        total += n as u64;
        observe(&buf);
        stream.send(buf.split().freeze()).await?;
    }
}

/// Copies from the stream into `wr` until the peer half-closes, then shuts `wr` down.
pub async fn pump_from_mux<W: AsyncWrite + Unpin>(
    stream: &MuxStream,
    wr: &mut W,
) -> io::Result<u64> {
    pump_from_mux_observed(stream, wr, |_| {}).await
}

/// Like [`pump_from_mux`], showing each chunk to `observe` before it is written.
pub async fn pump_from_mux_observed<W: AsyncWrite + Unpin>(
    stream: &MuxStream,
    wr: &mut W,
    mut observe: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let mut total = 0u64;
    while let Some(chunk) = stream.recv_unacked().await? {
        total += chunk.len() as u64;
        observe(&chunk);
        wr.write_all(&chunk).await?;
        stream.ack(chunk.len());
    }
    wr.shutdown().await?;
    Ok(total)
}

/// Splices `io` and `stream` until both directions have ended; an error ends both.
pub async fn splice<T>(io: T, stream: MuxStream) -> io::Result<SpliceStats>
where
    T: AsyncRead + AsyncWrite,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (to_mux, from_mux) = tokio::try_join!(
        pump_to_mux(&mut rd, &stream),
        pump_from_mux(&stream, &mut wr)
    )?;
    Ok(SpliceStats { to_mux, from_mux })
}
