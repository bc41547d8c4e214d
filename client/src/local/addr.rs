//! Local addresses a tunnel forwards to: a port, `host:port`, or a URL.

use crate::local::files::FileUrlError;
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

/// Why a tunnel's address cannot be dialed; each variant carries the address as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// Nothing given.
    #[error("missing address: give a port, host:port or a URL")]
    Missing,
    /// `file://` on a tcp or tls tunnel, which carry no HTTP to serve files over.
    #[error("invalid address {0:?}: file:// fits http tunnels only")]
    FileNotHttp(String),
    /// A `file://` URL that names no usable directory.
    #[error(transparent)]
    FileUrl(#[from] FileUrlError),
    /// A URL scheme the tunnel's protocol cannot speak to.
    #[error("invalid address {addr:?}: scheme {scheme:?} does not fit a {proto} tunnel")]
    Scheme {
        /// The address as given.
        addr: String,
        /// The scheme, lowercased.
        scheme: String,
        /// The tunnel's protocol.
        proto: TunnelProto,
    },
    /// A path after the authority: the agent forwards whole requests, it cannot prefix them.
    #[error("invalid address {0:?}: a path is not allowed here")]
    Path(String),
    /// `[` without `]`.
    #[error("invalid address {0:?}: unclosed '['")]
    UnclosedBracket(String),
    /// An empty host or one with characters no host name has.
    #[error("invalid address {addr:?}: bad host {host:?}")]
    Host {
        /// The address as given.
        addr: String,
        /// The host part.
        host: String,
    },
    /// A port outside 1-65535.
    #[error("invalid address {addr:?}: port {port} is out of range 1-65535")]
    PortOutOfRange {
        /// The address as given.
        addr: String,
        /// The port asked for.
        port: u32,
    },
    /// A port that is not a number.
    #[error("invalid address {addr:?}: {port:?} is not a port number")]
    PortNotNumber {
        /// The address as given.
        addr: String,
        /// The port part.
        port: String,
    },
    /// A tcp or tls address without a port, which has no default.
    #[error("invalid address {0:?}: missing port")]
    MissingPort(String),
}

fn port(s: &str, whole: &str) -> Result<u16, AddrError> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(port) => Err(AddrError::PortOutOfRange {
            addr: whole.to_string(),
            port,
        }),
        Err(_) => Err(AddrError::PortNotNumber {
            addr: whole.to_string(),
            port: s.to_string(),
        }),
    }
}

/// Parses a tunnel's address for its protocol.
pub fn parse(proto: TunnelProto, s: &str) -> Result<LocalAddr, AddrError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(AddrError::Missing);
    }
    if s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("file://"))
    {
        if proto != TunnelProto::Http {
            return Err(AddrError::FileNotHttp(s.to_string()));
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
                    return Err(AddrError::Scheme {
                        addr: s.to_string(),
                        scheme: sch,
                        proto,
                    })
                }
            };
            (Some(scheme), rest.trim_end_matches('/'))
        }
        None => (None, s),
    };
    if rest.contains('/') {
        return Err(AddrError::Path(s.to_string()));
    }
    let (host, p) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| AddrError::UnclosedBracket(s.to_string()))?;
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
        return Err(AddrError::Host {
            addr: s.to_string(),
            host,
        });
    }
    let port = match p {
        Some(p) => port(&p, s)?,
        None => match scheme {
            Some("https") => 443,
            Some("http") => 80,
            _ if proto == TunnelProto::Http => 80,
            _ => return Err(AddrError::MissingPort(s.to_string())),
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
        let e = |p, s| parse(p, s).unwrap_err().to_string();
        assert!(e(TunnelProto::Http, "70000").contains("out of range"));
        assert!(e(TunnelProto::Http, "0").contains("out of range"));
        assert!(e(TunnelProto::Http, "host:abc").contains("not a port"));
        assert!(e(TunnelProto::Tcp, "localhost").contains("missing port"));
        assert!(e(TunnelProto::Tcp, "http://x:1").contains("does not fit"));
        assert!(e(TunnelProto::Http, "").contains("missing address"));
    }
}
