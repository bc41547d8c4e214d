//! The local REST API on `web_addr`, with ngrok v2's paths, status codes and JSON fields,
//! plus Prometheus metrics. Only loopback names and the configured address are accepted
//! as `Host`, and cross-site requests are refused (DNS-rebinding protection).

use crate::config::{Scalar, TunnelConfig};
use crate::metrics::{prometheus, MetricsHub, TunnelMetrics};
use crate::supervisor::{
    AddTunnel, ListTunnels, RemoveTunnel, Supervisor, SupervisorError, TunnelView,
};
use actix::Addr;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The tunnels' owner.
    pub supervisor: Addr<Supervisor>,
    /// Metrics.
    pub hub: MetricsHub,
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

/// Percent-encodes a tunnel name for its `uri`.
pub fn encode_name(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded path segment (malformed escapes are kept as they are).
pub fn decode_name(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `v`'s exchanges are captured: an http tunnel with `inspect` on, and an
/// inspection store at all (`inspect_db_size: -1` has none, which turns inspection off for
/// every tunnel, as in ngrok).
pub(crate) fn inspected(v: &TunnelView, state: &ApiState) -> bool {
    v.spec.inspect
        && v.spec.proto() == burrow_protocol::control::TunnelProto::Http
        && state.hub.inspector.is_some()
}

fn tunnel_json(v: &TunnelView, inspect: bool, m: Option<&TunnelMetrics>) -> Value {
    let m = m.cloned().unwrap_or_default();
    let mut conns = serde_json::to_value(&m.conns).unwrap_or_default();
    conns["gauge"] = json!(m.conns.gauge.unwrap_or(0));
    json!({
        "name": v.name,
        "ID": format!("{:016x}", fxhash(&v.name)),
        "uri": format!("/api/tunnels/{}", encode_name(&v.name)),
        "public_url": v.public_url,
        "proto": v.proto,
        "config": { "addr": v.spec.local.display(), "inspect": inspect },
        "metrics": { "conns": conns, "http": m.http },
    })
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

async fn views(state: &ApiState) -> Vec<Value> {
    let list = state.supervisor.send(ListTunnels).await.unwrap_or_default();
    let snaps = state.hub.snapshot().await;
    list.iter()
        .map(|v| {
            let m = snaps.get(&(v.spec.name.clone(), v.proto.clone()));
            tunnel_json(v, inspected(v, state), m)
        })
        .collect()
}

async fn root() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "uri": "/api/",
        "tunnels": "/api/tunnels",
        "requests": "/api/requests/http",
        "metrics": "/metrics",
    }))
}

async fn list(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "tunnels": views(&state).await, "uri": "/api/tunnels" }))
}

fn name_from(req: &HttpRequest) -> String {
    let raw = req.uri().path().trim_start_matches("/api/tunnels/");
    decode_name(raw)
}

async fn get_one(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let name = name_from(&req);
    match views(&state).await.into_iter().find(|v| v["name"] == name) {
        Some(v) => HttpResponse::Ok().json(v),
        None => error(
            404,
            100,
            &format!("tunnel {name:?} not found"),
            "tunnel not found",
        ),
    }
}

async fn delete_one(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let name = name_from(&req);
    match state.supervisor.send(RemoveTunnel(name.clone())).await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => error(404, 100, &e.to_string(), "tunnel not found"),
        Err(e) => error(500, 101, "internal error", &e.to_string()),
    }
}

