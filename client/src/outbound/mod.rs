//! Outbound proxies between the agent and its relay: ngrok v2's `http_proxy` (HTTP CONNECT)
//! and `socks5_proxy` settings, and the usual proxy environment variables.
//!
//! Proxy URLs:
//! - `http://[user[:password]@]host[:port][/]`; a URL without a scheme is taken as `http://`,
//!   as curl and Go do for environment variables. The port defaults to 80.
//! - `https://…` is refused: speaking TLS to the proxy itself is not supported, and sending
//!   CONNECT (and the credentials) in the clear to a proxy the user believes is reached over
//!   TLS would silently downgrade it.
//! - `socks5://[user[:password]@]host[:port][/]` (or `socks5h://`); the port defaults to 1080.
//!   The proxy always resolves the relay's name.
//!
//! User and password are percent-decoded.

mod http;
mod socks5;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long reaching one relay address may take, every IP address its name resolves to
/// included (the caller's bound; direct connections also share it out, see [`dial`]).
pub const DIAL_LIMIT: Duration = Duration::from_secs(10);

/// An outbound proxy the agent reaches its relay through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// An HTTP proxy, asked to tunnel with `CONNECT`.
    Http {
        /// Proxy host name or IP address (no brackets).
        host: String,
        /// Proxy port.
        port: u16,
        /// User and password for `Proxy-Authorization: Basic`.
        auth: Option<(String, String)>,
    },
    /// A SOCKS5 proxy (RFC 1928).
    Socks5 {
        /// Proxy host name or IP address (no brackets).
        host: String,
        /// Proxy port.
        port: u16,
        /// User and password for RFC 1929 authentication.
        auth: Option<(String, String)>,
    },
}

impl Proxy {
    /// Parses ngrok v2's `http_proxy` value (`http://user:pass@host:port`; `https://` is refused).
    pub fn parse_http(s: &str) -> Result<Proxy, ProxyError> {
        let invalid = |problem| ProxyError::Invalid {
            setting: "http_proxy",
            value: s.to_string(),
            problem,
        };
        let u = parse_url(s).map_err(|e| invalid(e.into()))?;
        match u.scheme.as_deref() {
            None | Some("http") => {}
            Some("https") => return Err(invalid(ProxyProblem::Https)),
            Some("socks5" | "socks5h") => return Err(invalid(ProxyProblem::Socks5AsHttp)),
            Some(other) => return Err(invalid(ProxyProblem::NotHttp(other.to_string()))),
        }
        if let Some((user, _)) = &u.auth {
            if user.contains(':') {
                // Basic auth joins user and password with ':', so the proxy would split wrongly.
                return Err(invalid(ProxyProblem::ColonInUser));
            }
        }
        Ok(Proxy::Http {
            host: u.host,
            port: u.port.unwrap_or(80),
            auth: u.auth,
        })
    }

    /// Parses `socks5_proxy` (`socks5://user:pass@host:port`).
    pub fn parse_socks5(s: &str) -> Result<Proxy, ProxyError> {
        let invalid = |problem| ProxyError::Invalid {
            setting: "socks5_proxy",
            value: s.to_string(),
            problem,
        };
        let u = parse_url(s).map_err(|e| invalid(e.into()))?;
        match u.scheme.as_deref() {
            Some("socks5" | "socks5h") => {}
            None => return Err(invalid(ProxyProblem::NoSocks5Scheme)),
            Some(other) => return Err(invalid(ProxyProblem::NotSocks5(other.to_string()))),
        }
        if let Some((user, pass)) = &u.auth {
            // RFC 1929 carries each in a length byte, and a zero-length user name is invalid.
            if user.is_empty() || user.len() > 255 || pass.len() > 255 {
                return Err(invalid(ProxyProblem::Socks5Credentials));
            }
        }
        Ok(Proxy::Socks5 {
            host: u.host,
            port: u.port.unwrap_or(1080),
            auth: u.auth,
        })
    }

