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

/// A scratch directory named after `tag`, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("burrowd-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `burrowd` on loopback ports it chose; stopped when dropped.
struct Burrowd {
    child: std::process::Child,
    /// The agents' port.
    control: u16,
    /// The https port.
    https: u16,
}

impl Burrowd {
    /// Starts `burrowd` with `extra` flags and `env`, and reads its addresses.
    fn start(state: &Scratch, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let state_dir = state.path("state");
        let mut cmd = burrowd(&[
            "--http-addr",
            "127.0.0.1:0",
            "--https-addr",
            "127.0.0.1:0",
            "--control-addr",
            "127.0.0.1:0",
            "--tcp-ports",
            "0-0",
            "--state-dir",
            &state_dir,
        ]);
        cmd.args(extra).envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = |l: &str| l.rsplit(':').next().unwrap().trim().parse::<u16>().unwrap();
        let (mut control, mut https) = (0, 0);
        for l in lines.by_ref().map_while(Result::ok) {
            let l = l.trim_start();
            if l.starts_with("agents") {
                control = port(l);
            } else if l.starts_with("https") {
                https = port(l);
            } else if l.starts_with("fingerprint") {
                break;
            }
        }
        assert!(
            control > 0 && https > 0,
            "burrowd did not print its addresses"
        );
        std::thread::spawn(move || lines.for_each(drop));
        Burrowd {
            child,
            control,
            https,
        }
    }
}

impl Drop for Burrowd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `burrow` agent binary, built beside `burrowd` by `cargo test --workspace`.
fn agent_binary() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_burrowd"))
        .with_file_name(format!("burrow{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (./test.sh does) or `cargo build -p burrow`",
        path.display()
    );
    path
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The outcome of starting an agent: its first `Forwarding` URL, or its exit error.
enum Agent {
    Up(Killed, String),
    Refused(String),
}

/// Runs `burrow http` to port 9 (nothing listens; only the tunnel matters) against `relay`,
/// with a scratch HOME, no proxy variables and no local API.
fn agent(dir: &Scratch, relay: &Burrowd, args: &[&str]) -> Agent {
    let home = dir.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = dir.path("agent.yml");
    std::fs::write(&config, "web_addr: false\n").unwrap();
    let server = format!("localhost:{}", relay.control);
    let mut cmd = Command::new(agent_binary());
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .env("HOME", &home)
        .args(["http", "9", "-server", &server, "-config", &config])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
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
            return Agent::Up(Killed(child), url);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(1), "{err}");
            return Agent::Refused(err);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the agent neither came up nor exited"
        );
    }
}

#[test]
fn an_operator_certificate_serves_agents_and_https_visitors() {
    let dir = Scratch::new("tlscert");
    // A CA of the operator's and a certificate it signed for the relay's names.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "operator test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "*.tunnels.burrow.test".to_string(),
    ])
    .unwrap()
    .signed_by(&key, &issuer)
    .unwrap();
    std::fs::write(dir.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.path("relay.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path("relay.key"), key.serialize_pem()).unwrap();

    let (cert, key) = (dir.path("relay.pem"), dir.path("relay.key"));
    let relay = Burrowd::start(
        &dir,
        &[
            "--domain",
            "tunnels.burrow.test",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        &[],
    );
    let ca_file = dir.path("ca.pem");
    let Agent::Up(_agent, url) = agent(
        &dir,
        &relay,
        &[
            "-root-cas",
            &ca_file,
            "-bind-tls",
            "true",
            "-subdomain",
            "op",
        ],
    ) else {
        panic!("the agent trusting the operator's CA is refused");
    };
    assert_eq!(
        url,
        format!("https://op.tunnels.burrow.test:{}", relay.https)
    );
    // curl checks the operator's certificate for the tunnel's name; the agent's local
    // server is down, so the answer is the relay's 502 page, over verified TLS.
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "10"])
        .args([
            "--cacert",
            &ca_file,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args([
            "--resolve",
            &format!("op.tunnels.burrow.test:{}:127.0.0.1", relay.https),
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "502",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An agent trusting another CA does not connect.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other = rcgen::CertificateParams::default();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(
        dir.path("other-ca.pem"),
        other.self_signed(&other_key).unwrap().pem(),
    )
    .unwrap();
    let outcome = agent(&dir, &relay, &["-root-cas", &dir.path("other-ca.pem")]);
    let Agent::Refused(err) = outcome else {
        panic!("an agent trusting another CA connected");
    };
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn auth_tokens_from_a_file_and_from_the_environment() {
    let dir = Scratch::new("tokens");
    std::fs::write(
        dir.path("tokens.txt"),
        "# agents\nfile-token-1\n\nfile-token-2\n",
    )
    .unwrap();
    let file = dir.path("tokens.txt");
    for (how, extra, env, good) in [
        (
            "--auth-token-file",
            vec!["--auth-token-file", file.as_str()],
            vec![],
            "file-token-2",
        ),
        (
            "BURROWD_AUTH_TOKENS",
            vec![],
            vec![("BURROWD_AUTH_TOKENS", "env-a, env-b")],
            "env-b",
        ),
    ] {
        let relay = Burrowd::start(&dir, &extra, &env);
        let ca = dir.path("state/ca.pem");
        let common = ["-root-cas", ca.as_str(), "-bind-tls", "false"];
        let Agent::Up(_agent, url) =
            agent(&dir, &relay, &[&common[..], &["-authtoken", good]].concat())
        else {
            panic!("{how}: the right token is refused");
        };
        assert!(url.starts_with("http://"), "{how}: {url}");
        for bad in ["wrong", "# agents"] {
            let Agent::Refused(err) =
                agent(&dir, &relay, &[&common[..], &["-authtoken", bad]].concat())
            else {
                panic!("{how}: token {bad:?} accepted");
            };
            assert!(err.contains("authentication failed"), "{how}: {err}");
        }
        let Agent::Refused(err) = agent(&dir, &relay, &common) else {
            panic!("{how}: no token accepted");
        };
        assert!(err.contains("requires an auth token"), "{how}: {err}");
    }
}
