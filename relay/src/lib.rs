//! burrowd, the public side of Burrow: accepts agents over TLS, binds their tunnels, and
//! routes public HTTP, HTTPS and TCP connections to them through a stream mux.

pub mod admin;
pub mod affinity;
pub mod config;
pub mod door;
pub mod fleet;
pub mod http;
pub mod lane;
pub mod listeners;
pub mod peers;
pub mod registry;
pub mod router;
pub mod session;
pub mod sni;
pub mod ssh;
pub mod state;
pub mod tcp;
pub mod team;
pub mod tls;
pub mod tunnel;

pub use config::{Limits, PortRange, PortRangeError, RelayConfig, Secret};
pub use tls::TlsSource;

use burrow_http::workers::ArbiterPool;
use state::RelayState;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// A running relay.
pub struct RelayHandle {
    /// Where the public HTTP listener is bound.
    pub http_addr: Option<SocketAddr>,
    /// Where the public HTTPS listener is bound.
    pub https_addr: Option<SocketAddr>,
    /// Where agents connect.
    pub control_addr: SocketAddr,
    /// Where the SSH gateway listens, when it is on.
    pub ssh_addr: Option<SocketAddr>,
    /// Fingerprint of the SSH gateway's host key, as OpenSSH shows it.
    pub ssh_fingerprint: Option<String>,
    /// The CA certificate agents and clients must trust (self-signed mode).
    pub ca_pem: Option<String>,
    /// SHA-256 fingerprint of the CA or certificate.
    pub fingerprint: String,
    /// Where the admin API, the dashboard and `/metrics` are served, if anywhere.
    pub admin_addr: Option<SocketAddr>,
    admin: Option<admin::AdminServer>,
    state: Arc<RelayState>,
    stopping: watch::Sender<bool>,
    closing: watch::Sender<bool>,
}

impl RelayHandle {
    /// The domain tunnels live under.
    pub fn domain(&self) -> &str {
        &self.state.cfg.domain
    }

    /// Agent connections that have not authenticated (or joined a session) yet.
    pub fn pending_agents(&self) -> usize {
        self.state.pending_agents.load(Ordering::Acquire)
    }

    /// Live lanes of each session that was granted more than one.
    pub fn session_lanes(&self) -> Vec<usize> {
        self.state
            .lane_doors
            .iter()
            .map(|d| d.lanes.live())
            .collect()
    }

    /// Public connections moved to another worker, where their session has a lane.
    pub fn connections_moved(&self) -> u64 {
        self.state.affinity.moved()
    }

    /// Streams opened on a lane of another worker than their public connection's.
    pub fn streams_opened_away(&self) -> u64 {
        self.state.affinity.away()
    }

    /// Accounts, their rules and the live sessions (what the admin API works on).
    pub fn team(&self) -> Arc<team::Team> {
        self.state.team.clone()
    }

    /// The file holding the admin token (`None` without an admin listener, or when the
    /// token was given directly).
    pub fn admin_token_path(&self) -> Option<&std::path::Path> {
        self.admin.as_ref()?.token_file.as_deref()
    }

    /// Bytes the relay's flow-control windows hold beyond their initial size now.
    pub fn window_budget_used(&self) -> u64 {
        self.state.window_budget.used()
    }

    /// Public connections open now.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::Relaxed)
    }

    /// Stops accepting, waits up to the drain grace for open connections, then closes
    /// every agent session.
    pub async fn shutdown(self) {
        let _ = self.stopping.send(true);
        let deadline = Instant::now() + self.state.cfg.drain_grace;
        while self.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.open_connections();
        if left > 0 {
            warn!(
                open = left,
                "drain grace over; closing remaining connections"
            );
        }
        if let Some(a) = &self.admin {
            a.stop().await;
        }
        let _ = self.closing.send(true);
        // Let sessions say goodbye (and start their leases' grace) before the workers stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.state.registry.flush();
        self.state.pool.stop();
        info!("relay stopped");
    }
}

