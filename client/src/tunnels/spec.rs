//! What a tunnel is on the agent side: its request to the relay and its local target.

use crate::local::addr::LocalAddr;
use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};

/// A tunnel the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    /// Its name (`command_line` for the one from the command line).
    pub name: String,
    /// What to ask the relay for, ngrok's free-form `metadata` included.
    pub request: TunnelRequest,
    /// Where streams go.
    pub local: LocalAddr,
    /// Whether http exchanges are captured for the inspector.
    pub inspect: bool,
    /// `rewrite`, `preserve` or a fixed Host value.
    pub host_header: Option<String>,
    /// TLS the agent terminates (tls tunnels with `crt` and `key`).
    pub tls: Option<crate::local::Termination>,
}

impl TunnelSpec {
    /// A spec with default options.
    pub fn new(name: impl Into<String>, request: TunnelRequest, local: LocalAddr) -> Self {
        TunnelSpec {
            name: name.into(),
            request,
            local,
            inspect: true,
            host_header: None,
            tls: None,
        }
    }
}

impl TunnelSpec {
    /// The protocol.
    pub fn proto(&self) -> TunnelProto {
        self.request.proto
    }
}

/// Parses `-bind-tls`.
pub fn parse_bind_tls(v: &str) -> Result<BindTls, BindTlsError> {
    match v.to_ascii_lowercase().as_str() {
        "both" => Ok(BindTls::Both),
        "true" | "https" => Ok(BindTls::Https),
        "false" | "http" => Ok(BindTls::Http),
        _ => Err(BindTlsError(v.to_string())),
    }
}

/// A `bind_tls` value that is none of both, true or false.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bind_tls {0:?}: want both, true or false")]
pub struct BindTlsError(pub String);

/// After a first bind, the names to ask for again so reconnects keep the same URLs.
pub fn sticky(request: &TunnelRequest, urls: &[String]) -> TunnelRequest {
    let mut r = request.clone();
    let Some(url) = urls.first() else { return r };
    let authority = url.split("://").nth(1).unwrap_or_default();
    match r.proto {
        TunnelProto::Tcp => {
            if let Some(port) = authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
                r.remote_port = Some(port);
            }
        }
        _ => {
            if r.hostname.is_none() && r.subdomain.is_none() {
                let host = authority.split(':').next().unwrap_or_default();
                r.hostname = Some(host.to_string());
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_names() {
        let base = TunnelRequest::new(TunnelProto::Http);
        let r = sticky(&base, &["https://ab12cd34.localhost:8443".into()]);
        assert_eq!(r.hostname.as_deref(), Some("ab12cd34.localhost"));
        let tcp = TunnelRequest {
            proto: TunnelProto::Tcp,
            ..base
        };
        assert_eq!(
            sticky(&tcp, &["tcp://localhost:12345".into()]).remote_port,
            Some(12345)
        );
    }
}
