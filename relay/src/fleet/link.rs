//! Node-to-node links: TLS, then each side proves it knows the fleet's secret with an HMAC
//! over the TLS session's exported keying material (so a man in the middle that ends the
//! TLS on its side cannot pass a proof on), then one stream mux carrying forwarded visitors.

use super::FleetConfig;
use burrow_protocol::mux::{self, MuxConfig, MuxHandle, Role};
use dashmap::DashMap;
use ring::hmac;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::info;

/// Time a node link's connect, TLS handshake and proofs may take together.
pub const HANDSHAKE: Duration = Duration::from_secs(5);
const PROOF_LEN: usize = 32;
const EXPORTER_LABEL: &[u8] = b"EXPORTER-burrow-fleet-link";

/// The links this node dialed, by node id and worker thread: each worker forwards its
/// visitors over a link of its own, whose mux runs on that same thread, so a forwarded
/// byte is never handed between threads on this side.
pub struct Links {
    map: DashMap<(String, std::thread::ThreadId), MuxHandle>,
    key: hmac::Key,
    node: String,
    tls: Arc<rustls::ClientConfig>,
    /// The relay's window budget, shared with its agents' sessions, once it runs.
    budget: std::sync::OnceLock<Arc<burrow_protocol::window::WindowBudget>>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("open", &self.map.len())
            .finish()
    }
}

fn proof(key: &hmac::Key, ekm: &[u8], role: &[u8], node: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(ekm);
    ctx.update(role);
    ctx.update(node);
    ctx.sign()
}

fn check(key: &hmac::Key, ekm: &[u8], role: &[u8], node: &[u8], got: &[u8]) -> io::Result<()> {
    let want = proof(key, ekm, role, node);
    if bool::from(want.as_ref().ct_eq(got)) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the other node does not know the fleet's secret",
    ))
}

/// Keying material exported from the TLS session, which binds the proofs to it.
fn exported(material: Result<[u8; 32], rustls::Error>) -> io::Result<[u8; 32]> {
    material.map_err(io::Error::other)
}

impl Links {
    /// No links yet; they are dialed when a visitor needs one.
    pub fn new(cfg: &FleetConfig) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, cfg.secret.expose().as_bytes());
        // No ALPN: the listener is the relay's own TLS configuration, whose protocols are
        // the agents' and visitors'.
        let tls = burrow_http::tls::unverified_client_config(&[]);
        Links {
            map: DashMap::new(),
            key,
            node: cfg.node_id.clone(),
            tls: Arc::new(tls),
            budget: std::sync::OnceLock::new(),
        }
    }

    /// Makes the links count against the relay's window budget, so visitors that stop
    /// reading on the forwarding side are bounded as on the owner's.
    pub fn share_budget(&self, budget: Arc<burrow_protocol::window::WindowBudget>) {
        let _ = self.budget.set(budget);
    }

    /// This thread's open link to `node` at `addr`, dialed now if there is none.
    pub async fn get(&self, node: &str, addr: &str) -> io::Result<MuxHandle> {
        let key = (node.to_string(), std::thread::current().id());
        if let Some(h) = self.map.get(&key) {
            if !h.is_closed() {
                return Ok(h.clone());
            }
        }
        let handle = timeout(HANDSHAKE, self.dial(addr)).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("node {node} at {addr}: no link in time"),
            )
        })??;
        info!(node, addr, "fleet link up");
        self.map.insert(key, handle.clone());
        Ok(handle)
    }

    /// Forgets the links to a node that failed, so the next visitors dial anew.
    pub fn drop_link(&self, node: &str) {
        self.map.retain(|(n, _), h| {
            let keep = n != node;
            if !keep {
                h.close("link dropped");
            }
            keep
        });
    }

    async fn dial(&self, addr: &str) -> io::Result<MuxHandle> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let name =
            rustls::pki_types::ServerName::try_from("burrow-fleet").map_err(io::Error::other)?;
        let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let ekm = exported(tls.get_ref().1.export_keying_material(
            [0u8; 32],
            EXPORTER_LABEL,
            None,
        ))?;
        let node = self.node.as_bytes();
        let mut hello = Vec::with_capacity(1 + node.len() + PROOF_LEN);
        hello.push(node.len() as u8);
        hello.extend_from_slice(node);
        hello.extend_from_slice(proof(&self.key, &ekm, b"client", node).as_ref());
        tls.write_all(&hello).await?;
        let mut answer = [0u8; PROOF_LEN];
        tls.read_exact(&mut answer).await?;
        check(&self.key, &ekm, b"server", node, &answer)?;
        let mut cfg = MuxConfig::new(Role::Agent);
        if let Some(b) = self.budget.get() {
            cfg.process_budget = b.clone();
        }
        let (handle, mut events) = mux::start(tls, cfg);
        // The other node opens no streams on a link it did not dial; the events only say
        // when it ends.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        Ok(handle)
    }
}

/// The accepting side of a link: TLS, then the dialing node's proof checked and ours
/// given; answers the session and the dialing node's id.
pub async fn accept(
    sock: TcpStream,
    acceptor: &tokio_rustls::TlsAcceptor,
    links: &Links,
) -> io::Result<(tokio_rustls::server::TlsStream<TcpStream>, String)> {
    let mut tls = acceptor.accept(sock).await?;
    let ekm = exported(
        tls.get_ref()
            .1
            .export_keying_material([0u8; 32], EXPORTER_LABEL, None),
    )?;
    let len = tls.read_u8().await? as usize;
    let mut node = vec![0u8; len];
    tls.read_exact(&mut node).await?;
    let mut got = [0u8; PROOF_LEN];
    tls.read_exact(&mut got).await?;
    let key = &links.key;
    check(key, &ekm, b"client", &node, &got)?;
    tls.write_all(proof(key, &ekm, b"server", &node).as_ref())
        .await?;
    let node = String::from_utf8_lossy(&node).into_owned();
    Ok((tls, node))
}
