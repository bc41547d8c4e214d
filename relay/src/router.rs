//! Host → tunnel routing, read on every public connection, so a concurrent map.

use crate::team::live::TunnelCounters;
use burrow_protocol::control::{BindTls, TunnelProto};
use burrow_protocol::lanes::Lanes;
use dashmap::DashMap;
use std::sync::Arc;

/// Where connections for one public host go.
#[derive(Debug, Clone)]
pub struct Route {
    /// The relay's id of the tunnel (carried in every stream's metadata).
    pub tunnel_id: u64,
    /// The agent session's lanes, which streams for visitors are opened on.
    pub lanes: Lanes,
    /// Which schemes the tunnel serves.
    pub bind_tls: BindTls,
    /// The session that bound it.
    pub session_id: u64,
    /// The agent identity behind the session; a reconnect of it may take the route over.
    pub client_id: String,
    /// The `Authorization` header visitors must send, when the tunnel has basic auth.
    pub auth: Option<String>,
    /// `Http` (the relay speaks HTTP with visitors) or `Tls` (bytes pass through by SNI).
    pub proto: TunnelProto,
    /// The `Host` value requests get before they go to the agent, if it rewrites them.
    pub host_header: Option<String>,
    /// The account whose whitelist guards it (none on an open relay).
    pub account: Option<Arc<str>>,
    /// Its traffic, for the metrics.
    pub counters: Arc<TunnelCounters>,
}

impl Route {
    /// Whether visitors arriving over `scheme` may use this tunnel.
    pub fn serves(&self, scheme: &str) -> bool {
        match self.bind_tls {
            BindTls::Both => true,
            BindTls::Https => scheme == "https",
            BindTls::Http => scheme == "http",
        }
    }
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Router {
    hosts: DashMap<String, Arc<Route>>,
    ports: DashMap<u16, Arc<Route>>,
}

impl Router {
    /// Routes `host` (lowercase, no port) to `route`; false if another session holds it.
    pub fn insert(&self, host: &str, route: Route) -> bool {
        use dashmap::mapref::entry::Entry;
        match self.hosts.entry(host.to_string()) {
            Entry::Occupied(mut e) => {
                let old = e.get();
                // A reconnecting agent (same identity, new session) takes its name back;
                // anyone else, including the same session binding it twice, is refused.
                let live = !old.lanes.is_closed();
                if live && (old.client_id != route.client_id || old.session_id == route.session_id)
                {
                    return false;
                }
                e.insert(Arc::new(route));
            }
            Entry::Vacant(e) => {
                e.insert(Arc::new(route));
            }
        }
        true
    }

    /// Replaces the route of `host` if it still belongs to the same tunnel.
    pub fn update(&self, host: &str, route: Route) -> bool {
        match self.hosts.get_mut(host) {
            Some(mut r) if r.tunnel_id == route.tunnel_id => {
                *r = Arc::new(route);
                true
            }
            _ => false,
        }
    }

    /// Removes `host` if it still belongs to `tunnel_id`.
    pub fn remove(&self, host: &str, tunnel_id: u64) {
        self.hosts.remove_if(host, |_, r| r.tunnel_id == tunnel_id);
    }

    /// Finds the tunnel for a host: its own route, else the most specific wildcard
    /// (`*.b.example.com` before `*.example.com`), counting only tunnels whose agent is
    /// still connected.
    pub fn lookup(&self, host: &str) -> Option<Arc<Route>> {
        burrow_http::hostname::and_wildcards(host).find_map(|name| {
            let r = self.hosts.get(&name)?;
            (!r.lanes.is_closed()).then(|| r.clone())
        })
    }

    /// The route bound to exactly `host` (a wildcard pattern is looked up as itself).
    pub fn lookup_exact(&self, host: &str) -> Option<Arc<Route>> {
        self.hosts.get(host).map(|r| r.clone())
    }

    /// Routes a tcp port to `route` (the port's lease was claimed first).
    pub fn insert_port(&self, port: u16, route: Route) {
        self.ports.insert(port, Arc::new(route));
    }

    /// Removes a port if it still belongs to `tunnel_id`.
    pub fn remove_port(&self, port: u16, tunnel_id: u64) {
        self.ports.remove_if(&port, |_, r| r.tunnel_id == tunnel_id);
    }

    /// Finds the tunnel for a tcp port.
    pub fn lookup_port(&self, port: u16) -> Option<Arc<Route>> {
        self.ports.get(&port).map(|r| r.clone())
    }

    /// Number of routed hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no host is routed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}
