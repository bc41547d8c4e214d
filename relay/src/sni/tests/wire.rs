//! Well-formed hellos: what is read from them, however they are split into records.

use super::*;

#[test]
fn reads_the_sni() {
    let wire = Builder::sni("app.example.com").wire();
    assert_eq!(
        parse(&wire),
        complete(Some("app.example.com"), &[], wire.len())
    );
}

#[test]
fn lower_cases_the_sni() {
    let wire = Builder::sni("App.EXAMPLE.Com").wire();
    assert_eq!(sni_of(&wire), Ok(Some("app.example.com".into())));
}

#[test]
fn no_server_name_extension_means_no_sni() {
    let wire = Builder::default()
        .ext(SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3])
        .ext(EXT_ALPN, alpn_data(&[b"h2"]))
        .wire();
    assert_eq!(parse(&wire), complete(None, &["h2"], wire.len()));
}

#[test]
fn a_hello_without_an_extensions_block_is_accepted() {
    let b = Builder {
        extensions: None,
        version: 0x0301,
        ..Builder::default()
    };
    let wire = b.wire();
    assert_eq!(parse(&wire), complete(None, &[], wire.len()));
    assert_prefixes_incomplete(&wire);
}

#[test]
fn an_empty_extensions_block_is_accepted() {
    let wire = Builder::default().wire();
    assert_eq!(parse(&wire), complete(None, &[], wire.len()));
}

#[test]
fn sni_after_other_extensions_and_grease() {
    let wire = Builder::default()
        .ext(GREASE, vec![])
        .ext(SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3])
        .ext(KEY_SHARE, pq_key_share())
        .ext(EXT_ALPN, alpn_data(&[b"h2", b"http/1.1"]))
        .ext(EXT_SERVER_NAME, sni_data(b"Tunnel.Burrow.Test"))
        .ext(0xfafa, vec![0])
        .wire();
    assert_eq!(
        parse(&wire),
        complete(Some("tunnel.burrow.test"), &["h2", "http/1.1"], wire.len())
    );
}

#[test]
fn alpn_names_that_are_not_utf8_are_left_out() {
    let wire = Builder::default()
        .ext(EXT_ALPN, alpn_data(&[b"\xff\xfe", b"acme-tls/1"]))
        .wire();
    assert_eq!(parse(&wire), complete(None, &["acme-tls/1"], wire.len()));
}

#[test]
fn every_prefix_of_a_valid_hello_is_incomplete() {
    let shapes = [
        Builder::sni("a.example"),
        Builder::default(),
        Builder::sni("x.y.z").ext(EXT_ALPN, alpn_data(&[b"h2"])),
        Builder::default()
            .ext(KEY_SHARE, pq_key_share())
            .ext(EXT_SERVER_NAME, sni_data(b"pq.example")),
    ];
    for b in shapes {
        assert_prefixes_incomplete(&b.wire());
    }
}

#[test]
fn reassembles_a_hello_split_across_records() {
    let hs = Builder::sni("split.example")
        .ext(EXT_ALPN, alpn_data(&[b"h2"]))
        .handshake();
    // Splits inside the handshake header, inside the SNI and at every size.
    for size in [1usize, 2, 3, 5, 16, 64, 100] {
        let size = size.max(hs.len().div_ceil(MAX_RECORDS));
        let wire = frame(&hs, size);
        assert_eq!(
            parse(&wire),
            complete(Some("split.example"), &["h2"], wire.len()),
            "records of {size}"
        );
        assert_prefixes_incomplete(&wire);
    }
    for sizes in [&[1, 1, 1, 1][..], &[3, 1], &[2, 50], &[60, 1, 1]] {
        let wire = frame_sizes(&hs, sizes);
        assert_eq!(sni_of(&wire), Ok(Some("split.example".into())));
        assert_prefixes_incomplete(&wire);
    }
}

