//! burrow, the agent: exposes local servers through a Burrow relay, driven by ngrok v2's
//! command line. With no relay configured it runs one in the same process on loopback.

pub mod cli;
pub mod config;
pub mod console;
pub mod embedded;
pub mod inspect;
pub mod local;
pub mod logfmt;
pub mod metrics;
pub mod outbound;
pub mod run;
pub mod tunnels;
pub mod web;

pub use tunnels::supervisor::Supervisor as AgentSupervisor;

use actix::prelude::*;
use anyhow::Context as _;
use cli::{Command, Flags};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tunnels::connection::Observers;
use tunnels::lane::RelayAddr;
use tunnels::session::SessionConfig;
use tunnels::spec::TunnelSpec;
pub use tunnels::supervisor::AgentEvent;
use tunnels::supervisor::Supervisor;

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
    session_config_for(&[server], tls, token)
}

/// Session settings for a relay reachable at each of `servers` (`host:port`), dialed in
/// turn as [`tunnels::session`] describes; each address's own host names the certificate
/// it must present.
pub fn session_config_for(
    servers: &[&str],
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
) -> anyhow::Result<SessionConfig> {
    anyhow::ensure!(!servers.is_empty(), "no relay address");
    let relays = servers
        .iter()
        .map(|s| RelayAddr::parse(s).map_err(|e| anyhow::anyhow!("invalid -server {s:?}: {e}")))
        .collect::<anyhow::Result<_>>()?;
    Ok(SessionConfig {
        relays,
        tls,
        token,
        region: None,
        client_id: new_client_id(),
        max_backoff: Duration::from_secs(5),
        workers: 0,
    })
}

/// Starts the supervisor (and through it the session) in the running actix system.
pub fn start(
    session: SessionConfig,
    tunnels: Vec<TunnelSpec>,
    events: Box<dyn Fn(AgentEvent)>,
) -> Addr<Supervisor> {
    let obs = Observers {
        metrics: metrics::MetricsHub::start(),
        inspector: None,
    };
    start_observed(session, tunnels, obs, events)
}

/// Like [`start`], sharing existing observers (the API reads them).
pub fn start_observed(
    session: SessionConfig,
    tunnels: Vec<TunnelSpec>,
    obs: Observers,
    events: Box<dyn Fn(AgentEvent)>,
) -> Addr<Supervisor> {
    Supervisor::new(session, tunnels, obs, events).start()
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
        Command::Help(None) => {
            print!("{}", cli::HELP);
            return 0;
        }
        Command::Help(Some(name)) => {
            return match cli::help_for(name) {
                Some(text) => {
                    print!("{text}");
                    0
                }
                None => {
                    eprintln!("ERROR: unknown command {name:?}\nTry 'burrow help' for usage.");
                    1
                }
            };
        }
        Command::Authtoken(token) => return save_token(&flags, token),
        _ => {}
    }
    match run::run_agent(&command, &flags) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            if flags.log.as_deref() == Some("stdout") {
                // Wrappers read stdout: the failure goes there as a logfmt line.
                println!(
                    "t={} lvl=eror msg=\"command failed\" err={}",
                    logfmt::timestamp(std::time::SystemTime::now()),
                    logfmt::quote(&msg)
                );
                // Some wrappers stop reading once the process is gone; give them the line.
                std::thread::sleep(Duration::from_millis(500));
            } else {
                tracing::error!(obj = "app", err = %msg, "command failed");
            }
            eprintln!("ERROR: {msg}");
            1
        }
    }
}

fn save_token(flags: &Flags, token: &str) -> i32 {
    let path = match flags.config.last() {
        Some(p) => PathBuf::from(p),
        None => match config::default_path() {
            Some(p) => p,
            None => {
                eprintln!("ERROR: no configuration path: set HOME or pass -config");
                return 1;
            }
        },
    };
    match config::save_authtoken(&path, token) {
        Ok(()) => {
            let shown = std::fs::canonicalize(&path).unwrap_or(path);
            println!("Authtoken saved to configuration file: {}", shown.display());
            0
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            1
        }
    }
}
