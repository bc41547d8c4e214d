//! burrow, the agent: exposes local servers through a Burrow relay, driven by ngrok v2's
//! command line. With no relay configured it runs one in the same process on loopback.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod cli;
pub mod connection;
pub mod embedded;
pub mod logfmt;
pub mod session;
pub mod supervisor;

pub use supervisor::Supervisor as AgentSupervisor;
pub mod tunnel;

use actix::prelude::*;
use anyhow::Context as _;
use cli::{Command, Flags};
use session::SessionConfig;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
pub use supervisor::AgentEvent;
use supervisor::{Shutdown, Supervisor};
use tunnel::TunnelSpec;

/// The agent's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds the TLS client settings: the relay's CA from a PEM file, or the system roots.
pub fn client_tls(
    root_cas: Option<&str>,
    extra_pem: Option<&str>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let mut add_pem = |pem: &[u8], origin: &str| -> anyhow::Result<()> {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.with_context(|| format!("bad PEM in {origin}"))?;
            roots
                .add(cert)
                .with_context(|| format!("bad CA certificate in {origin}"))?;
            n += 1;
        }
        anyhow::ensure!(n > 0, "no certificate found in {origin}");
        Ok(())
    };
    if let Some(pem) = extra_pem {
        add_pem(pem.as_bytes(), "the embedded relay's CA")?;
    }
    match root_cas {
        None if extra_pem.is_some() => {}
        None | Some("host") | Some("trusted") => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read root_cas file {path}"))?;
            add_pem(&pem, path)?;
        }
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A fresh random identity for this agent process.
pub fn new_client_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Session settings for a relay at `server` (`host:port`).
pub fn session_config(
    server: &str,
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
) -> anyhow::Result<SessionConfig> {
    let host = match server.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h.trim_start_matches('[').trim_end_matches(']'),
        _ => anyhow::bail!("invalid -server {server:?}: want HOST:PORT"),
    };
    let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("invalid -server host {host:?}"))?;
    Ok(SessionConfig {
        server_addr: server.to_string(),
        server_name,
        tls,
        token,
        client_id: new_client_id(),
        max_backoff: Duration::from_secs(10),
    })
}

/// Starts the supervisor (and through it the session) in the running actix system.
pub fn start(
    session: SessionConfig,
    tunnels: Vec<TunnelSpec>,
    events: Box<dyn Fn(AgentEvent)>,
) -> Addr<Supervisor> {
    Supervisor::new(session, tunnels, events).start()
}

fn tunnel_from_flags(command: &Command, flags: &Flags) -> anyhow::Result<TunnelSpec> {
    use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};
    let (proto, addr) = match command {
        Command::Http(a) => (TunnelProto::Http, a),
        Command::Tcp(a) => (TunnelProto::Tcp, a),
        _ => unreachable!("only tunnel commands reach here"),
    };
    let local = addr::parse(proto, addr).map_err(anyhow::Error::msg)?;
    let bind_tls = match &flags.bind_tls {
        Some(v) => tunnel::parse_bind_tls(v).map_err(anyhow::Error::msg)?,
        None => BindTls::Both,
    };
    let remote_port = match (&flags.remote_addr, proto) {
        (Some(r), TunnelProto::Tcp) => {
            let p = r.rsplit(':').next().unwrap_or(r);
            Some(p.parse::<u16>().ok().filter(|p| *p > 0).with_context(|| {
                format!("invalid -remote-addr {r:?}: want HOST:PORT with a port 1-65535")
            })?)
        }
        (Some(_), _) => anyhow::bail!("-remote-addr applies to tcp tunnels only"),
        _ => None,
    };
    if proto == TunnelProto::Tcp && (flags.subdomain.is_some() || flags.hostname.is_some()) {
        anyhow::bail!(
            "-subdomain and -hostname apply to http tunnels; tcp tunnels use -remote-addr"
        );
    }
    Ok(TunnelSpec {
        name: "command_line".into(),
        request: TunnelRequest {
            proto,
            subdomain: flags.subdomain.clone(),
            hostname: flags.hostname.clone(),
            remote_port,
            bind_tls,
            auth: flags.auth.clone(),
        },
        local,
    })
}

