//! Turning configuration entries, command-line flags and API bodies into tunnel specs,
//! with the same checks and the same error messages for all three.

use crate::cli::{Command, Flags};
use crate::config::file::{Proto, Scalar, TunnelConfig};
use crate::local::addr;
use crate::tunnels::spec::{parse_bind_tls, TunnelSpec};
use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};

fn proto(p: Proto) -> TunnelProto {
    match p {
        Proto::Http => TunnelProto::Http,
        Proto::Tcp => TunnelProto::Tcp,
        Proto::Tls => TunnelProto::Tls,
    }
}

/// Parses `user:password` basic-auth credentials.
pub fn check_auth(a: &str) -> Result<(), String> {
    match a.split_once(':') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(()),
        _ => Err("invalid auth: want \"user:password\"".into()),
    }
}

/// Builds and checks a tunnel from a config entry named `name`.
pub fn from_config(name: &str, t: &TunnelConfig) -> Result<TunnelSpec, String> {
    let p = proto(t.proto.ok_or("missing proto (http, tcp or tls)")?);
    let raw_addr = t.addr.as_ref().ok_or("missing addr")?.to_string();
    let local = addr::parse(p, &raw_addr)?;
    if let Some(dir) = &local.path {
        if !dir.is_dir() {
            return Err(format!(
                "addr {raw_addr:?}: {} is not a directory this agent can read",
                dir.display()
            ));
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
        burrow_http::hostname::validate_label(s)?;
    }
    if let Some(h) = &t.hostname {
        // The relay has the last word (its own domain cannot be covered); this catches
        // malformed names before anything starts.
        burrow_http::hostname::custom_hostname::<burrow_http::hostname::HostnameError>(h, "")?;
    }
    if p != TunnelProto::Http {
        for (set, key) in [
            (t.auth.is_some(), "auth"),
            (t.host_header.is_some(), "host_header"),
            (t.bind_tls.is_some(), "bind_tls"),
            (t.inspect.is_some(), "inspect"),
        ] {
            if set {
                return Err(format!("{key} applies to http tunnels only"));
            }
        }
    }
    if p == TunnelProto::Tcp && (t.subdomain.is_some() || t.hostname.is_some()) {
        return Err(
            "subdomain and hostname apply to http and tls tunnels; tcp uses remote_addr".into(),
        );
    }
    if p != TunnelProto::Tls && (t.crt.is_some() || t.key.is_some() || t.client_cas.is_some()) {
        return Err("crt, key and client_cas apply to tls tunnels only".into());
    }
    if t.crt.is_some() != t.key.is_some() {
        return Err("crt and key go together".into());
    }
    let remote_port = match &t.remote_addr {
        Some(r) if p == TunnelProto::Tcp => Some(parse_remote_addr(r)?),
        Some(_) => return Err("remote_addr applies to tcp tunnels only".into()),
        None => None,
    };
    if let Some(h) = &t.host_header {
        if h.is_empty() || h.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("invalid host_header {h:?}"));
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
        },
        local,
    );
    spec.inspect = t.inspect.unwrap_or(true);
    if t.host_header.as_deref() == Some("rewrite") && spec.local.path.is_some() {
        return Err("host_header rewrite needs a network address, not file://".into());
    }
    spec.host_header = t.host_header.clone();
    if let (Some(crt), Some(key)) = (&t.crt, &t.key) {
        spec.tls = Some(crate::local::Termination::load(
            std::path::Path::new(crt),
            std::path::Path::new(key),
            t.client_cas.as_deref().map(std::path::Path::new),
        )?);
    } else if t.client_cas.is_some() {
        return Err("client_cas needs crt and key: the agent must terminate TLS to check client certificates".into());
    }
    spec.metadata = t.metadata.clone();
    Ok(spec)
}

/// Parses `-remote-addr` / `remote_addr`: `host:port` (or a bare port).
pub fn parse_remote_addr(r: &str) -> Result<u16, String> {
    let p = r.rsplit(':').next().unwrap_or(r);
    p.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid remote_addr {r:?}: want HOST:PORT with a port 1-65535"))
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
        parse_remote_addr(r)
            .map_err(|e| anyhow::anyhow!("{}", e.replace("remote_addr", "-remote-addr")))?;
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
        let e = e
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
        assert_eq!(
            from_config("ssh", &c).unwrap().request.remote_port,
            Some(20022)
        );
        let mut c = t(Proto::Http, "80");
        c.auth = Some("nocolon".into());
        assert!(from_config("x", &c).unwrap_err().contains("user:password"));
        let mut c = t(Proto::Tcp, "22");
        c.subdomain = Some("a".into());
        assert!(from_config("x", &c)
            .unwrap_err()
            .contains("tcp uses remote_addr"));
        let mut c = t(Proto::Tls, "443");
        c.crt = Some("a.pem".into());
        assert!(from_config("x", &c).unwrap_err().contains("go together"));
        let mut c = t(Proto::Http, "80");
        c.bind_tls = Some(Scalar::Str("sometimes".into()));
        assert!(from_config("x", &c).unwrap_err().contains("bind_tls"));
        let files = from_config("x", &t(Proto::Http, "file:///tmp")).unwrap();
        assert_eq!(files.local.display(), "file:///tmp");
        assert!(from_config("x", &t(Proto::Http, "file:///no/such/dir"))
            .unwrap_err()
            .contains("not a directory"));
        assert!(from_config("x", &t(Proto::Http, "file://srv"))
            .unwrap_err()
            .contains("absolute"));
        assert!(from_config("x", &t(Proto::Tcp, "file:///srv")).is_err());
    }
}
