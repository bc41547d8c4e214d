//! HTTP tunnels end to end: real relay, real agent, real upstream, curl and raw sockets.

use burrow_e2e::{curl, host_of, port_of, raw_exchange, upstream, TestAgent, TestRelay};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[actix_rt::test]
async fn get_and_post_over_http_and_https() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    assert_eq!(agent.urls.len(), 2);
    let h = agent.host();
    assert_eq!(h.len(), "12345678.localhost".len(), "{h}");
    assert!(h[..8].bytes().all(|b| b.is_ascii_hexdigit()));

    let (body, err, ok) = curl(&[&format!("{}/hello", agent.http_url())]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");

    let (body, err, ok) = curl(&["-d", "ping=pong", &format!("{}/echo", agent.http_url())]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "ping=pong");

    let ca = relay.ca_file();
    let (body, err, ok) = curl(&["--cacert", &ca, &format!("{}/headers", agent.https_url())]).await;
    assert!(ok, "{err}");
    assert!(body.contains("X-Forwarded-Proto: https\r\n"), "{body}");
    assert!(body.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{body}");
}

#[actix_rt::test]
async fn headers_keep_case_and_order_and_proto_is_not_spoofable() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let req = format!(
        "GET /headers HTTP/1.1\r\nHost: {}\r\nzeta: 1\r\nALPHA: 2\r\nX-Forwarded-Proto: gopher\r\nConnection: close\r\n\r\n",
        agent.host()
    );
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
    let z = resp.find("zeta: 1").expect("zeta kept");
    let a = resp.find("ALPHA: 2").expect("ALPHA kept");
    assert!(z < a);
    assert!(!resp.contains("gopher"), "{resp}");
    assert!(resp.contains("X-Forwarded-Proto: http\r\n"), "{resp}");
}

#[actix_rt::test]
async fn keep_alive_is_reused() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let u = format!("{}/hello", agent.http_url());
    let (body, err, ok) = curl(&["-v", &u, &u, &u]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hellohellohello");
    assert_eq!(
        err.matches("Re-using existing connection").count()
            + err.matches("Reusing existing").count(),
        2,
        "{err}"
    );
    // One public connection, one stream, one upstream connection.
    assert_eq!(up.conns.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[actix_rt::test]
async fn chunked_bodies_and_trailers_both_ways() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let (body, err, ok) = curl(&[&format!("{}/chunked", agent.http_url())]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "onetwothree");
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nConnection: close\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Sum: 9f2c\r\nX-Signed: yes\r\n\r\n",
        agent.host()
    );
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nWikipedia"), "{resp}");
    // The request's trailer fields reached the upstream, as sent.
    assert_eq!(up.trailers(), ["X-Sum: 9f2c", "X-Signed: yes"]);

    // A response trailer reaches curl, which prints trailers with the headers.
    let (headers, err, ok) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{}/trailers", agent.http_url()),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(headers.contains("X-Checksum: 5eb63bbb\r\n"), "{headers}");
    // And, byte for byte, after the last chunk on the wire.
    let req = format!(
        "GET /trailers HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        agent.host()
    );
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        resp.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 5eb63bbb\r\n\r\n"),
        "{resp}"
    );
}

#[actix_rt::test]
async fn pipelined_requests_are_answered_in_order() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let h = agent.host();
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nfirstGET /hello HTTP/1.1\r\nHost: {h}\r\n\r\nPOST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthird"
    );
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
    let first = resp.find("first").expect("first");
    let hello = resp.find("hello").expect("hello");
    let third = resp.find("third").expect("third");
    assert!(first < hello && hello < third, "{resp}");
    assert_eq!(resp.matches("HTTP/1.1 200 OK").count(), 3);
}

