//! Load benchmark: traffic through a Burrow relay and agent against the same traffic sent direct.
//!
//! Run with `cargo build --release --workspace --bins && cargo bench --bench tunnel`;
//! `BENCH_QUICK=1` shortens every phase;
//! `BENCH_ONLY=http,single,inspect,tls,bulk,rtt,fleet,memory` picks phases. Everything runs
//! on loopback; the `fleet` phase also runs `etcd`, which must be on `PATH`.
//!
//! The upstream servers (the 1 KiB HTTP server, plain and over TLS, and the raw sink, source
//! and echo) run in a child process of their own, this binary re-executed with
//! `--burrow-bench-upstream`, on a one-thread runtime. The direct and the tunnelled figures
//! are taken against that same process, so a direct request crosses the same process boundary
//! and loopback sockets as the last hop of a tunnelled one; the load generator stays in this
//! process.

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use hdrhistogram::Histogram;
use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

/// First argument that turns this binary into an agent holding many tunnels.
const AGENT_ARG: &str = "--burrow-bench-agent";
/// First argument that turns this binary into the upstream servers.
const UPSTREAM_ARG: &str = "--burrow-bench-upstream";
/// Size of every upstream HTTP response body.
const BODY_LEN: usize = 1024;
/// One-way delay of the delay line (50 ms round trip).
const ONE_WAY: Duration = Duration::from_millis(25);
/// Bytes the delay line may hold in flight per direction.
const DELAY_BUDGET: usize = 64 << 20;
/// Write size for bulk transfers.
const CHUNK: usize = 256 << 10;
/// Most requests one load connection sends, far above what a phase's time allows on
/// loopback, so the count bounds a run as well as its deadline.
const MAX_REQUESTS_PER_CONN: u64 = 10_000_000;
/// The fleet's shared secret (the nodes want at least 16 characters).
const FLEET_SECRET: &str = "burrow-bench-fleet-secret";

/// How long and how big each phase is.
struct Plan {
    warmup: Duration,
    http_time: Duration,
    single_time: Duration,
    conns: usize,
    bulk_bytes: u64,
    rtt_bytes: u64,
    rtt_time: Duration,
    tunnels: usize,
    idle_conns: usize,
    only: Option<Vec<String>>,
}

impl Plan {
    /// Whether the phase `name` runs.
    fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|p| p == name))
    }

    fn from_env() -> Self {
        let only = std::env::var("BENCH_ONLY")
            .ok()
            .map(|v| v.split(',').map(|p| p.trim().to_string()).collect());
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let s = Duration::from_secs;
        if quick {
            Plan {
                warmup: Duration::from_millis(300),
                http_time: s(2),
                single_time: s(1),
                conns: 64,
                bulk_bytes: 128 << 20,
                rtt_bytes: 64 << 20,
                rtt_time: s(5),
                tunnels: 1000,
                idle_conns: 1000,
                only,
            }
        } else {
            Plan {
                warmup: s(1),
                http_time: s(10),
                single_time: s(5),
                conns: 64,
                bulk_bytes: 1 << 30,
                rtt_bytes: 512 << 20,
                rtt_time: s(20),
                tunnels: 1000,
                idle_conns: 1000,
                only,
            }
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(AGENT_ARG) {
        return agent_main(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some(UPSTREAM_ARG) {
        return upstream_main();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// Directory holding the release `burrowd` and `burrow` binaries.
fn bin_dir() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent().and_then(Path::parent) {
            candidates.push(dir.to_path_buf());
        }
    }
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release"));
    }
    candidates.push(PathBuf::from("target/release"));
    candidates
        .into_iter()
        .find(|d| d.join("burrowd").is_file() && d.join("burrow").is_file())
        .context(
            "burrowd and burrow not found; run `cargo build --release --workspace --bins` first",
        )
}

/// A child process, killed when dropped, whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, lines })
    }

    /// Waits (bounded) for a stdout line `f` accepts and returns what it extracted.
    async fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut(&str) -> Option<T>) -> Result<T> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => bail!("timed out waiting for {what}"),
                Ok(None) => bail!("process exited before printing {what}"),
                Ok(Some(line)) => {
                    if let Some(v) = f(&line) {
                        return Ok(v);
                    }
                }
            }
        }
    }

    fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.child.id().context("process gone")?)
    }
}

