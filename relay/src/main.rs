//! `burrowd`: run a Burrow relay, or (`burrowd admin ...`) manage a running one.

mod admin_cli;

use anyhow::{bail, Context};
use burrow_protocol::control::{valid_region, DEFAULT_REGION};
use burrow_relay::fleet::FleetConfig;
use burrow_relay::{PortRange, PortRangeError, RelayConfig, Secret, TlsSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const HELP: &str = "burrowd: the Burrow relay

USAGE: burrowd [FLAGS]
       burrowd admin COMMAND   manage a running relay (see burrowd admin help)

FLAGS (single or double dash, `--flag value` or `--flag=value`):
  --domain NAME            public domain; tunnels are <name>.NAME (default localhost)
  --http-addr ADDR         public HTTP listener, or \"off\" (default 0.0.0.0:80)
  --https-addr ADDR        public HTTPS listener, or \"off\" (default 0.0.0.0:443)
  --control-addr ADDR      listener for agents (default 0.0.0.0:4443)
  --ssh-addr ADDR          SSH gateway listener for `ssh -R` tunnels (default off); its
                           host key is made once in the state directory
  --ssh-allow-any-key      on a relay without accounts, let any SSH key start tunnels
                           (otherwise only keys registered to an account may)
  --tcp-bind IP            address tcp tunnels listen on (default 0.0.0.0)
  --tcp-ports START-END    ports for tcp tunnels (default 10000-20000)
  --auth-token TOKEN       accepted agent token (repeatable; also BURROWD_AUTH_TOKENS,
                           comma-separated); none configured = open relay
  --auth-token-file PATH   file with one accepted token per line
  --tls-cert PATH          PEM certificate (chain) for the control and https listeners
  --tls-key PATH           PEM private key for it; without both, a CA of the relay's own
                           is created in the state directory and its fingerprint printed
  --state-dir PATH         where the CA and the leases live (default ./burrowd-state)
  --admin-addr ADDR        admin API, dashboard and /metrics, or \"off\"
                           (default 127.0.0.1:4480)
  --admin-token-file PATH  the admin token; made there on first start (mode 0600) if
                           missing (default <state-dir>/admin-token; BURROWD_ADMIN_TOKEN
                           overrides it)
  --lease-grace SECS       how long a departed agent keeps its names (default 300)
  --drain-grace SECS       how long SIGTERM waits for open connections (default 10)
  --max-head BYTES         largest request head (default 65536)
  --head-timeout SECS      time for a request head to arrive (default 10)
  --max-pending-agents N   agent connections allowed to wait for authentication at
                           once (default 128); more are closed at accept
  --window-budget MIB      how far all flow-control windows together may grow beyond
                           their initial 256 KiB each (default 32): bounds what
                           visitors that stop reading can make the relay hold
  --session-window-budget MIB  the same for each lane of an agent session (default 32)
  --region REGION          the region this relay serves (default us); agents asking
                           for another are refused
  --max-lanes N            most lanes (TLS connections, one per worker thread) an agent
                           session may open (default: the relay's worker threads)
  --cluster-etcd URL[,URL] make this relay a node of a fleet sharing its state (accounts,
                           reservations, URL leases, routes) in etcd at these endpoints
  --node-id ID             this node's name in the fleet (required with --cluster-etcd)
  --node-addr IP:PORT      where this node listens for the other nodes and they dial it
                           (required with --cluster-etcd)
  --cluster-secret-file PATH  the secret all nodes share, which authenticates their links
                           (or BURROWD_CLUSTER_SECRET; required with --cluster-etcd)
  --cluster-lease-ttl SECS how long a dead node's routes outlive it (default 10)
  --log-level LEVEL        error, warn, info, debug (default info)
  --version                print the version
  --help                   this text
";

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("admin") {
        std::process::exit(admin_cli::main(args));
    }
    if let Err(e) = run() {
        eprintln!("burrowd: {e:#}");
        std::process::exit(1);
    }
}

fn parse_args() -> anyhow::Result<(RelayConfig, String)> {
    let mut cfg = RelayConfig::loopback();
    let any = |p| SocketAddr::from(([0, 0, 0, 0], p));
    cfg.http_addr = Some(any(80));
    cfg.https_addr = Some(any(443));
    cfg.control_addr = any(4443);
    cfg.tcp_bind = [0, 0, 0, 0].into();
    cfg.tcp_ports = PortRange {
        start: 10000,
        end: 20000,
    };
    cfg.state_dir = Some(PathBuf::from("burrowd-state"));
    cfg.region = Some(DEFAULT_REGION.into());
    // Loopback: the admin API manages every account, so reaching it from elsewhere is a
    // choice the operator makes (or an SSH tunnel).
    cfg.admin_addr = Some(SocketAddr::from(([127, 0, 0, 1], 4480)));
    cfg.admin_token = std::env::var("BURROWD_ADMIN_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let mut cert = None;
    let mut key = None;
    let mut cluster = Cluster::default();
    let mut level = "info".to_string();
    if let Ok(env) = std::env::var("BURROWD_AUTH_TOKENS") {
        cfg.tokens.extend(
            env.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
        );
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            bail!("unexpected argument {arg:?} (see burrowd --help)");
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "version" {
            println!("burrowd version {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        if name == "help" || name == "h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        if name == "ssh-allow-any-key" {
            cfg.ssh_allow_any_key = match inline.as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => bail!("--ssh-allow-any-key takes no value (or true/false), got {v:?}"),
            };
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .with_context(|| format!("flag --{name} needs a value (see burrowd --help)"))?,
        };
        let addr = |v: &str| -> anyhow::Result<Option<SocketAddr>> {
            if v == "off" {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .with_context(|| format!("--{name}: invalid address {v:?} (want IP:PORT or off)"))
        };
        let secs = |v: &str| -> anyhow::Result<Duration> {
            v.parse::<u64>()
                .map(Duration::from_secs)
                .with_context(|| format!("--{name}: invalid number of seconds {v:?}"))
        };
        match name.as_str() {
            "domain" => cfg.domain = value.to_ascii_lowercase(),
            "http-addr" => cfg.http_addr = addr(&value)?,
            "https-addr" => cfg.https_addr = addr(&value)?,
            "ssh-addr" => cfg.ssh_addr = addr(&value)?,
            "control-addr" => {
                cfg.control_addr = addr(&value)?.context("--control-addr cannot be off")?;
            }
            "tcp-bind" => {
                cfg.tcp_bind = value
                    .parse()
                    .with_context(|| format!("--tcp-bind: invalid IP {value:?}"))?;
            }
            "tcp-ports" => {
                cfg.tcp_ports = value
                    .parse()
                    .map_err(|e: PortRangeError| anyhow::anyhow!("--tcp-ports: {e}"))?;
            }
            "region" => {
                if !valid_region(&value) {
                    bail!("--region: invalid region {value:?}: want [a-z0-9][a-z0-9-]{{0,31}}");
                }
                cfg.region = Some(value);
            }
            "auth-token" => cfg.tokens.push(value),
            "auth-token-file" => {
                let text = std::fs::read_to_string(&value)
                    .with_context(|| format!("--auth-token-file: cannot read {value}"))?;
                cfg.tokens.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from),
                );
            }
            "tls-cert" => cert = Some(PathBuf::from(value)),
            "tls-key" => key = Some(PathBuf::from(value)),
            "state-dir" => cfg.state_dir = Some(PathBuf::from(value)),
            "admin-addr" => cfg.admin_addr = addr(&value)?,
            "admin-token-file" => cfg.admin_token_file = Some(PathBuf::from(value)),
            "lease-grace" => cfg.lease_grace = secs(&value)?,
            "drain-grace" => cfg.drain_grace = secs(&value)?,
            "head-timeout" => cfg.limits.head_timeout = secs(&value)?,
            "max-head" => {
                cfg.limits.max_head =
                    value.parse().ok().filter(|n| *n >= 1024).with_context(|| {
                        format!("--max-head: want a byte count of at least 1024, got {value:?}")
                    })?;
            }
            "max-pending-agents" => {
                cfg.limits.max_pending_agents =
                    value.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!("--max-pending-agents: want a count of at least 1, got {value:?}")
                    })?;
            }
            "max-lanes" => {
                cfg.limits.max_lanes =
                    value.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!("--max-lanes: want a count of at least 1, got {value:?}")
                    })?;
            }
            "window-budget" | "session-window-budget" => {
                let mib: u64 = value.parse().ok().filter(|n| *n >= 1).with_context(|| {
                    format!("--{name}: want a size in MiB of at least 1, got {value:?}")
                })?;
                if name == "window-budget" {
                    cfg.limits.window_budget = mib << 20;
                } else {
                    cfg.limits.session_window_budget = mib << 20;
                }
            }
            "log-level" => level = value,
            "cluster-etcd" => {
                cluster.etcd = value
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(String::from)
                    .collect();
            }
            "node-id" => cluster.node_id = Some(value),
            "node-addr" => {
                let a = addr(&value)?.context("--node-addr cannot be off")?;
                cluster.node_addr = Some(a);
            }
            "cluster-secret-file" => {
                let text = std::fs::read_to_string(&value)
                    .with_context(|| format!("--cluster-secret-file: cannot read {value}"))?;
                cluster.secret = Some(text.trim().to_string());
            }
            "cluster-lease-ttl" => cluster.ttl = Some(secs(&value)?),
            other => bail!("unknown flag --{other} (see burrowd --help)"),
        }
    }
    cfg.tls = match (cert, key) {
        (Some(cert), Some(key)) => TlsSource::Files { cert, key },
        (None, None) => TlsSource::SelfSigned,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    cfg.fleet = cluster.config()?;
    Ok((cfg, level))
}