#[actix_rt::test]
async fn expect_continue_and_head() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let (body, err, ok) = curl(&[
        "-v",
        "-H",
        "Expect: 100-continue",
        "-d",
        "payload",
        &format!("{}/echo", agent.http_url()),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(err.contains("100 Continue"), "{err}");
    assert_eq!(body, "payload");
    let (_, err, ok) = curl(&["-v", "-I", &format!("{}/hello", agent.http_url())]).await;
    assert!(ok, "{err}");
    assert!(err.contains("Content-Length: 5"), "{err}");
}

/// Masks and frames one WebSocket text message, as a client must.
fn ws_frame(text: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A WebSocket echo through the tunnel over `s` (plain or TLS).
async fn websocket_echo<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    host: &str,
) {
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = s.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in [&b"hello websocket"[..], b"second message"] {
        let frame = ws_frame(msg);
        s.write_all(&frame).await.unwrap();
        let mut echoed = vec![0u8; frame.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, frame);
    }
}

#[actix_rt::test]
async fn websocket_upgrade_passes_through() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let s = TcpStream::connect(relay.http()).await.unwrap();
    websocket_echo(s, &agent.host()).await;
}

#[actix_rt::test]
async fn websocket_over_https() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let tls = burrow::client_tls(None, relay.handle.ca_pem.as_deref()).unwrap();
    let name = rustls::pki_types::ServerName::try_from(agent.host()).unwrap();
    let sock = TcpStream::connect(relay.https()).await.unwrap();
    let s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, sock)
        .await
        .expect("TLS to the relay");
    websocket_echo(s, &agent.host()).await;
}

#[actix_rt::test]
async fn custom_hostname_held_by_another_session_is_refused() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let opts = burrow_e2e::TunnelOpts::http(up.addr.port()).hostname("app.example.test");
    let first = TestAgent::start(&relay, opts.clone(), None).await.unwrap();
    assert_eq!(host_of(first.http_url()), "app.example.test");
    let err = TestAgent::start(&relay, opts, None)
        .await
        .err()
        .expect("a second session is refused");
    assert!(err.contains("app.example.test is already in use"), "{err}");
    let url = format!("http://app.example.test:{}/hello", relay.http().port());
    let resolve = format!("app.example.test:{}:127.0.0.1", relay.http().port());
    let (body, _, _) = curl(&["--resolve", &resolve, &url]).await;
    assert_eq!(body, "hello", "the first keeps it");
}

#[actix_rt::test]
async fn two_hundred_concurrent_connections() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let addr = relay.http();
    let host = agent.host();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("conn-{i}");
            let req = format!(
                "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let resp = raw_exchange(addr, req.as_bytes(), Duration::from_secs(20)).await;
            resp.ends_with(&format!("\r\n\r\n{body}"))
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }
    assert_eq!(ok, 200);
}

#[actix_rt::test]
async fn unknown_host_is_404_naming_it() {
    let relay = TestRelay::start().await;
    let url = format!("http://nosuch.localhost:{}/", relay.http().port());
    let (body, _, _) = curl(&["-w", "%{http_code}", &url]).await;
    assert!(body.contains("Tunnel nosuch.localhost not found"), "{body}");
    assert!(body.ends_with("404"), "{body}");
}

#[actix_rt::test]
async fn a_local_server_closing_without_a_response_is_502() {
    let relay = TestRelay::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // Hang up without a word.
        }
    });
    let agent = TestAgent::http(&relay, port).await;
    let (body, _, _) = curl(&["-w", "%{http_code}", &format!("{}/", agent.http_url())]).await;
    assert!(body.ends_with("502"), "{body}");
    assert!(
        body.contains("closed the connection without a response"),
        "{body}"
    );
}

#[actix_rt::test]
async fn local_server_down_is_502_naming_address_and_cause() {
    let relay = TestRelay::start().await;
    // A port that was free a moment ago and now has nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = TestAgent::http(&relay, port).await;
    let (body, _, _) = curl(&["-w", "%{http_code}", &format!("{}/", agent.http_url())]).await;
    assert!(body.ends_with("502"), "{body}");
    assert!(body.contains(&format!("localhost:{port}")), "{body}");
    assert!(body.contains("connection refused"), "{body}");
    // Once the server is up the same URL works.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup")
            .await;
    });
    let (body, _, _) = curl(&[&format!("{}/", agent.http_url())]).await;
    assert_eq!(body, "up");
}

