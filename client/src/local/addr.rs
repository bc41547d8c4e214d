//! Local addresses a tunnel forwards to: a port, `host:port`, or a URL.

use burrow_protocol::control::TunnelProto;

/// Where the agent connects for each stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddr {
    /// `http`, `https`, `tcp` or `file`.
    pub scheme: &'static str,
    /// Host to dial.
    pub host: String,
    /// Port to dial.
    pub port: u16,
    /// The directory the built-in file server serves (`file`).
    pub path: Option<std::path::PathBuf>,
}

impl LocalAddr {
    /// `host:port`, for dialing and messages.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The normalised form ngrok shows: `http://localhost:8080` or `localhost:22`.
    pub fn display(&self) -> String {
        if let Some(p) = &self.path {
            let p = p.display().to_string();
            return format!("file://{}{p}", if p.starts_with('/') { "" } else { "/" });
        }
        match self.scheme {
            "tcp" => self.host_port(),
            s => format!("{s}://{}", self.host_port()),
        }
    }
}

fn port(s: &str, whole: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!(
            "invalid address {whole:?}: port {p} is out of range 1-65535"
        )),
        Err(_) => Err(format!(
            "invalid address {whole:?}: {s:?} is not a port number"
        )),
    }
}

/// Parses a tunnel's address for its protocol.
pub fn parse(proto: TunnelProto, s: &str) -> Result<LocalAddr, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("missing address: give a port, host:port or a URL".into());
    }
    if s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("file://"))
    {
        if proto != TunnelProto::Http {
            return Err(format!(
                "invalid address {s:?}: file:// fits http tunnels only"
            ));
        }
        let path = crate::local::files::parse_file_url(s)?;
        return Ok(LocalAddr {
            scheme: "file",
            host: String::new(),
            port: 0,
            path: Some(path),
        });
    }
    let (scheme, rest) = match s.split_once("://") {
        Some((sch, rest)) => {
            let sch = sch.to_ascii_lowercase();
            let scheme = match (proto, sch.as_str()) {
                (TunnelProto::Http, "http") => "http",
                (TunnelProto::Http, "https") => "https",
                (TunnelProto::Tcp | TunnelProto::Tls, "tcp") => "tcp",
                _ => {
                    return Err(format!(
                        "invalid address {s:?}: scheme {sch:?} does not fit a {proto} tunnel"
                    ))
                }
            };
            (Some(scheme), rest.trim_end_matches('/'))
        }
        None => (None, s),
    };
    if rest.contains('/') {
        return Err(format!("invalid address {s:?}: a path is not allowed here"));
    }
    let (host, p) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid address {s:?}: unclosed '['"))?;
        (h.to_string(), after.strip_prefix(':').map(str::to_string))
    } else if rest.bytes().all(|b| b.is_ascii_digit()) {
        ("localhost".to_string(), Some(rest.to_string()))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    {
        return Err(format!("invalid address {s:?}: bad host {host:?}"));
    }
    let port = match p {
        Some(p) => port(&p, s)?,
        None => match scheme {
            Some("https") => 443,
            Some("http") => 80,
            _ if proto == TunnelProto::Http => 80,
            _ => return Err(format!("invalid address {s:?}: missing port")),
        },
    };
    let scheme = match (scheme, proto) {
        (Some(s), _) => s,
        // A bare 443 is almost always a TLS server.
        (None, TunnelProto::Http) if port == 443 => "https",
        (None, TunnelProto::Http) => "http",
        (None, _) => "tcp",
    };
    Ok(LocalAddr {
        scheme,
        host,
        port,
        path: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_an_error_not_a_panic() {
        for bad in ["123456é", "é", "file:/é", "fileé://x"] {
            assert!(parse(TunnelProto::Http, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms() {
        let h = |s| parse(TunnelProto::Http, s).map(|a| a.display());
        assert_eq!(h("8080").unwrap(), "http://localhost:8080");
        assert_eq!(h("example.com:81").unwrap(), "http://example.com:81");
        assert_eq!(h("http://10.0.0.2:3000").unwrap(), "http://10.0.0.2:3000");
        assert_eq!(
            h("https://localhost:8443").unwrap(),
            "https://localhost:8443"
        );
        assert_eq!(h("443").unwrap(), "https://localhost:443");
        assert_eq!(h("[::1]:80").unwrap(), "http://[::1]:80");
        let t = |s| parse(TunnelProto::Tcp, s).map(|a| a.display());
        assert_eq!(t("22").unwrap(), "localhost:22");
        assert_eq!(t("db:5432").unwrap(), "db:5432");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |p, s| parse(p, s).unwrap_err();
        assert!(e(TunnelProto::Http, "70000").contains("out of range"));
        assert!(e(TunnelProto::Http, "0").contains("out of range"));
        assert!(e(TunnelProto::Http, "host:abc").contains("not a port"));
        assert!(e(TunnelProto::Tcp, "localhost").contains("missing port"));
        assert!(e(TunnelProto::Tcp, "http://x:1").contains("does not fit"));
        assert!(e(TunnelProto::Http, "").contains("missing address"));
    }
}
