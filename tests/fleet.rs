//! A fleet of three real `burrowd` nodes sharing one real etcd, on loopback: a visitor at
//! any node reaches a tunnel on any other (http, https, tls, tcp); two agents racing for
//! one name on two nodes; a node killed with its agent moving to another and keeping its
//! URL; etcd stopped and started again under running tunnels.

use burrow_e2e::agent_bin::{json, Outcome};
use burrow_e2e::client_hello;
use burrow_e2e::fleet::{fetch_via, TestFleet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A thread-based http upstream answering `body` to every request.
fn upstream(body: &'static str) -> u16 {
    burrow_e2e::upstream::http_server("200 OK", body)
}

fn url_of<'a>(urls: &'a [(String, String)], name: &str, scheme: &str) -> &'a str {
    urls.iter()
        .find(|(n, u)| n.starts_with(name) && u.starts_with(scheme))
        .map(|(_, u)| u.as_str())
        .unwrap_or_else(|| panic!("no {scheme} URL for {name} in {urls:?}"))
}

/// A tcp echo server; its port.
fn echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A tcp server keeping the first bytes each connection sends; its port and those bytes.
fn recorder() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            let mut buf = vec![0u8; 8192];
            if let Ok(n) = s.read(&mut buf) {
                *s2.lock().unwrap() = buf[..n].to_vec();
            }
        }
    });
    (port, seen)
}

/// Retries `f` every 100 ms until it holds, for at most `within`.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_visitor_at_any_node_reaches_a_tunnel_on_another_over_http_https_tls_and_tcp() {
    let fleet = TestFleet::start(3);
    let (rec, seen) = recorder();
    let tunnels = format!(
        "  web: {{proto: http, addr: {}, subdomain: fleet-web}}\n  raw: {{proto: tcp, addr: {}}}\n  sec: {{proto: tls, addr: {rec}, subdomain: fleet-tls}}\n",
        upstream("served-by-the-agent-on-c"),
        echo()
    );
    let (_agent, urls) = fleet.agent(&[fleet.nodes[2].control], &tunnels, 4);
    let (a, ca) = (&fleet.nodes[0], fleet.ca.as_str());
    for scheme in ["http://", "https://"] {
        let url = url_of(&urls, "web", scheme);
        assert_eq!(
            fetch_via(a, url, ca),
            (200, "served-by-the-agent-on-c".into()),
            "{url} through node a"
        );
    }
    // tls: node a reads the SNI, finds the tunnel on c, and the agent's local server gets
    // the visitor's ClientHello untouched.
    let tls_host = url_of(&urls, "sec", "tls://")
        .trim_start_matches("tls://")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let hello = client_hello(&tls_host);
    let mut s = TcpStream::connect(("127.0.0.1", a.https)).unwrap();
    s.write_all(&hello).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || *seen.lock().unwrap() == hello),
        "the ClientHello did not reach the tls tunnel's local server through node a"
    );
    // tcp: every node listens on the port bound on c (node a on 127.0.0.1, c on 127.0.0.3).
    let port: u16 = url_of(&urls, "raw", "tcp://")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut echoed = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            if s.write_all(b"ping through a").is_err() {
                return false;
            }
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            echoed = String::from_utf8_lossy(&buf[..n]).into_owned();
            echoed == "ping through a"
        }),
        "tcp port {port} through node a echoed {echoed:?}"
    );
    // Node b forwards as well, and every node's admin API shows the whole fleet.
    let url = url_of(&urls, "web", "http://");
    assert_eq!(fetch_via(&fleet.nodes[1], url, ca).0, 200);
    let (code, body) = fleet.admin(0, "/api/nodes");
    assert_eq!(code, 200, "{body}");
    let nodes = json(&body);
    let ids: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"], "{body}");
    assert!(
        eventually(Duration::from_secs(5), || {
            let body = fleet.admin(1, "/api/nodes").1;
            let nodes = json(&body);
            let c = &nodes["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == "c")
                .cloned()
                .unwrap_or_default();
            c["sessions"].as_array().is_some_and(|s| s.len() == 1)
        }),
        "node b does not show c's session"
    );
    let metrics = fleet.admin(0, "/metrics").1;
    let out_line = metrics
        .lines()
        .find(|l| l.starts_with("burrowd_fleet_forwarded_connections_total{direction=\"out\"}"))
        .unwrap_or_else(|| panic!("no forwarded metric:\n{metrics}"));
    let forwarded: u64 = out_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(forwarded >= 4, "{out_line}");
    assert!(metrics.contains("burrowd_fleet_nodes{} 3"), "{metrics}");
}