#[actix_rt::test]
async fn subdomains_requested_taken_and_invalid() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let opts = burrow_e2e::TunnelOpts::http(up.addr.port()).subdomain("myapp");
    let first = TestAgent::start(&relay, opts.clone(), None).await.unwrap();
    assert_eq!(host_of(first.http_url()), "myapp.localhost");
    assert_eq!(port_of(first.http_url()), relay.http().port());
    let err = TestAgent::start(&relay, opts, None)
        .await
        .err()
        .expect("second agent refused");
    assert!(err.contains("myapp.localhost is already in use"), "{err}");
    let bad = burrow_e2e::TunnelOpts::http(up.addr.port()).subdomain("no_way!");
    let err = TestAgent::start(&relay, bad, None)
        .await
        .err()
        .expect("invalid refused");
    assert!(err.contains("invalid subdomain"), "{err}");
    let (body, _, _) = curl(&[&format!("{}/hello", first.http_url())]).await;
    assert_eq!(body, "hello");
}

#[actix_rt::test]
async fn bind_tls_modes() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let mut opts = burrow_e2e::TunnelOpts::http(up.addr.port());
    opts.bind_tls = burrow_protocol::control::BindTls::Https;
    let agent = TestAgent::start(&relay, opts, None).await.unwrap();
    assert_eq!(agent.urls.len(), 1);
    assert!(agent.urls[0].starts_with("https://"));
    let plain = format!("http://{}:{}/hello", agent.host(), relay.http().port());
    let (body, _, _) = curl(&["-w", "%{http_code}", &plain]).await;
    assert!(body.ends_with("404"), "{body}");
}

#[actix_rt::test]
async fn auth_tokens() {
    let relay = TestRelay::start_with(|c| c.tokens = vec!["s3cret-token".into()]).await;
    let up = upstream::start().await;
    let err = TestAgent::start(
        &relay,
        burrow_e2e::TunnelOpts::http(up.addr.port()),
        Some("wrong"),
    )
    .await
    .err()
    .unwrap();
    assert!(err.contains("authentication failed"), "{err}");
    let err = TestAgent::start(&relay, burrow_e2e::TunnelOpts::http(up.addr.port()), None)
        .await
        .err()
        .unwrap();
    assert!(err.contains("requires an auth token"), "{err}");
    let ok = TestAgent::start(
        &relay,
        burrow_e2e::TunnelOpts::http(up.addr.port()),
        Some("s3cret-token"),
    )
    .await;
    assert!(ok.is_ok());
}

#[actix_rt::test]
async fn basic_auth_is_enforced_at_the_relay() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let mut opts = burrow_e2e::TunnelOpts::http(up.addr.port());
    opts.auth = Some("alice:s3cret pass".into());
    let agent = TestAgent::start(&relay, opts, None).await.unwrap();
    let url = format!("{}/hello", agent.http_url());
    let before = up.hits.load(std::sync::atomic::Ordering::Relaxed);
    let (body, err, _) = curl(&["-i", &url]).await;
    assert!(
        body.starts_with("HTTP/1.1 401 Unauthorized"),
        "{body} {err}"
    );
    assert!(
        body.contains("WWW-Authenticate: Basic realm=\"burrow\""),
        "{body}"
    );
    assert!(body.contains("401 Unauthorized"));
    let (body, _, _) = curl(&["-i", "-X", "OPTIONS", &url]).await;
    assert!(body.starts_with("HTTP/1.1 401"), "{body}");
    let (body, _, _) = curl(&["-i", "-u", "alice:wrong", &url]).await;
    assert!(body.starts_with("HTTP/1.1 401"), "{body}");
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::Relaxed),
        before,
        "nothing reached the upstream"
    );
    let (body, _, ok) = curl(&["-u", "alice:s3cret pass", &url]).await;
    assert!(ok);
    assert_eq!(body, "hello");
}
