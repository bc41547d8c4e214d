//! The local REST API of a real `burrow start --none` process, driven with curl as the
//! ngrok v2 wrappers drive it.

use burrow_e2e::agent_bin::{agent_until, call, curl_body, json, run_burrow, spawn};
use burrow_e2e::upstream::http_server;
use burrow_e2e::{free_port, Running, Scratch};

struct Agent {
    api: String,
    _run: Running,
    _dir: Scratch,
}

fn start(config: &str) -> Agent {
    start_with(&["--none"], config)
}

/// `burrow start ARGS` with `config`; returns once the API and the relay session are up.
fn start_with(args: &[&str], config: &str) -> Agent {
    let dir = Scratch::new("api");
    let path = dir.file("burrow.yml", config);
    let run = spawn(
        &[
            &["start"][..],
            args,
            &["--log", "stdout", "--config", path.to_str().unwrap()],
        ]
        .concat(),
    );
    let mut api = String::new();
    let mut seen = [false; 3];
    while seen.iter().any(|s| !s) {
        let l = run.line_matching(|_| true);
        if l.contains("msg=\"starting web service\"") {
            seen[0] = true;
            let addr = l.split(" addr=").nth(1).unwrap().split(' ').next().unwrap();
            api = format!("http://{addr}");
        }
        seen[1] |= l.contains("msg=\"tunnel session started\"");
        seen[2] |= l.contains("msg=\"client session established\"");
    }
    Agent {
        api,
        _run: run,
        _dir: dir,
    }
}

fn upstream() -> u16 {
    http_server("200 OK", "upstream")
}