/// Starts a relay inside the running actix system.
pub async fn start(cfg: RelayConfig) -> anyhow::Result<RelayHandle> {
    let router = Arc::new(router::Router::default());
    let tls = tls::RelayTls::new(
        &cfg.tls,
        &cfg.domain,
        cfg.state_dir.as_deref(),
        router.clone(),
    )?;
    let control = listeners::bind(cfg.control_addr, "agents").await?;
    let http = match cfg.http_addr {
        Some(a) => Some(listeners::bind(a, "http").await?),
        None => None,
    };
    let https = match cfg.https_addr {
        Some(a) => Some(listeners::bind(a, "https").await?),
        None => None,
    };
    let ssh = match cfg.ssh_addr {
        Some(a) => {
            let key = ssh::host_key::load_or_create(cfg.state_dir.as_deref())?;
            Some((listeners::bind(a, "ssh").await?, key))
        }
        None => None,
    };
    let ssh_addr = match &ssh {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    let ssh_fingerprint = ssh.as_ref().map(|(_, k)| ssh::host_key::fingerprint(k));
    let port = |l: &Option<tokio::net::TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (http_addr, https_addr) = (port(&http), port(&https));
    let control_addr = control.local_addr()?;
    let admin = match cfg.admin_addr {
        Some(a) => Some(admin::bind(a, &cfg)?),
        None => None,
    };
    let (stopping_tx, stopping) = watch::channel(false);
    let (closing_tx, closing) = watch::channel(false);
    let node = match &cfg.fleet {
        Some(f) => Some(listeners::bind(f.node_addr, "the fleet's other nodes").await?),
        None => None,
    };
    let (team, registry, fleet) = open_store(&cfg, &router)?;
    let pool = ArbiterPool::new(cfg.workers);
    if !team.enabled() && cfg.warn_open {
        warn!("no accounts or auth tokens configured: this is an open relay, any agent may bind tunnels");
    }
    let state = Arc::new(RelayState::new(
        cfg,
        (registry, team, fleet.clone()),
        router,
        pool,
        tls.server_config.clone(),
        (http_addr.map(|a| a.port()), https_addr.map(|a| a.port())),
        (stopping, closing),
    ));
    actix_rt::spawn(listeners::run_control(control, state.clone()));
    if let Some(l) = http {
        actix_rt::spawn(listeners::run_http(l, None, state.clone()));
    }
    if let Some(l) = https {
        let acceptor = tokio_rustls::TlsAcceptor::from(state.tls.clone());
        actix_rt::spawn(listeners::run_http(l, Some(acceptor), state.clone()));
    }
    let admin = match admin {
        Some(bound) => Some(admin::serve(bound, &state)?),
        None => None,
    };
    if let (Some(l), Some(fleet)) = (node, fleet) {
        actix_rt::spawn(peers::run(l, fleet.clone(), state.clone()));
        actix_rt::spawn(peers::follow_ports(fleet, state.clone()));
    }
    if let Some((l, key)) = ssh {
        actix_rt::spawn(ssh::run(l, state.clone(), ssh::config(key)));
    }
    Ok(RelayHandle {
        http_addr,
        https_addr,
        control_addr,
        ssh_addr,
        ssh_fingerprint,
        ca_pem: tls.ca_pem,
        fingerprint: tls.fingerprint,
        admin_addr: admin.as_ref().map(|a| a.addr),
        admin,
        state,
        stopping: stopping_tx,
        closing: closing_tx,
    })
}

/// What holds the relay's accounts and leases, and the fleet it joined.
type Stores = (
    Arc<team::Team>,
    Arc<dyn registry::Leases>,
    Option<Arc<fleet::Fleet>>,
);

/// The store in the state directory and the relay's own leases; or, for a node of a fleet,
/// the fleet's store and leases in etcd.
fn open_store(cfg: &RelayConfig, router: &Arc<router::Router>) -> anyhow::Result<Stores> {
    let Some(fc) = &cfg.fleet else {
        let store: Arc<dyn burrow_store::Store> =
            Arc::new(burrow_store::open(cfg.state_dir.as_deref())?);
        let team = team::Team::open(store.clone(), &cfg.tokens, cfg.region.clone())?;
        let registry = registry::Registry::open(store, cfg.lease_grace)?;
        return Ok((Arc::new(team), Arc::new(registry), None));
    };
    join_fleet(cfg, fc, router)
}

#[cfg(feature = "fleet")]
fn join_fleet(
    cfg: &RelayConfig,
    fc: &fleet::FleetConfig,
    router: &Arc<router::Router>,
) -> anyhow::Result<Stores> {
    let store = burrow_store::etcd::EtcdStore::connect(&fc.etcd, &fc.prefix, fc.timeout)?;
    let store: Arc<dyn burrow_store::Store> = Arc::new(store);
    let team = Arc::new(team::Team::open(store, &cfg.tokens, cfg.region.clone())?);
    let node = fleet::Fleet::new(fc.clone(), cfg.lease_grace);
    let elsewhere: Arc<dyn team::Elsewhere> = node.clone();
    team.count_elsewhere(Arc::downgrade(&elsewhere));
    let hooks = fleet::etcd::Hooks {
        team: team.clone(),
        router: router.clone(),
    };
    fleet::etcd::join(&node, hooks, cfg.region.clone())?;
    Ok((team, node.clone(), Some(node)))
}

#[cfg(not(feature = "fleet"))]
fn join_fleet(
    _: &RelayConfig,
    _: &fleet::FleetConfig,
    _: &Arc<router::Router>,
) -> anyhow::Result<Stores> {
    anyhow::bail!("this burrowd was built without fleet support (the `fleet` feature)")
}

pub use burrow_http::tls::install_crypto;