/// Resident set size of `pid` in KiB, from /proc.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// A running `burrowd`.
struct Relay {
    proc: Proc,
    control: SocketAddr,
    http: SocketAddr,
    /// The public TLS port: HTTPS for http tunnels, passthrough by SNI for tls tunnels.
    https: SocketAddr,
    ca: PathBuf,
    state: PathBuf,
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Stop the relay first, or it may write its leases again after the removal.
        let _ = self.proc.child.start_kill();
        for _ in 0..100 {
            if !matches!(self.proc.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

async fn start_relay(bins: &Path, tag: &str) -> Result<Relay> {
    start_relay_with(bins, tag, &["--tcp-bind", "127.0.0.1"], None).await
}

/// Starts `burrowd` with `extra` flags; with `ca_from`, the state directory gets that
/// directory's `ca.pem` and `ca.key` first, so agents trusting one relay trust this one.
async fn start_relay_with(
    bins: &Path,
    tag: &str,
    extra: &[&str],
    ca_from: Option<&Path>,
) -> Result<Relay> {
    let state = std::env::temp_dir().join(format!("burrow-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    if let Some(from) = ca_from {
        for f in ["ca.pem", "ca.key"] {
            std::fs::copy(from.join(f), state.join(f))
                .with_context(|| format!("copy {f} from {}", from.display()))?;
        }
    }
    let mut proc = Proc::spawn(
        Command::new(bins.join("burrowd"))
            // Open relay whatever the environment says: the bench agents carry no token.
            .env_remove("BURROWD_AUTH_TOKENS")
            .args([
                "--domain",
                "localhost",
                "--http-addr",
                "127.0.0.1:0",
                "--https-addr",
            ])
            .args(["127.0.0.1:0", "--control-addr", "127.0.0.1:0"])
            // Two benchmarks at once must not fight over the admin port.
            .args(["--admin-addr", "off"])
            .args(["--tcp-ports", "0-0", "--log-level", "error", "--state-dir"])
            .arg(&state)
            .args(extra),
    )?;
    let addr_of = |line: &str, key: &str| -> Option<SocketAddr> {
        let mut words = line.split_whitespace();
        (words.next() == Some(key)).then(|| words.next()?.parse().ok())?
    };
    let control = proc
        .wait_for("the relay's agents address", |l| addr_of(l, "agents"))
        .await?;
    let http = proc
        .wait_for("the relay's http address", |l| addr_of(l, "http"))
        .await?;
    let https = proc
        .wait_for("the relay's https address", |l| addr_of(l, "https"))
        .await?;
    let ca = state.join("ca.pem");
    Ok(Relay {
        proc,
        control,
        http,
        https,
        ca,
        state,
    })
}

/// A `burrow` agent and the public address of its tunnel (host name for http and tls, port
/// for tcp).
struct Agent {
    proc: Proc,
    public: String,
}

async fn start_agent(
    bins: &Path,
    proto: &str,
    port: u16,
    server: SocketAddr,
    ca: &Path,
    extra: &[&str],
) -> Result<Agent> {
    // A HOME without a ~/.burrow/burrow.yml and no proxy variables: the agent measured is
    // configured by these flags alone.
    let home = std::env::temp_dir().join(format!("burrow-bench-home-{}", std::process::id()));
    let mut cmd = Command::new(bins.join("burrow"));
    for var in burrow_e2e::PROXY_VARS {
        cmd.env_remove(var);
    }
    let mut proc = Proc::spawn(
        cmd.env("HOME", &home)
            .args([
                proto,
                &port.to_string(),
                "-server",
                &server.to_string(),
                "-root-cas",
            ])
            .arg(ca)
            .args(extra),
    )?;
    // An http tunnel prints an https:// and an http:// line for the same host; the prefix
    // takes the second and skips the first.
    let scheme = match proto {
        "tcp" => "tcp://",
        "tls" => "tls://",
        _ => "http://",
    };
    let public = proc
        .wait_for("the agent's Forwarding line", |l| {
            let url = l.strip_prefix("Forwarding")?.split_whitespace().next()?;
            let authority = url.strip_prefix(scheme)?;
            let (host, port) = authority.rsplit_once(':')?;
            Some(if proto == "tcp" {
                port.to_string()
            } else {
                host.to_string()
            })
        })
        .await?;
    Ok(Agent { proc, public })
}

// ---------------------------------------------------------------------------------------
// The many-tunnel agent (this binary, re-executed)
// ---------------------------------------------------------------------------------------

/// Runs an agent binding `count` http tunnels; prints `READY` once all are bound.
fn agent_main(args: &[String]) -> Result<()> {
    use burrow::tunnels::spec::TunnelSpec;
    use burrow_protocol::control::{TunnelProto, TunnelRequest};
    let [server, ca, port, count] = args else {
        bail!("usage: {AGENT_ARG} SERVER CA_PEM LOCAL_PORT COUNT");
    };
    let count: usize = count.parse()?;
    let local = burrow::local::addr::parse(TunnelProto::Http, port).map_err(anyhow::Error::msg)?;
    let specs = (0..count)
        .map(|i| {
            let request = TunnelRequest::new(TunnelProto::Http);
            TunnelSpec::new(format!("t{i}"), request, local.clone())
        })
        .collect();
    burrow_relay::install_crypto();
    let session = burrow::session_config(server, burrow::client_tls(Some(ca), None)?, None)?;
    let sys = actix_rt::System::new();
    let supervisor = sys.block_on(async move {
        let bound = std::cell::RefCell::new(std::collections::HashSet::new());
        burrow::start(
            session,
            specs,
            Box::new(move |event| match event {
                burrow::AgentEvent::Forwarding { spec, .. } => {
                    let mut bound = bound.borrow_mut();
                    if bound.insert(spec.name.clone()) && bound.len() == count {
                        println!("READY");
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                    }
                }
                burrow::AgentEvent::Fatal(msg) => {
                    eprintln!("agent: {msg}");
                    std::process::exit(1);
                }
                burrow::AgentEvent::Online { .. } | burrow::AgentEvent::Reconnecting(_) => {}
            }),
        )
    });
    sys.run()?;
    drop(supervisor);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Upstream servers (this binary, re-executed)
// ---------------------------------------------------------------------------------------

/// Serves the upstream HTTP, HTTPS and raw servers until killed or orphaned; prints
/// `UPSTREAM HTTP_ADDR RAW_ADDR HTTPS_ADDR` once all listen.
///
/// One thread, running both the I/O driver and every connection: the servers only answer a
/// canned 1 KiB response or move bytes, which one core does faster than the tunnel can carry
/// them, and on a small machine a wider runtime would take CPU from the load generator,
/// the relay and the agent. The direct and the tunnelled runs share this process, so
/// whatever it costs is paid on both sides of each ratio.
fn upstream_main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let parent = std::os::unix::process::parent_id();
        let http = serve(serve_http).await?;
        let raw = serve(serve_raw).await?;
        let acceptor = tokio_rustls::TlsAcceptor::from(upstream_tls()?);
        let https = serve(move |tcp| {
            let acceptor = acceptor.clone();
            async move { serve_http(acceptor.accept(tcp).await?).await }
        })
        .await?;
        println!("UPSTREAM {http} {raw} {https}");
        std::io::Write::flush(&mut std::io::stdout())?;
        // Exit with the benchmark even if it dies without killing us.
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    })
}

/// The upstream process and its listening addresses.
struct Upstream {
    proc: Proc,
    http: SocketAddr,
    raw: SocketAddr,
    /// The same HTTP server as `http`, behind TLS.
    https: SocketAddr,
}

async fn start_upstream() -> Result<Upstream> {
    let exe = std::env::current_exe()?;
    let mut proc = Proc::spawn(Command::new(exe).arg(UPSTREAM_ARG))?;
    let (http, raw, https) = proc
        .wait_for("the upstream addresses", |l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("UPSTREAM")).then_some(())?;
            let mut addr = || words.next()?.parse().ok();
            Some((addr()?, addr()?, addr()?))
        })
        .await?;
    Ok(Upstream {
        proc,
        http,
        raw,
        https,
    })
}