#[test]
fn tunnels_are_created_listed_fetched_through_and_deleted() {
    let web = free_port();
    let agent = start(&format!(
        "web_addr: 127.0.0.1:{web}\ntunnels:\n  unused:\n    proto: http\n    addr: 1\n"
    ));
    assert_eq!(agent.api, format!("http://127.0.0.1:{web}"));
    let (code, body) = call("GET", &format!("{}/api/tunnels", agent.api), None, &[]);
    assert_eq!(code, 200);
    assert_eq!(
        json(&body)["tunnels"].as_array().unwrap().len(),
        0,
        "start --none starts nothing"
    );

    let port = upstream();
    let (code, body) = call(
        "POST",
        &format!("{}/api/tunnels", agent.api),
        Some(&format!(
            r#"{{"name":"web","addr":{port},"proto":"http","ignored_option":1}}"#
        )),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let t = json(&body);
    assert_eq!(t["name"], "web");
    assert_eq!(t["proto"], "https");
    assert_eq!(t["uri"], "/api/tunnels/web");
    assert_eq!(t["config"]["addr"], format!("http://localhost:{port}"));
    assert_eq!(t["config"]["inspect"], true);
    for k in [
        "count", "gauge", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99",
    ] {
        assert!(t["metrics"]["conns"].get(k).is_some(), "conns.{k}");
    }
    for k in [
        "count", "rate1", "rate5", "rate15", "p50", "p90", "p95", "p99",
    ] {
        assert!(t["metrics"]["http"].get(k).is_some(), "http.{k}");
    }

    // The twin, both spellings of its name.
    let (code, body) = call(
        "GET",
        &format!("{}/api/tunnels/web%20%28http%29", agent.api),
        None,
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let twin = json(&body);
    assert_eq!(twin["proto"], "http");
    assert_eq!(twin["uri"], "/api/tunnels/web%20%28http%29");
    let (code, _) = call(
        "GET",
        &format!("{}/api/tunnels/web%20(http)", agent.api),
        None,
        &[],
    );
    assert_eq!(code, 200);

    // Traffic through the twin shows in its metrics.
    let public = twin["public_url"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let (code, body) = call("GET", &public, None, &[]);
        assert_eq!((code, body.as_str()), (200, "upstream"));
    }
    let (_, body) = call(
        "GET",
        &format!("{}/api/tunnels/web%20%28http%29", agent.api),
        None,
        &[],
    );
    let m = &json(&body)["metrics"];
    assert_eq!(m["conns"]["count"], 3, "{m}");
    assert_eq!(m["http"]["count"], 3, "{m}");
    assert!(m["http"]["p50"].as_f64().unwrap() > 0.0, "{m}");

    let (code, body) = call("GET", &format!("{}/api/tunnels", agent.api), None, &[]);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["tunnels"].as_array().unwrap().len(), 2);

    // Deleting the http twin leaves the https one, and the http URL stops routing.
    let (code, body) = call(
        "DELETE",
        &format!("{}/api/tunnels/web%20%28http%29", agent.api),
        Some("{}"),
        &[],
    );
    assert_eq!((code, body.as_str()), (204, ""));
    let (code, _) = call("GET", &public, None, &[]);
    assert_eq!(code, 404);
    let (_, body) = call("GET", &format!("{}/api/tunnels", agent.api), None, &[]);
    let list = json(&body);
    assert_eq!(list["tunnels"].as_array().unwrap().len(), 1);
    assert_eq!(list["tunnels"][0]["name"], "web");
    let (code, _) = call(
        "DELETE",
        &format!("{}/api/tunnels/web", agent.api),
        None,
        &[],
    );
    assert_eq!(code, 204);
    let (code, body) = call(
        "DELETE",
        &format!("{}/api/tunnels/web", agent.api),
        None,
        &[],
    );
    assert_eq!(code, 404);
    assert!(json(&body)["msg"].as_str().unwrap().contains("not found"));

    // tcp
    let (code, body) = call(
        "POST",
        &format!("{}/api/tunnels", agent.api),
        Some(r#"{"name":"ssh","addr":"22","proto":"tcp"}"#),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let t = json(&body);
    assert!(
        t["public_url"]
            .as_str()
            .unwrap()
            .starts_with("tcp://localhost:"),
        "{t}"
    );
    assert_eq!(t["config"]["addr"], "localhost:22");
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let agent = start("{}\n");
    let api = &agent.api;
    let post = |b: &str| call("POST", &format!("{api}/api/tunnels"), Some(b), &[]);
    let cases: &[(&str, u16, &str)] = &[
        (
            r#"{"name":"x","addr":"80","proto":"gopher"}"#,
            400,
            "invalid tunnel configuration",
        ),
        (r#"{"name":"x","addr":"80"}"#, 400, "missing field proto"),
        (r#"{"addr":"80","proto":"http"}"#, 400, "missing field name"),
        (r#"{"name":"x","proto":"http"}"#, 400, "missing field addr"),
        (
            r#"{"name":"x","addr":"99999","proto":"http"}"#,
            400,
            "out of range",
        ),
        (
            r#"{"name":"x","addr":"80","proto":"http","inspect":"maybe"}"#,
            400,
            "invalid field inspect",
        ),
        ("not json", 400, "invalid JSON body"),
        ("[1,2]", 400, "JSON object"),
    ];
    for (body, status, want) in cases {
        let (code, text) = post(body);
        assert_eq!(code, *status, "{body}: {text}");
        let v = json(&text);
        assert_eq!(v["status_code"], *status);
        let all = format!("{} {}", v["msg"], v["details"]["err"]);
        assert!(all.contains(want), "{body}: {all}");
        assert!(v.get("error_code").is_some());
    }
    let (code, text) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        None,
        &["-d", "name=x&addr=80&proto=http"],
    );
    assert_eq!(code, 415, "{text}");
    // Name taken.
    let port = upstream();
    let b = format!(r#"{{"name":"dup","addr":"{port}","proto":"http","bind_tls":false}}"#);
    assert_eq!(post(&b).0, 201);
    let (code, text) = post(&b);
    assert_eq!(code, 409, "{text}");
    // One agent cannot hold the same public name twice.
    let (code, text) = post(&format!(
        r#"{{"name":"first","addr":"{port}","proto":"http","subdomain":"twice"}}"#
    ));
    assert_eq!(code, 201, "{text}");
    let (code, text) = post(&format!(
        r#"{{"name":"second","addr":"{port}","proto":"http","subdomain":"twice"}}"#
    ));
    assert_eq!(code, 502, "{text}");
    assert!(
        json(&text)["details"]["err"]
            .as_str()
            .unwrap()
            .contains("already in use"),
        "{text}"
    );
    // A failed bind is reported with the relay's reason.
    let (code, text) = post(&format!(
        r#"{{"name":"bad","addr":"{port}","proto":"tcp","remote_addr":"localhost:{port}"}}"#
    ));
    assert_eq!(code, 502, "{text}");
    let v = json(&text);
    assert_eq!(v["msg"], "failed to start tunnel");
    assert!(
        v["details"]["err"]
            .as_str()
            .unwrap()
            .contains(&port.to_string()),
        "the busy port is named: {v}"
    );
    let (code, _) = call("PUT", &format!("{api}/api/tunnels/x"), Some("{}"), &[]);
    assert_eq!(code, 405);
    let (code, _) = call("GET", &format!("{api}/api/tunnels/nope"), None, &[]);
    assert_eq!(code, 404);
}

#[test]
fn foreign_hosts_and_cross_site_requests_are_refused() {
    let agent = start("{}\n");
    let url = format!("{}/api/tunnels", agent.api);
    let (code, body) = call("GET", &url, None, &["-H", "Host: evil.example"]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("DNS rebinding"));
    let (code, _) = call("GET", &url, None, &["-H", "Origin: http://evil.example"]);
    assert_eq!(code, 403);
    let (code, _) = call("GET", &url, None, &["-H", "Sec-Fetch-Site: cross-site"]);
    assert_eq!(code, 403);
    let port = agent.api.rsplit(':').next().unwrap();
    let (code, _) = call(
        "GET",
        &url,
        None,
        &["-H", &format!("Host: localhost:{port}")],
    );
    assert_eq!(code, 200);
}

#[test]
fn prometheus_metrics() {
    let agent = start("{}\n");
    let port = upstream();
    let (code, _) = call(
        "POST",
        &format!("{}/api/tunnels", agent.api),
        Some(&format!(
            r#"{{"name":"m","addr":"{port}","proto":"http","schemes":["http"]}}"#
        )),
        &[],
    );
    assert_eq!(code, 201);
    let (_, body) = call("GET", &format!("{}/api/tunnels/m", agent.api), None, &[]);
    let url = json(&body)["public_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://"));
    call("GET", &url, None, &[]);
    let (code, text) = call("GET", &format!("{}/metrics", agent.api), None, &[]);
    assert_eq!(code, 200);
    assert!(
        text.contains("burrow_connections_total{tunnel=\"m\",scheme=\"http\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE burrow_http_response_duration_seconds summary"),
        "{text}"
    );
}

#[test]
fn a_busy_explicit_web_addr_is_fatal_with_the_go_message() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = Scratch::new("busy");
    let path = dir.file("c.yml", &format!("web_addr: 127.0.0.1:{port}\n"));
    let out = run_burrow(&[
        "start",
        "--none",
        "--log",
        "stdout",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lvl=eror"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "err=\"listen tcp 127.0.0.1:{port}: bind: address already in use\""
        )),
        "{stdout}"
    );
}

/// Public URLs by tunnel name, from `GET /api/tunnels`.
fn public_urls(api: &str) -> std::collections::BTreeMap<String, String> {
    let (code, body) = call("GET", &format!("{api}/api/tunnels"), None, &[]);
    assert_eq!(code, 200, "{body}");
    json(&body)["tunnels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["public_url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn tunnel_calls_get_503_until_the_relay_session_is_up() {
    // A relay that is not there: the session never comes up, the API does.
    let relay = free_port();
    let (run, api, _dir) = agent_until(
        "api503",
        &format!("server_addr: 127.0.0.1:{relay}\n"),
        "msg=\"starting web service\"",
    );
    run.line_matching(|l| l.contains("failed to reconnect session"));
    let (code, body) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        Some(&format!(
            r#"{{"name":"early","addr":"{}","proto":"http"}}"#,
            upstream()
        )),
        &[],
    );
    assert_eq!(code, 503, "{body}");
    let v = json(&body);
    assert_eq!(v["status_code"], 503);
    assert_eq!(
        v["details"]["err"],
        "a successful ngrok tunnel session has not yet been established"
    );
    // Reading works meanwhile, and nothing was started.
    assert!(public_urls(&api).is_empty());
}

#[test]
fn basic_auth_in_a_create_body_guards_the_tunnel() {
    let agent = start("{}\n");
    let api = &agent.api;
    let port = upstream();
    for (name, field) in [
        ("listed", r#""basic_auth":["ann:s3cret"]"#),
        ("single", r#""basic_auth":"ann:s3cret""#),
    ] {
        let (code, body) = call(
            "POST",
            &format!("{api}/api/tunnels"),
            Some(&format!(
                r#"{{"name":"{name}","addr":"{port}","proto":"http","bind_tls":false,{field}}}"#
            )),
            &[],
        );
        assert_eq!(code, 201, "{body}");
        let url = json(&body)["public_url"].as_str().unwrap().to_string();
        let (code, _) = call("GET", &url, None, &[]);
        assert_eq!(code, 401, "{name}: no credentials");
        let (code, _) = call("GET", &url, None, &["-u", "ann:wrong"]);
        assert_eq!(code, 401, "{name}: wrong password");
        let (code, body) = call("GET", &url, None, &["-u", "ann:s3cret"]);
        assert_eq!((code, body.as_str()), (200, "upstream"), "{name}");
    }
    // A tunnel holds one credential: more is refused, not half applied.
    let (code, body) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        Some(&format!(
            r#"{{"name":"two","addr":"{port}","proto":"http","basic_auth":["a:1","b:2"]}}"#
        )),
        &[],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("basic_auth"), "{body}");
}

#[test]
fn start_names_the_tunnels_to_run_or_all_of_them() {
    let (one, two) = (http_server("200 OK", "one"), http_server("200 OK", "two"));
    let config = |web: u16| {
        format!(
            "web_addr: 127.0.0.1:{web}\ntunnels:\n  one:\n    proto: http\n    addr: {one}\n    bind_tls: false\n  two:\n    proto: http\n    addr: {two}\n    bind_tls: false\n  spare:\n    proto: tcp\n    addr: 1\n"
        )
    };

    let agent = start_with(&["two"], &config(free_port()));
    let urls = public_urls(&agent.api);
    assert_eq!(urls.keys().collect::<Vec<_>>(), ["two"], "{urls:?}");
    assert_eq!(curl_body(&urls["two"]), "two");
    drop(agent);

    let agent = start_with(&["one", "two"], &config(free_port()));
    let urls = public_urls(&agent.api);
    assert_eq!(urls.keys().collect::<Vec<_>>(), ["one", "two"], "{urls:?}");
    assert_eq!(curl_body(&urls["one"]), "one");
    assert_eq!(curl_body(&urls["two"]), "two");
    drop(agent);

    let agent = start_with(&["--all"], &config(free_port()));
    let urls = public_urls(&agent.api);
    assert_eq!(
        urls.keys().collect::<Vec<_>>(),
        ["one", "spare", "two"],
        "{urls:?}"
    );
    assert_eq!(curl_body(&urls["one"]), "one");
    assert_eq!(curl_body(&urls["two"]), "two");
    assert!(urls["spare"].starts_with("tcp://"), "{urls:?}");

    let out = run_burrow(&[
        "start",
        "nope",
        "--config",
        agent._dir.0.join("burrow.yml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope"), "an unknown tunnel is named: {err}");
}
