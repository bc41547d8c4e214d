//! The eight bytes each side sends before any frame: magic and protocol version.

use crate::{ProtocolError, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Magic that opens every Burrow connection.
pub const MAGIC: &[u8; 6] = b"BURROW";
/// Preamble length on the wire.
pub const PREAMBLE_LEN: usize = 8;

/// Encodes our preamble.
pub fn encode(version: u16) -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..6].copy_from_slice(MAGIC);
    out[6..].copy_from_slice(&version.to_be_bytes());
    out
}

/// Decodes a peer's preamble into its version, rejecting anything that is not ours.
pub fn decode(bytes: &[u8; PREAMBLE_LEN]) -> Result<u16, ProtocolError> {
    if &bytes[..6] != MAGIC {
        return Err(ProtocolError::BadPreamble(bytes.to_vec()));
    }
    Ok(u16::from_be_bytes([bytes[6], bytes[7]]))
}

/// Sends our preamble, reads the peer's and checks the versions match.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> Result<(), ProtocolError> {
    io.write_all(&encode(PROTOCOL_VERSION)).await?;
    io.flush().await?;
    read_and_check(io).await
}

/// Reads the peer's preamble and checks its version.
pub async fn read_and_check<S: AsyncRead + Unpin>(io: &mut S) -> Result<(), ProtocolError> {
    let mut buf = [0u8; PREAMBLE_LEN];
    let mut got = 0;
    while got < PREAMBLE_LEN {
        let n = io.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(if got == 0 {
                ProtocolError::Closed
            } else {
                ProtocolError::BadPreamble(buf[..got].to_vec())
            });
        }
        // Fail fast on garbage rather than waiting for eight bytes that may never come.
        let check = got + n;
        let m = check.min(6);
        if buf[..m] != MAGIC[..m] {
            return Err(ProtocolError::BadPreamble(buf[..check].to_vec()));
        }
        got = check;
    }
    let peer = decode(&buf)?;
    if peer != PROTOCOL_VERSION {
        return Err(ProtocolError::VersionMismatch {
            peer,
            ours: PROTOCOL_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn matching_versions_agree() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let (ra, rb) = tokio::join!(exchange(&mut a), exchange(&mut b));
        ra.unwrap();
        rb.unwrap();
    }

    #[tokio::test]
    async fn wrong_version_is_named() {
        let (mut a, mut b) = tokio::io::duplex(64);
        b.write_all(&encode(PROTOCOL_VERSION + 6)).await.unwrap();
        let err = read_and_check(&mut a).await.unwrap_err();
        assert!(err.to_string().contains("peer speaks version 7"), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_refused_at_once() {
        let (mut a, mut b) = tokio::io::duplex(64);
        b.write_all(b"GET / HTTP/1.1").await.unwrap();
        let err = read_and_check(&mut a).await.unwrap_err();
        assert!(matches!(err, ProtocolError::BadPreamble(_)), "{err}");
    }
}
