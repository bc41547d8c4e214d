//! Auth token secrets: generation, hashing, and the hint that tells them apart in listings.

use crate::error::StoreError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// What every secret the store issues starts with, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "brw_";

/// A new secret: the prefix and 32 random bytes in URL-safe base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new token id: `tok_` and 12 random hex digits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 6];
    OsRng.fill_bytes(&mut bytes);
    format!("tok_{}", hex(&bytes))
}

/// The hex SHA-256 of a secret: what the store keeps in its place.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// The start of a secret and `…`: the 4 characters after the `brw_` prefix of an issued
/// secret, or of a secret chosen elsewhere at most a quarter of it, so a short one is not
/// half given away.
pub fn hint(secret: &str) -> String {
    // A short secret that merely starts like ours gets no special treatment: showing the
    // prefix whole could show the whole secret.
    let (prefix, rest) = match secret.strip_prefix(SECRET_PREFIX).filter(|r| r.len() >= 16) {
        Some(rest) => (SECRET_PREFIX, rest),
        None => ("", secret),
    };
    let shown = 4.min(rest.chars().count() / 4);
    let head: String = rest.chars().take(shown).collect();
    format!("{prefix}{head}…")
}

/// Checks a secret given from outside: 1 to 1024 bytes, no whitespace or control characters.
pub fn check_secret(secret: &str) -> Result<(), StoreError> {
    let ok = (1..=1024).contains(&secret.len())
        && !secret.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidSecret)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_ids_and_hashes_have_their_shape() {
        let s = new_secret();
        assert!(s.starts_with("brw_") && s.len() == 4 + 43, "{s}");
        assert_ne!(s, new_secret());
        let id = new_id();
        assert!(id.starts_with("tok_") && id.len() == 16, "{id}");
        assert!(id[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        // SHA-256 of "abc" from FIPS 180-2.
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hints_never_show_the_whole_secret() {
        let issued = new_secret();
        assert_eq!(hint(&issued), format!("{}…", &issued[..8]));
        assert_eq!(hint("brw_AbCdEfGh"), "brw…");
        assert_eq!(hint("s3cret-s3cret-s3cret"), "s3cr…");
        assert_eq!(hint("s3cret"), "s…");
        assert_eq!(hint("abc"), "…");
        assert_eq!(hint("brw_"), "b…");
    }

    #[test]
    fn outside_secrets_are_checked() {
        check_secret("s3cret").unwrap();
        for bad in ["", "a b", "a\n", &"x".repeat(1025)] {
            assert!(matches!(check_secret(bad), Err(StoreError::InvalidSecret)));
        }
    }
}
