//! Dialing through real proxy servers: tinyproxy (HTTP CONNECT) and microsocks (SOCKS5).
//!
//! Both run as child processes on loopback ports of their own; the Debian packages
//! `tinyproxy` and `microsocks` must be installed.

use burrow::outbound::{dial, Proxy};
use burrow_e2e::{agent_bin, curl_command, free_port, upstream, Scratch, TestRelay};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A proxy child process, killed and its scratch directory removed when dropped.
struct ProxyProcess {
    child: Child,
    port: u16,
    dir: Scratch,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Daemons sometimes land in sbin, which is not on every user's PATH.
    let extra = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: install the Debian package `{package}` (apt-get install -y {package})")
        })
}

fn start(mut cmd: Command, name: &str, port: u16, dir: Scratch) -> ProxyProcess {
    let log = dir.0.join("output.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut p = ProxyProcess { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!(
                "{name} exited early ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return p;
        }
        if Instant::now() > deadline {
            panic!(
                "{name} is not listening on 127.0.0.1:{port} after 10s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tinyproxy(basic_auth: Option<(&str, &str)>) -> ProxyProcess {
    let bin = find_binary("tinyproxy", "tinyproxy");
    let dir = Scratch::new("tinyproxy");
    let port = free_port();
    // No ConnectPort lines: tinyproxy then allows CONNECT to any port.
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 16\nAllow 127.0.0.1\nLogLevel Info\n\
         PidFile \"{}\"\n",
        dir.0.join("tinyproxy.pid").display()
    );
    if let Some((user, pass)) = basic_auth {
        conf.push_str(&format!("BasicAuth {user} {pass}\n"));
    }
    let conf_path = dir.0.join("tinyproxy.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-d").arg("-c").arg(&conf_path);
    start(cmd, "tinyproxy", port, dir)
}

fn microsocks(auth: Option<(&str, &str)>) -> ProxyProcess {
    let bin = find_binary("microsocks", "microsocks");
    let dir = Scratch::new("microsocks");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((user, pass)) = auth {
        cmd.args(["-u", user, "-P", pass]);
    }
    start(cmd, "microsocks", port, dir)
}

/// A target that greets first, then echoes: the greeting proves nothing the target sent
/// right away was swallowed by the proxy handshake.
async fn echo_target() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if s.write_all(b"hello\n").await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn assert_echoes(proxy: Option<&Proxy>, target: &str) {
    let mut s = tokio::time::timeout(Duration::from_secs(10), dial(proxy, target))
        .await
        .expect("dial timed out")
        .unwrap_or_else(|e| panic!("dial {target} via {proxy:?}: {e}"));
    let mut greeting = [0u8; 6];
    s.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"hello\n");
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&payload).await.unwrap();
    };
    let mut back = vec![0u8; payload.len()];
    let recv = r.read_exact(&mut back);
    let (_, got) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(send, recv) })
            .await
            .expect("echo timed out");
    got.unwrap();
    assert!(back == payload, "echoed bytes differ");
}

async fn dial_err(proxy: &Proxy, target: &str) -> std::io::Error {
    tokio::time::timeout(Duration::from_secs(10), dial(Some(proxy), target))
        .await
        .expect("dial timed out")
        .expect_err("dial should fail")
}

fn http(p: &ProxyProcess, auth: Option<(&str, &str)>) -> Proxy {
    Proxy::Http {
        host: "127.0.0.1".into(),
        port: p.port,
        auth: auth.map(|(u, pw)| (u.into(), pw.into())),
    }
}

fn socks(p: &ProxyProcess, auth: Option<(&str, &str)>) -> Proxy {
    Proxy::Socks5 {
        host: "127.0.0.1".into(),
        port: p.port,
        auth: auth.map(|(u, pw)| (u.into(), pw.into())),
    }
}

#[tokio::test]
async fn direct_dial_echoes() {
    let target = echo_target().await;
    assert_echoes(None, &target).await;
}

#[tokio::test]
async fn http_connect_through_tinyproxy() {
    let p = tinyproxy(None);
    let target = echo_target().await;
    assert_echoes(Some(&http(&p, None)), &target).await;
    // By name, so the proxy resolves it.
    let port = target.rsplit_once(':').unwrap().1;
    assert_echoes(Some(&http(&p, None)), &format!("localhost:{port}")).await;
}

#[tokio::test]
async fn http_connect_with_basic_auth() {
    let p = tinyproxy(Some(("burrow", "s3cret")));
    let target = echo_target().await;
    let url = format!("http://burrow:s3cr%65t@127.0.0.1:{}", p.port);
    let proxy = Proxy::parse_http(&url).unwrap();
    assert_echoes(Some(&proxy), &target).await;

    let e = dial_err(&http(&p, Some(("burrow", "wrong"))), &target).await;
    // tinyproxy answers 401 rather than 407 to CONNECT; either is an authentication refusal.
    let want = format!("proxy 127.0.0.1:{} refused CONNECT {target}: 40", p.port);
    assert!(e.to_string().starts_with(&want), "{e}");
    assert!(
        e.to_string().contains("rejected the user and password"),
        "{e}"
    );
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);

    let e = dial_err(&http(&p, None), &target).await;
    assert!(e.to_string().starts_with(&want), "{e}");
    assert!(e.to_string().contains("wants a user and password"), "{e}");
}

