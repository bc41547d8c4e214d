//! The relay that runs inside the agent when none is configured: the same code as
//! `burrowd`, on loopback, preferring ports 8000 (http) and 8443 (https).

use burrow_relay::{RelayConfig, RelayHandle};
use std::net::{Ipv4Addr, SocketAddr};

/// Starts the embedded relay.
pub async fn start() -> anyhow::Result<RelayHandle> {
    let mut cfg = RelayConfig::loopback();
    // Nobody but this process can reach it, so being open is the point, not a risk.
    cfg.warn_open = false;
    let lo = |p| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    // Fixed ports make URLs easy to remember; fall back to any port when they are taken.
    cfg.http_addr = Some(if free(8000) { lo(8000) } else { lo(0) });
    cfg.https_addr = Some(if free(8443) { lo(8443) } else { lo(0) });
    match burrow_relay::start(cfg.clone()).await {
        Ok(r) => Ok(r),
        // Another process took a preferred port between the check and the bind.
        Err(_) => {
            cfg.http_addr = Some(lo(0));
            cfg.https_addr = Some(lo(0));
            burrow_relay::start(cfg).await
        }
    }
}

fn free(port: u16) -> bool {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}
