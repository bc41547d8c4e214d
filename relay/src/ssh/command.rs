//! What an SSH user asked for: the `-R` forwards OpenSSH requested and the command word
//! with its options (`http -auth="user:password"`, `tcp 22`, `tls`), turned into the tunnel
//! requests an agent would send. Pure functions, so every refusal is unit-tested.

use burrow_protocol::control::{BindTls, TunnelProto, TunnelRequest};

/// Most `-R` forwards one SSH connection may ask for.
pub const MAX_FORWARDS: usize = 8;

/// One `-R` forward as OpenSSH's `tcpip-forward` request gave it: the bind address and port
/// before the second colon. The local target after it is never sent to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The bind address: `localhost` when the user gave none, `""` for `*`.
    pub address: String,
    /// The remote port asked for.
    pub port: u32,
    /// The port the client was told is bound: the channels opened for this forward name it.
    pub bound: u32,
}

/// Why the command or a forward was refused; the text is the line the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No command word.
    #[error("no tunnel command given: add http, tcp or tls after the relay's address, e.g. ssh -R 80:localhost:8080 RELAY http")]
    Missing,
    /// A command word that is not a tunnel kind.
    #[error(
        "unknown command {0:?}: use http, tcp or tls, e.g. ssh -R 80:localhost:8080 RELAY http"
    )]
    Unknown(String),
    /// An option the command does not take.
    #[error("unknown option {option} for {proto} (accepted: {accepted})")]
    UnknownOption {
        /// The option as typed.
        option: String,
        /// The command.
        proto: TunnelProto,
        /// What it accepts.
        accepted: &'static str,
    },
    /// `-inspect`, which needs an agent.
    #[error("-inspect has no meaning through the SSH gateway: requests are not captured; run the burrow agent to inspect them")]
    Inspect,
    /// An option given a value it cannot take.
    #[error("invalid {option} {value:?}: {why}")]
    BadValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// What it should be.
        why: &'static str,
    },
    /// An option that wants a value and got none.
    #[error("option -{0} needs a value, e.g. -{0}=VALUE")]
    NoValue(String),
    /// More than the one local address after the command word.
    #[error("unexpected argument {0:?}: after the command word give options and at most the local address")]
    Extra(String),
    /// Unbalanced quotes.
    #[error("unbalanced quote in the command")]
    Quote,
    /// No `-R` forward.
    #[error("no -R forward: add one, e.g. ssh -R 80:localhost:8080 RELAY http")]
    NoForward,
    /// Too many `-R` forwards.
    #[error("at most {MAX_FORWARDS} -R forwards per connection")]
    TooManyForwards,
    /// A remote port that does not fit the tunnel kind.
    #[error("-R with remote port {port} does not fit a {proto} tunnel: {hint}")]
    Port {
        /// The port given.
        port: u32,
        /// The command.
        proto: TunnelProto,
        /// What would.
        hint: &'static str,
    },
    /// The `-R` address and an option name different hosts.
    #[error("the -R address names {forward} but {option} names {given}: give one of them")]
    TwoNames {
        /// The `-R` address.
        forward: String,
        /// The option.
        option: &'static str,
        /// Its value.
        given: String,
    },
}

/// The command word and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The kind of tunnel.
    pub proto: TunnelProto,
    subdomain: Option<String>,
    hostname: Option<String>,
    auth: Option<String>,
    bind_tls: Option<BindTls>,
    host_header: Option<String>,
    remote_addr: Option<String>,
    /// The local address given after the options (`tcp 22`), only for display: the `-R`
    /// target is what OpenSSH dials.
    pub local: Option<String>,
}

const HTTP_OPTIONS: &str = "-subdomain, -hostname, -auth, -bind-tls, -host-header";
const TLS_OPTIONS: &str = "-subdomain, -hostname";
const TCP_OPTIONS: &str = "-remote-addr";

/// Parses the command OpenSSH sent (`exec` request) the way a shell would split it.
pub fn parse(line: &str) -> Result<Command, CommandError> {
    let words = split(line)?;
    let mut words = words.into_iter();
    let word = words.next().ok_or(CommandError::Missing)?;
    let proto = match word.to_ascii_lowercase().as_str() {
        "http" => TunnelProto::Http,
        "tcp" => TunnelProto::Tcp,
        "tls" => TunnelProto::Tls,
        _ => return Err(CommandError::Unknown(word)),
    };
    let mut cmd = Command {
        proto,
        subdomain: None,
        hostname: None,
        auth: None,
        bind_tls: None,
        host_header: None,
        remote_addr: None,
        local: None,
    };
    while let Some(arg) = words.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if cmd.local.is_some() {
                return Err(CommandError::Extra(arg));
            }
            cmd.local = Some(arg);
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "inspect" {
            return Err(CommandError::Inspect);
        }
        let accepted = match proto {
            TunnelProto::Http => HTTP_OPTIONS,
            TunnelProto::Tls => TLS_OPTIONS,
            TunnelProto::Tcp => TCP_OPTIONS,
        };
        let known = accepted.split(", ").any(|o| o == format!("-{name}"));
        if !known {
            return Err(CommandError::UnknownOption {
                option: arg.clone(),
                proto,
                accepted,
            });
        }
        let value = match inline {
            Some(v) => v,
            None => words
                .next()
                .ok_or_else(|| CommandError::NoValue(name.clone()))?,
        };
        cmd.set(&name, value)?;
    }
    Ok(cmd)
}