    /// The proxy's `host:port`, bracketing IPv6 addresses.
    pub fn addr(&self) -> String {
        let (Proxy::Http { host, port, .. } | Proxy::Socks5 { host, port, .. }) = self;
        join_host_port(host, *port)
    }
}

/// A proxy setting that cannot be used, naming the setting (or variable) and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// `http_proxy` or `socks5_proxy` (or a variable's value taken as one) is unusable.
    #[error("invalid {setting} {value:?}: {problem}")]
    Invalid {
        /// `http_proxy` or `socks5_proxy`.
        setting: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: ProxyProblem,
    },
    /// A proxy environment variable is unusable; said so, since the user may not know it is
    /// set.
    #[error("environment variable {var}: {err}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with its value.
        err: Box<ProxyError>,
    },
}

/// What is wrong with a proxy value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyProblem {
    /// The URL does not parse.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// `https://` as `http_proxy`: refused rather than sending CONNECT in the clear.
    #[error(
        "https:// proxies (TLS to the proxy) are not supported; use http:// for a proxy that \
         takes plain CONNECT"
    )]
    Https,
    /// A SOCKS5 URL in the HTTP proxy setting.
    #[error("this is a SOCKS5 proxy; set socks5_proxy instead")]
    Socks5AsHttp,
    /// Another scheme as `http_proxy`.
    #[error("unsupported scheme {0:?}, want http://")]
    NotHttp(String),
    /// No scheme on `socks5_proxy`, where `http://` is not a sensible default.
    #[error("want socks5://host:port")]
    NoSocks5Scheme,
    /// Another scheme as `socks5_proxy`.
    #[error("unsupported scheme {0:?}, want socks5://")]
    NotSocks5(String),
    /// A `:` in the user name, which Basic auth cannot carry.
    #[error("the user name must not contain ':'")]
    ColonInUser,
    /// Credentials RFC 1929 cannot carry.
    #[error("user name must be 1-255 bytes and password at most 255 bytes")]
    Socks5Credentials,
}

/// Why a proxy URL does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Nothing but spaces.
    #[error("empty")]
    Empty,
    /// Spaces or control characters, which could smuggle lines into a CONNECT.
    #[error("contains spaces or control characters")]
    Spaces,
    /// A path other than `/`, a query or a fragment.
    #[error("unexpected path or query {0:?}")]
    Path(String),
    /// The user name's percent escapes are bad.
    #[error("user name: {0}")]
    User(PercentError),
    /// The password's percent escapes are bad.
    #[error("password: {0}")]
    Password(PercentError),
    /// `[` without `]`.
    #[error("unclosed '[' in IPv6 address")]
    UnclosedBracket,
    /// Brackets around something that is not an IPv6 address.
    #[error("invalid IPv6 address {0:?}")]
    Ipv6(String),
    /// Something other than `:port` after `]`.
    #[error("junk after IPv6 address")]
    AfterIpv6,
    /// No host.
    #[error("missing host")]
    MissingHost,
    /// A host with characters no host name has.
    #[error("invalid host {0:?}")]
    Host(String),
    /// A port that is not 1-65535.
    #[error("invalid port {0:?}: want 1-65535")]
    Port(String),
}

/// Why a percent-encoded user name or password does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PercentError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent escape at byte {0}")]
    Escape(usize),
    /// The decoded bytes are not UTF-8.
    #[error("percent escapes do not decode to UTF-8")]
    NotUtf8,
}