/// Turns an API body into the config entry it stands for (same keys as the YAML file).
fn body_to_config(body: &Map<String, Value>) -> Result<(String, TunnelConfig), (String, String)> {
    let bad = |m: &str| (m.to_string(), m.to_string());
    let name = match body.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(bad("invalid field name: want a non-empty string")),
        None => return Err(bad("missing field name")),
    };
    let string = |k: &str| -> Result<Option<String>, (String, String)> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad(&format!(
                "invalid field {k}: want a string, got {other}"
            ))),
        }
    };
    let proto = match string("proto")? {
        None => return Err(bad("missing field proto")),
        Some(p) => match p.as_str() {
            "http" => crate::config::Proto::Http,
            "tcp" => crate::config::Proto::Tcp,
            "tls" => crate::config::Proto::Tls,
            other => {
                return Err((
                    format!("invalid tunnel configuration: unknown protocol {other:?}"),
                    format!("invalid tunnel configuration: unknown protocol {other:?}; want http, tcp or tls"),
                ))
            }
        },
    };
    let addr = string("addr")?.ok_or_else(|| bad("missing field addr"))?;
    let bind_tls = match (body.get("bind_tls"), body.get("schemes")) {
        (Some(Value::Bool(b)), _) => Some(Scalar::Bool(*b)),
        (Some(Value::String(s)), _) => Some(Scalar::Str(s.clone())),
        (Some(other), _) => return Err(bad(&format!("invalid field bind_tls: {other}"))),
        (None, Some(Value::Array(a))) => {
            let has = |s: &str| a.iter().any(|v| v == s);
            Some(match (has("https"), has("http")) {
                (true, true) => Scalar::Str("both".into()),
                (true, false) => Scalar::Bool(true),
                (false, true) => Scalar::Bool(false),
                _ => return Err(bad("invalid field schemes: want http and/or https")),
            })
        }
        (None, Some(other)) => return Err(bad(&format!("invalid field schemes: {other}"))),
        (None, None) => None,
    };
    // `basic_auth` is a list of `user:password` (or one as a string); a tunnel holds one
    // credential, so more, or anything else, is refused rather than leaving it unguarded.
    let auth = match (string("auth")?, body.get("basic_auth")) {
        (Some(a), _) => Some(a),
        (None, None | Some(Value::Null)) => None,
        (None, Some(Value::String(s))) => Some(s.clone()),
        (None, Some(Value::Array(a))) => match a.as_slice() {
            [] => None,
            [Value::String(s)] => Some(s.clone()),
            _ => {
                return Err(bad(
                    "invalid field basic_auth: want one \"user:password\" (a list of one)",
                ))
            }
        },
        (None, Some(other)) => {
            return Err(bad(&format!(
                "invalid field basic_auth: want \"user:password\", got {other}"
            )))
        }
    };
    let inspect = match body.get("inspect") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Some(s == "true"),
        Some(other) => {
            return Err(bad(&format!(
                "invalid field inspect: want true or false, got {other}"
            )))
        }
    };
    Ok((
        name,
        TunnelConfig {
            proto: Some(proto),
            addr: Some(Scalar::Str(addr)),
            inspect: if proto == crate::config::Proto::Http {
                inspect
            } else {
                None
            },
            auth,
            host_header: string("host_header")?,
            bind_tls: if proto == crate::config::Proto::Http {
                bind_tls
            } else {
                None
            },
            subdomain: string("subdomain")?,
            hostname: string("hostname")?,
            crt: string("crt")?,
            key: string("key")?,
            client_cas: string("client_cas")?,
            remote_addr: string("remote_addr")?,
            metadata: string("metadata")?,
        },
    ))
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

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> HttpResponse {
    let map = match json_object(&req, &body) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let (name, cfg) = match body_to_config(&map) {
        Ok(x) => x,
        Err((msg, err)) => return error(400, 102, &msg, &err),
    };
    let spec = match crate::spec::from_config(&name, &cfg) {
        Ok(s) => s,
        Err(e) => return error(400, 102, &format!("invalid tunnel configuration: {e}"), &e),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.supervisor.do_send(AddTunnel(spec, tx));
    let result = match tokio::time::timeout(Duration::from_secs(15), rx).await {
        Ok(Ok(r)) => r,
        _ => Err(SupervisorError::BindFailed(
            "timed out waiting for the relay".into(),
        )),
    };
    match result {
        Ok(()) => match views(&state)
            .await
            .into_iter()
            .find(|v| v["name"] == name.as_str())
        {
            Some(v) => HttpResponse::Created().json(v),
            None => error(
                502,
                103,
                "failed to start tunnel",
                "tunnel vanished after binding",
            ),
        },
        Err(SupervisorError::NameTaken(n)) => error(
            409,
            104,
            &format!("a tunnel named {n:?} already exists"),
            "name taken",
        ),
        Err(SupervisorError::NotOnline) => error(
            503,
            105,
            "failed to start tunnel",
            &SupervisorError::NotOnline.to_string(),
        ),
        Err(e) => error(502, 103, "failed to start tunnel", &e.to_string()),
    }
}

async fn metrics_text(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(prometheus(&state.hub.snapshot().await))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/tunnels") {
        let msg = format!("method {} not allowed on {}", req.method(), req.path());
        return error(405, 108, &msg, "method not allowed");
    }
    error(
        404,
        106,
        &format!("no such endpoint {}", req.path()),
        "not found",
    )
}

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

async fn guard(
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

/// Serves the API on an already-bound listener; returns the server to spawn.
pub fn serve(
    listener: std::net::TcpListener,
    state: ApiState,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .wrap(actix_web::middleware::from_fn(guard))
            .route("/api", web::get().to(root))
            .route("/api/", web::get().to(root))
            .route("/api/tunnels", web::get().to(list))
            .route("/api/tunnels", web::post().to(create))
            .route("/api/tunnels/", web::get().to(list))
            .route("/api/tunnels/{name:.*}", web::get().to(get_one))
            .route("/api/tunnels/{name:.*}", web::delete().to(delete_one))
            .route("/metrics", web::get().to(metrics_text))
            .route("/status", web::get().to(crate::status::page))
            .route("/", web::get().to(crate::web::root))
            .route("/inspect/http", web::get().to(crate::web::page))
            .route("/inspect/http/", web::get().to(crate::web::page))
            .route(
                "/inspect/static/{name}",
                web::get().to(crate::web::static_file),
            )
            .route("/inspect/events", web::get().to(crate::web::events))
            .route("/inspect/har", web::get().to(crate::web::har))
            .route(
                "/api/requests/http",
                web::get().to(crate::api_requests::list),
            )
            .route(
                "/api/requests/http",
                web::delete().to(crate::api_requests::clear),
            )
            .route(
                "/api/requests/http",
                web::post().to(crate::api_requests::replay),
            )
            .route(
                "/api/requests/http/{id}",
                web::get().to(crate::api_requests::get_one),
            )
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_and_decode() {
        assert_eq!(encode_name("web (http)"), "web%20%28http%29");
        assert_eq!(decode_name("web%20%28http%29"), "web (http)");
        assert_eq!(decode_name("web%20(http)"), "web (http)");
        assert_eq!(decode_name("http-localhost%3A80-x"), "http-localhost:80-x");
        assert_eq!(decode_name("bad%zz"), "bad%zz");
        assert_eq!(decode_name("end%2"), "end%2");
    }

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