#[test]
fn a_post_quantum_hello_over_one_record() {
    let with_pad = |pad: usize| {
        Builder::default()
            .ext(KEY_SHARE, pq_key_share())
            .ext(PADDING, vec![0; pad])
            .ext(EXT_SERVER_NAME, sni_data(b"big.example"))
    };
    // As large as accepted, which no longer fits one 2^14-byte record.
    let b = with_pad(MAX_HELLO - with_pad(0).body().len());
    let hs = b.handshake();
    assert!(hs.len() > 1 << 14 && hs.len() <= HANDSHAKE_HEADER + MAX_HELLO);
    let wire = b.wire();
    assert_eq!(wire.len(), hs.len() + 2 * RECORD_HEADER);
    assert_eq!(sni_of(&wire), Ok(Some("big.example".into())));
    for k in [
        0,
        5,
        9,
        100,
        1 << 14,
        (1 << 14) + 5,
        (1 << 14) + 6,
        wire.len() - 1,
    ] {
        assert_eq!(parse(&wire[..k]), Ok(Hello::Incomplete), "prefix {k}");
    }
}

#[test]
fn len_stops_at_the_end_of_the_hello() {
    let hs = Builder::sni("a.example").handshake();
    // A record that goes on past the hello, and bytes after it, are not the hello.
    let mut tail = hs.clone();
    tail.extend_from_slice(&[0xee; 10]);
    let mut wire = record(CONTENT_HANDSHAKE, 0x0303, &tail);
    wire.extend_from_slice(b"more");
    assert_eq!(
        parse(&wire),
        complete(Some("a.example"), &[], RECORD_HEADER + hs.len())
    );
    // The verdict does not wait for the rest of that record.
    assert_eq!(parse(&wire[..RECORD_HEADER + hs.len()]), parse(&wire));
}

#[test]
fn size_limits() {
    let fill = |n: usize| {
        let base = Builder::sni("a.example").body().len() + 4;
        Builder::sni("a.example").ext(PADDING, vec![0; n - base])
    };
    let largest = fill(MAX_HELLO);
    assert_eq!(largest.body().len(), MAX_HELLO);
    assert_eq!(sni_of(&largest.wire()), Ok(Some("a.example".into())));
    let over = fill(MAX_HELLO + 1).wire();
    assert_eq!(parse(&over), Err(HelloError::TooLarge));
    // Known from the length alone: record header, type and the length's first bytes.
    assert_eq!(parse(&over[..9]), Err(HelloError::TooLarge));
    let huge = [22, 3, 1, 0x40, 0, 1, 0x01];
    assert_eq!(parse(&huge), Err(HelloError::TooLarge));
}

#[test]
fn a_verdict_always_comes_within_max_wire_bytes() {
    let b = Builder::sni("a.example").ext(
        PADDING,
        vec![0; MAX_HELLO - Builder::sni("a.example").body().len() - 4],
    );
    let hs = b.handshake();
    // The most records allowed, the largest hello: still complete, within bounds.
    let size = hs.len().div_ceil(MAX_RECORDS);
    let wire = frame(&hs, size);
    assert!(wire.len() <= MAX_WIRE);
    assert_eq!(sni_of(&wire), Ok(Some("a.example".into())));
    // One record more is refused.
    let split = frame_sizes(&hs, &[1; MAX_RECORDS]);
    assert_eq!(
        parse(&split),
        Err(HelloError::Malformed(
            "ClientHello split into more than 64 records"
        ))
    );
    assert_eq!(
        parse(&split[..MAX_RECORDS * (RECORD_HEADER + 1)]),
        Ok(Hello::Incomplete)
    );
    // A flood of tiny records is refused long before MAX_WIRE.
    let flood = frame(&hs, 1);
    assert_consistent(&flood[..MAX_WIRE], [0, 100, 384, 385, 1000]);
}

#[test]
fn plain_http_is_not_tls_from_the_first_byte() {
    let http = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
    for k in 1..=http.len() {
        assert_eq!(parse(&http[..k]), Err(HelloError::NotTls));
    }
    let msg = HelloError::NotTls.to_string();
    assert!(
        msg.contains("plain HTTP") && msg.contains("http://"),
        "{msg}"
    );
}

