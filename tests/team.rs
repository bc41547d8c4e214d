//! The relay for a team, with real agents and visitors on loopback: reserved names,
//! wildcards and tcp addresses belong to their account, the most specific tunnel online
//! wins, the IP whitelist closes strangers on every kind of endpoint, regions, quotas,
//! revoked tokens, and what survives a restart.

use burrow_e2e::{
    client_hello, curl, free_port, port_of, upstream, Gate, TestAgent, TestRelay, TunnelOpts,
};
use burrow_protocol::control::TunnelProto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A relay of region `us`.
async fn relay() -> TestRelay {
    TestRelay::start_with(|c| c.region = Some("us".into())).await
}

/// Creates `name` with a token; returns the token's secret.
fn account(relay: &TestRelay, name: &str) -> String {
    let team = relay.handle.team();
    team.store().create_account(name).unwrap();
    let token = team.store().issue_token(name, "test").unwrap();
    team.reload().unwrap();
    token.secret
}

fn reserve(relay: &TestRelay, account: &str, name: &str, region: &str) {
    let team = relay.handle.team();
    team.store().reserve_domain(account, name, region).unwrap();
    team.reload().unwrap();
}

async fn refused(relay: &TestRelay, opts: TunnelOpts, token: &str) -> String {
    TestAgent::start(relay, opts, Some(token))
        .await
        .err()
        .expect("the bind is refused")
}

#[actix_rt::test]
async fn reserved_names_and_wildcards_are_bound_only_by_their_account() {
    let relay = relay().await;
    let (alice, bob) = (account(&relay, "alice"), account(&relay, "bob"));
    reserve(&relay, "alice", "app.localhost", "us");
    reserve(&relay, "alice", "*.alice.localhost", "us");
    reserve(&relay, "alice", "www.shop.localhost", "us");
    let up = upstream::start().await;
    let web = || TunnelOpts::http(up.addr.port());

    for opts in [
        web().subdomain("app"),
        web().hostname("x.alice.localhost"),
        web().hostname("deep.x.alice.localhost"),
        web().hostname("*.alice.localhost"),
    ] {
        let err = refused(&relay, opts, &bob).await;
        assert!(err.contains("reserved by another account"), "{err}");
    }
    // A wildcard over another account's name is refused too.
    let err = refused(&relay, web().hostname("*.shop.localhost"), &bob).await;
    assert!(err.contains("would cover www.shop.localhost"), "{err}");

    // The owner binds its name, and any name under its wildcard without reserving it.
    let app = TestAgent::start(&relay, web().subdomain("app"), Some(&alice))
        .await
        .unwrap();
    let under = TestAgent::start(&relay, web().hostname("x.alice.localhost"), Some(&alice))
        .await
        .unwrap();
    for agent in [&app, &under] {
        let (body, err, ok) = curl(&[&format!("{}/hello", agent.http_url())]).await;
        assert!(ok && body == "hello", "{body} {err}");
    }
    // Names nobody reserved are first come, as on an open relay.
    TestAgent::start(&relay, web().subdomain("free"), Some(&bob))
        .await
        .unwrap();
}

