//! Turning configuration entries, command-line flags and API bodies into tunnel specs,
//! with the same checks and the same error messages for all three.

use crate::cli::{Command, Flags};
use crate::config::file::{Proto, Scalar, TunnelConfig};
use crate::local::addr::{self, AddrError};
use crate::local::TerminationError;
use crate::tunnels::spec::{parse_bind_tls, TunnelSpec};
use burrow_http::hostname::{custom_hostname, validate_label, HostnameError};
use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};
use std::path::PathBuf;

fn proto(p: Proto) -> TunnelProto {
    match p {
        Proto::Http => TunnelProto::Http,
        Proto::Tcp => TunnelProto::Tcp,
        Proto::Tls => TunnelProto::Tls,
    }
}

/// Why a tunnel entry (from the file, the command line or the API) cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No `proto`.
    #[error("missing proto (http, tcp or tls)")]
    MissingProto,
    /// No `addr`.
    #[error("missing addr")]
    MissingAddr,
    /// An `addr` that cannot be dialed or served.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// A `file://` addr naming something that is not a readable directory; refused up front
    /// rather than answering every request with an error.
    #[error("addr {addr:?}: {} is not a directory this agent can read", .dir.display())]
    NotADirectory {
        /// The addr as given.
        addr: String,
        /// The directory it names.
        dir: PathBuf,
    },
    /// A `bind_tls` that is not both, true or false.
    #[error(transparent)]
    BindTls(#[from] crate::tunnels::spec::BindTlsError),
    /// Malformed `auth`.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A malformed `subdomain` or `hostname`.
    #[error(transparent)]
    Hostname(#[from] HostnameError),
    /// An http-only key on a tcp or tls tunnel.
    #[error("{0} applies to http tunnels only")]
    HttpOnly(&'static str),
    /// `subdomain` or `hostname` on a tcp tunnel, whose public address is a port.
    #[error("subdomain and hostname apply to http and tls tunnels; tcp uses remote_addr")]
    NamesOnTcp,
    /// `crt`, `key` or `client_cas` on a tunnel the agent does not terminate TLS for.
    #[error("crt, key and client_cas apply to tls tunnels only")]
    TlsOnly,
    /// `crt` without `key` or the other way round.
    #[error("crt and key go together")]
    CrtKeyPair,
    /// A malformed `remote_addr`.
    #[error(transparent)]
    RemoteAddr(#[from] RemoteAddrError),
    /// `remote_addr` on an http or tls tunnel, whose public address is a name.
    #[error("remote_addr applies to tcp tunnels only")]
    RemoteAddrNotTcp,
    /// A `host_header` that is empty or holds spaces or control characters.
    #[error("invalid host_header {0:?}")]
    HostHeader(String),
    /// `host_header: rewrite` on a file server, which has no host to rewrite to.
    #[error("host_header rewrite needs a network address, not file://")]
    RewriteFiles,
    /// `crt`/`key`/`client_cas` that cannot be loaded.
    #[error(transparent)]
    Termination(#[from] TerminationError),
    /// `client_cas` without `crt` and `key`.
    #[error(
        "client_cas needs crt and key: the agent must terminate TLS to check client certificates"
    )]
    ClientCasAlone,
}

/// Basic-auth credentials that are not `user:password`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid auth: want \"user:password\"")]
pub struct AuthError;

/// A `remote_addr` whose port is missing or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote_addr {0:?}: want HOST:PORT with a port 1-65535")]
pub struct RemoteAddrError(pub String);

/// Parses `user:password` basic-auth credentials.
pub fn check_auth(a: &str) -> Result<(), AuthError> {
    match a.split_once(':') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(()),
        _ => Err(AuthError),
    }
}

/// Builds and checks a tunnel from a config entry named `name`.
pub fn from_config(name: &str, t: &TunnelConfig) -> Result<TunnelSpec, SpecError> {
    let p = proto(t.proto.ok_or(SpecError::MissingProto)?);
    let raw_addr = t.addr.as_ref().ok_or(SpecError::MissingAddr)?.to_string();
    let local = addr::parse(p, &raw_addr)?;
    if let Some(dir) = &local.path {
        if !dir.is_dir() {
            return Err(SpecError::NotADirectory {
                addr: raw_addr,
                dir: dir.clone(),
            });
        }
    }
    let bind_tls = match &t.bind_tls {
        None => BindTls::Both,
        Some(Scalar::Bool(true)) => BindTls::Https,
        Some(Scalar::Bool(false)) => BindTls::Http,
        Some(v) => parse_bind_tls(&v.to_string())?,
    };
    if let Some(a) = &t.auth {
        check_auth(a)?;
    }
    if let Some(s) = &t.subdomain {
        validate_label(s)?;
    }
    if let Some(h) = &t.hostname {
        // The relay has the last word (its own domain cannot be covered); this catches
        // malformed names before anything starts.
        custom_hostname(h, "")?;
    }
    if p != TunnelProto::Http {
        for (set, key) in [
            (t.auth.is_some(), "auth"),
            (t.host_header.is_some(), "host_header"),
            (t.bind_tls.is_some(), "bind_tls"),
            (t.inspect.is_some(), "inspect"),
        ] {
            if set {
                return Err(SpecError::HttpOnly(key));
            }
        }
    }
    if p == TunnelProto::Tcp && (t.subdomain.is_some() || t.hostname.is_some()) {
        return Err(SpecError::NamesOnTcp);
    }
    if p != TunnelProto::Tls && (t.crt.is_some() || t.key.is_some() || t.client_cas.is_some()) {
        return Err(SpecError::TlsOnly);
    }
    if t.crt.is_some() != t.key.is_some() {
        return Err(SpecError::CrtKeyPair);
    }
    let remote_port = match &t.remote_addr {
        Some(r) if p == TunnelProto::Tcp => Some(parse_remote_addr(r)?),
        Some(_) => return Err(SpecError::RemoteAddrNotTcp),
        None => None,
    };
    if let Some(h) = &t.host_header {
        if h.is_empty() || h.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(SpecError::HostHeader(h.clone()));
        }
    }
    let mut spec = TunnelSpec::new(
        name,
        TunnelRequest {
            proto: p,
            subdomain: t.subdomain.clone(),
            hostname: t.hostname.clone(),
            remote_port,
            bind_tls,
            auth: t.auth.clone(),
            host_header: relay_host_header(t.host_header.as_deref(), &local),
            remote_addr: t.remote_addr.clone(),
            // ngrok's `metadata` is opaque to the agent: the relay gets it as written.
            metadata: t.metadata.clone(),
        },
        local,
    );
    spec.inspect = t.inspect.unwrap_or(true);
    if t.host_header.as_deref() == Some("rewrite") && spec.local.path.is_some() {
        return Err(SpecError::RewriteFiles);
    }
    spec.host_header = t.host_header.clone();
    if let (Some(crt), Some(key)) = (&t.crt, &t.key) {
        spec.tls = Some(crate::local::Termination::load(
            std::path::Path::new(crt),
            std::path::Path::new(key),
            t.client_cas.as_deref().map(std::path::Path::new),
        )?);
    } else if t.client_cas.is_some() {
        return Err(SpecError::ClientCasAlone);
    }
    Ok(spec)
}

