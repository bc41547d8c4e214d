//! The agent's lanes to its relay: dialing one (TCP, TLS, greeting), authenticating the
//! first, joining the others to its session, and serving each stream on the worker thread
//! of the lane it arrived on, so its bytes never change threads.

use crate::tunnels::connection::Observers;
use crate::tunnels::spec::TunnelSpec;
use actix::prelude::*;
use burrow_http::workers::Connection;
use burrow_protocol::control::{self, ClientMessage, ServerMessage, StreamMeta};
use burrow_protocol::lanes;
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, MuxHandle, MuxStream, Role};
use burrow_protocol::preamble;
use bytes::Bytes;
use dashmap::DashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// One address of a relay's agent listener, with what dialing it takes.
#[derive(Debug, Clone)]
pub struct RelayAddr {
    /// `host:port` as configured.
    pub addr: String,
    /// The name its certificate must carry: this address's own host, so a list may mix
    /// relays with different certificates.
    pub server_name: rustls::pki_types::ServerName<'static>,
    /// Outbound proxy to reach it through, if any; chosen per address, since `no_proxy` and
    /// the loopback rule depend on the host.
    pub proxy: Option<crate::outbound::Proxy>,
}

impl RelayAddr {
    /// `addr` (`host:port`, IPv6 in brackets), reached directly.
    pub fn parse(addr: &str) -> Result<Self, String> {
        let host = match addr.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !h.is_empty() => h,
            _ => return Err("want HOST:PORT".into()),
        };
        let bare = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']').ok_or("unclosed '['")?,
            None if host.contains(':') => return Err("IPv6 addresses need [brackets]".into()),
            None => host,
        };
        let server_name = rustls::pki_types::ServerName::try_from(bare.to_string())
            .map_err(|_| format!("invalid host {bare:?}"))?;
        Ok(RelayAddr {
            addr: addr.to_string(),
            server_name,
            proxy: None,
        })
    }

    /// The host, without brackets.
    pub fn host(&self) -> &str {
        let host = self.addr.rsplit_once(':').map_or(&*self.addr, |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// How the agent reaches and authenticates with its relay.
#[derive(Clone)]
pub struct SessionConfig {
    /// The relay's agent addresses, tried in order (see [`crate::tunnels::session`]); never
    /// empty.
    pub relays: Vec<RelayAddr>,
    /// TLS settings (trusted roots).
    pub tls: Arc<rustls::ClientConfig>,
    /// Auth token, if any.
    pub token: Option<String>,
    /// The region to ask for; `None` lets the relay choose.
    pub region: Option<String>,
    /// Identity kept across reconnects, so the relay gives the same names back.
    pub client_id: String,
    /// Ceiling of the reconnect back-off.
    pub max_backoff: Duration,
    /// Worker threads, one lane to the relay each (0: one per core, or `BURROW_WORKERS`).
    pub workers: usize,
}

/// Something that happened on one of the session's lanes (not a stream: those are served
/// where the lane runs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LaneEvent {
    /// The connection attempt the lane belongs to.
    pub generation: u64,
    /// The lane's number (and worker).
    pub lane: usize,
    /// What happened.
    pub ev: MuxEvent,
}

/// Why a dial failed.
#[derive(Debug)]
pub enum DialError {
    /// Worth retrying.
    Transient(String),
    /// This address will not do (its certificate, or a protocol version a relay in the middle
    /// of an upgrade speaks): another address may, and with none other it is fatal.
    Address(String),
    /// The relay refused us (authentication, which every relay of a fleet shares); retrying
    /// will not help.
    Fatal(String),
}

impl DialError {
    /// What went wrong, whatever the kind.
    pub fn message(&self) -> &str {
        let (DialError::Transient(m) | DialError::Address(m) | DialError::Fatal(m)) = self;
        m
    }
}

/// What the relay granted the session.
pub struct Greeting {
    /// The relay's id of the session.
    pub session_id: String,
    /// Lanes granted, the first included.
    pub lanes: usize,
    /// What further lanes present to join.
    pub secret: Option<String>,
    /// The region the relay serves the session in (empty from relays without regions).
    pub region: String,
}

/// A lane's mux and its events.
type Lane = (MuxHandle, UnboundedReceiver<MuxEvent>);

/// Dials `relay` and exchanges the protocol greeting.
async fn dial(cfg: &SessionConfig, relay: &RelayAddr) -> Result<TlsStream<TcpStream>, DialError> {
    use DialError::*;
    let t = |e: String| Transient(e);
    let addr = &relay.addr;
    // Covers every IP address the name resolves to, tried in turn (see `outbound::dial`).
    let tcp = tokio::time::timeout(
        crate::outbound::DIAL_LIMIT,
        crate::outbound::dial(relay.proxy.as_ref(), addr),
    )
    .await
    .map_err(|_| t(format!("dial tcp {addr}: timeout")))?
    .map_err(|e| t(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    // Something that is not a relay may accept the TCP connection and then say nothing.
    let handshake = tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(cfg.tls.clone()).connect(relay.server_name.clone(), tcp),
    );
    let mut tls = handshake
        .await
        .map_err(|_| {
            t(format!(
                "TLS handshake with relay {addr}: no answer in 10s (is it the relay's agent port?)"
            ))
        })?
        .map_err(|e| {
            if e.to_string().contains("certificate") {
                Address(format!(
                    "TLS handshake with relay {addr}: {e} (set -root-cas to the relay's CA)"
                ))
            } else {
                t(format!("TLS handshake with relay {addr}: {e}"))
            }
        })?;
    tokio::time::timeout(Duration::from_secs(10), preamble::exchange(&mut tls))
        .await
        .map_err(|_| t(format!("relay {addr} did not answer the protocol greeting")))?
        .map_err(|e| match e {
            burrow_protocol::ProtocolError::VersionMismatch { .. } => Address(e.to_string()),
            e => t(e.to_string()),
        })?;
    Ok(tls)
}

/// Waits for the relay's first answer on a lane.
async fn answer(events: &mut UnboundedReceiver<MuxEvent>) -> Result<ServerMessage, DialError> {
    let t = DialError::Transient;
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .map_err(|_| t("relay did not answer in time".into()))?;
    match first {
        Some(MuxEvent::Control(b)) => control::decode(&b).map_err(|e| t(e.to_string())),
        Some(MuxEvent::Closed(Some(e))) => Err(t(e.to_string())),
        _ => Err(t("relay closed the connection before answering".into())),
    }
}

/// Dials the first lane to `relay` and authenticates, asking for `wanted` lanes.
pub async fn authenticate(
    cfg: &SessionConfig,
    relay: &RelayAddr,
    wanted: usize,
) -> Result<(Lane, Greeting), DialError> {
    let tls = dial(cfg, relay).await?;
    let (mux, mut events) = mux::start(tls, MuxConfig::new(Role::Agent));
    let auth = ClientMessage::Auth {
        agent_version: env!("CARGO_PKG_VERSION").into(),
        client_id: cfg.client_id.clone(),
        token: cfg.token.clone(),
        lanes: wanted as u32,
        region: cfg.region.clone(),
    };
    mux.send_control(control::encode(&auth))
        .map_err(|e| DialError::Transient(e.to_string()))?;
    match answer(&mut events).await? {
        ServerMessage::AuthOk {
            session_id,
            lanes,
            lane_secret,
            region,
            ..
        } => {
            let greeting = Greeting {
                session_id,
                lanes: (lanes as usize).clamp(1, wanted.max(1)),
                secret: lane_secret,
                region,
            };
            Ok(((mux, events), greeting))
        }
        ServerMessage::AuthFailed { message } => Err(DialError::Fatal(format!(
            "authentication failed: {message}"
        ))),
        other => Err(DialError::Transient(format!(
            "unexpected answer to authentication: {other:?}"
        ))),
    }
}

/// Dials a further lane to `relay`, which must be the one holding session `session_id`,
/// and joins it to the session.
pub async fn join(
    cfg: &SessionConfig,
    relay: &RelayAddr,
    session_id: &str,
    secret: &str,
) -> Result<Lane, DialError> {
    let mut tls = dial(cfg, relay).await?;
    let ask = ClientMessage::JoinLane {
        session_id: session_id.to_string(),
        secret: secret.to_string(),
    };
    // Written before the mux starts, so it is the first frame whatever the mux sends.
    tls.write_all(&lanes::control_frame(control::encode(&ask)))
        .await
        .map_err(|e| DialError::Transient(e.to_string()))?;
    let (mux, mut events) = mux::start(tls, MuxConfig::new(Role::Agent));
    match answer(&mut events).await? {
        ServerMessage::LaneOk => Ok((mux, events)),
        ServerMessage::AuthFailed { message } => {
            Err(DialError::Fatal(format!("lane refused: {message}")))
        }
        other => Err(DialError::Transient(format!(
            "unexpected answer to joining a lane: {other:?}"
        ))),
    }
}

/// Runs `fut` on `arbiter` and hands its outcome back (a worker that stopped first is a
/// transient failure).
pub fn on_worker<F, T>(
    arbiter: &ArbiterHandle,
    fut: F,
) -> impl Future<Output = Result<T, DialError>>
where
    F: Future<Output = Result<T, DialError>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    arbiter.spawn(async move {
        let _ = tx.send(fut.await);
    });
    async move {
        rx.await
            .unwrap_or_else(|_| Err(DialError::Transient("worker stopped".into())))
    }
}

/// How long a stream for a tunnel whose `Bound` has not arrived yet waits for it: the
/// `Bound` travels on the first lane and the stream may come first on another.
const BOUND_WAIT: Duration = Duration::from_secs(5);

/// The session's bound tunnels by the relay's id, shared by every lane.
#[derive(Default)]
pub struct Targets {
    map: DashMap<u64, Arc<TunnelSpec>>,
    /// The newest id bound in this session: the relay hands out ids in increasing order,
    /// so a stream naming a newer one is ahead of its `Bound`, not for a removed tunnel.
    newest: AtomicU64,
    bound: Notify,
}

impl Targets {
    /// Records a bound tunnel and wakes the streams that arrived ahead of it.
    pub fn insert(&self, id: u64, spec: Arc<TunnelSpec>) {
        self.map.insert(id, spec);
        self.newest.fetch_max(id, Ordering::AcqRel);
        self.bound.notify_waiters();
    }

    /// Forgets a tunnel (unbound by the agent).
    pub fn remove(&self, id: u64) {
        self.map.remove(&id);
    }

    /// Forgets every tunnel (the session ended; the next one gets new ids).
    pub fn clear(&self) {
        self.map.clear();
        self.newest.store(0, Ordering::Release);
    }

    /// Ids of the bound tunnels.
    pub fn ids(&self) -> Vec<u64> {
        self.map.iter().map(|t| *t.key()).collect()
    }

    fn get(&self, id: u64) -> Option<Arc<TunnelSpec>> {
        self.map.get(&id).map(|s| s.clone())
    }

    /// Waits until tunnel `id` is bound, for at most `limit`.
    async fn wait(&self, id: u64, limit: Duration) -> Option<Arc<TunnelSpec>> {
        let waiting = async {
            loop {
                let bound = self.bound.notified();
                tokio::pin!(bound);
                // Registered before looking, so an insert in between is not missed.
                bound.as_mut().enable();
                if let Some(spec) = self.get(id) {
                    return spec;
                }
                bound.await;
            }
        };
        tokio::time::timeout(limit, waiting).await.ok()
    }
}

/// What serving a stream needs, shared by every lane of a session.
#[derive(Clone)]
pub struct Dispatch {
    /// Bound tunnels by the relay's id.
    pub targets: Arc<Targets>,
    /// Metrics and capture.
    pub obs: Observers,
    /// Connections open now.
    pub open: Arc<AtomicUsize>,
}

impl Dispatch {
    /// Serves a stream the relay opened, on the calling (the lane's) worker.
    fn serve(&self, meta: Bytes, stream: MuxStream) {
        let meta: StreamMeta = match control::decode(&meta) {
            Ok(m) => m,
            Err(e) => return stream.reset(&format!("bad stream metadata: {e}")),
        };
        let id = meta.tunnel_id;
        if let Some(spec) = self.targets.get(id) {
            let job = crate::tunnels::connection::serve(spec, meta, stream, self.obs.clone());
            return Connection::spawn_here(self.open.clone(), job);
        }
        if id <= self.targets.newest.load(Ordering::Acquire) {
            return stream.reset("unknown tunnel");
        }
        // Ahead of its `Bound`, which is on its way on the first lane.
        let (targets, obs) = (self.targets.clone(), self.obs.clone());
        Connection::spawn_here(self.open.clone(), async move {
            match targets.wait(id, BOUND_WAIT).await {
                Some(spec) => crate::tunnels::connection::serve(spec, meta, stream, obs).await,
                None => stream.reset("unknown tunnel"),
            }
        });
    }
}

/// Serves a lane's streams where it runs and tells the session the rest (its control
/// messages and its end, once), tagged with the session's generation and the lane's number.
pub fn pump(
    mut events: UnboundedReceiver<MuxEvent>,
    dispatch: Dispatch,
    session: Recipient<LaneEvent>,
    generation: u64,
    lane: usize,
) {
    actix_rt::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                MuxEvent::Stream(meta, stream) => dispatch.serve(meta, stream),
                // The lane's end is its last event.
                MuxEvent::Closed(err) => {
                    session.do_send(LaneEvent {
                        generation,
                        lane,
                        ev: MuxEvent::Closed(err),
                    });
                    break;
                }
                ev => session.do_send(LaneEvent {
                    generation,
                    lane,
                    ev,
                }),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_protocol::control::{TunnelProto, TunnelRequest};

    fn spec(name: &str) -> Arc<TunnelSpec> {
        let local = crate::local::addr::parse(TunnelProto::Tcp, "22").expect("local address");
        Arc::new(TunnelSpec::new(
            name,
            TunnelRequest::new(TunnelProto::Tcp),
            local,
        ))
    }

    #[tokio::test]
    async fn a_stream_ahead_of_its_bound_is_served_once_the_bound_arrives() {
        let targets = Arc::new(Targets::default());
        targets.insert(3, spec("old"));
        let waiting = tokio::spawn({
            let targets = targets.clone();
            async move { targets.wait(7, BOUND_WAIT).await.map(|s| s.name.clone()) }
        });
        tokio::task::yield_now().await;
        targets.insert(5, spec("other"));
        targets.insert(7, spec("new"));
        assert_eq!(waiting.await.expect("join").as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn a_bound_that_never_comes_gives_up_after_the_wait() {
        let targets = Targets::default();
        targets.insert(8, spec("a"));
        let limit = Duration::from_millis(50);
        let started = std::time::Instant::now();
        assert!(targets.wait(9, limit).await.is_none());
        assert!(started.elapsed() >= limit);
    }

    #[test]
    fn ids_restart_with_a_new_session() {
        let targets = Targets::default();
        targets.insert(12, spec("a"));
        assert_eq!(targets.newest.load(Ordering::Acquire), 12);
        targets.clear();
        assert!(targets.ids().is_empty());
        assert_eq!(targets.newest.load(Ordering::Acquire), 0);
    }
}