#[test]
fn other_records_and_protocols_are_not_tls() {
    // Alert, change_cipher_spec, application_data, an SSL 2.0 hello, SSH.
    let firsts: [&[u8]; 5] = [
        &[21, 3, 3],
        &[20, 3, 1],
        &[23, 3, 3],
        &[0x80, 0x2e, 1],
        b"SSH-2.0",
    ];
    for first in firsts {
        assert_eq!(parse(first), Err(HelloError::NotTls), "{first:02x?}");
    }
    assert_eq!(parse(&[]), Ok(Hello::Incomplete));
    assert_eq!(parse(&[22]), Ok(Hello::Incomplete));
}

#[test]
fn record_versions() {
    let hs = Builder::sni("v.example").handshake();
    for version in [0x0300, 0x0301, 0x0302, 0x0303, 0x0304] {
        let wire = record(CONTENT_HANDSHAKE, version, &hs);
        assert_eq!(sni_of(&wire), Ok(Some("v.example".into())), "{version:04x}");
    }
    for version in [0x0200u16, 0x0305, 0x03ff, 0x0403, 0xfeff] {
        let wire = record(CONTENT_HANDSHAKE, version, &hs);
        assert_eq!(parse(&wire), Err(HelloError::BadVersion), "{version:04x}");
        // Refused on the first bad byte.
        let at = if version >> 8 != 3 { 2 } else { 3 };
        assert_eq!(parse(&wire[..at]), Err(HelloError::BadVersion));
    }
}

#[test]
fn client_hello_versions() {
    for version in [0x0301, 0x0302, 0x0303, 0x0304] {
        let b = Builder {
            version,
            ..Builder::sni("v.example")
        };
        assert_eq!(sni_of(&b.wire()), Ok(Some("v.example".into())));
    }
    for version in [0x0300, 0x0002, 0x0305, 0x7f1c, 0x0403] {
        let b = Builder {
            version,
            ..Builder::sni("v.example")
        };
        let wire = b.wire();
        assert_eq!(parse(&wire), Err(HelloError::BadVersion), "{version:04x}");
        // Known as soon as the version has arrived.
        assert_eq!(parse(&wire[..11]), Err(HelloError::BadVersion));
        assert_eq!(parse(&wire[..10]), Ok(Hello::Incomplete));
    }
}

#[test]
fn other_handshake_messages_are_not_client_hellos() {
    let body = Builder::sni("a.example").body();
    for kind in [0u8, 2, 11, 16, 20] {
        let wire = frame(&handshake_msg(kind, &body), 1 << 14);
        assert_eq!(parse(&wire), Err(HelloError::NotClientHello));
        assert_eq!(parse(&wire[..6]), Err(HelloError::NotClientHello));
    }
}

#[test]
fn record_layer_errors() {
    let hs = Builder::sni("a.example").handshake();
    let empty = [22, 3, 1, 0, 0];
    assert_eq!(
        parse(&empty),
        Err(HelloError::Malformed("empty handshake record"))
    );
    let too_long = Err(HelloError::Malformed(
        "record longer than 2^14 + 2048 bytes",
    ));
    assert_eq!(parse(&[22, 3, 1, 0x48, 0x01]), too_long);
    assert_eq!(parse(&[22, 3, 1, 0x49]), too_long);
    assert_eq!(parse(&[22, 3, 1, 0x48]), Ok(Hello::Incomplete));
    // A handshake record followed by something else before the hello is complete.
    let mut wire = record(CONTENT_HANDSHAKE, 0x0301, &hs[..20]);
    wire.extend(record(23, 0x0303, &hs[20..]));
    assert_eq!(
        parse(&wire),
        Err(HelloError::Malformed(
            "a non-handshake record interrupts the ClientHello"
        ))
    );
    // An empty record in the middle.
    let mut wire = record(CONTENT_HANDSHAKE, 0x0301, &hs[..20]);
    wire.extend_from_slice(&[22, 3, 1, 0, 0]);
    assert_eq!(
        parse(&wire),
        Err(HelloError::Malformed("empty handshake record"))
    );
    // A bad version in a later record.
    let mut wire = record(CONTENT_HANDSHAKE, 0x0301, &hs[..20]);
    wire.extend(record(CONTENT_HANDSHAKE, 0x0205, &hs[20..]));
    assert_eq!(parse(&wire), Err(HelloError::BadVersion));
}