/// Chooses the proxy: explicit config first (http_proxy, then socks5_proxy), else the proxy
/// environment variables, honouring `no_proxy`/`NO_PROXY` for `target_host`.
///
/// Environment proxies are never used for loopback relays (`localhost`, 127.0.0.0/8, ::1),
/// as Go's and curl's clients also refuse, because a proxy elsewhere cannot reach them; this
/// keeps the in-process relay working for users who export a proxy. Explicit settings always
/// apply. `no_proxy` entries are comma or space separated: `*` matches every host, `.suffix`
/// matches hosts below `suffix`, and any other name matches that host and hosts below it (the
/// curl and Go convention); ports on entries are ignored and IP literals match exactly.
pub fn choose(
    http_proxy: Option<&str>,
    socks5_proxy: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    target_host: &str,
) -> Result<Option<Proxy>, ProxyError> {
    fn set(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(v) = set(http_proxy) {
        return Proxy::parse_http(v).map(Some);
    }
    if let Some(v) = set(socks5_proxy) {
        return Proxy::parse_socks5(v).map(Some);
    }
    let from_env = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"]
        .into_iter()
        .find_map(|name| {
            let v = env(name)?;
            let v = v.trim();
            (!v.is_empty()).then(|| (name, v.to_string()))
        });
    let Some((name, value)) = from_env else {
        return Ok(None);
    };
    let host = normalize_host(target_host);
    if is_loopback(&host) {
        return Ok(None);
    }
    let no_proxy = env("no_proxy")
        .filter(|v| !v.trim().is_empty())
        .or_else(|| env("NO_PROXY"))
        .unwrap_or_default();
    if bypasses(&no_proxy, &host) {
        return Ok(None);
    }
    let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let parsed = match scheme.as_deref() {
        Some("socks5" | "socks5h") => Proxy::parse_socks5(&value),
        _ => Proxy::parse_http(&value),
    };
    parsed.map(Some).map_err(|e| ProxyError::Env {
        var: name,
        err: Box::new(e),
    })
}

/// Opens a TCP connection to `target` ("host:port") directly or through `proxy`.
///
/// HTTP proxies get `CONNECT` (with `Proxy-Authorization: Basic` when credentials are set);
/// SOCKS5 proxies get no-auth or username/password authentication and the target by name,
/// so the proxy resolves it. Errors name the hop that failed. The caller bounds the time
/// (with [`DIAL_LIMIT`]).
///
/// Directly, each IP address the name resolves to is tried in turn, as tokio's
/// `TcpStream::connect` does too, but each within its share of [`DIAL_LIMIT`] (see
/// [`share`]): with one limit for all, an address that drops packets would use up the time
/// and the addresses after it would never be tried.
pub async fn dial(proxy: Option<&Proxy>, target: &str) -> io::Result<TcpStream> {
    let (host, port) = split_target(target)?;
    let Some(proxy) = proxy else {
        return connect_each(&host, port, DIAL_LIMIT)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("dial tcp {target}: {e}")));
    };
    let paddr = proxy.addr();
    let (Proxy::Http {
        host: ph, port: pp, ..
    }
    | Proxy::Socks5 {
        host: ph, port: pp, ..
    }) = proxy;
    let mut stream = TcpStream::connect((ph.as_str(), *pp))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("dial proxy {paddr}: {e}")))?;
    match proxy {
        Proxy::Http { auth, .. } => {
            http::connect(&mut stream, &paddr, target, auth.as_ref()).await?;
        }
        Proxy::Socks5 { auth, .. } => {
            socks5::connect(&mut stream, &paddr, &host, port, target, auth.as_ref()).await?;
        }
    }
    Ok(stream)
}

/// Connects to the first of the addresses `host` resolves to that answers, each tried
/// within its [`share`] of what is left of `limit`.
async fn connect_each(host: &str, port: u16, limit: Duration) -> io::Result<TcpStream> {
    let deadline = tokio::time::Instant::now() + limit;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(share(left, addrs.len() - i), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                let msg = format!("connect to {addr}: timeout");
                last = Some(io::Error::new(io::ErrorKind::TimedOut, msg));
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        let msg = format!("no address found for {host}");
        io::Error::new(io::ErrorKind::NotFound, msg)
    }))
}

/// The time one of `pending` addresses gets out of `left`: an equal share, but at least
/// 2 s (as Go's dialer gives), since a connection across the world takes a while.
fn share(left: Duration, pending: usize) -> Duration {
    let equal = left / u32::try_from(pending.max(1)).unwrap_or(u32::MAX);
    equal.max(Duration::from_secs(2)).min(left)
}

