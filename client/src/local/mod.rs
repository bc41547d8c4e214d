//! Reaching the local service of a tunnel: a TCP connection, TLS to an https upstream
//! (not verified: it is the user's own server, usually with a self-signed certificate),
//! or the built-in file server; and terminating TLS for tls tunnels given `crt`/`key`.

pub mod addr;
pub mod files;

use crate::local::addr::LocalAddr;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
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
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(cfg)
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS the agent terminates for a tls tunnel (`crt`, `key`, optional `client_cas`).
#[derive(Clone)]
pub struct Termination {
    /// The files it was built from, which is what makes two of them equal.
    pub files: (PathBuf, PathBuf, Option<PathBuf>),
    /// The server configuration.
    pub config: Arc<rustls::ServerConfig>,
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
    pub fn load(crt: &Path, key: &Path, client_cas: Option<&Path>) -> Result<Self, String> {
        let (certs, key_der) =
            burrow_http::tls::load_pem_pair(crt, key).map_err(|e| format!("{e:#}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match client_cas {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let cas: Vec<_> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("cannot read client_cas file {}: {e}", path.display()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("bad PEM in client_cas file {}: {e}", path.display()))?;
                if cas.is_empty() {
                    return Err(format!("no certificate found in {}", path.display()));
                }
                for c in cas {
                    roots
                        .add(c)
                        .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("client_cas {}: {e}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key_der)
            .map_err(|e| format!("crt {} and key {}: {e}", crt.display(), key.display()))?;
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