#[test]
fn two_agents_racing_for_one_name_on_two_nodes_one_wins() {
    let fleet = TestFleet::start(2);
    for round in 0..3 {
        let name = format!("race{round}");
        let (f1, f2) = (&fleet, &fleet);
        let (n1, n2) = (name.clone(), name.clone());
        let (one, two) = std::thread::scope(|s| {
            let one = s.spawn(move || f1.claim(0, &n1));
            let two = s.spawn(move || f2.claim(1, &n2));
            (one.join().unwrap(), two.join().unwrap())
        });
        match (&one, &two) {
            (Outcome::Up(..), Outcome::Refused(e)) | (Outcome::Refused(e), Outcome::Up(..)) => {
                assert!(e.contains("already in use"), "round {round}: {e}");
            }
            (Outcome::Up(_, a), Outcome::Up(_, b)) => panic!("round {round}: both won: {a} {b}"),
            (Outcome::Refused(a), Outcome::Refused(b)) => {
                panic!("round {round}: none won: {a} / {b}")
            }
        }
    }
}

#[test]
fn an_agent_whose_node_dies_moves_to_another_and_keeps_its_url() {
    let mut fleet = TestFleet::start(3);
    // The agent's account may have one session: the one it leaves on the dead node, still
    // listed there until that node's lease lapses, is its own and does not count.
    let movers = account(&fleet, "movers", Some(1));
    let others = account(&fleet, "others", None);
    let up = upstream("the-moving-agent");
    let tunnels =
        format!("  web: {{proto: http, addr: {up}, subdomain: mover, bind_tls: false}}\n");
    let (c, b) = (fleet.nodes[2].control, fleet.nodes[1].control);
    assert!(
        eventually(Duration::from_secs(5), || matches!(
            fleet.claim(2, "anyone"),
            Outcome::Refused(e) if e.contains("token")
        )),
        "node c does not know the accounts yet"
    );
    let (_agent, urls) = fleet.agent_as(&[c, b], Some(&movers), &tunnels, 1);
    let url = url_of(&urls, "web", "http://").to_string();
    let ca = fleet.ca.clone();
    assert_eq!(
        fetch_via(&fleet.nodes[0], &url, &ca),
        (200, "the-moving-agent".into())
    );
    // Node b has seen the agent's session on c, as it would after any while.
    let listed_on_c = || {
        json(&fleet.admin(1, "/api/nodes").1)["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["id"] == "c" && n["sessions"].as_array().is_some_and(|s| !s.is_empty()))
    };
    assert!(
        eventually(Duration::from_secs(10), listed_on_c),
        "node b never saw the session on c"
    );
    fleet.nodes[2].kill();
    let killed = Instant::now();
    // A stranger asking for the name meanwhile is refused, on any node.
    match fleet.claim_as(0, "mover", Some(&others)) {
        Outcome::Refused(e) => assert!(e.contains("already in use"), "{e}"),
        Outcome::Up(_, u) => panic!("a stranger got the dying node's name: {u}"),
    }
    let mut seen = Vec::new();
    let back = eventually(Duration::from_secs(20), || {
        let got = fetch_via(&fleet.nodes[0], &url, &ca);
        let ok = got == (200, "the-moving-agent".into());
        seen.push(got);
        ok
    });
    assert!(
        back,
        "{url} never answered again through node a: {:?}",
        seen.last()
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Nothing but the agent itself ever answered 200 for the name.
    assert!(
        seen.iter()
            .all(|(code, body)| *code != 200 || body == "the-moving-agent"),
        "{seen:?}"
    );
    // And the agent is on b now, as the fleet says.
    let body = fleet.admin(0, "/api/nodes").1;
    assert!(
        eventually(Duration::from_secs(5), || {
            let body = fleet.admin(0, "/api/nodes").1;
            let nodes = json(&body);
            let b = nodes["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == "b")
                .cloned()
                .unwrap_or_default();
            b["sessions"].as_array().is_some_and(|s| !s.is_empty())
        }),
        "{body}"
    );
    println!("the URL answered again {took:?} after its node was killed");
}

/// Makes account `name` through node a's admin API, with a quota of `sessions` if given;
/// returns a token's secret.
fn account(fleet: &TestFleet, name: &str, sessions: Option<u32>) -> String {
    let body = format!(r#"{{"name":"{name}"}}"#);
    let (code, body) = fleet.admin_call(0, "POST", "/api/accounts", Some(&body));
    assert_eq!(code, 201, "{body}");
    if let Some(n) = sessions {
        let path = format!("/api/accounts/{name}/quotas");
        let quota = format!(r#"{{"sessions":{n}}}"#);
        let (code, body) = fleet.admin_call(0, "PUT", &path, Some(&quota));
        assert_eq!(code, 200, "{body}");
    }
    let path = format!("/api/accounts/{name}/tokens");
    let (code, body) = fleet.admin_call(0, "POST", &path, Some("{}"));
    assert_eq!(code, 201, "{body}");
    json(&body)["secret"].as_str().unwrap().to_string()
}

#[test]
fn tunnels_keep_working_while_etcd_is_down_and_claims_resume_when_it_returns() {
    let mut fleet = TestFleet::start(2);
    let tunnels = format!(
        "  web: {{proto: http, addr: {}, subdomain: steady, bind_tls: false}}\n",
        upstream("still-here")
    );
    let (_agent, urls) = fleet.agent(&[fleet.nodes[1].control], &tunnels, 1);
    let url = url_of(&urls, "web", "http://").to_string();
    let ca = fleet.ca.clone();
    assert_eq!(
        fetch_via(&fleet.nodes[0], &url, &ca),
        (200, "still-here".into())
    );
    fleet.etcd.stop();
    // Both nodes keep serving what they have, through the forwarding node and directly.
    for _ in 0..5 {
        assert_eq!(
            fetch_via(&fleet.nodes[0], &url, &ca),
            (200, "still-here".into())
        );
        assert_eq!(
            fetch_via(&fleet.nodes[1], &url, &ca),
            (200, "still-here".into())
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    // A new name cannot be claimed, and the agent is told why.
    assert!(
        eventually(Duration::from_secs(10), || {
            let (code, body) = fleet.admin(0, "/api/nodes");
            code == 200 && json(&body)["etcd_reachable"] == false
        }),
        "node a does not notice etcd is gone"
    );
    match fleet.claim(0, "newcomer") {
        Outcome::Refused(e) => assert!(e.contains("etcd") && e.contains("unreachable"), "{e}"),
        Outcome::Up(_, u) => panic!("claimed {u} with etcd down"),
    }
    fleet.etcd.restart();
    assert!(
        eventually(Duration::from_secs(20), || {
            let (code, body) = fleet.admin(0, "/api/nodes");
            code == 200 && json(&body)["etcd_reachable"] == true
        }),
        "node a does not notice etcd is back"
    );
    match fleet.claim(0, "newcomer") {
        Outcome::Up(_, u) => assert!(u.contains("newcomer"), "{u}"),
        Outcome::Refused(e) => panic!("claim refused after etcd returned: {e}"),
    }
    assert_eq!(
        fetch_via(&fleet.nodes[0], &url, &ca),
        (200, "still-here".into())
    );
}

#[test]
fn accounts_made_on_one_node_hold_on_every_node_and_a_revocation_ends_sessions_anywhere() {
    let fleet = TestFleet::start(2);
    let (code, body) = fleet.admin_call(0, "POST", "/api/accounts", Some(r#"{"name":"team"}"#));
    assert_eq!(code, 201, "{body}");
    let (code, body) = fleet.admin_call(
        0,
        "PUT",
        "/api/accounts/team/quotas",
        Some(r#"{"sessions":1}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = fleet.admin_call(
        0,
        "POST",
        "/api/accounts/team/tokens",
        Some(r#"{"label":"ci"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let issued = json(&body);
    let secret = issued["secret"].as_str().unwrap().to_string();
    let id = issued["info"]["id"].as_str().unwrap().to_string();
    // Node b is a relay with accounts now: no token, no tunnel; the token made on a works.
    assert!(
        eventually(Duration::from_secs(5), || matches!(
            fleet.claim(1, "team-site"),
            Outcome::Refused(e) if e.contains("token")
        )),
        "node b still lets an agent in without a token"
    );
    let agent = match fleet.claim_as(1, "team-site", Some(&secret)) {
        Outcome::Up(agent, url) => {
            assert!(url.contains("team-site"), "{url}");
            agent
        }
        Outcome::Refused(e) => panic!("node b refused the token made on node a: {e}"),
    };
    let sessions = |i| {
        json(&fleet.admin(i, "/api/sessions").1)
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(sessions(1), 1);
    // The account's quota of one session counts the whole fleet: once node a has seen
    // node b's session, a second agent of the account is refused on node a.
    let seen_on_a = || {
        json(&fleet.admin(0, "/api/nodes").1)["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|n| n["sessions"].as_array().cloned().unwrap_or_default())
            .any(|s| s["account"] == "team")
    };
    assert!(
        eventually(Duration::from_secs(10), seen_on_a),
        "node a never saw node b's session: {}",
        fleet.admin(0, "/api/nodes").1
    );
    match fleet.claim_as(0, "team-second", Some(&secret)) {
        Outcome::Refused(e) => assert!(e.contains("limit of 1 agent sessions"), "{e}"),
        Outcome::Up(_, url) => panic!("a second session of a one-session account: {url}"),
    }
    // Revoked on node a, the session on node b ends.
    let (code, body) = fleet.admin_call(0, "DELETE", &format!("/api/tokens/{id}"), None);
    assert_eq!(code, 200, "{body}");
    assert!(
        eventually(Duration::from_secs(5), || sessions(1) == 0),
        "the session on node b outlived its token's revocation on node a"
    );
    drop(agent);
}

/// Bytes a stranger gets back from a node's fleet port after sending `send` (TLS first if
/// `tls`), until the node closes the connection or 10 s pass; and whether it closed.
fn stranger_on_the_node_port(addr: &str, tls: bool, send: &[u8]) -> (Vec<u8>, bool) {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let closed = if tls {
        let cfg = Arc::new(burrow_http::tls::unverified_client_config(&[]));
        let name = rustls::pki_types::ServerName::try_from("node").unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        let _ = s.write_all(send);
        read_until_closed(&mut s, &mut got)
    } else {
        let mut s = sock;
        let _ = s.write_all(send);
        read_until_closed(&mut s, &mut got)
    };
    (got, closed)
}

fn read_until_closed(s: &mut impl Read, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn the_fleet_port_closes_on_strangers_without_the_secret_and_on_silence() {
    let fleet = TestFleet::start(1);
    let body = fleet.admin(0, "/api/nodes").1;
    let addr = json(&body)["nodes"][0]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    // A TLS client that claims to be node "x" with a proof made without the secret.
    let mut hello = vec![1u8, b'x'];
    hello.extend_from_slice(&[0u8; 32]);
    let (got, closed) = stranger_on_the_node_port(&addr, true, &hello);
    assert!(
        closed && got.is_empty(),
        "a wrong proof got {got:?}, closed: {closed}"
    );
    // Plain text on the TLS port, and a client that says nothing, are closed as well (the
    // latter when the handshake's 5 s are up).
    let (_, closed) = stranger_on_the_node_port(&addr, false, b"GET / HTTP/1.1\r\n\r\n");
    assert!(closed, "plain text kept open");
    let started = Instant::now();
    let (_, closed) = stranger_on_the_node_port(&addr, false, b"");
    assert!(closed, "a silent client kept open past 10 s");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The node still serves its fleet: the API answers and etcd is reachable.
    assert_eq!(
        json(&fleet.admin(0, "/api/nodes").1)["etcd_reachable"],
        true
    );
}