/// A self-signed certificate for the bench's TLS servers; no client checks the names.
fn bench_cert() -> Result<rcgen::CertifiedKey<rcgen::KeyPair>> {
    Ok(rcgen::generate_simple_self_signed(vec![
        "localhost".to_string(),
        "*.localhost".to_string(),
    ])?)
}

/// Server TLS for the upstream's HTTPS listener.
fn upstream_tls() -> Result<Arc<rustls::ServerConfig>> {
    let cert = bench_cert()?;
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key.into())?;
    Ok(Arc::new(config))
}

/// Accepts connections on a fresh loopback port and serves each with `serve`.
async fn serve<F, Fut>(serve: F) -> Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    Ok(addr)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Keep-alive HTTP/1.1 server answering every (bodiless) request with a 1 KiB body.
async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {BODY_LEN}\r\n\r\n"
    )
    .into_bytes();
    response.resize(response.len() + BODY_LEN, b'x');
    let mut buf = BytesMut::with_capacity(8192);
    let mut out = Vec::new();
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            buf.advance(end + 4);
            out.extend_from_slice(&response);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            // A TLS stream may keep the tail of a record until flushed.
            stream.flush().await?;
            out.clear();
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// Raw server: `S` sinks to EOF and answers the byte count, `G n` sends n bytes, `E` echoes.
async fn serve_raw(mut stream: TcpStream) -> std::io::Result<()> {
    match stream.read_u8().await? {
        b'S' => {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => total += n as u64,
                }
            }
            stream.write_u64(total).await?;
            stream.shutdown().await
        }
        b'G' => {
            let mut left = stream.read_u64().await?;
            let buf = vec![0x5au8; CHUNK];
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stream.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
            stream.shutdown().await
        }
        b'E' => {
            let (mut r, mut w) = stream.split();
            tokio::io::copy(&mut r, &mut w).await.map(drop)
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Delay line
// ---------------------------------------------------------------------------------------

/// A TCP proxy that holds every chunk `ONE_WAY` in each direction, in order, on its way to
/// `target`.
struct DelayLine {
    addr: SocketAddr,
}

impl DelayLine {
    async fn start(target: SocketAddr) -> Result<Self> {
        let addr = serve(move |a: TcpStream| delay_conn(a, target)).await?;
        Ok(DelayLine { addr })
    }
}

/// Connects to `target` and delays both directions between it and `a`.
async fn delay_conn(a: TcpStream, target: SocketAddr) -> std::io::Result<()> {
    let b = TcpStream::connect(target).await?;
    b.set_nodelay(true)?;
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::spawn(delay_pipe(ar, bw));
    tokio::spawn(delay_pipe(br, aw));
    Ok(())
}

/// One direction of the delay line; memory is bounded by `DELAY_BUDGET`.
async fn delay_pipe(mut r: OwnedReadHalf, mut w: OwnedWriteHalf) {
    let budget = Arc::new(Semaphore::new(DELAY_BUDGET));
    let (tx, mut rx) = mpsc::unbounded_channel::<(
        tokio::time::Instant,
        Bytes,
        tokio::sync::OwnedSemaphorePermit,
    )>();
    let writer = tokio::spawn(async move {
        while let Some((at, data, permit)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if w.write_all(&data).await.is_err() {
                return;
            }
            drop(permit);
        }
        let _ = w.shutdown().await;
    });
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(64 << 10);
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Ok(permit) = budget.clone().acquire_many_owned(n as u32).await else {
                    break;
                };
                let at = tokio::time::Instant::now() + ONE_WAY;
                if tx.send((at, buf.split().freeze(), permit)).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

// ---------------------------------------------------------------------------------------
// Load generators
// ---------------------------------------------------------------------------------------

/// Outcome of an HTTP load run.
struct Load {
    rate: f64,
    hist: Histogram<u64>,
}

impl Load {
    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Reads one response with a Content-Length body from `stream`, buffering in `buf`.
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> Result<()> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            if !head.starts_with("HTTP/1.1 200") {
                bail!(
                    "unexpected response: {}",
                    head.lines().next().unwrap_or_default()
                );
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .context("response without Content-Length")?;
            while buf.len() < end + 4 + len {
                if stream.read_buf(buf).await? == 0 {
                    bail!("connection closed mid-body");
                }
            }
            buf.advance(end + 4 + len);
            return Ok(());
        }
        if buf.len() > 64 << 10 {
            bail!("response head too large");
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("connection closed before a response");
        }
    }
}

/// How the load generator speaks to the server: plain TCP, or TLS sending `sni`.
#[derive(Clone)]
enum Dial {
    Plain,
    Tls {
        connector: tokio_rustls::TlsConnector,
        sni: ServerName<'static>,
    },
}

impl Dial {
    /// TLS with SNI `host`, trusting any certificate.
    fn tls(host: &str) -> Result<Self> {
        Ok(Dial::Tls {
            connector: tokio_rustls::TlsConnector::from(burrow::local::unverified_client_tls()),
            sni: ServerName::try_from(host.to_string())?,
        })
    }
}

/// `conns` keep-alive connections sending `GET /` back to back for `warmup + time`.
async fn http_load(
    addr: SocketAddr,
    dial: &Dial,
    host: &str,
    conns: usize,
    warmup: Duration,
    time: Duration,
) -> Result<Load> {
    let request: Arc<[u8]> =
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: burrow-bench\r\n\r\n")
            .into_bytes()
            .into();
    let start = Instant::now();
    let measured = start + warmup;
    let deadline = measured + time;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let request = request.clone();
        let dial = dial.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            match dial {
                Dial::Plain => request_loop(stream, &request, measured, deadline).await,
                Dial::Tls { connector, sni } => {
                    // The handshake falls in the warm-up, as keep-alive amortises it.
                    let stream = timeout(Duration::from_secs(10), connector.connect(sni, stream))
                        .await
                        .context("TLS handshake timed out")?
                        .context("TLS handshake")?;
                    request_loop(stream, &request, measured, deadline).await
                }
            }
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut count = 0;
    for task in tasks {
        let (h, c) = task.await??;
        hist.add(h)?;
        count += c;
    }
    let elapsed = measured.elapsed().as_secs_f64();
    Ok(Load {
        rate: count as f64 / elapsed,
        hist,
    })
}

/// One connection of `http_load`: requests until `deadline`, recording latencies and counting
/// responses from `measured` on.
async fn request_loop<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    measured: Instant,
    deadline: Instant,
) -> Result<(Histogram<u64>, u64)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut count = 0u64;
    for _ in 0..MAX_REQUESTS_PER_CONN {
        let t0 = Instant::now();
        if t0 >= deadline {
            break;
        }
        stream.write_all(request).await?;
        // A TLS stream may keep the tail of a record until flushed.
        stream.flush().await?;
        timeout(
            Duration::from_secs(10),
            read_response(&mut stream, &mut buf),
        )
        .await
        .context("request timed out")??;
        if t0 >= measured {
            hist.saturating_record(t0.elapsed().as_micros() as u64);
            count += 1;
        }
    }
    Ok((hist, count))
}

