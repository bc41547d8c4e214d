//! One visitor connection on the public HTTP(S) listener.

use super::body::{Input, InputError};
use super::response::{Event, Expect, ResponseError, Responses};
use crate::affinity::Affinity;
use crate::config::Limits;
use crate::fleet::forward::{self, Arrival, Kind};
use crate::fleet::Fleet;
use crate::registry::{LeaseKey, Leases};
use crate::router::{Route, Router};
use crate::team::Team;
use burrow_http::head::{self, RequestHead};
use burrow_http::pages;
use burrow_http::workers::Movable;
use burrow_protocol::control::{StreamMeta, TunnelProto};
use burrow_protocol::mux::{pump_to_mux, MuxStream};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::timeout;
use tracing::{debug, info, warn};

/// What every HTTP connection needs to know.
#[derive(Debug)]
pub struct HttpShared {
    /// The routing table.
    pub router: Arc<Router>,
    /// Leases, to tell a visitor that a name's agent is away rather than unknown.
    pub registry: Arc<dyn Leases>,
    /// Size and time limits.
    pub limits: Limits,
    /// Which worker serves a connection.
    pub affinity: Arc<Affinity>,
    /// Accounts: whose whitelist guards a tunnel.
    pub team: Arc<Team>,
    /// The fleet this relay is a node of, whose other nodes serve the names it does not.
    pub fleet: Option<Arc<Fleet>>,
}

async fn answer<W: AsyncWrite + Unpin>(wr: &mut W, status: u16, message: &str) {
    let _ = wr.write_all(&pages::page(status, message)).await;
    let _ = wr.shutdown().await;
}

/// Serves one visitor connection until it closes: on this worker, or on one that holds a
/// lane of the first request's session, where the connection moves once it is known.
pub async fn serve<IO>(
    io: IO,
    peer: SocketAddr,
    scheme: &'static str,
    shared: Arc<HttpShared>,
    arrival: Arrival,
) where
    IO: AsyncRead + AsyncWrite + Movable + Unpin + Send,
{
    let (rd, mut wr) = tokio::io::split(io);
    let mut input = Input::new(rd);
    let Some(first) = first_head(&mut input, &mut wr, peer, &shared.limits).await else {
        return;
    };
    if let Some((fleet, key)) = elsewhere(&shared, &first.host, scheme, arrival) {
        let (rd, ahead) = input.into_parts();
        let io = rd.unsplit(wr);
        let offered = forward::forward(&fleet, io, ahead.freeze(), Kind::Http, &key, peer).await;
        (input, wr) = match offered {
            forward::Outcome::Done => return,
            // Served here after all (the agent moved to this node), or by no node: 404.
            forward::Outcome::Here(io, ahead) | forward::Outcome::Gone(io, ahead) => {
                let (rd, wr) = tokio::io::split(io);
                (Input::with_buffer(rd, BytesMut::from(&ahead[..])), wr)
            }
        };
    }
    let Some(route) = admit(&shared, &first, scheme, peer, &mut wr).await else {
        return;
    };
    let Some(to) = shared.affinity.elsewhere(&route.lanes) else {
        return relay(input, wr, first, route, peer, scheme, &shared).await;
    };
    let (rd, ahead) = input.into_parts();
    let io = rd.unsplit(wr);
    let affinity = shared.affinity.clone();
    affinity.hand_over(to, io, move |io| async move {
        let (rd, wr) = tokio::io::split(io);
        let input = Input::with_buffer(rd, ahead);
        relay(input, wr, first, route, peer, scheme, &shared).await;
    });
}

/// The fleet and the route key of the node serving `host`, when this node serves no plain
/// http tunnel for it and the visitor came straight here.
fn elsewhere(
    shared: &HttpShared,
    host: &str,
    scheme: &str,
    arrival: Arrival,
) -> Option<(Arc<Fleet>, String)> {
    let fleet = shared.fleet.as_ref()?;
    if arrival == Arrival::Forwarded || scheme != "http" || shared.router.lookup(host).is_some() {
        return None;
    }
    Some((fleet.clone(), fleet.remote_host(host)?))
}

