//! A hostile visitor on the relay's public port: upgrades the local server declines,
//! malformed chunked bodies, big heads, names whose agent is gone, strangers on the agent
//! port. Each gets a clear answer and leaves nothing behind.

use burrow_e2e::{raw_exchange, TestAgent, TestRelay, TunnelOpts};
use burrow_protocol::control::{
    self, BindTls, ClientMessage, ServerMessage, TunnelProto, TunnelRequest,
};
use burrow_protocol::mux::{self, MuxConfig, MuxEvent, MuxHandle, Role};
use burrow_protocol::preamble;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A local server that records every byte it receives, answers each request head with
/// `200 ok` (or `101` to `Upgrade: yes`, then echoes), and counts its open connections.
struct Recorder {
    addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
    open: Arc<AtomicUsize>,
}

impl Recorder {
    async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let bytes: Arc<Mutex<Vec<u8>>> = Default::default();
        let open = Arc::new(AtomicUsize::new(0));
        let (b, o) = (bytes.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (b, o) = (b.clone(), o.clone());
                o.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut answered = 0;
                    let mut raw = false;
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        b.lock().unwrap().extend_from_slice(&buf[..n]);
                        if raw {
                            let _ = s.write_all(&buf[..n]).await;
                            continue;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        let heads: Vec<usize> = seen
                            .windows(4)
                            .enumerate()
                            .filter(|(_, w)| *w == b"\r\n\r\n")
                            .map(|(i, _)| i)
                            .collect();
                        for &end in &heads[answered..] {
                            let head = String::from_utf8_lossy(&seen[..end]).to_string();
                            let last = head.rsplit("\r\n\r\n").next().unwrap_or_default();
                            if last.contains("Upgrade: yes") {
                                let _ = s
                                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: yes\r\n\r\n")
                                    .await;
                                raw = true;
                                break;
                            }
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await;
                        }
                        answered = heads.len();
                    }
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Recorder { addr, bytes, open }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

async fn tunnel(relay: &TestRelay, up: &Recorder, auth: Option<&str>) -> TestAgent {
    let mut opts = TunnelOpts::http(up.addr.port());
    opts.auth = auth.map(String::from);
    TestAgent::start(relay, opts, None).await.expect("agent")
}

/// Waits up to `within` for `f` to hold.
async fn eventually(within: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[actix_rt::test]
async fn a_declined_upgrade_keeps_every_later_request_checked() {
    let relay = TestRelay::start().await;
    let up = Recorder::start().await;
    let agent = tunnel(&relay, &up, None).await;
    let h = agent.host();
    // Upgrade asked, the local server answers 200: the smuggling attempt that follows on
    // the same connection is parsed, refused, and never reaches the local server.
    let attack = format!(
        "GET / HTTP/1.1\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n\
         POST / HTTP/1.1\r\nHost: other.localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {h}\r\n\r\n"
    );
    let resp = raw_exchange(relay.http(), attack.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        resp.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        "{resp}"
    );
    assert!(
        resp.contains("HTTP/1.1 400 Bad Request\r\n"),
        "the pipelined request is refused: {resp}"
    );
    let got = up.received();
    assert_eq!(got.matches("Upgrade: foo").count(), 1, "{got}");
    assert!(!got.contains("smuggled"), "{got}");
    assert!(!got.contains("6.6.6.6"), "{got}");
    assert!(!got.contains("other.localhost"), "{got}");

    // A declined upgrade followed by a good request: it is forwarded as a request, with
    // the relay's forwarding headers.
    let before = up.received().len();
    let two = format!(
        "GET /a HTTP/1.1\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n\
         GET /b HTTP/1.1\r\nHost: {h}\r\nX-Forwarded-Proto: ftp\r\n\r\n\
         GET /c HTTP/1.1\r\nHost: other.localhost\r\n\r\n"
    );
    let resp = raw_exchange(relay.http(), two.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(resp.matches("HTTP/1.1 200 OK").count(), 2, "{resp}");
    let got = up.received()[before..].to_string();
    let second = got
        .split("GET /b HTTP/1.1\r\n")
        .nth(1)
        .expect("second request");
    assert!(
        second.contains("X-Forwarded-Proto: http\r\n") && !second.contains("ftp"),
        "{got}"
    );
    assert!(!got.contains("GET /c"), "another host's request: {got}");

    // A real 101 still switches to raw bytes both ways.
    let mut s = TcpStream::connect(relay.http()).await.unwrap();
    s.write_all(
        format!("GET /ws HTTP/1.1\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: yes\r\n\r\nGARBAGE\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&got).contains("GARBAGE") && Instant::now() < deadline {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols") && text.ends_with("GARBAGE\r\n\r\n"),
        "{text}"
    );
}

#[actix_rt::test]
async fn a_declined_upgrade_does_not_skip_basic_auth() {
    let relay = TestRelay::start().await;
    let up = Recorder::start().await;
    let agent = tunnel(&relay, &up, Some("user:pass")).await;
    let h = agent.host();
    let creds = "Authorization: Basic dXNlcjpwYXNz\r\n";
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {h}\r\n{creds}Connection: Upgrade\r\nUpgrade: foo\r\n\r\n\
         GET /secret HTTP/1.1\r\nHost: {h}\r\n\r\n"
    );
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(resp.contains("HTTP/1.1 401 Unauthorized\r\n"), "{resp}");
    assert!(!up.received().contains("/secret"), "{}", up.received());
}

#[actix_rt::test]
async fn a_malformed_chunked_body_is_answered_400_and_both_sides_let_go() {
    let relay = TestRelay::start().await;
    let up = Recorder::start().await;
    let agent = tunnel(&relay, &up, None).await;
    let h = agent.host();
    let mut visitors = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(relay.http()).await.unwrap();
        s.write_all(
            format!("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        visitors.push(s);
    }
    let started = Instant::now();
    for mut s in visitors {
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "the relay kept the connection open");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("bad chunk size"), "{text}");
    }
    // Neither the relay nor the agent keeps anything once the visitors got their answer.
    assert!(
        eventually(Duration::from_secs(1), || relay.handle.open_connections()
            == 0)
        .await,
        "relay still holds {} connections after {:?}",
        relay.handle.open_connections(),
        started.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(1), || up.open.load(Ordering::SeqCst)
            == 0)
        .await,
        "the agent still holds {} local connections",
        up.open.load(Ordering::SeqCst)
    );
}

#[actix_rt::test]
async fn large_heads_up_to_the_limit_pass_and_larger_ones_get_431() {
    let relay = TestRelay::start().await;
    let up = Recorder::start().await;
    let agent = tunnel(&relay, &up, None).await;
    let h = agent.host();
    let cookie = "c".repeat(32 * 1024);
    let req =
        format!("GET / HTTP/1.1\r\nHost: {h}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        resp.starts_with("HTTP/1.1 200 OK"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    assert!(up.received().contains(&cookie));

    let huge = "c".repeat(200 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: {h}\r\nCookie: {huge}\r\n\r\n");
    let before = up.received().len();
    let mut s = TcpStream::connect(relay.http()).await.unwrap();
    // The relay answers before it has read everything; the write may then fail.
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{text}"
    );
    assert_eq!(up.received().len(), before);
}

/// A bare agent session on the relay's agent port: authenticates and binds one http
/// tunnel, so a test can then drop the connection the way a dead agent does.
async fn bare_agent(relay: &TestRelay) -> (MuxHandle, String) {
    let tls = tls_to(relay).await;
    let (mux, mut events) = mux::start(tls, MuxConfig::new(Role::Agent));
    let send = |m: &ClientMessage| mux.send_control(control::encode(m)).unwrap();
    send(&ClientMessage::Auth {
        agent_version: "test".into(),
        client_id: "bare-agent".into(),
        token: None,
        lanes: 1,
        region: None,
    });
    send(&ClientMessage::Bind {
        req: 1,
        tunnel: TunnelRequest {
            proto: TunnelProto::Http,
            subdomain: None,
            hostname: None,
            remote_port: None,
            bind_tls: BindTls::Http,
            ..TunnelRequest::new(TunnelProto::Http)
        },
    });
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("relay answers")
            .expect("session open");
        if let MuxEvent::Control(b) = ev {
            if let ServerMessage::Bound { urls, .. } = control::decode(&b).unwrap() {
                return (mux, burrow_e2e::host_of(&urls[0]));
            }
        }
    }
}

/// The agent port after the version preamble: where authentication would come next.
async fn tls_to(relay: &TestRelay) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tls = burrow_e2e::agent_port_tls(relay).await;
    preamble::exchange(&mut tls).await.unwrap();
    tls
}

