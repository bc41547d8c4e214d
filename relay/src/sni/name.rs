//! The SNI host name: validated by the DNS-name rules rustls applies, and put in the form
//! routing compares.

use super::error::HelloError;
use super::limits::{MAX_LABEL, MAX_NAME, MAX_SHOWN_NAME};
use std::net::IpAddr;

/// Validates an SNI host name and puts it in the form routing compares.
///
/// Follows the DNS-name rules rustls applies, so a name accepted here is one the
/// terminator would accept as well.
pub(super) fn host_name(raw: &[u8]) -> Result<Option<String>, HelloError> {
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