/// Carries the connection's requests, from its first, to the agent and the responses
/// back, until either side ends it.
async fn relay<R, W>(
    input: Input<R>,
    mut wr: W,
    first: RequestHead,
    route: Arc<Route>,
    peer: SocketAddr,
    scheme: &'static str,
    shared: &HttpShared,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let meta = StreamMeta {
        tunnel_id: route.tunnel_id,
        remote_addr: peer.to_string(),
        scheme: scheme.to_string(),
    };
    let track = Track {
        responses: Mutex::new(Responses::new()),
        verdict: Mutex::new(None),
        decided: Notify::new(),
    };
    // The agent may answer before the request is even forwarded (a 502 when the local
    // server is down), so the first request is expected before the stream opens.
    track.lock().expect(expect_for(&first));
    let stream = match shared.affinity.open(&route.lanes, &meta) {
        Ok(s) => s,
        Err(e) => {
            warn!(%peer, host = %first.host, err = %e, "agent session unavailable");
            let msg = format!("The agent serving {} is not connected.", first.host);
            return answer(&mut wr, 502, &msg).await;
        }
    };
    let _open = route.counters.connection();
    let ip = peer.ip().to_string();
    let host = first.host.clone();
    let limits = &shared.limits;
    let outcome = {
        let up = forward_requests(input, &stream, first, &ip, scheme, limits, &route, &track);
        let down = forward_responses(&stream, &mut wr, &track);
        tokio::pin!(up, down);
        tokio::select! {
            r = &mut down => Outcome::Down(r),
            r = &mut up => match r {
                Ok(end) => Outcome::Up(end, down.await),
                Err(e) => Outcome::Abort(e),
            },
        }
    };
    let (sent, received) = stream.traffic();
    route.counters.add_bytes(sent, received);
    finish(outcome, &track, stream, &mut wr, peer, &host).await;
    let _ = wr.shutdown().await;
}

/// The connection's first request head, or `None` once the visitor has been answered
/// (408 for a slow head, the parser's status for a refused one) or has left.
async fn first_head<R, W>(
    input: &mut Input<R>,
    wr: &mut W,
    peer: SocketAddr,
    limits: &Limits,
) -> Option<RequestHead>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match timeout(limits.head_timeout, input.read_head(limits.max_head)).await {
        Err(_) => {
            info!(%peer, timeout = ?limits.head_timeout, "request head not complete in time");
            answer(wr, 408, "The request head did not arrive in time.").await;
        }
        Ok(Err(InputError::Head(e))) => {
            info!(%peer, err = %e, "refused request head");
            answer(wr, e.status(), &e.to_string()).await;
        }
        Ok(Err(e)) => debug!(%peer, err = %e, "visitor left before a request"),
        Ok(Ok(h)) => return Some(h),
    }
    None
}

/// The route serving the request's host over `scheme`, or `None` once the visitor has
/// been answered 404 (no such tunnel) or 401 (the tunnel's credentials are missing).
async fn admit<W: AsyncWrite + Unpin>(
    shared: &HttpShared,
    first: &RequestHead,
    scheme: &str,
    peer: SocketAddr,
    wr: &mut W,
) -> Option<Arc<Route>> {
    let route = match shared.router.lookup(&first.host) {
        Some(r) if r.proto == TunnelProto::Http && r.serves(scheme) => r,
        _ => {
            let msg = not_found(shared, &first.host, peer);
            answer(wr, 404, &msg).await;
            return None;
        }
    };
    if !shared.team.allowed(route.account.as_deref(), peer.ip()) {
        // Closed without a word, as the whitelist's owner would want a stranger to see.
        info!(%peer, host = %first.host, "visitor not on the account's IP whitelist; closed");
        return None;
    }
    if let Some(expected) = &route.auth {
        if !super::auth::authorized(&first.headers, expected) {
            info!(%peer, host = %first.host, "refused request without valid credentials");
            let _ = wr.write_all(&unauthorized()).await;
            let _ = wr.shutdown().await;
            return None;
        }
    }
    Some(route)
}