/// Sends up to `bytes` (or for up to `time`) into a sink at `addr`; returns MB/s.
async fn bulk_up(addr: SocketAddr, bytes: u64, time: Duration) -> Result<f64> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let chunk = vec![0xa5u8; CHUNK];
    let start = Instant::now();
    stream.write_u8(b'S').await?;
    let mut sent = 0u64;
    while sent < bytes && start.elapsed() < time {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        timeout(Duration::from_secs(30), stream.write_all(&chunk[..n]))
            .await
            .context("bulk write stalled")??;
        sent += n as u64;
    }
    stream.shutdown().await?;
    let got = timeout(Duration::from_secs(60), stream.read_u64())
        .await
        .context("sink never answered")??;
    if got != sent {
        bail!("sink received {got} bytes of {sent}");
    }
    Ok(sent as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Receives `bytes` from a source at `addr`; returns MB/s.
async fn bulk_down(addr: SocketAddr, bytes: u64) -> Result<f64> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let start = Instant::now();
    stream.write_u8(b'G').await?;
    stream.write_u64(bytes).await?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < bytes {
        match timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .context("bulk read stalled")??
        {
            0 => bail!("source closed after {got} of {bytes} bytes"),
            n => got += n as u64,
        }
    }
    Ok(got as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Opens `n` connections to the echo server behind `addr`, each checked by one round trip.
async fn open_idle(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n.div_ceil(50) {
        let batch = (n - open.len()).min(50);
        let mut tasks = Vec::new();
        for _ in 0..batch {
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await?;
                s.write_all(b"Ex").await?;
                let mut b = [0u8; 1];
                timeout(Duration::from_secs(10), s.read_exact(&mut b))
                    .await
                    .context("echo timed out")??;
                anyhow::Ok(s)
            }));
        }
        for t in tasks {
            open.push(t.await??);
        }
    }
    Ok(open)
}

// ---------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------

/// One row of the results table.
struct Row {
    name: String,
    burrow: String,
    direct: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    notes: Vec<String>,
}

/// Whether a target holds: `Some(true)` met, `Some(false)` missed, `None` no target.
fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "ok",
        Some(false) => "MISSED",
        None => "",
    }
}

impl Table {
    /// A figure compared with its direct counterpart; `max`/`min` bound the ratio.
    fn compare(
        &mut self,
        name: &str,
        unit: &str,
        v: f64,
        direct: f64,
        min: Option<f64>,
        max: Option<f64>,
    ) {
        let ratio = v / direct;
        let (target, ok) = match (min, max) {
            (Some(m), _) => (format!("≥ {m}x"), Some(ratio >= m)),
            (_, Some(m)) => (format!("≤ {m}x"), Some(ratio <= m)),
            _ => (String::new(), None),
        };
        self.rows.push(Row {
            name: name.into(),
            burrow: format!("{v:.2} {unit}"),
            direct: format!("{direct:.2} {unit}"),
            ratio: format!("{ratio:.2}x"),
            target,
            verdict: verdict(ok),
        });
    }

    /// An absolute figure with an optional ceiling.
    fn absolute(&mut self, name: &str, v: f64, unit: &str, max: Option<f64>) {
        self.rows.push(Row {
            name: name.into(),
            burrow: format!("{v:.1} {unit}"),
            direct: String::new(),
            ratio: String::new(),
            target: max.map(|m| format!("≤ {m} {unit}")).unwrap_or_default(),
            verdict: verdict(max.map(|m| v <= m)),
        });
    }

    fn failed(&mut self, name: &str, err: &anyhow::Error) {
        eprintln!("{name}: {err:#}");
        self.rows.push(Row {
            name: name.into(),
            burrow: format!("failed: {err:#}"),
            direct: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: "FAILED",
        });
    }

    fn print(&self) {
        println!();
        println!("| measure | burrow | direct | ratio | target | |");
        println!("|---|---:|---:|---:|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.name, r.burrow, r.direct, r.ratio, r.target, r.verdict
            );
        }
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
    }
}

