//! The inspector's web side: the embedded page and its files, the live event stream (SSE)
//! and HAR export.

use crate::inspect::har::har_entry;
use crate::inspect::json::summary;
use crate::inspect::store::{Event, Inspector};
use crate::web::state::{error, ApiState};
use actix_web::{web, HttpRequest, HttpResponse};
use burrow_http::assets::{self, content_type};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream, IntervalStream};
use tokio_stream::StreamExt;

include!(concat!(env!("OUT_DIR"), "/web_ui.rs"));

/// Scripts and styles only from this origin, so captured text can never run as code even
/// if a rendering bug let it into the page's markup.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn file(name: &str) -> Option<&'static [u8]> {
    assets::find(FILES, name)
}

fn asset(name: &str) -> HttpResponse {
    match file(name) {
        Some(body) => HttpResponse::Ok()
            .content_type(content_type(name))
            .insert_header(("Content-Security-Policy", CSP))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Cache-Control", "no-cache"))
            .body(body),
        None => error(404, 100, &format!("no such file {name:?}"), "not found"),
    }
}

/// `GET /inspect/http`: the inspector page.
pub async fn page() -> HttpResponse {
    asset("index.html")
}

/// `GET /inspect/static/{name}`: the page's scripts and styles.
pub async fn static_file(name: web::Path<String>) -> HttpResponse {
    asset(&name)
}

/// `GET /`: the inspector, as in ngrok.
pub async fn root() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/inspect/http"))
        .finish()
}

fn sse(event: &str, data: &Value) -> web::Bytes {
    web::Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn snapshot(inspector: Option<&Arc<Inspector>>) -> web::Bytes {
    let items: Vec<Value> = inspector
        .map(|i| {
            i.list(usize::MAX, None)
                .iter()
                .map(|c| summary(c))
                .collect()
        })
        .unwrap_or_default();
    sse("snapshot", &json!({ "requests": items }))
}

fn event_bytes(e: Event) -> web::Bytes {
    let raw =
        |event: &str, data: &str| web::Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
    match e {
        Event::Request(json) => raw("request", &json),
        Event::Ws(json) => raw("websocket", &json),
        Event::Evict(ids) => sse("evict", &json!({ "ids": ids })),
        Event::Clear => sse("clear", &json!({})),
    }
}

/// `GET /inspect/events`: a snapshot of the captured exchanges, then every change as it
/// happens (Server-Sent Events). A subscriber that falls behind gets a fresh snapshot
/// instead of the events it missed.
pub async fn events(state: web::Data<ApiState>) -> HttpResponse {
    let inspector = state.inspector.clone();
    // Subscribe before taking the snapshot so nothing falls between the two; the page
    // replaces exchanges by id, so seeing one twice is harmless.
    let live = match &inspector {
        Some(i) => i.subscribe(),
        // Capture is off: no changes will come, only keep-alives.
        None => tokio::sync::broadcast::channel(1).1,
    };
    let first = format!(
        "retry: 1000\n\n{}",
        String::from_utf8_lossy(&snapshot(inspector.as_ref()))
    );
    let head = tokio_stream::once(web::Bytes::from(first));
    let keepalive = IntervalStream::new(tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(15),
        Duration::from_secs(15),
    ))
    .map(|_| web::Bytes::from_static(b": keep-alive\n\n"));
    let changes = BroadcastStream::new(live).map(move |r| match r {
        Ok(e) => event_bytes(e),
        Err(BroadcastStreamRecvError::Lagged(_)) => snapshot(inspector.as_ref()),
    });
    let body = head
        .chain(changes.merge(keepalive))
        .map(Ok::<_, actix_web::Error>);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// `GET /inspect/har[?id=ID]`: every captured exchange (or one) as a HAR 1.2 file.
pub async fn har(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let inspector = state.inspector.as_ref();
    let (items, name) = match q.get("id") {
        Some(id) => match inspector.and_then(|i| i.get(id)) {
            Some(c) => (vec![c], format!("burrow-{id}.har")),
            None => {
                return error(
                    404,
                    111,
                    &format!("request {id:?} not found"),
                    "request not found",
                )
            }
        },
        // Oldest first, as a browser writes them.
        None => (
            inspector
                .map(|i| i.list(usize::MAX, None).into_iter().rev().collect())
                .unwrap_or_default(),
            "burrow.har".to_string(),
        ),
    };
    let entries: Vec<Value> = items.iter().map(|c| har_entry(c)).collect();
    let doc = json!({"log": {
        "version": "1.2",
        "creator": {"name": "burrow", "version": env!("CARGO_PKG_VERSION")},
        "pages": [],
        "entries": entries,
    }});
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_embedded() {
        let index = String::from_utf8_lossy(file("index.html").expect("index.html"));
        let named: Vec<&str> = index
            .split("/inspect/static/")
            .skip(1)
            .map(|rest| rest.split(['"', '\'']).next().unwrap_or_default())
            .collect();
        assert!(!named.is_empty(), "the page loads its script and styles");
        for name in named {
            assert!(file(name).is_some(), "{name} is not embedded");
        }
        assert!(file("../Cargo.toml").is_none());
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
    }
}
