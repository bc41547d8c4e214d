//! Captured requests through the local API: list, fetch, replay against the upstream,
//! clear; nothing captured with `inspect: false`.

use burrow_e2e::agent_bin::{agent, call, http_tunnel, json};
use burrow_e2e::upstream::read_request;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type Last = Arc<std::sync::Mutex<String>>;

fn counting_upstream() -> (u16, Arc<AtomicUsize>, Last) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let last: Last = Default::default();
    let (h, seen) = (hits.clone(), last.clone());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            *seen.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
            h.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}");
        }
    });
    (port, hits, last)
}

#[test]
fn requests_are_captured_listed_replayed_and_cleared() {
    let (_run, api, _dir) = agent("inspect", "authtoken: sEcReT-tOkEn-123\n");
    let (port, hits, last) = counting_upstream();
    let public = http_tunnel(&api, "web", port);
    let (code, body) = call(
        "POST",
        &format!("{public}/orders?id=7"),
        Some(r#"{"item":"tea"}"#),
        &[],
    );
    assert_eq!((code, body.as_str()), (201, r#"{"ok":true}"#));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let (code, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    assert_eq!(code, 200, "{body}");
    let list = json(&body);
    let r = &list["requests"][0];
    assert_eq!(r["tunnel_name"], "web");
    assert_eq!(r["remote_addr"], "127.0.0.1");
    assert!(r["duration"].as_u64().unwrap() > 0);
    assert_eq!(r["request"]["method"], "POST");
    assert_eq!(r["request"]["uri"], "/orders?id=7");
    assert_eq!(r["request"]["proto"], "HTTP/1.1");
    assert_eq!(
        r["request"]["headers"]["Content-Type"][0],
        "application/json"
    );
    assert_eq!(r["request"]["headers"]["X-Forwarded-For"][0], "127.0.0.1");
    assert!(r["request"]["raw"].as_str().unwrap().len() > 40);
    assert_eq!(r["response"]["status_code"], 201);
    assert_eq!(r["response"]["status"], "201 Created");
    let id = r["id"].as_str().unwrap().to_string();

    // The status page shows the tunnel, its metrics and the configuration, token masked.
    let (code, page) = call("GET", &format!("{api}/status"), None, &[]);
    assert_eq!(code, 200);
    for want in [
        "<h2>web</h2>",
        public.as_str(),
        "HTTP Requests",
        "Connection Durations",
        "sEcReT…",
    ] {
        assert!(page.contains(want), "{want} missing from the status page");
    }
    assert!(
        !page.contains("sEcReT-tOkEn-123"),
        "the whole token is on the page"
    );
    assert_eq!(r["uri"], format!("/api/requests/http/{id}"));

    let (code, body) = call("GET", &format!("{api}/api/requests/http/{id}"), None, &[]);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["id"], id.as_str());
    let (code, _) = call("GET", &format!("{api}/api/requests/http/nope"), None, &[]);
    assert_eq!(code, 404);

    // Replay reaches the upstream again.
    let (code, body) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(&format!(r#"{{"id":"{id}"}}"#)),
        &[],
    );
    assert_eq!(code, 204, "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // An edited replay: the upstream receives the edited method and body.
    let (code, body) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(&format!(
            r#"{{"id":"{id}","tunnel_name":"web","modify":{{"method":"PUT","body":"edited"}}}}"#
        )),
        &[],
    );
    assert_eq!(code, 204, "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let seen = last.lock().unwrap().clone();
    assert!(seen.starts_with("PUT /orders?id=7 HTTP/1.1\r\n"), "{seen}");
    assert!(
        seen.contains("Content-Length: 6\r\n") && seen.ends_with("\r\n\r\nedited"),
        "{seen}"
    );
    let (code, _) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(&format!(r#"{{"id":"{id}","tunnelName":"gone"}}"#)),
        &[],
    );
    assert_eq!(code, 404);
    let (code, _) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(r#"{"id":"missing"}"#),
        &[],
    );
    assert_eq!(code, 404);

    let (code, body) = call("DELETE", &format!("{api}/api/requests/http"), None, &[]);
    assert_eq!((code, body.as_str()), (204, ""));
    let (_, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    assert_eq!(json(&body)["requests"].as_array().unwrap().len(), 0);

    // inspect: false captures nothing.
    let (code, body) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        Some(&format!(
            r#"{{"name":"quiet","addr":"{port}","proto":"http","bind_tls":false,"inspect":false}}"#
        )),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let quiet = json(&body)["public_url"].as_str().unwrap().to_string();
    call("GET", &quiet, None, &[]);
    let (_, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    assert_eq!(
        json(&body)["requests"].as_array().unwrap().len(),
        0,
        "{body}"
    );
}

/// The captured exchanges' ids, newest first.
fn captured_ids(api: &str) -> Vec<String> {
    let (code, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    assert_eq!(code, 200, "{body}");
    json(&body)["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn replay_is_502_naming_the_address_and_cause_when_the_local_server_is_down() {
    let (_run, api, _dir) = agent("replay502", "");
    // A local server that answers one request, then stops listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (s, _) = listener.accept().unwrap();
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        read_request(&mut r).unwrap();
        (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
    });
    let public = http_tunnel(&api, "web", port);
    let (code, body) = call("GET", &format!("{public}/once"), None, &[]);
    assert_eq!((code, body.as_str()), (200, "ok"));
    server.join().unwrap();
    let ids = captured_ids(&api);
    assert_eq!(ids.len(), 1);

    let (code, body) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(&format!(r#"{{"id":"{}"}}"#, ids[0])),
        &[],
    );
    assert_eq!(code, 502, "{body}");
    let v = json(&body);
    assert_eq!(v["status_code"], 502);
    let msg = v["msg"].as_str().unwrap();
    assert!(msg.contains(&format!("localhost:{port}")), "{msg}");
    assert!(
        v["details"]["err"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "the cause is named: {v}"
    );
}

#[test]
fn inspect_db_size_minus_one_disables_inspection_for_every_tunnel() {
    let (_run, api, _dir) = agent("nodb", "inspect_db_size: -1\n");
    let (port, hits, _) = counting_upstream();
    let public = http_tunnel(&api, "web", port);
    // Traffic flows as usual...
    let (code, body) = call("POST", &format!("{public}/orders"), Some("{}"), &[]);
    assert_eq!((code, body.as_str()), (201, r#"{"ok":true}"#));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // ...and nothing is recorded, so there is nothing to fetch or replay.
    assert!(captured_ids(&api).is_empty());
    let (_, body) = call("GET", &format!("{api}/api/tunnels/web"), None, &[]);
    assert_eq!(json(&body)["config"]["inspect"], false, "{body}");
    let (code, _) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(r#"{"id":"any"}"#),
        &[],
    );
    assert_eq!(code, 404);
    let (code, page) = call("GET", &format!("{api}/status"), None, &[]);
    assert_eq!(code, 200);
    assert!(
        page.contains("<th>inspect_db_size</th><td>-1 (inspection off)</td>"),
        "{page}"
    );
    assert!(
        page.contains("<tr><th>Inspect</th><td>false</td></tr>"),
        "{page}"
    );
}
