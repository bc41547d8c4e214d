//! The owner's side of a fleet: links the other nodes dial, the visitors they forward
//! here (served exactly as if they had come to this node's own listeners), and a listener
//! on every tcp port bound anywhere in the fleet.

use crate::fleet::forward::{Arrival, Forwarded, Kind, PeerIo, ACCEPTED};
use crate::fleet::{link, Fleet};
use crate::state::RelayState;
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, MuxStream, Role};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tracing::{debug, info, warn};

/// Accepts the other nodes' links until the relay stops.
pub async fn run(listener: TcpListener, fleet: Arc<Fleet>, state: Arc<RelayState>) {
    fleet.links.share_budget(state.window_budget.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(state.tls.clone());
    let mut stopping = state.stopping.clone();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(err = %e, "fleet accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        let _ = sock.set_nodelay(true);
        let (fleet, state, acceptor) = (fleet.clone(), state.clone(), acceptor.clone());
        let Ok(sock) = sock.into_std() else { continue };
        let worker = state.pool.pick().clone();
        worker.spawn(async move {
            let Ok(sock) = TcpStream::from_std(sock) else {
                return;
            };
            let hs = link::accept(sock, &acceptor, &fleet.links);
            match timeout(link::HANDSHAKE, hs).await {
                Ok(Ok((tls, node))) => serve_link(tls, node, fleet, state).await,
                Ok(Err(e)) => warn!(%peer, err = %e, "fleet link refused"),
                Err(_) => warn!(%peer, "fleet link handshake not complete in time"),
            }
        });
    }
}

async fn serve_link(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    node: String,
    fleet: Arc<Fleet>,
    state: Arc<RelayState>,
) {
    info!(node, "fleet link accepted");
    let mut cfg = MuxConfig::new(Role::Relay);
    cfg.process_budget = state.window_budget.clone();
    let (_handle, mut events) = mux::start(tls, cfg);
    while let Some(ev) = events.recv().await {
        match ev {
            MuxEvent::Stream(meta, stream) => {
                // Served on the link's own worker, where its mux runs; a visitor whose
                // agent has no lane here moves once, as a direct one would.
                let (fleet, state) = (fleet.clone(), state.clone());
                tokio::spawn(async move { dispatch(meta, stream, fleet, state).await });
            }
            MuxEvent::Control(_) => {}
            MuxEvent::Closed(err) => {
                let err = err.map(|e| e.to_string());
                return info!(node, ?err, "fleet link closed");
            }
        }
    }
}

/// Serves one visitor another node forwarded: accepted only while a live tunnel here
/// serves its name or port, so the forwarding node retries elsewhere otherwise.
async fn dispatch(meta: Bytes, stream: MuxStream, fleet: Arc<Fleet>, state: Arc<RelayState>) {
    let Ok(f) = serde_json::from_slice::<Forwarded>(&meta) else {
        return stream.reset("malformed forward");
    };
    let Ok(peer) = f.peer.parse::<SocketAddr>() else {
        return stream.reset("malformed visitor address");
    };
    let served = match (f.kind, f.key.split_once(':')) {
        (Kind::Http | Kind::Tls, Some(("host", name))) => state.router.lookup_exact(name).is_some(),
        (Kind::Tcp, Some(("port", p))) => p
            .parse()
            .ok()
            .and_then(|p| state.router.lookup_port(p))
            .is_some(),
        _ => false,
    };
    if !served {
        debug!(key = f.key, %peer, "forwarded visitor for a tunnel not here");
        return stream.reset("not served by this node");
    }
    if stream.send(Bytes::from_static(&[ACCEPTED])).await.is_err() {
        return;
    }
    fleet.counters.forwarded_in.fetch_add(1, Ordering::Relaxed);
    state.open.fetch_add(1, Ordering::Relaxed);
    let io = PeerIo(stream);
    let shared = state.http.clone();
    match f.kind {
        Kind::Http => crate::http::serve(io, peer, "http", shared, Arrival::Forwarded).await,
        Kind::Tls => {
            let acceptor = tokio_rustls::TlsAcceptor::from(state.tls.clone());
            let limit = state.cfg.limits.handshake_timeout;
            let arrival = Arrival::Forwarded;
            crate::listeners::tls_visitor(io, peer, acceptor, shared, limit, arrival).await;
        }
        Kind::Tcp => {
            let port = f.key.trim_start_matches("port:").parse().unwrap_or(0);
            crate::tcp::serve_forwarded(io, port, peer, &state).await;
        }
    }
    state.open.fetch_sub(1, Ordering::Relaxed);
}

/// Keeps a listener on every tcp port another node binds, so a visitor may come to any
/// node: driven by the fleet's routes as they change.
pub async fn follow_ports(fleet: Arc<Fleet>, state: Arc<RelayState>) {
    let mut changes = fleet.subscribe();
    let mut stopping = state.stopping.clone();
    // Said once per port: a port this node cannot listen on stays so until it is freed.
    let mut refused = std::collections::HashSet::<u16>::new();
    loop {
        let ports: Vec<u16> = fleet
            .view
            .routes
            .iter()
            .filter(|r| r.node != fleet.node())
            .filter_map(|r| r.key().strip_prefix("port:")?.parse().ok())
            .collect();
        for port in ports {
            if state.port_listeners.contains_key(&port) || refused.contains(&port) {
                continue;
            }
            match crate::tcp::listen(&state, port) {
                Ok(_) => info!(port, "listening for a tcp tunnel on another node"),
                Err(e) => {
                    warn!(port, err = %e, "cannot listen for a tcp tunnel on another node");
                    refused.insert(port);
                }
            }
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}
