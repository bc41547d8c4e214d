//! Public TCP ports for tcp tunnels: one accept loop per port, routed through the
//! router so a reconnecting agent takes its port back without a rebind.

use crate::affinity::Affinity;
use crate::config::PortRange;
use crate::fleet::forward::{forward, Kind, Outcome};
use crate::registry::{ClaimError, LeaseKey};
use crate::router::Route;
use crate::state::RelayState;
use burrow_http::workers::Connection;
use burrow_protocol::control::StreamMeta;
use burrow_protocol::mux::splice;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

/// Why a tcp tunnel gets no public port.
#[derive(Debug, thiserror::Error)]
pub enum BindPortError {
    /// The requested port is outside `--tcp-ports`.
    #[error("port {port} is outside this relay's tcp port range {}-{}", .range.start, .range.end)]
    OutOfRange {
        /// The port asked for.
        port: u16,
        /// The relay's range.
        range: PortRange,
    },
    /// Another agent holds the port, or its lease keeps it for a departed one.
    #[error("{0}")]
    Taken(ClaimError),
    /// The port cannot be listened on (in use by another program, or not permitted).
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        /// The address tried.
        addr: SocketAddr,
        /// What the system said.
        err: io::Error,
    },
    /// The listener could not be handed to the runtime or asked for its port.
    #[error("{0}")]
    Io(io::Error),
    /// Every attempt at a random free port in the range failed.
    #[error("no free tcp port on this relay")]
    Exhausted,
}

/// Claims and listens on a port for `client`: the requested one, or a free one.
pub fn bind_port(
    state: &Arc<RelayState>,
    requested: Option<u16>,
    client: &str,
    session: u64,
) -> Result<u16, BindPortError> {
    let range = state.cfg.tcp_ports;
    if let Some(p) = requested {
        if !range.contains(p) {
            return Err(BindPortError::OutOfRange { port: p, range });
        }
        state
            .registry
            .claim(&LeaseKey::Port(p), client, session)
            .map_err(BindPortError::Taken)?;
        if !state.port_listeners.contains_key(&p) {
            listen(state, p)?;
        }
        return Ok(p);
    }
    for _ in 0..64 {
        let candidate = if range.start == 0 {
            0
        } else {
            range.start + (rand::random::<u32>() % (range.end - range.start + 1) as u32) as u16
        };
        if candidate != 0
            && (state.port_listeners.contains_key(&candidate)
                || state.team.port_reserved(candidate)
                || !state
                    .registry
                    .is_free_for(&LeaseKey::Port(candidate), client))
        {
            continue;
        }
        let Ok(port) = listen(state, candidate) else {
            continue;
        };
        if state
            .registry
            .claim(&LeaseKey::Port(port), client, session)
            .is_ok()
        {
            return Ok(port);
        }
    }
    Err(BindPortError::Exhausted)
}

/// Listens on `port` for its tunnel, wherever in the fleet that tunnel is bound.
pub fn listen(state: &Arc<RelayState>, port: u16) -> Result<u16, BindPortError> {
    let addr = SocketAddr::new(state.cfg.tcp_bind, port);
    let std_listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|err| BindPortError::Listen { addr, err })?;
    let listener = TcpListener::from_std(std_listener).map_err(BindPortError::Io)?;
    let port = listener.local_addr().map_err(BindPortError::Io)?.port();
    state.port_listeners.insert(port, ());
    actix_rt::spawn(accept_loop(listener, port, state.clone()));
    Ok(port)
}

async fn accept_loop(listener: TcpListener, port: u16, state: Arc<RelayState>) {
    let mut stopping = state.stopping.clone();
    let mut janitor = tokio::time::interval(Duration::from_secs(5));
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(port, err = %e, "accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => break,
            _ = janitor.tick() => {
                // Close the port once nobody routes it and its lease has lapsed.
                let remote = state.fleet.as_ref().is_some_and(|f| f.remote_port(port));
                if state.router.lookup_port(port).is_none()
                    && !remote
                    && state.registry.is_free_for(&LeaseKey::Port(port), "")
                {
                    break;
                }
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let Some(route) = state.router.lookup_port(port) else {
            forward_or_close(&state, sock, port, peer);
            continue;
        };
        if !state.team.allowed(route.account.as_deref(), peer.ip()) {
            info!(port, %peer, "visitor not on the account's IP whitelist; closed");
            continue;
        }
        // The route is known at accept, so the socket goes straight to a worker that
        // holds one of the session's lanes, and its stream opens on that lane.
        let worker = state.affinity.worker_for(&route.lanes);
        let affinity = state.affinity.clone();
        let job = move |sock| async move { carry(sock, route, peer, port, &affinity).await };
        Connection::spawn_socket(state.pool.get(worker), state.open.clone(), sock, job);
    }
    state.port_listeners.remove(&port);
    info!(port, "tcp port closed");
}

/// Carries a tcp visitor to the agent over a lane of the tunnel's session.
async fn carry<IO>(io: IO, route: Arc<Route>, peer: SocketAddr, port: u16, affinity: &Affinity)
where
    IO: AsyncRead + AsyncWrite,
{
    let meta = StreamMeta {
        tunnel_id: route.tunnel_id,
        remote_addr: peer.to_string(),
        scheme: "tcp".into(),
    };
    let Ok(stream) = affinity.open(&route.lanes, &meta) else {
        return;
    };
    let _open = route.counters.connection();
    match splice(io, stream).await {
        Ok(moved) => route.counters.add_bytes(moved.to_mux, moved.from_mux),
        Err(e) => debug!(port, %peer, err = %e, "tcp connection ended with an error"),
    }
}

/// A visitor on a port no tunnel of this node serves: sent to the fleet's node that does,
/// or closed.
fn forward_or_close(state: &Arc<RelayState>, sock: TcpStream, port: u16, peer: SocketAddr) {
    let Some(fleet) = state.fleet.clone().filter(|f| f.remote_port(port)) else {
        debug!(port, %peer, "no tunnel on port; closing");
        return;
    };
    let key = format!("port:{port}");
    let again = state.clone();
    let job = move |sock| async move {
        match forward(&fleet, sock, Bytes::new(), Kind::Tcp, &key, peer).await {
            Outcome::Done => {}
            // The tunnel came here meanwhile (its agent moved to this node).
            Outcome::Here(sock, _) => match again.router.lookup_port(port) {
                Some(route) if again.team.allowed(route.account.as_deref(), peer.ip()) => {
                    carry(sock, route, peer, port, &again.affinity).await;
                }
                _ => debug!(port, %peer, "no tunnel on port; closing"),
            },
            Outcome::Gone(..) => debug!(port, %peer, "no node serves the port; closing"),
        }
    };
    Connection::spawn_socket(state.pool.pick(), state.open.clone(), sock, job);
}

/// Serves a tcp visitor another node forwarded here.
pub async fn serve_forwarded<IO>(io: IO, port: u16, peer: SocketAddr, state: &RelayState)
where
    IO: AsyncRead + AsyncWrite,
{
    let Some(route) = state.router.lookup_port(port) else {
        return debug!(port, %peer, "forwarded visitor for a port no tunnel serves here");
    };
    if !state.team.allowed(route.account.as_deref(), peer.ip()) {
        return info!(port, %peer, "visitor not on the account's IP whitelist; closed");
    }
    carry(io, route, peer, port, &state.affinity).await;
}