/// Ends a connection by how its two directions ended: an error page where one is still
/// due, the stream reset where the agent must let go.
async fn finish<W: AsyncWrite + Unpin>(
    outcome: Outcome,
    track: &Track,
    stream: MuxStream,
    wr: &mut W,
    peer: SocketAddr,
    host: &str,
) {
    let fresh = {
        let r = track.lock();
        r.between_responses() && r.unanswered() <= 1
    };
    match outcome {
        Outcome::Down(Ok(())) => {}
        Outcome::Down(Err(DownError::Io(e))) => {
            debug!(%peer, err = %e, "response direction ended");
            stream.reset("visitor connection failed");
        }
        Outcome::Down(Err(DownError::Response(e))) => {
            warn!(%peer, %host, err = %e, "bad response from the agent");
            stream.reset("malformed response");
            if fresh {
                let _ = wr.write_all(&pages::page(502, &e.to_string())).await;
            }
        }
        Outcome::Up(end, down) => {
            if let Err(e) = down {
                debug!(%peer, err = %e, "response direction ended");
                return stream.reset("visitor connection failed");
            }
            if let Ending::Page(page) = end {
                let _ = wr.write_all(&page).await;
            }
        }
        Outcome::Abort(e) => {
            // Part of the request is with the local server already: the stream cannot
            // be reused, so both sides let go of it now.
            info!(%peer, err = %e, "aborting request");
            stream.reset(&e.to_string());
            if fresh && !matches!(e, InputError::Closed | InputError::Io(_)) {
                let page = match &e {
                    InputError::Head(h) => pages::page(h.status(), &h.to_string()),
                    other => pages::page(400, &other.to_string()),
                };
                let _ = wr.write_all(&page).await;
            }
        }
    }
}

/// How the request direction ended.
enum Ending {
    /// Nothing more to say: the connection closes after the last response.
    Clean,
    /// This page follows the last response (a refused kept-alive request).
    Page(Bytes),
}

#[derive(Debug, thiserror::Error)]
enum DownError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error(transparent)]
    Response(ResponseError),
}

enum Outcome {
    Down(Result<(), DownError>),
    Up(Ending, Result<(), DownError>),
    Abort(InputError),
}

/// What the two directions of one connection share: where the responses are, and the
/// answer to an upgrade request once it is known.
struct Track {
    responses: Mutex<Responses>,
    verdict: Mutex<Option<bool>>,
    decided: Notify,
}

impl Track {
    fn lock(&self) -> std::sync::MutexGuard<'_, Responses> {
        self.responses.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn decide(&self, switched: bool) {
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(switched);
        self.decided.notify_one();
    }

