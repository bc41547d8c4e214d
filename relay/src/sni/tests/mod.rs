//! The ClientHello reader against hellos built field by field, random and mutated bytes,
//! and the hellos of real clients.

use super::limits::*;
use super::*;
use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY_SHARE: u16 = 51;
const SUPPORTED_VERSIONS: u16 = 43;
const PADDING: u16 = 21;
const GREASE: u16 = 0x0a0a;
const X25519_MLKEM768: u16 = 0x11ec;
const X25519: u16 = 0x001d;

/// A ClientHello assembled field by field, so each test can break exactly one.
#[derive(Clone)]
struct Builder {
    version: u16,
    session_id: Vec<u8>,
    suites: Vec<u8>,
    compression: Vec<u8>,
    /// `None` leaves the extensions block out entirely.
    extensions: Option<Vec<(u16, Vec<u8>)>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            version: 0x0303,
            session_id: vec![7; 32],
            suites: vec![0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f],
            compression: vec![0],
            extensions: Some(Vec::new()),
        }
    }
}

impl Builder {
    fn sni(name: &str) -> Self {
        Builder::default().ext(EXT_SERVER_NAME, sni_data(name.as_bytes()))
    }

    fn ext(mut self, kind: u16, data: Vec<u8>) -> Self {
        self.extensions
            .get_or_insert_with(Vec::new)
            .push((kind, data));
        self
    }

    fn body(&self) -> Vec<u8> {
        let mut b = self.version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x42; 32]);
        b.push(self.session_id.len() as u8);
        b.extend_from_slice(&self.session_id);
        b.extend_from_slice(&(self.suites.len() as u16).to_be_bytes());
        b.extend_from_slice(&self.suites);
        b.push(self.compression.len() as u8);
        b.extend_from_slice(&self.compression);
        if let Some(exts) = &self.extensions {
            let mut block = Vec::new();
            for (kind, data) in exts {
                block.extend_from_slice(&kind.to_be_bytes());
                block.extend_from_slice(&(data.len() as u16).to_be_bytes());
                block.extend_from_slice(data);
            }
            b.extend_from_slice(&(block.len() as u16).to_be_bytes());
            b.extend_from_slice(&block);
        }
        b
    }

    fn handshake(&self) -> Vec<u8> {
        handshake_msg(HANDSHAKE_CLIENT_HELLO, &self.body())
    }

    fn wire(&self) -> Vec<u8> {
        frame(&self.handshake(), 1 << 14)
    }
}

fn handshake_msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = (body.len() as u32).to_be_bytes();
    let mut m = vec![kind, len[1], len[2], len[3]];
    m.extend_from_slice(body);
    m
}

fn record(kind: u8, version: u16, fragment: &[u8]) -> Vec<u8> {
    let mut r = vec![kind];
    r.extend_from_slice(&version.to_be_bytes());
    r.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
    r.extend_from_slice(fragment);
    r
}

/// Splits a handshake stream into records of at most `size` bytes.
fn frame(handshake: &[u8], size: usize) -> Vec<u8> {
    handshake
        .chunks(size)
        .flat_map(|c| record(CONTENT_HANDSHAKE, 0x0301, c))
        .collect()
}

/// Splits a handshake stream into records of the given sizes, the last taking the
/// rest.
fn frame_sizes(handshake: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = handshake;
    for &s in sizes {
        let (a, b) = rest.split_at(s.min(rest.len()));
        out.extend(record(CONTENT_HANDSHAKE, 0x0301, a));
        rest = b;
    }
    if !rest.is_empty() {
        out.extend(record(CONTENT_HANDSHAKE, 0x0301, rest));
    }
    out
}

fn sni_data(name: &[u8]) -> Vec<u8> {
    let mut entry = vec![NAME_TYPE_HOST_NAME];
    entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
    entry.extend_from_slice(name);
    list16(&entry)
}

fn list16(items: &[u8]) -> Vec<u8> {
    let mut l = (items.len() as u16).to_be_bytes().to_vec();
    l.extend_from_slice(items);
    l
}

fn alpn_data(protocols: &[&[u8]]) -> Vec<u8> {
    let mut items = Vec::new();
    for p in protocols {
        items.push(p.len() as u8);
        items.extend_from_slice(p);
    }
    list16(&items)
}

/// A key_share like the ones current browsers send: hybrid ML-KEM plus X25519.
fn pq_key_share() -> Vec<u8> {
    let mut shares = Vec::new();
    for (group, len) in [(X25519_MLKEM768, 1184 + 32), (X25519, 32)] {
        shares.extend_from_slice(&u16::to_be_bytes(group));
        shares.extend_from_slice(&(len as u16).to_be_bytes());
        shares.extend(std::iter::repeat_n(0x5a, len));
    }
    list16(&shares)
}

fn complete(sni: Option<&str>, alpn: &[&str], len: usize) -> Result<Hello, HelloError> {
    Ok(Hello::Complete {
        sni: sni.map(str::to_owned),
        alpn: alpn.iter().map(|s| s.to_string()).collect(),
        len,
    })
}

fn sni_of(buf: &[u8]) -> Result<Option<String>, HelloError> {
    match parse(buf)? {
        Hello::Complete { sni, .. } => Ok(sni),
        Hello::Incomplete => panic!("expected a complete hello"),
    }
}

/// Every strict prefix must wait for more; the whole buffer must be complete.
fn assert_prefixes_incomplete(wire: &[u8]) {
    for k in 0..wire.len() {
        assert_eq!(
            parse(&wire[..k]),
            Ok(Hello::Incomplete),
            "prefix of {k} bytes"
        );
    }
    assert!(matches!(parse(wire), Ok(Hello::Complete { .. })));
}

/// The answer never changes once it is not `Incomplete`, however many more bytes
/// follow, and a buffer of `MAX_WIRE` bytes always has an answer.
fn assert_consistent(buf: &[u8], cuts: impl IntoIterator<Item = usize>) {
    let full = parse(buf);
    if let Ok(Hello::Complete { len, .. }) = &full {
        assert!(*len <= buf.len());
    }
    if buf.len() >= MAX_WIRE {
        assert_ne!(full, Ok(Hello::Incomplete));
    }
    for k in cuts {
        let k = k.min(buf.len());
        let part = parse(&buf[..k]);
        if part != Ok(Hello::Incomplete) {
            assert_eq!(part, full, "prefix {k} of {buf:02x?}");
        }
    }
}

mod malformed;
mod random;
mod real;
mod wire;
