//! The `burrowd` binary: start-up output, state directory, flags, SIGTERM, and the
//! `burrowd admin` command line against a running relay.

use burrow_e2e::agent_bin::{agent_against as agent, agent_outcome, Outcome as Agent};
use burrow_e2e::binaries::binary;
use burrow_e2e::relay_bin::{self, Burrowd};
use burrow_e2e::{free_port, hermetic, Scratch};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `burrowd` with `args`, hermetic (see [`relay_bin::burrowd`]) with an empty `HOME`.
fn burrowd(args: &[&str]) -> Command {
    let home = std::env::temp_dir().join(format!("burrowd-cli-home-{}", std::process::id()));
    relay_bin::burrowd(home, args)
}

#[test]
fn starts_prints_addresses_keeps_its_ca_and_stops_on_sigterm() {
    let scratch = Scratch::new("burrowd-cli");
    let state = scratch.0.join("state");
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
        assert!(text.contains("region      us"), "{text}");
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
        (&["--region", "EU"], "--region: invalid region \"EU\""),
    ];
    for (args, want) in cases {
        let out = burrowd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
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
    let out = burrow_e2e::curl_command()
        .args(["--max-time", "10"])
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

#[test]
fn a_relay_serves_its_region_and_refuses_agents_asking_for_another() {
    let dir = Scratch::new("region");
    let relay = Burrowd::start(&dir, &["--region", "us"], &[]);
    let ca = dir.path("state/ca.pem");
    let config = dir.file("agent.yml", "web_addr: false\n");
    let server = format!("localhost:{}", relay.control);
    let tcp = |region: &str| {
        let config = config.to_str().unwrap();
        let args = ["tcp", "22", "-server", &server, "-root-cas", &ca];
        agent_outcome(
            &dir,
            &[&args[..], &["-config", config, "-region", region]].concat(),
        )
    };
    let Agent::Refused(err) = tcp("eu") else {
        panic!("a relay of region us took an agent asking for eu");
    };
    assert!(
        err.contains(
            "authentication failed: this relay serves region us; the agent asked for region eu"
        ),
        "{err}"
    );
    let Agent::Up(_agent, url) = tcp("us") else {
        panic!("a relay of region us refused an agent asking for us");
    };
    assert!(url.starts_with("tcp://localhost:"), "{url}");
    // An agent that names no region gets the relay's.
    let Agent::Up(..) = agent(&dir, &relay, &["-root-cas", &ca]) else {
        panic!("an agent naming no region was refused");
    };
}

/// An HTTP CONNECT proxy on loopback that sends every tunnel to 127.0.0.1 whatever name it
/// is given, standing in for DNS names this machine does not resolve; it reports each
/// CONNECT target.
fn connecting_proxy() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let target = line.split(' ').nth(1).unwrap_or_default().to_string();
                // The headers end at the empty line; nothing follows before our answer.
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap() > 2 {
                    header.clear();
                }
                let port = target.rsplit(':').next().unwrap().parse::<u16>().unwrap();
                let _ = tx.send(target);
                let mut client = client;
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                let (mut down_r, mut down_w) = (client.try_clone().unwrap(), client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_r, &mut down_w);
                    let _ = down_w.shutdown(std::net::Shutdown::Write);
                });
                let mut buf = [0u8; 16384];
                while let Ok(n) = down_r.read(&mut buf) {
                    if n == 0 || up_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = up_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, rx)
}

#[test]
fn a_region_placeholder_in_server_addr_is_filled_in() {
    let dir = Scratch::new("placeholder");
    let relay = Burrowd::start(&dir, &[], &[]);
    let (proxy, targets) = connecting_proxy();
    let config = dir.file(
        "agent.yml",
        &format!(
            "web_addr: false\nserver_addr: \"{{region}}.localhost:{}\"\nroot_cas: {}\n\
             http_proxy: http://127.0.0.1:{proxy}\n",
            relay.control,
            dir.path("state/ca.pem")
        ),
    );
    let config = config.to_str().unwrap();
    // No region: the default one, which this relay serves. The relay's certificate names
    // us.localhost, a name under its domain, so TLS checks the substituted name too.
    let Agent::Up(agent, url) = agent_outcome(&dir, &["tcp", "22", "-config", config]) else {
        panic!("the agent did not come up through us.localhost");
    };
    drop(agent);
    assert!(url.starts_with("tcp://localhost:"), "{url}");
    let first = targets.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(first, format!("us.localhost:{}", relay.control));
    // -region fills the placeholder too; this relay then refuses the region.
    let outcome = agent_outcome(&dir, &["tcp", "22", "-config", config, "-region", "eu"]);
    let Agent::Refused(err) = outcome else {
        panic!("a relay of region us took an agent asking for eu");
    };
    assert!(err.contains("serves region us"), "{err}");
    let dialled: Vec<String> = targets.try_iter().collect();
    let eu = format!("eu.localhost:{}", relay.control);
    assert!(dialled.contains(&eu), "{dialled:?}");
}

