//! The `burrow` binary as a user runs it: embedded relay, output lines, errors, Ctrl-C.

use burrow_e2e::agent_bin::{curl_body, run_burrow, spawn};
use burrow_e2e::{upstream, Scratch, TestRelay};
use std::time::{Duration, Instant};

fn http_server() -> u16 {
    upstream::http_server("200 OK", "local!")
}

#[test]
fn version() {
    for args in [&["--version"][..], &["version"], &["-version"]] {
        let out = run_burrow(args);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("burrow version {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn http_with_the_embedded_relay_then_ctrl_c() {
    let port = http_server();
    let mut run = spawn(&["http", &port.to_string()]);
    let https = run.line_matching(|l| l.starts_with("Forwarding  https://"));
    let http = run.line_matching(|l| l.starts_with("Forwarding  http://"));
    let re_tail = format!(" -> http://localhost:{port}");
    for line in [&https, &http] {
        assert!(line.ends_with(&re_tail), "{line}");
        let url = line["Forwarding  ".len()..].split(' ').next().unwrap();
        let host = url.split("://").nth(1).unwrap().split(':').next().unwrap();
        assert_eq!(host.len(), 8 + ".localhost".len(), "{line}");
        assert!(host[..8].bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    }
    let url = http["Forwarding  ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(curl_body(&url), "local!");
    let started = Instant::now();
    run.signal("-INT");
    assert_eq!(run.wait_exit(Duration::from_secs(3)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn tcp_forwarding_line() {
    let port = http_server();
    let mut run = spawn(&["tcp", &port.to_string()]);
    let line = run.line_matching(|l| l.starts_with("Forwarding  "));
    assert!(line.starts_with("Forwarding  tcp://localhost:"), "{line}");
    assert!(line.ends_with(&format!(" -> localhost:{port}")), "{line}");
    run.signal("-TERM");
    assert_eq!(run.wait_exit(Duration::from_secs(3)), Some(0));
}

#[test]
fn log_stdout_writes_logfmt_lines() {
    let port = http_server();
    let run = spawn(&["http", &port.to_string(), "--log", "stdout"]);
    let l = run.line_matching(|l| l.contains("msg=\"client session established\""));
    assert!(l.starts_with("t="), "{l}");
    assert!(
        l.contains(" lvl=info ") && l.contains(" obj=csess id="),
        "{l}"
    );
    // The embedded relay serves the default region when none is asked for.
    assert!(l.ends_with(" region=us"), "{l}");
    let l = run.line_matching(|l| l.contains("msg=\"started tunnel\""));
    assert!(l.contains("obj=tunnels name=command_line"), "{l}");
    assert!(l.contains(&format!("addr=http://localhost:{port}")), "{l}");
}

#[test]
fn the_embedded_relay_serves_the_region_asked_for() {
    let port = http_server();
    let run = spawn(&[
        "http",
        &port.to_string(),
        "-region",
        "eu",
        "-bind-tls",
        "false",
        "--log",
        "stdout",
    ]);
    let l = run.line_matching(|l| l.contains("msg=\"client session established\""));
    assert!(l.ends_with(" region=eu"), "{l}");
    let l = run.line_matching(|l| l.contains("msg=\"started tunnel\""));
    let url = l
        .split(" url=")
        .nth(1)
        .and_then(|u| u.split(' ').next())
        .unwrap_or_else(|| panic!("no url in {l}"));
    assert!(url.starts_with("http://"), "{l}");
    assert_eq!(curl_body(url), "local!");
}

#[test]
fn bad_command_lines_are_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["http", "70000"], "port 70000 is out of range"),
        (&["http", "8080", "-bogus"], "unknown flag -bogus"),
        (&["http"], "missing address"),
        (&["launch"], "unknown command \"launch\""),
        (
            &["http", "8080", "-subdomain"],
            "flag -subdomain needs a value",
        ),
        (&["http", "8080", "-bind-tls", "maybe"], "invalid -bind-tls"),
        (
            &["tcp", "22", "-remote-addr", "x:notaport"],
            "invalid -remote-addr",
        ),
        (
            &["http", "8080", "-region", "eu.west"],
            "invalid region \"eu.west\"",
        ),
    ];
    for (args, want) in cases {
        let out = run_burrow(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn invalid_subdomain_exits_non_zero_with_the_reason() {
    let out = run_burrow(&["http", "8080", "-subdomain=Not_Valid"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid subdomain \"Not_Valid\""), "{err}");
}

#[test]
fn unreachable_relay_is_retried_and_logged() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = spawn(&[
        "http",
        "8080",
        "-server",
        &format!("127.0.0.1:{port}"),
        "-log",
        "stdout",
    ]);
    let l =
        run.line_matching(|l| l.contains("lvl=warn") && l.contains("failed to reconnect session"));
    assert!(
        l.contains("connection refused") || l.contains("Connection refused"),
        "{l}"
    );
}

#[actix_rt::test]
async fn a_killed_agent_stops_routing_within_ten_seconds() {
    let state = Scratch::new("kill");
    let relay = TestRelay::start_with(|cfg| cfg.state_dir = Some(state.0.clone())).await;
    let port = http_server();
    let ca = state.0.join("ca.pem");
    let server = format!("localhost:{}", relay.handle.control_addr.port());
    let args = [
        "http".to_string(),
        port.to_string(),
        "-server".into(),
        server,
        "-root-cas".into(),
        ca.to_str().unwrap().into(),
        "-bind-tls=false".into(),
    ];
    // The relay runs on this thread's runtime: wait for the agent off it.
    let (mut run, line) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = spawn(&args);
        let line = run.line_matching(|l| l.starts_with("Forwarding  http://"));
        (run, line)
    })
    .await
    .unwrap();
    let url = line["Forwarding  ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let u = url.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || curl_body(&u))
            .await
            .unwrap(),
        "local!"
    );
    run.signal("-KILL");
    run.wait_exit(Duration::from_secs(2));
    let killed = Instant::now();
    loop {
        let u = url.clone();
        let body = tokio::task::spawn_blocking(move || curl_body(&u))
            .await
            .unwrap();
        if body.contains("not found") {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "still routed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
