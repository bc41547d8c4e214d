//! The inspector's live side with real traffic: server-sent events (pending then complete),
//! WebSocket messages of an upgraded exchange, HAR export, the embedded page, and the
//! store's bounds (truncated bodies, eviction under `inspect_db_size`).

use burrow_e2e::agent_bin::{agent, call, http_tunnel, json};
use burrow_e2e::curl_command;
use burrow_e2e::upstream::read_request;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An upstream that reads whole requests: `/slow` answers after 1.5 s, `/ws` is a
/// WebSocket echo, anything else gets a small JSON answer.
fn upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

fn serve(mut s: TcpStream) {
    let mut peek = [0u8; 16];
    let n = s.peek(&mut peek).unwrap_or(0);
    if peek[..n].starts_with(b"GET /ws") {
        let Ok(mut ws) = tungstenite::accept(s) else {
            return;
        };
        while let Ok(m) = ws.read() {
            if m.is_text() || m.is_binary() {
                let _ = ws.send(m);
            }
        }
        return;
    }
    let mut r = BufReader::new(s.try_clone().unwrap());
    while let Some((head, body)) = read_request(&mut r) {
        let len = body.len();
        if head.starts_with("GET /slow") {
            std::thread::sleep(Duration::from_millis(1500));
        }
        let reply = format!("{{\"got\":{len}}}");
        let out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if s.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads server-sent events from `curl -N` into (event, data) pairs.
fn subscribe(
    api: &str,
) -> (
    std::process::Child,
    mpsc::Receiver<(String, serde_json::Value)>,
) {
    let mut child = curl_command()
        .args(["-N", "--max-time", "30", &format!("{api}/inspect/events")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                let v = serde_json::from_str(d).expect("event data is JSON");
                if tx.send((event.clone(), v)).is_err() {
                    return;
                }
            }
        }
    });
    (child, rx)
}