/// Runs `f` with an overall time limit.
async fn bounded<T>(limit: Duration, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    timeout(limit, f).await.context("phase timed out")?
}

async fn bench() -> Result<()> {
    let plan = Plan::from_env();
    let bins = bin_dir()?;
    eprintln!("using {}", bins.display());
    let mut table = Table::default();
    let load_before = load_average();
    let mut upstream = start_upstream().await?;
    let (http_up, raw_up) = (upstream.http, upstream.raw);

    let relay = start_relay(&bins, "main").await?;
    if plan.runs("http") || plan.runs("single") {
        let agent =
            start_agent(&bins, "http", http_up.port(), relay.control, &relay.ca, &[]).await?;
        http_phases(&plan, &mut table, http_up, relay.http, &agent.public).await;
    }
    if plan.runs("inspect") {
        inspect_phase(&plan, &mut table, &bins, &relay, http_up).await;
    }
    if plan.runs("tls") {
        tls_phase(&plan, &mut table, &bins, &relay, http_up, upstream.https).await;
    }
    if plan.runs("bulk") {
        let agent = start_agent(&bins, "tcp", raw_up.port(), relay.control, &relay.ca, &[]).await?;
        let public = SocketAddr::from(([127, 0, 0, 1], agent.public.parse()?));
        bulk_phase(&plan, &mut table, raw_up, public).await;
    }
    if plan.runs("rtt") {
        eprintln!(
            "50 ms RTT: up to {} MiB or {:?} each",
            plan.rtt_bytes >> 20,
            plan.rtt_time
        );
        let name = "bulk over 50 ms RTT, one stream (direct = through Burrow without the delay)";
        match rtt_phase(&bins, &relay, raw_up, &plan).await {
            Ok((t, d)) => table.compare(name, "MB/s", t, d, Some(0.8), None),
            Err(e) => table.failed(name, &e),
        }
        table.notes.push(format!(
            "delay line: {} ms each way, chunks kept in order, at most {} MiB in flight per direction",
            ONE_WAY.as_millis(),
            DELAY_BUDGET >> 20
        ));
    }
    drop(relay);
    if plan.runs("fleet") {
        fleet_phase(&plan, &mut table, &bins, http_up).await;
    }
    if plan.runs("memory") {
        memory_phases(&plan, &mut table, &bins, http_up, raw_up).await;
    }
    if !matches!(upstream.proc.child.try_wait(), Ok(None)) {
        bail!("the upstream process exited during the run");
    }
    table.notes.push(
        "upstream servers: one child process on a one-thread runtime, the same for the direct \
         and the tunnelled runs; the load generator runs in the benchmark process"
            .into(),
    );
    drop(upstream);
    table.notes.push(format!(
        "1-minute load average {load_before} at start, {} at end, on {} CPUs \
         (ratios are only meaningful on an otherwise idle machine)",
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    table.print();
    Ok(())
}

/// The 1-minute load average, as /proc/loadavg prints it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// Many keep-alive connections, then one, direct and through the http tunnel `host`.
async fn http_phases(
    plan: &Plan,
    table: &mut Table,
    direct: SocketAddr,
    relay: SocketAddr,
    host: &str,
) {
    let runs = [
        ("http", plan.conns, plan.http_time, Some(3.0), None),
        ("single", 1, plan.single_time, None, Some(1.6)),
    ];
    for (phase, conns, time, p99_max, p50_max) in runs {
        if !plan.runs(phase) {
            continue;
        }
        eprintln!("http: {conns} connection(s), {time:?} each");
        let limit = plan.warmup + time + Duration::from_secs(60);
        let pair = async {
            let d = bounded(
                limit,
                http_load(direct, &Dial::Plain, "localhost", conns, plan.warmup, time),
            )
            .await?;
            let t = bounded(
                limit,
                http_load(relay, &Dial::Plain, host, conns, plan.warmup, time),
            )
            .await?;
            anyhow::Ok((t, d))
        };
        let label = if conns == 1 {
            "1 conn".to_string()
        } else {
            format!("{conns} conns")
        };
        match pair.await {
            Ok((t, d)) => {
                let rate_min = (conns > 1).then_some(0.45);
                table.compare(
                    &format!("HTTP req/s, {label}"),
                    "req/s",
                    t.rate,
                    d.rate,
                    rate_min,
                    None,
                );
                table.compare(
                    &format!("HTTP p50, {label}"),
                    "ms",
                    t.ms(0.5),
                    d.ms(0.5),
                    None,
                    p50_max,
                );
                table.compare(
                    &format!("HTTP p99, {label}"),
                    "ms",
                    t.ms(0.99),
                    d.ms(0.99),
                    None,
                    p99_max,
                );
            }
            Err(e) => table.failed(&format!("HTTP, {label}"), &e),
        }
    }
}

/// Requests/s at full concurrency through a tunnel that captures every exchange for the
/// inspector versus one started with `-inspect=false`, in the same run.
async fn inspect_phase(plan: &Plan, table: &mut Table, bins: &Path, relay: &Relay, up: SocketAddr) {
    let name = format!(
        "HTTP req/s, {} conns, inspection on (direct = off)",
        plan.conns
    );
    let run = async {
        let on = start_agent(bins, "http", up.port(), relay.control, &relay.ca, &[]).await?;
        let off = start_agent(
            bins,
            "http",
            up.port(),
            relay.control,
            &relay.ca,
            &["-inspect=false"],
        )
        .await?;
        let limit = plan.warmup + plan.http_time + Duration::from_secs(60);
        let t_off = bounded(
            limit,
            http_load(
                relay.http,
                &Dial::Plain,
                &off.public,
                plan.conns,
                plan.warmup,
                plan.http_time,
            ),
        )
        .await?;
        let t_on = bounded(
            limit,
            http_load(
                relay.http,
                &Dial::Plain,
                &on.public,
                plan.conns,
                plan.warmup,
                plan.http_time,
            ),
        )
        .await?;
        anyhow::Ok((t_on.rate, t_off.rate))
    };
    eprintln!("inspect: {} connections, on and off", plan.conns);
    match run.await {
        Ok((on, off)) => table.compare(&name, "req/s", on, off, Some(0.85), None),
        Err(e) => table.failed(&name, &e),
    }
}

/// Requests/s at full concurrency over TLS through the relay's https port, for each way a
/// tunnel can carry TLS, against the same load over TLS straight to `https_up` measured just
/// before it. `http_up` is the same server without TLS.
async fn tls_phase(
    plan: &Plan,
    table: &mut Table,
    bins: &Path,
    relay: &Relay,
    http_up: SocketAddr,
    https_up: SocketAddr,
) {
    let conns = plan.conns;
    let cert_dir =
        std::env::temp_dir().join(format!("burrow-bench-{}-agent-tls", std::process::id()));
    // (row, agent command, local port, whether the agent terminates TLS)
    let rows = [
        (
            format!("HTTPS req/s, {conns} conns, relay-terminated (direct = TLS to upstream)"),
            "http",
            http_up.port(),
            false,
        ),
        (
            format!("TLS passthrough req/s, {conns} conns (direct = TLS to upstream)"),
            "tls",
            https_up.port(),
            false,
        ),
        (
            format!("TLS agent-terminated req/s, {conns} conns (direct = TLS to upstream)"),
            "tls",
            http_up.port(),
            true,
        ),
    ];
    let limit = plan.warmup + plan.http_time + Duration::from_secs(60);
    for (name, proto, port, terminate) in rows {
        eprintln!("tls: {name}, {:?} each", plan.http_time);
        let run = async {
            let mut extra = Vec::new();
            if terminate {
                let (crt, key) = write_cert_files(&cert_dir)?;
                extra = vec!["-crt".to_string(), crt, "-key".to_string(), key];
            }
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let agent = start_agent(bins, proto, port, relay.control, &relay.ca, &extra).await?;
            let direct = bounded(
                limit,
                http_load(
                    https_up,
                    &Dial::tls("localhost")?,
                    "localhost",
                    conns,
                    plan.warmup,
                    plan.http_time,
                ),
            )
            .await?;
            let tunnel = bounded(
                limit,
                http_load(
                    relay.https,
                    &Dial::tls(&agent.public)?,
                    &agent.public,
                    conns,
                    plan.warmup,
                    plan.http_time,
                ),
            )
            .await?;
            anyhow::Ok((tunnel.rate, direct.rate))
        };
        match run.await {
            Ok((t, d)) => table.compare(&name, "req/s", t, d, Some(0.45), None),
            Err(e) => table.failed(&name, &e),
        }
    }
    let _ = std::fs::remove_dir_all(&cert_dir);
}

/// Writes a fresh certificate and key for an agent that terminates TLS into `dir`; returns
/// their paths as the agent's flags take them.
fn write_cert_files(dir: &Path) -> Result<(String, String)> {
    std::fs::create_dir_all(dir)?;
    let cert = bench_cert()?;
    let (crt, key) = (dir.join("crt.pem"), dir.join("key.pem"));
    std::fs::write(&crt, cert.cert.pem())?;
    std::fs::write(&key, cert.signing_key.serialize_pem())?;
    let utf8 = |p: &Path| {
        p.to_str()
            .map(String::from)
            .context("temp dir is not UTF-8")
    };
    Ok((utf8(&crt)?, utf8(&key)?))
}

/// One-stream bulk transfer each way, direct and through the tcp tunnel at `public`.
async fn bulk_phase(plan: &Plan, table: &mut Table, direct: SocketAddr, public: SocketAddr) {
    let mib = plan.bulk_bytes >> 20;
    eprintln!("bulk: {mib} MiB each way");
    let limit = Duration::from_secs(300);
    let no_time_limit = Duration::from_secs(3600);
    let up = async {
        let d = bounded(limit, bulk_up(direct, plan.bulk_bytes, no_time_limit)).await?;
        let t = bounded(limit, bulk_up(public, plan.bulk_bytes, no_time_limit)).await?;
        anyhow::Ok((t, d))
    };
    let name = format!("bulk {mib} MiB, one stream, to upstream");
    match up.await {
        Ok((t, d)) => table.compare(&name, "MB/s", t, d, Some(0.25), None),
        Err(e) => table.failed(&name, &e),
    }
    let down = async {
        let d = bounded(limit, bulk_down(direct, plan.bulk_bytes)).await?;
        let t = bounded(limit, bulk_down(public, plan.bulk_bytes)).await?;
        anyhow::Ok((t, d))
    };
    let name = format!("bulk {mib} MiB, one stream, from upstream");
    match down.await {
        Ok((t, d)) => table.compare(&name, "MB/s", t, d, Some(0.25), None),
        Err(e) => table.failed(&name, &e),
    }
}

/// RSS per idle tunnel and per open connection, each on fresh processes.
async fn memory_phases(
    plan: &Plan,
    table: &mut Table,
    bins: &Path,
    http_up: SocketAddr,
    raw_up: SocketAddr,
) {
    eprintln!("memory: {} idle tunnels", plan.tunnels);
    match tunnels_phase(bins, http_up, plan.tunnels).await {
        Ok(m) => {
            table.absolute("relay RSS per idle tunnel", m.relay_per, "KiB", Some(16.0));
            table.absolute("agent RSS per idle tunnel", m.agent_per, "KiB", None);
            table.notes.push(m.note);
        }
        Err(e) => table.failed("idle tunnels", &e),
    }
    eprintln!("memory: {} open connections", plan.idle_conns);
    match conns_phase(bins, raw_up, plan.idle_conns).await {
        Ok(m) => {
            table.absolute(
                "relay RSS per open connection",
                m.relay_per,
                "KiB",
                Some(32.0),
            );
            table.absolute("agent RSS per open connection", m.agent_per, "KiB", None);
            table.notes.push(m.note);
        }
        Err(e) => table.failed("open connections", &e),
    }
}

/// One stream's upload through a tunnel whose agent reaches the relay over the delay line,
/// against the same upload through a tunnel whose agent reaches the relay directly: what
/// the 50 ms round trip costs Burrow's own one-stream throughput. (Plain TCP sent through
/// the delay line would not feel the delay, as the line ends TCP on both of its sides.)
/// Both tunnels forward to the same sink, with the same byte and time limits.
async fn rtt_phase(
    bins: &Path,
    relay: &Relay,
    raw_up: SocketAddr,
    plan: &Plan,
) -> Result<(f64, f64)> {
    let limit = plan.rtt_time + Duration::from_secs(120);
    let tunnel_mbs = |agent: Agent| async move {
        let public = SocketAddr::from(([127, 0, 0, 1], agent.public.parse()?));
        let mbs = bounded(limit, bulk_up(public, plan.rtt_bytes, plan.rtt_time)).await;
        drop(agent);
        mbs
    };
    let near = start_agent(bins, "tcp", raw_up.port(), relay.control, &relay.ca, &[]).await?;
    let undelayed = tunnel_mbs(near).await?;
    let line = DelayLine::start(relay.control).await?;
    let far = start_agent(bins, "tcp", raw_up.port(), line.addr, &relay.ca, &[]).await?;
    let delayed = tunnel_mbs(far).await?;
    Ok((delayed, undelayed))
}

/// Two `burrowd` nodes of one fleet on a real etcd, and an agent on node b with an http
/// tunnel to the upstream.
struct FleetRig {
    // Declaration order is drop order: the agent and the nodes are killed before etcd
    // stops, so no node is left running against a missing etcd.
    agent: Agent,
    /// Node a, which holds no tunnel: every visitor here goes one hop to node b.
    forwarding: Relay,
    /// Node b, whose agent holds the tunnel.
    owner: Relay,
    _etcd: burrow_e2e::TestEtcd,
    secret_dir: PathBuf,
}

impl Drop for FleetRig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.secret_dir);
    }
}

