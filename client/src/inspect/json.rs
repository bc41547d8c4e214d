//! Captured exchanges as JSON: ngrok v2's API shape, the inspector's summaries and live
//! WebSocket messages.

use crate::inspect::captured::{Captured, Message};
use crate::inspect::wsframes::WsMessage;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Standard base64, as the API carries raw bytes.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Header fields as `{Name: [values]}`.
pub fn headers(m: &Message) -> Value {
    let mut out = Map::new();
    for (k, v) in m.headers() {
        let entry = out.entry(k).or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(json!(v));
        }
    }
    Value::Object(out)
}

/// The protocol word of a captured head's first line.
pub fn proto(raw: &[u8], request: bool) -> String {
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

/// RFC 3339 with milliseconds, for HAR.
pub fn rfc3339_ms(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    let s = crate::logfmt::timestamp(t);
    format!("{}.{ms:03}Z", &s[..19])
}

fn epoch_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One WebSocket message as the API shows it.
pub fn ws_json(m: &WsMessage) -> Value {
    json!({
        "from": m.from.as_str(),
        "opcode": m.opcode,
        "at_ms": epoch_ms(m.at),
        "size": m.size,
        "truncated": m.truncated,
        "compressed": m.compressed,
        "data": b64(&m.data),
    })
}

/// Name/value pairs of a query string or form body, percent-decoded.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// An exchange without its bytes: what the inspector's list and live events carry.
pub fn summary(c: &Captured) -> Value {
    render(c, false)
}

/// An exchange as the API shows it.
pub fn to_json(c: &Captured) -> Value {
    render(c, true)
}

fn render(c: &Captured, full: bool) -> Value {
    let req = &c.request;
    let ws = c.ws.as_ref().map(|w| w.messages()).unwrap_or_default();
    let mut v = json!({
        "uri": format!("/api/requests/http/{}", c.id),
        "id": c.id,
        "tunnel_name": &*c.tunnel_name,
        "remote_addr": &*c.remote_addr,
        "start": rfc3339(c.start),
        "start_ms": epoch_ms(c.start),
        "duration": if c.pending { 0 } else { c.duration.as_nanos() as u64 },
        "pending": c.pending,
        "request": {
            "method": req.head.method,
            "proto": proto(&req.head.raw, true),
            "headers": headers(req),
            "uri": req.head.path,
            "size": req.body_size,
            "truncated": req.truncated,
        },
        "response": Value::Null,
        "websocket": ws.len(),
    });
    if full {
        v["request"]["raw"] = json!(b64(&req.raw()));
        v["websocket_messages"] = ws.iter().map(|m| ws_json(m)).collect();
    }
    if let Some(resp) = &c.response {
        let reason = burrow_http::pages::reason(resp.head.status);
        v["response"] = json!({
            "status": format!("{} {reason}", resp.head.status).trim_end().to_string(),
            "status_code": resp.head.status,
            "proto": proto(&resp.head.raw, false),
            "headers": headers(resp),
            "size": resp.body_size,
            "truncated": resp.truncated,
        });
        if full {
            v["response"]["raw"] = json!(b64(&resp.raw()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_decode() {
        assert_eq!(
            form_pairs("a=1&b=x+y%21&c&%zz=%e2%82%ac"),
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("c".into(), String::new()),
                ("%zz".into(), "€".into())
            ]
        );
    }
}
