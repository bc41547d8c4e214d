//! What the web handlers share, and the small helpers every one of them answers with.

use crate::inspect::store::Inspector;
use crate::metrics::MetricsHub;
use crate::tunnels::supervisor::Supervisor;
use crate::tunnels::tunnel::TunnelView;
use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The tunnels' owner.
    pub supervisor: Addr<Supervisor>,
    /// Metrics.
    pub hub: MetricsHub,
    /// Captured exchanges (none when capture is off: `inspect_db_size: -1`).
    pub inspector: Option<Arc<Inspector>>,
    /// The bound address, for Host checks and URIs.
    pub addr: SocketAddr,
    /// Global settings shown on the status page, as (name, value); secrets already masked.
    pub settings: Vec<(String, String)>,
}

/// An API error in ngrok's shape.
pub fn error(status: u16, code: u32, msg: &str, err: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({
        "error_code": code,
        "status_code": status.as_u16(),
        "msg": msg,
        "details": { "err": err },
    }))
}

/// Whether `v`'s exchanges are captured: an http tunnel with `inspect` on, and an
/// inspection store at all (`inspect_db_size: -1` has none, which turns inspection off for
/// every tunnel, as in ngrok).
pub fn inspected(v: &TunnelView, state: &ApiState) -> bool {
    v.spec.inspect
        && v.spec.proto() == burrow_protocol::control::TunnelProto::Http
        && state.inspector.is_some()
}

/// A request body that must be a JSON object; the error response says what is wrong.
pub fn json_object(
    req: &HttpRequest,
    body: &[u8],
) -> Result<Map<String, Value>, Box<HttpResponse>> {
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let refuse = |status, msg: &str, err: &str| Err(Box::new(error(status, 102, msg, err)));
    if !ctype.to_ascii_lowercase().starts_with("application/json") {
        let err = format!("unsupported content type {ctype:?}");
        return refuse(
            415,
            "request body must be JSON (Content-Type: application/json)",
            &err,
        );
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => refuse(400, "invalid JSON body", "the body must be a JSON object"),
        Err(e) => refuse(400, "invalid JSON body", &e.to_string()),
    }
}