impl FleetRig {
    async fn start(bins: &Path, http_up: SocketAddr) -> Result<Self> {
        // TestEtcd blocks while etcd elects itself, and panics (with etcd's log) if it
        // cannot start; on a blocking thread the panic comes back as an error.
        let etcd = tokio::task::spawn_blocking(burrow_e2e::TestEtcd::start)
            .await
            .map_err(|e| anyhow::anyhow!("etcd did not start: {e}"))?;
        let secret_dir =
            std::env::temp_dir().join(format!("burrow-bench-{}-fleet", std::process::id()));
        std::fs::create_dir_all(&secret_dir)?;
        let secret = secret_dir.join("secret");
        std::fs::write(&secret, FLEET_SECRET)?;
        let secret = secret
            .to_str()
            .context("temp dir is not UTF-8")?
            .to_string();
        let endpoint = etcd.endpoint();
        let forwarding = start_node(bins, &endpoint, &secret, "a", "127.0.0.1", None).await?;
        // Node b gets a's CA, as an operator sets a fleet up: one root CA in an agent's
        // configuration trusts every node it may fail over to.
        let a_state = forwarding.state.clone();
        let owner = start_node(bins, &endpoint, &secret, "b", "127.0.0.2", Some(&a_state)).await?;
        let agent =
            start_agent(bins, "http", http_up.port(), owner.control, &owner.ca, &[]).await?;
        Ok(FleetRig {
            agent,
            forwarding,
            owner,
            _etcd: etcd,
            secret_dir,
        })
    }
}

