//! One stream from the relay: dial the local server and splice, or answer 502. Counts the
//! connection and, on http tunnels, times each exchange by watching heads go by.

use crate::inspect::captured::{new_id, Captured, Message, WsLog};
use crate::inspect::store::Inspector;
use crate::inspect::wsframes::{FrameReader, From};
use crate::local::{self, Local, Termination};
use crate::metrics::{Counters, Key, MetricsHub, Recent};
use crate::tunnels::spec::TunnelSpec;
use burrow_http::follow::{Event, Follower, Side};
use burrow_http::pages;
use burrow_protocol::control::{StreamMeta, TunnelProto};
use burrow_protocol::mux::{pump_from_mux_observed, pump_to_mux_or, MuxStream};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::{debug, warn};

/// How long dialing the local server may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Follows the exchanges of one http connection for the metrics.
struct Exchanges {
    requests: Follower,
    responses: Follower,
    started: VecDeque<(Instant, String, String)>,
    counters: Arc<Counters>,
    hub: MetricsHub,
    status: u16,
    /// Whether exchanges count in the metrics (a replay is not tunnel traffic).
    count: bool,
    capture: Option<Capture>,
}

/// Exchanges being captured on one connection, oldest first (requests may be pipelined).
struct Capture {
    inspector: Arc<Inspector>,
    tunnel_name: Arc<str>,
    remote_addr: Arc<str>,
    local: Arc<local::addr::LocalAddr>,
    pending: VecDeque<Pending>,
    /// After an upgrade to WebSocket: the exchange, its message log and a frame reader for
    /// each direction.
    ws: Option<(String, Arc<WsLog>, FrameReader, FrameReader)>,
}

/// An exchange announced to the inspector whose response has not ended yet.
struct Pending {
    id: String,
    start: SystemTime,
    request: Arc<Message>,
    response: Option<Message>,
}

impl Capture {
    fn record(&self, p: Pending, pending: bool, ws: Option<Arc<WsLog>>) -> Captured {
        Captured {
            id: p.id,
            tunnel_name: self.tunnel_name.clone(),
            remote_addr: self.remote_addr.clone(),
            start: p.start,
            duration: p.start.elapsed().unwrap_or_default(),
            request: p.request,
            response: p.response,
            pending,
            local: self.local.clone(),
            ws,
        }
    }

    fn begin(&mut self, head: burrow_http::follow::Head) {
        let p = Pending {
            id: new_id(),
            start: SystemTime::now(),
            request: Arc::new(Message::new(head)),
            response: None,
        };
        let announced = Pending {
            id: p.id.clone(),
            start: p.start,
            request: p.request.clone(),
            response: None,
        };
        self.inspector.push(self.record(announced, true, None));
        self.pending.push_back(p);
    }

    /// The oldest exchange ended: its final state replaces the pending one.
    fn end(&mut self) {
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        // Only WebSocket frames are followed; other upgrades (h2c, raw tcp) stay opaque.
        let switched = p.response.as_ref().is_some_and(|r| r.head.status == 101);
        let upgraded = switched
            && p.request.headers().iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("upgrade") && v.to_ascii_lowercase().contains("websocket")
            });
        let ws = upgraded.then(|| Arc::new(WsLog::default()));
        if let Some(log) = &ws {
            self.ws = Some((
                p.id.clone(),
                log.clone(),
                FrameReader::new(From::Client),
                FrameReader::new(From::Server),
            ));
        }
        let c = self.record(p, false, ws);
        self.inspector.finish(c);
    }

    fn websocket(&mut self, from: From, bytes: &[u8]) {
        if let Some((id, log, client, server)) = &mut self.ws {
            let reader = if from == From::Client { client } else { server };
            for m in reader.feed(bytes) {
                self.inspector.push_ws(id, log, m);
            }
        }
    }
}

impl Exchanges {
    fn on_request(&mut self, chunk: &[u8]) {
        for ev in self.requests.feed(chunk) {
            match ev {
                Event::Head(h) => {
                    self.responses.expect_response_to(&h.method);
                    self.started
                        .push_back((Instant::now(), h.method.clone(), h.path.clone()));
                    if let Some(c) = &mut self.capture {
                        c.begin(h);
                    }
                }
                Event::Body(r) => {
                    if let Some(p) = self.capture.as_mut().and_then(|c| c.pending.back_mut()) {
                        // Copies the head once, on the first body chunk, if the announced
                        // pending entry still shares it.
                        Arc::make_mut(&mut p.request).push_body(&chunk[r]);
                    }
                }
                Event::Rest(r) => {
                    if let Some(c) = &mut self.capture {
                        c.websocket(From::Client, &chunk[r]);
                    }
                }
                Event::End => {}
            }
        }
    }

