//! The relay's configuration: addresses, domain, tokens, TLS, limits.

use crate::tls::TlsSource;
use burrow_protocol::control::{valid_region, DEFAULT_REGION};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Size and time limits on public connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Time a request head may take to arrive, from its first byte (or from accept).
    pub head_timeout: Duration,
    /// Time a kept-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Time a TLS handshake (public or agent) may take.
    pub handshake_timeout: Duration,
    /// Most public connections open at once.
    pub max_connections: usize,
    /// Most agent connections open at once that have not authenticated yet.
    pub max_pending_agents: usize,
    /// Bytes all receive windows of the relay together may grow beyond their initial
    /// 256 KiB: what stalled readers can make it hold, whatever their number.
    pub window_budget: u64,
    /// The same, for the windows of one agent session (each of its lanes).
    pub session_window_budget: u64,
    /// Most lanes (TLS connections) one agent session may have; 0 means one per worker.
    pub max_lanes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            max_pending_agents: 128,
            window_budget: burrow_protocol::window::DEFAULT_PROCESS_BUDGET,
            session_window_budget: burrow_protocol::window::DEFAULT_SESSION_BUDGET,
            max_lanes: 0,
        }
    }
}

/// An inclusive range of TCP ports for tcp tunnels; `0-0` lets the system pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == 0 {
            f.write_str("any free port")
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// A `--tcp-ports` value that is not a usable range; holds the value as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// A bound that is not a port number.
    #[error("invalid port range {0:?}: expected START-END with ports 1-65535")]
    Port(String),
    /// Bounds in the wrong order, or 0 mixed with a real port (0 means any, so only `0-0`).
    #[error(
        "invalid port range {0:?}: expected START-END with START <= END, or 0-0 for any free port"
    )]
    Order(String),
}

impl std::str::FromStr for PortRange {
    type Err = PortRangeError;
    fn from_str(s: &str) -> Result<Self, PortRangeError> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let parse = |x: &str| {
            x.trim()
                .parse::<u16>()
                .map_err(|_| PortRangeError::Port(s.to_string()))
        };
        let (start, end) = (parse(a)?, parse(b)?);
        if start > end || (start == 0) != (end == 0) {
            return Err(PortRangeError::Order(s.to_string()));
        }
        Ok(PortRange { start, end })
    }
}

impl PortRange {
    /// Whether `port` is in the range (any port when the system picks).
    pub fn contains(&self, port: u16) -> bool {
        (self.start == 0 && port > 0) || (self.start..=self.end).contains(&port)
    }
}

/// Everything `burrowd` (or the agent's embedded relay) runs with.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The public domain: tunnels are `<name>.<domain>`.
    pub domain: String,
    /// Public HTTP listener, if any.
    pub http_addr: Option<SocketAddr>,
    /// Public HTTPS listener, if any.
    pub https_addr: Option<SocketAddr>,
    /// Listener for agents.
    pub control_addr: SocketAddr,
    /// Address tcp tunnels listen on.
    pub tcp_bind: IpAddr,
    /// Ports tcp tunnels may use.
    pub tcp_ports: PortRange,
    /// Accepted auth tokens; empty means an open relay.
    pub tokens: Vec<String>,
    /// Certificates for the control and https listeners.
    pub tls: TlsSource,
    /// Where the CA and the leases live; `None` keeps them in memory.
    pub state_dir: Option<PathBuf>,
    /// How long a departed session's names stay reserved for it.
    pub lease_grace: Duration,
    /// How long a stopping relay waits for open connections.
    pub drain_grace: Duration,
    /// Limits on public connections.
    pub limits: Limits,
    /// Worker threads for connections (0: one per core).
    pub workers: usize,
    /// Whether to warn when no tokens are configured (not for the agent's own relay).
    pub warn_open: bool,
    /// The region this relay serves, refusing agents that ask for another; `None` (the
    /// agent's own relay) serves whichever region its one agent asks for.
    pub region: Option<String>,
    /// Listener of the admin API, the dashboard and `/metrics`; `None` runs none.
    pub admin_addr: Option<SocketAddr>,
    /// File holding the admin token; `None` means `admin-token` in the state directory.
    pub admin_token_file: Option<PathBuf>,
    /// An admin token given directly (`BURROWD_ADMIN_TOKEN`, tests), used instead of the file.
    pub admin_token: Option<Secret>,
    /// Listener of the SSH gateway (`ssh -R`), off when `None`.
    pub ssh_addr: Option<SocketAddr>,
    /// Whether a relay without accounts lets any SSH key start tunnels.
    pub ssh_allow_any_key: bool,
    /// The fleet this relay is a node of (`--cluster-etcd`), or `None` for a single relay.
    pub fleet: Option<FleetConfig>,
}