/// Starts fleet node `id` on etcd at `endpoint`; see [`start_relay_with`] for `ca_from`.
async fn start_node(
    bins: &Path,
    endpoint: &str,
    secret: &str,
    id: &str,
    tcp_bind: &str,
    ca_from: Option<&Path>,
) -> Result<Relay> {
    let node_addr = free_loopback_addr()?;
    let args = [
        "--cluster-etcd",
        endpoint,
        "--node-id",
        id,
        "--node-addr",
        &node_addr,
        "--cluster-secret-file",
        secret,
        // Every node listens on every tcp port bound in the fleet, so each binds its own
        // loopback address.
        "--tcp-bind",
        tcp_bind,
    ];
    start_relay_with(bins, &format!("node-{id}"), &args, ca_from).await
}

/// What `etcd --version` says first, for the notes.
fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_else(|| "etcd".into())
}

/// `127.0.0.1:PORT` with a port that was free a moment ago.
fn free_loopback_addr() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// One `GET /` for `host` at `addr`, answered 200.
async fn one_request(addr: SocketAddr, host: &str) -> Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: burrow-bench\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    read_response(&mut stream, &mut BytesMut::new()).await
}

/// Waits (bounded in tries and time) until `addr` answers 200 for `host`: a node learns
/// another's routes through etcd's watch, a moment after the agent bound its tunnel.
async fn wait_served(addr: SocketAddr, host: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = anyhow::anyhow!("no attempt");
    for _ in 0..100 {
        // A node that does not know the name yet holds the visitor until the routes
        // change, for up to the lease time and 5 s more (15 s by default), so one try
        // may take that long.
        match timeout(Duration::from_secs(20), one_request(addr, host)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = anyhow::anyhow!("no answer within 20 s"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.context(format!("{addr} never served {host}")))
}

/// Requests/s at full concurrency and one connection's latency through the node that
/// forwards (a) against the node that holds the tunnel (b), in the same run.
async fn fleet_phase(plan: &Plan, table: &mut Table, bins: &Path, http_up: SocketAddr) {
    eprintln!("fleet: etcd, nodes a and b, an agent on b");
    let rig = async {
        let rig = FleetRig::start(bins, http_up).await?;
        wait_served(rig.owner.http, &rig.agent.public).await?;
        wait_served(rig.forwarding.http, &rig.agent.public).await?;
        anyhow::Ok(rig)
    };
    let rig = match bounded(Duration::from_secs(300), rig).await {
        Ok(rig) => rig,
        Err(e) => return table.failed("fleet", &e),
    };
    let pid = |r: &Relay| r.proc.child.id().unwrap_or_default();
    // For attaching a profiler to the forwarding node during its load.
    eprintln!(
        "fleet: node a (forwarding) pid {}, node b (owner) pid {}, agent pid {}",
        pid(&rig.forwarding),
        pid(&rig.owner),
        rig.agent.proc.child.id().unwrap_or_default()
    );
    let host = rig.agent.public.as_str();
    for (conns, time) in [(plan.conns, plan.http_time), (1, plan.single_time)] {
        let label = if conns == 1 {
            "1 conn".to_string()
        } else {
            format!("{conns} conns")
        };
        let limit = plan.warmup + time + Duration::from_secs(60);
        let pair = async {
            eprintln!("fleet: {conns} connection(s) through node b (owner), {time:?}");
            let owner = bounded(
                limit,
                http_load(rig.owner.http, &Dial::Plain, host, conns, plan.warmup, time),
            )
            .await?;
            eprintln!("fleet: {conns} connection(s) through node a (forwarding), {time:?}");
            let forwarding = bounded(
                limit,
                http_load(
                    rig.forwarding.http,
                    &Dial::Plain,
                    host,
                    conns,
                    plan.warmup,
                    time,
                ),
            )
            .await?;
            anyhow::Ok((forwarding, owner))
        };
        let row = |what: &str| format!("fleet HTTP {what}, {label}, via node a (direct = owner b)");
        match pair.await {
            Ok((f, o)) => {
                table.compare(&row("req/s"), "req/s", f.rate, o.rate, None, None);
                table.compare(&row("p50"), "ms", f.ms(0.5), o.ms(0.5), None, None);
                table.compare(&row("p99"), "ms", f.ms(0.99), o.ms(0.99), None, None);
            }
            Err(e) => table.failed(&format!("fleet HTTP, {label}"), &e),
        }
    }
    table.notes.push(format!(
        "fleet: one etcd ({}) and nodes a and b (release burrowd, one CA, one secret) on \
         loopback, the agent on b; \"via node a\" is the load at a, which sends each visitor \
         connection one hop over its TLS link to b; \"owner b\" is the same load at b",
        etcd_version()
    ));
}

/// Per-item memory of a relay and an agent, and a line describing the raw figures.
struct Memory {
    relay_per: f64,
    agent_per: f64,
    note: String,
}

/// Starts a fresh relay and this binary as an agent with `count` http tunnels; returns RSS.
/// Starts a fresh relay and this binary as an agent with `count` http tunnels; returns
/// both RSS figures and the time the binds took.
async fn rss_with_tunnels(
    bins: &Path,
    http_up: SocketAddr,
    count: usize,
) -> Result<(u64, u64, Duration)> {
    let relay = start_relay(bins, &format!("tunnels-{count}")).await?;
    let start = Instant::now();
    let exe = std::env::current_exe()?;
    let mut agent = Proc::spawn(
        Command::new(exe)
            .arg(AGENT_ARG)
            .arg(relay.control.to_string())
            .arg(&relay.ca)
            .arg(http_up.port().to_string())
            .arg(count.to_string()),
    )?;
    agent
        .wait_for("the agent's tunnels", |l| (l == "READY").then_some(()))
        .await?;
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok((relay.proc.rss_kib()?, agent.rss_kib()?, took))
}

async fn tunnels_phase(bins: &Path, http_up: SocketAddr, count: usize) -> Result<Memory> {
    let (relay_1, agent_1, _) = rss_with_tunnels(bins, http_up, 1).await?;
    let (relay_n, agent_n, took) = rss_with_tunnels(bins, http_up, count).await?;
    let per = |a: u64, b: u64| (b as f64 - a as f64) / (count - 1) as f64;
    Ok(Memory {
        relay_per: per(relay_1, relay_n),
        agent_per: per(agent_1, agent_n),
        note: format!(
            "idle tunnels: relay RSS {relay_1} KiB with 1 tunnel, {relay_n} KiB with {count}; \
             agent RSS {agent_1} KiB with 1, {agent_n} KiB with {count} (fresh processes each); \
             binding {count} tunnels took {:.2} s",
            took.as_secs_f64()
        ),
    })
}

async fn conns_phase(bins: &Path, raw_up: SocketAddr, count: usize) -> Result<Memory> {
    let relay = start_relay(bins, "conns").await?;
    let agent = start_agent(bins, "tcp", raw_up.port(), relay.control, &relay.ca, &[]).await?;
    let public = SocketAddr::from(([127, 0, 0, 1], agent.public.parse()?));
    let warm = open_idle(public, 1).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (relay_0, agent_0) = (relay.proc.rss_kib()?, agent.proc.rss_kib()?);
    let open = bounded(Duration::from_secs(120), open_idle(public, count)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (relay_n, agent_n) = (relay.proc.rss_kib()?, agent.proc.rss_kib()?);
    drop(open);
    drop(warm);
    let per = |a: u64, b: u64| (b as f64 - a as f64) / count as f64;
    Ok(Memory {
        relay_per: per(relay_0, relay_n),
        agent_per: per(agent_0, agent_n),
        note: format!(
            "open connections (tcp tunnel, echo upstream): relay RSS {relay_0} KiB with 1, \
             {relay_n} KiB with {} open; agent RSS {agent_0} KiB with 1, {agent_n} KiB with {}",
            count + 1,
            count + 1
        ),
    })
}