    fn on_response(&mut self, chunk: &[u8]) {
        for ev in self.responses.feed(chunk) {
            let front = self.capture.as_mut().and_then(|c| c.pending.front_mut());
            let done = match ev {
                Event::Head(h) if h.status >= 200 || h.status == 101 => {
                    self.status = h.status;
                    let upgrade = h.status == 101;
                    if let Some(p) = front {
                        p.response = Some(Message::new(h));
                    }
                    upgrade
                }
                Event::Body(r) => {
                    if let Some(Pending {
                        response: Some(resp),
                        ..
                    }) = front
                    {
                        resp.push_body(&chunk[r]);
                    }
                    false
                }
                Event::Rest(r) => {
                    if let Some(c) = &mut self.capture {
                        c.websocket(From::Server, &chunk[r]);
                    }
                    false
                }
                Event::Head(_) => false,
                Event::End => true,
            };
            if done {
                self.done();
            }
        }
    }

    fn done(&mut self) {
        if let Some(c) = &mut self.capture {
            c.end();
        }
        if let Some((t, method, path)) = self.started.pop_front() {
            if !self.count {
                return;
            }
            self.counters.http.fetch_add(1, Ordering::Relaxed);
            self.counters.http_done(t.elapsed());
            self.hub.remember(Recent {
                method,
                path,
                status: self.status,
            });
        }
    }
}

/// What watches the traffic of the agent's connections: the metrics, and the store of
/// captured exchanges when capture is on.
#[derive(Clone)]
pub struct Observers {
    /// Counters and histograms.
    pub metrics: MetricsHub,
    /// Captured exchanges (none with `inspect_db_size: -1`).
    pub inspector: Option<Arc<Inspector>>,
}

/// Serves one stream of `spec`'s tunnel.
pub async fn serve(spec: Arc<TunnelSpec>, meta: StreamMeta, stream: MuxStream, obs: Observers) {
    let hub = &obs.metrics;
    let key: Key = (spec.name.clone(), meta.scheme.clone());
    let counters = hub.counters(&key);
    counters.conns.fetch_add(1, Ordering::Relaxed);
    counters.open.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    run(&spec, &meta, stream, &counters, &obs).await;
    counters.open.fetch_sub(1, Ordering::Relaxed);
    counters.conn_done(started.elapsed());
}

async fn run(
    spec: &TunnelSpec,
    meta: &StreamMeta,
    stream: MuxStream,
    counters: &Arc<Counters>,
    obs: &Observers,
) {
    if let Some(t) = &spec.tls {
        return terminate(spec, meta, stream, t).await;
    }
    let dial = tokio::time::timeout(DIAL_TIMEOUT, local::dial(&spec.local)).await;
    let local = match dial {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return refuse(spec, &stream, &describe(&e)).await,
        Err(_) => return refuse(spec, &stream, &format!("timeout after {DIAL_TIMEOUT:?}")).await,
    };
    let exchanges = (spec.proto() == TunnelProto::Http).then(|| {
        Mutex::new(Exchanges {
            requests: Follower::new(Side::Request),
            responses: Follower::new(Side::Response),
            started: VecDeque::new(),
            counters: counters.clone(),
            hub: obs.metrics.clone(),
            status: 0,
            count: true,
            capture: obs
                .inspector
                .clone()
                .filter(|_| spec.inspect)
                .map(|inspector| Capture {
                    inspector,
                    tunnel_name: api_name(spec, &meta.scheme).into(),
                    remote_addr: meta
                        .remote_addr
                        .rsplit_once(':')
                        .map_or(meta.remote_addr.as_str(), |(h, _)| h)
                        .trim_matches(['[', ']'])
                        .into(),
                    local: Arc::new(spec.local.clone()),
                    pending: VecDeque::new(),
                    ws: None,
                }),
        })
    });
    // An http visitor whose request the local server closes on without a word gets a 502
    // page, as when it cannot be reached, instead of an empty reply.
    let if_silent = exchanges.is_some().then_some(|| {
        pages::page(
            502,
            &format!(
                "The local server at {} closed the connection without a response.",
                spec.local.display()
            ),
        )
    });
    let result = match local {
        Local::Tcp(sock) => {
            let (mut rd, mut wr) = sock.into_split();
            pumps(&stream, &mut rd, &mut wr, &exchanges, if_silent).await
        }
        Local::Other(io) => {
            let (mut rd, mut wr) = tokio::io::split(io);
            pumps(&stream, &mut rd, &mut wr, &exchanges, if_silent).await
        }
    };
    if let Some(x) = &exchanges {
        let mut x = x.lock().unwrap_or_else(|e| e.into_inner());
        if x.responses.finish().is_some() {
            x.done();
        }
        // Exchanges the connection closed on without a (complete) response end here.
        while x.capture.as_ref().is_some_and(|c| !c.pending.is_empty()) {
            if let Some(c) = &mut x.capture {
                c.end();
            }
        }
    }
    match result {
        Ok(stats) => {
            debug!(name = %spec.name, remote = %meta.remote_addr, ?stats, "connection closed");
        }
        Err(e) => {
            debug!(name = %spec.name, remote = %meta.remote_addr, err = %e, "connection ended");
        }
    }
}

