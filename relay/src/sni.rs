//! Reads the TLS ClientHello at the start of a public connection to learn where it is
//! going (the SNI host name, plus the ALPN list) before anything else touches the bytes.
//!
//! The reader is sans-IO: it looks at whatever has arrived so far and never consumes or
//! rewrites it, because the very same bytes are later fed to rustls (terminated tunnels)
//! or spliced unchanged to an agent (passthrough tunnels). Call [`parse`] again each time
//! more bytes arrive; it answers [`Hello::Incomplete`] only while the bytes can still
//! become an acceptable ClientHello, and an error as soon as they cannot, so plain HTTP or
//! garbage on the TLS port is refused on its first byte instead of after a timeout.
//!
//! Where the RFCs leave room, the reader follows what rustls accepts, so that a host
//! name routed here is one the terminator takes too. It is stricter than rustls only
//! where no real client is affected: versions above TLS 1.3 and hellos over
//! [`MAX_HELLO`].

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// Largest ClientHello accepted, counted as the handshake message body (its 24-bit
/// length), however many records carry it.
///
/// Hellos are usually 0.5-2 KB; a hybrid post-quantum key share such as
/// X25519MLKEM768 adds about 1.2 KB, and resumption tickets or several speculative key
/// shares can add a few KB more. 16 KiB leaves ample headroom for all of that while
/// bounding what one unauthenticated connection can make the relay buffer.
pub const MAX_HELLO: usize = 16 * 1024;

/// Most TLS records a ClientHello may be split into.
///
/// A 16 KiB hello fits in two records, but some clients and anti-censorship tools
/// fragment the hello on purpose; 64 allows for that while keeping record headers from
/// inflating what must be buffered.
pub const MAX_RECORDS: usize = 64;

/// Bytes a reader needs to buffer, at most, to get a verdict: once this many have
/// arrived [`parse`] no longer answers [`Hello::Incomplete`]. A caller can therefore size
/// its peek buffer to this and treat a connection that stalls below it as timed out.
pub const MAX_WIRE: usize = HANDSHAKE_HEADER + MAX_HELLO + MAX_RECORDS * RECORD_HEADER;

/// TLSPlaintext fragments must not exceed 2^14 bytes, but rustls reads records up to the
/// 2^14 + 2048 that RFC 5246 allows ciphertext, and refusing what the terminator would
/// take gains nothing.
const MAX_RECORD: usize = (1 << 14) + 2048;
const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const NAME_TYPE_HOST_NAME: u8 = 0;
const MAX_SESSION_ID: usize = 32;
/// DNS names are at most 255 octets on the wire, which is 253 characters as text.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;
/// Keeps a hostile "host name" from bloating an error that ends up in a log line.
const MAX_SHOWN_NAME: usize = 256;

/// What the first bytes of a TLS connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed: the ClientHello is not complete yet, and nothing so far
    /// rules it out.
    Incomplete,
    /// A complete ClientHello.
    Complete {
        /// The host name from the server_name extension, lower-cased and without a
        /// trailing dot; `None` when the client sent no SNI, or sent an IP address
        /// there (which RFC 6066 forbids and rustls ignores).
        sni: Option<String>,
        /// The ALPN protocols offered, in the client's order; empty without the ALPN
        /// extension. Names that are not UTF-8 are left out: every registered protocol
        /// name is ASCII, and the list only informs routing.
        alpn: Vec<String>,
        /// How many bytes at the start of the buffer the ClientHello occupies, record
        /// headers included. Nothing is consumed; this only tells a caller which bytes
        /// it has looked at.
        len: usize,
    },
}

