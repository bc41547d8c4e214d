//! Tunnel options end to end with real clients: host_header modes, https upstreams, the
//! file server, custom and wildcard hostnames, and tls tunnels (SNI passthrough, agent-side
//! termination, mutual TLS), plus the errors for bad options.

use burrow_e2e::agent_bin::{agent, call, json};
use burrow_e2e::{curl_command, free_port};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Creates a tunnel through the API; Ok(public URLs) or Err((status, body)).
fn create(api: &str, body: &str) -> Result<Vec<String>, (u16, String)> {
    let (code, text) = call("POST", &format!("{api}/api/tunnels"), Some(body), &[]);
    if code != 201 {
        return Err((code, text));
    }
    let name = json(&text)["name"].as_str().unwrap().to_string();
    let (_, list) = call("GET", &format!("{api}/api/tunnels"), None, &[]);
    Ok(json(&list)["tunnels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            let n = t["name"].as_str().unwrap();
            n == name || n == format!("{name} (http)")
        })
        .map(|t| t["public_url"].as_str().unwrap().to_string())
        .collect())
}

/// Host and port of a public URL.
fn authority(url: &str) -> (String, u16) {
    let rest = url.split_once("://").unwrap().1;
    let (h, p) = rest.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// curl with `host` resolved to loopback; (status, body, stderr).
fn curl_to(host: &str, port: u16, url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = curl_command()
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        body.to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// curl with `host` resolved to loopback, expected to fail; (exit code, stderr).
fn curl_fails(host: &str, port: u16, url: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = curl_command()
        .args(["--max-time", "10"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An upstream that answers each request with its request line and Host header.
fn host_echo() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let (mut first, mut host, mut line) = (String::new(), String::new(), String::new());
                r.read_line(&mut first).ok();
                while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if line.to_ascii_lowercase().starts_with("host:") {
                        host = line[5..].trim().to_string();
                    }
                    line.clear();
                }
                let body = format!("{} host={host}", first.trim());
                let _ = (&s).write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    port
}

/// Runs openssl, panicking with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.pem`/`.key`) and a certificate for `cn` signed by it (`NAME.pem`/`.key`),
/// usable by servers and clients.
fn issue(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = format!("{name}-ca");
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ],
            &["-subj", &format!("/CN={name} test CA"), "-days", "2"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
            &["-subj", &format!("/CN={cn}")],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName=DNS:{cn}\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    (
        dir.join(format!("{ca}.pem")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// `openssl s_server -www` on a free port with `cert`/`key`: a real TLS upstream.
struct SServer(std::process::Child, u16);

impl SServer {
    fn start(cert: &Path, key: &Path) -> Self {
        let port = free_port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-www"])
            .args([
                "-cert",
                cert.to_str().unwrap(),
                "-key",
                key.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.contains("ACCEPT"))),
            "s_server did not start"
        );
        std::thread::spawn(move || lines.for_each(drop));
        SServer(child, port)
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_client` to the relay's TLS port; its whole output.
fn s_client(port: u16, servername: Option<&str>, extra: &[&str], send: &str) -> String {
    let mut c = Command::new("openssl");
    c.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]);
    match servername {
        Some(n) => c.args(["-servername", n]),
        None => c.arg("-noservername"),
    };
    let mut child = c
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let send = send.to_string();
    std::thread::spawn(move || {
        // Give the handshake time before sending, then keep stdin open briefly so the
        // answer can arrive before s_client sees EOF.
        std::thread::sleep(Duration::from_millis(500));
        let _ = stdin.write_all(send.as_bytes());
        std::thread::sleep(Duration::from_millis(1500));
    });
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn host_header_modes_reach_the_upstream() {
    let (_run, api, _dir) = agent("hosthdr", "");
    let port = host_echo();
    for (mode, want) in [
        (None, None),
        (Some("preserve"), None),
        (Some("rewrite"), Some(format!("localhost:{port}"))),
        (Some("site.dev"), Some("site.dev".to_string())),
    ] {
        let field = mode.map_or(String::new(), |m| format!(r#","host_header":"{m}""#));
        let urls = create(
            &api,
            &format!(
                r#"{{"name":"h{}","addr":"{port}","proto":"http","bind_tls":false{field}}}"#,
                mode.unwrap_or("none")
            ),
        )
        .unwrap();
        let (host, p) = authority(&urls[0]);
        let (code, body, _) = curl_to(&host, p, &format!("{}/x?y=1", urls[0]), &[]);
        assert_eq!(code, 200);
        let expected = want.unwrap_or(format!("{host}:{p}"));
        assert_eq!(
            body,
            format!("GET /x?y=1 HTTP/1.1 host={expected}"),
            "{mode:?}"
        );
    }
    let (code, body) = create(
        &api,
        &format!(r#"{{"name":"bad","addr":"{port}","proto":"http","host_header":"a b"}}"#),
    )
    .unwrap_err();
    assert!(code == 400 && body.contains("host_header"), "{code} {body}");
}

#[test]
fn https_upstream_with_a_self_signed_certificate() {
    let (_run, api, dir) = agent("httpsup", "");
    let (_, cert, key) = issue(&dir.0, "up", "localhost");
    let server = SServer::start(&cert, &key);
    let urls = create(
        &api,
        &format!(
            r#"{{"name":"secure","addr":"https://localhost:{}","proto":"http","bind_tls":false,"host_header":"rewrite"}}"#,
            server.1
        ),
    )
    .unwrap();
    let (host, p) = authority(&urls[0]);
    let (code, body, err) = curl_to(&host, p, &format!("{}/", urls[0]), &[]);
    assert_eq!(code, 200, "{err}");
    assert!(
        body.contains("s_server -accept"),
        "the TLS upstream answered: {body}"
    );
}

#[test]
fn file_server_lists_downloads_ranges_and_enforces_auth() {
    let (_run, api, dir) = agent("files", "");
    let root = dir.0.join("site");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
    std::fs::write(root.join("data.bin"), &data).unwrap();
    std::fs::write(root.join("<b>&.txt"), "hi").unwrap();
    let urls = create(
        &api,
        &format!(
            r#"{{"name":"files","addr":"file://{}","proto":"http","auth":"ann:s3cret"}}"#,
            root.display()
        ),
    )
    .unwrap();
    let http = urls
        .iter()
        .find(|u| u.starts_with("http:"))
        .unwrap()
        .clone();
    let (host, p) = authority(&http);
    let auth = ["-u", "ann:s3cret"];
    let (code, _, _) = curl_to(&host, p, &format!("{http}/"), &[]);
    assert_eq!(code, 401, "auth guards the file server");
    let (code, listing, _) = curl_to(&host, p, &format!("{http}/"), &auth);
    assert_eq!(code, 200);
    assert!(
        listing.contains("data.bin") && listing.contains("sub/"),
        "{listing}"
    );
    assert!(
        listing.contains("&lt;b&gt;&amp;.txt") && !listing.contains("<b>&"),
        "names are escaped"
    );
    let out = dir.0.join("out.bin");
    let (code, _, _) = curl_to(
        &host,
        p,
        &format!("{http}/data.bin"),
        &[&auth[..], &["-o", out.to_str().unwrap()]].concat(),
    );
    assert_eq!(code, 200);
    assert_eq!(std::fs::read(&out).unwrap(), data, "the download is intact");
    let (code, part, _) = curl_to(
        &host,
        p,
        &format!("{http}/data.bin"),
        &[&auth[..], &["-r", "100-109"]].concat(),
    );
    assert_eq!(code, 206);
    assert_eq!(part.as_bytes(), &data[100..110]);
    let (code, _, _) = curl_to(&host, p, &format!("{http}/missing.txt"), &auth);
    assert_eq!(code, 404);
    let (code, head, _) = curl_to(
        &host,
        p,
        &format!("{http}/data.bin"),
        &[&auth[..], &["-I"]].concat(),
    );
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 200000"),
        "{head}"
    );

    let (code, body) = create(
        &api,
        r#"{"name":"rel","addr":"file://relative/dir","proto":"http"}"#,
    )
    .unwrap_err();
    assert!(code == 400 && body.contains("absolute"), "{body}");
}

#[test]
fn custom_and_wildcard_hostnames_route_most_specific_first() {
    let (_run, api, _dir) = agent("hostnames", "");
    let mut ports = Vec::new();
    for (name, hostname) in [
        ("exact", "dev.example.test"),
        ("wide", "*.example.test"),
        ("narrow", "*.b.example.test"),
    ] {
        let port = host_echo();
        ports.push(port);
        let urls = create(
            &api,
            &format!(
                r#"{{"name":"{name}","addr":"{port}","proto":"http","bind_tls":false,"hostname":"{hostname}","host_header":"{name}"}}"#
            ),
        )
        .unwrap();
        assert!(
            urls[0].starts_with(&format!("http://{hostname}:")),
            "{urls:?}"
        );
    }
    let p = authority(
        &create(
            &api,
            r#"{"name":"probe","addr":"1","proto":"http","bind_tls":false,"hostname":"probe.other.test"}"#,
        )
        .unwrap()[0],
    )
    .1;
    for (host, tunnel) in [
        ("dev.example.test", "exact"),
        ("x.example.test", "wide"),
        ("a.x.example.test", "wide"),
        ("x.b.example.test", "narrow"),
        ("deep.x.b.example.test", "narrow"),
    ] {
        let (code, body, _) = curl_to(host, p, &format!("http://{host}:{p}/"), &[]);
        assert_eq!(code, 200, "{host}");
        assert!(body.ends_with(&format!("host={tunnel}")), "{host} → {body}");
    }
    let (code, _, _) = curl_to("example.test", p, &format!("http://example.test:{p}/"), &[]);
    assert_eq!(
        code, 404,
        "a wildcard covers subdomains, not the bare domain"
    );

    for (hostname, why) in [
        ("dev.example.test", "already in use"),
        ("*.*.example.test", "wildcard"),
        ("bad_host.test", "invalid"),
        ("a..b", "invalid"),
    ] {
        let (code, body) = create(
            &api,
            &format!(r#"{{"name":"x","addr":"1","proto":"http","hostname":"{hostname}"}}"#),
        )
        .unwrap_err();
        assert!(
            code >= 400 && body.contains(why),
            "{hostname}: {code} {body}"
        );
    }
}

#[test]
fn tls_tunnels_pass_through_terminate_and_check_client_certificates() {
    let (run, api, dir) = agent("tls", "");
    let (_, up_cert, up_key) = issue(&dir.0, "up", "pass.example.test");
    let server = SServer::start(&up_cert, &up_key);
    let urls = create(
        &api,
        &format!(
            r#"{{"name":"pass","addr":"{}","proto":"tls","hostname":"pass.example.test"}}"#,
            server.1
        ),
    )
    .unwrap();
    assert!(urls[0].starts_with("tls://pass.example.test:"), "{urls:?}");
    let (_, tls_port) = authority(&urls[0]);

    // Passthrough: the upstream's own certificate reaches the client.
    let out = s_client(
        tls_port,
        Some("pass.example.test"),
        &[],
        "GET / HTTP/1.0\r\n\r\n",
    );
    assert!(out.contains("CN = pass.example.test"), "{out}");
    assert!(
        out.contains("s_server -accept"),
        "the upstream answered: {out}"
    );

    // No SNI: a TLS alert, and the relay says why.
    let out = s_client(tls_port, None, &[], "");
    assert!(out.contains("unrecognized name"), "{out}");
    run.line_matching(|l| l.contains("without SNI"));

    // A malformed ClientHello is refused with an alert, and the port keeps serving.
    let mut s = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
        .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert_eq!(reply.first(), Some(&0x15), "an alert record: {reply:?}");

    // Agent-side termination: the visitor sees the agent's certificate, the local service
    // gets plaintext.
    let (ca, cert, key) = issue(&dir.0, "edge", "edge.example.test");
    let plain = host_echo();
    let urls = create(
        &api,
        &format!(
            r#"{{"name":"edge","addr":"{plain}","proto":"tls","hostname":"edge.example.test","crt":"{}","key":"{}"}}"#,
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let (host, p) = authority(&urls[0]);
    let url = format!("https://{host}:{p}/hello");
    let (code, body, err) = curl_to(&host, p, &url, &["--cacert", ca.to_str().unwrap()]);
    assert_eq!(code, 200, "{err}");
    assert!(body.starts_with("GET /hello HTTP/1.1"), "{body}");

    // Mutual TLS: only clients with a certificate from client_cas get through.
    let (client_ca, client_cert, client_key) = issue(&dir.0, "client", "visitor");
    let urls = create(
        &api,
        &format!(
            r#"{{"name":"mtls","addr":"{plain}","proto":"tls","hostname":"mtls.example.test","crt":"{}","key":"{}","client_cas":"{}"}}"#,
            dir.0.join("mtls.pem").display(),
            dir.0.join("mtls.key").display(),
            client_ca.display()
        ),
    );
    assert!(
        urls.as_ref().is_err_and(|(_, b)| b.contains("mtls.pem")),
        "a missing certificate file is named: {urls:?}"
    );
    let (mca, mcert, mkey) = issue(&dir.0, "mtls", "mtls.example.test");
    let urls = create(
        &api,
        &format!(
            r#"{{"name":"mtls","addr":"{plain}","proto":"tls","hostname":"mtls.example.test","crt":"{}","key":"{}","client_cas":"{}"}}"#,
            mcert.display(),
            mkey.display(),
            client_ca.display()
        ),
    )
    .unwrap();
    let (host, p) = authority(&urls[0]);
    let url = format!("https://{host}:{p}/m");
    let trust = ["--cacert", mca.to_str().unwrap()];
    let (code, body, err) = curl_to(
        &host,
        p,
        &url,
        &[
            &trust[..],
            &[
                "--cert",
                client_cert.to_str().unwrap(),
                "--key",
                client_key.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 200, "with a client certificate: {err}");
    assert!(body.starts_with("GET /m HTTP/1.1"));
    // Refusals are the TLS handshake failing with the agent's alert (curl: 35 "SSL connect
    // error", or 56 "receive failure" when TLS 1.3 delivers the alert after the client's
    // Finished), not a timeout or an HTTP error.
    let (code, err) = curl_fails(&host, p, &url, &trust);
    assert!(
        matches!(code, Some(35 | 56)) && err.contains("alert certificate required"),
        "without a client certificate the handshake fails: {code:?} {err}"
    );
    let (_, stranger, stranger_key) = issue(&dir.0, "stranger", "visitor");
    let (code, err) = curl_fails(
        &host,
        p,
        &url,
        &[
            &trust[..],
            // Over TLS 1.2 the agent checks the certificate before its own Finished, so
            // curl always sees the alert; over TLS 1.3 it may see the close first (52).
            &[
                "--tls-max",
                "1.2",
                "--cert",
                stranger.to_str().unwrap(),
                "--key",
                stranger_key.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(
        matches!(code, Some(35 | 56)) && err.contains("alert unknown ca"),
        "a certificate from another CA is refused: {code:?} {err}"
    );
    // openssl names the alert too.
    let out = s_client(
        p,
        Some(&host),
        &["-CAfile", mca.to_str().unwrap()],
        "GET /m HTTP/1.0\r\n\r\n",
    );
    assert!(out.contains("alert certificate required"), "{out}");
    assert!(
        !out.contains("GET /m HTTP/1.1"),
        "no plaintext got through: {out}"
    );
}