/// Copies both ways between the visitor's stream and the local service, showing the bytes
/// to the exchange observer of http tunnels.
async fn pumps<R, W>(
    stream: &MuxStream,
    rd: &mut R,
    wr: &mut W,
    exchanges: &Option<Mutex<Exchanges>>,
    if_silent: Option<impl FnOnce() -> bytes::Bytes>,
) -> std::io::Result<(u64, u64)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::try_join!(
        pump_from_mux_observed(stream, wr, |c| {
            if let Some(x) = exchanges {
                x.lock().unwrap_or_else(|e| e.into_inner()).on_request(c);
            }
        }),
        pump_to_mux_or(
            rd,
            stream,
            |c| {
                if let Some(x) = exchanges {
                    x.lock().unwrap_or_else(|e| e.into_inner()).on_response(c);
                }
            },
            if_silent
        )
    )
}

/// A tls tunnel with `crt`/`key`: the agent completes the visitor's TLS handshake (checking
/// the client's certificate when `client_cas` is set) and forwards plaintext.
async fn terminate(spec: &TunnelSpec, meta: &StreamMeta, stream: MuxStream, t: &Termination) {
    let acceptor = tokio_rustls::TlsAcceptor::from(t.config.clone());
    let mut tls = match tokio::time::timeout(DIAL_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!(obj = "tunnels", name = %spec.name, remote = %meta.remote_addr, err = %e, "TLS handshake with visitor failed");
            return;
        }
        Err(_) => {
            warn!(obj = "tunnels", name = %spec.name, remote = %meta.remote_addr, "TLS handshake with visitor timed out");
            return;
        }
    };
    let dial = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(spec.local.host_port())).await;
    let mut sock = match dial {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let addr = spec.local.display();
            warn!(obj = "tunnels", name = %spec.name, addr = %addr, err = %describe(&e), "failed to dial local server");
            return;
        }
        Err(_) => return,
    };
    let _ = sock.set_nodelay(true);
    match tokio::io::copy_bidirectional(&mut tls, &mut sock).await {
        Ok(stats) => debug!(name = %spec.name, ?stats, "connection closed"),
        Err(e) => debug!(name = %spec.name, err = %e, "connection ended"),
    }
}

/// Sends `raw` to `local` again and captures the new exchange under `tunnel_name`, reading
/// the whole response so the capture is complete.
pub async fn replay(
    obs: &Observers,
    tunnel_name: &str,
    remote_addr: &str,
    local: &local::addr::LocalAddr,
    raw: &[u8],
    within: Duration,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + within;
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
    let dial = tokio::time::timeout_at(deadline, local::dial(local)).await;
    let mut sock: Box<dyn local::Io> = match dial.map_err(|_| timed_out())?? {
        Local::Tcp(s) => Box::new(s),
        Local::Other(io) => io,
    };
    let mut x = Exchanges {
        requests: Follower::new(Side::Request),
        responses: Follower::new(Side::Response),
        started: VecDeque::new(),
        counters: Arc::default(),
        hub: obs.metrics.clone(),
        status: 0,
        count: false,
        capture: obs.inspector.clone().map(|inspector| Capture {
            inspector,
            tunnel_name: tunnel_name.into(),
            remote_addr: remote_addr.into(),
            local: Arc::new(local.clone()),
            pending: VecDeque::new(),
            ws: None,
        }),
    };
    x.on_request(raw);
    // From here on the exchange is announced: whatever happens, it must end below.
    let exchange = async {
        sock.write_all(raw).await?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                if x.responses.finish().is_some() {
                    x.done();
                }
                return Ok(());
            }
            x.on_response(&buf[..n]);
            if x.started.is_empty() || x.responses.is_opaque() {
                return Ok(());
            }
        }
    };
    let result = tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or_else(|_| Err(timed_out()));
    while x.capture.as_ref().is_some_and(|c| !c.pending.is_empty()) {
        if let Some(c) = &mut x.capture {
            c.end();
        }
    }
    result
}

/// The API name of the tunnel a visitor reached over `scheme` (`NAME` or `NAME (http)`).
pub fn api_name(spec: &TunnelSpec, scheme: &str) -> String {
    use burrow_protocol::control::BindTls;
    if scheme == "http" && spec.request.bind_tls == BindTls::Both {
        format!("{} (http)", spec.name)
    } else {
        spec.name.clone()
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

async fn refuse(spec: &TunnelSpec, stream: &MuxStream, reason: &str) {
    let addr = spec.local.display();
    warn!(obj = "tunnels", name = %spec.name, addr = %addr, err = %reason, "failed to dial local server");
    if spec.proto() == TunnelProto::Http {
        let msg = format!(
            "Burrow could not reach the local server at {addr}: {reason}. Make sure it is running."
        );
        let _ = stream.send(pages::page(502, &msg)).await;
        let _ = stream.finish();
    }
}
