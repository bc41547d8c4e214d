//! The ngrok v2 command line: `burrow http|tcp ADDR [flags]`, Go-style flags with one or
//! two dashes, `-flag value` or `-flag=value`, before or after the address.

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start an http tunnel to ADDR.
    Http(String),
    /// Start a tcp tunnel to ADDR.
    Tcp(String),
    /// Start a tls tunnel to ADDR.
    Tls(String),
    /// Start tunnels from the configuration by name (`--all`, `--none`).
    Start(Vec<String>),
    /// Save an auth token into the configuration file.
    Authtoken(String),
    /// Print the version.
    Version,
    /// Print help, for a command or in general.
    Help(Option<String>),
}

/// Flags given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `-subdomain`.
    pub subdomain: Option<String>,
    /// `-hostname`.
    pub hostname: Option<String>,
    /// `-authtoken`.
    pub authtoken: Option<String>,
    /// `-server`: the relay's `host:port`, or several separated by commas.
    pub server: Option<String>,
    /// `-root-cas`: `host`, `trusted` or a PEM file.
    pub root_cas: Option<String>,
    /// `-log`: `stdout`, `stderr`, `false` or a file.
    pub log: Option<String>,
    /// `-log-level`.
    pub log_level: Option<String>,
    /// `-log-format`.
    pub log_format: Option<String>,
    /// `-bind-tls`: `both`, `true` or `false`.
    pub bind_tls: Option<String>,
    /// `-region`: the region to ask the relay for, also filling `{region}` in `-server`.
    pub region: Option<String>,
    /// `-auth`: `user:password`.
    pub auth: Option<String>,
    /// `-host-header`.
    pub host_header: Option<String>,
    /// `-remote-addr`: `host:port` for tcp tunnels.
    pub remote_addr: Option<String>,
    /// `-inspect`.
    pub inspect: Option<bool>,
    /// `-config`, repeatable.
    pub config: Vec<String>,
    /// `start --all`.
    pub all: bool,
    /// `start --none`.
    pub none: bool,
    /// `-crt` (tls).
    pub crt: Option<String>,
    /// `-key` (tls).
    pub key: Option<String>,
    /// `-client-cas` (tls).
    pub client_cas: Option<String>,
}

/// One-line usage errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}\nTry 'burrow help' for usage.")]
pub struct UsageError(pub String);

const VALUE_FLAGS: &[&str] = &[
    "subdomain",
    "hostname",
    "authtoken",
    "server",
    "server-addr",
    "root-cas",
    "log",
    "log-level",
    "log-format",
    "bind-tls",
    "region",
    "auth",
    "host-header",
    "remote-addr",
    "config",
    "crt",
    "cert",
    "key",
    "client-cas",
];

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<(Command, Flags), UsageError> {
    let mut flags = Flags::default();
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            positional.extend(it.by_ref());
            break;
        }
        let Some((name, inline)) = flag(&arg) else {
            positional.push(arg);
            continue;
        };
        match name.as_str() {
            "help" | "h" => return Ok((Command::Help(positional.first().cloned()), flags)),
            "version" | "v" => return Ok((Command::Version, flags)),
            "all" => flags.all = bool_flag(&name, inline)?,
            "none" => flags.none = bool_flag(&name, inline)?,
            "inspect" => flags.inspect = Some(bool_flag(&name, inline)?),
            _ => set_value(&mut flags, &name, inline, &mut it)?,
        }
    }
    let command = command(positional, &flags)?;
    Ok((command, flags))
}

/// `-name`, `--name` or `-name=value` taken apart; `None` for a positional argument
/// (`-` alone is one).
fn flag(arg: &str) -> Option<(String, Option<String>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if body.is_empty() {
        return None;
    }
    Some(match body.split_once('=') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (body.to_string(), None),
    })
}

/// The value of a boolean flag: bare means true, else `-name=true|false`.
fn bool_flag(name: &str, inline: Option<String>) -> Result<bool, UsageError> {
    let v = inline.as_deref().unwrap_or("true");
    parse_bool(v).ok_or_else(|| {
        UsageError(format!(
            "invalid value {v:?} for flag -{name}: want true or false"
        ))
    })
}

