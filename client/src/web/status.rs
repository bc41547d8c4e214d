//! The status page (`/status`): each tunnel's configuration, the global configuration
//! (the auth token only as a prefix) and the metrics tables, as small server-rendered HTML.

use crate::metrics::Snapshot;
use crate::tunnels::supervisor::ListTunnels;
use crate::web::state::ApiState;
use actix_web::{web, HttpResponse};
use burrow_http::pages::escape;

fn secs(ns: f64) -> String {
    format!("{:.3}s", ns / 1e9)
}

fn rates(s: &Snapshot) -> String {
    format!(
        "<td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>",
        s.rate1, s.rate5, s.rate15
    )
}

fn quantiles(s: &Snapshot) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        secs(s.p50),
        secs(s.p90),
        secs(s.p95),
        secs(s.p99)
    )
}

/// `GET /status`.
pub async fn page(state: web::Data<ApiState>) -> HttpResponse {
    let tunnels = state.supervisor.send(ListTunnels).await.unwrap_or_default();
    let snaps = state.hub.snapshot().await;
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Burrow · Status</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/inspect/static/style.css\"></head>\
         <body class=\"status-page\"><header class=\"topbar\"><span class=\"brand\">Burrow</span>\
         <nav><a href=\"/inspect/http\">Inspect</a>\
         <a href=\"/status\" class=\"current\" aria-current=\"page\">Status</a></nav></header>\
         <main class=\"status\"><h1>Status</h1>",
    );
    for t in &tunnels {
        let m = snaps
            .get(&(t.spec.name.clone(), t.proto.clone()))
            .cloned()
            .unwrap_or_default();
        html.push_str(&format!(
            "<section class=\"tunnel\"><h2>{}</h2><table><tr><th>URL</th><td>{}</td></tr><tr><th>Addr</th><td>{}</td></tr>\
             <tr><th>Inspect</th><td>{}</td></tr><tr><th>Proto</th><td>{}</td></tr></table>",
            escape(&t.name),
            escape(&t.public_url),
            escape(&t.spec.local.display()),
            crate::web::state::inspected(t, &state),
            escape(&t.proto)
        ));
        html.push_str(&format!(
            "<h3>Connections</h3><table><tr><th>Total</th><th>Open</th><th>1m/s</th><th>5m/s</th><th>15m/s</th></tr>\
             <tr><td>{}</td><td>{}</td>{}</tr></table>",
            m.conns.count,
            m.conns.gauge.unwrap_or(0),
            rates(&m.conns)
        ));
        html.push_str(&format!(
            "<h3>Connection Durations</h3><table><tr><th>p50</th><th>p90</th><th>p95</th><th>p99</th></tr><tr>{}</tr></table>",
            quantiles(&m.conns)
        ));
        html.push_str(&format!(
            "<h3>HTTP Requests</h3><table><tr><th>Total</th><th>1m/s</th><th>5m/s</th><th>15m/s</th></tr>\
             <tr><td>{}</td>{}</tr></table>",
            m.http.count,
            rates(&m.http)
        ));
        html.push_str(&format!(
            "<h3>HTTP Response Durations</h3><table><tr><th>p50</th><th>p90</th><th>p95</th><th>p99</th></tr><tr>{}</tr></table></section>",
            quantiles(&m.http)
        ));
    }
    if tunnels.is_empty() {
        html.push_str("<p>No tunnels are running.</p>");
    }
    html.push_str("<h2>Configuration</h2><table>");
    for (k, v) in &state.settings {
        html.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    html.push_str("</table></main></body></html>\n");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", crate::web::inspector::CSP))
        .body(html)
}
