//! Captured exchanges as a HAR 1.2 file, as browsers export them.

use crate::inspect::captured::{Captured, Message};
use crate::inspect::json::{b64, form_pairs, proto, rfc3339_ms};
use serde_json::{json, Value};

fn har_headers(m: &Message) -> Value {
    m.headers()
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect()
}

fn header(m: &Message, name: &str) -> Option<String> {
    m.headers()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A HAR body text: UTF-8 as is, anything else base64.
fn har_text(body: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(body) {
        Ok(t) => (t.to_string(), None),
        Err(_) => (b64(body), Some("base64")),
    }
}

fn http_version(raw: &[u8], request: bool) -> String {
    proto(raw, request)
}

/// One exchange as a HAR 1.2 entry.
pub fn har_entry(c: &Captured) -> Value {
    let req = &c.request;
    let scheme = header(req, "X-Forwarded-Proto").unwrap_or_else(|| "http".into());
    let host = header(req, "Host").unwrap_or_else(|| "localhost".into());
    let url = format!("{scheme}://{host}{}", req.head.path);
    let query: Vec<Value> = req
        .head
        .path
        .split_once('?')
        .map(|(_, q)| form_pairs(q))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let ms = c.duration.as_secs_f64() * 1000.0;
    let mut request = json!({
        "method": req.head.method,
        "url": url,
        "httpVersion": http_version(&req.head.raw, true),
        "cookies": [],
        "headers": har_headers(req),
        "queryString": query,
        "headersSize": req.head.raw.len(),
        "bodySize": req.body_size,
    });
    if req.body_size > 0 {
        let (text, encoding) = har_text(&req.body);
        request["postData"] = json!({
            "mimeType": header(req, "Content-Type").unwrap_or_else(|| "".into()),
            "text": text,
        });
        if encoding.is_some() {
            // HAR has no encoding field for request bodies; say it where readers look.
            request["postData"]["comment"] = json!("base64: the body is not UTF-8");
        }
    }
    let response = match &c.response {
        Some(r) => {
            let (text, encoding) = har_text(&r.body);
            let mut content = json!({
                "size": r.body_size,
                "mimeType": header(r, "Content-Type").unwrap_or_else(|| "".into()),
                "text": text,
            });
            if let Some(e) = encoding {
                content["encoding"] = json!(e);
            }
            if r.truncated {
                content["comment"] = json!(format!(
                    "truncated: the first {} of {} bytes",
                    r.body.len(),
                    r.body_size
                ));
            }
            json!({
                "status": r.head.status,
                "statusText": burrow_http::pages::reason(r.head.status),
                "httpVersion": http_version(&r.head.raw, false),
                "cookies": [],
                "headers": har_headers(r),
                "content": content,
                "redirectURL": header(r, "Location").unwrap_or_else(|| "".into()),
                "headersSize": r.head.raw.len(),
                "bodySize": r.body_size,
            })
        }
        // HAR has no "no response": 0 is what browsers write for a request that got none.
        None => json!({
            "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": ""}, "redirectURL": "",
            "headersSize": -1, "bodySize": -1,
        }),
    };
    json!({
        "startedDateTime": rfc3339_ms(c.start),
        "time": ms,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": ms, "receive": 0},
        "_id": c.id,
        "_tunnelName": &*c.tunnel_name,
        "_remoteAddr": &*c.remote_addr,
    })
}
