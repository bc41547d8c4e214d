//! An agent given several relay addresses: it comes up on the first that answers and moves
//! to another when its relay dies, its further lanes following the first to the same relay.

use burrow_e2e::{curl, free_port, port_of, upstream, TestAgent, TestRelay, TunnelOpts};
use std::time::{Duration, Instant};

/// Waits (at most `within`) until `ok` holds, failing with `what`.
async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The agent's address for `relay`'s agent port, by the name its certificate carries.
fn agent_port(relay: &TestRelay) -> String {
    format!("localhost:{}", relay.handle.control_addr.port())
}

#[actix_rt::test]
async fn an_agent_skips_a_dead_address_and_comes_up_on_the_live_relay() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    // Nothing listens there: the dial is refused at once.
    let dead = format!("127.0.0.1:{}", free_port());
    let live = agent_port(&relay);
    let started = Instant::now();
    let agent = TestAgent::start_across(
        &[&relay],
        &[&dead, &live],
        TunnelOpts::http(up.addr.port()),
        None,
    )
    .await
    .expect("the agent comes up on the second address");
    // The second address is tried at once, not after a back-off.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(port_of(agent.http_url()), relay.http().port());
    let url = format!("{}/hello", agent.http_url());
    assert_eq!(curl(&[&url]).await.0, "hello");
    // The second lane joins the relay the first reached, not the first address listed.
    until(
        "the second lane joins on the live relay",
        Duration::from_secs(10),
        || relay.handle.session_lanes() == [2],
    )
    .await;
}

#[actix_rt::test]
async fn an_agent_moves_to_the_next_relay_when_its_relay_stops() {
    let first = TestRelay::start().await;
    let second = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::start_across(
        &[&first, &second],
        &[&agent_port(&first), &agent_port(&second)],
        TunnelOpts::http(up.addr.port()),
        None,
    )
    .await
    .expect("the agent comes up on the first relay");
    assert_eq!(port_of(agent.http_url()), first.http().port());
    assert_eq!(
        curl(&[&format!("{}/hello", agent.http_url())]).await.0,
        "hello"
    );
    until(
        "both lanes join the first relay",
        Duration::from_secs(10),
        || first.handle.session_lanes() == [2],
    )
    .await;
    assert!(second.handle.session_lanes().is_empty());

    first.handle.shutdown().await;

    // The agent asks the second relay for the same name (two independent relays share no
    // leases, so only the serving is checked here): its tunnel answers there again.
    let url = format!("http://{}:{}/hello", agent.host(), second.http().port());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (body, _, _) = curl(&["--max-time", "2", &url]).await;
        if body == "hello" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tunnel did not come back on the second relay: {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    until(
        "both lanes join the second relay",
        Duration::from_secs(10),
        || second.handle.session_lanes() == [2],
    )
    .await;
}

#[actix_rt::test]
async fn a_certificate_that_does_not_fit_moves_on_and_is_fatal_only_alone() {
    let untrusted = TestRelay::start().await;
    let trusted = TestRelay::start().await;
    let up = upstream::start().await;
    // Only the second relay's CA is trusted: the first address fails its TLS handshake.
    let agent = TestAgent::start_across(
        &[&trusted],
        &[&agent_port(&untrusted), &agent_port(&trusted)],
        TunnelOpts::http(up.addr.port()),
        None,
    )
    .await
    .expect("the agent comes up on the relay it trusts");
    assert_eq!(port_of(agent.http_url()), trusted.http().port());
    // Alone, that address is fatal at once, as a single relay address always was.
    let err = TestAgent::start_across(
        &[&trusted],
        &[&agent_port(&untrusted)],
        TunnelOpts::http(up.addr.port()),
        None,
    )
    .await
    .err()
    .expect("no relay it trusts");
    assert!(err.contains("set -root-cas"), "{err}");
}
