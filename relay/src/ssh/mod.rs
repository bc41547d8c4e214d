//! The SSH gateway: `ssh -R 80:localhost:8080 RELAY http` starts a tunnel without the
//! agent. Each SSH connection that asks for one becomes an agent session inside the relay
//! (see [`bridge`]), so everything the relay does for agents it does for SSH users.

pub mod bridge;
pub mod command;
pub mod handler;
pub mod host_key;

use crate::session::Pending;
use crate::state::RelayState;
use russh::keys::PrivateKey;
use russh::server::Config;
use russh::{Disconnect, MethodKind, MethodSet, SshId};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The agent identity of the SSH key with fingerprint `fingerprint`: its names and
/// sessions are this key's across reconnects.
pub(crate) fn client_id(fingerprint: &str) -> String {
    format!("ssh:{fingerprint}")
}

/// The SSH server's settings for every connection.
pub fn config(host_key: PrivateKey) -> Arc<Config> {
    Arc::new(Config {
        server_id: SshId::Standard(format!("SSH-2.0-burrowd_{}", env!("CARGO_PKG_VERSION")).into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // OpenSSH opens with a "none" attempt to learn the methods; no reason to stall it.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        // A tunnel may sit idle for hours; a dead client is found by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        // A channel's receive window reopens as its reader takes the data (bridge.rs), so a
        // visitor that stops reading holds up only its own channel, with at most its window
        // queued for it; it starts as an agent stream's does.
        window_on_read: true,
        window_size: burrow_protocol::window::INITIAL_WINDOW,
        maximum_packet_size: 32 * 1024,
        ..Config::default()
    })
}

/// Accepts SSH users until the relay stops.
pub async fn run(listener: TcpListener, state: Arc<RelayState>, config: Arc<Config>) {
    let mut stopping = state.stopping.clone();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(err = %e, "ssh accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        // SSH users waiting to start a tunnel share the queue of agents waiting to
        // authenticate: one bound on what strangers can hold open.
        let Some(pending) = Pending::admit(&state) else {
            warn!(%peer, limit = state.cfg.limits.max_pending_agents, "too many connections waiting to authenticate; refusing an ssh connection");
            continue;
        };
        let Ok(sock) = sock.into_std() else { continue };
        let (state, config) = (state.clone(), config.clone());
        let worker = state.pool.pick_index();
        let arbiter = state.pool.get(worker).clone();
        arbiter.spawn(async move {
            // Registered with this worker's reactor: the SSH session, its relay session and
            // its visitors all live on this thread.
            let Ok(sock) = TcpStream::from_std(sock) else {
                return;
            };
            connection(sock, peer, state, config, pending, worker).await;
        });
    }
}

/// Serves one SSH connection until it ends, dropping it if no tunnel starts in time.
async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    state: Arc<RelayState>,
    config: Arc<Config>,
    pending: Pending,
    worker: usize,
) {
    let limit = state.cfg.limits.handshake_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    let pending = Arc::new(Mutex::new(Some(pending)));
    let (gone_tx, gone) = watch::channel(false);
    let handler = handler::Conn::new(state.clone(), peer, worker, pending.clone(), gone);
    let started =
        tokio::time::timeout_at(deadline, russh::server::run_stream(config, sock, handler));
    let running = match started.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return debug!(%peer, err = %e, "ssh handshake failed"),
        Err(_) => return info!(%peer, "ssh client sent no version in time; dropped"),
    };
    let ssh = running.handle();
    tokio::pin!(running);
    let mut closing = state.closing.clone();
    let shutdown = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    tokio::pin!(shutdown);
    let (mut timed, mut closed) = (false, false);
    let result = loop {
        tokio::select! {
            r = &mut running => break r,
            _ = tokio::time::sleep_until(deadline), if !timed => {
                timed = true;
                if pending.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    info!(%peer, timeout = ?limit, "no ssh tunnel started in time; dropped");
                    let why = format!("no tunnel was started within {}s of connecting", limit.as_secs());
                    let _ = ssh.disconnect(Disconnect::ByApplication, why, String::new()).await;
                }
            }
            _ = &mut shutdown, if !closed => {
                closed = true;
                let why = "the relay is shutting down".to_string();
                let _ = ssh.disconnect(Disconnect::ByApplication, why, String::new()).await;
            }
        }
    };
    let _ = gone_tx.send(true);
    if let Err(e) = result {
        debug!(%peer, err = %e, "ssh connection ended");
    }
}
