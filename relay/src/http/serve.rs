//! One visitor connection on the public HTTP(S) listener.

use super::body::{Input, InputError};
use super::head::{self, RequestHead};
use super::pages;
use crate::config::Limits;
use crate::router::{Route, Router};
use burrow_protocol::control::{self, StreamMeta, TunnelProto};
use burrow_protocol::mux::{pump_from_mux, pump_to_mux, MuxStream};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;
use tracing::{debug, info, warn};

/// What every HTTP connection needs to know.
#[derive(Debug)]
pub struct HttpShared {
    /// The routing table.
    pub router: Arc<Router>,
    /// Size and time limits.
    pub limits: Limits,
}

async fn answer<W: AsyncWrite + Unpin>(wr: &mut W, status: u16, message: &str) {
    let _ = wr.write_all(&pages::page(status, message)).await;
    let _ = wr.shutdown().await;
}

/// Serves one visitor connection until it closes.
pub async fn serve<IO>(io: IO, peer: SocketAddr, scheme: &'static str, shared: Arc<HttpShared>)
where
    IO: AsyncRead + AsyncWrite,
{
    let (rd, mut wr) = tokio::io::split(io);
    let mut input = Input::new(rd);
    let limits = &shared.limits;
    let first = match timeout(limits.head_timeout, input.read_head(limits.max_head)).await {
        Err(_) => {
            info!(%peer, timeout = ?limits.head_timeout, "request head not complete in time");
            return answer(&mut wr, 408, "The request head did not arrive in time.").await;
        }
        Ok(Err(InputError::Head(e))) => {
            info!(%peer, err = %e, "refused request head");
            return answer(&mut wr, e.status(), &e.to_string()).await;
        }
        Ok(Err(e)) => {
            debug!(%peer, err = %e, "visitor left before a request");
            return;
        }
        Ok(Ok(h)) => h,
    };
    let route = match shared.router.lookup(&first.host) {
        Some(r) if r.proto == TunnelProto::Http && r.serves(scheme) => r,
        _ => {
            info!(%peer, host = %first.host, "no tunnel for host");
            let msg = format!("Tunnel {} not found", first.host);
            return answer(&mut wr, 404, &msg).await;
        }
    };
    if let Some(expected) = &route.auth {
        if !super::auth::authorized(&first.headers, expected) {
            info!(%peer, host = %first.host, "refused request without valid credentials");
            let page = pages::page_with_headers(
                401,
                "401 Unauthorized: this tunnel requires a user name and password.",
                "WWW-Authenticate: Basic realm=\"burrow\"\r\n",
            );
            let _ = wr.write_all(&page).await;
            let _ = wr.shutdown().await;
            return;
        }
    }
    let meta = StreamMeta {
        tunnel_id: route.tunnel_id,
        remote_addr: peer.to_string(),
        scheme: scheme.to_string(),
    };
    let stream = match route.mux.open(control::encode(&meta)) {
        Ok(s) => s,
        Err(e) => {
            warn!(%peer, host = %first.host, err = %e, "agent session unavailable");
            let msg = format!("The agent serving {} is not connected.", first.host);
            return answer(&mut wr, 502, &msg).await;
        }
    };
    let ip = peer.ip().to_string();
    let up = forward_requests(input, &stream, first, &ip, scheme, limits, &route);
    let down = pump_from_mux(&stream, &mut wr);
    tokio::pin!(up, down);
    tokio::select! {
        r = &mut down => {
            if let Err(e) = r { debug!(%peer, err = %e, "response direction ended"); }
        }
        r = &mut up => {
            if let Err(e) = r { debug!(%peer, err = %e, "request direction ended"); }
            if let Err(e) = down.await { debug!(%peer, err = %e, "response direction ended"); }
        }
    }
}

async fn forward_requests<R: AsyncRead + Unpin>(
    mut input: Input<R>,
    stream: &MuxStream,
    first: RequestHead,
    ip: &str,
    scheme: &str,
    limits: &Limits,
    route: &Route,
) -> Result<(), InputError> {
    let auth = route.auth.as_deref();
    // The connection stays bound to the tunnel of its first request.
    let bound_host = first.host.clone();
    let mut head = first;
    loop {
        let fwd = head::forwarded(&input.buf, &head, ip, scheme, route.host_header.as_deref());
        let _ = input.buf.split_to(head.len);
        stream.send(fwd).await?;
        let body = match head.framing {
            head::Framing::None => Ok(()),
            head::Framing::Length(n) => input.forward_exact(n, stream).await,
            head::Framing::Chunked => input.forward_chunked(stream, limits.max_head).await,
        };
        if let Err(e) = body {
            // The head is already with the upstream: the only safe answer is to abort.
            info!(host = %head.host, err = %e, "aborting request with bad body");
            return Err(e);
        }
        if head.upgrade {
            let (mut rd, rest) = input.into_parts();
            if !rest.is_empty() {
                stream.send(rest.freeze()).await?;
            }
            pump_to_mux(&mut rd, stream).await?;
            return Ok(());
        }
        let next = async {
            timeout(limits.idle_timeout, input.wait_byte())
                .await
                .map_err(|_| InputError::Closed)??;
            timeout(limits.head_timeout, input.read_head(limits.max_head))
                .await
                .map_err(|_| {
                    InputError::Head(head::HeadError::BadRequest("request head timed out".into()))
                })?
        };
        match next.await {
            Ok(h) if h.host != bound_host => {
                info!(host = %h.host, "request for another host on a kept-alive connection");
                stream.finish()?;
                return Ok(());
            }
            Ok(h) if auth.is_some_and(|a| !super::auth::authorized(&h.headers, a)) => {
                info!(host = %h.host, "refused kept-alive request without valid credentials");
                stream.finish()?;
                return Ok(());
            }
            Ok(h) => head = h,
            Err(InputError::Closed) => {
                stream.finish()?;
                return Ok(());
            }
            Err(e) => {
                info!(err = %e, "refused request head on a kept-alive connection");
                stream.finish()?;
                return Ok(());
            }
        }
    }
}
