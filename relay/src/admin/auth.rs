//! The admin token: read from its file, or made on first start and written there, kept in
//! memory only as its SHA-256, and checked on every `/api` and `/metrics` request.

use super::error::ApiError;
use crate::config::RelayConfig;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, ResponseError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;
use tracing::warn;

/// What every generated admin token starts with, so a leaked one is recognisable (and
/// told apart from an agent's `brw_` token).
pub const TOKEN_PREFIX: &str = "bra_";
/// The token file's name in the state directory when `--admin-token-file` is not given.
pub const TOKEN_FILE: &str = "admin-token";

/// Why the admin token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("admin token file {}: {source}", path.display())]
    Io {
        /// The token file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file exists but holds no token.
    #[error("admin token file {} is empty", path.display())]
    Empty {
        /// The token file.
        path: PathBuf,
    },
    /// Neither a token, nor a file, nor a state directory to put one in.
    #[error("the admin API needs --admin-token-file, a state directory or BURROWD_ADMIN_TOKEN")]
    Nowhere,
}

/// The admin token as the relay keeps it: only its SHA-256.
#[derive(Clone)]
pub struct AdminToken {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(MASKED)")
    }
}

impl AdminToken {
    /// Keeps the hash of `secret`.
    pub fn new(secret: &str) -> Self {
        AdminToken {
            hash: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// The configured token, or the one in the token file (made there if it does not
    /// exist yet); with the file it came from, if any.
    pub fn load(cfg: &RelayConfig) -> Result<(Self, Option<PathBuf>), TokenError> {
        if let Some(secret) = &cfg.admin_token {
            return Ok((Self::new(secret.expose()), None));
        }
        let path = match (&cfg.admin_token_file, &cfg.state_dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dir.join(TOKEN_FILE),
            (None, None) => return Err(TokenError::Nowhere),
        };
        let secret = read_or_create(&path)?;
        Ok((Self::new(&secret), Some(path)))
    }

    /// Whether `presented` is the token; the hashes are compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let theirs: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.hash.ct_eq(&theirs).into()
    }
}

/// A new token: the prefix and 32 random bytes in URL-safe base64.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn read_or_create(path: &Path) -> Result<String, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.is_empty() {
                return Err(TokenError::Empty {
                    path: path.to_path_buf(),
                });
            }
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    warn!(file = %path.display(), "the admin token file is readable by other users; chmod 600 it");
                }
            }
            Ok(secret.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let secret = generate();
            // create_new: a second burrowd starting at the same moment must not overwrite
            // the token the first one already handed out.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(format!("{secret}\n").as_bytes())
                .map_err(io)?;
            Ok(secret)
        }
        Err(e) => Err(io(e)),
    }
}

/// Whether `path` needs the admin token: the API and the metrics; the dashboard's own
/// files do not (it asks for the token and sends it with each API call).
fn protected(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

/// The token of an `Authorization: Bearer` header.
fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Answers 401 to a protected request without the right token.
pub async fn guard(
    req: ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    if protected(req.path()) {
        let token = req.app_data::<web::Data<AdminToken>>();
        let ok = match (token, bearer(&req)) {
            (Some(t), Some(presented)) => t.matches(presented),
            _ => false,
        };
        if !ok {
            let mut r = ApiError::unauthorized().error_response();
            r.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
            return Ok(req.into_response(r).map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_shape_and_match_only_themselves() {
        let t = generate();
        assert!(t.starts_with("bra_") && t.len() == 4 + 43, "{t}");
        assert_ne!(t, generate());
        let kept = AdminToken::new(&t);
        assert!(kept.matches(&t));
        assert!(!kept.matches(&t[..t.len() - 1]));
        assert!(!kept.matches(""));
        assert_eq!(format!("{kept:?}"), "AdminToken(MASKED)");
    }

    #[test]
    fn the_file_is_made_once_with_mode_0600_and_read_back() {
        let dir = std::env::temp_dir().join(format!("burrowd-admin-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("admin-token");
        let made = read_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_or_create(&path).unwrap(), made);
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(
            read_or_create(&path),
            Err(TokenError::Empty { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_api_and_the_metrics_need_the_token() {
        assert!(protected("/api/accounts"));
        assert!(protected("/api"));
        assert!(protected("/metrics"));
        assert!(!protected("/"));
        assert!(!protected("/assets/app.js"));
        assert!(!protected("/apis"));
    }
}
