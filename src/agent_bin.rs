//! The `burrow` binary as a user runs it: started hermetic, its output read line by line,
//! its local API called with curl.

use crate::binaries::binary;
use crate::process::{hermetic, Killed, Running, Scratch};
use crate::relay_bin::Burrowd;
use crate::{curl_command, free_port};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `burrow` binary with `args`, hermetic (see [`hermetic`]) with `home` as `HOME`.
pub fn burrow(home: impl AsRef<Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("burrow"));
    hermetic(&mut cmd, home).args(args);
    cmd
}

/// Runs the `burrow` binary with `args` to its end, with a scratch `HOME` and no proxy
/// variables.
pub fn run_burrow(args: &[&str]) -> std::process::Output {
    let home = Scratch::new("home");
    burrow(&home, args).output().expect("burrow runs")
}

/// Starts the `burrow` binary with `args`, with a scratch `HOME` and no proxy variables.
pub fn spawn(args: &[&str]) -> Running {
    let home = Scratch::new("home");
    let cmd = burrow(&home, args);
    Running::start(cmd, home)
}

/// `burrow start --none` with its API on a free port and `extra` YAML in its configuration;
/// returns once the relay session is up, with the API's base URL.
pub fn agent(tag: &str, extra: &str) -> (Running, String, Scratch) {
    agent_until(tag, extra, "client session established")
}

/// Like [`agent`], returning once a log line contains `ready`.
pub fn agent_until(tag: &str, extra: &str, ready: &str) -> (Running, String, Scratch) {
    let web = free_port();
    let dir = Scratch::new(tag);
    let cfg = dir.file("c.yml", &format!("web_addr: 127.0.0.1:{web}\n{extra}"));
    let run = spawn(&[
        "start",
        "--none",
        "--log",
        "stdout",
        "--config",
        cfg.to_str().expect("a UTF-8 path"),
    ]);
    run.line_matching(|l| l.contains(ready));
    (run, format!("http://127.0.0.1:{web}"), dir)
}

/// The body curl fetched from `url` (empty on failure).
pub fn curl_body(url: &str) -> String {
    let out = curl_command()
        .args(["--max-time", "10", url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (status, body) of a curl request; a JSON `body` is sent with its content type.
pub fn call(method: &str, url: &str, body: Option<&str>, extra: &[&str]) -> (u16, String) {
    let mut c = curl_command();
    c.args([
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        url,
    ]);
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    c.args(extra);
    let out = c.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("curl wrote the status line");
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `s` as JSON; panics showing `s` when it is not.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Creates an http-only tunnel `name` to `port` through the agent's API at `api`; its URL.
pub fn http_tunnel(api: &str, name: &str, port: u16) -> String {
    let (code, body) = call(
        "POST",
        &format!("{api}/api/tunnels"),
        Some(&format!(
            r#"{{"name":"{name}","addr":"{port}","proto":"http","bind_tls":false}}"#
        )),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    json(&body)["public_url"]
        .as_str()
        .expect("a public_url")
        .to_string()
}

/// The outcome of starting an agent against a [`Burrowd`]: its first `Forwarding` URL, or
/// its exit error.
pub enum Outcome {
    /// It forwards from the URL; killed when dropped.
    Up(Killed, String),
    /// It exited 1 with this on stderr.
    Refused(String),
}

/// Runs `burrow http` to port 9 (nothing listens; only the tunnel matters) against
/// `relay` with `args`, hermetic under `dir` and without a local API.
pub fn agent_against(dir: &Scratch, relay: &Burrowd, args: &[&str]) -> Outcome {
    let config = dir.file("agent.yml", "web_addr: false\n");
    let server = format!("localhost:{}", relay.control);
    let config = config.to_str().expect("a UTF-8 path");
    let first = ["http", "9", "-server", &server, "-config", config];
    agent_outcome(dir, &[&first[..], args].concat())
}

/// Runs `burrow` with `args`, hermetic under `dir`, until it prints its first `Forwarding`
/// URL or exits.
pub fn agent_outcome(dir: &Scratch, args: &[&str]) -> Outcome {
    let home = dir.0.join("home");
    std::fs::create_dir_all(&home).expect("create the agent's HOME");
    let mut child = burrow(&home, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("burrow starts");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout was piped");
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(url) = l.strip_prefix("Forwarding  ") {
                let _ = tx.send(url.split(' ').next().unwrap_or_default().to_string());
            }
        }
    });
    let started = Instant::now();
    loop {
        if let Ok(url) = rx.recv_timeout(Duration::from_millis(50)) {
            return Outcome::Up(Killed(child), url);
        }
        if let Some(status) = child.try_wait().expect("the agent's status") {
            let mut err = String::new();
            let mut stderr = child.stderr.take().expect("stderr was piped");
            std::io::Read::read_to_string(&mut stderr, &mut err).expect("read stderr");
            assert_eq!(status.code(), Some(1), "{err}");
            return Outcome::Refused(err);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the agent neither came up nor exited"
        );
    }
}