#[tokio::test]
async fn http_connect_to_a_dead_target_is_refused_by_the_proxy() {
    let p = tinyproxy(None);
    let target = format!("127.0.0.1:{}", free_port());
    let e = dial_err(&http(&p, None), &target).await;
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "proxy 127.0.0.1:{} refused CONNECT {target}: ",
            p.port
        )),
        "{msg}"
    );
}

#[tokio::test]
async fn socks5_through_microsocks() {
    let p = microsocks(None);
    let target = echo_target().await;
    assert_echoes(Some(&socks(&p, None)), &target).await;
    let port = target.rsplit_once(':').unwrap().1;
    assert_echoes(Some(&socks(&p, None)), &format!("localhost:{port}")).await;
}

#[tokio::test]
async fn socks5_with_username_password() {
    let p = microsocks(Some(("burrow", "s3cret")));
    let target = echo_target().await;
    let url = format!("socks5://burrow:s3cret@127.0.0.1:{}", p.port);
    let proxy = Proxy::parse_socks5(&url).unwrap();
    assert_echoes(Some(&proxy), &target).await;

    let e = dial_err(&socks(&p, Some(("burrow", "wrong"))), &target).await;
    assert_eq!(
        e.to_string(),
        format!(
            "SOCKS5 proxy 127.0.0.1:{} rejected the user and password in the proxy URL",
            p.port
        )
    );
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);

    let e = dial_err(&socks(&p, None), &target).await;
    assert!(e.to_string().contains("requires authentication"), "{e}");
}

#[tokio::test]
async fn socks5_to_a_dead_target_says_so() {
    let p = microsocks(None);
    let target = format!("127.0.0.1:{}", free_port());
    let e = dial_err(&socks(&p, None), &target).await;
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "SOCKS5 proxy 127.0.0.1:{} could not connect to {target}: ",
            p.port
        )),
        "{msg}"
    );
}

#[test]
fn scratch_dirs_are_removed() {
    let p = microsocks(None);
    let dir: PathBuf = p.dir.0.clone();
    drop(p);
    assert!(!Path::new(&dir).exists());
}

/// Runs the agent binary against an in-process relay with `proxy_line` in its config;
/// returns the agent's first stdout lines once it forwards, or its warnings if it cannot.
async fn agent_through(proxy_line: &str, expect_up: bool) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let dir = Scratch::new("agent");
    let relay = TestRelay::start_with(|cfg| cfg.state_dir = Some(dir.0.join("relay"))).await;
    let up_port = upstream::http_server("200 OK", "proxied");
    let conf = dir.0.join("burrow.yml");
    std::fs::write(
        &conf,
        format!(
            "server_addr: 127.0.0.1:{}\nroot_cas: {}\nweb_addr: false\n{proxy_line}\n",
            relay.handle.control_addr.port(),
            dir.0.join("relay/ca.pem").display()
        ),
    )
    .unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let home = Scratch::new("home");
        let mut child = agent_bin::burrow(
            &home,
            &[
                "http",
                &up_port.to_string(),
                "-bind-tls=false",
                "-log",
                "stdout",
                "-config",
                conf.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let done = if expect_up {
                l.contains("msg=\"started tunnel\"")
            } else {
                l.contains("lvl=warn")
            };
            seen.push(l);
            if done {
                break;
            }
        }
        if expect_up {
            let url = seen
                .last()
                .unwrap()
                .split(" url=")
                .nth(1)
                .unwrap()
                .to_string();
            let out = curl_command()
                .args(["--max-time", "10", &url])
                .output()
                .unwrap();
            seen.push(format!("body={}", String::from_utf8_lossy(&out.stdout)));
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    })
    .await
    .unwrap();
    drop(dir);
    lines
}

#[actix_rt::test]
async fn the_agent_reaches_its_relay_through_an_http_proxy() {
    let proxy = tinyproxy(Some(("agent", "pw")));
    let lines = agent_through(
        &format!("http_proxy: http://agent:pw@127.0.0.1:{}", proxy.port),
        true,
    )
    .await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("body=proxied"),
        "{lines:#?}"
    );
    let log = std::fs::read_to_string(proxy.dir.0.join("output.log")).unwrap_or_default();
    assert!(log.contains("CONNECT"), "the proxy saw no CONNECT:\n{log}");
    let lines = agent_through(
        &format!("http_proxy: http://agent:wrong@127.0.0.1:{}", proxy.port),
        false,
    )
    .await;
    let warn = lines.last().unwrap();
    assert!(
        warn.contains("failed to reconnect session") && warn.contains("refused CONNECT"),
        "{lines:#?}"
    );
}

#[actix_rt::test]
async fn the_agent_reaches_its_relay_through_a_socks5_proxy() {
    let proxy = microsocks(Some(("agent", "pw")));
    let lines = agent_through(
        &format!("socks5_proxy: socks5://agent:pw@127.0.0.1:{}", proxy.port),
        true,
    )
    .await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("body=proxied"),
        "{lines:#?}"
    );
    let lines = agent_through(
        &format!("socks5_proxy: socks5://agent:nope@127.0.0.1:{}", proxy.port),
        false,
    )
    .await;
    let warn = lines.last().unwrap();
    assert!(
        warn.contains("failed to reconnect session")
            && warn.contains("rejected the user and password"),
        "{lines:#?}"
    );
}