#[test]
fn a_corrupt_store_file_is_named_and_left_as_it_was() {
    let dir = Scratch::new("corrupt-store");
    let state = dir.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("burrowd.redb");
    std::fs::write(&file, b"not a database at all").unwrap();
    let out = burrowd(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--control-addr",
        "127.0.0.1:0",
        "--http-addr",
        "off",
        "--https-addr",
        "off",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a database at all");
}

/// `burrowd admin --admin-addr ADDR --state-dir STATE ARGS` with `env`, run from `dir`;
/// (exit status, stdout, stderr).
fn admin(dir: &Scratch, addr: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(binary("burrowd"));
    hermetic(&mut cmd, dir)
        .env_remove("BURROWD_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .current_dir(&dir.0)
        .args([
            "admin",
            "--admin-addr",
            addr,
            "--state-dir",
            &dir.path("state"),
        ])
        .args(args);
    let out = cmd.output().expect("burrowd admin runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_admin_command_line_manages_a_running_relay() {
    let dir = Scratch::new("burrowd-admin");
    let relay = Burrowd::start(&dir, &[], &[]);
    let addr = format!("127.0.0.1:{}", relay.admin.expect("an admin listener"));
    // The token is the one the relay wrote into its state directory at start.
    let ok = |args: &[&str]| {
        let (code, out, err) = admin(&dir, &addr, &[], args);
        assert_eq!(code, 0, "burrowd admin {args:?}: {err}");
        out
    };

    let out = ok(&["accounts", "add", "alice"]);
    assert!(out.starts_with("account alice created;"), "{out}");
    let out = ok(&["tokens", "issue", "alice", "--label", "laptop"]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .to_string();
    assert!(out.contains("will not be shown again"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    assert!(id.starts_with("tok_"), "{out}");
    let out = ok(&["domains", "add", "alice", "app.localhost"]);
    assert_eq!(out, "app.localhost reserved for alice in region us\n");
    let out = ok(&["whitelist", "add", "alice", "10.0.0.0/8"]);
    assert_eq!(out, "alice now accepts visitors from 10.0.0.0/8\n");

    let show = ok(&["accounts", "show", "alice"]);
    assert!(show.starts_with("account  alice\n"), "{show}");
    assert!(
        show.contains("quotas   10 agent sessions, 50 tunnels, 5 tcp ports"),
        "{show}"
    );
    let tokens = show.lines().skip_while(|l| *l != "tokens:").nth(1).unwrap();
    assert!(
        tokens.starts_with("  ID  ") && tokens.contains("LABEL"),
        "{show}"
    );
    assert!(show.contains(&id) && show.contains("laptop"), "{show}");
    assert!(
        show.contains("app.localhost") && show.contains("10.0.0.0/8"),
        "{show}"
    );
    assert!(
        !show.contains(&secret),
        "the secret is shown once only:\n{show}"
    );
    // Columns line up: each header starts where its cells do.
    let domains: Vec<&str> = show
        .lines()
        .skip_while(|l| *l != "domains:")
        .skip(1)
        .take(2)
        .collect();
    assert_eq!(domains[0].find("REGION"), domains[1].find("us"), "{show}");

    // Another account's reservation of the same name is refused: status 1, the API's reason.
    ok(&["accounts", "add", "bob"]);
    let (code, out, err) = admin(
        &dir,
        &addr,
        &[],
        &["domains", "add", "bob", "app.localhost"],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(out, "");
    assert!(
        err.contains("app.localhost is reserved by another account"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // --json prints the API's answer.
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&["tokens", "list", "alice", "--json"])).unwrap();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["label"], "laptop", "{listed}");

    // The token lets an agent bind the reserved name; revoking it ends that session.
    let ca = dir.path("state/ca.pem");
    let up = agent(
        &dir,
        &relay,
        &[
            "-root-cas",
            &ca,
            "-authtoken",
            &secret,
            "-subdomain",
            "app",
            "-bind-tls",
            "false",
        ],
    );
    let Agent::Up(_agent, url) = up else {
        panic!("alice's agent was refused her name");
    };
    assert!(url.starts_with("http://app.localhost:"), "{url}");
    let sessions = ok(&["sessions"]);
    assert!(
        sessions.contains("alice") && sessions.contains(&url),
        "{sessions}"
    );
    let out = ok(&["tokens", "revoke", &id]);
    assert_eq!(
        out,
        format!("token {id} of alice revoked; 1 session ended\n")
    );
    assert_eq!(ok(&["tokens", "alice"]), "(none)\n");

    // A wrong token, and a relay that is not there, each say so in one line.
    let (code, _, err) = admin(
        &dir,
        &addr,
        &[("BURROWD_ADMIN_TOKEN", "bra_wrong")],
        &["status"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("admin token missing or wrong"), "{err}");
    let nowhere = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = admin(&dir, &nowhere, &[], &["accounts"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot reach the admin API at {nowhere}")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = admin(&dir, &addr, &[], &["accounts", "frob"]);
    assert_eq!(
        (code, err.trim()),
        (
            1,
            "burrowd admin: unknown command `accounts frob` (see burrowd admin help)"
        )
    );
}
