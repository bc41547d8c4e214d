//! Bad input of every kind: the relay answers or drops the offender, stays up, and other
//! sessions keep working.

use burrow_e2e::{agent_port_tls, curl, raw_exchange, upstream, TestAgent, TestRelay};
use burrow_protocol::frame::Frame;
use burrow_protocol::preamble;
use bytes::BytesMut;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn quick_relay() -> TestRelay {
    TestRelay::start_with(|c| {
        c.limits.handshake_timeout = Duration::from_millis(500);
        c.limits.head_timeout = Duration::from_millis(500);
        c.limits.max_head = 4096;
    })
    .await
}

/// Reads until the relay closes the connection; panics if it does not within 5 s.
async fn closed_by_relay<S: tokio::io::AsyncRead + Unpin>(s: &mut S) {
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("relay kept the connection open"),
        }
    }
}

async fn still_serving(agent: &TestAgent) {
    let (body, err, ok) = curl(&[&format!("{}/hello", agent.http_url())]).await;
    assert!(ok && body == "hello", "other session broken: {body} {err}");
}

#[actix_rt::test]
async fn garbage_truncated_oversized_and_wrong_version_frames() {
    let relay = quick_relay().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;

    // Not even TLS.
    let mut raw = TcpStream::connect(relay.handle.control_addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    closed_by_relay(&mut raw).await;

    // TLS, then not our preamble.
    let mut s = agent_port_tls(&relay).await;
    s.write_all(b"\x00\x01garbage garbage garbage")
        .await
        .unwrap();
    closed_by_relay(&mut s).await;

    // TLS, a preamble of another version: the relay answers with its own and closes.
    let mut s = agent_port_tls(&relay).await;
    s.write_all(&preamble::encode(99)).await.unwrap();
    let mut theirs = [0u8; 8];
    s.read_exact(&mut theirs).await.unwrap();
    assert_eq!(
        preamble::decode(&theirs).unwrap(),
        burrow_protocol::PROTOCOL_VERSION
    );
    closed_by_relay(&mut s).await;

    let frames: Vec<Vec<u8>> = vec![
        // Unknown frame kind.
        vec![200, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        // A length far over the limit.
        vec![3, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        // A control frame that is not a message.
        {
            let mut b = BytesMut::new();
            Frame::Control(bytes::Bytes::from_static(b"{not json")).encode(&mut b);
            b.to_vec()
        },
        // Truncated: a header promising 100 bytes, then the end.
        vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 100, 1, 2, 3],
    ];
    for f in frames {
        let mut s = agent_port_tls(&relay).await;
        s.write_all(&preamble::encode(burrow_protocol::PROTOCOL_VERSION))
            .await
            .unwrap();
        s.write_all(&f).await.unwrap();
        if f.len() == 13 {
            s.shutdown().await.unwrap();
        }
        closed_by_relay(&mut s).await;
    }
    still_serving(&agent).await;
}

#[actix_rt::test]
async fn a_tls_client_that_never_speaks_is_dropped() {
    let relay = quick_relay().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(relay.handle.control_addr).await.unwrap();
    closed_by_relay(&mut silent).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    // A TLS client that finishes the handshake and then says nothing is dropped too.
    let mut quiet = agent_port_tls(&relay).await;
    closed_by_relay(&mut quiet).await;
    // So is a silent visitor on the https listener.
    let mut silent = TcpStream::connect(relay.https()).await.unwrap();
    closed_by_relay(&mut silent).await;
    still_serving(&agent).await;
}

#[actix_rt::test]
async fn malformed_oversized_and_slow_heads() {
    let relay = quick_relay().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let h = agent.host();
    let cases: Vec<(String, &str)> = vec![
        ("GARBAGE\r\n\r\n".into(), "400 Bad Request"),
        (format!("GET / HTTP/1.1\r\nHost: {h}\r\nX: {}\r\n\r\n", "a".repeat(5000)), "431 Request Header Fields Too Large"),
        (format!("POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), "400 Bad Request"),
        (format!("POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), "400 Bad Request"),
        (format!("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: gzip\r\n\r\n"), "501 Not Implemented"),
        (format!("GET / HTTP/1.1\r\nHost: {h}\r\nX-A: b\r\n folded\r\n\r\n"), "400 Bad Request"),
        (format!("GET / HTTP/1.1\r\nHost : {h}\r\n\r\n"), "400 Bad Request"),
        (format!("GET / HTTP/1.1\nHost: {h}\n\n"), "400 Bad Request"),
    ];
    let before = up.hits.load(std::sync::atomic::Ordering::Relaxed);
    for (req, want) in cases {
        let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {want}\r\n")),
            "{req:?} -> {resp}"
        );
    }
    // Nothing ambiguous reached the upstream.
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::Relaxed), before);

    // Slowloris: a head that trickles in never completes in time.
    let mut s = TcpStream::connect(relay.http()).await.unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {h}\r\n").as_bytes())
        .await
        .unwrap();
    let mut trickle = 0;
    let resp = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(b"X-Slow: 1\r\n").await.is_err() || trickle > 30 {
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
            break String::from_utf8_lossy(&out).to_string();
        }
        trickle += 1;
    };
    assert!(resp.starts_with("HTTP/1.1 408 Request Timeout"), "{resp}");
    still_serving(&agent).await;
}
