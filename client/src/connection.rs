//! One stream from the relay: dial the local server and splice, or answer 502.

use crate::tunnel::TunnelSpec;
use burrow_protocol::control::{StreamMeta, TunnelProto};
use burrow_protocol::mux::{splice, MuxStream};
use burrow_relay::http::pages;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tracing::{debug, warn};

/// How long dialing the local server may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one stream of `spec`'s tunnel.
pub async fn serve(spec: Arc<TunnelSpec>, meta: StreamMeta, stream: MuxStream) {
    let target = spec.local.host_port();
    let dial = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&target)).await;
    let sock = match dial {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return refuse(&spec, &stream, &describe(&e)).await,
        Err(_) => return refuse(&spec, &stream, &format!("timeout after {DIAL_TIMEOUT:?}")).await,
    };
    let _ = sock.set_nodelay(true);
    match splice(sock, stream).await {
        Ok(stats) => {
            debug!(name = %spec.name, remote = %meta.remote_addr, ?stats, "connection closed")
        }
        Err(e) => {
            debug!(name = %spec.name, remote = %meta.remote_addr, err = %e, "connection ended")
        }
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

async fn refuse(spec: &TunnelSpec, stream: &MuxStream, reason: &str) {
    let addr = spec.local.display();
    warn!(obj = "tunnels", name = %spec.name, addr = %addr, err = %reason, "failed to dial local server");
    if spec.proto() == TunnelProto::Http {
        let msg = format!(
            "Burrow could not reach the local server at {addr}: {reason}. Make sure it is running."
        );
        let _ = stream.send(pages::page(502, &msg)).await;
        let _ = stream.finish();
    }
}
