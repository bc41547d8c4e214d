//! The agent process: from the settings to a running system (embedded relay or a remote
//! one, the supervisor, the web server, the console), until a signal stops it.

use crate::cli::{Command, Flags};
use crate::config::settings::{load_config, Settings, WebAddr};
use crate::config::ConsoleUi;
use crate::tunnels::connection::Observers;
use crate::tunnels::session::SessionConfig;
use crate::tunnels::spec::TunnelSpec;
use crate::tunnels::supervisor::{AgentEvent, Shutdown, Supervisor};
use crate::{
    client_tls, config, console, embedded, inspect, logfmt, metrics, outbound, session_config,
    session_config_for, start_observed, web, VERSION,
};
use actix::prelude::*;
use anyhow::Context as _;
use burrow_protocol::control::DEFAULT_REGION;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

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

/// Runs the agent for `command` until a signal or a fatal error; returns the exit code.
pub fn run_agent(command: &Command, flags: &Flags) -> anyhow::Result<i32> {
    let (cfg, paths) = load_config(flags)?;
    let settings = Settings::resolve(&cfg, flags, paths)?;
    let tunnels = chosen_tunnels(command, flags, &cfg)?;
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
    sys.block_on(start_agent(settings, tunnels, web, console))?;
    Ok(sys.run_with_code()?)
}

/// The tunnels to start: those `start` names (or all, or none), or the command line's one.
fn chosen_tunnels(
    command: &Command,
    flags: &Flags,
    cfg: &config::Config,
) -> anyhow::Result<Vec<TunnelSpec>> {
    let Command::Start(names) = command else {
        return Ok(vec![config::spec::from_flags(command, flags)?]);
    };
    let configured = cfg.tunnels.clone().unwrap_or_default();
    let chosen: Vec<String> = if flags.none {
        Vec::new()
    } else if flags.all {
        configured.keys().cloned().collect()
    } else {
        names.clone()
    };
    chosen
        .into_iter()
        .map(|n| {
            let t = configured
                .get(&n)
                .with_context(|| format!("tunnel {n:?} is not defined in the configuration"))?;
            Ok(config::spec::from_config(&n, t)?)
        })
        .collect()
}

/// How to reach the relay: the configured one (through a proxy if asked), or an embedded
/// relay started now, which lives as long as the process.
async fn relay_session(settings: &Settings) -> anyhow::Result<SessionConfig> {
    let mut cfg = if settings.servers.is_empty() {
        let relay = embedded::start().await?;
        let tls = client_tls(None, relay.ca_pem.as_deref())?;
        let server = format!("localhost:{}", relay.control_addr.port());
        Box::leak(Box::new(relay));
        session_config(&server, tls, settings.authtoken.clone())?
    } else {
        let tls = client_tls(settings.root_cas.as_deref(), None)?;
        let servers: Vec<&str> = settings.servers.iter().map(String::as_str).collect();
        let mut cfg = session_config_for(&servers, tls, settings.authtoken.clone())?;
        for relay in &mut cfg.relays {
            relay.proxy = outbound::choose(
                settings.http_proxy.as_deref(),
                settings.socks5_proxy.as_deref(),
                &|k| std::env::var(k).ok(),
                relay.host(),
            )?;
        }
        cfg
    };
    cfg.region = settings.region.clone();
    Ok(cfg)
}

/// The console's state and, when shown, its screen.
type Screen = Rc<RefCell<Option<console::Console>>>;
type View = Rc<RefCell<console::ConsoleState>>;

/// Starts everything inside the running system.
async fn start_agent(
    settings: Settings,
    tunnels: Vec<TunnelSpec>,
    web: Option<std::net::TcpListener>,
    console: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let session = relay_session(&settings).await?;
    let show_console = console
        && match settings.console_ui {
            ConsoleUi::True => true,
            ConsoleUi::False => false,
            ConsoleUi::IfTty => std::io::stdout().is_terminal(),
        };
    let view: View = Rc::new(RefCell::new(console::ConsoleState {
        version: VERSION.into(),
        region: settings
            .region
            .clone()
            .unwrap_or_else(|| DEFAULT_REGION.into()),
        ..Default::default()
    }));
    let screen: Screen = Rc::new(RefCell::new(None));
    if show_console {
        let color = console::ColorMode::parse(&settings.console_ui_color)
            .unwrap_or(console::ColorMode::Transparent);
        *screen.borrow_mut() = Some(console::Console::start(color)?);
    }
    let quiet = matches!(settings.log.as_str(), "false" | "");
    let print = printer(view.clone(), screen.clone(), console, quiet);
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
        let state = web::ApiState {
            supervisor: sup.clone(),
            hub: hub.clone(),
            inspector,
            addr,
            settings: settings.rows(),
        };
        actix_rt::spawn(web::serve(listener, state)?);
        tracing::info!(obj = "web", addr = %addr, "starting web service");
    }
    if screen.borrow().is_some() {
        actix_rt::spawn(refresh_console(view, screen.clone(), hub));
    }
    stop_on_signals(screen, sup)
}

/// What the agent's events do: lines on stdout (or the console's state), and the exit on a
/// fatal error.
fn printer(v: View, scr: Screen, console: bool, quiet: bool) -> Box<dyn Fn(AgentEvent)> {
    Box::new(move |ev| match ev {
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
        AgentEvent::Online { region } => {
            let mut v = v.borrow_mut();
            v.status = console::SessionStatus::Online;
            // A relay that predates regions says nothing; keep what the agent asked for.
            if !region.is_empty() {
                v.region = region;
            }
        }
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
    })
}

/// Redraws the console twice a second until it is taken down.
async fn refresh_console(view: View, screen: Screen, hub: metrics::MetricsHub) {
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
}

/// Ctrl-C or SIGTERM: restore the terminal, unbind, exit 0 within a second.
fn stop_on_signals(screen: Screen, sup: Addr<Supervisor>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered before anything is announced, so no signal is missed.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
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