/// A proxy URL taken apart.
#[derive(Debug)]
struct Url {
    scheme: Option<String>,
    auth: Option<(String, String)>,
    host: String,
    port: Option<u16>,
}

fn parse_url(s: &str) -> Result<Url, UrlError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UrlError::Empty);
    }
    if s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(UrlError::Spaces);
    }
    let (scheme, rest) = match s.split_once("://") {
        Some((sc, rest)) => (Some(sc.to_ascii_lowercase()), rest),
        None => (None, s),
    };
    let authority = match rest.find(['/', '?', '#']) {
        Some(i) => {
            if &rest[i..] != "/" {
                return Err(UrlError::Path(rest[i..].to_string()));
            }
            &rest[..i]
        }
        None => rest,
    };
    // The last '@' separates, since a password may contain an unescaped '@'.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let auth = match userinfo {
        None => None,
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let user = percent_decode(user).map_err(UrlError::User)?;
            let pass = percent_decode(pass).map_err(UrlError::Password)?;
            Some((user, pass))
        }
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner.split_once(']').ok_or(UrlError::UnclosedBracket)?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| UrlError::Ipv6(h.to_string()))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::AfterIpv6)?),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if !hostport.starts_with('[') && host.contains([':', '[', ']', '@', '%']) {
        return Err(UrlError::Host(host));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(UrlError::Port(p.to_string())),
        },
    };
    Ok(Url {
        scheme,
        auth,
        host,
        port,
    })
}

fn percent_decode(s: &str) -> Result<String, PercentError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(|_| b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
                .ok_or(PercentError::Escape(i))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PercentError::NotUtf8)
}

/// Splits "host:port", rejecting anything that could smuggle extra lines into a CONNECT.
fn split_target(target: &str) -> io::Result<(String, u16)> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid address {target:?}: {why}"),
        )
    };
    if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("contains spaces or control characters"));
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| bad("want host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("port must be 0-65535"))?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(|| bad("unclosed '['"))?,
        None if host.contains(':') => return Err(bad("IPv6 addresses need [brackets]")),
        None => host,
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    Ok((host.to_string(), port))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn normalize_host(h: &str) -> String {
    h.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `no_proxy` exempts `host` (already normalised).
fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host_ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = strip_entry_port(entry);
            if let Ok(ip) = entry.parse::<IpAddr>() {
                return host_ip == Some(ip);
            }
            let entry = entry.trim_end_matches('.').to_ascii_lowercase();
            let entry = entry
                .strip_prefix("*.")
                .map_or(entry.as_str(), |_| &entry[1..]);
            if entry.is_empty() || host_ip.is_some() {
                return false;
            }
            match entry.strip_prefix('.') {
                Some(_) => host.ends_with(entry),
                None => host == entry || host.ends_with(&format!(".{entry}")),
            }
        })
}

