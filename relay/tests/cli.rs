//! The `burrowd` binary: start-up output, state directory, flags, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `burrowd` with `args`, hermetic: `HOME` is an empty scratch path and the environment's
/// `BURROWD_AUTH_TOKENS` is not passed on (tests that need it set it themselves).
fn burrowd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_burrowd"));
    c.env(
        "HOME",
        std::env::temp_dir().join(format!("burrowd-cli-home-{}", std::process::id())),
    )
    .env_remove("BURROWD_AUTH_TOKENS")
    .args(args);
    c
}

#[test]
fn starts_prints_addresses_keeps_its_ca_and_stops_on_sigterm() {
    let state = std::env::temp_dir().join(format!("burrowd-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let args = [
        "--http-addr",
        "127.0.0.1:0",
        "--https-addr",
        "127.0.0.1:0",
        "--control-addr=127.0.0.1:0",
        "-tcp-ports",
        "0-0",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut fingerprints = Vec::new();
    for _ in 0..2 {
        let mut child = burrowd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        while let Some(Ok(l)) = lines.next() {
            let done = l.trim_start().starts_with("fingerprint");
            seen.push(l);
            if done {
                break;
            }
        }
        let text = seen.join("\n");
        assert!(text.contains("agents      127.0.0.1:"), "{text}");
        assert!(text.contains("http        127.0.0.1:"), "{text}");
        fingerprints.push(seen.last().unwrap().clone());
        assert!(state.join("ca.pem").exists());
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "burrowd did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success());
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains("open relay"), "{err}");
    }
    // The CA survives restarts, so agents keep trusting the relay.
    assert_eq!(fingerprints[0], fingerprints[1]);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn bad_flags_are_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus", "1"], "unknown flag --bogus"),
        (&["--http-addr", "nowhere"], "invalid address"),
        (&["--tcp-ports", "9-3"], "invalid port range"),
        (
            &["--tls-cert", "/x.pem"],
            "--tls-cert and --tls-key go together",
        ),
        (
            &[
                "--tls-cert",
                "/nonexistent/c.pem",
                "--tls-key",
                "/nonexistent/k.pem",
                "--control-addr",
                "127.0.0.1:0",
                "--http-addr",
                "off",
                "--https-addr",
                "off",
            ],
            "cannot read certificate file /nonexistent/c.pem",
        ),
        (&["--domain"], "needs a value"),
    ];
    for (args, want) in cases {
        let out = burrowd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