/// A secret that prints as `MASKED`, so configuration dumps and logs never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MASKED")
    }
}

impl RelayConfig {
    /// A relay on loopback with every port chosen by the system: the embedded default.
    pub fn loopback() -> Self {
        let lo = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        RelayConfig {
            domain: "localhost".into(),
            http_addr: Some(lo(0)),
            https_addr: Some(lo(0)),
            control_addr: lo(0),
            tcp_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            tcp_ports: PortRange { start: 0, end: 0 },
            tokens: Vec::new(),
            tls: TlsSource::SelfSigned,
            state_dir: None,
            lease_grace: Duration::from_secs(300),
            drain_grace: Duration::from_secs(10),
            limits: Limits::default(),
            workers: 0,
            warn_open: true,
            region: None,
            admin_addr: None,
            admin_token_file: None,
            admin_token: None,
            ssh_addr: None,
            ssh_allow_any_key: false,
            fleet: None,
        }
    }

    /// The region a session asking for `asked` is served in, or why it is refused.
    pub fn session_region(&self, asked: Option<&str>) -> Result<String, String> {
        match (self.region.as_deref(), asked) {
            (_, Some(asked)) if !valid_region(asked) => Err(format!(
                "invalid region {:?}: want lowercase letters, digits and dashes",
                asked.chars().take(40).collect::<String>()
            )),
            (Some(ours), Some(asked)) if ours != asked => Err(format!(
                "this relay serves region {ours}; the agent asked for region {asked} \
                 (use a server_addr for {asked}, or -region {ours})"
            )),
            (Some(ours), _) => Ok(ours.to_string()),
            (None, asked) => Ok(asked.unwrap_or(DEFAULT_REGION).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regional_relay_serves_its_region_and_an_embedded_one_any() {
        let mut cfg = RelayConfig::loopback();
        assert_eq!(cfg.session_region(None).as_deref(), Ok("us"));
        assert_eq!(cfg.session_region(Some("eu")).as_deref(), Ok("eu"));
        cfg.region = Some("us".into());
        assert_eq!(cfg.session_region(None).as_deref(), Ok("us"));
        assert_eq!(cfg.session_region(Some("us")).as_deref(), Ok("us"));
        let err = cfg.session_region(Some("eu")).unwrap_err();
        assert!(
            err.starts_with("this relay serves region us; the agent asked for region eu"),
            "{err}"
        );
        assert!(cfg.session_region(Some("E U")).is_err());
    }
}

/// How a node joins a fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// etcd endpoints, e.g. `http://10.0.0.5:2379`.
    pub etcd: Vec<String>,
    /// This node's name in the fleet.
    pub node_id: String,
    /// Where this node listens for the other nodes, and where they dial it.
    pub node_addr: SocketAddr,
    /// The secret every node of the fleet shares; it authenticates node links.
    pub secret: Secret,
    /// Time-to-live of the node's etcd lease: how long a dead node's routes outlive it.
    pub lease_ttl: Duration,
    /// Key prefix of everything the fleet keeps in etcd.
    pub prefix: String,
    /// How long a claim may wait on etcd before it is refused.
    pub timeout: Duration,
}

impl FleetConfig {
    /// A configuration with the defaults for everything but the node's identity.
    pub fn new(etcd: Vec<String>, node_id: String, node_addr: SocketAddr, secret: Secret) -> Self {
        FleetConfig {
            etcd,
            node_id,
            node_addr,
            secret,
            lease_ttl: Duration::from_secs(10),
            prefix: "/burrow/".into(),
            timeout: Duration::from_secs(2),
        }
    }
}
