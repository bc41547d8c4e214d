//! The relay's TLS: a certificate from files, or a CA of its own that issues certificates
//! for the relay's names on demand (so `*.localhost`, which clients refuse as a wildcard,
//! still gets an exact certificate per host).

use anyhow::Context;
use dashmap::DashMap;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// Most on-demand certificates kept; the cache starts over past it.
const MAX_CACHED_CERTS: usize = 10_000;

/// Where the relay's certificates come from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// A certificate chain and key in PEM files (e.g. a wildcard for the domain).
    Files {
        /// PEM certificate chain.
        cert: std::path::PathBuf,
        /// PEM private key.
        key: std::path::PathBuf,
    },
    /// The relay's own CA, kept in the state directory (or in memory without one).
    SelfSigned,
}

/// The relay's TLS identity, shared by the control and https listeners.
pub struct RelayTls {
    /// Server configuration for both listeners.
    pub server_config: Arc<rustls::ServerConfig>,
    /// PEM of the CA agents and clients must trust, when self-signed.
    pub ca_pem: Option<String>,
    /// SHA-256 fingerprint of the CA (or leaf) certificate, hex with colons.
    pub fingerprint: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Burrow relay CA");
    dn.push(DnType::OrganizationName, "Burrow");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2044, 1, 1);
    params
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn load_or_create_ca(state_dir: Option<&Path>) -> anyhow::Result<(Ca, String)> {
    if let Some(dir) = state_dir {
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if cert_path.exists() && key_path.exists() {
            let pem = std::fs::read_to_string(&cert_path)
                .with_context(|| format!("reading {}", cert_path.display()))?;
            let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path)?)
                .with_context(|| format!("parsing {}", key_path.display()))?;
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .with_context(|| format!("parsing {}", cert_path.display()))?;
            return Ok((
                Ca {
                    issuer: Issuer::new(ca_params(), key),
                    der,
                },
                pem,
            ));
        }
    }
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    let pem = cert.pem();
    if let Some(dir) = state_dir {
        std::fs::create_dir_all(dir)?;
        write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
        std::fs::write(dir.join("ca.pem"), &pem)?;
    }
    Ok((
        Ca {
            issuer: Issuer::new(ca_params(), key),
            der: cert.der().clone(),
        },
        pem,
    ))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(data)
}

impl Ca {
    fn issue(&self, names: &[String]) -> anyhow::Result<CertifiedKey> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].clone());
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2044, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("issued key: {e}"))?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.der.clone()],
            signer,
        ))
    }
}

/// Picks a certificate by SNI, issuing one from the CA for names the relay serves.
struct OnDemand {
    ca: Ca,
    domain: String,
    default: Arc<CertifiedKey>,
    cache: DashMap<String, Arc<CertifiedKey>>,
    router: Arc<crate::router::Router>,
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("domain", &self.domain)
            .finish()
    }
}

impl ResolvesServerCert for OnDemand {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        // Names under the relay's domain, and custom hostnames while a tunnel holds them
        // (wildcards included), get a certificate of their own.
        let ours = name == self.domain
            || name.ends_with(&format!(".{}", self.domain))
            || self.router.lookup(&name).is_some();
        if !ours {
            return Some(self.default.clone());
        }
        if let Some(c) = self.cache.get(&name) {
            return Some(c.clone());
        }
        let issued = Arc::new(self.ca.issue(std::slice::from_ref(&name)).ok()?);
        if self.cache.len() >= MAX_CACHED_CERTS {
            self.cache.clear();
        }
        self.cache.insert(name, issued.clone());
        Some(issued)
    }
}

struct Fixed(Arc<CertifiedKey>);

impl std::fmt::Debug for Fixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fixed")
    }
}

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl RelayTls {
    /// Builds the relay's TLS identity.
    pub fn new(
        source: &TlsSource,
        domain: &str,
        state_dir: Option<&Path>,
        router: Arc<crate::router::Router>,
    ) -> anyhow::Result<Self> {
        let builder = rustls::ServerConfig::builder().with_no_client_auth();
        let (resolver, ca_pem, fp): (Arc<dyn ResolvesServerCert>, _, _) = match source {
            TlsSource::Files { cert, key } => {
                let (certs, key) = burrow_http::tls::load_pem_pair(cert, key)?;
                let fp = fingerprint(&certs[0]);
                let signer = rustls::crypto::ring::sign::any_supported_type(&key)
                    .context("unsupported private key type")?;
                (
                    Arc::new(Fixed(Arc::new(CertifiedKey::new(certs, signer)))),
                    None,
                    fp,
                )
            }
            TlsSource::SelfSigned => {
                let (ca, pem) = load_or_create_ca(state_dir)?;
                let fp = fingerprint(&ca.der);
                let default_names = vec![
                    domain.to_string(),
                    "localhost".into(),
                    "127.0.0.1".into(),
                    "::1".into(),
                ];
                let default = Arc::new(ca.issue(&default_names)?);
                let resolver = OnDemand {
                    ca,
                    domain: domain.to_ascii_lowercase(),
                    default,
                    cache: DashMap::new(),
                    router,
                };
                (Arc::new(resolver), Some(pem), fp)
            }
        };
        let mut cfg = builder.with_cert_resolver(resolver);
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(RelayTls {
            server_config: Arc::new(cfg),
            ca_pem,
            fingerprint: fp,
        })
    }
}
