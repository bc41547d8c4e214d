//! The SOCKS5 handshake (RFC 1928) with user/password authentication (RFC 1929).

use std::io;
use std::net::IpAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Runs the SOCKS5 handshake (RFC 1928, RFC 1929) up to an established connection.
pub(super) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    paddr: &str,
    host: &str,
    port: u16,
    target: &str,
    auth: Option<&(String, String)>,
) -> io::Result<()> {
    let hop = |e: io::Error| {
        let kind = e.kind();
        let msg = if kind == io::ErrorKind::UnexpectedEof {
            format!("SOCKS5 proxy {paddr} closed the connection during the handshake")
        } else {
            format!("SOCKS5 proxy {paddr}: {e}")
        };
        io::Error::new(kind, msg)
    };
    let fail = |kind: io::ErrorKind, msg: String| io::Error::new(kind, msg);

    // Offering no-auth as well lets a proxy that does not need the credentials skip them.
    let greeting: &[u8] = if auth.is_some() {
        &[5, 2, 0, 2]
    } else {
        &[5, 1, 0]
    };
    s.write_all(greeting).await.map_err(hop)?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.map_err(hop)?;
    if reply[0] != 5 {
        return Err(fail(
            io::ErrorKind::InvalidData,
            format!(
                "proxy {paddr} is not a SOCKS5 proxy (greeting reply version {})",
                reply[0]
            ),
        ));
    }
    match (reply[1], auth) {
        (0, _) => {}
        (2, Some((user, pass))) => {
            let mut m = Vec::with_capacity(3 + user.len() + pass.len());
            m.push(1);
            m.push(user.len() as u8);
            m.extend_from_slice(user.as_bytes());
            m.push(pass.len() as u8);
            m.extend_from_slice(pass.as_bytes());
            s.write_all(&m).await.map_err(hop)?;
            let mut r = [0u8; 2];
            s.read_exact(&mut r).await.map_err(hop)?;
            if r[1] != 0 {
                return Err(fail(
                    io::ErrorKind::PermissionDenied,
                    format!("SOCKS5 proxy {paddr} rejected the user and password in the proxy URL"),
                ));
            }
        }
        (0xff, None) => {
            return Err(fail(
                io::ErrorKind::PermissionDenied,
                format!(
                    "SOCKS5 proxy {paddr} requires authentication: put a user and password \
                     in the proxy URL"
                ),
            ))
        }
        (0xff, Some(_)) => {
            return Err(fail(
                io::ErrorKind::PermissionDenied,
                format!(
                    "SOCKS5 proxy {paddr} accepts neither no authentication nor \
                     user/password authentication"
                ),
            ))
        }
        (m, _) => {
            return Err(fail(
                io::ErrorKind::InvalidData,
                format!(
                    "SOCKS5 proxy {paddr} chose authentication method {m}, which was not offered"
                ),
            ))
        }
    }

    let mut req = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Ok(IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            if host.is_empty() || host.len() > 255 {
                return Err(fail(
                    io::ErrorKind::InvalidInput,
                    format!("cannot reach {target} over SOCKS5: host name must be 1-255 bytes"),
                ));
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.map_err(hop)?;

    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.map_err(hop)?;
    if head[0] != 5 {
        return Err(fail(
            io::ErrorKind::InvalidData,
            format!(
                "SOCKS5 proxy {paddr} sent a malformed reply (version {})",
                head[0]
            ),
        ));
    }
    if head[1] != 0 {
        let (kind, why) = match head[1] {
            1 => (io::ErrorKind::Other, "general SOCKS server failure"),
            2 => (
                io::ErrorKind::PermissionDenied,
                "connection not allowed by ruleset",
            ),
            3 => (io::ErrorKind::Other, "network unreachable"),
            4 => (io::ErrorKind::Other, "host unreachable"),
            5 => (io::ErrorKind::ConnectionRefused, "connection refused"),
            6 => (io::ErrorKind::TimedOut, "TTL expired"),
            7 => (io::ErrorKind::Unsupported, "command not supported"),
            8 => (io::ErrorKind::Unsupported, "address type not supported"),
            _ => (io::ErrorKind::Other, "unknown failure"),
        };
        return Err(fail(
            kind,
            format!(
                "SOCKS5 proxy {paddr} could not connect to {target}: {why} (reply {})",
                head[1]
            ),
        ));
    }
    // The bound address is of no use here, but must be consumed to reach the tunnelled bytes.
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(hop)?;
            len[0] as usize + 2
        }
        t => {
            return Err(fail(
                io::ErrorKind::InvalidData,
                format!("SOCKS5 proxy {paddr} sent an unknown address type {t}"),
            ))
        }
    };
    let mut skip = [0u8; 257];
    s.read_exact(&mut skip[..rest]).await.map_err(hop)?;
    Ok(())
}