    fn take_verdict(&self) -> Option<bool> {
        self.verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Copies the agent's responses to the visitor unchanged, following where each ends.
async fn forward_responses<W: AsyncWrite + Unpin>(
    stream: &MuxStream,
    wr: &mut W,
    track: &Track,
) -> Result<(), DownError> {
    let mut raw = false;
    while let Some(chunk) = stream.recv_unacked().await.map_err(DownError::Io)? {
        if !raw {
            let mut r = track.lock();
            let events = r.feed(&chunk).map_err(DownError::Response)?;
            raw = r.is_raw();
            drop(r);
            for Event::Upgrade(switched) in events {
                track.decide(switched);
            }
        }
        wr.write_all(&chunk).await.map_err(DownError::Io)?;
        stream.ack(chunk.len());
    }
    Ok(())
}

/// Waits for the answer to an upgrade request; `None` if the visitor left meanwhile.
async fn upgrade_verdict<R: AsyncRead + Unpin>(
    track: &Track,
    input: &mut Input<R>,
) -> Result<Option<bool>, InputError> {
    let mut visitor_open = true;
    loop {
        if let Some(v) = track.take_verdict() {
            return Ok(Some(v));
        }
        // Watch for the visitor leaving, but read nothing more than one buffer ahead.
        let watch = async {
            if visitor_open && input.buf.is_empty() {
                input.wait_byte().await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = track.decided.notified() => {}
            r = watch => match r {
                Ok(()) => {}
                Err(InputError::Closed) => visitor_open = false,
                Err(e) => return Err(e),
            },
        }
        if !visitor_open {
            return Ok(None);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward_requests<R: AsyncRead + Unpin>(
    mut input: Input<R>,
    stream: &MuxStream,
    first: RequestHead,
    ip: &str,
    scheme: &str,
    limits: &Limits,
    route: &Route,
    track: &Track,
) -> Result<Ending, InputError> {
    let auth = route.auth.as_deref();
    // The connection stays bound to the tunnel of its first request.
    let bound_host = first.host.clone();
    let mut head = first;
    loop {
        let fwd = head::forwarded(&input.buf, &head, ip, scheme, route.host_header.as_deref());
        let _ = input.buf.split_to(head.len);
        route.counters.requests.fetch_add(1, Ordering::Relaxed);
        stream.send(fwd).await?;
        match head.framing {
            head::Framing::None => {}
            head::Framing::Length(n) => input.forward_exact(n, stream).await?,
            head::Framing::Chunked => input.forward_chunked(stream, limits.max_head).await?,
        }
        if head.upgrade {
            match upgrade_verdict(track, &mut input).await? {
                Some(true) => {
                    let (mut rd, rest) = input.into_parts();
                    if !rest.is_empty() {
                        stream.send(rest.freeze()).await?;
                    }
                    pump_to_mux(&mut rd, stream).await?;
                    return Ok(Ending::Clean);
                }
                // Declined: the connection stays HTTP and the next head is checked as usual.
                Some(false) => {}
                None => {
                    stream.finish()?;
                    return Ok(Ending::Clean);
                }
            }
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
                return Ok(Ending::Clean);
            }
            Ok(h) if auth.is_some_and(|a| !super::auth::authorized(&h.headers, a)) => {
                info!(host = %h.host, "refused kept-alive request without valid credentials");
                stream.finish()?;
                return Ok(Ending::Page(unauthorized()));
            }
            Ok(h) => {
                track.lock().expect(expect_for(&h));
                head = h;
            }
            Err(InputError::Closed) => {
                stream.finish()?;
                return Ok(Ending::Clean);
            }
            Err(InputError::Head(e)) => {
                info!(err = %e, "refused request head on a kept-alive connection");
                stream.finish()?;
                return Ok(Ending::Page(pages::page(e.status(), &e.to_string())));
            }
            Err(e) => {
                info!(err = %e, "kept-alive connection failed");
                stream.finish()?;
                return Ok(Ending::Clean);
            }
        }
    }
}

/// The 404 text for a host no live tunnel serves: plain "not found", or "offline" with
/// the time left when the name (or a wildcard above it) is held for an agent that left.
fn not_found(shared: &HttpShared, host: &str, peer: SocketAddr) -> String {
    let held = burrow_http::hostname::and_wildcards(host)
        .find_map(|n| shared.registry.held_for(&LeaseKey::Host(n)));
    match held {
        Some(left) => {
            info!(%peer, %host, left, "tunnel offline: its agent is away");
            format!(
                "Tunnel {host} not found: it is offline, its agent disconnected. The name \
                 stays reserved for that agent for {left} more seconds."
            )
        }
        None => {
            info!(%peer, %host, "no tunnel for host");
            format!("Tunnel {host} not found")
        }
    }
}

/// What the response to `head` will be like, as far as following it goes.
fn expect_for(head: &RequestHead) -> Expect {
    Expect {
        head: head.method == "HEAD",
        upgrade: head.upgrade,
    }
}

fn unauthorized() -> Bytes {
    pages::page_with_headers(
        401,
        "401 Unauthorized: this tunnel requires a user name and password.",
        "WWW-Authenticate: Basic realm=\"burrow\"\r\n",
    )
}
