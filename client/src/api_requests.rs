//! `/api/requests/http`: captured exchanges in ngrok v2's shape, and replay.

use crate::api::{error, ApiState};
use crate::inspector::{Captured, Message};
use actix_web::{web, HttpRequest, HttpResponse};
use burrow_relay::http::auth::base64;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn headers(m: &Message) -> Value {
    let mut out = Map::new();
    for (k, v) in &m.head.headers {
        let entry = out.entry(k.clone()).or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(json!(v));
        }
    }
    Value::Object(out)
}

fn proto(raw: &[u8], request: bool) -> String {
    let line = raw.split(|&b| b == b'\r').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let word = if request {
        text.rsplit(' ').next()
    } else {
        text.split(' ').next()
    };
    word.unwrap_or("HTTP/1.1").to_string()
}

fn rfc3339(t: std::time::SystemTime) -> String {
    // The log timestamp is the same civil time; ngrok's API uses RFC 3339 with a Z.
    let s = crate::logfmt::timestamp(t);
    format!("{}Z", &s[..19])
}

/// An exchange as the API shows it.
pub fn to_json(c: &Captured) -> Value {
    let req = &c.request;
    let mut v = json!({
        "uri": format!("/api/requests/http/{}", c.id),
        "id": c.id,
        "tunnel_name": c.tunnel_name,
        "remote_addr": c.remote_addr,
        "start": rfc3339(c.start),
        "duration": c.duration.as_nanos() as u64,
        "request": {
            "method": req.head.method,
            "proto": proto(&req.head.raw, true),
            "headers": headers(req),
            "uri": req.head.path,
            "raw": base64(&req.raw()),
            "truncated": req.truncated,
        },
        "response": Value::Null,
    });
    if let Some(resp) = &c.response {
        let reason = burrow_relay::http::pages::reason(resp.head.status);
        v["response"] = json!({
            "status": format!("{} {reason}", resp.head.status).trim_end().to_string(),
            "status_code": resp.head.status,
            "proto": proto(&resp.head.raw, false),
            "headers": headers(resp),
            "raw": base64(&resp.raw()),
            "truncated": resp.truncated,
        });
    }
    v
}

fn inspector(state: &ApiState) -> Option<&std::sync::Arc<crate::inspector::Inspector>> {
    state.hub.inspector.as_ref()
}

/// `GET /api/requests/http?limit=&tunnel_name=`.
pub async fn list(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(400, 110, "invalid limit: want a number", "invalid limit"),
    };
    let tunnel = q.get("tunnel_name").map(String::as_str);
    let items: Vec<Value> = inspector(&state)
        .map(|i| i.list(limit, tunnel).iter().map(|c| to_json(c)).collect())
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({ "uri": "/api/requests/http", "requests": items }))
}

/// `GET /api/requests/http/:id`.
pub async fn get_one(path: web::Path<String>, state: web::Data<ApiState>) -> HttpResponse {
    let id = path.into_inner();
    match inspector(&state).and_then(|i| i.get(&id)) {
        Some(c) => HttpResponse::Ok().json(to_json(&c)),
        None => error(
            404,
            111,
            &format!("request {id:?} not found"),
            "request not found",
        ),
    }
}

/// `DELETE /api/requests/http`.
pub async fn clear(state: web::Data<ApiState>) -> HttpResponse {
    if let Some(i) = inspector(&state) {
        i.clear();
    }
    HttpResponse::NoContent().finish()
}

/// `POST /api/requests/http` with `{"id", "tunnel_name"?}`: sends the captured request to
/// the tunnel's local address again.
pub async fn replay(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.to_ascii_lowercase().starts_with("application/json") {
        return error(
            415,
            102,
            "request body must be JSON (Content-Type: application/json)",
            "unsupported content type",
        );
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(400, 102, "invalid JSON body", &e.to_string()),
    };
    let Some(id) = v.get("id").and_then(Value::as_str) else {
        return error(400, 102, "missing field id", "missing field id");
    };
    let Some(c) = inspector(&state).and_then(|i| i.get(id)) else {
        return error(
            404,
            111,
            &format!("request {id:?} not found"),
            "request not found",
        );
    };
    let tunnel = v
        .get("tunnel_name")
        .or_else(|| v.get("tunnelName"))
        .and_then(Value::as_str);
    if let Some(t) = tunnel {
        let live = state
            .supervisor
            .send(crate::supervisor::ListTunnels)
            .await
            .unwrap_or_default();
        if !live.iter().any(|x| x.name == t) {
            return error(
                404,
                112,
                &format!("tunnel {t:?} not found"),
                "tunnel not found",
            );
        }
    }
    let target = c.local.host_port();
    let send = async {
        let mut s = tokio::net::TcpStream::connect(&target).await?;
        s.write_all(&c.request.raw()).await?;
        // Read the answer so the upstream finishes its work, and let it go.
        let mut sink = vec![0u8; 16 * 1024];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut sink)).await;
        std::io::Result::Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(10), send).await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => error(
            502,
            113,
            &format!("replay to {} failed: {e}", c.local.display()),
            &e.to_string(),
        ),
        Err(_) => error(
            504,
            113,
            &format!("replay to {} timed out", c.local.display()),
            "timeout",
        ),
    }
}