fn next_event(
    rx: &mpsc::Receiver<(String, serde_json::Value)>,
    what: &str,
    pred: impl Fn(&str, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((e, v)) if pred(&e, &v) => return v,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no event: {what}");
}

fn host_of(public: &str) -> (String, u16) {
    let rest = public.split_once("://").unwrap().1;
    let (host, port) = rest.rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}

#[test]
fn live_events_websocket_messages_har_and_the_page() {
    let (_run, api, _dir) = agent("live", "");
    let public = http_tunnel(&api, "web", upstream());
    let (mut sse, rx) = subscribe(&api);
    let snap = next_event(&rx, "first snapshot", |e, _| e == "snapshot");
    assert_eq!(snap["requests"].as_array().unwrap().len(), 0);

    // A slow exchange is announced pending at once, then completed.
    let slow = {
        let url = format!("{public}/slow");
        std::thread::spawn(move || call("GET", &url, None, &[]))
    };
    let pending = next_event(&rx, "pending /slow", |e, v| {
        e == "request" && v["request"]["uri"] == "/slow"
    });
    assert_eq!(pending["pending"], true, "{pending}");
    assert!(pending["response"].is_null());
    assert!(pending.get("raw").is_none() && pending["request"].get("raw").is_none());
    let id = pending["id"].as_str().unwrap().to_string();
    let done = next_event(&rx, "completed /slow", |e, v| {
        e == "request" && v["id"] == id.as_str() && v["pending"] == false
    });
    assert_eq!(done["response"]["status_code"], 200);
    assert!(
        done["duration"].as_u64().unwrap() >= 1_400_000_000,
        "{done}"
    );
    assert_eq!(slow.join().unwrap().0, 200);

    // WebSocket messages of an upgraded exchange, both ways, pushed as they pass.
    let (host, port) = host_of(&public);
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut ws, resp) =
        tungstenite::client(format!("ws://{host}:{port}/ws"), sock).expect("handshake");
    assert_eq!(resp.status(), 101);
    ws.send(tungstenite::Message::text("hello <b>ws</b>"))
        .unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap(), "hello <b>ws</b>");
    ws.send(tungstenite::Message::binary(vec![0u8, 159, 146, 150]))
        .unwrap();
    assert!(ws.read().unwrap().is_binary());
    let upgrade = next_event(&rx, "the upgrade", |e, v| {
        e == "request" && v["request"]["uri"] == "/ws" && v["pending"] == false
    });
    assert_eq!(upgrade["response"]["status_code"], 101);
    let ws_id = upgrade["id"].as_str().unwrap().to_string();
    let first = next_event(&rx, "a websocket message", |e, v| {
        e == "websocket" && v["id"] == ws_id.as_str()
    });
    assert_eq!(first["message"]["from"], "client");
    assert_eq!(first["message"]["opcode"], 1);
    ws.close(None).unwrap();
    let _ = ws.flush();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    let messages = loop {
        let (_, body) = call(
            "GET",
            &format!("{api}/api/requests/http/{ws_id}"),
            None,
            &[],
        );
        let v = json(&body);
        let m = v["websocket_messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if m.len() >= 4 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seen: Vec<(String, u64, String)> = messages
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap().to_string(),
                m["opcode"].as_u64().unwrap(),
                m["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let text = "aGVsbG8gPGI+d3M8L2I+"; // base64 of the text message
    let binary = "AJ+Slg==";
    assert_eq!(
        seen[..4],
        [
            ("client".into(), 1, text.into()),
            ("server".into(), 1, text.into()),
            ("client".into(), 2, binary.into()),
            ("server".into(), 2, binary.into()),
        ],
        "{messages:?}"
    );

    // HAR of everything, and of one exchange.
    call(
        "POST",
        &format!("{public}/orders?id=7&q=a+b"),
        Some(r#"{"item":"tea"}"#),
        &[],
    );
    let (code, body) = call("GET", &format!("{api}/inspect/har"), None, &[]);
    assert_eq!(code, 200);
    let har = json(&body);
    assert_eq!(har["log"]["version"], "1.2");
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{body}");
    let post = entries.last().unwrap();
    assert_eq!(post["request"]["method"], "POST");
    assert!(post["request"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/orders?id=7&q=a+b"));
    assert_eq!(post["request"]["queryString"][1]["value"], "a b");
    assert_eq!(post["request"]["postData"]["text"], r#"{"item":"tea"}"#);
    assert_eq!(post["response"]["status"], 200);
    assert_eq!(post["response"]["content"]["text"], r#"{"got":14}"#);
    let (code, body) = call("GET", &format!("{api}/inspect/har?id={id}"), None, &[]);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["log"]["entries"].as_array().unwrap().len(), 1);
    let (code, _) = call("GET", &format!("{api}/inspect/har?id=nope"), None, &[]);
    assert_eq!(code, 404);

    // Clearing is pushed too.
    call("DELETE", &format!("{api}/api/requests/http"), None, &[]);
    next_event(&rx, "clear", |e, _| e == "clear");
    let _ = sse.kill();
    let _ = sse.wait();

    // The page: `/` leads to it, it and its files are served with a strict policy.
    let out = curl_command()
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("{api}/"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("302 {api}/inspect/http")
    );
    let out = curl_command()
        .args(["-i", &format!("{api}/inspect/http")])
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(page.starts_with("http/1.1 200"), "{page}");
    assert!(page.contains("content-security-policy: default-src 'self'"));
    assert!(page.contains("/inspect/static/app.js"));
    let (code, js) = call("GET", &format!("{api}/inspect/static/app.js"), None, &[]);
    assert!(code == 200 && js.contains("EventSource"), "{code}");
    let (code, _) = call("GET", &format!("{api}/inspect/static/nope.js"), None, &[]);
    assert_eq!(code, 404);
}

#[test]
fn big_bodies_are_truncated_and_the_store_stays_under_its_size() {
    let (_run, api, dir) = agent("bounds", "inspect_db_size: 1000000\n");
    let public = http_tunnel(&api, "web", upstream());
    let big = dir.file("big.bin", &"x".repeat(300 * 1024));
    let post = |n: usize| {
        let (code, body) = call(
            "POST",
            &format!("{public}/upload/{n}"),
            None,
            &["--data-binary", &format!("@{}", big.display())],
        );
        assert_eq!(
            (code, body.as_str()),
            (200, r#"{"got":307200}"#),
            "the whole body flows"
        );
    };
    post(0);
    let (_, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    let list = json(&body);
    let first = &list["requests"][0];
    assert_eq!(first["request"]["truncated"], true);
    assert_eq!(first["request"]["size"], 300 * 1024);
    let first_id = first["id"].as_str().unwrap().to_string();
    let raw_len = first["request"]["raw"].as_str().unwrap().len() * 3 / 4;
    assert!(
        (256 * 1024..256 * 1024 + 1024).contains(&raw_len),
        "raw keeps the head and 256 KiB: {raw_len}"
    );
    for n in 1..=8 {
        post(n);
    }
    let (_, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    let list = json(&body);
    let kept = list["requests"].as_array().unwrap();
    assert!(
        !kept.is_empty() && kept.len() <= 3,
        "about 1 MB holds three: {}",
        kept.len()
    );
    assert_eq!(kept[0]["request"]["uri"], "/upload/8", "newest kept");
    let (code, _) = call(
        "GET",
        &format!("{api}/api/requests/http/{first_id}"),
        None,
        &[],
    );
    assert_eq!(code, 404, "the oldest was evicted");
}
