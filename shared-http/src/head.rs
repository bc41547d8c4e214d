//! Strict parsing of request heads: route, framing and the head forwarded to the agent.
//!
//! Anything whose framing could be read two ways is refused rather than forwarded, so
//! the relay and the upstream can never disagree about where a request ends.

use bytes::{BufMut, Bytes, BytesMut};

/// Most header lines in one head.
const MAX_HEADERS: usize = 128;

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Bytes the head took in the input.
    pub len: usize,
    /// Request method.
    pub method: String,
    /// Request target.
    pub path: String,
    /// Host, lowercase, without the port.
    pub host: String,
    /// Body framing.
    pub framing: Framing,
    /// Whether the request asks to switch protocols (WebSocket and friends).
    pub upgrade: bool,
    /// Header lines as received, for policy checks (name, value).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why a head was refused, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// 400: malformed or ambiguous.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 431: head over the size limit.
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    /// 431: more header fields than the parser takes.
    #[error("request head with more than {0} header fields")]
    TooManyFields(usize),
    /// 501: a transfer coding we do not implement.
    #[error("not implemented: {0}")]
    NotImplemented(String),
}

impl HeadError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::TooLarge(_) | HeadError::TooManyFields(_) => 431,
            HeadError::NotImplemented(_) => 501,
        }
    }
}

fn bad(msg: impl Into<String>) -> HeadError {
    HeadError::BadRequest(msg.into())
}

/// Parses a head at the start of `buf`: `Ok(None)` if it is not complete yet.
pub fn parse(buf: &[u8], max: usize) -> Result<Option<RequestHead>, HeadError> {
    let window = &buf[..buf.len().min(max)];
    let Some(end) = find_end(window)? else {
        if buf.len() >= max {
            return Err(HeadError::TooLarge(max));
        }
        return Ok(None);
    };
    let mut raw_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw_headers);
    match req.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyFields(MAX_HEADERS)),
        Err(e) => return Err(bad(format!("{e}"))),
    }
    let fields = Fields::read(req.headers)?;
    let framing = framing(fields.te, fields.length, req.version == Some(0))?;
    let Some(host) = fields.host else {
        return Err(bad("missing Host header"));
    };
    Ok(Some(RequestHead {
        len: end,
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        host,
        framing,
        upgrade: fields.upgrade_header && fields.connection_upgrade,
        headers: fields.headers,
    }))
}

/// What the header fields say about routing and framing, checked field by field.
#[derive(Default)]
struct Fields {
    host: Option<String>,
    length: Option<u64>,
    /// Every Transfer-Encoding value, joined as one list.
    te: Option<String>,
    connection_upgrade: bool,
    upgrade_header: bool,
    headers: Vec<(String, Vec<u8>)>,
}

impl Fields {
    fn read(raw: &[httparse::Header<'_>]) -> Result<Fields, HeadError> {
        let mut f = Fields {
            headers: Vec::with_capacity(raw.len()),
            ..Fields::default()
        };
        for h in raw {
            let value = std::str::from_utf8(h.value).map(str::trim);
            match h.name.to_ascii_lowercase().as_str() {
                "host" => {
                    if f.host.is_some() {
                        return Err(bad("more than one Host header"));
                    }
                    let v = value.map_err(|_| bad("Host header is not UTF-8"))?;
                    f.host = Some(normalise_host(v)?);
                }
                "content-length" => {
                    let v = value.map_err(|_| bad("invalid Content-Length"))?;
                    f.length = Some(content_length(v, f.length)?);
                }
                "transfer-encoding" => {
                    let v = value.map_err(|_| bad("invalid Transfer-Encoding"))?;
                    f.te = Some(match f.te.take() {
                        Some(prev) => format!("{prev}, {v}"),
                        None => v.to_string(),
                    });
                }
                "connection" => {
                    if let Ok(v) = value {
                        f.connection_upgrade |= v
                            .split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
                    }
                }
                "upgrade" => f.upgrade_header = true,
                _ => {}
            }
            f.headers.push((h.name.to_string(), h.value.to_vec()));
        }
        Ok(f)
    }
}

/// A Content-Length value (a list of equal lengths is one length), agreeing with `seen`.
fn content_length(v: &str, seen: Option<u64>) -> Result<u64, HeadError> {
    let mut length = seen;
    for part in v.split(',') {
        let part = part.trim();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("invalid Content-Length {v:?}")));
        }
        let n: u64 = part
            .parse()
            .map_err(|_| bad(format!("invalid Content-Length {v:?}")))?;
        if length.is_some_and(|l| l != n) {
            return Err(bad("conflicting Content-Length headers"));
        }
        length = Some(n);
    }
    length.ok_or_else(|| bad(format!("invalid Content-Length {v:?}")))
}