fn strip_entry_port(e: &str) -> &str {
    if let Some(inner) = e.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner);
    }
    match e.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => e,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::http::MAX_HEAD;
    use super::*;
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn each_resolved_address_gets_a_share_of_the_time() {
        let s = Duration::from_secs;
        assert_eq!(share(s(10), 1), s(10));
        assert_eq!(share(s(10), 2), s(5));
        assert_eq!(share(s(10), 10), s(2));
        assert_eq!(share(s(3), 4), s(2));
        assert_eq!(
            share(Duration::from_millis(500), 3),
            Duration::from_millis(500)
        );
    }

    #[tokio::test]
    async fn a_name_with_several_addresses_is_tried_address_by_address() {
        // `localhost` may resolve to ::1 before 127.0.0.1; only the latter listens here.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let s = dial(None, &format!("localhost:{port}")).await.unwrap();
        assert_eq!(s.peer_addr().unwrap().ip(), IpAddr::from([127, 0, 0, 1]));
        drop(l);
        let e = dial(None, &format!("127.0.0.1:{port}")).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("dial tcp 127.0.0.1:{port}: ")),
            "{e}"
        );
    }

    fn http(host: &str, port: u16, auth: Option<(&str, &str)>) -> Proxy {
        Proxy::Http {
            host: host.into(),
            port,
            auth: auth.map(|(u, p)| (u.into(), p.into())),
        }
    }

    fn socks(host: &str, port: u16, auth: Option<(&str, &str)>) -> Proxy {
        Proxy::Socks5 {
            host: host.into(),
            port,
            auth: auth.map(|(u, p)| (u.into(), p.into())),
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3Ac%2f").unwrap(), "a@b:c/");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%+1").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn parses_http_proxies() {
        assert_eq!(
            Proxy::parse_http("http://user:pass@proxy.example:3128").unwrap(),
            http("proxy.example", 3128, Some(("user", "pass")))
        );
        assert_eq!(
            Proxy::parse_http("HTTP://proxy:8080/").unwrap(),
            http("proxy", 8080, None)
        );
        assert_eq!(Proxy::parse_http("proxy").unwrap(), http("proxy", 80, None));
        assert_eq!(
            Proxy::parse_http("10.0.0.1:3128").unwrap(),
            http("10.0.0.1", 3128, None)
        );
        assert_eq!(
            Proxy::parse_http("http://[::1]:3128").unwrap(),
            http("::1", 3128, None)
        );
        assert_eq!(
            Proxy::parse_http("http://us%40r:p%3Ass@w@h:1").unwrap(),
            http("h", 1, Some(("us@r", "p:ss@w")))
        );
        assert_eq!(
            Proxy::parse_http("http://user@h:1").unwrap(),
            http("h", 1, Some(("user", "")))
        );
    }

    #[test]
    fn http_proxy_errors_name_the_problem() {
        let err = |s: &str| Proxy::parse_http(s).unwrap_err().to_string();
        assert!(
            err("https://p:3128").contains("https:// proxies"),
            "{}",
            err("https://p:3128")
        );
        assert!(err("socks5://p:1080").contains("set socks5_proxy"));
        assert!(err("ftp://p:21").contains("unsupported scheme \"ftp\""));
        assert!(err("http://p:0").contains("invalid port \"0\""));
        assert!(err("http://p:99999").contains("invalid port"));
        assert!(err("http://p:").contains("invalid port"));
        assert!(err("http://:3128").contains("missing host"));
        assert!(err("http://p:1/path").contains("unexpected path"));
        assert!(err("http://a%2:b@p:1").contains("user name: bad percent escape"));
        assert!(err("http://a%3Ab:c@p:1").contains("must not contain ':'"));
        assert!(err("http://[::1:1").contains("unclosed"));
        assert!(err("http://p q:1").contains("spaces"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn parses_socks5_proxies() {
        assert_eq!(
            Proxy::parse_socks5("socks5://u:p@127.0.0.1:1080").unwrap(),
            socks("127.0.0.1", 1080, Some(("u", "p")))
        );
        assert_eq!(
            Proxy::parse_socks5("socks5h://gw").unwrap(),
            socks("gw", 1080, None)
        );
        let err = |s: &str| Proxy::parse_socks5(s).unwrap_err().to_string();
        assert!(err("gw:1080").contains("want socks5://"));
        assert!(err("http://gw:1080").contains("want socks5://"));
        assert!(err("socks5://:p@gw").contains("1-255"));
        let long = "x".repeat(256);
        assert!(err(&format!("socks5://u:{long}@gw")).contains("at most 255"));
    }

    #[test]
    fn proxy_addr_brackets_ipv6() {
        assert_eq!(http("::1", 3128, None).addr(), "[::1]:3128");
        assert_eq!(socks("gw", 1080, None).addr(), "gw:1080");
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn explicit_settings_win_over_environment() {
        let env = env_of(&[("https_proxy", "http://envproxy:1")]);
        assert_eq!(
            choose(Some("http://a:1"), Some("socks5://b:2"), &env, "relay").unwrap(),
            Some(http("a", 1, None))
        );
        assert_eq!(
            choose(None, Some("socks5://b:2"), &env, "relay").unwrap(),
            Some(socks("b", 2, None))
        );
        assert_eq!(
            choose(Some(""), Some("socks5://b:2"), &env, "relay").unwrap(),
            Some(socks("b", 2, None))
        );
        // no_proxy and loopback only govern the environment's proxies.
        let env = env_of(&[("no_proxy", "*")]);
        assert_eq!(
            choose(Some("http://a:1"), None, &env, "localhost").unwrap(),
            Some(http("a", 1, None))
        );
        assert!(choose(Some("https://a:1"), None, &env, "relay")
            .unwrap_err()
            .to_string()
            .contains("https://"));
    }

    #[test]
    fn environment_precedence() {
        let all = [
            ("https_proxy", "http://one:1"),
            ("HTTPS_PROXY", "http://two:2"),
            ("http_proxy", "http://three:3"),
            ("HTTP_PROXY", "http://four:4"),
        ];
        for skip in 0..4 {
            let env = env_of(&all[skip..]);
            let want = Proxy::parse_http(all[skip].1).unwrap();
            assert_eq!(choose(None, None, &env, "relay").unwrap(), Some(want));
        }
        let env = env_of(&[("https_proxy", " "), ("HTTP_PROXY", "four:4")]);
        assert_eq!(
            choose(None, None, &env, "relay").unwrap(),
            Some(http("four", 4, None))
        );
        assert_eq!(choose(None, None, &env_of(&[]), "relay").unwrap(), None);
        let env = env_of(&[("HTTPS_PROXY", "socks5://s:9")]);
        assert_eq!(
            choose(None, None, &env, "relay").unwrap(),
            Some(socks("s", 9, None))
        );
        let env = env_of(&[("HTTPS_PROXY", "https://s:9")]);
        let e = choose(None, None, &env, "relay").unwrap_err().to_string();
        assert!(e.contains("HTTPS_PROXY") && e.contains("https://"), "{e}");
    }

    #[test]
    fn no_proxy_matching() {
        let pick = |no_proxy: &str, host: &str| {
            let env = env_of(&[("https_proxy", "http://p:1"), ("no_proxy", no_proxy)]);
            choose(None, None, &env, host).unwrap().is_some()
        };
        assert!(!pick("*", "relay.example.com"));
        assert!(!pick("relay.example.com", "relay.example.com"));
        assert!(!pick("RELAY.example.com.", "relay.Example.com"));
        assert!(!pick("example.com", "relay.example.com"));
        assert!(pick("example.com", "badexample.com"));
        assert!(!pick("other, .example.com", "relay.example.com"));
        assert!(pick(".example.com", "example.com"));
        assert!(!pick("*.example.com", "relay.example.com"));
        assert!(!pick("relay.example.com:443", "relay.example.com"));
        assert!(!pick("10.1.2.3", "10.1.2.3"));
        assert!(pick("10.1.2.3", "10.1.2.4"));
        assert!(!pick("[2001:db8::1]:443", "[2001:db8::1]"));
        assert!(!pick("2001:db8::1", "2001:db8::1"));
        assert!(pick("", "relay"));
        assert!(pick("other", "relay"));

        let env = env_of(&[("https_proxy", "http://p:1"), ("NO_PROXY", "relay")]);
        assert_eq!(choose(None, None, &env, "relay").unwrap(), None);
        let env = env_of(&[
            ("https_proxy", "http://p:1"),
            ("no_proxy", "other"),
            ("NO_PROXY", "relay"),
        ]);
        assert!(choose(None, None, &env, "relay").unwrap().is_some());
    }

    #[test]
    fn loopback_relays_skip_environment_proxies() {
        let env = env_of(&[("HTTPS_PROXY", "http://p:1")]);
        for host in [
            "localhost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "[::1]",
            "a.localhost",
        ] {
            assert_eq!(choose(None, None, &env, host).unwrap(), None, "{host}");
        }
    }

    #[test]
    fn target_splitting() {
        assert_eq!(split_target("relay:4443").unwrap(), ("relay".into(), 4443));
        assert_eq!(split_target("[::1]:1").unwrap(), ("::1".into(), 1));
        assert!(split_target("relay").is_err());
        assert!(split_target("::1:1").is_err());
        assert!(split_target("relay:x").is_err());
        assert!(split_target("a\r\nX: y:1").is_err());
    }

    /// A one-shot fake proxy that answers the first request head with `reply` in one write.
    async fn fake_proxy(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(reply).await.unwrap();
            // Hold the connection open until the client has read what it wants.
            let _ = s.read(&mut buf).await;
            got
        });
        (addr, task)
    }

    #[tokio::test]
    async fn connect_leaves_bytes_after_the_head_unread() {
        let (addr, task) =
            fake_proxy(b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\nTLS!").await;
        let (h, p) = split_target(&addr).unwrap();
        let proxy = http(&h, p, Some(("user", "pass")));
        let mut s = dial(Some(&proxy), "relay.example:4443").await.unwrap();
        let mut first = [0u8; 4];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"TLS!");
        drop(s);
        let req = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(
            req.starts_with("CONNECT relay.example:4443 HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nHost: relay.example:4443\r\n"), "{req}");
        assert!(
            req.contains("\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n"),
            "{req}"
        );
    }

    #[tokio::test]
    async fn connect_refusal_is_reported_with_status() {
        let (addr, _task) =
            fake_proxy(b"HTTP/1.0 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                .await;
        let (h, p) = split_target(&addr).unwrap();
        let e = dial(Some(&http(&h, p, None)), "relay:4443")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "proxy {addr} refused CONNECT relay:4443: 407 Proxy Authentication Required"
            )),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn connect_rejects_garbage_and_endless_heads() {
        let (addr, _t) = fake_proxy(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let (h, p) = split_target(&addr).unwrap();
        let e = dial(Some(&http(&h, p, None)), "r:1").await.unwrap_err();
        assert!(e.to_string().contains("malformed reply"), "{e}");

        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.write_all(&big).await;
            let _ = s.read(&mut [0u8; 1]).await;
        });
        let e = dial(Some(&http("127.0.0.1", addr.port(), None)), "r:1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_proxy_names_the_proxy_hop() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = dial(Some(&socks("127.0.0.1", port, None)), "relay:4443")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("dial proxy 127.0.0.1:{port}: ")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn socks5_sends_the_name_for_the_proxy_to_resolve() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut g = [0u8; 4];
            s.read_exact(&mut g).await.unwrap();
            assert_eq!(g, [5, 2, 0, 2]);
            s.write_all(&[5, 2]).await.unwrap();
            let mut a = [0u8; 1 + 1 + 1 + 1 + 1];
            s.read_exact(&mut a).await.unwrap();
            assert_eq!(a, [1, 1, b'u', 1, b'p']);
            s.write_all(&[1, 0]).await.unwrap();
            let mut r = vec![0u8; 4 + 1 + "relay.example".len() + 2];
            s.read_exact(&mut r).await.unwrap();
            // Reply with a domain-typed bound address and tunnelled bytes in the same write.
            s.write_all(&[5, 0, 0, 3, 2, b'b', b'n', 0, 1, b'h', b'i'])
                .await
                .unwrap();
            let _ = s.read(&mut [0u8; 1]).await;
            r
        });
        let mut s = dial(
            Some(&socks("127.0.0.1", port, Some(("u", "p")))),
            "relay.example:4443",
        )
        .await
        .unwrap();
        let mut hi = [0u8; 2];
        s.read_exact(&mut hi).await.unwrap();
        assert_eq!(&hi, b"hi");
        drop(s);
        let r = task.await.unwrap();
        let mut want = vec![5, 1, 0, 3, 13];
        want.extend_from_slice(b"relay.example");
        want.extend_from_slice(&4443u16.to_be_bytes());
        assert_eq!(r, want);
    }
}