#[actix_rt::test]
async fn the_most_specific_tunnel_online_wins_across_accounts() {
    let relay = relay().await;
    let (alice, bob) = (account(&relay, "alice"), account(&relay, "bob"));
    let wide = upstream::http_server("200 OK", "bob");
    let narrow = upstream::http_server("200 OK", "alice");
    let _bob = TestAgent::start(
        &relay,
        TunnelOpts::http(wide).hostname("*.shared.localhost"),
        Some(&bob),
    )
    .await
    .unwrap();
    let gate = Gate::to(relay.handle.control_addr).await;
    let _alice = TestAgent::start_via(
        &relay,
        gate.addr.port(),
        TunnelOpts::http(narrow).hostname("api.shared.localhost"),
        Some(&alice),
    )
    .await
    .unwrap();
    let port = relay.http().port();
    let get = |host: &str| format!("http://{host}:{port}/");
    assert_eq!(curl(&[&get("api.shared.localhost")]).await.0, "alice");
    assert_eq!(curl(&[&get("www.shared.localhost")]).await.0, "bob");
    assert_eq!(curl(&[&get("a.b.shared.localhost")]).await.0, "bob");
    // Once its agent is gone, the name falls to the next tunnel online.
    gate.set_open(false);
    for lane in 0..gate.forwarded() {
        gate.cut(lane);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&[&get("api.shared.localhost")]).await.0 != "bob" {
        assert!(Instant::now() < deadline, "the wildcard takes over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tcp server counting connections and keeping the first bytes of the last one.
async fn recorder() -> (SocketAddr, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (count, first) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let (c, f): (_, Arc<std::sync::Mutex<Vec<u8>>>) = (count.clone(), Arc::clone(&first));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let f = f.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if let Ok(n) = s.read(&mut buf).await {
                    *f.lock().unwrap() = buf[..n].to_vec();
                }
            });
        }
    });
    (addr, count, first)
}

/// A TCP connection to `to` from source address `from`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    sock.connect(to).await.unwrap()
}