/// How the body is delimited; anything that could be read two ways is refused.
fn framing(te: Option<String>, length: Option<u64>, http10: bool) -> Result<Framing, HeadError> {
    match (te, length) {
        (Some(_), Some(_)) => Err(bad("both Content-Length and Transfer-Encoding")),
        (Some(_), None) if http10 => Err(bad("Transfer-Encoding in an HTTP/1.0 request")),
        (Some(te), None) => {
            let codings: Vec<_> = te
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            if codings.iter().any(|c| c != "chunked") {
                return Err(HeadError::NotImplemented(format!(
                    "transfer coding {te:?} (only chunked is supported)"
                )));
            }
            if codings.len() != 1 {
                return Err(bad("chunked applied more than once"));
            }
            Ok(Framing::Chunked)
        }
        (None, Some(0)) | (None, None) => Ok(Framing::None),
        (None, Some(n)) => Ok(Framing::Length(n)),
    }
}

/// Finds the end of the head (after the blank line), refusing bare LF and obs-fold.
fn find_end(buf: &[u8]) -> Result<Option<usize>, HeadError> {
    for i in 0..buf.len() {
        if buf[i] != b'\n' {
            continue;
        }
        if i == 0 || buf[i - 1] != b'\r' {
            return Err(bad("bare LF line ending"));
        }
        if let Some(&next) = buf.get(i + 1) {
            if next == b' ' || next == b'\t' {
                return Err(bad("obsolete line folding in header"));
            }
        }
        if i >= 3 && &buf[i - 3..=i] == b"\r\n\r\n" {
            return Ok(Some(i + 1));
        }
    }
    Ok(None)
}

fn normalise_host(v: &str) -> Result<String, HeadError> {
    let v = v.to_ascii_lowercase();
    let name = if let Some(rest) = v.strip_prefix('[') {
        // An IPv6 literal: keep the brackets' content.
        rest.split(']').next().unwrap_or_default().to_string()
    } else {
        match v.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
            Some(_) => return Err(bad(format!("invalid Host {v:?}"))),
            None => v.clone(),
        }
    };
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    if !valid {
        return Err(bad(format!("invalid Host {v:?}")));
    }
    Ok(name.trim_end_matches('.').to_string())
}

/// The head as forwarded to the agent: lines as received (names keep case and order),
/// the `Host` value replaced when the tunnel rewrites it, the visitor's
/// `X-Forwarded-Proto` dropped, and ours appended.
pub fn forwarded(
    buf: &[u8],
    head: &RequestHead,
    peer_ip: &str,
    scheme: &str,
    host: Option<&str>,
) -> Bytes {
    let raw = &buf[..head.len - 2];
    let mut out = BytesMut::with_capacity(head.len + 64);
    let named = |line: &[u8], name: &[u8]| {
        line.len() > name.len() && line[..name.len()].eq_ignore_ascii_case(name)
    };
    for line in raw.split_inclusive(|&b| b == b'\n') {
        match host {
            Some(h) if named(line, b"host:") => {
                out.put_slice(b"Host: ");
                out.put_slice(h.as_bytes());
                out.put_slice(b"\r\n");
            }
            _ if named(line, b"x-forwarded-proto:") => {}
            _ => out.extend_from_slice(line),
        }
    }
    out.put_slice(b"X-Forwarded-For: ");
    out.put_slice(peer_ip.as_bytes());
    out.put_slice(b"\r\nX-Forwarded-Proto: ");
    out.put_slice(scheme.as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.freeze()
}

/// What following a message needs from its head, read leniently: the follower watches
/// traffic that was already checked (or that is the local server's own business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loose {
    /// Request method, or empty for a response.
    pub method: String,
    /// Request target, or empty for a response.
    pub path: String,
    /// Response status, or 0 for a request.
    pub status: u16,
    /// The last transfer coding is chunked.
    pub chunked: bool,
    /// A readable Content-Length.
    pub length: Option<u64>,
    /// An `Upgrade` field is present.
    pub upgrade: bool,
    /// A Content-Length that is not a number, or two that differ: where the body ends
    /// cannot be known.
    pub bad_length: bool,
}