/// Where log lines go, and whether the console may print.
fn init_logging(flags: &Flags) -> anyhow::Result<bool> {
    use tracing_subscriber::prelude::*;
    let target = flags.log.as_deref().unwrap_or("false");
    let level = match flags
        .log_level
        .as_deref()
        .unwrap_or("info")
        .to_ascii_lowercase()
        .as_str()
    {
        "dbug" | "debug" | "trace" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "warn" | "warning" => tracing::Level::WARN,
        "eror" | "error" | "crit" => tracing::Level::ERROR,
        other => anyhow::bail!("invalid -log-level {other:?}: want dbug, info, warn or eror"),
    };
    if let Some(f) = flags.log_format.as_deref() {
        anyhow::ensure!(
            matches!(f, "logfmt" | "term" | "json"),
            "invalid -log-format {f:?}: want logfmt, json or term"
        );
    }
    let sink: Box<dyn Write + Send> = match target {
        "false" => return Ok(true),
        "stdout" => Box::new(std::io::stdout()),
        "stderr" => Box::new(std::io::stderr()),
        path => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {path}"))?,
        ),
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("burrow", level)
        .with_target("burrow_relay", level)
        .with_target("burrow_protocol", level);
    tracing_subscriber::registry()
        .with(logfmt::LogfmtLayer::new(sink).with_filter(filter))
        .init();
    Ok(target != "stdout")
}

/// Runs the command line; returns the process exit code.
pub fn run_cli(args: Vec<String>) -> i32 {
    let (command, flags) = match cli::parse(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return 1;
        }
    };
    match &command {
        Command::Version => {
            println!("burrow version {VERSION}");
            return 0;
        }
        Command::Help(_) => {
            print!("{}", cli::HELP);
            return 0;
        }
        _ => {}
    }
    match run_tunnels(&command, &flags) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(obj = "app", err = %format!("{e:#}"), "command failed");
            eprintln!("ERROR: {e:#}");
            1
        }
    }
}

fn run_tunnels(command: &Command, flags: &Flags) -> anyhow::Result<i32> {
    let spec = tunnel_from_flags(command, flags)?;
    let console = init_logging(flags)?;
    burrow_relay::install_crypto();
    let sys = actix_rt::System::new();
    let setup: anyhow::Result<()> = sys.block_on(async {
        let session = match &flags.server {
            Some(server) => {
                let tls = client_tls(flags.root_cas.as_deref(), None)?;
                session_config(server, tls, flags.authtoken.clone())?
            }
            None => {
                let relay = embedded::start().await?;
                let tls = client_tls(None, relay.ca_pem.as_deref())?;
                let server = format!("localhost:{}", relay.control_addr.port());
                // The embedded relay lives as long as the system does.
                Box::leak(Box::new(relay));
                session_config(&server, tls, flags.authtoken.clone())?
            }
        };
        let print: Box<dyn Fn(AgentEvent)> = Box::new(move |ev| match ev {
            AgentEvent::Forwarding { spec, url } => {
                if console {
                    println!("Forwarding  {url} -> {}", spec.local.display());
                }
            }
            AgentEvent::Fatal(msg) => {
                eprintln!("ERROR: {msg}");
                System::current().stop_with_code(1);
            }
        });
        let sup = start(session, vec![spec], print);
        // Signals are registered before anything is announced, so none is missed.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        actix_rt::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            // Exit within a second even if the relay is slow to take the goodbye.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(1));
                std::process::exit(0);
            });
            let _ = sup.send(Shutdown).await;
        });
        Ok(())
    });
    setup?;
    Ok(sys.run_with_code()?)
}
