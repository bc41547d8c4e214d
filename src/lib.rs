//! Test support for Burrow's end-to-end tests and benchmarks: real relays, agents and
//! upstream servers on loopback, every port chosen by the system. Relays and agents run
//! in this process ([`TestRelay`], [`TestAgent`]) or as the real binaries
//! ([`relay_bin`], [`agent_bin`]).

pub mod agent_bin;
pub mod binaries;
mod etcd;
pub mod fleet;
mod in_process;
pub mod process;
pub mod relay_bin;
pub mod tmux;
pub mod upstream;

pub use etcd::TestEtcd;
pub use in_process::{agent_port_tls, Gate, TestAgent, TestRelay, TunnelOpts};
pub use process::{free_port, hermetic, Running, Scratch};

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sets up logging (once, quiet unless `RUST_LOG` says otherwise) and the crypto provider.
pub fn init() {
    burrow_relay::install_crypto();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// The host of a URL, without scheme and port.
pub fn host_of(url: &str) -> String {
    let authority = url.split("://").nth(1).unwrap_or(url);
    authority.split(':').next().unwrap_or_default().to_string()
}

/// The port of a URL.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port in url")
}

/// Proxy variables a spawned agent or client would follow: tests and benchmarks never go
/// through a proxy the environment happens to set.
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// curl, silent but showing errors, never through a proxy from the environment.
pub fn curl_command() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*"]);
    cmd
}

/// Runs curl with `args` (always with a time limit, never through a proxy) and returns
/// (stdout, stderr, success).
pub async fn curl(args: &[&str]) -> (String, String, bool) {
    let mut cmd = curl_command();
    cmd.args(["--max-time", "60"]).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("curl runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// Sends raw bytes to `addr` and reads until the peer closes or `within` passes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], within: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The first flight of a TLS client naming `host`: what a relay reads the SNI from.
pub fn client_hello(host: &str) -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).expect("a DNS name");
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).expect("a TLS client");
    let mut out = Vec::new();
    conn.write_tls(&mut out).expect("the ClientHello");
    out
}

/// Open file descriptors of this process; panics when `/proc` cannot say (a count of 0
/// would make every leak check pass).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|e| panic!("cannot count open file descriptors in /proc/self/fd: {e}"))
        .count()
}

/// A `/proc/self/status` figure in KiB (e.g. `VmRSS`, `VmHWM`); panics when the file or
/// the field cannot be read (a 0 would make every memory bound pass).
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/status: {e}"));
    status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} figure in /proc/self/status:\n{status}"))
}
