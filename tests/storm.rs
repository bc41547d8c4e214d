//! A storm of 2,000 short connections leaves no connection actor and no file descriptor
//! behind. Alone in its own test binary so no other test's sockets blur the count.

use burrow_e2e::{curl, open_fds, raw_exchange, upstream, TestAgent, TestRelay};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

async fn still_serving(agent: &TestAgent) {
    let (body, err, ok) = curl(&[&format!("{}/hello", agent.http_url())]).await;
    assert!(ok && body == "hello", "other session broken: {body} {err}");
}

#[actix_rt::test]
async fn a_storm_of_short_connections_leaks_nothing() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    still_serving(&agent).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds_before = open_fds();
    let addr = relay.http();
    let host = agent.host();
    let mut done = 0;
    for batch in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let host = host.clone();
            tasks.push(tokio::spawn(async move {
                if (batch + i) % 4 == 0 {
                    // Some visitors leave without a word.
                    return TcpStream::connect(addr).await.is_ok();
                }
                let req =
                    format!("GET /hello HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                let resp = raw_exchange(addr, req.as_bytes(), Duration::from_secs(10)).await;
                resp.ends_with("hello")
            }));
        }
        for t in tasks {
            done += t.await.unwrap() as usize;
        }
    }
    assert_eq!(done, 2000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (relay.handle.open_connections() > 0 || open_fds() > fds_before)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        relay.handle.open_connections(),
        0,
        "connection actors left running"
    );
    assert!(
        open_fds() <= fds_before,
        "fds before {fds_before}, after {}",
        open_fds()
    );
    still_serving(&agent).await;
}
