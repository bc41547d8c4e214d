//! Broken hellos: each refused with the error that names what is wrong.

use super::*;

fn malformed(wire: &[u8], what: &'static str) {
    assert_eq!(parse(wire), Err(HelloError::Malformed(what)));
    assert_consistent(wire, 0..=wire.len());
}

#[test]
fn malformed_fixed_fields() {
    let b = Builder::sni("a.example");
    malformed(
        &Builder {
            session_id: vec![0; 33],
            ..b.clone()
        }
        .wire(),
        "session_id longer than 32 bytes",
    );
    for suites in [vec![], vec![0x13], vec![0x13, 0x01, 0x13]] {
        malformed(
            &Builder {
                suites,
                ..b.clone()
            }
            .wire(),
            "cipher_suites length is zero or odd",
        );
    }
    malformed(
        &Builder {
            compression: vec![],
            ..b.clone()
        }
        .wire(),
        "compression_methods is empty",
    );
    // Declared lengths that leave the body too short for what follows.
    let body = b.body();
    for (cut, what) in [
        (1, "ClientHello ends before its version"),
        (20, "ClientHello ends inside its random"),
        (34, "ClientHello ends before its session_id"),
        (40, "ClientHello ends inside its session_id"),
        (68, "ClientHello ends before its cipher_suites"),
        (71, "ClientHello ends inside its cipher_suites"),
        (75, "ClientHello ends before its compression_methods"),
        (76, "ClientHello ends inside its compression_methods"),
        (78, "ClientHello ends inside its extensions length"),
    ] {
        let hs = handshake_msg(HANDSHAKE_CLIENT_HELLO, &body[..cut]);
        malformed(&frame(&hs, 1 << 14), what);
    }
    // Ending right after compression_methods is a hello without extensions.
    let bare = frame(&handshake_msg(HANDSHAKE_CLIENT_HELLO, &body[..77]), 1 << 14);
    assert_eq!(parse(&bare), complete(None, &[], bare.len()));
}

