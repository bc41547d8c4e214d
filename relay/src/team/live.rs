//! The agent sessions connected now and their tunnels, as the admin API, the dashboard and
//! the metrics show them, with the counters public connections add to.

use actix::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Asks a session to end (kicked by the operator, or its token revoked).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Kick(pub String);

/// Traffic of one tunnel, added to by the connections it serves.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    /// Public connections accepted.
    pub connections: AtomicU64,
    /// Public connections open now.
    pub open: AtomicU64,
    /// HTTP requests forwarded (http tunnels).
    pub requests: AtomicU64,
    /// Bytes from visitors to the agent.
    pub bytes_in: AtomicU64,
    /// Bytes from the agent to visitors.
    pub bytes_out: AtomicU64,
}

impl TunnelCounters {
    /// Counts a connection open until the guard drops.
    pub fn connection(self: &Arc<Self>) -> OpenGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(self.clone())
    }

    /// Adds a finished connection's bytes (summed by the connection, added once).
    pub fn add_bytes(&self, inbound: u64, outbound: u64) {
        self.bytes_in.fetch_add(inbound, Ordering::Relaxed);
        self.bytes_out.fetch_add(outbound, Ordering::Relaxed);
    }

    /// A snapshot for display.
    pub fn view(&self) -> CountersView {
        CountersView {
            connections: self.connections.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// Keeps a connection counted as open.
#[derive(Debug)]
pub struct OpenGuard(Arc<TunnelCounters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters as numbers.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct CountersView {
    /// Public connections accepted.
    pub connections: u64,
    /// Public connections open now.
    pub open: u64,
    /// HTTP requests forwarded.
    pub requests: u64,
    /// Bytes from visitors to the agent.
    pub bytes_in: u64,
    /// Bytes from the agent to visitors.
    pub bytes_out: u64,
}

/// A bound tunnel of a live session.
#[derive(Debug, Clone)]
pub struct LiveTunnel {
    /// The relay's id of the tunnel.
    pub id: u64,
    /// `http`, `tls` or `tcp`.
    pub proto: String,
    /// Its public URLs.
    pub urls: Vec<String>,
    /// The agent's free-form `metadata` for it.
    pub metadata: Option<String>,
    /// Its traffic.
    pub counters: Arc<TunnelCounters>,
}

/// A connected agent session.
#[derive(Debug)]
pub struct LiveSession {
    /// The relay's id of the session.
    pub id: u64,
    /// The agent's identity within its account (the lease owner): its names, and in a
    /// fleet its sessions elsewhere, are its own across reconnects.
    pub agent: String,
    /// The account it authenticated as (none on an open relay).
    pub account: Option<String>,
    /// The token it authenticated with.
    pub token_id: Option<String>,
    /// How it came: `agent` (or `ssh`).
    pub via: &'static str,
    /// The agent's version string.
    pub client_version: String,
    /// The agent's address.
    pub peer: SocketAddr,
    /// The region it runs in.
    pub region: String,
    /// When it authenticated (seconds since the epoch).
    pub started: u64,
    /// Its tunnels now.
    pub tunnels: Mutex<Vec<LiveTunnel>>,
    /// Ends the session.
    pub kick: Recipient<Kick>,
}

impl LiveSession {
    fn tunnels(&self) -> std::sync::MutexGuard<'_, Vec<LiveTunnel>> {
        self.tunnels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the admin API shows of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The relay's id of the session.
    pub id: String,
    /// Its account, if any.
    pub account: Option<String>,
    /// The agent's identity (`ACCOUNT/CLIENT_ID`, or the client id on an open relay).
    pub agent: String,
    /// The token it used, by id.
    pub token_id: Option<String>,
    /// `agent` or `ssh`.
    pub via: &'static str,
    /// The agent's version string.
    pub client_version: String,
    /// The agent's address.
    pub addr: String,
    /// Its region.
    pub region: String,
    /// When it started (seconds since the epoch).
    pub started: u64,
    /// Its tunnels.
    pub tunnels: Vec<TunnelView>,
}

/// What the admin API shows of a tunnel.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelView {
    /// The relay's id of the tunnel.
    pub id: String,
    /// `http`, `tls` or `tcp`.
    pub proto: String,
    /// Its public URLs.
    pub urls: Vec<String>,
    /// The agent's `metadata`.
    pub metadata: Option<String>,
    /// Its traffic.
    pub counters: CountersView,
}

/// Every live session.
#[derive(Debug, Default)]
pub struct Live {
    sessions: dashmap::DashMap<u64, Arc<LiveSession>>,
    /// Traffic of the tunnels that went away, by account (`""` on an open relay): the
    /// per-account sums of `/metrics` are counters, and a counter must not go down when a
    /// tunnel stops.
    retired: Mutex<HashMap<String, CountersView>>,
}

impl Live {
    /// Records a session that authenticated.
    pub fn add(&self, session: LiveSession) {
        self.sessions.insert(session.id, Arc::new(session));
    }

    /// Forgets a session that ended.
    pub fn remove(&self, id: u64) {
        if let Some((_, s)) = self.sessions.remove(&id) {
            for t in s.tunnels().drain(..) {
                self.retire(&s, &t);
            }
        }
    }

    fn retire(&self, s: &LiveSession, t: &LiveTunnel) {
        let v = t.counters.view();
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let sum = retired
            .entry(s.account.clone().unwrap_or_default())
            .or_default();
        sum.connections += v.connections;
        sum.requests += v.requests;
        sum.bytes_in += v.bytes_in;
        sum.bytes_out += v.bytes_out;
    }

    /// Traffic of the tunnels that went away, by account (`""` for sessions without one).
    pub fn retired(&self) -> Vec<(String, CountersView)> {
        let retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = retired.iter().map(|(a, v)| (a.clone(), *v)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Records a tunnel bound by session `id`.
    pub fn add_tunnel(&self, id: u64, tunnel: LiveTunnel) {
        if let Some(s) = self.sessions.get(&id) {
            s.tunnels().push(tunnel);
        }
    }

    /// Changes the URLs of a tunnel (its schemes changed).
    pub fn set_urls(&self, id: u64, tunnel: u64, urls: Vec<String>) {
        if let Some(s) = self.sessions.get(&id) {
            if let Some(t) = s.tunnels().iter_mut().find(|t| t.id == tunnel) {
                t.urls = urls;
            }
        }
    }

    /// Forgets a tunnel that stopped.
    pub fn remove_tunnel(&self, id: u64, tunnel: u64) {
        if let Some(s) = self.sessions.get(&id) {
            let gone: Vec<_> = {
                let mut tunnels = s.tunnels();
                let (gone, kept) = tunnels.drain(..).partition(|t| t.id == tunnel);
                *tunnels = kept;
                gone
            };
            for t in &gone {
                self.retire(&s, t);
            }
        }
    }

    fn all(&self) -> Vec<Arc<LiveSession>> {
        let mut all: Vec<_> = self.sessions.iter().map(|s| s.clone()).collect();
        all.sort_by_key(|s| (s.started, s.id));
        all
    }

    /// Sessions of `account` now.
    pub fn sessions_of(&self, account: &str) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.account.as_deref() == Some(account))
            .count()
    }

    /// Tunnels of `account` now, and how many of them are tcp.
    pub fn tunnels_of(&self, account: &str) -> (usize, usize) {
        let mut counts = (0, 0);
        for s in self.sessions.iter() {
            if s.account.as_deref() == Some(account) {
                for t in s.tunnels().iter() {
                    counts.0 += 1;
                    counts.1 += usize::from(t.proto == "tcp");
                }
            }
        }
        counts
    }

    /// Ends every session `pick` selects, telling each `why`; returns how many.
    pub fn kick_where(&self, why: &str, pick: impl Fn(&LiveSession) -> bool) -> usize {
        let chosen: Vec<_> = self.all().into_iter().filter(|s| pick(s)).collect();
        for s in &chosen {
            s.kick.do_send(Kick(why.to_string()));
        }
        chosen.len()
    }

    /// Every live session as the admin API shows it, oldest first.
    pub fn views(&self) -> Vec<SessionView> {
        self.all()
            .iter()
            .map(|s| SessionView {
                id: format!("{:016x}", s.id),
                account: s.account.clone(),
                agent: s.agent.clone(),
                token_id: s.token_id.clone(),
                via: s.via,
                client_version: s.client_version.clone(),
                addr: s.peer.to_string(),
                region: s.region.clone(),
                started: s.started,
                tunnels: s
                    .tunnels()
                    .iter()
                    .map(|t| TunnelView {
                        id: format!("{:016x}", t.id),
                        proto: t.proto.clone(),
                        urls: t.urls.clone(),
                        metadata: t.metadata.clone(),
                        counters: t.counters.view(),
                    })
                    .collect(),
            })
            .collect()
    }
}
