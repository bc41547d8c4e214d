//! `/api/requests/http`: captured exchanges in ngrok v2's shape, and replay.

use crate::inspect::captured::Message;
use crate::inspect::json::to_json;
use crate::tunnels::connection::Observers;
use crate::web::state::{error, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::time::Duration;

fn inspector(state: &ApiState) -> Option<&std::sync::Arc<crate::inspect::store::Inspector>> {
    state.inspector.as_ref()
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
    let v = match crate::web::state::json_object(&req, &body) {
        Ok(m) => Value::Object(m),
        Err(resp) => return *resp,
    };
    let id = match v.get("id") {
        Some(Value::String(id)) => id.as_str(),
        None | Some(Value::Null) => {
            return error(400, 102, "missing field id", "missing field id");
        }
        Some(other) => {
            let msg = format!("invalid field id: want a string, got {other}");
            return error(400, 102, &msg, &msg);
        }
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
    // Another tunnel's replay goes to that tunnel's local address with its Host rule, as
    // if a visitor had sent the request through it.
    let mut target = None;
    if let Some(t) = tunnel {
        let live = state
            .supervisor
            .send(crate::tunnels::supervisor::ListTunnels)
            .await
            .unwrap_or_default();
        let Some(view) = live.into_iter().find(|x| x.name == t) else {
            return error(
                404,
                112,
                &format!("tunnel {t:?} not found"),
                "tunnel not found",
            );
        };
        if view.spec.proto() != burrow_protocol::control::TunnelProto::Http {
            let msg =
                format!("tunnel {t:?} is not an http tunnel: requests replay only to http tunnels");
            return error(400, 102, &msg, &msg);
        }
        target = Some(view.spec);
    }
    // The request goes out as captured, with framing rebuilt where the capture changed it
    // (bodies are kept de-chunked).
    let unchanged = json!({});
    let edits = match v.get("modify") {
        None | Some(Value::Null) => &unchanged,
        Some(m) => m,
    };
    let mut raw = match modified(&c.request, edits) {
        Ok(r) => r,
        Err(e) => return error(400, 102, &format!("cannot replay: {e}"), &e.to_string()),
    };
    let local = match &target {
        Some(spec) => {
            if let Some(host) = &spec.request.host_header {
                raw = with_host(&raw, host);
            }
            spec.local.clone()
        }
        None => (*c.local).clone(),
    };
    let obs = Observers {
        metrics: state.hub.clone(),
        inspector: state.inspector.clone(),
    };
    let result = crate::tunnels::connection::replay(
        &obs,
        tunnel.unwrap_or(&c.tunnel_name),
        &c.remote_addr,
        &local,
        &raw,
        Duration::from_secs(10),
    )
    .await;
    match result {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => error(
            504,
            113,
            &format!("replay to {} timed out", local.display()),
            "timeout",
        ),
        Err(e) => error(
            502,
            113,
            &format!("replay to {} failed: {e}", local.display()),
            &e.to_string(),
        ),
    }
}

/// `raw` with its Host field set to `host` (the tunnel's `host_header` rule).
fn with_host(raw: &[u8], host: &str) -> Vec<u8> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 2);
    let mut out = Vec::with_capacity(raw.len() + host.len());
    for line in raw[..end].split_inclusive(|&b| b == b'\n') {
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:") {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&raw[end..]);
    out
}

/// Builds an edited copy of a captured request from `{"method", "uri", "headers", "body",
/// "trailers"}` (each optional): headers replace the captured ones when given; a new body,
/// trailers or a chunked original get fresh framing (`Content-Length`, or chunked with the
/// trailers). A request whose captured body was cut needs a new body.
pub fn modified(orig: &Message, m: &Value) -> Result<Vec<u8>, ModifyError> {
    let text = |field: &'static str| -> Result<Option<String>, ModifyError> {
        match m.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(got) => Err(ModifyError::NotAString {
                field,
                got: got.clone(),
            }),
        }
    };
    let token_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    let method = text("method")?.unwrap_or_else(|| orig.head.method.clone());
    let uri = text("uri")?.unwrap_or_else(|| orig.head.path.clone());
    if !token_ok(&method) || !token_ok(&uri) {
        return Err(ModifyError::RequestLine);
    }
    let mut headers = match m.get("headers") {
        None | Some(Value::Null) => orig.headers(),
        Some(h) => {
            let mut given = header_list("headers", h)?;
            // Edited headers replace the captured ones, but an HTTP/1.1 request needs a
            // Host: the captured one stays unless the edit names its own.
            let has_host = given.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
            let host = orig
                .headers()
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("host"));
            if let (false, Some(h)) = (has_host, host) {
                given.insert(0, h);
            }
            given
        }
    };
    let trailers = match m.get("trailers") {
        None | Some(Value::Null) => Vec::new(),
        Some(t) => header_list("trailers", t)?,
    };
    for (k, v) in headers.iter().chain(&trailers) {
        if !token_ok(k) || k.contains(':') || v.contains(['\r', '\n']) {
            return Err(ModifyError::Header(k.clone()));
        }
    }
    let new_body = text("body")?;
    if orig.truncated && new_body.is_none() {
        return Err(ModifyError::Truncated {
            kept: orig.body.len(),
            size: orig.body_size,
        });
    }
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let reframe = new_body.is_some() || !trailers.is_empty() || chunked;
    let mut body = new_body.map_or_else(|| orig.body.clone(), String::into_bytes);
    if reframe {
        headers.retain(|(k, _)| {
            !k.eq_ignore_ascii_case("content-length")
                && !k.eq_ignore_ascii_case("transfer-encoding")
        });
        if trailers.is_empty() {
            headers.push(("Content-Length".into(), body.len().to_string()));
        } else {
            // Trailers need chunked framing: one chunk, then the trailer fields.
            headers.push(("Transfer-Encoding".into(), "chunked".into()));
            let names: Vec<&str> = trailers.iter().map(|(k, _)| k.as_str()).collect();
            headers.push(("Trailer".into(), names.join(", ")));
            let mut framed = Vec::new();
            if !body.is_empty() {
                framed.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                framed.extend_from_slice(&body);
                framed.extend_from_slice(b"\r\n");
            }
            framed.extend_from_slice(b"0\r\n");
            for (k, v) in &trailers {
                framed.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            framed.extend_from_slice(b"\r\n");
            body = framed;
        }
    }
    let mut out = format!("{method} {uri} HTTP/1.1\r\n");
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut raw = out.into_bytes();
    raw.extend_from_slice(&body);
    Ok(raw)
}

