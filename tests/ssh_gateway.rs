//! The SSH gateway driven by the real OpenSSH client, on loopback: every example of ngrok's
//! "SSH Gateway" section end to end, refusals as one line on the user's terminal, keys and
//! accounts, flow control per forwarded connection, and the same URL after a reconnect.

use burrow_e2e::{curl, port_of, upstream, Scratch, TestRelay};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A relay with the gateway on, taking any key unless `f` says otherwise.
async fn relay_with(f: impl FnOnce(&mut burrow_relay::RelayConfig)) -> TestRelay {
    TestRelay::start_with(|c| {
        c.ssh_addr = Some("127.0.0.1:0".parse().unwrap());
        c.ssh_allow_any_key = true;
        f(c);
    })
    .await
}

/// Someone with an SSH key of their own and an empty home.
struct User {
    home: Scratch,
}

impl User {
    fn new(tag: &str) -> Self {
        let home = Scratch::new(tag);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", tag, "-f"])
            .arg(home.path("key"))
            .output()
            .expect("ssh-keygen runs (Debian: openssh-client)");
        assert!(out.status.success(), "{out:?}");
        User { home }
    }

    /// The public key, as `burrowd admin ssh-keys add` takes it.
    fn public_key(&self) -> String {
        std::fs::read_to_string(self.home.path("key.pub"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `ssh` to the gateway on `port` with this user's key, hermetic; `mode` is `-T` (a
    /// command, no terminal) or `-N` (no command).
    fn command(&self, port: u16, mode: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env("HOME", &self.home.0)
            .args(["-F", "/dev/null", mode, "-p", &port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ])
            .args([
                "-o",
                &format!("UserKnownHostsFile={}", self.home.path("known_hosts")),
            ])
            .args(["-o", "IdentitiesOnly=yes", "-i", &self.home.path("key")])
            .args(["-o", "ConnectTimeout=10"]);
        cmd
    }

    /// `ssh -R forward RELAY words...`, hermetic.
    fn ssh(&self, relay: &TestRelay, forwards: &[&str], words: &[&str]) -> Ssh {
        let port = relay.handle.ssh_addr.expect("ssh listener").port();
        let mut cmd = self.command(port, "-T");
        for f in forwards {
            cmd.args(["-R", f]);
        }
        cmd.args(["-l", "tunnel", "127.0.0.1"]).args(words);
        Ssh::spawn(cmd)
    }
}

/// A running `ssh` whose output is collected as it comes.
struct Ssh {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Ssh {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh runs (Debian: openssh-client)");
        let collect = |r: Box<dyn Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let t = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let mut t = t.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            });
            text
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        Ssh { child, out, err }
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// The `Forwarding` URLs, once as many as `n` are printed.
    async fn urls(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let urls: Vec<String> = self
                .stdout()
                .lines()
                .filter_map(|l| l.strip_prefix("Forwarding  "))
                .filter_map(|l| l.split(" -> ").next())
                .map(String::from)
                .collect();
            if urls.len() >= n {
                return urls;
            }
            assert!(
                Instant::now() < deadline,
                "no Forwarding line; stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The exit code and stderr once ssh exits on its own.
    async fn exit(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return (status.code(), self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "ssh did not exit: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the relay has `n` live sessions, returning them.
async fn sessions(relay: &TestRelay, n: usize) -> Vec<burrow_relay::team::live::SessionView> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let views = relay.handle.team().live.views();
        if views.len() == n {
            return views;
        }
        assert!(
            Instant::now() < deadline,
            "{} sessions, not {n}",
            views.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn http_tunnel_prints_its_urls_serves_http_and_https_and_ends_with_the_connection() {
    let relay = relay_with(|_| {}).await;
    let up = upstream::start().await;
    let user = User::new("ssh-http");
    // ssh -R 80:localhost:80 RELAY http
    let forward = format!("80:localhost:{}", up.addr.port());
    let mut ssh = user.ssh(&relay, &[&forward], &["http"]);
    let urls = ssh.urls(2).await;
    assert!(
        urls[0].starts_with("https://") && urls[0].contains(".localhost:"),
        "{urls:?}"
    );
    assert!(urls[1].starts_with("http://"), "{urls:?}");
    let (body, err, ok) = curl(&[&format!("{}/hello", urls[1])]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    let ca = relay.ca_file();
    let (body, err, ok) =
        curl(&["--cacert", &ca, "-d", "ping", &format!("{}/echo", urls[0])]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "ping");

    // The relay lists it like an agent's tunnel, marked as coming through SSH.
    let views = sessions(&relay, 1).await;
    assert_eq!(views[0].via, "ssh");
    assert!(
        views[0].client_version.starts_with("SSH-2.0-OpenSSH"),
        "{views:?}"
    );
    assert_eq!(views[0].tunnels[0].urls, urls);
    assert!(views[0].tunnels[0].counters.requests >= 2, "{views:?}");

    // The session stays open while the tunnel lives; ending ssh ends both.
    assert!(ssh.child.try_wait().unwrap().is_none());
    ssh.kill();
    sessions(&relay, 0).await;
    let (body, _, _) = curl(&[&format!("{}/hello", urls[1])]).await;
    assert_ne!(body, "hello");
}

#[actix_rt::test]
async fn subdomains_custom_hostnames_basic_auth_and_a_taken_name() {
    let relay = relay_with(|_| {}).await;
    let up = upstream::start().await;
    let (alice, bob) = (User::new("ssh-alice"), User::new("ssh-bob"));
    // ssh -R custom-subdomain.DOMAIN:80:localhost:8080 RELAY http
    let forward = format!("custom-subdomain.localhost:80:localhost:{}", up.addr.port());
    let _named = alice.ssh(&relay, &[&forward], &["http"]);
    let urls = _named.urls(2).await;
    assert!(
        urls[1].starts_with("http://custom-subdomain.localhost:"),
        "{urls:?}"
    );
    let (body, _, _) = curl(&[&format!("{}/hello", urls[1])]).await;
    assert_eq!(body, "hello");

    // Another user is refused the name while it is taken, in one line.
    let mut taken = bob.ssh(&relay, &[&forward], &["http"]);
    let (code, err) = taken.exit().await;
    assert_eq!(code, Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("burrow: "))
        .unwrap_or_default();
    assert!(
        line.contains("custom-subdomain.localhost") && line.contains("in use"),
        "{err}"
    );

    // ssh -R example.com:80:localhost:8080 RELAY http -auth="user:password"
    let forward = format!("example.com:80:localhost:{}", up.addr.port());
    let guarded = bob.ssh(&relay, &[&forward], &["http", "-auth=\"user:password\""]);
    let urls = guarded.urls(2).await;
    assert!(urls[1].starts_with("http://example.com:"), "{urls:?}");
    let port = port_of(&urls[1]);
    let resolve = format!("example.com:{port}:127.0.0.1");
    let url = format!("{}/hello", urls[1]);
    let (out, _, _) = curl(&[
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ])
    .await;
    assert_eq!(out, "401");
    let (body, err, ok) = curl(&["--resolve", &resolve, "-u", "user:password", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
}

#[actix_rt::test]
async fn tcp_tunnels_on_a_random_port_and_on_a_reserved_address() {
    let relay = relay_with(|c| c.region = Some("us".into())).await;
    let echo = upstream::echo().await;
    let user = User::new("ssh-tcp");
    let team = relay.handle.team();
    team.store().create_account("alice").unwrap();
    team.store()
        .add_ssh_key("alice", &user.public_key())
        .unwrap();
    let reserved = burrow_e2e::free_port();
    team.store()
        .reserve_addr("alice", &format!("tcp.localhost:{reserved}"), "us")
        .unwrap();
    team.reload().unwrap();

    // ssh -R 0:localhost:22 RELAY tcp 22 — with accounts, any port for a random one.
    let forward = format!("0:localhost:{}", echo.port());
    let random = user.ssh(&relay, &[&forward], &["tcp", &echo.port().to_string()]);
    let urls = random.urls(1).await;
    assert!(urls[0].starts_with("tcp://localhost:"), "{urls:?}");
    assert!(random
        .stdout()
        .contains(&format!("-> localhost:{}", echo.port())));
    assert_echoes(port_of(&urls[0])).await;

    // ssh -R HOST:PORT:localhost:22 RELAY tcp
    let forward = format!("tcp.localhost:{reserved}:localhost:{}", echo.port());
    let fixed = user.ssh(&relay, &[&forward], &["tcp"]);
    let urls = fixed.urls(1).await;
    assert_eq!(urls[0], format!("tcp://localhost:{reserved}"));
    assert_echoes(reserved).await;

    let views = sessions(&relay, 2).await;
    assert!(views
        .iter()
        .all(|v| v.via == "ssh" && v.account.as_deref() == Some("alice")));
}

async fn assert_echoes(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"echo through ssh").await.unwrap();
    let mut buf = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&buf, b"echo through ssh");
}

#[actix_rt::test]
async fn tls_tunnel_passes_the_encrypted_connection_through() {
    let relay = relay_with(|_| {}).await;
    let host = "secure.localhost";
    let cert = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let local = tls_server(&cert).await;
    let user = User::new("ssh-tls");
    // ssh -R 443:localhost:8443 RELAY tls, with a name the certificate is for.
    let forward = format!("{host}:443:localhost:{}", local.port());
    let ssh = user.ssh(&relay, &[&forward], &["tls"]);
    let urls = ssh.urls(1).await;
    assert_eq!(urls[0], format!("tls://{host}:{}", relay.https().port()));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(relay.https()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("the local server's certificate");
    tls.write_all(b"ping\n").await.unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(tls)
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line, "pong ping\n");

    // And openssl's client, verifying the local server's certificate through the relay.
    let scratch = Scratch::new("ssh-tls-openssl");
    let ca = scratch.file("cert.pem", &cert.cert.pem());
    let port = relay.https().port();
    let out = tokio::task::spawn_blocking(move || openssl_line(port, host, &ca, "ping\n"))
        .await
        .unwrap();
    assert!(out.contains("pong ping"), "{out}");
}

/// Sends `line` with `openssl s_client` (verifying against `ca`) and returns what came
/// back within 10 s: up to the first answer line, or everything when none comes.
fn openssl_line(port: u16, host: &str, ca: &std::path::Path, line: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", host, "-verify_hostname", host, "-CAfile"])
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (Debian's openssl package)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(line.as_bytes()).unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let _ = BufReader::new(stdout).read_line(&mut answer);
        let _ = tx.send(answer);
    });
    let answer = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let _ = child.kill();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    format!("{answer}{}", String::from_utf8_lossy(&out.stderr))
}

/// A TLS server with `cert` answering each line with `pong LINE`.
async fn tls_server(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> SocketAddr {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let (r, mut w) = tokio::io::split(tls);
                let mut lines = tokio::io::BufReader::new(r).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = w.write_all(format!("pong {l}\n").as_bytes()).await;
                }
            });
        }
    });
    addr
}

#[actix_rt::test]
async fn refusals_reach_the_terminal_as_one_line() {
    let relay = relay_with(|_| {}).await;
    let user = User::new("ssh-refusals");
    let cases: &[(&[&str], &[&str], &str)] = &[
        (&["80:localhost:9"], &["ftp"], "unknown command \"ftp\""),
        (
            &["80:localhost:9"],
            &["http", "-bogus=1"],
            "unknown option -bogus=1 for http",
        ),
        (
            &["80:localhost:9"],
            &["http", "-inspect=false"],
            "-inspect has no meaning",
        ),
        (
            &["8080:localhost:9"],
            &["http"],
            "remote port 8080 does not fit a http tunnel",
        ),
        (&["80:localhost:9"], &["tls"], "use -R 443"),
        (&[], &["http"], "no -R forward"),
        (&["80:localhost:9"], &[], "no tunnel command"),
    ];
    for (forwards, words, want) in cases {
        let mut ssh = user.ssh(&relay, forwards, words);
        let (code, err) = ssh.exit().await;
        assert_eq!(code, Some(1), "{words:?}: {err}");
        let lines: Vec<_> = err.lines().filter(|l| l.starts_with("burrow: ")).collect();
        assert_eq!(lines.len(), 1, "{words:?}: {err}");
        assert!(lines[0].contains(want), "{words:?}: {err}");
    }
    sessions(&relay, 0).await;
}

#[actix_rt::test]
async fn keys_must_be_registered_to_an_account_or_allowed_by_the_operator() {
    let up = upstream::start().await;
    let forward = format!("80:localhost:{}", up.addr.port());
    let (known, stranger) = (User::new("ssh-known"), User::new("ssh-stranger"));

    // A relay with accounts: a key registered to one authenticates as it.
    let relay = relay_with(|c| c.ssh_allow_any_key = false).await;
    let team = relay.handle.team();
    team.store().create_account("alice").unwrap();
    team.store()
        .add_ssh_key("alice", &known.public_key())
        .unwrap();
    team.reload().unwrap();
    let mut refused = stranger.ssh(&relay, &[&forward], &["http"]);
    let (code, err) = refused.exit().await;
    assert_eq!(code, Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("burrow: "))
        .unwrap_or_default();
    assert!(line.contains("is not registered"), "{err}");
    assert!(line.contains("burrowd admin ssh-keys add ACCOUNT"), "{err}");
    assert!(
        line.contains(stranger.public_key().split(' ').nth(1).unwrap()),
        "{err}"
    );
    let ok = known.ssh(&relay, &[&forward], &["http"]);
    let urls = ok.urls(2).await;
    let (body, _, _) = curl(&[&format!("{}/hello", urls[1])]).await;
    assert_eq!(body, "hello");
    let views = sessions(&relay, 1).await;
    assert_eq!(
        (views[0].account.as_deref(), views[0].via),
        (Some("alice"), "ssh")
    );

    // A relay without accounts takes no key unless told so.
    let open = relay_with(|c| c.ssh_allow_any_key = false).await;
    let mut refused = known.ssh(&open, &[&forward], &["http"]);
    let (code, err) = refused.exit().await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--ssh-allow-any-key") && err.contains("ssh-keys add"),
        "{err}"
    );
}

#[actix_rt::test]
async fn a_reconnect_with_the_same_key_gets_the_same_url_and_port_back() {
    let relay = relay_with(|_| {}).await;
    let up = upstream::start().await;
    let echo = upstream::echo().await;
    let user = User::new("ssh-again");
    let web = format!("80:localhost:{}", up.addr.port());
    let raw = format!("0:localhost:{}", echo.port());
    let mut first = user.ssh(&relay, &[&web], &["http"]);
    let before = first.urls(2).await;
    first.kill();
    sessions(&relay, 0).await;
    let mut tcp = user.ssh(&relay, &[&raw], &["tcp"]);
    let port_before = tcp.urls(1).await;
    tcp.kill();
    sessions(&relay, 0).await;

    let again = user.ssh(&relay, &[&web], &["http"]);
    assert_eq!(again.urls(2).await, before);
    let (body, _, _) = curl(&[&format!("{}/hello", before[1])]).await;
    assert_eq!(body, "hello");
    let tcp = user.ssh(&relay, &[&raw], &["tcp"]);
    assert_eq!(tcp.urls(1).await, port_before);
    assert_echoes(port_of(&port_before[0])).await;

    // A redial while the old connection still stands (the relay has not seen it end)
    // takes a name it asks for at once, and keeps it when the old one goes.
    let named = format!("redial.localhost:80:localhost:{}", up.addr.port());
    let mut old = user.ssh(&relay, &[&named], &["http"]);
    let old_urls = old.urls(2).await;
    let new = user.ssh(&relay, &[&named], &["http"]);
    assert_eq!(new.urls(2).await, old_urls);
    sessions(&relay, 4).await;
    old.kill();
    sessions(&relay, 3).await;
    let (body, _, _) = curl(&[&format!("{}/hello", old_urls[1])]).await;
    assert_eq!(body, "hello");
}

/// A local server: `blast N` sends N bytes, `sink` never reads, anything else is echoed.
async fn moody_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let blasted = Arc::new(AtomicUsize::new(0));
    let counter = blasted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let blasted = counter.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = tokio::io::BufReader::new(r);
                let mut first = String::new();
                if r.read_line(&mut first).await.is_err() {
                    return;
                }
                if let Some(n) = first.trim().strip_prefix("blast ") {
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut left: usize = n.parse().unwrap();
                    while left > 0 {
                        let k = left.min(chunk.len());
                        if w.write_all(&chunk[..k]).await.is_err() {
                            return;
                        }
                        blasted.fetch_add(k, Ordering::Relaxed);
                        left -= k;
                    }
                } else if first.trim() == "sink" {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    drop(r);
                } else {
                    let _ = w.write_all(first.as_bytes()).await;
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    (addr, blasted)
}

/// Sends one line and reads it back within `within`.
async fn round_trip(s: &mut TcpStream, line: &str, within: Duration) -> bool {
    if s.write_all(line.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; line.len()];
    matches!(
        tokio::time::timeout(within, s.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && buf == line.as_bytes()
}

#[actix_rt::test]
async fn a_slow_visitor_or_a_slow_local_server_stalls_only_its_own_connection() {
    let relay = relay_with(|_| {}).await;
    let (local, blasted) = moody_server().await;
    let user = User::new("ssh-slow");
    let forward = format!("0:localhost:{}", local.port());
    let ssh = user.ssh(&relay, &[&forward], &["tcp"]);
    let port = port_of(&ssh.urls(1).await[0]);
    let public = ("127.0.0.1", port);

    // A visitor that asks for 32 MiB and reads none of it, with a tiny receive buffer so the
    // kernel hides little of it: far more than its channel's window and its stream's
    // credit, so the user's client must stop sending on that channel alone (were the
    // window reopened as data arrives, the gateway would queue it all, or the whole SSH
    // connection would wait).
    const BLAST: usize = 32 << 20;
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut slow = sock
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    slow.write_all(format!("blast {BLAST}\n").as_bytes())
        .await
        .unwrap();
    // A visitor whose upload the local server never reads.
    let mut stuck = TcpStream::connect(public).await.unwrap();
    stuck.write_all(b"sink\n").await.unwrap();
    let upload = tokio::spawn(async move {
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..1024 {
            if stuck.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !upload.is_finished(),
        "8 MiB went nowhere without back-pressure"
    );
    // The back-pressure reached the local server: what it wrote is what the kernel's
    // buffers, the user's client, one channel window and the stream's credit hold.
    let written = blasted.load(Ordering::Relaxed);
    assert!(
        written < 16 << 20,
        "the local server wrote {written} bytes for a visitor that reads none"
    );

    // Meanwhile another visitor is served at once, again and again.
    let mut quick = TcpStream::connect(public).await.unwrap();
    for i in 0..20 {
        let line = format!("line {i}\n");
        assert!(
            round_trip(&mut quick, &line, Duration::from_secs(5)).await,
            "stalled at {i}"
        );
    }
    // And the slow one still gets all of its bytes once it reads.
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < BLAST {
        let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
            .await
            .expect("the slow visitor's bytes keep coming")
            .unwrap();
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
    upload.abort();
}

#[actix_rt::test]
async fn strangers_are_bounded_and_dropped_when_they_never_start_a_tunnel() {
    let relay = relay_with(|c| {
        c.limits.max_pending_agents = 2;
        c.limits.handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let ssh = relay.handle.ssh_addr.unwrap();
    // Two silent connections fill the queue; the third is closed at once.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(ssh).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.handle.pending_agents() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = TcpStream::connect(ssh).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // The silent ones are dropped after the handshake timeout.
    for mut s in held {
        let mut banner = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut banner)).await;
        assert!(r.is_ok(), "still open after the handshake timeout");
        assert!(banner.starts_with(b"SSH-2.0-burrowd"), "{banner:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.handle.pending_agents() > 0 {
        assert!(
            Instant::now() < deadline,
            "dropped connections still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A client that authenticates but never asks for a tunnel is dropped too, saying why.
    let user = User::new("ssh-idle");
    let mut idle = {
        let mut cmd = user.command(ssh.port(), "-N");
        cmd.args(["-l", "tunnel", "127.0.0.1"]);
        Ssh::spawn(cmd)
    };
    let (code, err) = idle.exit().await;
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("no tunnel was started"), "{err}");
}

#[test]
fn burrowd_prints_the_ssh_listener_and_its_host_key() {
    let scratch = Scratch::new("burrowd-ssh");
    let state = scratch.path("state");
    let home = scratch.path("home");
    let mut seen = Vec::new();
    // Once with any key allowed, once without: the operator is told who can get in.
    for (any_key, users) in [
        (true, "any key (--ssh-allow-any-key)"),
        (false, "none yet: no accounts; register keys with"),
    ] {
        let mut args = vec![
            "--http-addr=127.0.0.1:0",
            "--https-addr=off",
            "--control-addr=127.0.0.1:0",
            "--ssh-addr=127.0.0.1:0",
            "--tcp-ports=0-0",
            "--state-dir",
            &state,
        ];
        if any_key {
            args.push("--ssh-allow-any-key");
        }
        let mut cmd = burrow_e2e::relay_bin::burrowd(home.clone(), &args);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut text = String::new();
        while let Some(Ok(l)) = lines.next() {
            text.push_str(&l);
            text.push('\n');
            if l.trim_start().starts_with("fingerprint") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(text.contains("  ssh         127.0.0.1:"), "{text}");
        assert!(text.contains(&format!("  ssh users   {users}")), "{text}");
        let key = text
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("ssh key"))
            .unwrap_or_else(|| panic!("{text}"))
            .trim()
            .to_string();
        seen.push(key);
    }
    // Made once, kept, owner-only, and what ssh-keygen says of it.
    assert_eq!(seen[0], seen[1]);
    let key = std::path::Path::new(&state).join("ssh_host_ed25519_key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&seen[0]), "{listed} vs {}", seen[0]);
}
