//! SSH public keys: one authorized_keys line parsed and fingerprinted as `ssh-keygen -l` does.

use crate::error::StoreError;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The key types accepted; DSA and the certificate types are left out on purpose.
pub const ALGORITHMS: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A 16384-bit RSA key is under 3 KiB of base64; anything much longer is not a key.
const MAX_LINE: usize = 8 * 1024;

/// An authorized_keys line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// The key type.
    pub algorithm: String,
    /// `SHA256:` and the unpadded base64 of the blob's SHA-256.
    pub fingerprint: String,
    /// The comment, possibly empty.
    pub comment: String,
    /// The line rebuilt with single spaces.
    pub line: String,
}

/// Parses `algorithm base64 [comment]`, refusing option prefixes and unknown key types, and
/// checking that the blob decodes and names the same algorithm.
pub fn parse_key(line: &str) -> Result<ParsedKey, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidSshKey {
        line: shorten(line),
        reason: reason.into(),
    };
    if line.len() > MAX_LINE {
        return Err(invalid("longer than a public key can be"));
    }
    let line = line.trim();
    if line.contains(['\n', '\r']) {
        return Err(invalid("give one key per line"));
    }
    let mut fields = line.split_whitespace();
    let algorithm = fields.next().ok_or_else(|| invalid("empty line"))?;
    if !ALGORITHMS.contains(&algorithm) {
        // Options (`command="…"`, `from=…`) would limit the key in sshd but mean nothing here.
        let options = line
            .split_whitespace()
            .skip(1)
            .any(|f| ALGORITHMS.contains(&f));
        return Err(invalid(if options {
            "options before the key are not accepted"
        } else {
            "unknown key type (accepted: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, \
             sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com)"
        }));
    }
    let encoded = fields
        .next()
        .ok_or_else(|| invalid("no key after the type"))?;
    let blob = STANDARD
        .decode(encoded)
        .map_err(|_| invalid("the key is not valid base64"))?;
    if first_string(&blob) != Some(algorithm.as_bytes()) {
        return Err(invalid("the key data is not a key of that type"));
    }
    let comment = fields.collect::<Vec<_>>().join(" ");
    let mut canonical = format!("{algorithm} {encoded}");
    if !comment.is_empty() {
        canonical = format!("{canonical} {comment}");
    }
    Ok(ParsedKey {
        algorithm: algorithm.into(),
        fingerprint: fingerprint_of(&blob),
        comment,
        line: canonical,
    })
}

/// The fingerprint of a key blob, as `ssh-keygen -l` prints it.
pub fn fingerprint_of(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The first SSH wire string (u32 length, bytes) of a blob, if one is there with key data after it.
fn first_string(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let end = 4usize.checked_add(len)?;
    (blob.len() > end).then(|| &blob[4..end])
}

/// The start of a line for an error message: enough to recognise it.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519 -C alice@laptop`; the fingerprints are what
    // `ssh-keygen -lf` printed for these lines.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKgIP1G6BnlC8BuED88ddNaEWuR6wAasfk/C+Sz/K+lO alice@laptop";
    const ED25519_FP: &str = "SHA256:Fjhgf9INuYXUhsBSnjY63ejVRwKjlZeug13Goz8/tVI";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMY96dvUBknC9lYq54iryWSLHgEN7BAjRqkX8czplq3Y5tKB4PfXPdG1RGjg2LIM4p5VZ8X2tKJnX5BTELqsif8= ops";
    const ECDSA_FP: &str = "SHA256:/5RfQaoXuWTR3zq/ILV7EbXpyTKAXPNL4sL3qU9V+eo";

    fn reason(line: &str) -> String {
        match parse_key(line) {
            Err(StoreError::InvalidSshKey { reason, .. }) => reason,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        let k = parse_key(ED25519).unwrap();
        assert_eq!(k.fingerprint, ED25519_FP);
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "alice@laptop");
        assert_eq!(k.line, ED25519);
        assert_eq!(parse_key(ECDSA).unwrap().fingerprint, ECDSA_FP);
    }

    #[test]
    fn comments_are_optional_and_whitespace_is_normalised() {
        let (alg, blob) = ED25519.rsplit_once(' ').unwrap().0.split_once(' ').unwrap();
        let k = parse_key(&format!("  {alg}\t{blob}  ")).unwrap();
        assert_eq!(k.comment, "");
        assert_eq!(k.line, format!("{alg} {blob}"));
        let k = parse_key(&format!("{alg} {blob} two  words")).unwrap();
        assert_eq!(k.comment, "two words");
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(reason(&format!("command=\"ls\" {ED25519}")).contains("options"));
        assert!(reason(&format!("from=\"10.0.0.1\",no-pty {ED25519}")).contains("options"));
        assert!(reason("ssh-dss AAAAB3NzaC1kc3MAAACBAP").contains("unknown key type"));
        assert!(reason("").contains("empty"));
        assert!(reason("ssh-ed25519").contains("no key"));
        assert!(reason("ssh-ed25519 !!!notbase64").contains("base64"));
        let rsa_named_ed = ED25519.replace("ssh-ed25519 ", "ssh-rsa ");
        assert!(reason(&rsa_named_ed).contains("not a key of that type"));
        let truncated = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5";
        assert!(reason(truncated).contains("not a key of that type"));
        assert!(reason(&format!("{ED25519}\n{ECDSA}")).contains("one key"));
        assert!(reason(&"a".repeat(MAX_LINE + 1)).contains("longer"));
    }
}
