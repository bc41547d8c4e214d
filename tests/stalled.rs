//! Visitors that download fast and then stop reading: what they make the relay and the
//! agent hold is bounded, and given back when they leave.
//! Alone in its own test binary so the process's memory belongs to this test (relay,
//! agent and upstream all run in it, so the figures bound the relay and the agent
//! together).

use burrow_e2e::{status_kib, upstream, TestAgent, TestRelay};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VISITORS: usize = 10;
const READ_FAST: usize = 64 * 1024 * 1024;
/// Growth over the idle process while the stalled visitors are connected, at the peak:
/// the relay's and the agent's window budgets (32 MiB each by default, both in this
/// process) plus 16 MiB for buffers in flight and the allocator's own overhead.
const PEAK_LIMIT_KIB: u64 = (32 + 32 + 16) * 1024;
/// How long the streams of departed visitors may take to be torn down on both sides.
const GIVE_BACK: Duration = Duration::from_secs(30);

#[actix_rt::test]
async fn stalled_visitors_pin_bounded_memory_and_give_it_back() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let host = agent.host();
    let base = status_kib("VmRSS");

    let mut tasks = Vec::new();
    for _ in 0..VISITORS {
        let (addr, host) = (relay.http(), host.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = format!(
                "GET /download/{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                1u64 << 34
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while got < READ_FAST && Instant::now() < deadline {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => panic!("download ended after {got} bytes"),
                    Ok(n) => got += n,
                }
            }
            assert!(got >= READ_FAST, "only {got} bytes in 60 s");
            // From here on the visitor reads nothing, and keeps the connection open.
            s
        }));
    }
    let mut visitors = Vec::new();
    for t in tasks {
        visitors.push(t.await.unwrap());
    }
    // Let everything that can pile up pile up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peak = status_kib("VmHWM");
    let stalled = status_kib("VmRSS");
    let held = relay.handle.window_budget_used();
    drop(visitors);
    // What the relay holds for them is given back: its windows shrink to their initial
    // size. (The process's RSS is printed, not bounded: how much of the freed memory the
    // allocator returns to the system at once depends on its arenas and the load.)
    let left = Instant::now();
    while relay.handle.window_budget_used() > 0 && left.elapsed() < GIVE_BACK {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = status_kib("VmRSS");
    println!(
        "base {base} KiB; stalled {stalled} KiB; peak {peak} KiB; {:?} after {after} KiB; \
         open connections {}; relay window budget in use {held} bytes while stalled, {} after",
        left.elapsed(),
        relay.handle.open_connections(),
        relay.handle.window_budget_used()
    );
    assert_eq!(relay.handle.open_connections(), 0);
    assert!(
        peak.saturating_sub(base) <= PEAK_LIMIT_KIB,
        "{VISITORS} stalled visitors grew the process by {} KiB at the peak",
        peak - base
    );
    assert_eq!(
        relay.handle.window_budget_used(),
        0,
        "the relay still holds window space {GIVE_BACK:?} after the visitors left"
    );
}
