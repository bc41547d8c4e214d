//! tcp tunnels, relay restarts that keep URLs and ports, and stream isolation.

use burrow_e2e::{curl, port_of, upstream, Gate, TestAgent, TestRelay, TunnelOpts};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo_roundtrip(addr: SocketAddr, len: usize) -> Vec<u8> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let expect = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "echoed bytes differ");
    got
}

#[actix_rt::test]
async fn tcp_echo_one_mib_each_way() {
    let relay = TestRelay::start().await;
    let echo = upstream::echo().await;
    let agent = TestAgent::start(&relay, TunnelOpts::tcp(echo.port()), None)
        .await
        .unwrap();
    assert!(
        agent.urls[0].starts_with("tcp://localhost:"),
        "{:?}",
        agent.urls
    );
    let port = port_of(&agent.urls[0]);
    echo_roundtrip(SocketAddr::from(([127, 0, 0, 1], port)), 1 << 20).await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The saved leases, not a race, give the names back: while the relay restarts, the first
/// agents reach it only through a gate that is shut, and a second agent asking for their
/// name and port is refused because they are reserved for the agent that held them.
#[actix_rt::test]
async fn relay_restart_keeps_urls_and_ports_for_their_agents_by_the_saved_leases() {
    let state = std::env::temp_dir().join(format!("burrow-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let (http, https, control) = (free_port(), free_port(), free_port());
    let configure = |c: &mut burrow_relay::RelayConfig| {
        c.http_addr = Some(([127, 0, 0, 1], http).into());
        c.https_addr = Some(([127, 0, 0, 1], https).into());
        c.control_addr = ([127, 0, 0, 1], control).into();
        c.state_dir = Some(state.clone());
        c.drain_grace = Duration::from_millis(200);
    };
    let relay = TestRelay::start_with(configure).await;
    let gate = Gate::to(relay.handle.control_addr).await;
    let up = upstream::start().await;
    let echo = upstream::echo().await;
    let via = gate.addr.port();
    let web = TestAgent::start_via(&relay, via, TunnelOpts::http(up.addr.port()), None)
        .await
        .unwrap();
    let tcp = TestAgent::start_via(&relay, via, TunnelOpts::tcp(echo.port()), None)
        .await
        .unwrap();
    let tcp_port = port_of(&tcp.urls[0]);
    let name = web.host().split('.').next().unwrap().to_string();
    let url = format!("{}/hello", web.http_url());
    assert_eq!(curl(&[&url]).await.0, "hello");

    gate.set_open(false);
    relay.handle.shutdown().await;
    let (_, _, ok) = curl(&["--max-time", "2", &url]).await;
    assert!(!ok, "relay is down");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relay = TestRelay::start_with(configure).await;

    // The first agents cannot reach the new relay yet; a second agent asking for their
    // name and port is refused by the leases the relay read back from its state directory.
    let err = TestAgent::start(
        &relay,
        TunnelOpts::http(up.addr.port()).subdomain(&name),
        None,
    )
    .await
    .err()
    .expect("the name is reserved for its agent");
    assert!(
        err.contains(&format!(
            "{name}.localhost is already in use: reserved for the agent that held it"
        )),
        "{err}"
    );
    let err = TestAgent::start(
        &relay,
        TunnelOpts::tcp(echo.port()).remote_port(tcp_port),
        None,
    )
    .await
    .err()
    .expect("the tcp port is reserved for its agent");
    assert!(
        err.contains(&format!(
            "{tcp_port} is already in use: reserved for the agent that held it"
        )),
        "{err}"
    );

    // Let them through: the agents reconnect on their own and get the same names back.
    gate.set_open(true);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (body, _, _) = curl(&["--max-time", "2", &url]).await;
        if body == "hello" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "http tunnel did not come back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = TcpStream::connect(("127.0.0.1", tcp_port)).await?;
            s.write_all(b"ping").await?;
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await?;
            anyhow::ensure!(&b == b"ping");
            anyhow::Ok(())
        })
        .await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tcp tunnel did not come back on port {tcp_port}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(relay);
    let _ = std::fs::remove_dir_all(&state);
}

#[actix_rt::test]
async fn a_stalled_reader_does_not_slow_another_stream() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let host = agent.host();
    // Stream one: ask for 64 MiB and never read it.
    let mut stalled = TcpStream::connect(relay.http()).await.unwrap();
    stalled
        .write_all(format!("GET /download/67108864 HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Stream two, same session: a full 32 MiB download must still go through promptly.
    let started = Instant::now();
    let (out, err, ok) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("{}/download/33554432", agent.http_url()),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "33554432");
    assert!(started.elapsed() < Duration::from_secs(30));
    // The stalled stream still holds its data (its window), and reading it works.
    let mut buf = vec![0u8; 1 << 16];
    let n = stalled.read(&mut buf).await.unwrap();
    assert!(n > 0);
}

#[actix_rt::test]
async fn shutdown_stops_accepting_and_drains_open_connections() {
    let relay = TestRelay::start_with(|c| c.drain_grace = Duration::from_secs(10)).await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let addr = relay.http();
    // A download that is still being read when the relay is told to stop.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /download/8388608 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            agent.host()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = vec![0u8; 1024];
    let n = s.read(&mut first).await.unwrap();
    assert!(n > 0);
    let stopping = actix_rt::spawn(relay.handle.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown began"
    );
    let mut rest = Vec::new();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.read_to_end(&mut rest).await.unwrap();
    let total = n + rest.len();
    let head_len = String::from_utf8_lossy(&first[..n])
        .find("\r\n\r\n")
        .unwrap()
        + 4;
    assert_eq!(total - head_len, 8388608, "in-flight download was cut");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}
