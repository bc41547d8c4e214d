//! 200 MiB up and down through one tunnel, streamed: memory stays bounded.
//! Alone in its own test binary so the process's peak RSS belongs to this test.

use burrow_e2e::{curl, status_kib, upstream, TestAgent, TestRelay};
use std::process::Stdio;

const SIZE: u64 = 200 * 1024 * 1024;
/// Relay, agent, upstream and test together may not grow by more than this while
/// 200 MiB crosses in each direction; buffering a whole body would blow it.
const GROWTH_LIMIT_KIB: u64 = 96 * 1024;

#[actix_rt::test]
async fn two_hundred_mib_each_way_with_bounded_memory() {
    let relay = TestRelay::start().await;
    let up = upstream::start().await;
    let agent = TestAgent::http(&relay, up.addr.port()).await;
    let (body, err, ok) = curl(&[&format!("{}/hello", agent.http_url())]).await;
    assert!(ok && body == "hello", "{err}");
    let base = status_kib("VmRSS");

    let (out, err, ok) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("{}/download/{SIZE}", agent.http_url()),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, SIZE.to_string());

    // Upload from a pipe with chunked encoding, so curl never holds the body either.
    let url = format!("{}/upload", agent.http_url());
    let out = tokio::task::spawn_blocking(move || {
        let mut head = std::process::Command::new("head")
            .args(["-c", &SIZE.to_string(), "/dev/zero"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = burrow_e2e::curl_command()
            .args(["--max-time", "120", "-T", "-", &url])
            .stdin(head.stdout.take().unwrap())
            .output()
            .unwrap();
        let _ = head.wait();
        out
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), SIZE.to_string());

    let peak = status_kib("VmHWM");
    let grew = peak.saturating_sub(base);
    println!("base RSS {base} KiB, peak {peak} KiB, growth {grew} KiB");
    assert!(
        grew < GROWTH_LIMIT_KIB,
        "memory grew by {grew} KiB moving {SIZE} bytes each way"
    );
}