/// Stores the value of the value-taking flag `name`, given inline or as the next argument.
fn set_value(
    flags: &mut Flags,
    name: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<(), UsageError> {
    if !VALUE_FLAGS.contains(&name) {
        return Err(UsageError(format!("unknown flag -{name}")));
    }
    let value = match inline {
        Some(v) => v,
        // `-subdomain -config x` is a forgotten value, not a subdomain named "-config".
        None => rest
            .next()
            .filter(|v| !v.starts_with('-') || v.len() == 1)
            .ok_or_else(|| UsageError(format!("flag -{name} needs a value")))?,
    };
    match value_slot(flags, name) {
        Some(slot) => *slot = Some(value),
        None => flags.config.push(value),
    }
    Ok(())
}

/// Where a single-valued flag's value goes; `None` for `-config`, which may repeat.
fn value_slot<'a>(flags: &'a mut Flags, name: &str) -> Option<&'a mut Option<String>> {
    Some(match name {
        "subdomain" => &mut flags.subdomain,
        "hostname" => &mut flags.hostname,
        "authtoken" => &mut flags.authtoken,
        "server" | "server-addr" => &mut flags.server,
        "root-cas" => &mut flags.root_cas,
        "log" => &mut flags.log,
        "log-level" => &mut flags.log_level,
        "log-format" => &mut flags.log_format,
        "bind-tls" => &mut flags.bind_tls,
        "region" => &mut flags.region,
        "auth" => &mut flags.auth,
        "host-header" => &mut flags.host_header,
        "remote-addr" => &mut flags.remote_addr,
        // ngrok's documentation spells it both ways.
        "crt" | "cert" => &mut flags.crt,
        "key" => &mut flags.key,
        "client-cas" => &mut flags.client_cas,
        _ => return None,
    })
}

/// The command the positional arguments name, with its operand.
fn command(positional: Vec<String>, flags: &Flags) -> Result<Command, UsageError> {
    let mut pos = positional.into_iter();
    let mut operand = |usage: &str| {
        pos.next()
            .ok_or_else(|| UsageError(format!("missing {usage}")))
    };
    let command = match operand("command").ok().as_deref() {
        None => return Ok(Command::Help(None)),
        Some("http") => Command::Http(operand("address: burrow http PORT|HOST:PORT|URL")?),
        Some("tcp") => Command::Tcp(operand("address: burrow tcp PORT|HOST:PORT")?),
        Some("tls") => Command::Tls(operand("address: burrow tls PORT|HOST:PORT")?),
        Some("start") => return start(pos.collect(), flags),
        Some("authtoken") => Command::Authtoken(operand("token: burrow authtoken TOKEN")?),
        Some("config") => match operand("").ok().as_deref() {
            Some("add-authtoken") => {
                Command::Authtoken(operand("token: burrow config add-authtoken TOKEN")?)
            }
            Some(other) => return Err(UsageError(format!("unknown config command {other:?}"))),
            None => {
                return Err(UsageError(
                    "config needs a subcommand: add-authtoken".into(),
                ))
            }
        },
        Some("version") => Command::Version,
        Some("help") => return Ok(Command::Help(pos.next())),
        Some(other) => return Err(UsageError(format!("unknown command {other:?}"))),
    };
    if let Some(extra) = pos.next() {
        return Err(UsageError(format!("unexpected argument {extra:?}")));
    }
    Ok(command)
}

/// `start NAME...`, `start --all` or `start --none`: exactly one of the three.
fn start(names: Vec<String>, flags: &Flags) -> Result<Command, UsageError> {
    if flags.all && flags.none {
        return Err(UsageError("start takes --all or --none, not both".into()));
    }
    if !names.is_empty() && (flags.all || flags.none) {
        return Err(UsageError(
            "start takes tunnel names or --all or --none".into(),
        ));
    }
    if names.is_empty() && !flags.all && !flags.none {
        return Err(UsageError(
            "start needs tunnel names from the configuration, --all or --none".into(),
        ));
    }
    Ok(Command::Start(names))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" => Some(true),
        "false" | "0" | "f" => Some(false),
        _ => None,
    }
}

/// General help text.
pub const HELP: &str = "burrow: expose a local server through a Burrow relay (ngrok v2 compatible)

