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
pub mod tunnels;
pub mod web;

pub use tunnels::supervisor::Supervisor as AgentSupervisor;

use actix::prelude::*;
use anyhow::Context as _;
use cli::{Command, Flags};
use config::settings::{load_config, Settings, WebAddr};
use config::ConsoleUi;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tunnels::connection::Observers;
use tunnels::session::SessionConfig;
use tunnels::spec::TunnelSpec;
pub use tunnels::supervisor::AgentEvent;
use tunnels::supervisor::{Shutdown, Supervisor};

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
        max_backoff: Duration::from_secs(5),
        proxy: None,
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

/// Where log lines go; returns whether stdout is free for the console.
fn init_logging(settings: &Settings) -> anyhow::Result<bool> {
    use tracing_subscriber::prelude::*;
    let sink: Box<dyn Write + Send> = match settings.log.as_str() {
        "false" | "" => return Ok(true),
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
    let level = settings.log_level;
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("burrow", level)
        .with_target("burrow_relay", level)
        .with_target("burrow_http", level)
        .with_target("burrow_protocol", level);
    tracing_subscriber::registry()
        .with(logfmt::LogfmtLayer::with_format(sink, settings.log_format).with_filter(filter))
        .init();
    Ok(settings.log != "stdout")
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
    match run_agent(&command, &flags) {
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

/// Binds the API listener: an explicit address or nothing, else 4040, 4041, ...
fn bind_web(web: &WebAddr) -> anyhow::Result<Option<std::net::TcpListener>> {
    match web {
        WebAddr::Off => Ok(None),
        WebAddr::Explicit(a) => std::net::TcpListener::bind(a).map(Some).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "address already in use".to_string()
            } else {
                e.to_string()
            };
            anyhow::anyhow!("listen tcp {a}: bind: {why}")
        }),
        WebAddr::Default => {
            for port in 4040..4140 {
                if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                    return Ok(Some(l));
                }
            }
            anyhow::bail!(
                "listen tcp 127.0.0.1:4040: bind: address already in use (and the next 99 ports)"
            )
        }
    }
}