/// Why the bytes are not a TLS ClientHello the relay accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// The first byte is not a TLS handshake record: plain HTTP on the TLS port, an
    /// SSL 2.0 hello, or some other protocol.
    NotTls,
    /// A record header names a version outside SSL 3.0 to TLS 1.3, or the ClientHello
    /// one outside TLS 1.0 to 1.3 (an SSL 3.0-only client is refused).
    BadVersion,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// The ClientHello declares more than [`MAX_HELLO`] bytes.
    TooLarge,
    /// The bytes break the TLS encoding; the text names the broken part.
    Malformed(&'static str),
    /// The SNI host name is not a valid DNS name (it is shown lossily, cut to 256 bytes).
    BadServerName(String),
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::NotTls => f.write_str(
                "not TLS: the connection did not start with a TLS handshake record \
                 (plain HTTP sent to the HTTPS port? use http:// or the HTTP port)",
            ),
            HelloError::BadVersion => f.write_str(
                "unsupported TLS version in the ClientHello: only TLS 1.0 to 1.3 are \
                 accepted (SSL 3.0 is refused)",
            ),
            HelloError::NotClientHello => {
                f.write_str("the first TLS handshake message is not a ClientHello")
            }
            HelloError::TooLarge => {
                write!(f, "TLS ClientHello is larger than {MAX_HELLO} bytes")
            }
            HelloError::Malformed(what) => write!(f, "malformed TLS ClientHello: {what}"),
            HelloError::BadServerName(name) => {
                // Debug formatting escapes control characters, so a hostile name cannot
                // forge log lines.
                write!(f, "invalid host name in TLS SNI: {name:?}")
            }
        }
    }
}

impl std::error::Error for HelloError {}

/// Parses the ClientHello at the start of `buf`.
///
/// `buf` holds every byte received on the connection so far; it is only read. The
/// answer is [`Hello::Incomplete`] while more bytes are needed, and stays consistent as
/// `buf` grows: once an error or [`Hello::Complete`] is returned, any longer buffer with
/// the same start gets the same answer.
pub fn parse(buf: &[u8]) -> Result<Hello, HelloError> {
    let records = reassemble(buf);
    // Errors in the handshake bytes win over a record error further on, so the error
    // for a given start of the stream never changes as more bytes arrive.
    match client_hello(&records.handshake) {
        Err(Stop::Bad(e)) => Err(e),
        Err(Stop::More) => records.err.map_or(Ok(Hello::Incomplete), Err),
        Ok(found) => match (records.end, records.err) {
            (Some(len), _) => Ok(Hello::Complete {
                sni: found.sni,
                alpn: found.alpn,
                len,
            }),
            (None, Some(e)) => Err(e),
            // Skipped extensions need no bytes to be parsed past, so the structure can
            // check out before all of it has arrived.
            (None, None) => Ok(Hello::Incomplete),
        },
    }
}

/// The handshake bytes found in the records at the start of the buffer.
struct Records<'a> {
    /// The handshake stream so far, cut at the end of the ClientHello and never longer
    /// than a header plus [`MAX_HELLO`]. Borrowed when one record holds it all, the
    /// common case.
    handshake: Cow<'a, [u8]>,
    /// Offset just past the ClientHello's last byte, once all of it is present.
    end: Option<usize>,
    /// Why the records stop being acceptable before the ClientHello is complete.
    err: Option<HelloError>,
}

/// Joins the fragments of the handshake records at the start of `buf`.
fn reassemble(buf: &[u8]) -> Records<'_> {
    let mut handshake: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut end = None;
    let mut err = None;
    let mut pos = 0;
    let mut count = 0;
    while pos < buf.len() {
        if count == MAX_RECORDS {
            err = Some(HelloError::Malformed(
                "ClientHello split into more than 64 records",
            ));
            break;
        }
        let header = &buf[pos..buf.len().min(pos + RECORD_HEADER)];
        if let Err(e) = check_record_header(header, pos == 0) {
            err = Some(e);
            break;
        }
        if header.len() < RECORD_HEADER {
            break;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let start = pos + RECORD_HEADER;
        let fragment = &buf[start..buf.len().min(start + len)];
        // Capping what is kept at what the hello can still use bounds the copy by
        // MAX_HELLO, whatever the record lengths claim.
        let used = fragment.len().min(wanted(&handshake) - handshake.len());
        if handshake.is_empty() {
            handshake = Cow::Borrowed(&fragment[..used]);
        } else {
            handshake.to_mut().extend_from_slice(&fragment[..used]);
        }
        count += 1;
        // The length only becomes known once the header is in, possibly mid-fragment.
        let want = wanted(&handshake);
        let excess = handshake.len().saturating_sub(want);
        match &mut handshake {
            Cow::Borrowed(s) => *s = &s[..s.len() - excess],
            Cow::Owned(v) => v.truncate(v.len() - excess),
        }
        if handshake.len() >= HANDSHAKE_HEADER && handshake.len() == want {
            end = Some(start + used - excess);
            break;
        }
        if fragment.len() < len {
            break;
        }
        pos = start + len;
    }
    Records {
        handshake,
        end,
        err,
    }
}

