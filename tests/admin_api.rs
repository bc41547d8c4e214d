//! burrowd's admin API end to end: a relay in process with its admin listener on loopback,
//! real agents and visitors, and the API called over HTTP with curl.

use burrow::AgentEvent;
use burrow_e2e::relay_bin::Burrowd;
use burrow_e2e::{curl, host_of, upstream, Scratch, TestAgent, TestRelay, TunnelOpts};
use burrow_relay::{PortRange, RelayConfig, Secret};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "bra_test-admin-token";

/// A relay with its admin listener on a port of the system's choosing.
async fn relay_with(f: impl FnOnce(&mut RelayConfig)) -> (TestRelay, Admin) {
    let relay = TestRelay::start_with(|cfg| {
        cfg.admin_addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.admin_token = Some(Secret::new(TOKEN));
        f(cfg);
    })
    .await;
    let admin = Admin {
        addr: relay.handle.admin_addr.expect("admin listener"),
        token: TOKEN.into(),
    };
    (relay, admin)
}

/// Calls the admin API as an operator would.
struct Admin {
    addr: SocketAddr,
    token: String,
}

impl Admin {
    /// `method path` with `body` as JSON; the status and the JSON answer (`Null` if none).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.text(method, path, body).await;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        (status, value)
    }

    /// As [`Admin::call`], with the answer as text.
    async fn text(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let auth = format!("Authorization: Bearer {}", self.token);
        let url = format!("http://{}{path}", self.addr);
        let body = body.map(|b| b.to_string());
        let mut args = vec!["-X", method, "-H", &auth, "-w", "\n%{http_code}", &url];
        if let Some(b) = &body {
            args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let (out, err, ok) = curl(&args).await;
        assert!(ok, "{method} {path}: {err}");
        let (text, status) = out.rsplit_once('\n').expect("status line");
        (status.parse().expect("status"), text.to_string())
    }

    /// `GET path`, which must succeed.
    async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// `POST path` of `body`, which must create something.
    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", path, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {v}");
        v
    }

    /// The error of `method path` with `body`, which must answer `want`.
    async fn refused(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> String {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        v["error"].as_str().expect("an error message").to_string()
    }

    /// The live sessions.
    async fn sessions(&self) -> Vec<Value> {
        self.get("/api/sessions").await.as_array().unwrap().clone()
    }

    /// Waits up to a second for the session `id` to be gone.
    async fn session_gone(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.sessions().await.iter().any(|s| s["id"] == id) {
            assert!(Instant::now() < deadline, "session {id} is still there");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/metrics` as text.
    async fn metrics(&self) -> String {
        let (status, text) = self.text("GET", "/metrics", None).await;
        assert_eq!(status, 200, "{text}");
        text
    }
}

/// The body of `url`, or `None` when the relay closed the connection without a word.
async fn visit(url: &str) -> Option<String> {
    let (body, _, ok) = curl(&["--max-time", "5", url]).await;
    ok.then_some(body)
}

#[actix_rt::test]
async fn the_token_is_required_for_the_api_and_the_metrics() {
    let (_relay, admin) = relay_with(|_| {}).await;
    for path in [
        "/api/accounts",
        "/api/status",
        "/metrics",
        "/api/nothing-here",
    ] {
        let url = format!("http://{}{path}", admin.addr);
        let (out, _, ok) = curl(&["-w", "\n%{http_code}", &url]).await;
        assert!(ok);
        assert!(out.ends_with("\n401"), "{path}: {out}");
        assert!(
            out.contains(r#"{"error":"admin token missing or wrong"}"#),
            "{out}"
        );
        let wrong = Admin {
            addr: admin.addr,
            token: format!("{TOKEN}x"),
        };
        let (status, _) = wrong.text("GET", path, None).await;
        assert_eq!(status, 401, "{path}");
    }
    let status = admin.get("/api/status").await;
    assert_eq!(status["domain"], "localhost");
    assert_eq!(status["region"], "us");
    assert_eq!(status["accounts"], 0);
    // The dashboard's page needs no token (it asks for one), and comes with its policy.
    let (out, _, _) = curl(&["-i", &format!("http://{}/", admin.addr)]).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{out}"
    );
    let err = admin.refused("GET", "/api/nothing-here", None, 404).await;
    assert!(err.contains("/api/nothing-here"), "{err}");
}

#[actix_rt::test]
async fn accounts_and_tokens_and_a_revoked_token_ends_its_session() {
    let (relay, admin) = relay_with(|_| {}).await;
    let up = upstream::start().await;

    let made = admin.post("/api/accounts", json!({"name": "alice"})).await;
    assert_eq!(made["name"], "alice");
    assert_eq!(
        made["quotas"],
        json!({"sessions": 10, "tunnels": 50, "tcp_ports": 5})
    );
    let err = admin
        .refused("POST", "/api/accounts", Some(json!({"name": "alice"})), 409)
        .await;
    assert!(err.contains("alice"), "{err}");
    let err = admin
        .refused(
            "POST",
            "/api/accounts",
            Some(json!({"name": "Not Valid"})),
            400,
        )
        .await;
    assert!(err.contains("Not Valid"), "{err}");
    let err = admin
        .refused("POST", "/api/accounts", Some(json!({"nam": "x"})), 400)
        .await;
    assert!(err.contains("nam"), "{err}");
    let list = admin.get("/api/accounts").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, a) = admin
        .call(
            "PUT",
            "/api/accounts/alice/quotas",
            Some(json!({"tunnels": 7})),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        a["quotas"],
        json!({"sessions": 10, "tunnels": 7, "tcp_ports": 5})
    );

    let issued = admin
        .post("/api/accounts/alice/tokens", json!({"label": "laptop"}))
        .await;
    let secret = issued["secret"].as_str().unwrap().to_string();
    let id = issued["info"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("brw_"), "{issued}");
    assert_eq!(issued["info"]["label"], "laptop");
    let tokens = admin.text("GET", "/api/tokens?account=alice", None).await.1;
    assert!(!tokens.contains(&secret), "{tokens}");
    let tokens: Value = serde_json::from_str(&tokens).unwrap();
    assert_eq!(tokens[0]["id"], id.as_str());
    assert!(
        tokens[0]["hint"].as_str().unwrap().ends_with('…'),
        "{tokens}"
    );
    admin
        .refused("GET", "/api/tokens?account=nobody", None, 404)
        .await;
    admin
        .refused("POST", "/api/accounts/nobody/tokens", Some(json!({})), 404)
        .await;

    let mut agent = TestAgent::start(&relay, TunnelOpts::http(up.addr.port()), Some(&secret))
        .await
        .expect("alice's agent connects");
    let url = format!("{}/hello", agent.http_url());
    assert_eq!(visit(&url).await.as_deref(), Some("hello"));
    let sessions = admin.sessions().await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["account"], "alice");
    assert_eq!(sessions[0]["token_id"], id.as_str());
    let tunnels = sessions[0]["tunnels"].as_array().unwrap();
    assert_eq!(tunnels[0]["proto"], "http");
    assert!(tunnels[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u == agent.http_url()));
    let shown = admin.get("/api/accounts/alice").await;
    assert_eq!(shown["account"]["name"], "alice");
    assert_eq!(shown["tokens"][0]["id"], id.as_str());
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1, "{shown}");

    let (status, revoked) = admin
        .call("DELETE", &format!("/api/tokens/{id}"), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked"]["id"], id.as_str());
    assert_eq!(revoked["kicked"], 1);
    admin
        .session_gone(sessions[0]["id"].as_str().unwrap())
        .await;
    // The agent hears of it: its session dropped, and the token no longer opens another.
    let mut heard = Vec::new();
    while let Some(ev) = agent.next_event(Duration::from_secs(5)).await {
        let end = matches!(ev, AgentEvent::Fatal(_));
        heard.push(format!("{ev:?}"));
        if end {
            break;
        }
    }
    assert!(
        heard.iter().any(|e| e.starts_with("Reconnecting")),
        "{heard:?}"
    );
    assert!(heard.iter().any(|e| e.starts_with("Fatal")), "{heard:?}");
    let after = visit(&url).await;
    assert_ne!(after.as_deref(), Some("hello"));
    admin
        .refused("DELETE", &format!("/api/tokens/{id}"), None, 404)
        .await;

    let (status, deleted) = admin.call("DELETE", "/api/accounts/alice", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted, json!({"deleted": "alice", "kicked": 0}));
    admin.refused("GET", "/api/accounts/alice", None, 404).await;
    admin
        .refused("DELETE", "/api/accounts/alice", None, 404)
        .await;
    assert_eq!(admin.get("/api/accounts").await, json!([]));
}

#[actix_rt::test]
async fn reservations_are_checked_and_a_refused_change_leaves_the_store_as_it_was() {
    let (_relay, admin) = relay_with(|cfg| {
        cfg.domain = "burrow.example.test".into();
        cfg.tcp_ports = PortRange {
            start: 20000,
            end: 20010,
        };
    })
    .await;
    for name in ["a", "b"] {
        admin.post("/api/accounts", json!({ "name": name })).await;
    }
    let d = admin
        .post(
            "/api/accounts/a/domains",
            json!({"name": "App.Example.Test"}),
        )
        .await;
    assert_eq!(d["name"], "app.example.test");
    assert_eq!(d["account"], "a");
    assert_eq!(d["region"], "us");
    let d = admin
        .post(
            "/api/accounts/a/domains",
            json!({"name": "*.a.example.test", "region": "eu"}),
        )
        .await;
    assert_eq!(d["region"], "eu");
    let addr = admin
        .post(
            "/api/accounts/a/addrs",
            json!({"addr": "burrow.example.test:20001"}),
        )
        .await;
    assert_eq!(addr["port"], 20001);
    admin
        .post("/api/accounts/a/whitelist", json!({"entry": "10.1.2.3/24"}))
        .await;

    let before: Vec<Value> = {
        let mut all = Vec::new();
        for path in [
            "/api/domains",
            "/api/addrs",
            "/api/whitelist",
            "/api/ssh-keys",
        ] {
            all.push(admin.get(path).await);
        }
        all
    };
    let refused = [
        // Taken by another account, directly or under its wildcard.
        (
            "/api/accounts/b/domains",
            json!({"name": "app.example.test"}),
            409,
        ),
        (
            "/api/accounts/b/domains",
            json!({"name": "x.a.example.test"}),
            409,
        ),
        (
            "/api/accounts/b/addrs",
            json!({"addr": "burrow.example.test:20001"}),
            409,
        ),
        // The account holds it in another region.
        (
            "/api/accounts/a/domains",
            json!({"name": "*.a.example.test", "region": "us"}),
            409,
        ),
        // Invalid input.
        (
            "/api/accounts/b/domains",
            json!({"name": "bad_name!.example.test"}),
            400,
        ),
        (
            "/api/accounts/b/domains",
            json!({"name": "x.example.test", "region": "EU!"}),
            400,
        ),
        (
            "/api/accounts/b/whitelist",
            json!({"entry": "10.0.0.0/33"}),
            400,
        ),
        (
            "/api/accounts/b/addrs",
            json!({"addr": "burrow.example.test:80"}),
            400,
        ),
        (
            "/api/accounts/b/addrs",
            json!({"addr": "burrow.example.test"}),
            400,
        ),
        (
            "/api/accounts/b/ssh-keys",
            json!({"key": "ssh-ed25519 !!!"}),
            400,
        ),
        // Unknown account.
        (
            "/api/accounts/c/domains",
            json!({"name": "c.example.test"}),
            404,
        ),
    ];
    for (path, body, want) in refused {
        admin.refused("POST", path, Some(body), want).await;
    }
    // Wildcards over the relay's own names, refused naming both.
    for w in ["*.burrow.example.test", "*.example.test"] {
        let err = admin
            .refused(
                "POST",
                "/api/accounts/b/domains",
                Some(json!({ "name": w })),
                400,
            )
            .await;
        assert!(
            err.contains(w) && err.contains("burrow.example.test"),
            "{err}"
        );
    }
    let err = admin
        .refused(
            "POST",
            "/api/accounts/b/addrs",
            Some(json!({"addr": "burrow.example.test:20011"})),
            400,
        )
        .await;
    assert!(err.contains("20000-20010"), "{err}");
    let mut after = Vec::new();
    for path in [
        "/api/domains",
        "/api/addrs",
        "/api/whitelist",
        "/api/ssh-keys",
    ] {
        after.push(admin.get(path).await);
    }
    assert_eq!(before, after);
    assert_eq!(admin.get("/api/domains?account=b").await, json!([]));

    // SSH keys; a fingerprint with '+' and '/' can be given unencoded.
    let line = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMY96dvUBknC9lYq54iryWSLHgEN7BAjRqkX8czplq3Y5tKB4PfXPdG1RGjg2LIM4p5VZ8X2tKJnX5BTELqsif8= ops";
    let fp = "SHA256:/5RfQaoXuWTR3zq/ILV7EbXpyTKAXPNL4sL3qU9V+eo";
    let k = admin
        .post("/api/accounts/b/ssh-keys", json!({ "key": line }))
        .await;
    assert_eq!(k["fingerprint"], fp);
    admin
        .refused(
            "POST",
            "/api/accounts/a/ssh-keys",
            Some(json!({ "key": line })),
            409,
        )
        .await;
    assert_eq!(
        admin.get("/api/ssh-keys?account=b").await[0]["fingerprint"],
        fp
    );
    let (status, gone) = admin
        .call("DELETE", &format!("/api/ssh-keys?fingerprint={fp}"), None)
        .await;
    assert_eq!(status, 200, "{gone}");
    admin
        .refused(
            "DELETE",
            &format!("/api/ssh-keys?fingerprint={fp}"),
            None,
            404,
        )
        .await;

    // Releasing.
    let (status, r) = admin
        .call("DELETE", "/api/domains?name=app.example.test", None)
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["account"], "a");
    admin
        .refused("DELETE", "/api/domains?name=app.example.test", None, 404)
        .await;
    admin.refused("DELETE", "/api/domains", None, 400).await;
    admin
        .post(
            "/api/accounts/b/domains",
            json!({"name": "app.example.test"}),
        )
        .await;
    let (status, _) = admin
        .call("DELETE", "/api/addrs?addr=burrow.example.test:20001", None)
        .await;
    assert_eq!(status, 200);
    admin
        .refused(
            "DELETE",
            "/api/accounts/a/whitelist?entry=10.9.9.9",
            None,
            404,
        )
        .await;
    let (status, none) = admin
        .call(
            "DELETE",
            "/api/accounts/a/whitelist?entry=10.1.2.0/24",
            None,
        )
        .await;
    assert_eq!((status, none), (204, Value::Null));
    assert_eq!(admin.get("/api/whitelist").await, json!([]));
}

#[actix_rt::test]
async fn the_whitelist_takes_effect_at_once() {
    let (relay, admin) = relay_with(|_| {}).await;
    let up = upstream::start().await;
    admin.post("/api/accounts", json!({"name": "w"})).await;
    let issued = admin.post("/api/accounts/w/tokens", json!({})).await;
    let secret = issued["secret"].as_str().unwrap();
    let agent = TestAgent::start(&relay, TunnelOpts::http(up.addr.port()), Some(secret))
        .await
        .expect("agent connects");
    let url = format!("{}/hello", agent.http_url());
    assert_eq!(visit(&url).await.as_deref(), Some("hello"));

    let e = admin
        .post(
            "/api/accounts/w/whitelist",
            json!({"entry": "127.0.0.2/32"}),
        )
        .await;
    assert_eq!(e["net"], "127.0.0.2/32");
    assert_eq!(
        visit(&url).await,
        None,
        "a visitor from 127.0.0.1 is refused"
    );
    let (status, _) = admin
        .call(
            "DELETE",
            "/api/accounts/w/whitelist?entry=127.0.0.2/32",
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(visit(&url).await.as_deref(), Some("hello"));
}

#[actix_rt::test]
async fn sessions_end_on_request_and_metrics_count_their_traffic() {
    let (relay, admin) = relay_with(|_| {}).await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let url = format!("{}/hello", agent.http_url());
    for _ in 0..3 {
        assert_eq!(visit(&url).await.as_deref(), Some("hello"));
    }
    // The first URL names the tunnel in the metrics.
    let sessions = admin.sessions().await;
    assert_eq!(sessions[0]["account"], Value::Null);
    let tunnel = sessions[0]["tunnels"][0]["urls"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(host_of(&tunnel), agent.host());
    let labels = format!("account=\"\",tunnel=\"{tunnel}\"");
    // Bytes are added as each connection closes, a moment after curl has its answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    let series = |name: &str, extra: &str| format!("{name}{{{labels}{extra}}}");
    let text = loop {
        let text = admin.metrics().await;
        let done = sample(&text, &series("burrowd_requests_total", "")) == 3
            && sample(&text, &series("burrowd_connections_open", "")) == 0
            && sample(&text, &series("burrowd_bytes_total", ",direction=\"in\"")) > 0
            && sample(&text, &series("burrowd_bytes_total", ",direction=\"out\"")) > 15;
        if done {
            break text;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("# TYPE burrowd_requests_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("burrowd_sessions{account=\"\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("burrowd_tunnels{account=\"\",proto=\"http\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("burrowd_connections_total{{{labels}}} 3\n")),
        "{text}"
    );

    let id = sessions[0]["id"].as_str().unwrap().to_string();
    let (status, _) = admin
        .call("DELETE", &format!("/api/sessions/{id}"), None)
        .await;
    assert_eq!(status, 204);
    admin.session_gone(&id).await;
    admin
        .refused("DELETE", &format!("/api/sessions/{id}"), None, 404)
        .await;
    admin
        .refused("DELETE", "/api/sessions/zzz", None, 404)
        .await;
    // The agent reconnects, as after a network drop, and gets its name back for a new
    // tunnel: the old one's counters went with it, the account's sums keep its traffic.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = admin.sessions().await;
        if s.first()
            .is_some_and(|s| s["tunnels"][0]["urls"][0] == tunnel.as_str())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not come back: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = admin.metrics().await;
    let fresh = format!("{} 0\n", series("burrowd_requests_total", ""));
    assert!(text.contains(&fresh), "{text}");
    assert!(
        text.contains("burrowd_account_requests_total{account=\"\"} 3\n"),
        "{text}"
    );
}

/// The value of the sample `series` in `text`, 0 if missing.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_body_over_64_kib_gets_413() {
    let (_relay, admin) = relay_with(|_| {}).await;
    // Announced too large: refused before the body is sent, so the answer is read whole.
    let mut s = tokio::net::TcpStream::connect(admin.addr).await.unwrap();
    let head = format!(
        "POST /api/accounts HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n",
        admin.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("65536"), "{answer}");
    // Just under the limit is read, and refused for what it says.
    let padded = json!({ "name": "big", "pad": "x".repeat(60_000) });
    let err = admin
        .refused("POST", "/api/accounts", Some(padded), 400)
        .await;
    assert!(err.contains("pad"), "{err}");
    assert_eq!(admin.get("/api/accounts").await, json!([]));
}

#[actix_rt::test]
async fn reserved_names_bind_only_for_their_account() {
    let (relay, admin) = relay_with(|_| {}).await;
    let up = upstream::start().await;
    let mut secrets = Vec::new();
    for name in ["a", "b"] {
        admin.post("/api/accounts", json!({ "name": name })).await;
        let issued = admin
            .post(
                &format!("/api/accounts/{name}/tokens"),
                json!({"label": "ci"}),
            )
            .await;
        secrets.push(issued["secret"].as_str().unwrap().to_string());
    }
    for name in ["app.localhost", "*.a.localhost"] {
        admin
            .post("/api/accounts/a/domains", json!({ "name": name }))
            .await;
    }
    for host in ["app.localhost", "x.a.localhost"] {
        let opts = TunnelOpts::http(up.addr.port()).hostname(host);
        let err = TestAgent::start(&relay, opts, Some(&secrets[1]))
            .await
            .err()
            .unwrap_or_else(|| panic!("b binds {host}"));
        assert!(err.contains("reserved by another account"), "{host}: {err}");
    }
    for host in ["app.localhost", "x.a.localhost"] {
        let opts = TunnelOpts::http(up.addr.port()).hostname(host);
        let agent = TestAgent::start(&relay, opts, Some(&secrets[0]))
            .await
            .unwrap_or_else(|e| panic!("a binds {host}: {e}"));
        assert_eq!(agent.host(), host);
        let url = format!("{}/hello", agent.http_url());
        assert_eq!(visit(&url).await.as_deref(), Some("hello"));
    }
    // b's sessions stay up without a tunnel; a's hold one name each.
    let a = admin.get("/api/accounts/a").await;
    let bound: Vec<_> = a["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| host_of(s["tunnels"][0]["urls"][0].as_str().unwrap()))
        .collect();
    assert_eq!(bound, ["app.localhost", "x.a.localhost"], "{a}");
    let b = admin.get("/api/accounts/b").await;
    for s in b["sessions"].as_array().unwrap() {
        assert_eq!(s["tunnels"], json!([]), "{b}");
    }
}

/// The status of `GET /api/status` on `port` with `token`, through the curl binary.
fn status_with(port: u16, token: &str) -> String {
    let out = burrow_e2e::curl_command()
        .args(["--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{port}/api/status"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn burrowd_makes_its_token_file_once_and_the_environment_overrides_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("admin-token");
    let file = dir.0.join("state").join("admin-token");
    let relay = Burrowd::start(&dir, &[], &[]);
    let port = relay.admin.expect("burrowd prints its admin address");
    let token = std::fs::read_to_string(&file).expect("the token file is made");
    let token = token.trim();
    assert!(token.starts_with("bra_") && token.len() == 47, "{token}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(status_with(port, token), "200");
    drop(relay);

    let relay = Burrowd::start(&dir, &[], &[("BURROWD_ADMIN_TOKEN", "bra_from-the-env")]);
    let port = relay.admin.unwrap();
    assert_eq!(status_with(port, "bra_from-the-env"), "200");
    assert_eq!(status_with(port, token), "401");
    drop(relay);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);

    let relay = Burrowd::start(&dir, &["--admin-addr", "off"], &[]);
    assert_eq!(relay.admin, None);
}