/// Whether the relay closes a connection at once without sending anything.
async fn closed_silently(mut s: TcpStream, send: &[u8]) -> bool {
    let _ = s.write_all(send).await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[actix_rt::test]
async fn the_whitelist_closes_strangers_on_http_https_tls_and_tcp() {
    let relay = relay().await;
    let alice = account(&relay, "alice");
    let team = relay.handle.team();
    team.store().allow("alice", "127.0.0.2/32").unwrap();
    team.reload().unwrap();
    let up = upstream::start().await;
    let echo = upstream::echo().await;
    let (tls_local, tls_conns, tls_first) = recorder().await;
    let web = TestAgent::start(&relay, TunnelOpts::http(up.addr.port()), Some(&alice))
        .await
        .unwrap();
    let tcp = TestAgent::start(&relay, TunnelOpts::tcp(echo.port()), Some(&alice))
        .await
        .unwrap();
    let tls_opts = TunnelOpts {
        proto: TunnelProto::Tls,
        ..TunnelOpts::http(tls_local.port())
    };
    let tls = TestAgent::start(&relay, tls_opts, Some(&alice))
        .await
        .unwrap();
    let ca = relay.ca_file();
    let http_url = format!("{}/hello", web.http_url());
    let https_url = format!("{}/hello", web.https_url());

    // From 127.0.0.1: closed at once, and nothing reaches the agent's side.
    let (_, err, ok) = curl(&[&http_url]).await;
    assert!(!ok && err.contains("Empty reply"), "{err}");
    let (_, err, ok) = curl(&["--cacert", &ca, &https_url]).await;
    assert!(!ok, "{err}");
    let public_tcp = SocketAddr::from(([127, 0, 0, 1], port_of(&tcp.urls[0])));
    assert!(closed_silently(connect_from([127, 0, 0, 1], public_tcp).await, b"ping").await);
    let tls_host = tls.urls[0]
        .trim_start_matches("tls://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let hello = client_hello(&tls_host);
    let public_tls = relay.https();
    assert!(closed_silently(connect_from([127, 0, 0, 1], public_tls).await, &hello).await);
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    assert_eq!(tls_conns.load(Ordering::SeqCst), 0);

    // From 127.0.0.2: admitted everywhere.
    let (body, err, ok) = curl(&["--interface", "127.0.0.2", &http_url]).await;
    assert!(ok && body == "hello", "{body} {err}");
    let (body, err, ok) = curl(&["--interface", "127.0.0.2", "--cacert", &ca, &https_url]).await;
    assert!(ok && body == "hello", "{body} {err}");
    let mut s = connect_from([127, 0, 0, 2], public_tcp).await;
    s.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    let mut s = connect_from([127, 0, 0, 2], public_tls).await;
    s.write_all(&hello).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tls_first.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the ClientHello reaches the local server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tls_first.lock().unwrap()[0],
        0x16,
        "a TLS handshake record, untouched"
    );

    // A change takes effect for the next connection.
    team.store().disallow("alice", "127.0.0.2/32").unwrap();
    team.reload().unwrap();
    let (body, err, ok) = curl(&[&http_url]).await;
    assert!(
        ok && body == "hello",
        "an empty whitelist lets everyone in: {body} {err}"
    );
}

#[actix_rt::test]
async fn a_reservation_of_another_region_stops_the_agent_naming_both_regions() {
    let relay = relay().await;
    let alice = account(&relay, "alice");
    reserve(&relay, "alice", "euapp.localhost", "eu");
    let up = upstream::start().await;
    let err = refused(
        &relay,
        TunnelOpts::http(up.addr.port()).subdomain("euapp"),
        &alice,
    )
    .await;
    assert!(
        err.contains("region eu") && err.contains("region us"),
        "{err}"
    );
    let echo = upstream::echo().await;
    let port = free_port();
    let team = relay.handle.team();
    team.store()
        .reserve_addr("alice", &format!("localhost:{port}"), "eu")
        .unwrap();
    team.reload().unwrap();
    let err = refused(
        &relay,
        TunnelOpts::tcp(echo.port()).remote_port(port),
        &alice,
    )
    .await;
    assert!(
        err.contains("region eu") && err.contains("region us"),
        "{err}"
    );
}

#[actix_rt::test]
async fn a_tcp_address_is_bound_only_once_reserved_and_only_by_its_account() {
    let relay = relay().await;
    let (alice, bob) = (account(&relay, "alice"), account(&relay, "bob"));
    let port = free_port();
    let team = relay.handle.team();
    team.store()
        .reserve_addr("alice", &format!("localhost:{port}"), "us")
        .unwrap();
    team.reload().unwrap();
    let echo = upstream::echo().await;
    let err = refused(&relay, TunnelOpts::tcp(echo.port()).remote_port(port), &bob).await;
    assert!(err.contains("reserved by another account"), "{err}");
    let other = free_port();
    let err = refused(
        &relay,
        TunnelOpts::tcp(echo.port()).remote_port(other),
        &alice,
    )
    .await;
    assert!(
        err.contains(&format!("tcp address {other} is not reserved")),
        "{err}"
    );
    let agent = TestAgent::start(
        &relay,
        TunnelOpts::tcp(echo.port()).remote_port(port),
        Some(&alice),
    )
    .await
    .unwrap();
    assert_eq!(port_of(&agent.urls[0]), port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut got = [0u8; 2];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hi");
}

#[actix_rt::test]
async fn quotas_refuse_with_the_limit_named() {
    let relay = relay().await;
    let alice = account(&relay, "alice");
    let team = relay.handle.team();
    let quotas = burrow_store::Quotas {
        sessions: 2,
        tunnels: 1,
        tcp_ports: 1,
    };
    team.store().set_quotas("alice", quotas).unwrap();
    team.reload().unwrap();
    let up = upstream::start().await;
    let _first = TestAgent::start(&relay, TunnelOpts::http(up.addr.port()), Some(&alice))
        .await
        .unwrap();
    let err = refused(&relay, TunnelOpts::http(up.addr.port()), &alice).await;
    assert!(
        err.contains("account alice is at its limit of 1 tunnels"),
        "{err}"
    );
    let quotas = burrow_store::Quotas {
        sessions: 1,
        tunnels: 5,
        tcp_ports: 1,
    };
    team.store().set_quotas("alice", quotas).unwrap();
    team.reload().unwrap();
    let err = refused(&relay, TunnelOpts::http(up.addr.port()), &alice).await;
    assert!(err.contains("at its limit of 1 agent sessions"), "{err}");
}

#[actix_rt::test]
async fn a_revoked_tokens_session_ends_within_a_second() {
    let relay = relay().await;
    let alice = account(&relay, "alice");
    let up = upstream::start().await;
    let mut agent = TestAgent::start(&relay, TunnelOpts::http(up.addr.port()), Some(&alice))
        .await
        .unwrap();
    let team = relay.handle.team();
    let token = team.store().tokens(Some("alice")).unwrap().remove(0);
    assert_eq!(team.live.views().len(), 1);
    let revoked = Instant::now();
    assert_eq!(team.revoke(&token.id).unwrap().1, 1, "one session used it");
    while !team.live.views().is_empty() {
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the session ends within a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, _, ok) = curl(&["--max-time", "2", &format!("{}/hello", agent.http_url())]).await;
    // The agent tries again and is refused for good.
    let mut fatal = None;
    while let Some(ev) = agent.next_event(Duration::from_secs(5)).await {
        if let burrow::AgentEvent::Fatal(msg) = ev {
            fatal = Some(msg);
            break;
        }
    }
    let fatal = fatal.expect("the agent stops");
    assert!(fatal.contains("not accepted"), "{fatal}");
    let (body, _, _) = curl(&["--max-time", "2", &format!("{}/hello", agent.http_url())]).await;
    assert_ne!(
        body, "hello",
        "the URL no longer reaches the agent (ok before: {ok})"
    );
}

#[actix_rt::test]
async fn accounts_reservations_tokens_and_leases_survive_a_restart() {
    let state = std::env::temp_dir().join(format!("burrow-team-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let configure = |c: &mut burrow_relay::RelayConfig| {
        c.region = Some("us".into());
        c.state_dir = Some(state.clone());
        c.drain_grace = Duration::from_millis(200);
    };
    let relay = TestRelay::start_with(configure).await;
    let (alice, bob) = (account(&relay, "alice"), account(&relay, "bob"));
    reserve(&relay, "alice", "keep.localhost", "us");
    let up = upstream::start().await;
    let gate = Gate::to(relay.handle.control_addr).await;
    let via = gate.addr.port();
    let agent = TestAgent::start_via(&relay, via, TunnelOpts::http(up.addr.port()), Some(&alice))
        .await
        .unwrap();
    let leased = agent.host().split('.').next().unwrap().to_string();
    // The agent stays away from the new relay: its name waits for it under the lease.
    gate.set_open(false);
    relay.handle.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let relay = TestRelay::start_with(configure).await;
    let opts = || TunnelOpts::http(up.addr.port());
    let err = refused(&relay, opts().subdomain("keep"), &bob).await;
    assert!(err.contains("reserved by another account"), "{err}");
    let err = refused(&relay, opts().subdomain(&leased), &bob).await;
    assert!(err.contains("reserved for the agent that held it"), "{err}");
    let kept = TestAgent::start(&relay, opts().subdomain("keep"), Some(&alice))
        .await
        .unwrap();
    let (body, err, ok) = curl(&[&format!("{}/hello", kept.http_url())]).await;
    assert!(ok && body == "hello", "{body} {err}");
    let _ = std::fs::remove_dir_all(&state);
}

#[actix_rt::test]
async fn a_flag_token_no_longer_given_stops_working() {
    let state = std::env::temp_dir().join(format!("burrow-flags-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let with = |token: &'static str| {
        let state = state.clone();
        move |c: &mut burrow_relay::RelayConfig| {
            c.state_dir = Some(state);
            c.tokens = vec![token.into()];
        }
    };
    let up = upstream::start().await;
    let relay = TestRelay::start_with(with("first-token")).await;
    TestAgent::start(
        &relay,
        TunnelOpts::http(up.addr.port()),
        Some("first-token"),
    )
    .await
    .unwrap();
    relay.handle.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relay = TestRelay::start_with(with("second-token")).await;
    let err = refused(&relay, TunnelOpts::http(up.addr.port()), "first-token").await;
    assert!(err.contains("not accepted"), "{err}");
    TestAgent::start(
        &relay,
        TunnelOpts::http(up.addr.port()),
        Some("second-token"),
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&state);
}
