//! Who may talk to the local API: only loopback names and the bound address as `Host`,
//! and no cross-site requests (DNS-rebinding protection).

use crate::web::state::{error, ApiState};
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::web;
use std::net::SocketAddr;

/// Whether `host` (the Host header) names this API: loopback names or the bound address.
pub fn host_allowed(host: &str, addr: SocketAddr) -> bool {
    let port = addr.port();
    let allowed = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ];
    allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

fn origin_allowed(origin: &str, addr: SocketAddr) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(|h| host_allowed(h, addr))
}

/// Refuses requests with a foreign `Host` or from another site.
pub async fn guard(
    req: ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let addr = req.app_data::<web::Data<ApiState>>().map(|s| s.addr);
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let refuse = |why: &str| error(403, 107, why, why);
    if let Some(addr) = addr {
        if !host_allowed(host, addr) {
            let r = refuse(&format!(
                "host {host:?} is not allowed (DNS rebinding protection)"
            ));
            return Ok(req.into_response(r).map_into_right_body());
        }
        let cross = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        let bad_origin = req
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|o| !origin_allowed(o, addr));
        if cross || bad_origin {
            let r = refuse("cross-site requests are not allowed");
            return Ok(req.into_response(r).map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let a: SocketAddr = "127.0.0.1:4040".parse().unwrap();
        assert!(host_allowed("127.0.0.1:4040", a));
        assert!(host_allowed("localhost:4040", a));
        assert!(!host_allowed("evil.example:4040", a));
        assert!(!host_allowed("127.0.0.1:4041", a));
        assert!(origin_allowed("http://localhost:4040", a));
        assert!(!origin_allowed("http://evil.example", a));
    }
}