#[test]
fn malformed_extensions_block() {
    let body = Builder::sni("a.example").body();
    let block_at = Builder::default().body().len() - 2;
    let with_block_len = |delta: i32| {
        let mut b = body.clone();
        let len = u16::from_be_bytes([b[block_at], b[block_at + 1]]) as i32 + delta;
        b[block_at..block_at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        frame(&handshake_msg(HANDSHAKE_CLIENT_HELLO, &b), 1 << 14)
    };
    let what = "extensions length disagrees with the ClientHello length";
    malformed(&with_block_len(1), what);
    malformed(&with_block_len(-1), what);
    // Trailing bytes after the block.
    let mut b = body.clone();
    b.push(0);
    malformed(&frame(&handshake_msg(1, &b), 1 << 14), what);
    let bare = Builder {
        extensions: None,
        ..Builder::default()
    };
    // An extension that claims more than the block holds.
    let mut b = bare.body();
    b.extend_from_slice(&[0, 6, 0x12, 0x34, 0, 9, 1, 2]);
    malformed(
        &frame(&handshake_msg(1, &b), 1 << 14),
        "extension overruns the extensions block",
    );
    // A block ending inside an extension header.
    let mut b = bare.body();
    b.extend_from_slice(&[0, 3, 0x12, 0x34, 0]);
    malformed(
        &frame(&handshake_msg(1, &b), 1 << 14),
        "truncated extension header",
    );
}

#[test]
fn malformed_server_name_extension() {
    let cases: [(Vec<u8>, &str); 7] = [
        (vec![], "server_name extension is empty"),
        (vec![0, 0], "server_name list is empty"),
        (
            vec![0, 4, 0, 0, 1, b'a', 0],
            "server_name list length disagrees with the extension length",
        ),
        (
            vec![0, 3, 0, 0, 5],
            "host_name overruns the server_name list",
        ),
        (vec![0, 2, 0, 0], "truncated server_name entry"),
        (
            {
                let mut twice = vec![0, 8];
                twice.extend_from_slice(&[0, 0, 1, b'a', 0, 0, 1, b'b']);
                twice
            },
            "more than one host_name in server_name",
        ),
        (
            vec![0, 4, 1, 0, 1, b'a'],
            "server_name extension holds no host_name",
        ),
    ];
    for (data, what) in cases {
        malformed(&Builder::default().ext(EXT_SERVER_NAME, data).wire(), what);
    }
    malformed(
        &Builder::sni("a.example")
            .ext(EXT_SERVER_NAME, sni_data(b"b.example"))
            .wire(),
        "server_name extension sent twice",
    );
}

#[test]
fn unknown_name_types_after_the_host_name_are_ignored() {
    let mut entries = vec![0, 0, 9];
    entries.extend_from_slice(b"a.example");
    entries.extend_from_slice(&[7, 0xde, 0xad]);
    let wire = Builder::default()
        .ext(EXT_SERVER_NAME, list16(&entries))
        .wire();
    assert_eq!(sni_of(&wire), Ok(Some("a.example".into())));
}

#[test]
fn malformed_alpn_extension() {
    let cases: [(Vec<u8>, &str); 5] = [
        (vec![], "ALPN extension is empty"),
        (vec![0, 0], "ALPN protocol list is empty"),
        (
            vec![0, 3, 2, b'h', b'2', 0],
            "ALPN list length disagrees with the extension length",
        ),
        (vec![0, 3, 0, b'h', b'2'], "empty ALPN protocol name"),
        (
            vec![0, 3, 3, b'h', b'2'],
            "ALPN protocol name overruns the list",
        ),
    ];
    for (data, what) in cases {
        malformed(&Builder::default().ext(EXT_ALPN, data).wire(), what);
    }
    malformed(
        &Builder::default()
            .ext(EXT_ALPN, alpn_data(&[b"h2"]))
            .ext(EXT_ALPN, alpn_data(&[b"h2"]))
            .wire(),
        "ALPN extension sent twice",
    );
}

#[test]
fn server_name_rules() {
    let label63 = "a".repeat(63);
    let name253 = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
    assert_eq!(name253.len(), 253);
    let ok: &[(&str, &str)] = &[
        ("example.com", "example.com"),
        ("EXAMPLE.com.", "example.com"),
        ("localhost", "localhost"),
        ("my_app.tunnel.example", "my_app.tunnel.example"),
        ("_acme.x-y.example", "_acme.x-y.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("123.example", "123.example"),
        ("a.b1", "a.b1"),
        ("0xg.example.0xz", "0xg.example.0xz"),
        (&label63, &label63),
        (&name253, &name253),
    ];
    for (raw, want) in ok {
        let wire = Builder::sni(raw).wire();
        assert_eq!(sni_of(&wire), Ok(Some(want.to_string())), "{raw}");
    }
    let label64 = "a".repeat(64);
    let name254 = format!("{name253}c");
    let bad: &[&str] = &[
        "",
        ".",
        "example..com",
        "example.com..",
        ".example.com",
        "-a.example",
        "a-.example",
        "a b.example",
        "a*.example",
        "*.example",
        "exa\u{e9}mple.com",
        "a.example\0",
        "host:443",
        "[::1]",
        "1.2.3",
        "a.123",
        "a.0x1f",
        "127.0.0.1.",
        &label64,
        &name254,
    ];
    for raw in bad {
        let wire = Builder::sni(raw).wire();
        assert_eq!(
            parse(&wire),
            Err(HelloError::BadServerName(raw.to_string())),
            "{raw:?}"
        );
    }
}

#[test]
fn ip_literals_count_as_no_sni() {
    for raw in [
        "127.0.0.1",
        "192.168.10.20",
        "::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
    ] {
        let wire = Builder::sni(raw).wire();
        assert_eq!(sni_of(&wire), Ok(None), "{raw}");
    }
}

#[test]
fn bad_server_names_are_shown_bounded_and_escaped() {
    let long = "a".repeat(1000);
    let err = parse(&Builder::sni(&long).wire()).unwrap_err();
    assert_eq!(err, HelloError::BadServerName("a".repeat(MAX_SHOWN_NAME)));
    let raw = b"evil\nlog line\xff";
    let err = parse(
        &Builder::default()
            .ext(EXT_SERVER_NAME, sni_data(raw))
            .wire(),
    );
    let msg = err.unwrap_err().to_string();
    assert!(!msg.contains('\n') && msg.contains("\\n"), "{msg}");
}

#[test]
fn a_bad_sni_is_refused_before_the_rest_arrives() {
    let wire = Builder::sni("bad..name")
        .ext(KEY_SHARE, pq_key_share())
        .wire();
    let sni_end = Builder::sni("bad..name").wire().len();
    assert_eq!(
        parse(&wire[..sni_end]),
        Err(HelloError::BadServerName("bad..name".into()))
    );
    assert_eq!(parse(&wire[..sni_end - 1]), Ok(Hello::Incomplete));
}

#[test]
fn error_messages_name_the_problem() {
    let cases = [
        (HelloError::NotTls, "not TLS"),
        (HelloError::BadVersion, "SSL 3.0"),
        (HelloError::NotClientHello, "not a ClientHello"),
        (HelloError::TooLarge, "16384"),
        (
            HelloError::Malformed("cipher_suites length is zero or odd"),
            "cipher_suites",
        ),
        (HelloError::BadServerName("a..b".into()), "\"a..b\""),
    ];
    for (e, part) in cases {
        let msg = e.to_string();
        assert!(msg.contains(part), "{msg}");
        let _: &dyn std::error::Error = &e;
    }
}
