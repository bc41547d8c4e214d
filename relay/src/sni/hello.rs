//! The ClientHello message: its fixed fields, and the server_name and ALPN extensions
//! among the others.

use super::error::HelloError;
use super::limits::{
    EXT_ALPN, EXT_SERVER_NAME, HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER, MAX_HELLO, MAX_SESSION_ID,
    NAME_TYPE_HOST_NAME,
};
use super::name::host_name;
use super::reader::{u24, Reader, Step, Stop};

/// What the ClientHello says that the relay cares about.
pub(super) struct Found {
    pub(super) sni: Option<String>,
    pub(super) alpn: Vec<String>,
}

/// Reads the handshake message at the start of the handshake stream.
pub(super) fn client_hello(handshake: &[u8]) -> Step<Found> {
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
