//! `/api/tunnels` with ngrok v2's paths, status codes and JSON fields, plus Prometheus
//! metrics.

use crate::config::{Scalar, TunnelConfig};
use crate::metrics::{prometheus, TunnelMetrics};
use crate::tunnels::supervisor::{
    AddTunnel, ListTunnels, RemoveTunnel, SupervisorError, TunnelView,
};
use crate::web::state::{error, inspected, json_object, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Characters a tunnel name keeps in its `uri`; the rest is percent-encoded.
const NAME_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a tunnel name for its `uri`.
pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, NAME_SET).to_string()
}

/// Decodes a percent-encoded path segment (malformed escapes are kept as they are).
pub fn decode_name(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
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

async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> HttpResponse {
    let map = match json_object(&req, &body) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let (name, cfg) = match body_to_config(&map) {
        Ok(x) => x,
        Err((msg, err)) => return error(400, 102, &msg, &err),
    };
    let spec = match crate::config::spec::from_config(&name, &cfg) {
        Ok(s) => s,
        Err(e) => {
            return error(
                400,
                102,
                &format!("invalid tunnel configuration: {e}"),
                &e.to_string(),
            )
        }
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

/// The tunnel routes and `/metrics`.
pub fn routes(app: &mut web::ServiceConfig) {
    app.route("/api", web::get().to(root))
        .route("/api/", web::get().to(root))
        .route("/api/tunnels", web::get().to(list))
        .route("/api/tunnels", web::post().to(create))
        .route("/api/tunnels/", web::get().to(list))
        .route("/api/tunnels/{name:.*}", web::get().to(get_one))
        .route("/api/tunnels/{name:.*}", web::delete().to(delete_one))
        .route("/metrics", web::get().to(metrics_text));
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
}