/// How long the handshake stream will be once the ClientHello is complete, as far as
/// is known: capped at the largest acceptable size until the length is known (or when
/// it is too large, which `client_hello` reports).
fn wanted(handshake: &[u8]) -> usize {
    let most = HANDSHAKE_HEADER + MAX_HELLO;
    match handshake {
        [_, a, b, c, ..] => most.min(HANDSHAKE_HEADER + u24(*a, *b, *c)),
        _ => most,
    }
}

/// Checks as much of a record header as has arrived, so a bad byte fails at once.
fn check_record_header(header: &[u8], first: bool) -> Result<(), HelloError> {
    if let Some(&kind) = header.first() {
        if kind != CONTENT_HANDSHAKE {
            return Err(if first {
                HelloError::NotTls
            } else {
                // RFC 8446 §5.1: handshake messages must not be interleaved with other
                // record types.
                HelloError::Malformed("a non-handshake record interrupts the ClientHello")
            });
        }
    }
    if let Some(&major) = header.get(1) {
        if major != 3 {
            return Err(HelloError::BadVersion);
        }
    }
    if let Some(&minor) = header.get(2) {
        // RFC 5246 appendix E.1 lets a TLS client put SSL 3.0 (0x0300) in the record
        // header for old servers, and TLS 1.3 froze the field, so anything above 1.3
        // comes from no real client.
        if minor > 4 {
            return Err(HelloError::BadVersion);
        }
    }
    // The high byte alone already bounds the length from below.
    let low = header.get(4).copied().unwrap_or(0);
    if let Some(&high) = header.get(3) {
        let len = usize::from(u16::from_be_bytes([high, low]));
        if len > MAX_RECORD {
            return Err(HelloError::Malformed(
                "record longer than 2^14 + 2048 bytes",
            ));
        }
        if header.len() == RECORD_HEADER && len == 0 {
            // RFC 8446 §5.1 and RFC 5246 §6.2.1 forbid empty handshake fragments.
            return Err(HelloError::Malformed("empty handshake record"));
        }
    }
    Ok(())
}

/// Why reading stopped short of a verdict.
enum Stop {
    /// The bytes so far are fine but the field being read has not fully arrived.
    More,
    /// The bytes can never become an acceptable ClientHello.
    Bad(HelloError),
}

impl From<HelloError> for Stop {
    fn from(e: HelloError) -> Self {
        Stop::Bad(e)
    }
}

type Step<T> = Result<T, Stop>;