/// Reads a complete request (`request`) or response head; `None` if it is not HTTP.
pub fn parse_loose(request: bool, raw: &[u8]) -> Option<Loose> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (method, path, status, fields) = if request {
        let mut r = httparse::Request::new(&mut fields);
        match r.parse(raw) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return None,
        }
        let (m, p) = (
            r.method.unwrap_or("").to_string(),
            r.path.unwrap_or("").to_string(),
        );
        (m, p, 0, r.headers)
    } else {
        let mut r = httparse::Response::new(&mut fields);
        match r.parse(raw) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return None,
        }
        (String::new(), String::new(), r.code.unwrap_or(0), r.headers)
    };
    let mut loose = Loose {
        method,
        path,
        status,
        chunked: false,
        length: None,
        upgrade: false,
        bad_length: false,
    };
    for f in fields.iter() {
        let value = || String::from_utf8_lossy(f.value).trim().to_ascii_lowercase();
        if f.name.eq_ignore_ascii_case("transfer-encoding") {
            loose.chunked = value().ends_with("chunked");
        } else if f.name.eq_ignore_ascii_case("content-length") {
            match value().parse::<u64>() {
                Ok(n) if loose.length.is_none_or(|l| l == n) => loose.length = Some(n),
                _ => loose.bad_length = true,
            }
        } else if f.name.eq_ignore_ascii_case("upgrade") {
            loose.upgrade = true;
        }
    }
    Some(loose)
}

/// The header fields of a complete head (request or response) in `raw`, in order; what
/// cannot be parsed yields none.
pub fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
        return Vec::new();
    };
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(&raw[eol + 2..], &mut fields) {
        Ok(httparse::Status::Complete((_, hs))) => hs
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).to_string(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The size on a chunk-size line (without its CRLF): hex digits only, at most 15 of them,
/// extensions after `;` ignored; anything else is `None`.
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<RequestHead>, HeadError> {
        parse(s.as_bytes(), 8192)
    }

    #[test]
    fn simple_get() {
        let h = p("GET /x HTTP/1.1\r\nHost: Abc.Localhost:8000\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(h.host, "abc.localhost");
        assert_eq!(h.framing, Framing::None);
        assert_eq!(h.len, 45);
    }

    #[test]
    fn incomplete_and_too_large() {
        assert!(p("GET / HTTP/1.1\r\nHost: a").unwrap().is_none());
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(p(&big).unwrap_err(), HeadError::TooLarge(8192));
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        let err = p(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err();
        assert_eq!(
            (err.status(), err.to_string()),
            (
                431,
                format!("request head with more than {MAX_HEADERS} header fields")
            )
        );
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let cases = [
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("GET / HTTP/1.1\nHost: a\n\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            ("GARBAGE\r\n\r\n", 400),
        ];
        for (req, status) in cases {
            let err = p(req).expect_err(req);
            assert_eq!(err.status(), status, "{req:?}: {err}");
        }
    }

    #[test]
    fn same_content_length_twice_is_fine() {
        let h = p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(3));
    }

    #[test]
    fn forwarded_keeps_case_and_order_and_replaces_proto() {
        let req =
            "GET / HTTP/1.1\r\nhOsT: a\r\nX-Forwarded-Proto: ftp\r\nZed: 1\r\nalpha: 2\r\n\r\n";
        let h = p(req).unwrap().unwrap();
        let out = forwarded(req.as_bytes(), &h, "10.0.0.1", "https", None);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "GET / HTTP/1.1\r\nhOsT: a\r\nZed: 1\r\nalpha: 2\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        let out = forwarded(req.as_bytes(), &h, "10.0.0.1", "http", Some("site.dev"));
        assert!(
            out.starts_with(b"GET / HTTP/1.1\r\nHost: site.dev\r\nZed: 1\r\n"),
            "{out:?}"
        );
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let h = p("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.upgrade);
    }
}
