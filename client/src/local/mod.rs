//! Reaching the local service of a tunnel: a TCP connection, TLS to an https upstream
//! (not verified: it is the user's own server, usually with a self-signed certificate),
//! or the built-in file server; and terminating TLS for tls tunnels given `crt`/`key`.

pub mod addr;
pub mod files;

use crate::local::addr::LocalAddr;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to a local service.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A dialed local service.
pub enum Local {
    /// Plain TCP, split without locking.
    Tcp(TcpStream),
    /// TLS to an https upstream, or a pipe to the file server.
    Other(Box<dyn Io>),
}

/// Bytes buffered between a visitor's stream and the built-in file server.
const FILE_PIPE: usize = 256 * 1024;

/// Connects to `local` as its scheme says.
pub async fn dial(local: &LocalAddr) -> std::io::Result<Local> {
    if let Some(root) = &local.path {
        // The file server answers on an in-memory pipe, one per visitor connection, rather
        // than on a loopback port: a port would let any local user read the directory past
        // the tunnel's basic auth, and would need a server kept alive per root.
        let (ours, theirs) = tokio::io::duplex(FILE_PIPE);
        let root = root.clone();
        actix_rt::spawn(async move {
            if let Err(e) = files::serve(&root, theirs).await {
                tracing::debug!(err = %e, "file server connection ended");
            }
        });
        return Ok(Local::Other(Box::new(ours)));
    }
    let sock = TcpStream::connect(local.host_port()).await?;
    let _ = sock.set_nodelay(true);
    if local.scheme != "https" {
        return Ok(Local::Tcp(sock));
    }
    let name = ServerName::try_from(local.host.clone()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad host {:?}: {e}", local.host),
        )
    })?;
    let tls = tokio_rustls::TlsConnector::from(unverified_client_tls())
        .connect(name, sock)
        .await
        .map_err(|e| std::io::Error::other(format!("TLS to the local server failed: {e}")))?;
    Ok(Local::Other(Box::new(tls)))
}

/// Client TLS that accepts any certificate (handshake signatures are still checked), for
/// https upstreams: the user's own server, usually self-signed. Offers only HTTP/1.1.
pub fn unverified_client_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(burrow_http::tls::unverified_client_config(&[b"http/1.1"])))
        .clone()
}

/// TLS the agent terminates for a tls tunnel (`crt`, `key`, optional `client_cas`).
#[derive(Clone)]
pub struct Termination {
    /// The files it was built from, which is what makes two of them equal.
    pub files: (PathBuf, PathBuf, Option<PathBuf>),
    /// The server configuration.
    pub config: Arc<rustls::ServerConfig>,
}

/// Why `crt`, `key` or `client_cas` cannot terminate TLS; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TerminationError {
    /// The certificate or key file is unreadable or holds no usable PEM (the message names
    /// the file).
    #[error("{0:#}")]
    Files(anyhow::Error),
    /// The TLS library refused its own default protocol versions.
    #[error("{0}")]
    Protocols(rustls::Error),
    /// The client CA file cannot be read.
    #[error("cannot read client_cas file {path}: {err}")]
    ReadCas {
        /// The client CA file.
        path: PathBuf,
        /// What reading it said.
        err: rustls::pki_types::pem::Error,
    },
    /// The client CA file is not valid PEM.
    #[error("bad PEM in client_cas file {path}: {err}")]
    CasPem {
        /// The client CA file.
        path: PathBuf,
        /// What parsing it said.
        err: rustls::pki_types::pem::Error,
    },
    /// The client CA file holds no certificate, which would refuse every client.
    #[error("no certificate found in {}", .0.display())]
    NoCas(PathBuf),
    /// A certificate in the client CA file is not a usable CA.
    #[error("bad CA certificate in {path}: {err}")]
    BadCa {
        /// The client CA file.
        path: PathBuf,
        /// What the TLS library said.
        err: rustls::Error,
    },
    /// No client verifier can be built from the CAs.
    #[error("client_cas {path}: {err}")]
    Verifier {
        /// The client CA file.
        path: PathBuf,
        /// What the TLS library said.
        err: rustls::server::VerifierBuilderError,
    },
    /// The key does not fit the certificate, or the certificate is unusable.
    #[error("crt {crt} and key {key}: {err}")]
    Mismatch {
        /// The certificate file.
        crt: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What the TLS library said.
        err: rustls::Error,
    },
}

impl std::fmt::Debug for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Termination")
            .field("files", &self.files)
            .finish()
    }
}

impl PartialEq for Termination {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

impl Eq for Termination {}

impl Termination {
    /// Loads the certificate, key and client CAs, naming the file on any problem.
    pub fn load(
        crt: &Path,
        key: &Path,
        client_cas: Option<&Path>,
    ) -> Result<Self, TerminationError> {
        let (certs, key_der) =
            burrow_http::tls::load_pem_pair(crt, key).map_err(TerminationError::Files)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TerminationError::Protocols)?;
        let builder = match client_cas {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let cas: Vec<_> = CertificateDer::pem_file_iter(path)
                    .map_err(|err| TerminationError::ReadCas {
                        path: path.to_path_buf(),
                        err,
                    })?
                    .collect::<Result<_, _>>()
                    .map_err(|err| TerminationError::CasPem {
                        path: path.to_path_buf(),
                        err,
                    })?;
                if cas.is_empty() {
                    return Err(TerminationError::NoCas(path.to_path_buf()));
                }
                for c in cas {
                    roots.add(c).map_err(|err| TerminationError::BadCa {
                        path: path.to_path_buf(),
                        err,
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|err| TerminationError::Verifier {
                    path: path.to_path_buf(),
                    err,
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config =
            builder
                .with_single_cert(certs, key_der)
                .map_err(|err| TerminationError::Mismatch {
                    crt: crt.to_path_buf(),
                    key: key.to_path_buf(),
                    err,
                })?;
        Ok(Termination {
            files: (
                crt.to_path_buf(),
                key.to_path_buf(),
                client_cas.map(Path::to_path_buf),
            ),
            config: Arc::new(config),
        })
    }
}
