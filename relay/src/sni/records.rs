//! The record layer: joins the handshake fragments at the start of a connection and
//! checks each record header as it arrives.

use super::error::HelloError;
use super::limits::{
    CONTENT_HANDSHAKE, HANDSHAKE_HEADER, MAX_HELLO, MAX_RECORD, MAX_RECORDS, RECORD_HEADER,
};
use super::reader::u24;
use std::borrow::Cow;

/// The handshake bytes found in the records at the start of the buffer.
pub(super) struct Records<'a> {
    /// The handshake stream so far, cut at the end of the ClientHello and never longer
    /// than a header plus [`MAX_HELLO`]. Borrowed when one record holds it all, the
    /// common case.
    pub(super) handshake: Cow<'a, [u8]>,
    /// Offset just past the ClientHello's last byte, once all of it is present.
    pub(super) end: Option<usize>,
    /// Why the records stop being acceptable before the ClientHello is complete.
    pub(super) err: Option<HelloError>,
}

/// Joins the fragments of the handshake records at the start of `buf`.
pub(super) fn reassemble(buf: &[u8]) -> Records<'_> {
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
