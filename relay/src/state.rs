//! What every part of the relay shares: configuration, registry, router, workers.

use crate::config::RelayConfig;
use crate::connection::ArbiterPool;
use crate::http::HttpShared;
use crate::registry::{LeaseKey, Registry};
use crate::router::Router;
use burrow_protocol::control::TunnelRequest;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// The relay's shared state.
pub struct RelayState {
    /// Configuration it runs with.
    pub cfg: RelayConfig,
    /// Tokens and leases.
    pub registry: Arc<Registry>,
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
    /// Public connections open now.
    pub open: Arc<AtomicUsize>,
    /// Agent connections open now that have not authenticated yet.
    pub pending_agents: Arc<AtomicUsize>,
    /// What all sessions' receive windows may grow by together.
    pub window_budget: Arc<burrow_protocol::window::WindowBudget>,
    /// Set when the relay stops accepting.
    pub stopping: watch::Receiver<bool>,
    /// Set when the relay closes its agent sessions.
    pub closing: watch::Receiver<bool>,
    ids: AtomicU64,
}

impl RelayState {
    pub(crate) fn new(
        cfg: RelayConfig,
        router: Arc<Router>,
        pool: ArbiterPool,
        tls: Arc<rustls::ServerConfig>,
        ports: (Option<u16>, Option<u16>),
        stopping: watch::Receiver<bool>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        let registry = Arc::new(Registry::open(
            cfg.tokens.clone(),
            cfg.state_dir.clone(),
            cfg.lease_grace,
        ));
        let window_budget = burrow_protocol::window::WindowBudget::new(cfg.limits.window_budget);
        let http = Arc::new(HttpShared {
            router: router.clone(),
            registry: registry.clone(),
            limits: cfg.limits.clone(),
        });
        RelayState {
            cfg,
            registry,
            router,
            pool,
            http,
            tls,
            http_port: ports.0,
            https_port: ports.1,
            port_listeners: DashMap::new(),
            open: Arc::new(AtomicUsize::new(0)),
            pending_agents: Arc::new(AtomicUsize::new(0)),
            window_budget,
            stopping,
            closing,
            // Ids are random-based so restarts do not reuse a previous run's ids.
            ids: AtomicU64::new(rand::random::<u32>() as u64 * 1024 + 1),
        }
    }

    /// A fresh id for a session or tunnel.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The public host a tunnel request gets.
    pub fn pick_host(&self, t: &TunnelRequest, client: &str) -> Result<String, String> {
        let domain = &self.cfg.domain;
        if let Some(h) = &t.hostname {
            return custom_hostname(h, domain);
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
        Err("could not find a free random subdomain".into())
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

/// Checks a `Host` value an agent asks the relay to put on its requests: it goes into every
/// request head verbatim, so nothing that could end the header line or the head.
pub fn validate_host_header(h: &str) -> Result<(), String> {
    if !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "invalid host_header {h:?}: want a host[:port] without spaces"
        ))
    }
}

/// Checks a custom hostname, exact or wildcard (`*.example.com`).
pub fn custom_hostname(h: &str, domain: &str) -> Result<String, String> {
    let Some(parent) = h.strip_prefix("*.") else {
        return validate_hostname(h);
    };
    let parent = validate_hostname(parent)
        .map_err(|_| format!("invalid wildcard hostname {h:?}: want *.example.com"))?;
    // A wildcard over the relay's own domain would catch every other agent's random names.
    if domain == parent || domain.ends_with(&format!(".{parent}")) {
        return Err(format!(
            "wildcard hostname {h:?} would cover this relay's domain {domain}"
        ));
    }
    Ok(format!("*.{parent}"))
}

/// Checks a subdomain label: 1–63 letters, digits or inner hyphens.
pub fn validate_label(s: &str) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    let ok = !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-');
    if ok {
        Ok(l)
    } else {
        Err(format!(
            "invalid subdomain {s:?}: use 1-63 letters, digits or inner hyphens"
        ))
    }
}

/// Checks a full hostname: dot-separated valid labels, at most 253 bytes (one trailing dot
/// is dropped).
pub fn validate_hostname(h: &str) -> Result<String, String> {
    let l = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    let ok = l.len() <= 253
        && l.contains('.')
        && l.split('.').all(|label| validate_label(label).is_ok());
    if ok {
        Ok(l)
    } else {
        Err(format!("invalid hostname {h:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(validate_label("My-App1").unwrap(), "my-app1");
        for bad in ["", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
        assert!(validate_hostname("dev.example.com").is_ok());
        assert!(validate_hostname("example").is_err());
        assert!(validate_hostname("a..b").is_err());
        assert!(
            validate_hostname("*.example.com").is_err(),
            "wildcards only via pick_host"
        );
        assert_eq!(
            validate_hostname("Dev.Example.COM.").unwrap(),
            "dev.example.com"
        );
        let d = "tunnels.example.com";
        assert_eq!(custom_hostname("*.Dev.Test", d).unwrap(), "*.dev.test");
        assert!(custom_hostname("*.example.com", d)
            .unwrap_err()
            .contains("cover"));
        assert!(custom_hostname("*.tunnels.example.com", d)
            .unwrap_err()
            .contains("cover"));
        assert!(custom_hostname("*.*.dev.test", d)
            .unwrap_err()
            .contains("wildcard"));
        assert!(custom_hostname("a.*.dev.test", d).is_err());
        assert!(validate_host_header("site.dev:8080").is_ok());
        for bad in ["", "a\r\nX-Evil: 1", "a b", "é", &"x".repeat(256)] {
            assert!(validate_host_header(bad).is_err(), "{bad:?}");
        }
    }
}
