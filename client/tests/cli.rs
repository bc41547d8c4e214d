//! The `burrow` binary as a user runs it: embedded relay, output lines, errors, Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn burrow(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_burrow"));
    c.args(args);
    c
}

struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Running {
    let mut child = burrow(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    Running { child, lines }
}

impl Running {
    fn line_matching(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if pred(&l) {
                return l;
            }
        }
        panic!("no matching line within 10 s");
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn http_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nlocal!",
            );
        }
    });
    port
}

#[test]
fn version() {
    for args in [&["--version"][..], &["version"], &["-version"]] {
        let out = burrow(args).output().unwrap();
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
    assert_eq!(curl(&url), "local!");
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
    let l = run.line_matching(|l| l.contains("msg=\"started tunnel\""));
    assert!(l.contains("obj=tunnels name=command_line"), "{l}");
    assert!(l.contains(&format!("addr=http://localhost:{port}")), "{l}");
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
    ];
    for (args, want) in cases {
        let out = burrow(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn invalid_subdomain_exits_non_zero_with_the_reason() {
    let out = burrow(&["http", "8080", "-subdomain=Not_Valid"])
        .output()
        .unwrap();
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
    burrow_relay::install_crypto();
    let mut cfg = burrow_relay::RelayConfig::loopback();
    let state = std::env::temp_dir().join(format!("burrow-kill-{}", std::process::id()));
    cfg.state_dir = Some(state.clone());
    let relay = burrow_relay::start(cfg).await.unwrap();
    let port = http_server();
    let ca = state.join("ca.pem");
    let server = format!("localhost:{}", relay.control_addr.port());
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
        tokio::task::spawn_blocking(move || curl(&u)).await.unwrap(),
        "local!"
    );
    run.signal("-KILL");
    run.wait_exit(Duration::from_secs(2));
    let killed = Instant::now();
    loop {
        let u = url.clone();
        let body = tokio::task::spawn_blocking(move || curl(&u)).await.unwrap();
        if body.contains("not found") {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "still routed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(state);
}
