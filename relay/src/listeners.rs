//! Accept loops: agents on the control listener, visitors on the http and https ones.

use crate::fleet::forward::{forward, Arrival, Kind, Outcome};
use crate::lane;
use crate::session::{Pending, Session, PREAUTH_MAX_FRAME};
use crate::sni::{self, Hello, HelloError};
use crate::state::RelayState;
use burrow_http::workers::{Connection, Movable, MovableTcp};
use burrow_protocol::control::{self, ClientMessage, StreamMeta, TunnelProto};
use burrow_protocol::lanes;
use burrow_protocol::{mux, preamble};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Accepts agents until the relay stops.
pub async fn run_control(listener: TcpListener, state: Arc<RelayState>) {
    let acceptor = TlsAcceptor::from(state.tls.clone());
    let mut stopping = state.stopping.clone();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(err = %e, "control accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        let Some(pending) = Pending::admit(&state) else {
            warn!(%peer, limit = state.cfg.limits.max_pending_agents, "too many agent connections waiting to authenticate; refusing");
            continue;
        };
        let _ = sock.set_nodelay(true);
        let Ok(sock) = sock.into_std() else { continue };
        let (state, acceptor) = (state.clone(), acceptor.clone());
        let worker = state.pool.pick_index();
        let arbiter = state.pool.get(worker).clone();
        arbiter.spawn(async move {
            // Registered with this worker's reactor, where its mux will run.
            let Ok(sock) = TcpStream::from_std(sock) else {
                return;
            };
            agent_handshake(sock, peer, acceptor, state, pending, worker).await;
        });
    }
}

/// What an agent connection's handshake yields: the TLS session, its first control
/// message, and whatever came after it.
type Greeted = (TlsStream<MovableTcp>, Bytes, BytesMut);

async fn agent_handshake(
    sock: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<RelayState>,
    pending: Pending,
    worker: usize,
) {
    let limit = state.cfg.limits.handshake_timeout;
    let hs = async {
        let mut tls = acceptor
            .accept(MovableTcp::new(sock))
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        preamble::exchange(&mut tls)
            .await
            .map_err(|e| e.to_string())?;
        // Until the agent authenticates, frames are small: a stranger's trickled frame
        // cannot make the relay reserve much.
        let (first, rest) = lanes::read_first_control(&mut tls, PREAUTH_MAX_FRAME)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Greeted, String>((tls, first, rest))
    };
    let (tls, first, rest) = match timeout(limit, hs).await {
        Ok(Ok(greeted)) => greeted,
        Ok(Err(err)) => {
            warn!(%peer, %err, "agent handshake refused");
            return;
        }
        Err(_) => {
            warn!(%peer, timeout = ?limit, "agent handshake not complete in time");
            return;
        }
    };
    if let Ok(ClientMessage::JoinLane { session_id, secret }) = control::decode(&first) {
        return lane::join(tls, rest, peer, state, (session_id, secret), worker).await;
    }
    // Anything else starts a session, which judges the message (an Auth, or a clear
    // refusal of whatever came instead).
    let first_lane = lane::FirstLane {
        rest,
        first: Some(first),
        worker,
        max_frame: PREAUTH_MAX_FRAME,
    };
    lane::start_session(tls, first_lane, state, move |state, lanes| {
        Session::new(state, peer, lanes, pending)
    });
}

/// Accepts visitors on a public http (`tls` absent) or https listener.
pub async fn run_http(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<RelayState>) {
    let scheme: &'static str = if tls.is_some() { "https" } else { "http" };
    let mut stopping = state.stopping.clone();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(err = %e, "accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        if state.open.load(Ordering::Relaxed) >= state.cfg.limits.max_connections {
            info!(%peer, limit = state.cfg.limits.max_connections, "connection limit reached; refusing");
            continue;
        }
        let _ = sock.set_nodelay(true);
        let shared = state.http.clone();
        let tls = tls.clone();
        let limit = state.cfg.limits.handshake_timeout;
        let job = move |sock| async move {
            match tls {
                None => {
                    let sock = MovableTcp::new(sock);
                    crate::http::serve(sock, peer, scheme, shared, Arrival::Direct).await;
                }
                Some(acceptor) => {
                    let sock = MovableTcp::new(sock);
                    tls_visitor(sock, peer, acceptor, shared, limit, Arrival::Direct).await;
                }
            }
        };
        Connection::spawn_socket(state.pool.pick(), state.open.clone(), sock, job);
    }
}