impl Command {
    fn set(&mut self, name: &str, value: String) -> Result<(), CommandError> {
        let bad = |option, why| CommandError::BadValue {
            option,
            value: value.clone(),
            why,
        };
        match name {
            "subdomain" => {
                burrow_http::hostname::validate_label(&value)
                    .map_err(|_| bad("-subdomain", "want one DNS label"))?;
                self.subdomain = Some(value);
            }
            "hostname" => {
                burrow_http::hostname::custom_hostname(&value, "")
                    .map_err(|_| bad("-hostname", "want a host name"))?;
                self.hostname = Some(value);
            }
            "auth" => {
                if !value.contains(':') || value.starts_with(':') {
                    return Err(bad("-auth", "want user:password"));
                }
                self.auth = Some(value);
            }
            "bind-tls" => {
                self.bind_tls = Some(match value.to_ascii_lowercase().as_str() {
                    "true" => BindTls::Https,
                    "false" => BindTls::Http,
                    "both" => BindTls::Both,
                    _ => return Err(bad("-bind-tls", "want true, false or both")),
                });
            }
            "host-header" => {
                if value.is_empty() || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(bad("-host-header", "want rewrite, preserve or a host"));
                }
                self.host_header = Some(value);
            }
            "remote-addr" => {
                let port = value.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                if port.is_none_or(|p| p == 0) {
                    return Err(bad("-remote-addr", "want HOST:PORT with a port 1-65535"));
                }
                self.remote_addr = Some(value);
            }
            _ => unreachable!("options are checked against the accepted list first"),
        }
        Ok(())
    }

    /// The tunnel request for `fwd` on a relay serving `domain`.
    pub fn request(&self, fwd: &Forward, domain: &str) -> Result<TunnelRequest, CommandError> {
        let mut t = TunnelRequest::new(self.proto);
        let port_error = |hint| CommandError::Port {
            port: fwd.port,
            proto: self.proto,
            hint,
        };
        let named = !is_wildcard(&fwd.address);
        match self.proto {
            TunnelProto::Http | TunnelProto::Tls => {
                let default_tls = match (self.proto, fwd.port) {
                    (TunnelProto::Http, 80) => BindTls::Both,
                    (TunnelProto::Http, 443) => BindTls::Https,
                    (TunnelProto::Http, _) => {
                        return Err(port_error("use -R 80:... (or 443:... for https only)"))
                    }
                    (_, 443) => BindTls::Both,
                    _ => return Err(port_error("use -R 443:...")),
                };
                t.bind_tls = self.bind_tls.unwrap_or(default_tls);
                t.subdomain = self.subdomain.clone();
                t.hostname = self.hostname.clone();
                if named {
                    let host = fwd.address.to_ascii_lowercase();
                    let given = [
                        ("-subdomain", &self.subdomain),
                        ("-hostname", &self.hostname),
                    ];
                    if let Some((option, Some(v))) = given.into_iter().find(|(_, v)| v.is_some()) {
                        return Err(CommandError::TwoNames {
                            forward: host,
                            option,
                            given: v.clone(),
                        });
                    }
                    // A name right under the relay's domain is a subdomain of it; anything
                    // else is a custom host name, as ngrok's examples use both.
                    match host.strip_suffix(domain).and_then(|h| h.strip_suffix('.')) {
                        Some(label) if !label.contains('.') => t.subdomain = Some(label.into()),
                        _ => t.hostname = Some(host),
                    }
                }
                t.auth = self.auth.clone();
                t.host_header = self.host_header()?;
            }
            TunnelProto::Tcp => {
                t.remote_addr = self.remote_addr.clone();
                if let Some(r) = &self.remote_addr {
                    t.remote_port = r.rsplit(':').next().and_then(|p| p.parse().ok());
                }
                if fwd.port != 0 {
                    let port =
                        u16::try_from(fwd.port).map_err(|_| port_error("ports go up to 65535"))?;
                    if self.remote_addr.is_some() {
                        return Err(port_error("give the address either in -R or with -remote-addr, with -R 0:... for the latter"));
                    }
                    t.remote_port = Some(port);
                    if named {
                        t.remote_addr =
                            Some(format!("{}:{port}", fwd.address.to_ascii_lowercase()));
                    }
                } else if named {
                    return Err(port_error(
                        "a tcp address needs its port, e.g. -R HOST:PORT:localhost:22",
                    ));
                }
            }
        }
        Ok(t)
    }

    fn host_header(&self) -> Result<Option<String>, CommandError> {
        match self.host_header.as_deref() {
            None | Some("preserve") => Ok(None),
            Some("rewrite") => match &self.local {
                Some(local) => Ok(Some(local_host(local))),
                // OpenSSH never tells the server the -R target.
                None => Err(CommandError::BadValue {
                    option: "-host-header",
                    value: "rewrite".into(),
                    why: "the relay does not see the -R target: give the local address after the options, e.g. http -host-header=rewrite localhost:8080",
                }),
            },
            Some(v) => Ok(Some(v.to_string())),
        }
    }

    /// What a `Forwarding` line names as the local side.
    pub fn target(&self, fwd: &Forward) -> String {
        match &self.local {
            Some(local) => {
                let hp = local_host(local);
                match self.proto {
                    TunnelProto::Http => format!("http://{hp}"),
                    _ => hp,
                }
            }
            None => format!("your -R forward of port {}", fwd.port),
        }
    }
}

