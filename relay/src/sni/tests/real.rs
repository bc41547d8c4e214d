//! Hellos captured from real openssl and curl clients.

use super::*;

/// Runs a real TLS client against a listener and returns the first bytes it sends,
/// or `None` when the client program is not installed.
fn capture(program: &str, args: impl Fn(u16) -> Vec<String>) -> Option<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = match Command::new(program)
        .args(args(port))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("{program} is not installed; skipping");
            return None;
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    listener.set_nonblocking(true).unwrap();
    let mut conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{program} never connected: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while parse(&buf) == Ok(Hello::Incomplete) && Instant::now() < deadline {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading from {program}: {e}"),
        }
    }
    drop(conn);
    let _ = child.kill();
    let _ = child.wait();
    Some(buf)
}

fn openssl(extra: &'static [&'static str]) -> Option<Vec<u8>> {
    capture("openssl", move |port| {
        let mut args = vec![
            "s_client".to_string(),
            "-connect".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    })
}

/// Takes a captured hello through every check: its record framing, every prefix,
/// and the same handshake bytes re-split into many small records.
fn check_real(wire: &[u8]) -> Hello {
    let hello = parse(wire).expect("a real ClientHello parses");
    let Hello::Complete { len, .. } = &hello else {
        panic!("the capture ended before the hello was complete");
    };
    assert_eq!(*len, wire.len(), "nothing follows the hello");
    assert_prefixes_incomplete(wire);
    let mut handshake = Vec::new();
    let mut rest = wire;
    while rest.len() >= RECORD_HEADER {
        let n = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        handshake.extend_from_slice(&rest[RECORD_HEADER..RECORD_HEADER + n]);
        rest = &rest[RECORD_HEADER + n..];
    }
    for size in [1, 7, 100, 512] {
        let size = size.max(handshake.len().div_ceil(MAX_RECORDS));
        let reframed = frame(&handshake, size);
        let Ok(Hello::Complete { sni, alpn, len }) = parse(&reframed) else {
            panic!("re-split into records of {size}");
        };
        assert_eq!(len, reframed.len());
        assert_eq!(
            hello,
            Hello::Complete {
                sni,
                alpn,
                len: wire.len()
            }
        );
        assert_prefixes_incomplete(&reframed);
    }
    hello
}

#[test]
fn real_openssl_hello_with_sni() {
    let Some(wire) = openssl(&["-servername", "Example.COM", "-alpn", "h2,http/1.1"]) else {
        return;
    };
    let hello = Ok(check_real(&wire));
    assert_eq!(
        hello,
        complete(Some("example.com"), &["h2", "http/1.1"], wire.len())
    );
}

#[test]
fn real_openssl_tls12_hello_with_sni() {
    let Some(wire) = openssl(&["-servername", "Tls12.Example.COM", "-tls1_2"]) else {
        return;
    };
    let hello = Ok(check_real(&wire));
    assert_eq!(hello, complete(Some("tls12.example.com"), &[], wire.len()));
}

#[test]
fn real_openssl_hello_without_sni() {
    let Some(wire) = openssl(&["-noservername"]) else {
        return;
    };
    assert_eq!(Ok(check_real(&wire)), complete(None, &[], wire.len()));
}

#[test]
fn real_curl_hello() {
    let Some(wire) = capture("curl", |port| {
        vec![
            "-sk".into(),
            "--max-time".into(),
            "20".into(),
            "--resolve".into(),
            format!("Example.COM:{port}:127.0.0.1"),
            format!("https://Example.COM:{port}/"),
        ]
    }) else {
        return;
    };
    let Hello::Complete { sni, alpn, .. } = check_real(&wire) else {
        unreachable!()
    };
    assert_eq!(sni.as_deref(), Some("example.com"));
    assert!(alpn.iter().any(|p| p == "http/1.1"), "{alpn:?}");
}