/// A visitor on the public TLS port: its ClientHello's SNI picks the tunnel. A tls tunnel
/// gets the still-encrypted bytes; anything else is terminated here and served as HTTPS.
/// A name another node of the fleet serves goes there still encrypted.
pub async fn tls_visitor<IO>(
    mut sock: IO,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<crate::http::HttpShared>,
    limit: std::time::Duration,
    arrival: Arrival,
) where
    IO: AsyncRead + AsyncWrite + Movable + Unpin + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(2048);
    let read_hello = async {
        loop {
            match sni::parse(&buf) {
                Ok(Hello::Incomplete) => {}
                other => return Ok(other),
            }
            if sock.read_buf(&mut buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
        }
    };
    // One budget for the ClientHello and the handshake that follows.
    let deadline = tokio::time::Instant::now() + limit;
    let hello = match tokio::time::timeout_at(deadline, read_hello).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return debug!(%peer, err = %e, "visitor left before its TLS ClientHello"),
        Err(_) => return info!(%peer, "visitor TLS ClientHello not complete in time"),
    };
    let name = match hello {
        Ok(Hello::Complete {
            sni: Some(name), ..
        }) => name,
        Ok(Hello::Complete { sni: None, .. }) => {
            info!(%peer, "refused TLS connection without SNI: the server name picks the tunnel");
            let _ = sock.write_all(&alert(ALERT_UNRECOGNIZED_NAME)).await;
            return;
        }
        Ok(Hello::Incomplete) => return,
        Err(HelloError::NotTls) => {
            info!(%peer, "plain HTTP on the TLS port");
            let page =
                burrow_http::pages::page(400, "This port speaks HTTPS: use an https:// URL.");
            let _ = sock.write_all(&page).await;
            return;
        }
        Err(e) => {
            info!(%peer, err = %e, "refused TLS ClientHello");
            let _ = sock.write_all(&alert(ALERT_DECODE_ERROR)).await;
            return;
        }
    };
    let mut route = shared.router.lookup(&name);
    let remote = shared.fleet.as_ref().filter(|_| arrival == Arrival::Direct);
    if let Some((fleet, key)) = remote
        .filter(|_| route.is_none())
        .and_then(|f| Some((f.clone(), f.remote_host(&name)?)))
    {
        match forward(&fleet, sock, buf.freeze(), Kind::Tls, &key, peer).await {
            Outcome::Done => return,
            Outcome::Here(s, hello) | Outcome::Gone(s, hello) => {
                (sock, buf) = (s, BytesMut::from(&hello[..]));
                route = shared.router.lookup(&name);
            }
        }
    }
    if let Some(route) = route.filter(|r| r.proto == TunnelProto::Tls) {
        if !shared.team.allowed(route.account.as_deref(), peer.ip()) {
            return info!(%peer, sni = %name, "visitor not on the account's IP whitelist; closed");
        }
        let hello = buf.freeze();
        let Some(to) = shared.affinity.elsewhere(&route.lanes) else {
            return pass_through(sock, hello, route, peer, name, &shared).await;
        };
        let affinity = shared.affinity.clone();
        return affinity.hand_over(to, sock, move |sock| async move {
            pass_through(sock, hello, route, peer, name, &shared).await;
        });
    }
    let replayed = Rewind {
        prefix: buf.freeze(),
        inner: sock,
    };
    match tokio::time::timeout_at(deadline, acceptor.accept(replayed)).await {
        Ok(Ok(tls)) => crate::http::serve(tls, peer, "https", shared, arrival).await,
        Ok(Err(e)) => info!(%peer, err = %e, "visitor TLS handshake failed"),
        Err(_) => info!(%peer, "visitor TLS handshake not complete in time"),
    }
}

/// Carries a tls tunnel's connection, still encrypted, from its ClientHello on.
async fn pass_through<IO: AsyncRead + AsyncWrite>(
    sock: IO,
    hello: Bytes,
    route: Arc<crate::router::Route>,
    peer: SocketAddr,
    name: String,
    shared: &crate::http::HttpShared,
) {
    let meta = StreamMeta {
        tunnel_id: route.tunnel_id,
        remote_addr: peer.to_string(),
        scheme: "tls".into(),
    };
    let stream = match shared.affinity.open(&route.lanes, &meta) {
        Ok(s) => s,
        Err(e) => return info!(%peer, sni = %name, err = %e, "agent session unavailable"),
    };
    let _open = route.counters.connection();
    let hello_len = hello.len() as u64;
    if stream.send(hello).await.is_err() {
        return;
    }
    match mux::splice(sock, stream).await {
        Ok(moved) => route
            .counters
            .add_bytes(hello_len + moved.to_mux, moved.from_mux),
        Err(e) => debug!(%peer, sni = %name, err = %e, "tls tunnel connection ended"),
    }
}

const ALERT_DECODE_ERROR: u8 = 50;
const ALERT_UNRECOGNIZED_NAME: u8 = 112;

/// A fatal TLS alert record (TLS 1.2 framing, which every TLS version accepts here).
fn alert(description: u8) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}

/// A socket whose first bytes, already read to look at the ClientHello, are read again.
struct Rewind<IO> {
    prefix: Bytes,
    inner: IO,
}

impl<IO: Movable> Movable for Rewind<IO> {
    fn park(&mut self) -> std::io::Result<()> {
        self.inner.park()
    }

    fn unpark(&mut self) -> std::io::Result<()> {
        self.inner.unpark()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(out.remaining());
            out.put_slice(&this.prefix.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {addr}: {e}"))
}
