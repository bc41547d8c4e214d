//! Relays and agents in this process, started through the crates' library API, and a gate
//! that cuts the line between them.

use crate::{host_of, init};
use burrow::tunnels::spec::TunnelSpec;
use burrow::AgentEvent;
use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};
use burrow_relay::{RelayConfig, RelayHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// A relay on loopback, in this process.
pub struct TestRelay {
    /// The running relay.
    pub handle: RelayHandle,
    /// The configuration it was started with.
    pub cfg: RelayConfig,
}

impl TestRelay {
    /// A relay with defaults suited to tests.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A relay whose configuration `f` adjusted.
    pub async fn start_with(f: impl FnOnce(&mut RelayConfig)) -> Self {
        init();
        let mut cfg = RelayConfig::loopback();
        cfg.workers = 2;
        f(&mut cfg);
        let handle = burrow_relay::start(cfg.clone())
            .await
            .expect("relay starts");
        TestRelay { handle, cfg }
    }

    /// The public http address.
    pub fn http(&self) -> SocketAddr {
        self.handle.http_addr.expect("http listener")
    }

    /// The public https address.
    pub fn https(&self) -> SocketAddr {
        self.handle.https_addr.expect("https listener")
    }

    /// Writes the relay's CA to a temporary file and returns its path (for curl).
    pub fn ca_file(&self) -> String {
        let path =
            std::env::temp_dir().join(format!("burrow-ca-{}.pem", self.handle.control_addr.port()));
        std::fs::write(&path, self.handle.ca_pem.as_deref().unwrap_or_default()).unwrap();
        path.to_string_lossy().into_owned()
    }
}

/// Options for a test agent's tunnel.
#[derive(Debug, Clone)]
pub struct TunnelOpts {
    /// Protocol.
    pub proto: TunnelProto,
    /// Local address (`8080`, `host:port`, URL).
    pub addr: String,
    /// Requested subdomain.
    pub subdomain: Option<String>,
    /// Requested tcp port.
    pub remote_port: Option<u16>,
    /// Schemes.
    pub bind_tls: BindTls,
    /// Basic-auth credentials `user:password`.
    pub auth: Option<String>,
    /// Requested custom hostname.
    pub hostname: Option<String>,
    /// The agent's worker threads, and so the lanes it asks for.
    pub lanes: usize,
    /// The tunnel's free-form metadata, shown by the relay's admin side.
    pub metadata: Option<String>,
}

impl TunnelOpts {
    /// An http tunnel to `addr`.
    pub fn http(addr: impl ToString) -> Self {
        TunnelOpts {
            proto: TunnelProto::Http,
            addr: addr.to_string(),
            subdomain: None,
            remote_port: None,
            bind_tls: BindTls::Both,
            auth: None,
            hostname: None,
            // As many lanes as the test relay has workers, whatever the machine's cores.
            lanes: 2,
            metadata: None,
        }
    }

    /// A tcp tunnel to `addr`.
    pub fn tcp(addr: impl ToString) -> Self {
        TunnelOpts {
            proto: TunnelProto::Tcp,
            ..Self::http(addr)
        }
    }

    /// With a requested subdomain.
    pub fn subdomain(mut self, s: &str) -> Self {
        self.subdomain = Some(s.into());
        self
    }

    /// With a requested custom hostname.
    pub fn hostname(mut self, h: &str) -> Self {
        self.hostname = Some(h.into());
        self
    }

    /// With an agent of `n` worker threads (lanes).
    pub fn lanes(mut self, n: usize) -> Self {
        self.lanes = n;
        self
    }

    /// With `metadata` on the tunnel.
    pub fn metadata(mut self, m: &str) -> Self {
        self.metadata = Some(m.into());
        self
    }

    /// With a requested tcp port.
    pub fn remote_port(mut self, p: u16) -> Self {
        self.remote_port = Some(p);
        self
    }
}

/// An agent in this process, connected to a [`TestRelay`].
pub struct TestAgent {
    /// Public URLs of its tunnel, https first.
    pub urls: Vec<String>,
    /// The supervisor, to stop it.
    pub supervisor: actix::Addr<burrow::AgentSupervisor>,
    events: tokio::sync::mpsc::UnboundedReceiver<AgentEvent>,
}

impl TestAgent {
    /// Starts an agent with one http tunnel to `addr`; panics if it does not come up.
    pub async fn http(relay: &TestRelay, addr: impl ToString) -> Self {
        Self::start(relay, TunnelOpts::http(addr), None)
            .await
            .expect("agent starts")
    }

    /// Starts an agent with `opts` and `token`; the error is the agent's fatal message.
    pub async fn start(
        relay: &TestRelay,
        opts: TunnelOpts,
        token: Option<&str>,
    ) -> Result<Self, String> {
        Self::start_via(relay, relay.handle.control_addr.port(), opts, token).await
    }

    /// As [`TestAgent::start`], dialling the relay at loopback port `control` (e.g. a
    /// [`Gate`] in front of it) and trusting the relay's CA.
    pub async fn start_via(
        relay: &TestRelay,
        control: u16,
        opts: TunnelOpts,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let server = format!("localhost:{control}");
        Self::start_across(&[relay], &[server.as_str()], opts, token).await
    }

    /// As [`TestAgent::start`], with the relay addresses `servers` (dialled in turn, as the
    /// agent does with a list) and trusting the CA of each of `relays`.
    pub async fn start_across(
        relays: &[&TestRelay],
        servers: &[&str],
        opts: TunnelOpts,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let cas: Vec<&str> = relays
            .iter()
            .filter_map(|r| r.handle.ca_pem.as_deref())
            .collect();
        let cas = (!cas.is_empty()).then(|| cas.join("\n"));
        let tls = burrow::client_tls(None, cas.as_deref()).map_err(|e| e.to_string())?;
        let mut session = burrow::session_config_for(servers, tls, token.map(String::from))
            .map_err(|e| e.to_string())?;
        session.max_backoff = Duration::from_millis(500);
        session.workers = opts.lanes;
        let spec = TunnelSpec::new(
            "command_line",
            TunnelRequest {
                proto: opts.proto,
                subdomain: opts.subdomain,
                hostname: opts.hostname,
                remote_port: opts.remote_port,
                bind_tls: opts.bind_tls,
                auth: opts.auth,
                metadata: opts.metadata,
                ..TunnelRequest::new(opts.proto)
            },
            burrow::local::addr::parse(opts.proto, &opts.addr).map_err(|e| e.to_string())?,
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let supervisor = burrow::start(
            session,
            vec![spec],
            Box::new(move |ev| {
                let _ = tx.send(ev);
            }),
        );
        let want = match (opts.proto, opts.bind_tls) {
            (TunnelProto::Http, BindTls::Both) => 2,
            _ => 1,
        };
        let mut urls = Vec::new();
        while urls.len() < want {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(AgentEvent::Forwarding { url, .. })) => urls.push(url),
                Ok(Some(AgentEvent::Fatal(msg))) => return Err(msg),
                Ok(Some(_)) => continue,
                _ => return Err("agent did not come up in time".into()),
            }
        }
        Ok(TestAgent {
            urls,
            supervisor,
            events: rx,
        })
    }

    /// The `http://` URL.
    pub fn http_url(&self) -> &str {
        self.urls
            .iter()
            .find(|u| u.starts_with("http://"))
            .expect("http url")
    }

    /// The `https://` URL.
    pub fn https_url(&self) -> &str {
        self.urls
            .iter()
            .find(|u| u.starts_with("https://"))
            .expect("https url")
    }

    /// The public host of the tunnel.
    pub fn host(&self) -> String {
        host_of(&self.urls[0])
    }

    /// Waits for the next event (e.g. a fatal error after a reconnect).
    pub async fn next_event(&mut self, within: Duration) -> Option<AgentEvent> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A loopback TCP forwarder to `target` that can be shut, as a network outage would: while
/// shut it accepts each connection and drops it at once. Each forwarded connection can also
/// be cut on its own.
pub struct Gate {
    /// Where it listens.
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    forwarded: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Gate {
    /// An open gate to `target`.
    pub async fn to(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let forwarded = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_open, list) = (open.clone(), forwarded.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task.abort_handle());
            }
        });
        Gate {
            addr,
            open,
            forwarded,
        }
    }

    /// Opens or shuts the gate for connections that arrive from now on.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }

    /// Connections forwarded so far, in the order they arrived.
    pub fn forwarded(&self) -> usize {
        self.forwarded.lock().unwrap().len()
    }

    /// Cuts forwarded connection `i` (counting from 0 in arrival order): both of its
    /// sockets close at once, as when a link dies.
    pub fn cut(&self, i: usize) {
        self.forwarded.lock().unwrap()[i].abort();
    }
}

/// A TLS connection to the relay's agent port, trusting its CA, before any Burrow byte:
/// what an agent (or a stranger) starts from.
pub async fn agent_port_tls(relay: &TestRelay) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tls = burrow::client_tls(None, relay.handle.ca_pem.as_deref()).expect("client TLS");
    let tcp = TcpStream::connect(relay.handle.control_addr)
        .await
        .expect("connect to the agent port");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the relay")
}
