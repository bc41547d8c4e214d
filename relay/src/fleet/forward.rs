//! Sending a visitor to the node that holds its tunnel: one stream on the link to that
//! node carrying the bytes read so far and then the connection both ways, with the mux's
//! flow control. The owner accepts (one byte) before anything else moves, so a stale route
//! (the owner just died, or let the name go) is retried once the routes change.

use super::Fleet;
use burrow_http::workers::Movable;
use burrow_protocol::mux::{splice, MuxStream};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info};

/// The owner's first byte on a forwarded stream: it serves the name, carry on.
pub const ACCEPTED: u8 = 1;
/// Time the owner has to accept a forwarded visitor.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a visitor reached the node serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On this node's own listener: it may be forwarded to the owner.
    Direct,
    /// Forwarded by another node: served here or refused, never forwarded again.
    Forwarded,
}

/// Which listener a forwarded visitor came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The public http listener.
    Http,
    /// The public TLS listener (https and tls tunnels), still encrypted.
    Tls,
    /// A tcp tunnel's port.
    Tcp,
}

/// What opens a forwarded stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    /// The listener.
    pub kind: Kind,
    /// The route it is for (`host:NAME` or `port:N`).
    pub key: String,
    /// The visitor's address, for the whitelist, logs and X-Forwarded-For.
    pub peer: String,
}

/// What became of a visitor offered to the fleet.
pub enum Outcome<IO> {
    /// Served by its owner until it ended.
    Done,
    /// The name is now served by this node: serve it here.
    Here(IO, Bytes),
    /// No node took it within the lease time.
    Gone(IO, Bytes),
}

/// Sends `io` (whose first bytes, already read, are `prefix`) to the node serving `key`,
/// waiting for the routes to change when that node does not take it, up to the lease time.
pub async fn forward<IO>(
    fleet: &Arc<Fleet>,
    mut io: IO,
    prefix: Bytes,
    kind: Kind,
    key: &str,
    peer: SocketAddr,
) -> Outcome<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut changes = fleet.subscribe();
    let deadline = Instant::now() + fleet.cfg.lease_ttl + Duration::from_secs(5);
    let meta = Forwarded {
        kind,
        key: key.to_string(),
        peer: peer.to_string(),
    };
    let meta = Bytes::from(serde_json::to_vec(&meta).expect("forward metadata serializes"));
    loop {
        match fleet.remote(key) {
            Some((node, addr)) => match offer(fleet, &node, &addr, meta.clone(), &prefix).await {
                Ok((stream, first)) => {
                    fleet.counters.forwarded_out.fetch_add(1, Ordering::Relaxed);
                    let c = &fleet.counters;
                    let (mut up, mut down) = (prefix.len() as u64, first.len() as u64);
                    if io.write_all(&first).await.is_ok() {
                        match splice(io, stream).await {
                            Ok(moved) => {
                                up += moved.to_mux;
                                down += moved.from_mux;
                            }
                            Err(e) => debug!(%peer, node, err = %e, "forwarded connection ended"),
                        }
                    }
                    c.bytes_out.fetch_add(up, Ordering::Relaxed);
                    c.bytes_in.fetch_add(down, Ordering::Relaxed);
                    return Outcome::Done;
                }
                Err(e) => {
                    info!(%peer, key, node, err = %e, "owner node did not take the visitor; waiting for the routes to change");
                    fleet.links.drop_link(&node);
                }
            },
            None if fleet.serves_here(key) => return Outcome::Here(io, prefix),
            None => {}
        }
        if timeout_at(deadline, changes.changed()).await.is_err() {
            return Outcome::Gone(io, prefix);
        }
    }
}

/// Opens a stream to `node` and waits for it to accept; answers the stream and whatever
/// followed the acceptance in its first chunk.
async fn offer(
    fleet: &Fleet,
    node: &str,
    addr: &str,
    meta: Bytes,
    prefix: &Bytes,
) -> io::Result<(MuxStream, Bytes)> {
    let link = fleet.links.get(node, addr).await?;
    let mut stream = link.open(meta).map_err(io::Error::other)?;
    if !prefix.is_empty() {
        stream.send(prefix.clone()).await?;
    }
    let first = timeout(ACCEPT_TIMEOUT, stream.recv())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))??;
    match first {
        Some(mut chunk) if chunk.first() == Some(&ACCEPTED) => {
            let rest = chunk.split_off(1);
            Ok((stream, rest))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "it does not serve the name now",
        )),
    }
}

/// A forwarded visitor's stream as the owner serves it, like a socket of its own.
pub struct PeerIo(pub MuxStream);

impl Movable for PeerIo {
    // The stream is not registered with a reactor: it moves between workers as it is.
    fn park(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn unpark(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for PeerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
