//! Replaying a captured request through another tunnel: it goes to that tunnel's local
//! address, with that tunnel's Host rule.

use burrow_e2e::agent_bin::{agent, call, http_tunnel, json};
use std::sync::{Arc, Mutex};

/// An upstream that records every request head it gets and answers with its own name.
fn upstream(name: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn a_replay_to_another_tunnel_reaches_that_tunnels_local_server() {
    let (_run, api, _dir) = agent("replay-other", "");
    let (port_a, seen_a) = upstream("a");
    let (port_b, seen_b) = upstream("b");
    let public_a = http_tunnel(&api, "a", port_a);
    let (code, body) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        Some(&format!(
            r#"{{"name":"b","addr":"{port_b}","proto":"http","bind_tls":false,"host_header":"rewrite"}}"#
        )),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    let (code, _) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        Some(&format!(
            r#"{{"name":"raw","addr":"{port_b}","proto":"tcp"}}"#
        )),
        &[],
    );
    assert_eq!(code, 201);

    let (code, body) = call("GET", &format!("{public_a}/orders"), None, &[]);
    assert_eq!((code, body.as_str()), (200, "a"));
    let (_, body) = call("GET", &format!("{api}/api/requests/http"), None, &[]);
    let id = json(&body)["requests"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let replay = |tunnel: &str| {
        call(
            "POST",
            &format!("{api}/api/requests/http"),
            Some(&format!(r#"{{"id":"{id}","tunnel_name":"{tunnel}"}}"#)),
            &[],
        )
    };
    let (code, body) = replay("b");
    assert_eq!(code, 204, "{body}");
    assert_eq!(
        seen_a.lock().unwrap().len(),
        1,
        "the capture's own tunnel got it again"
    );
    let got = seen_b.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "tunnel b's local server got the replay");
    assert!(got[0].starts_with("GET /orders HTTP/1.1\r\n"), "{}", got[0]);
    assert!(
        got[0].contains(&format!("\r\nHost: localhost:{port_b}\r\n")),
        "tunnel b rewrites Host: {}",
        got[0]
    );
    // The replay is captured under the tunnel it went through.
    let (_, body) = call(
        "GET",
        &format!("{api}/api/requests/http?tunnel_name=b"),
        None,
        &[],
    );
    let list = json(&body);
    assert_eq!(list["requests"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(
        list["requests"][0]["response"]["status_code"], 200,
        "{body}"
    );

    // Without a tunnel name it goes where it was captured; a tcp tunnel cannot take it.
    let (code, _) = call(
        "POST",
        &format!("{api}/api/requests/http"),
        Some(&format!(r#"{{"id":"{id}"}}"#)),
        &[],
    );
    assert_eq!(code, 204);
    assert_eq!(seen_a.lock().unwrap().len(), 2);
    let (code, body) = replay("raw");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not an http tunnel"), "{body}");
    assert_eq!(seen_b.lock().unwrap().len(), 1);
}