USAGE:
  burrow http [flags] ADDR       forward http(s) traffic to ADDR: a port, host:port, a URL
                                 (https://... speaks TLS to it; a bare 443 too) or
                                 file:///absolute/dir (built-in file server)
  burrow tcp [flags] ADDR        forward a public tcp port to ADDR
  burrow tls [flags] ADDR        forward TLS connections by SNI, still encrypted, to ADDR
                                 (or terminate them here with -crt and -key)
  burrow start NAME... | --all | --none
                                 start tunnels named in the configuration file(s)
  burrow authtoken TOKEN         save TOKEN in the configuration file (also:
                                 burrow config add-authtoken TOKEN)
  burrow version                 print the version
  burrow help [COMMAND]          this text

With no -server, burrow starts a relay inside the same process on loopback and prints
URLs like http://3fa9c1d2.localhost:8000 that curl and browsers on this machine reach.
Requests on http tunnels appear live at http://127.0.0.1:4040 (the inspector).

FLAGS (one or two dashes; -flag value or -flag=value):
  -subdomain NAME     ask for NAME.<relay domain> (http, tls)
  -hostname HOST      ask for a full hostname, or *.example.com for every subdomain
                      (http, tls)
  -remote-addr H:P    ask for a public port (tcp), e.g. localhost:12345
  -bind-tls MODE      both (default), true (https only) or false (http only)
  -auth USER:PASS     HTTP basic auth the relay enforces (http)
  -host-header MODE   rewrite (to the local address), preserve (default) or a value (http)
  -inspect=BOOL       capture http requests for the inspector (default true)
  -crt PATH, -key PATH  certificate and key to terminate TLS in the agent (tls)
  -client-cas PATH    with -crt/-key: require client certificates from these CAs (tls)
  -authtoken TOKEN    token the relay asks for
  -server HOST:PORT   the relay's agent address (default: an embedded relay), or
                      several separated by commas, tried in turn; a {region} in
                      it is replaced by the region
  -root-cas PATH      PEM file of CAs to trust for the relay, or host (system roots)
  -log TARGET         stdout, stderr, false (default) or a file path
  -log-level LEVEL    debug, info, warn, error, crit (default info)
  -log-format FORMAT  logfmt (default), json or term
  -region REGION      the region to ask the relay for (default us); a relay of
                      another region refuses the agent
  -config PATH        configuration file (repeatable; later files win); default
                      ~/.burrow/burrow.yml, ignored when missing
  -all, -none         with start: every configured tunnel, or none (API only)

Flags on the command line override the configuration file. The local API listens on
web_addr (default 127.0.0.1:4040, then 4041... when taken).
";

/// Help for one command (`burrow help http`, `burrow http -help`); `None` for a command
/// that does not exist.
pub fn help_for(command: &str) -> Option<String> {
    let (usage, what, flags): (&str, &str, &[&str]) = match command {
        "http" => (
            "burrow http [flags] ADDR",
            "Start an http tunnel to ADDR: a port (8080), host:port, a URL (https://... speaks\n\
             TLS to the local server, as does a bare 443) or file:///absolute/dir (the built-in\n\
             file server). Prints an http and an https URL (see -bind-tls).",
            &[
                "subdomain",
                "hostname",
                "bind-tls",
                "auth",
                "host-header",
                "inspect",
            ],
        ),
        "tcp" => (
            "burrow tcp [flags] ADDR",
            "Start a tcp tunnel: a public port on the relay forwards raw bytes to ADDR.",
            &["remote-addr"],
        ),
        "tls" => (
            "burrow tls [flags] ADDR",
            "Start a tls tunnel: connections are routed by SNI and reach ADDR still encrypted,\n\
             unless -crt and -key terminate TLS here.",
            &["subdomain", "hostname", "crt", "client-cas"],
        ),
        "start" => (
            "burrow start NAME... | --all | --none",
            "Start tunnels by their names in the configuration file(s); --all starts every\n\
             one, --none none (only the local API runs).",
            &["all"],
        ),
        "authtoken" => (
            "burrow authtoken TOKEN",
            "Save TOKEN as authtoken in the configuration file (-config, or\n\
             ~/.burrow/burrow.yml).",
            &[],
        ),
        "config" => (
            "burrow config add-authtoken TOKEN",
            "Save TOKEN as authtoken in the configuration file, like burrow authtoken.",
            &[],
        ),
        "version" => ("burrow version", "Print the version.", &[]),
        "help" => (
            "burrow help [COMMAND]",
            "Print help, for COMMAND or in general.",
            &[],
        ),
        _ => return None,
    };
    let mut out = format!("USAGE:\n  {usage}\n\n{what}\n");
    let lines: Vec<&str> = HELP
        .split("FLAGS (")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let section = |names: &[&str], out: &mut String| {
        for (i, line) in lines.iter().enumerate() {
            let named = names.iter().any(|n| {
                line.trim_start()
                    .strip_prefix('-')
                    .and_then(|l| l.strip_prefix(n))
                    .is_some_and(|rest| rest.starts_with([' ', '=', ',']))
            });
            if named {
                out.push_str(line);
                out.push('\n');
                // Continuation lines of the same flag are indented past the flag column.
                for more in &lines[i + 1..] {
                    if !more.starts_with("      ") {
                        break;
                    }
                    out.push_str(more);
                    out.push('\n');
                }
            }
        }
    };
    if !flags.is_empty() {
        out.push_str("\nFLAGS:\n");
        section(flags, &mut out);
    }
    if matches!(command, "http" | "tcp" | "tls" | "start") {
        out.push_str("\nSESSION FLAGS:\n");
        section(
            &[
                "authtoken",
                "server",
                "root-cas",
                "region",
                "config",
                "log",
                "log-level",
                "log-format",
            ],
            &mut out,
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(Command, Flags), UsageError> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn cert_is_an_alias_of_crt() {
        let (_, f) = p("tls -cert a.pem -key a.key 443").unwrap();
        assert_eq!(f.crt.as_deref(), Some("a.pem"));
    }

    #[test]
    fn single_and_double_dash_and_after_positionals() {
        let (c, f) = p("http -subdomain=foo 8080 --authtoken tok -region eu").unwrap();
        assert_eq!(c, Command::Http("8080".into()));
        assert_eq!(f.subdomain.as_deref(), Some("foo"));
        assert_eq!(f.authtoken.as_deref(), Some("tok"));
        assert_eq!(f.region.as_deref(), Some("eu"));
        let (_, f) = p("tcp --subdomain foo 22 -inspect=false").unwrap();
        assert_eq!(f.subdomain.as_deref(), Some("foo"));
        assert_eq!(f.inspect, Some(false));
    }

    #[test]
    fn version_and_help() {
        assert_eq!(p("--version").unwrap().0, Command::Version);
        assert_eq!(p("version").unwrap().0, Command::Version);
        assert_eq!(
            p("http -help").unwrap().0,
            Command::Help(Some("http".into()))
        );
        assert_eq!(p("").unwrap().0, Command::Help(None));
        assert_eq!(
            p("help http").unwrap().0,
            Command::Help(Some("http".into()))
        );
    }

    #[test]
    fn help_for_a_command_lists_its_own_flags() {
        let http = help_for("http").unwrap();
        assert!(http.starts_with("USAGE:\n  burrow http [flags] ADDR"));
        assert!(http.contains("-subdomain NAME"));
        assert!(http.contains("-auth USER:PASS"));
        assert!(http.contains("-authtoken TOKEN"));
        assert!(!http.contains("-remote-addr"));
        let tcp = help_for("tcp").unwrap();
        assert!(tcp.contains("-remote-addr H:P"));
        assert!(!tcp.contains("-subdomain"));
        assert!(help_for("tls").unwrap().contains("-client-cas PATH"));
        assert!(help_for("frobnicate").is_none());
    }

    #[test]
    fn errors_are_one_line_and_name_the_problem() {
        let e = |s| p(s).unwrap_err().to_string();
        assert!(e("http 80 -bogus").starts_with("unknown flag -bogus\n"));
        assert!(e("http 80 -subdomain").starts_with("flag -subdomain needs a value"));
        assert!(e("http").starts_with("missing address"));
        assert!(e("frobnicate").starts_with("unknown command \"frobnicate\""));
        assert!(e("http 80 -inspect=maybe").contains("-inspect"));
        assert!(e("http 80 81").contains("unexpected argument \"81\""));
        assert!(e("http 80 -subdomain -config x.yml").starts_with("flag -subdomain needs a value"));
        assert!(e("start --all --none").contains("not both"));
        assert!(e("start web --all").contains("names or --all"));
    }
}
