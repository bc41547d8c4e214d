//! The HTTP proxy handshake: `CONNECT host:port`, with basic auth when the URL has it.

use super::truncate;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest CONNECT response head accepted; real proxies send well under 1 KiB.
pub(super) const MAX_HEAD: usize = 8 * 1024;

/// Asks an HTTP proxy to tunnel to `target`, leaving the stream at the first tunnelled byte.
pub(super) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    paddr: &str,
    target: &str,
    auth: Option<&(String, String)>,
) -> io::Result<()> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = auth {
        let token = BASE64.encode(format!("{user}:{pass}").as_bytes());
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    let hop = |e: io::Error| io::Error::new(e.kind(), format!("proxy {paddr}: {e}"));
    s.write_all(req.as_bytes()).await.map_err(hop)?;
    s.flush().await.map_err(hop)?;

    // Byte by byte, because whatever follows the blank line belongs to the relay's TLS.
    let mut head = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("proxy {paddr}: CONNECT response head exceeds {MAX_HEAD} bytes"),
            ));
        }
        match s.read(&mut b).await.map_err(hop)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "proxy {paddr} closed the connection before answering CONNECT {target}"
                    ),
                ))
            }
            _ => head.push(b[0]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("").trim();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    let reason = parts.next().unwrap_or("").trim();
    let code = match code {
        Some(c) if version.starts_with("HTTP/") && (100..600).contains(&c) => c,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "proxy {paddr} sent a malformed reply to CONNECT {target}: {:?}",
                    truncate(status_line, 80)
                ),
            ))
        }
    };
    if (200..300).contains(&code) {
        return Ok(());
    }
    // tinyproxy, among others, answers a CONNECT that fails authentication with 401.
    let (kind, hint) = match (code, auth) {
        (401 | 407, Some(_)) => (
            io::ErrorKind::PermissionDenied,
            " (the proxy rejected the user and password in the proxy URL)",
        ),
        (401 | 407, None) => (
            io::ErrorKind::PermissionDenied,
            " (the proxy wants a user and password: put them in the proxy URL)",
        ),
        _ => (io::ErrorKind::ConnectionRefused, ""),
    };
    Err(io::Error::new(
        kind,
        format!(
            "proxy {paddr} refused CONNECT {target}: {code} {}{hint}",
            truncate(reason, 120)
        ),
    ))
}