/// A cursor over a declared span of the handshake bytes, of which only a prefix may
/// have arrived.
///
/// Every length is checked against the declared end before the arrived bytes, so an
/// impossible length is an error right away rather than a wait for bytes that could
/// never make it valid.
struct Reader<'a> {
    /// The bytes that have arrived; may stop before `end`.
    arrived: &'a [u8],
    pos: usize,
    /// Where the span ends by its declared length; may lie beyond `arrived`.
    end: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.end - self.pos
    }

    fn at_end(&self) -> bool {
        self.pos == self.end
    }

    /// Moves past `n` bytes, returning where they start; checks only the declared end.
    fn advance(&mut self, n: usize, what: &'static str) -> Step<usize> {
        if n > self.left() {
            return Err(Stop::Bad(HelloError::Malformed(what)));
        }
        let start = self.pos;
        self.pos += n;
        Ok(start)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Step<&'a [u8]> {
        let start = self.advance(n, what)?;
        self.arrived.get(start..self.pos).ok_or(Stop::More)
    }

    /// Skipping needs no bytes, so unknown extensions never hold up a verdict on what
    /// follows them.
    fn skip(&mut self, n: usize, what: &'static str) -> Step<()> {
        self.advance(n, what).map(drop)
    }

    /// Splits off the next `n` bytes as a span of their own.
    fn sub(&mut self, n: usize, what: &'static str) -> Step<Reader<'a>> {
        let start = self.advance(n, what)?;
        Ok(Reader {
            arrived: self.arrived,
            pos: start,
            end: self.pos,
        })
    }

    fn u8(&mut self, what: &'static str) -> Step<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Step<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

fn u24(a: u8, b: u8, c: u8) -> usize {
    (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)
}

/// What the ClientHello says that the relay cares about.
struct Found {
    sni: Option<String>,
    alpn: Vec<String>,
}

/// Reads the handshake message at the start of the handshake stream.
fn client_hello(handshake: &[u8]) -> Step<Found> {
    let Some(&kind) = handshake.first() else {
        return Err(Stop::More);
    };
    if kind != HANDSHAKE_CLIENT_HELLO {
        return Err(HelloError::NotClientHello.into());
    }
    // Missing low bytes count as zero: a lower bound that can already be too large.
    let len_bytes = |i: usize| handshake.get(i).copied().unwrap_or(0);
    let len = u24(len_bytes(1), len_bytes(2), len_bytes(3));
    if len > MAX_HELLO {
        return Err(HelloError::TooLarge.into());
    }
    if handshake.len() < HANDSHAKE_HEADER {
        return Err(Stop::More);
    }
    let mut r = Reader {
        arrived: &handshake[HANDSHAKE_HEADER..],
        pos: 0,
        end: len,
    };
    let version = r.u16("ClientHello ends before its version")?;
    // TLS 1.3 froze legacy_version at 1.2 and negotiates through supported_versions, so
    // a value above 1.3 is no real client. SSL 3.0 is prohibited (RFC 7568) and neither
    // rustls nor any current agent speaks it: refusing here names the problem instead
    // of leaving it to a confusing handshake failure downstream.
    if !(0x0301..=0x0304).contains(&version) {
        return Err(HelloError::BadVersion.into());
    }
    r.skip(32, "ClientHello ends inside its random")?;
    let session_id = usize::from(r.u8("ClientHello ends before its session_id")?);
    if session_id > MAX_SESSION_ID {
        return Err(HelloError::Malformed("session_id longer than 32 bytes").into());
    }
    r.skip(session_id, "ClientHello ends inside its session_id")?;
    let suites = usize::from(r.u16("ClientHello ends before its cipher_suites")?);
    if suites == 0 || suites % 2 != 0 {
        return Err(HelloError::Malformed("cipher_suites length is zero or odd").into());
    }
    r.skip(suites, "ClientHello ends inside its cipher_suites")?;
    let methods = usize::from(r.u8("ClientHello ends before its compression_methods")?);
    if methods == 0 {
        return Err(HelloError::Malformed("compression_methods is empty").into());
    }
    r.skip(methods, "ClientHello ends inside its compression_methods")?;
    let mut found = Found {
        sni: None,
        alpn: Vec::new(),
    };
    // RFC 5246 §7.4.1.2 lets a client without extensions omit the block entirely.
    if r.at_end() {
        return Ok(found);
    }
    let block = usize::from(r.u16("ClientHello ends inside its extensions length")?);
    if block != r.left() {
        return Err(HelloError::Malformed(
            "extensions length disagrees with the ClientHello length",
        )
        .into());
    }
    let mut exts = r.sub(block, "extensions overrun the ClientHello")?;
    let (mut seen_sni, mut seen_alpn) = (false, false);
    while !exts.at_end() {
        let kind = exts.u16("truncated extension header")?;
        let len = usize::from(exts.u16("truncated extension header")?);
        let mut body = exts.sub(len, "extension overruns the extensions block")?;
        // RFC 8446 §4.2 forbids repeats; for the two extensions that steer routing a
        // repeat could make the relay and the eventual TLS server see different names.
        match kind {
            EXT_SERVER_NAME if seen_sni => {
                return Err(HelloError::Malformed("server_name extension sent twice").into())
            }
            EXT_SERVER_NAME => {
                seen_sni = true;
                found.sni = server_name(&mut body)?;
            }
            EXT_ALPN if seen_alpn => {
                return Err(HelloError::Malformed("ALPN extension sent twice").into())
            }
            EXT_ALPN => {
                seen_alpn = true;
                found.alpn = alpn(&mut body)?;
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Reads the server_name extension (RFC 6066 §3).
fn server_name(body: &mut Reader<'_>) -> Step<Option<String>> {
    let len = usize::from(body.u16("server_name extension is empty")?);
    if len == 0 {
        return Err(HelloError::Malformed("server_name list is empty").into());
    }
    if len != body.left() {
        return Err(HelloError::Malformed(
            "server_name list length disagrees with the extension length",
        )
        .into());
    }
    let mut list = body.sub(len, "server_name list overruns its extension")?;
    let mut host = None;
    while !list.at_end() {
        if list.u8("truncated server_name entry")? != NAME_TYPE_HOST_NAME {
            // No other name type is defined and nothing says how long one is, so the
            // rest of the list cannot be read (rustls stops here too).
            break;
        }
        let n = usize::from(list.u16("truncated server_name entry")?);
        let name = list.take(n, "host_name overruns the server_name list")?;
        if host.is_some() {
            // RFC 6066 allows one name per type; two would let the relay route on one
            // while the TLS server answers for the other.
            return Err(HelloError::Malformed("more than one host_name in server_name").into());
        }
        host = Some(host_name(name)?);
    }
    // rustls refuses a server_name extension without a host_name, so it is never a
    // connection worth waiting on.
    host.ok_or(Stop::Bad(HelloError::Malformed(
        "server_name extension holds no host_name",
    )))
}

/// Validates an SNI host name and puts it in the form routing compares.
///
/// Follows the DNS-name rules rustls applies, so a name accepted here is one the
/// terminator would accept as well.
fn host_name(raw: &[u8]) -> Result<Option<String>, HelloError> {
    let bad = || {
        let shown = &raw[..raw.len().min(MAX_SHOWN_NAME)];
        HelloError::BadServerName(String::from_utf8_lossy(shown).into_owned())
    };
    // Internationalised names travel as A-labels (punycode), so anything non-ASCII is
    // not a name at all.
    let Some(name) = std::str::from_utf8(raw).ok().filter(|s| s.is_ascii()) else {
        return Err(bad());
    };
    // RFC 6066 forbids IP literals, yet some clients send the address they dialled.
    // rustls treats that as no SNI rather than an error, and so does the relay: the
    // client named no host, which is a routing decision for the caller, not malformed
    // input.
    if name.parse::<IpAddr>().is_ok() {
        return Ok(None);
    }
    // RFC 6066 says no trailing dot, but "example.com." is the same DNS name and some
    // clients send it; rustls strips one, so routing must match the stripped form.
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad());
    }
    let mut last = "";
    for label in name.split('.') {
        let ok_len = (1..=MAX_LABEL).contains(&label.len());
        // Underscores are not valid in host names but do occur in DNS names (service
        // labels, some internal hosts) and rustls accepts them, so refusing them here
        // would only break passthrough tunnels whose own server takes them.
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_len || !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(bad());
        }
        last = label;
    }
    // A numeric last label makes the name look like an IPv4 address to URL parsers
    // (WHATWG "ends in a number"), which rustls refuses too.
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(Some(name.to_ascii_lowercase()))
}

/// Reads the ALPN extension (RFC 7301 §3.1).
fn alpn(body: &mut Reader<'_>) -> Step<Vec<String>> {
    let len = usize::from(body.u16("ALPN extension is empty")?);
    if len == 0 {
        return Err(HelloError::Malformed("ALPN protocol list is empty").into());
    }
    if len != body.left() {
        return Err(
            HelloError::Malformed("ALPN list length disagrees with the extension length").into(),
        );
    }
    let mut list = body.sub(len, "ALPN list overruns its extension")?;
    let mut protocols = Vec::new();
    while !list.at_end() {
        let n = usize::from(list.u8("truncated ALPN protocol name")?);
        if n == 0 {
            return Err(HelloError::Malformed("empty ALPN protocol name").into());
        }
        let name = list.take(n, "ALPN protocol name overruns the list")?;
        if let Ok(name) = std::str::from_utf8(name) {
            protocols.push(name.to_owned());
        }
    }
    Ok(protocols)
}

#[cfg(test)]
mod tests {
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

    /// A small deterministic generator, so failures replay exactly.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn byte(&mut self) -> u8 {
            self.next() as u8
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.byte()).collect()
        }
    }

    fn sample_cuts(rng: &mut XorShift, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..12).map(|_| rng.below(len + 1)).collect();
        cuts.extend([0, 1, 5, 6, 9, len.saturating_sub(1)]);
        cuts
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let len = rng.below(700);
            let mut buf = rng.bytes(len);
            // Most inputs get a plausible start so the deeper parsing gets exercised.
            let starts: [&[u8]; 4] = [&[], &[22], &[22, 3, 1], &[22, 3, 3, 1, 0, 1]];
            let start = starts[i % starts.len()];
            let n = start.len().min(buf.len());
            buf[..n].copy_from_slice(&start[..n]);
            if i % 3 == 0 && buf.len() >= 9 {
                // A record and hello length that match the buffer.
                let rec = (buf.len() - 5) as u16;
                buf[3..5].copy_from_slice(&rec.to_be_bytes());
                buf[5] = 1;
                let hs = (buf.len() - 9) as u32;
                buf[6..9].copy_from_slice(&hs.to_be_bytes()[1..]);
            }
            let cuts = sample_cuts(&mut rng, buf.len());
            assert_consistent(&buf, cuts);
        }
    }

    #[test]
    fn mutated_hellos_never_panic() {
        let seeds: Vec<Vec<u8>> = vec![
            Builder::sni("a.example").wire(),
            Builder::default()
                .ext(GREASE, vec![])
                .ext(EXT_ALPN, alpn_data(&[b"h2", b"http/1.1"]))
                .ext(EXT_SERVER_NAME, sni_data(b"Mixed.Case.Example"))
                .ext(SUPPORTED_VERSIONS, vec![4, 3, 4, 3, 3])
                .wire(),
            frame(&Builder::sni("split.example").handshake(), 17),
            Builder {
                extensions: None,
                ..Builder::default()
            }
            .wire(),
            Builder::default()
                .ext(KEY_SHARE, pq_key_share())
                .ext(EXT_SERVER_NAME, sni_data(b"pq.example"))
                .wire(),
        ];
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for i in 0..8_000 {
            let mut buf = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len());
                match rng.below(7) {
                    0 => buf[at] ^= 1 << rng.below(8),
                    1 => buf[at] = rng.byte(),
                    2 => buf[at] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
                    3 => buf.truncate(at),
                    4 => {
                        let n = 1 + rng.below(8);
                        let extra = rng.bytes(n);
                        buf.splice(at..at, extra);
                    }
                    5 => {
                        let end = (at + 1 + rng.below(8)).min(buf.len());
                        buf.drain(at..end);
                    }
                    _ => {
                        let end = (at + 1 + rng.below(16)).min(buf.len());
                        let chunk = buf[at..end].to_vec();
                        buf.splice(at..at, chunk);
                    }
                }
                if buf.is_empty() {
                    break;
                }
            }
            let cuts = sample_cuts(&mut rng, buf.len());
            assert_consistent(&buf, cuts);
        }
    }

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
}