/// `8080` → `localhost:8080`; `host:port` and `host` stay as given.
fn local_host(local: &str) -> String {
    let bare = local
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    if bare.parse::<u16>().is_ok() {
        format!("localhost:{bare}")
    } else {
        bare.to_string()
    }
}

/// Whether a bind address names nothing in particular (`-R 80:...`, `-R *:80:...`).
fn is_wildcard(address: &str) -> bool {
    matches!(
        address,
        "" | "*" | "localhost" | "0.0.0.0" | "::" | "127.0.0.1" | "::1"
    )
}

/// Splits a command line as a POSIX shell would: whitespace between words, single quotes
/// literal, double quotes with `\"` and `\\`, a backslash outside quotes escaping one
/// character. OpenSSH joins the user's words with spaces, so a quoted value the user's own
/// shell kept arrives here still quoted.
fn split(line: &str) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(CommandError::Quote)? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(CommandError::Quote)? {
                        '"' => break,
                        '\\' => match chars.next().ok_or(CommandError::Quote)? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(address: &str, port: u32) -> Forward {
        Forward {
            address: address.into(),
            port,
            bound: port,
        }
    }

    fn req(line: &str, f: Forward) -> Result<TunnelRequest, CommandError> {
        parse(line)?.request(&f, "tunnel.test")
    }

    #[test]
    fn the_docs_examples() {
        // ssh -R 80:localhost:80 RELAY http
        let t = req("http", fwd("localhost", 80)).unwrap();
        assert_eq!(t.proto, TunnelProto::Http);
        assert_eq!(
            (t.subdomain, t.hostname, t.bind_tls),
            (None, None, BindTls::Both)
        );
        // ssh -R custom-subdomain.DOMAIN:80:localhost:8080 RELAY http
        let t = req("http", fwd("Custom-Subdomain.tunnel.test", 80)).unwrap();
        assert_eq!(t.subdomain.as_deref(), Some("custom-subdomain"));
        assert_eq!(t.hostname, None);
        // ssh -R example.com:80:localhost:8080 RELAY http -auth="user:password"
        let t = req(r#"http -auth="user:password""#, fwd("example.com", 80)).unwrap();
        assert_eq!(t.hostname.as_deref(), Some("example.com"));
        assert_eq!(t.auth.as_deref(), Some("user:password"));
        // The user's shell may have eaten the quotes already.
        let t = req("http -auth=user:password", fwd("example.com", 80)).unwrap();
        assert_eq!(t.auth.as_deref(), Some("user:password"));
        // ssh -R 0:localhost:22 RELAY tcp 22
        let c = parse("tcp 22").unwrap();
        let t = c.request(&fwd("localhost", 0), "tunnel.test").unwrap();
        assert_eq!(
            (t.proto, t.remote_port, t.remote_addr),
            (TunnelProto::Tcp, None, None)
        );
        assert_eq!(c.target(&fwd("localhost", 0)), "localhost:22");
        // ssh -R 1.tcp.DOMAIN:24313:localhost:22 RELAY tcp
        let t = req("tcp", fwd("1.tcp.tunnel.test", 24313)).unwrap();
        assert_eq!(t.remote_port, Some(24313));
        assert_eq!(t.remote_addr.as_deref(), Some("1.tcp.tunnel.test:24313"));
        // ssh -R 443:localhost:8443 RELAY tls
        let t = req("tls", fwd("localhost", 443)).unwrap();
        assert_eq!(t.proto, TunnelProto::Tls);
    }

    #[test]
    fn http_options_of_the_agent() {
        let t = req(
            "http --subdomain=api -bind-tls true -host-header=site.dev",
            fwd("", 80),
        )
        .unwrap();
        assert_eq!(t.subdomain.as_deref(), Some("api"));
        assert_eq!(t.bind_tls, BindTls::Https);
        assert_eq!(t.host_header.as_deref(), Some("site.dev"));
        let t = req("http -hostname=www.example.org", fwd("*", 80)).unwrap();
        assert_eq!(t.hostname.as_deref(), Some("www.example.org"));
        let t = req("http -host-header=rewrite 8080", fwd("localhost", 80)).unwrap();
        assert_eq!(t.host_header.as_deref(), Some("localhost:8080"));
        assert_eq!(
            req("http -host-header=preserve", fwd("", 80))
                .unwrap()
                .host_header,
            None
        );
        // Port 443 asks for https alone unless -bind-tls says otherwise.
        assert_eq!(req("http", fwd("", 443)).unwrap().bind_tls, BindTls::Https);
        assert_eq!(
            req("http -bind-tls=both", fwd("", 443)).unwrap().bind_tls,
            BindTls::Both
        );
        let c = parse("http 'my app:3000'").unwrap();
        assert_eq!(c.local.as_deref(), Some("my app:3000"));
        assert_eq!(
            parse("http 3000").unwrap().target(&fwd("", 80)),
            "http://localhost:3000"
        );
        assert!(parse("http")
            .unwrap()
            .target(&fwd("", 80))
            .contains("port 80"));
    }

    fn err(line: &str, f: Forward) -> String {
        req(line, f).unwrap_err().to_string()
    }

    #[test]
    fn refusals_are_one_clear_line() {
        let cases = [
            ("", fwd("", 80), "no tunnel command"),
            ("ftp", fwd("", 80), "unknown command \"ftp\""),
            (
                "http -inspect=false",
                fwd("", 80),
                "-inspect has no meaning",
            ),
            ("http -inspect", fwd("", 80), "-inspect has no meaning"),
            (
                "http -region=eu",
                fwd("", 80),
                "unknown option -region=eu for http",
            ),
            (
                "tcp -subdomain=x",
                fwd("", 0),
                "unknown option -subdomain=x for tcp",
            ),
            (
                "tls -auth=a:b",
                fwd("", 443),
                "unknown option -auth=a:b for tls",
            ),
            ("http -auth=nopassword", fwd("", 80), "invalid -auth"),
            ("http -bind-tls=maybe", fwd("", 80), "invalid -bind-tls"),
            ("http -subdomain=a.b", fwd("", 80), "invalid -subdomain"),
            ("http -subdomain", fwd("", 80), "-subdomain needs a value"),
            ("http 80 81", fwd("", 80), "unexpected argument \"81\""),
            ("http -auth='a:b", fwd("", 80), "unbalanced quote"),
            (
                "http",
                fwd("", 8080),
                "remote port 8080 does not fit a http tunnel",
            ),
            ("http", fwd("", 0), "use -R 80"),
            ("tls", fwd("", 80), "use -R 443"),
            ("tcp", fwd("tcp.example", 0), "needs its port"),
            ("tcp", fwd("", 70000), "up to 65535"),
            ("tcp -remote-addr=x", fwd("", 0), "invalid -remote-addr"),
            (
                "tcp -remote-addr=h:5",
                fwd("", 5),
                "either in -R or with -remote-addr",
            ),
            (
                "http -subdomain=b",
                fwd("a.tunnel.test", 80),
                "names a.tunnel.test but -subdomain",
            ),
            (
                "http -host-header=rewrite",
                fwd("", 80),
                "does not see the -R target",
            ),
        ];
        for (line, f, want) in cases {
            let got = err(line, f);
            assert!(got.contains(want), "{line:?}: {got}");
            assert!(!got.contains('\n'), "{line:?}: {got}");
        }
        let t = req("tcp -remote-addr=h.example:5", fwd("", 0)).unwrap();
        assert_eq!(
            (t.remote_port, t.remote_addr.as_deref()),
            (Some(5), Some("h.example:5"))
        );
    }

    #[test]
    fn words_split_as_a_shell_would() {
        assert_eq!(
            split(r#"  a  "b c" 'd "e"' f\ g "h\"i" "#).unwrap(),
            ["a", "b c", "d \"e\"", "f g", "h\"i"]
        );
        assert_eq!(
            split(r#"-auth="user:pa ss""#).unwrap(),
            ["-auth=user:pa ss"]
        );
        assert_eq!(split("''").unwrap(), [""]);
        assert!(split("\"open").is_err());
    }
}
