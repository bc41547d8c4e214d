//! Why bytes are refused as a ClientHello, in words a log line or a visitor can act on.

use super::limits::MAX_HELLO;
use std::fmt;

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
