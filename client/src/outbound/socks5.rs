//! The SOCKS5 handshake (RFC 1928) with user/password authentication (RFC 1929), spoken by
//! `tokio-socks`; this module words its errors so that they name the proxy and the target.

use std::io::{self, ErrorKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_socks::tcp::Socks5Stream;
use tokio_socks::Error;

/// Runs the SOCKS5 handshake on `s` up to an established connection to `host:port`.
pub(super) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    paddr: &str,
    host: &str,
    port: u16,
    target: &str,
    auth: Option<&(String, String)>,
) -> io::Result<()> {
    if host.is_empty() {
        return Err(bad_target(target));
    }
    // With credentials, no-auth is offered as well, so a proxy that does not need them
    // can skip them.
    let done = match auth {
        Some((user, pass)) => {
            Socks5Stream::connect_with_password_and_socket(&mut *s, (host, port), user, pass).await
        }
        None => Socks5Stream::connect_with_socket(&mut *s, (host, port)).await,
    };
    done.map(drop)
        .map_err(|e| explain(e, paddr, target, auth.is_some()))
}

fn bad_target(target: &str) -> io::Error {
    io::Error::new(
        ErrorKind::InvalidInput,
        format!("cannot reach {target} over SOCKS5: host name must be 1-255 bytes"),
    )
}

/// The handshake's failure as the user should read it, with the kind a caller can act on.
fn explain(e: Error, paddr: &str, target: &str, with_auth: bool) -> io::Error {
    let proxy = format!("SOCKS5 proxy {paddr}");
    let (kind, msg) = match e {
        Error::Io(e) if e.kind() == ErrorKind::UnexpectedEof => (
            e.kind(),
            format!("{proxy} closed the connection during the handshake"),
        ),
        Error::Io(e) => (e.kind(), format!("{proxy}: {e}")),
        Error::InvalidTargetAddress(_) => return bad_target(target),
        Error::InvalidAuthValues(why) => (ErrorKind::InvalidInput, format!("{proxy}: {why}")),
        Error::InvalidResponseVersion => (
            ErrorKind::InvalidData,
            format!("proxy {paddr} is not a SOCKS5 proxy (it answered in another version)"),
        ),
        Error::PasswordAuthFailure(_) => (
            ErrorKind::PermissionDenied,
            format!("{proxy} rejected the user and password in the proxy URL"),
        ),
        Error::NoAcceptableAuthMethods if with_auth => (
            ErrorKind::PermissionDenied,
            format!("{proxy} accepts neither no authentication nor user/password authentication"),
        ),
        Error::NoAcceptableAuthMethods => (
            ErrorKind::PermissionDenied,
            format!("{proxy} requires authentication: put a user and password in the proxy URL"),
        ),
        Error::UnknownAuthMethod => (
            ErrorKind::InvalidData,
            format!("{proxy} chose an authentication method that was not offered"),
        ),
        Error::InvalidReservedByte | Error::UnknownAddressType => (
            ErrorKind::InvalidData,
            format!("{proxy} sent a malformed reply ({e})"),
        ),
        refused => {
            let kind = match refused {
                Error::ConnectionNotAllowedByRuleset => ErrorKind::PermissionDenied,
                Error::ConnectionRefused => ErrorKind::ConnectionRefused,
                Error::TtlExpired => ErrorKind::TimedOut,
                Error::CommandNotSupported | Error::AddressTypeNotSupported => {
                    ErrorKind::Unsupported
                }
                _ => ErrorKind::Other,
            };
            let why = refused.to_string().to_lowercase();
            (
                kind,
                format!("{proxy} could not connect to {target}: {why}"),
            )
        }
    };
    io::Error::new(kind, msg)
}