/// Parses `-remote-addr` / `remote_addr`: `host:port` (or a bare port).
pub fn parse_remote_addr(r: &str) -> Result<u16, RemoteAddrError> {
    let p = r.rsplit(':').next().unwrap_or(r);
    p.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| RemoteAddrError(r.to_string()))
}

/// The Host value the relay puts on requests: the local address for `rewrite`, the given
/// value for anything but `preserve`.
fn relay_host_header(mode: Option<&str>, local: &addr::LocalAddr) -> Option<String> {
    match mode? {
        "preserve" => None,
        "rewrite" => {
            let default = if local.scheme == "https" { 443 } else { 80 };
            Some(if local.port == default && !local.host.contains(':') {
                local.host.clone()
            } else {
                local.host_port()
            })
        }
        v => Some(v.to_string()),
    }
}

/// The command-line tunnel, with its config entry's options under the flags.
pub fn from_flags(command: &Command, flags: &Flags) -> anyhow::Result<TunnelSpec> {
    use crate::config::file::{Proto, Scalar, TunnelConfig};
    let (proto, addr) = match command {
        Command::Http(a) => (Proto::Http, a),
        Command::Tcp(a) => (Proto::Tcp, a),
        Command::Tls(a) => (Proto::Tls, a),
        _ => anyhow::bail!("not a tunnel command"),
    };
    if let Some(r) = &flags.remote_addr {
        parse_remote_addr(r).map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().replace("remote_addr", "-remote-addr"))
        })?;
    }
    let t = TunnelConfig {
        proto: Some(proto),
        addr: Some(Scalar::Str(addr.clone())),
        inspect: flags.inspect,
        auth: flags.auth.clone(),
        host_header: flags.host_header.clone(),
        bind_tls: flags.bind_tls.clone().map(Scalar::Str),
        subdomain: flags.subdomain.clone(),
        hostname: flags.hostname.clone(),
        crt: flags.crt.clone(),
        key: flags.key.clone(),
        client_cas: flags.client_cas.clone(),
        remote_addr: flags.remote_addr.clone(),
        metadata: None,
    };
    from_config("command_line", &t).map_err(|e| {
        // The checks are shared with the config file, whose key names the user did not type.
        let e = e
            .to_string()
            .replace("bind_tls", "-bind-tls")
            .replace("invalid auth", "invalid -auth");
        anyhow::anyhow!("{e}\nTry 'burrow help' for usage.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: Proto, addr: &str) -> TunnelConfig {
        TunnelConfig {
            proto: Some(proto),
            addr: Some(Scalar::Str(addr.into())),
            ..Default::default()
        }
    }

    #[test]
    fn good_and_bad_entries() {
        let s = from_config("web", &t(Proto::Http, "8080")).unwrap();
        assert_eq!(s.local.display(), "http://localhost:8080");
        let mut c = t(Proto::Tcp, "22");
        c.remote_addr = Some("localhost:20022".into());
        c.metadata = Some("{\"owner\": \"ops\"}".into());
        let ssh = from_config("ssh", &c).unwrap().request;
        assert_eq!(ssh.remote_port, Some(20022));
        assert_eq!(ssh.remote_addr.as_deref(), Some("localhost:20022"));
        assert_eq!(ssh.metadata.as_deref(), Some("{\"owner\": \"ops\"}"));
        let mut c = t(Proto::Http, "80");
        c.auth = Some("nocolon".into());
        assert!(from_config("x", &c)
            .unwrap_err()
            .to_string()
            .contains("user:password"));
        let mut c = t(Proto::Tcp, "22");
        c.subdomain = Some("a".into());
        assert!(from_config("x", &c)
            .unwrap_err()
            .to_string()
            .contains("tcp uses remote_addr"));
        let mut c = t(Proto::Tls, "443");
        c.crt = Some("a.pem".into());
        assert!(from_config("x", &c)
            .unwrap_err()
            .to_string()
            .contains("go together"));
        let mut c = t(Proto::Http, "80");
        c.bind_tls = Some(Scalar::Str("sometimes".into()));
        assert!(from_config("x", &c)
            .unwrap_err()
            .to_string()
            .contains("bind_tls"));
        let files = from_config("x", &t(Proto::Http, "file:///tmp")).unwrap();
        assert_eq!(files.local.display(), "file:///tmp");
        assert!(from_config("x", &t(Proto::Http, "file:///no/such/dir"))
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
        assert!(from_config("x", &t(Proto::Http, "file://srv"))
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        assert!(from_config("x", &t(Proto::Tcp, "file:///srv")).is_err());
    }
}
