//! Shared helpers for the tests that run the `burrow` binary: processes whose output is
//! read line by line, scratch directories, free ports and tiny upstream servers.
#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burrow-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `text` to `name` inside and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Proxy variables the agent and curl would follow: tests never go through a proxy the
/// environment happens to set.
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Makes `cmd` hermetic: `HOME` is the scratch directory `home` (so the default
/// `~/.burrow/burrow.yml` of whoever runs the tests is never read or written) and no proxy
/// variables are passed on.
pub fn hermetic<'a>(cmd: &'a mut Command, home: &Scratch) -> &'a mut Command {
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.env("HOME", &home.0)
}

/// The `burrow` binary with `args`, hermetic (see [`hermetic`]) with `home` as `HOME`.
pub fn burrow(home: &Scratch, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_burrow"));
    hermetic(&mut cmd, home).args(args);
    cmd
}

/// curl, silent but showing errors, never through a proxy from the environment.
pub fn curl_command() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*"]);
    cmd
}

/// Runs the `burrow` binary with `args` to its end, with a scratch `HOME` and no proxy
/// variables.
pub fn run_burrow(args: &[&str]) -> std::process::Output {
    let home = Scratch::new("home");
    burrow(&home, args).output().unwrap()
}

/// A running `burrow` whose stdout arrives line by line; killed when dropped.
pub struct Running {
    /// The process.
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its `HOME`, removed after the process is gone.
    _home: Scratch,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `burrow` binary with `args`, with a scratch `HOME` and no proxy variables.
pub fn spawn(args: &[&str]) -> Running {
    let home = Scratch::new("home");
    let mut child = burrow(&home, args)
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
    Running {
        child,
        lines,
        _home: home,
    }
}

impl Running {
    /// The next line `pred` accepts, within `within`.
    pub fn line_within(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if pred(&l) {
                return Some(l);
            }
        }
        None
    }

    /// The next line `pred` accepts; panics after 15 s.
    pub fn line_matching(&self, pred: impl Fn(&str) -> bool) -> String {
        self.line_within(Duration::from_secs(15), pred)
            .expect("no matching line within 15 s")
    }

    /// Sends a signal (`-INT`, `-TERM`, `-KILL`).
    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// The exit code, if the process ends within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
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

/// An upstream answering every request with `status` and `body`, then closing.
pub fn http_server(status: &'static str, body: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes());
            });
        }
    });
    port
}

/// The body curl fetched from `url` (empty on failure).
pub fn curl(url: &str) -> String {
    let out = curl_command()
        .args(["--max-time", "10", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (status, body) of a curl request.
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
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
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
        cfg.to_str().unwrap(),
    ]);
    run.line_matching(|l| l.contains(ready));
    (run, format!("http://127.0.0.1:{web}"), dir)
}

/// Reads one HTTP/1.1 request (head and Content-Length body) for a test upstream; `None`
/// when the client closed.
pub fn read_request(r: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    let mut line = String::new();
    while r.read_line(&mut line).ok()? > 0 {
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    if head.is_empty() {
        return None;
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
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
    json(&body)["public_url"].as_str().unwrap().to_string()
}
