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
    let up = upstream("the-moving-agent");
    let tunnels =
        format!("  web: {{proto: http, addr: {up}, subdomain: mover, bind_tls: false}}\n");
    let (c, b) = (fleet.nodes[2].control, fleet.nodes[1].control);
    let (_agent, urls) = fleet.agent(&[c, b], &tunnels, 1);
    let url = url_of(&urls, "web", "http://").to_string();
    let ca = fleet.ca.clone();
    assert_eq!(
        fetch_via(&fleet.nodes[0], &url, &ca),
        (200, "the-moving-agent".into())
    );
    fleet.nodes[2].kill();
    let killed = Instant::now();
    // A stranger asking for the name meanwhile is refused, on any node.
    match fleet.claim(0, "mover") {
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
