//! A fleet of relay nodes: who owns which name and port anywhere in the fleet (a cache fed
//! by the coordinator's watch, so routing never waits on it), the leases claimed through
//! the coordinator, and the one-hop forwarding of visitors to the node holding their
//! tunnel over authenticated node-to-node links.

#[cfg(feature = "fleet")]
pub mod etcd;
pub mod forward;
pub mod link;

pub use crate::config::FleetConfig;
use crate::registry::{self, now_secs, ClaimError, LeaseKey, Leases};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Which node serves a name or port now (kept under that node's etcd lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// The node holding the agent's session.
    pub node: String,
    /// The session on that node.
    pub session: u64,
    /// The agent identity behind the session.
    pub client: String,
}

/// Who a name or port is kept for, across sessions and nodes (not under any node's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The agent identity holding it.
    pub client: String,
    /// The session that claimed it last.
    pub holder: u64,
    /// The node that session was on.
    pub node: String,
    /// Seconds since the epoch when it lapses; `None` while a session holds it.
    pub expires: Option<u64>,
}

/// A node of the fleet as it announces itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its name.
    pub id: String,
    /// Where other nodes dial it.
    pub addr: String,
    /// The region it serves.
    pub region: Option<String>,
    /// Seconds since the epoch when it joined.
    pub started: u64,
    /// Its burrowd version.
    pub version: String,
    /// Its agent sessions now.
    #[serde(default)]
    pub sessions: Vec<serde_json::Value>,
}

/// Counters of the traffic between nodes.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Visitor connections this node sent to the node holding their tunnel.
    pub forwarded_out: AtomicU64,
    /// Visitor connections other nodes sent here.
    pub forwarded_in: AtomicU64,
    /// Bytes sent to other nodes for forwarded connections.
    pub bytes_out: AtomicU64,
    /// Bytes received from other nodes for forwarded connections.
    pub bytes_in: AtomicU64,
}

/// What a node knows of the whole fleet, as the coordinator's watch last told it.
#[derive(Debug, Default)]
pub struct View {
    /// Routes by lease key text (`host:NAME`, `port:N`).
    pub routes: DashMap<String, RouteRecord>,
    /// Leases by lease key text.
    pub leases: DashMap<String, LeaseRecord>,
    /// Live nodes by id.
    pub nodes: DashMap<String, NodeRecord>,
}

/// Claims and gives back names through the fleet's shared state, atomically.
pub trait Coordinator: Send + Sync + std::fmt::Debug {
    /// Claims `key` for a live session of `client` on this node.
    fn claim(&self, key: &LeaseKey, client: &str, session: u64) -> Result<(), ClaimError>;
    /// Starts the grace period of `key`: its session on this node ended.
    fn release(&self, key: &LeaseKey, client: &str, session: u64);
    /// Gives `key` back at once (an unbind).
    fn forget(&self, key: &LeaseKey, client: &str);
}

/// This node's part in a fleet.
#[derive(Debug)]
pub struct Fleet {
    /// How it joined.
    pub cfg: FleetConfig,
    /// The fleet as the watch shows it.
    pub view: Arc<View>,
    /// Traffic between nodes.
    pub counters: FleetCounters,
    /// Set while the coordinator (etcd) answers.
    pub healthy: Arc<AtomicBool>,
    coordinator: OnceLock<Arc<dyn Coordinator>>,
    /// Bumped on every change of the routes, so a forward waiting for a new owner wakes.
    changed: watch::Sender<u64>,
    /// Links this node dialed to the others.
    pub links: link::Links,
    grace: Duration,
}