#[actix_rt::test]
async fn a_name_whose_agent_left_says_it_is_offline() {
    let relay = TestRelay::start().await;
    let (mux, h) = bare_agent(&relay).await;
    // The agent's connection ends without an unbind: its name is held for it.
    mux.close("gone");
    let req = format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n");
    let mut resp = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(2)).await;
        if resp.contains("offline") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");
    assert!(resp.contains(&format!("Tunnel {h} not found")), "{resp}");
    assert!(resp.contains("offline"), "{resp}");
    assert!(resp.contains("more seconds"), "{resp}");
    // A name nobody ever held is simply not found.
    let req = "GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n";
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(resp.contains("Tunnel nobody.localhost not found"), "{resp}");
    assert!(!resp.contains("offline"), "{resp}");
}

#[actix_rt::test]
async fn strangers_on_the_agent_port_get_small_frames_and_a_bounded_queue() {
    let relay = TestRelay::start_with(|c| c.limits.max_pending_agents = 4).await;
    // Before authenticating, a frame announcing 1 MiB is refused outright.
    let mut tls = tls_to(&relay).await;
    let mut hdr = vec![1u8, 0, 0, 0, 0, 0];
    hdr.extend_from_slice(&(1u32 << 20).to_be_bytes());
    tls.write_all(&hdr).await.unwrap();
    tls.write_all(&[b'x'; 100]).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the relay kept a connection announcing a 1 MiB frame"
    );
    let settled = Instant::now();
    while relay.handle.pending_agents() > 0 {
        assert!(
            settled.elapsed() < Duration::from_secs(2),
            "its place in the queue is given back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Four strangers that never authenticate fill the queue; a fifth is closed at once.
    let mut strangers = Vec::new();
    for _ in 0..4 {
        strangers.push(TcpStream::connect(relay.handle.control_addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = TcpStream::connect(relay.handle.control_addr).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "a fifth unauthenticated connection was kept: {r:?}"
    );
    // Once they go, an agent gets in and authenticates; while it is up, it does not
    // count against the queue.
    drop(strangers);
    let deadline = Instant::now() + Duration::from_secs(3);
    let up = Recorder::start().await;
    let agent = loop {
        match TestAgent::start(&relay, TunnelOpts::http(up.addr.port()), None).await {
            Ok(a) => break a,
            Err(e) if Instant::now() > deadline => panic!("agent refused: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // Its further lane has joined too, and left the queue.
    let settled = Instant::now();
    while relay.handle.session_lanes() != [2] || relay.handle.pending_agents() > 0 {
        assert!(
            settled.elapsed() < Duration::from_secs(5),
            "the agent's lanes are all up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut more = Vec::new();
    for _ in 0..4 {
        more.push(tls_to(&relay).await);
    }
    let req = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", agent.host());
    let resp = raw_exchange(relay.http(), req.as_bytes(), Duration::from_secs(2)).await;
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
}
