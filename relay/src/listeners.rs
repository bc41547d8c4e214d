//! Accept loops: agents on the control listener, visitors on the http and https ones.

use crate::connection::Connection;
use crate::session::Session;
use crate::state::RelayState;
use actix::prelude::*;
use burrow_protocol::mux::{self, MuxConfig, Role};
use burrow_protocol::preamble;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

/// Accepts agents until the relay stops.
pub async fn run_control(listener: TcpListener, state: Arc<RelayState>) {
    let acceptor = TlsAcceptor::from(state.tls.clone());
    let mut stopping = state.stopping.clone();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(err = %e, "control accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        let _ = sock.set_nodelay(true);
        let (state, acceptor) = (state.clone(), acceptor.clone());
        state.pool.pick().clone().spawn(async move {
            agent_handshake(sock, peer, acceptor, state).await;
        });
    }
}

async fn agent_handshake(
    sock: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<RelayState>,
) {
    let limit = state.cfg.limits.handshake_timeout;
    let hs = async {
        let mut tls = acceptor
            .accept(sock)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        preamble::exchange(&mut tls)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(tls)
    };
    let tls = match timeout(limit, hs).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            warn!(%peer, %err, "agent handshake refused");
            return;
        }
        Err(_) => {
            warn!(%peer, timeout = ?limit, "agent handshake not complete in time");
            return;
        }
    };
    let (handle, mut events) = mux::start(tls, MuxConfig::new(Role::Relay));
    let mut closing = state.closing.clone();
    Session::create(move |ctx| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Events flow into the actor's mailbox; they are control messages and stream
        // handles, never stream bytes.
        actix_rt::spawn(async move {
            while let Some(ev) = events.recv().await {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        ctx.add_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        let h = handle.clone();
        actix_rt::spawn(async move {
            let _ = closing.wait_for(|c| *c).await;
            h.close("relay shutting down");
        });
        Session::new(state, peer, handle)
    });
}

/// Accepts visitors on a public http (`tls` absent) or https listener.
pub async fn run_http(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<RelayState>) {
    let scheme: &'static str = if tls.is_some() { "https" } else { "http" };
    let mut stopping = state.stopping.clone();
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => { debug!(err = %e, "accept failed"); continue; }
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        if state.open.load(Ordering::Relaxed) >= state.cfg.limits.max_connections {
            info!(%peer, limit = state.cfg.limits.max_connections, "connection limit reached; refusing");
            continue;
        }
        let _ = sock.set_nodelay(true);
        let shared = state.http.clone();
        let tls = tls.clone();
        let limit = state.cfg.limits.handshake_timeout;
        Connection::spawn(state.pool.pick(), state.open.clone(), async move {
            match tls {
                None => crate::http::serve(sock, peer, scheme, shared).await,
                Some(acceptor) => match timeout(limit, acceptor.accept(sock)).await {
                    Ok(Ok(tls)) => crate::http::serve(tls, peer, scheme, shared).await,
                    Ok(Err(e)) => info!(%peer, err = %e, "visitor TLS handshake failed"),
                    Err(_) => info!(%peer, "visitor TLS handshake not complete in time"),
                },
            }
        });
    }
}

/// Binds a listener, naming the address on failure.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {addr}: {e}"))
}
