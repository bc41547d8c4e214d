//! Buffered visitor input: reads heads and forwards bodies to the agent by their framing.

use burrow_http::head::chunk_size;
use burrow_http::head::{self, HeadError, RequestHead};
use burrow_protocol::mux::MuxStream;
use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest chunk-size line accepted (size plus extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// Why reading from the visitor stopped.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The visitor closed before sending anything more.
    #[error("visitor closed the connection")]
    Closed,
    /// A malformed or oversized head.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// Malformed body framing.
    #[error("bad body framing: {0}")]
    Framing(String),
    /// The socket or the stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A visitor's read half and the bytes read ahead of where we are.
pub struct Input<R> {
    rd: R,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Input<R> {
    /// Wraps a read half.
    pub fn new(rd: R) -> Self {
        Input {
            rd,
            buf: BytesMut::new(),
        }
    }

    /// Wraps a read half whose first bytes, `ahead`, were read already.
    pub fn with_buffer(rd: R, ahead: BytesMut) -> Self {
        Input { rd, buf: ahead }
    }

    /// The read half and any bytes read ahead, for switching to raw copying.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.rd, self.buf)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 * 1024);
        }
        self.rd.read_buf(&mut self.buf).await
    }

    /// Waits until at least one byte is buffered; `Closed` on a clean EOF.
    pub async fn wait_byte(&mut self) -> Result<(), InputError> {
        while self.buf.is_empty() {
            if self.fill().await? == 0 {
                return Err(InputError::Closed);
            }
        }
        Ok(())
    }

    /// Reads until a complete head is buffered and parses it.
    pub async fn read_head(&mut self, max: usize) -> Result<RequestHead, InputError> {
        loop {
            if let Some(h) = head::parse(&self.buf, max)? {
                return Ok(h);
            }
            if self.fill().await? == 0 {
                return Err(if self.buf.is_empty() {
                    InputError::Closed
                } else {
                    InputError::Head(HeadError::BadRequest("connection closed mid-head".into()))
                });
            }
        }
    }

    /// Forwards exactly `n` body bytes.
    pub async fn forward_exact(
        &mut self,
        mut n: u64,
        stream: &MuxStream,
    ) -> Result<(), InputError> {
        while n > 0 {
            if self.buf.is_empty() && self.fill().await? == 0 {
                return Err(InputError::Framing("visitor closed mid-body".into()));
            }
            let k = (self.buf.len() as u64).min(n) as usize;
            n -= k as u64;
            stream.send(self.buf.split_to(k).freeze()).await?;
        }
        Ok(())
    }

    /// Reads one CRLF-terminated line (returned with its CRLF) of at most `max` bytes.
    async fn line(&mut self, max: usize) -> Result<bytes::Bytes, InputError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let i = scanned + i;
                if i == 0 || self.buf[i - 1] != b'\r' {
                    return Err(InputError::Framing("bare LF in chunked body".into()));
                }
                return Ok(self.buf.split_to(i + 1).freeze());
            }
            scanned = self.buf.len();
            if scanned > max {
                return Err(InputError::Framing(format!("line longer than {max} bytes")));
            }
            if self.fill().await? == 0 {
                return Err(InputError::Framing("visitor closed mid-body".into()));
            }
        }
    }

    /// Forwards a chunked body, checking every chunk's framing, through its trailers.
    pub async fn forward_chunked(
        &mut self,
        stream: &MuxStream,
        max_trailers: usize,
    ) -> Result<(), InputError> {
        loop {
            let line = self.line(MAX_CHUNK_LINE).await?;
            let size = parse_chunk_size(&line[..line.len() - 2])?;
            stream.send(line).await?;
            if size == 0 {
                let mut trailers = 0;
                loop {
                    let t = self.line(max_trailers).await?;
                    trailers += t.len();
                    if trailers > max_trailers {
                        return Err(InputError::Framing("trailers too large".into()));
                    }
                    let end = t.len() == 2;
                    stream.send(t).await?;
                    if end {
                        return Ok(());
                    }
                }
            }
            self.forward_exact(size, stream).await?;
            while self.buf.len() < 2 {
                if self.fill().await? == 0 {
                    return Err(InputError::Framing("visitor closed mid-body".into()));
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(InputError::Framing("chunk not followed by CRLF".into()));
            }
            self.buf.advance(2);
            stream.send(bytes::Bytes::from_static(b"\r\n")).await?;
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, InputError> {
    chunk_size(line).ok_or_else(|| {
        InputError::Framing(format!(
            "bad chunk size {:?}",
            String::from_utf8_lossy(line)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0;ext=1").unwrap(), 0);
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b" 1").is_err());
        assert!(parse_chunk_size(b"fffffffffffffffff").is_err());
    }
}
