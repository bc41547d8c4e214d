//! The gateway's host key: made once and kept in the state directory, so that users'
//! `known_hosts` entries stay valid across restarts.

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// File name of the host key inside the state directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Why the host key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The file exists but is not an OpenSSH private key.
    #[error("cannot read the SSH host key {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A new key could not be written.
    #[error("cannot write the SSH host key {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// The key in `dir` (made there on first use, readable by its owner only), or a key that
/// lives as long as the process when there is no state directory.
pub fn load_or_create(dir: Option<&Path>) -> Result<PrivateKey, HostKeyError> {
    let Some(dir) = dir else {
        return Ok(generate());
    };
    let path = dir.join(HOST_KEY_FILE);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(pem) => {
            return PrivateKey::from_openssh(pem.as_bytes()).map_err(|e| HostKeyError::Read {
                path: shown,
                reason: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(HostKeyError::Read {
                path: shown,
                reason: e.to_string(),
            })
        }
    }
    let key = generate();
    let write_err = |reason: String| HostKeyError::Write {
        path: shown.clone(),
        reason,
    };
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| write_err(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| write_err(e.to_string()))?;
    // create_new: two relays starting on one directory must not overwrite each other's key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| write_err(e.to_string()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| write_err(e.to_string()))?;
    Ok(key)
}

fn generate() -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()))
}

/// The key's fingerprint as `ssh-keygen -l` and OpenSSH's first-connection prompt show it.
pub fn fingerprint(key: &PrivateKey) -> String {
    match key.public_key().to_bytes() {
        Ok(blob) => burrow_store::ssh::fingerprint_of(&blob),
        Err(_) => String::from("(unknown)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_owner_only_and_read_back() {
        let dir = std::env::temp_dir().join(format!("burrow-hostkey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = load_or_create(Some(&dir)).unwrap();
        let mode = std::fs::metadata(dir.join(HOST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(Some(&dir)).unwrap();
        assert_eq!(fingerprint(&first), fingerprint(&again));
        assert!(fingerprint(&first).starts_with("SHA256:"));
        std::fs::write(dir.join(HOST_KEY_FILE), "garbage").unwrap();
        let err = load_or_create(Some(&dir)).unwrap_err().to_string();
        assert!(err.contains(HOST_KEY_FILE), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