fn run_agent(command: &Command, flags: &Flags) -> anyhow::Result<i32> {
    let (cfg, paths) = load_config(flags)?;
    let settings = Settings::resolve(&cfg, flags, paths)?;
    let tunnels: Vec<TunnelSpec> = match command {
        Command::Start(names) => {
            let configured = cfg.tunnels.clone().unwrap_or_default();
            let chosen: Vec<String> = if flags.none {
                Vec::new()
            } else if flags.all {
                configured.keys().cloned().collect()
            } else {
                names.clone()
            };
            let mut out = Vec::new();
            for n in chosen {
                let t = configured
                    .get(&n)
                    .with_context(|| format!("tunnel {n:?} is not defined in the configuration"))?;
                out.push(config::spec::from_config(&n, t)?);
            }
            out
        }
        other => vec![config::spec::from_flags(other, flags)?],
    };
    let console = init_logging(&settings)?;
    if cfg.update.is_some() || cfg.update_channel.is_some() {
        tracing::debug!(
            obj = "updater",
            "burrow does not update itself; update settings are ignored"
        );
    }
    burrow_http::tls::install_crypto();
    let web = bind_web(&settings.web_addr)?;
    let sys = System::new();
    let setup: anyhow::Result<()> = sys.block_on(async {
        let session = match &settings.server {
            Some(server) => {
                let tls = client_tls(settings.root_cas.as_deref(), None)?;
                let mut cfg = session_config(server, tls, settings.authtoken.clone())?;
                let host = server.rsplit_once(':').map_or(server.as_str(), |(h, _)| h);
                cfg.proxy = outbound::choose(
                    settings.http_proxy.as_deref(),
                    settings.socks5_proxy.as_deref(),
                    &|k| std::env::var(k).ok(),
                    host,
                )?;
                cfg
            }
            None => {
                let relay = embedded::start().await?;
                let tls = client_tls(None, relay.ca_pem.as_deref())?;
                let server = format!("localhost:{}", relay.control_addr.port());
                // The embedded relay lives as long as the system does.
                Box::leak(Box::new(relay));
                session_config(&server, tls, settings.authtoken.clone())?
            }
        };
        use std::cell::RefCell;
        use std::io::IsTerminal;
        use std::rc::Rc;
        let show_console = console
            && match settings.console_ui {
                ConsoleUi::True => true,
                ConsoleUi::False => false,
                ConsoleUi::IfTty => std::io::stdout().is_terminal(),
            };
        let view = Rc::new(RefCell::new(console::ConsoleState {
            version: VERSION.into(),
            region: settings.region.clone(),
            ..Default::default()
        }));
        let screen: Rc<RefCell<Option<console::Console>>> = Rc::new(RefCell::new(None));
        if show_console {
            let color = console::ColorMode::parse(&settings.console_ui_color)
                .unwrap_or(console::ColorMode::Transparent);
            *screen.borrow_mut() = Some(console::Console::start(color)?);
        }
        let (v, scr) = (view.clone(), screen.clone());
        let quiet = matches!(settings.log.as_str(), "false" | "");
        let print: Box<dyn Fn(AgentEvent)> = Box::new(move |ev| match ev {
            AgentEvent::Forwarding { spec, url } => {
                let first = v.borrow().forwarding.is_empty();
                v.borrow_mut()
                    .forwarding
                    .push((url.clone(), spec.local.display()));
                if console && scr.borrow().is_none() {
                    if first {
                        if let Some(web) = &v.borrow().web_interface {
                            println!("Web Interface  {web}");
                        }
                    }
                    println!("Forwarding  {url} -> {}", spec.local.display());
                }
            }
            AgentEvent::Online => v.borrow_mut().status = console::SessionStatus::Online,
            AgentEvent::Reconnecting(why) => {
                // With neither logs nor a console, say why nothing is happening.
                if quiet && scr.borrow().is_none() {
                    eprintln!("WARN: relay unreachable, retrying: {why}");
                }
                v.borrow_mut().status = console::SessionStatus::Reconnecting(why);
            }
            AgentEvent::Fatal(msg) => {
                if let Some(mut c) = scr.borrow_mut().take() {
                    c.restore();
                }
                eprintln!("ERROR: {msg}");
                // Give log readers the error line before the process goes.
                std::thread::sleep(Duration::from_millis(500));
                System::current().stop_with_code(1);
            }
        });
        let hub = metrics::MetricsHub::start();
        let inspector = inspect::store::Inspector::new(settings.inspect_db_size);
        let obs = Observers {
            metrics: hub.clone(),
            inspector: inspector.clone(),
        };
        let sup = start_observed(session, tunnels, obs, print);
        if let Some(listener) = web {
            let addr = listener.local_addr()?;
            view.borrow_mut().web_interface = Some(format!("http://{addr}"));
            let server = web::serve(
                listener,
                web::ApiState {
                    supervisor: sup.clone(),
                    hub: hub.clone(),
                    inspector,
                    addr,
                    settings: settings.rows(),
                },
            )?;
            actix_rt::spawn(server);
            tracing::info!(obj = "web", addr = %addr, "starting web service");
        }
        if screen.borrow().is_some() {
            let (view, screen, hub) = (view, screen.clone(), hub);
            actix_rt::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tick.tick().await;
                    let (conns, requests) = console_stats(&hub).await;
                    {
                        let mut v = view.borrow_mut();
                        v.conns = conns;
                        v.requests = requests;
                    }
                    match screen.borrow_mut().as_mut() {
                        Some(c) => {
                            let _ = c.draw(&view.borrow());
                        }
                        None => return,
                    }
                }
            });
        }
        // Signals are registered before anything is announced, so none is missed.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        actix_rt::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if let Some(mut c) = screen.borrow_mut().take() {
                c.restore();
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

/// The console's statistics from the metrics (all tunnels together).
async fn console_stats(
    hub: &metrics::MetricsHub,
) -> (console::ConnStats, Vec<console::RequestLine>) {
    let snaps = hub.snapshot().await;
    let mut c = console::ConnStats::default();
    for m in snaps.values() {
        c.ttl += m.conns.count;
        c.opn += m.conns.gauge.unwrap_or(0);
        c.rt1 += m.conns.rate1;
        c.rt5 += m.conns.rate5;
        // The slowest tunnel's percentiles, in seconds.
        c.p50 = c.p50.max(m.conns.p50 / 1e9);
        c.p90 = c.p90.max(m.conns.p90 / 1e9);
    }
    let requests = hub
        .recent()
        .into_iter()
        .map(|r| console::RequestLine {
            method: r.method,
            path: r.path,
            status_code: Some(r.status),
            status_text: burrow_http::pages::reason(r.status).to_string(),
        })
        .collect();
    (c, requests)
}
