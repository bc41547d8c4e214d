//! What every part of the relay shares: configuration, registry, router, workers.

use crate::affinity::Affinity;
use crate::config::RelayConfig;
use crate::fleet::Fleet;
use crate::http::HttpShared;
use crate::registry::{LeaseKey, Leases};
use crate::router::Router;
use crate::team::Team;
use burrow_http::hostname::{custom_hostname, validate_label};
use burrow_http::workers::ArbiterPool;
use burrow_protocol::control::TunnelRequest;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Why a tunnel request got no host name.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    /// The asked-for name breaks the host-name rules.
    #[error(transparent)]
    Invalid(#[from] burrow_http::hostname::HostnameError),
    /// Every random name tried was taken.
    #[error("could not find a free random subdomain")]
    NoFreeName,
}

/// The relay's shared state.
pub struct RelayState {
    /// Configuration it runs with.
    pub cfg: RelayConfig,
    /// Tokens and leases.
    pub registry: Arc<dyn Leases>,
    /// Accounts, their rules and the live sessions.
    pub team: Arc<Team>,
    /// Host and port routes.
    pub router: Arc<Router>,
    /// Worker arbiters for connections.
    pub pool: ArbiterPool,
    /// What HTTP connections share.
    pub http: Arc<HttpShared>,
    /// TLS for the control and https listeners.
    pub tls: Arc<rustls::ServerConfig>,
    /// Public ports for URLs.
    pub http_port: Option<u16>,
    /// Public https port for URLs.
    pub https_port: Option<u16>,
    /// Ports with a running tcp listener.
    pub port_listeners: DashMap<u16, ()>,
    /// Sessions that further lanes may join, by session id.
    pub lane_doors: DashMap<String, Arc<crate::door::LaneDoor>>,
    /// Public connections open now.
    pub open: Arc<AtomicUsize>,
    /// Where public connections are served.
    pub affinity: Arc<Affinity>,
    /// Agent connections open now that have not authenticated yet.
    pub pending_agents: Arc<AtomicUsize>,
    /// What all sessions' receive windows may grow by together.
    pub window_budget: Arc<burrow_protocol::window::WindowBudget>,
    /// The fleet this relay is a node of, if any.
    pub fleet: Option<Arc<Fleet>>,
    /// Set when the relay stops accepting.
    pub stopping: watch::Receiver<bool>,
    /// Set when the relay closes its agent sessions.
    pub closing: watch::Receiver<bool>,
    ids: AtomicU64,
}

impl RelayState {
    pub(crate) fn new(
        cfg: RelayConfig,
        (registry, team, fleet): (Arc<dyn Leases>, Arc<Team>, Option<Arc<Fleet>>),
        router: Arc<Router>,
        pool: ArbiterPool,
        tls: Arc<rustls::ServerConfig>,
        ports: (Option<u16>, Option<u16>),
        (stopping, closing): (watch::Receiver<bool>, watch::Receiver<bool>),
    ) -> Self {
        let window_budget = burrow_protocol::window::WindowBudget::new(cfg.limits.window_budget);
        let open = Arc::new(AtomicUsize::new(0));
        let affinity = Arc::new(Affinity::new(pool.clone(), open.clone()));
        let http = Arc::new(HttpShared {
            router: router.clone(),
            registry: registry.clone(),
            limits: cfg.limits.clone(),
            affinity: affinity.clone(),
            team: team.clone(),
            fleet: fleet.clone(),
        });
        RelayState {
            cfg,
            registry,
            team,
            router,
            pool,
            http,
            tls,
            http_port: ports.0,
            https_port: ports.1,
            port_listeners: DashMap::new(),
            lane_doors: DashMap::new(),
            open,
            affinity,
            pending_agents: Arc::new(AtomicUsize::new(0)),
            window_budget,
            fleet,
            stopping,
            closing,
            // Ids are random-based so restarts do not reuse a previous run's ids.
            ids: AtomicU64::new(rand::random::<u32>() as u64 * 1024 + 1),
        }
    }

    /// Lanes a session asking for `asked` gets: at most one per worker and at most the
    /// configured cap (an agent that does not ask gets one).
    pub fn lanes_for(&self, asked: u32) -> usize {
        let cap = match self.cfg.limits.max_lanes {
            0 => self.pool.len(),
            n => n.min(self.pool.len()),
        };
        (asked.max(1) as usize).min(cap).max(1)
    }

    /// A fresh id for a session or tunnel.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The public host a tunnel request gets.
    pub fn pick_host(&self, t: &TunnelRequest, client: &str) -> Result<String, PickError> {
        let domain = &self.cfg.domain;
        if let Some(h) = &t.hostname {
            return Ok(custom_hostname(h, domain)?);
        }
        if let Some(s) = &t.subdomain {
            let s = validate_label(s)?;
            return Ok(format!("{s}.{domain}"));
        }
        for _ in 0..64 {
            let host = format!("{:08x}.{domain}", rand::random::<u32>());
            if self
                .registry
                .is_free_for(&LeaseKey::Host(host.clone()), client)
                && self.router.lookup_exact(&host).is_none()
            {
                return Ok(host);
            }
        }
        Err(PickError::NoFreeName)
    }

    /// The public URL for `host` over `scheme`, if the relay listens for it.
    pub fn url(&self, scheme: &str, host: &str) -> Option<String> {
        let (port, default) = match scheme {
            "http" => (self.http_port?, 80),
            // tls tunnels share the https listener, as ngrok's port 443 serves both.
            _ => (self.https_port?, 443),
        };
        Some(if port == default {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        })
    }
}