/// The fleet flags as given.
#[derive(Default)]
struct Cluster {
    etcd: Vec<String>,
    node_id: Option<String>,
    node_addr: Option<SocketAddr>,
    secret: Option<String>,
    ttl: Option<Duration>,
}

impl Cluster {
    fn config(self) -> anyhow::Result<Option<FleetConfig>> {
        if self.etcd.is_empty() {
            if self.node_id.is_some() || self.node_addr.is_some() || self.secret.is_some() {
                bail!("--node-id, --node-addr and --cluster-secret-file go with --cluster-etcd");
            }
            return Ok(None);
        }
        let node_id = self
            .node_id
            .filter(|n| !n.is_empty() && n.len() <= 64 && !n.contains(['/', ' ']))
            .context("--cluster-etcd needs --node-id NAME (up to 64 characters, no / or space)")?;
        let node_addr = self.node_addr.context(
            "--cluster-etcd needs --node-addr IP:PORT, where the other nodes reach this one",
        )?;
        let secret = self
            .secret
            .or_else(|| std::env::var("BURROWD_CLUSTER_SECRET").ok())
            .map(|s| s.trim().to_string())
            .filter(|s| s.len() >= 16)
            .context("--cluster-etcd needs the fleet's shared secret (at least 16 characters) in --cluster-secret-file or BURROWD_CLUSTER_SECRET")?;
        let mut fleet = FleetConfig::new(self.etcd, node_id, node_addr, Secret::new(secret));
        if let Some(ttl) = self.ttl {
            if ttl < Duration::from_secs(2) {
                bail!("--cluster-lease-ttl: want at least 2 seconds");
            }
            fleet.lease_ttl = ttl;
        }
        Ok(Some(fleet))
    }
}