/// Why a replay's `modify` edits cannot make a request, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModifyError {
    /// `method`, `uri` or `body` is not a string.
    #[error("{field} must be a string, got {got}")]
    NotAString {
        /// The field.
        field: &'static str,
        /// The value sent.
        got: Value,
    },
    /// A method or URI that would not make one request line.
    #[error("method and uri must be non-empty and without spaces")]
    RequestLine,
    /// `headers` or `trailers` is not an object.
    #[error("{0} must be an object of name: [values]")]
    NotAnObject(&'static str),
    /// A header's values are not strings.
    #[error("{what} {name:?} must be a string or a list of strings")]
    HeaderValues {
        /// `headers` or `trailers`.
        what: &'static str,
        /// The header name.
        name: String,
    },
    /// A header name or value that could split the head.
    #[error("invalid header {0:?}")]
    Header(String),
    /// The capture kept only part of the body, so replaying it as is would send less.
    #[error("the captured body was cut at {kept} bytes of {size}; give a body to replay it")]
    Truncated {
        /// Bytes captured.
        kept: usize,
        /// Bytes the request had.
        size: u64,
    },
}

/// `{"Name": ["v", …] | "v"}` as (name, value) pairs.
fn header_list(what: &'static str, v: &Value) -> Result<Vec<(String, String)>, ModifyError> {
    let Value::Object(map) = v else {
        return Err(ModifyError::NotAnObject(what));
    };
    let mut out = Vec::new();
    for (k, vals) in map {
        let vals = match vals {
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<Vec<_>>>(),
            Value::String(s) => Some(vec![s.clone()]),
            _ => None,
        }
        .ok_or_else(|| ModifyError::HeaderValues {
            what,
            name: k.clone(),
        })?;
        out.extend(vals.into_iter().map(|v| (k.clone(), v)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_http::follow::Head;

    fn orig() -> Message {
        let mut m = Message::new(Head {
            method: "POST".into(),
            path: "/a".into(),
            status: 0,
            raw: b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n".to_vec(),
        });
        m.push_body(b"hi");
        m
    }

    #[test]
    fn edits_method_uri_and_body_with_fresh_framing() {
        let raw = modified(
            &orig(),
            &json!({"method": "PUT", "uri": "/b", "body": "hello"}),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        );
        let raw = modified(&orig(), &json!({"headers": {"Host": ["y"], "X-A": "1"}})).unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("POST /a HTTP/1.1\r\n")
                && text.contains("Host: y\r\n")
                && text.ends_with("\r\n\r\nhi"),
            "{text}"
        );
    }

    #[test]
    fn chunked_originals_are_reframed_and_cut_ones_refused() {
        let mut m = Message::new(Head {
            method: "POST".into(),
            path: "/".into(),
            status: 0,
            raw: b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        });
        m.push_body(b"hello");
        let raw = modified(&m, &json!({})).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        );
        m.push_body(&vec![b'x'; crate::inspect::captured::BODY_CAP]);
        assert!(modified(&m, &json!({}))
            .unwrap_err()
            .to_string()
            .contains("cut"));
        assert!(modified(&m, &json!({"body": "short"})).is_ok());
    }

    #[test]
    fn trailers_make_the_body_chunked() {
        let raw = modified(
            &orig(),
            &json!({"body": "hello", "trailers": {"X-Sum": "abc"}}),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
             5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n"
        );
        assert!(modified(&orig(), &json!({"trailers": {"X": ["a\nb"]}})).is_err());
        assert!(modified(&orig(), &json!({"trailers": [1]})).is_err());
    }

    #[test]
    fn edited_headers_keep_the_captured_host_unless_they_name_one() {
        let raw = modified(&orig(), &json!({"headers": {"X-Test": ["yes"]}})).unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.starts_with("POST /a HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n"),
            "{text}"
        );
    }

    #[test]
    fn refuses_injection() {
        assert!(modified(&orig(), &json!({"uri": "/a HTTP/1.1\r\nX: y"})).is_err());
        assert!(modified(&orig(), &json!({"headers": {"X": ["a\r\nB: c"]}})).is_err());
        assert!(modified(&orig(), &json!({"method": 5})).is_err());
    }
}