impl Fleet {
    /// A node's fleet state, before its coordinator is connected.
    pub fn new(cfg: FleetConfig, grace: Duration) -> Arc<Self> {
        let links = link::Links::new(&cfg);
        Arc::new(Fleet {
            cfg,
            view: Arc::new(View::default()),
            counters: FleetCounters::default(),
            healthy: Arc::new(AtomicBool::new(false)),
            coordinator: OnceLock::new(),
            changed: watch::channel(0).0,
            links,
            grace,
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.cfg.node_id
    }

    /// Sets the coordinator claims go through (once, at start).
    pub fn set_coordinator(&self, c: Arc<dyn Coordinator>) {
        let _ = self.coordinator.set(c);
    }

    /// Tells waiting forwards that routes changed.
    pub fn routes_changed(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Wakes on every change of the routes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The node (other than this one) serving `key`, with its address, if the fleet knows one.
    pub fn remote(&self, key: &str) -> Option<(String, String)> {
        let route = self.view.routes.get(key)?;
        if route.node == self.cfg.node_id {
            return None;
        }
        let addr = self.view.nodes.get(&route.node)?.addr.clone();
        Some((route.node.clone(), addr))
    }

    /// Whether etcd answered the last keep-alive.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Whether the fleet's routes say this node serves `key`.
    pub fn serves_here(&self, key: &str) -> bool {
        self.view
            .routes
            .get(key)
            .is_some_and(|r| r.node == self.cfg.node_id)
    }

    /// The lease key of the most specific name another node serves for `host`, if any.
    pub fn remote_host(&self, host: &str) -> Option<String> {
        burrow_http::hostname::and_wildcards(host)
            .map(|n| format!("host:{n}"))
            .find(|k| self.view.routes.contains_key(k))
            .filter(|k| self.remote(k).is_some())
    }

    /// Whether another node serves tcp port `port`.
    pub fn remote_port(&self, port: u16) -> bool {
        self.remote(&format!("port:{port}")).is_some()
    }

    /// The nodes of the fleet, this one first, for the admin API.
    pub fn nodes(&self) -> Vec<NodeRecord> {
        let mut nodes: Vec<NodeRecord> = self.view.nodes.iter().map(|n| n.clone()).collect();
        nodes.sort_by(|a, b| {
            (b.id == self.cfg.node_id)
                .cmp(&(a.id == self.cfg.node_id))
                .then_with(|| a.id.cmp(&b.id))
        });
        nodes
    }

    fn coordinator(&self) -> Result<&Arc<dyn Coordinator>, ClaimError> {
        self.coordinator
            .get()
            .ok_or_else(|| ClaimError::Unavailable("this node has not joined its fleet yet".into()))
    }

    /// Whether a lease with no expiry is really held: its route must still exist (a node
    /// that died took its routes with its etcd lease).
    fn live(&self, key: &str, lease: &LeaseRecord) -> bool {
        self.view
            .routes
            .get(key)
            .is_some_and(|r| r.client == lease.client)
    }
}

impl Leases for Fleet {
    fn is_free_for(&self, key: &LeaseKey, client_id: &str) -> bool {
        let k = registry::key_str(key);
        if let Some(r) = self.view.routes.get(&k) {
            if r.client != client_id {
                return false;
            }
        }
        match self.view.leases.get(&k) {
            None => true,
            Some(l) => l.client == client_id || l.expires.is_some_and(|e| e <= now_secs()),
        }
    }

    fn held_for(&self, key: &LeaseKey) -> Option<u64> {
        let k = registry::key_str(key);
        let l = self.view.leases.get(&k)?;
        let now = now_secs();
        match l.expires {
            Some(e) => (e > now).then(|| e - now),
            // Its node died holding it: the grace starts when someone first asks.
            None if !self.live(&k, &l) => Some(self.grace.as_secs()),
            None => None,
        }
    }

    fn departed_of(&self, client_id: &str) -> Vec<LeaseKey> {
        let now = now_secs();
        let mut held: Vec<(u64, String)> = self
            .view
            .leases
            .iter()
            .filter(|l| l.client == client_id)
            .filter(|l| match l.expires {
                Some(e) => e > now,
                None => !self.live(l.key(), l.value()),
            })
            .map(|l| (l.expires.unwrap_or(0), l.key().clone()))
            .collect();
        held.sort();
        held.into_iter()
            .filter_map(|(_, k)| registry::parse_key(&k))
            .collect()
    }

    fn claim(&self, key: &LeaseKey, client_id: &str, session: u64) -> Result<(), ClaimError> {
        if !self.healthy.load(Ordering::Acquire) {
            return Err(unreachable(&self.cfg));
        }
        self.coordinator()?.claim(key, client_id, session)
    }

    fn release(&self, key: &LeaseKey, client_id: &str, session: u64) {
        if let Ok(c) = self.coordinator() {
            c.release(key, client_id, session);
        }
    }

    fn forget(&self, key: &LeaseKey, client_id: &str) {
        if let Ok(c) = self.coordinator() {
            c.forget(key, client_id);
        }
    }

    fn flush(&self) {}
}

/// The refusal of a claim while etcd does not answer.
pub fn unreachable(cfg: &FleetConfig) -> ClaimError {
    ClaimError::Unavailable(format!(
        "the fleet's shared state (etcd at {}) is unreachable: new names and ports cannot be \
         claimed until it is back; tunnels already bound keep working",
        cfg.etcd.join(",")
    ))
}

impl crate::team::Elsewhere for Fleet {
    /// `account`'s sessions and tunnels as the other nodes last published them (every
    /// third of the lease time; a dead node's until its lease lapses), but `agent`'s.
    fn usage_of(&self, account: &str, agent: &str) -> crate::team::Usage {
        let mut usage = crate::team::Usage::default();
        fn text<'v>(v: &'v serde_json::Value, field: &str) -> Option<&'v str> {
            v.get(field)?.as_str()
        }
        for node in self.view.nodes.iter() {
            if node.id == self.cfg.node_id {
                continue;
            }
            for session in &node.sessions {
                if text(session, "account") != Some(account)
                    || text(session, "agent") == Some(agent)
                {
                    continue;
                }
                usage.sessions += 1;
                let tunnels = session.get("tunnels").and_then(|t| t.as_array());
                for tunnel in tunnels.into_iter().flatten() {
                    usage.tunnels += 1;
                    usage.tcp += usize::from(text(tunnel, "proto") == Some("tcp"));
                }
            }
        }
        usage
    }
}