fn run() -> anyhow::Result<()> {
    let (cfg, level) = parse_args()?;
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "warn,burrow_relay={level},burrowd={level}"
    ))
    .with_context(|| format!("invalid --log-level {level:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    burrow_relay::install_crypto();
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        // Listen for signals before announcing ourselves: a supervisor may signal at once.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let ca_file = cfg.state_dir.as_ref().map(|d| d.join("ca.pem"));
        let tcp_ports = cfg.tcp_ports;
        let region = cfg.region.clone().unwrap_or_default();
        let fleet = cfg.fleet.clone();
        let any_key = cfg.ssh_allow_any_key;
        let relay = burrow_relay::start(cfg).await?;
        println!(
            "burrowd {} serving {}",
            env!("CARGO_PKG_VERSION"),
            relay.domain()
        );
        println!("  agents      {}", relay.control_addr);
        if let Some(a) = relay.http_addr {
            println!("  http        {a}");
        }
        if let Some(a) = relay.https_addr {
            println!("  https       {a}");
        }
        if let (Some(a), Some(fp)) = (relay.ssh_addr, &relay.ssh_fingerprint) {
            println!("  ssh         {a}");
            println!("  ssh key     {fp}");
            // Said at start: on a relay without accounts, every user is turned away until
            // the operator does one of these.
            let users = match (relay.team().enabled(), any_key) {
                (true, _) => "keys registered to accounts",
                (false, true) => "any key (--ssh-allow-any-key)",
                (false, false) => {
                    "none yet: no accounts; register keys with `burrowd admin ssh-keys add \
                     ACCOUNT KEY`, or start with --ssh-allow-any-key"
                }
            };
            println!("  ssh users   {users}");
        }
        println!("  tcp ports   {tcp_ports}");
        println!("  region      {region}");
        if let Some(a) = relay.admin_addr {
            println!("  admin       http://{a}");
        }
        if let Some(f) = &fleet {
            println!(
                "  fleet       node {} at {} (etcd {})",
                f.node_id,
                f.node_addr,
                f.etcd.join(",")
            );
        }
        println!("  fingerprint {}", relay.fingerprint);
        if let (Some(_), Some(path)) = (&relay.ca_pem, ca_file) {
            // Agents pass this to -root-cas, clients to curl --cacert.
            println!("  ca          {}", path.display());
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping: no new connections, draining open ones");
        relay.shutdown().await;
        anyhow::Ok(())
    })?;
    // Everything is drained and the leases are saved; tearing down the idle worker
    // threads one by one would only make supervisors wait.
    std::process::exit(0)
}
