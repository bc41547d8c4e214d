//! The agent's effective settings: configuration files first, command-line flags on top.

use crate::cli::Flags;
use crate::config::{self, Config, ConsoleUi};
use crate::logfmt::{self, parse_level};
use anyhow::Context as _;
use burrow_protocol::control::{valid_region, DEFAULT_REGION};
use std::path::PathBuf;

/// Where the local API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebAddr {
    /// Not configured: 127.0.0.1:4040, or the next free port.
    Default,
    /// Configured: this address or a fatal error.
    Explicit(std::net::SocketAddr),
    /// `web_addr: false`.
    Off,
}

/// The agent's effective settings: configuration files, then command-line flags on top.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Relay addresses (with `{region}` filled in), in the order given; empty: the embedded
    /// relay.
    pub servers: Vec<String>,
    /// Token for the relay.
    pub authtoken: Option<String>,
    /// `host`, `trusted` or a PEM path.
    pub root_cas: Option<String>,
    /// Local API address.
    pub web_addr: WebAddr,
    /// `stdout`, `stderr`, `false` or a path.
    pub log: String,
    /// Minimum level.
    pub log_level: tracing::Level,
    /// Line format.
    pub log_format: logfmt::Format,
    /// Console UI mode.
    pub console_ui: ConsoleUi,
    /// `transparent` or `black`.
    pub console_ui_color: String,
    /// Outbound HTTP proxy.
    pub http_proxy: Option<String>,
    /// Outbound SOCKS5 proxy.
    pub socks5_proxy: Option<String>,
    /// Bytes of captured requests (-1: capture off).
    pub inspect_db_size: i64,
    /// The region to ask the relay for; `None` when neither flag nor file names one.
    pub region: Option<String>,
    /// The configuration files read.
    pub config_paths: Vec<PathBuf>,
}

/// Reads the configuration files the flags name (or the default one).
pub fn load_config(flags: &Flags) -> Result<(Config, Vec<PathBuf>), config::ConfigError> {
    let mut loaded = Vec::new();
    if flags.config.is_empty() {
        if let Some(p) = config::default_path() {
            if let Some(l) = config::load(&p, false)? {
                loaded.push(l);
            }
        }
    } else {
        for p in &flags.config {
            loaded.extend(config::load(std::path::Path::new(p), true)?);
        }
    }
    let paths = loaded.iter().map(|l| l.path.clone()).collect();
    Ok((config::merge_all(&loaded)?, paths))
}

impl Settings {
    /// The global settings worth showing, with the auth token cut to a prefix.
    pub fn rows(&self) -> Vec<(String, String)> {
        let s = self;
        let token = match &s.authtoken {
            Some(t) if t.chars().count() > 6 => {
                format!("{}…", t.chars().take(6).collect::<String>())
            }
            Some(_) => "(set)".into(),
            None => "(none)".into(),
        };
        let paths = s
            .config_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            ("authtoken".into(), token),
            (
                "server_addr".into(),
                if s.servers.is_empty() {
                    "(embedded relay)".into()
                } else {
                    s.servers.join(", ")
                },
            ),
            (
                "region".into(),
                s.region
                    .clone()
                    .unwrap_or_else(|| format!("{DEFAULT_REGION} (default)")),
            ),
            (
                "inspect_db_size".into(),
                match s.inspect_db_size {
                    0 => format!("{} (default)", crate::inspect::store::DEFAULT_DB_SIZE),
                    n if n < 0 => format!("{n} (inspection off)"),
                    n => n.to_string(),
                },
            ),
            ("log".into(), s.log.clone()),
            (
                "configuration files".into(),
                if paths.is_empty() {
                    "(none)".into()
                } else {
                    paths
                },
            ),
        ]
    }

    /// Combines the configuration and the flags (flags win).
    pub fn resolve(cfg: &Config, flags: &Flags, paths: Vec<PathBuf>) -> anyhow::Result<Self> {
        let web_addr = match cfg.web_addr.as_ref() {
            None => WebAddr::Default,
            Some(w) => match w.value() {
                None => WebAddr::Off,
                Some(a) => WebAddr::Explicit(
                    a.parse()
                        .with_context(|| format!("invalid web_addr {a:?}"))?,
                ),
            },
        };
        let log = flags
            .log
            .clone()
            .or_else(|| {
                cfg.log
                    .as_ref()
                    .map(|l| l.value().unwrap_or("false").to_string())
            })
            .unwrap_or_else(|| "false".into());
        let level = flags
            .log_level
            .as_deref()
            .or(cfg.log_level.as_deref())
            .unwrap_or("info");
        let log_level = parse_level(level)?;
        let log_format = logfmt::Format::parse(
            flags
                .log_format
                .as_deref()
                .or(cfg.log_format.as_deref())
                .unwrap_or("logfmt"),
        )?;
        let console_ui = match &cfg.console_ui {
            Some(v) => config::parse_console_ui(v)?,
            None => ConsoleUi::IfTty,
        };
        let region = match flags.region.as_ref().or(cfg.region.as_ref()) {
            Some(r) if !valid_region(&r.to_ascii_lowercase()) => anyhow::bail!(
                "invalid region {r:?}: want letters, digits and dashes, e.g. us or eu"
            ),
            r => r.map(|r| r.to_ascii_lowercase()),
        };
        let servers = match (&flags.server, &cfg.server_addr) {
            (Some(flag), _) => {
                let entries: Vec<&str> = flag.split(',').collect();
                relay_addresses(&entries, region.as_deref())
                    .map_err(|e| anyhow::anyhow!("invalid -server {flag:?}: {e}"))?
            }
            (None, Some(file)) => relay_addresses(&file.entries(), region.as_deref())
                .map_err(|e| anyhow::anyhow!("invalid server_addr {:?}: {e}", file.to_string()))?,
            (None, None) => Vec::new(),
        };
        Ok(Settings {
            servers,
            authtoken: flags.authtoken.clone().or_else(|| cfg.authtoken.clone()),
            root_cas: flags.root_cas.clone().or_else(|| cfg.root_cas.clone()),
            web_addr,
            log,
            log_level,
            log_format,
            console_ui,
            console_ui_color: cfg
                .console_ui_color
                .clone()
                .unwrap_or_else(|| "transparent".into()),
            http_proxy: cfg.http_proxy.clone(),
            socks5_proxy: cfg.socks5_proxy.clone(),
            inspect_db_size: cfg.inspect_db_size.unwrap_or(0),
            region,
            config_paths: paths,
        })
    }
}

/// `server` with each `{region}` replaced by `region` (the default region when none is
/// given), so one configuration can name a relay per region.
pub fn server_for_region(server: &str, region: Option<&str>) -> String {
    server.replace("{region}", region.unwrap_or(DEFAULT_REGION))
}

/// The relay addresses `entries` name, each trimmed, with `{region}` filled in and checked
/// as `HOST:PORT` whose host can name a TLS server; an empty entry (`a:1,,b:2`, a trailing
/// comma, an empty list) is refused rather than skipped, as it is most likely a typo.
pub fn relay_addresses(entries: &[&str], region: Option<&str>) -> Result<Vec<String>, String> {
    if entries.is_empty() {
        return Err("no address: want HOST:PORT, or several separated by commas".into());
    }
    entries
        .iter()
        .map(|raw| {
            let entry = raw.trim();
            if entry.is_empty() {
                return Err(
                    "empty entry: want HOST:PORT, or several separated by commas".to_string(),
                );
            }
            let addr = server_for_region(entry, region);
            crate::tunnels::lane::RelayAddr::parse(&addr).map_err(|e| format!("{entry:?}: {e}"))?;
            Ok(addr)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerAddr;

    #[test]
    fn region_placeholder_in_server_addr() {
        let s = "{region}.relay.example.com:4443";
        assert_eq!(
            server_for_region(s, Some("eu")),
            "eu.relay.example.com:4443"
        );
        assert_eq!(server_for_region(s, None), "us.relay.example.com:4443");
        let plain = "relay.example.com:4443";
        assert_eq!(server_for_region(plain, Some("eu")), plain);
        assert_eq!(server_for_region(plain, None), plain);
    }

    #[test]
    fn region_from_flag_or_file_fills_the_server_address() {
        let cfg = Config {
            server_addr: Some("{region}.relay.example.com:4443".into()),
            region: Some("EU".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&cfg, &Flags::default(), Vec::new()).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu"));
        assert_eq!(s.servers, ["eu.relay.example.com:4443"]);
        let flags = Flags {
            region: Some("ap".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&cfg, &flags, Vec::new()).unwrap();
        assert_eq!(s.servers, ["ap.relay.example.com:4443"]);
        let none = Settings::resolve(&Config::default(), &Flags::default(), Vec::new()).unwrap();
        assert_eq!(none.region, None);
        assert!(none.servers.is_empty());
        let bad = Flags {
            region: Some("eu west".into()),
            ..Default::default()
        };
        let err = Settings::resolve(&cfg, &bad, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("invalid region"), "{err}");
    }

    fn servers(cfg: Config, flags: Flags) -> anyhow::Result<Vec<String>> {
        Settings::resolve(&cfg, &flags, Vec::new()).map(|s| s.servers)
    }

    fn file(server_addr: ServerAddr, region: Option<&str>) -> Config {
        Config {
            server_addr: Some(server_addr),
            region: region.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn server_addr_takes_a_list_a_comma_separated_string_or_one_address() {
        let one = servers(
            file("relay.example.com:4443".into(), None),
            Flags::default(),
        );
        assert_eq!(one.unwrap(), ["relay.example.com:4443"]);
        let commas = servers(
            file("a:4443, b:4443,[::1]:4443".into(), None),
            Flags::default(),
        );
        assert_eq!(commas.unwrap(), ["a:4443", "b:4443", "[::1]:4443"]);
        let list = ServerAddr::List(vec!["a:4443".into(), "10.0.0.2:4443".into()]);
        let list = servers(file(list, None), Flags::default());
        assert_eq!(list.unwrap(), ["a:4443", "10.0.0.2:4443"]);
        // The flag replaces the whole file setting, and takes the same forms.
        let flag = Flags {
            server: Some("c:1,d:2".into()),
            ..Default::default()
        };
        let both = servers(file("a:4443".into(), None), flag);
        assert_eq!(both.unwrap(), ["c:1", "d:2"]);
    }

    #[test]
    fn region_placeholder_is_filled_in_each_address() {
        let list = ServerAddr::List(vec![
            "{region}.a.example:4443".into(),
            "{region}.b.example:4443".into(),
        ]);
        let got = servers(file(list, Some("eu")), Flags::default()).unwrap();
        assert_eq!(got, ["eu.a.example:4443", "eu.b.example:4443"]);
        let flag = Flags {
            server: Some("{region}.a.example:1,b.example:2".into()),
            region: Some("ap".into()),
            ..Default::default()
        };
        let got = servers(Config::default(), flag).unwrap();
        assert_eq!(got, ["ap.a.example:1", "b.example:2"]);
    }

    #[test]
    fn empty_or_malformed_entries_are_refused_naming_the_value() {
        for (value, why) in [
            ("a:4443,,b:4443", "empty entry"),
            ("a:4443,", "empty entry"),
            ("", "empty entry"),
            ("a:4443,b", "\"b\": want HOST:PORT"),
            ("a:99999", "want HOST:PORT"),
            ("::1:4443", "brackets"),
        ] {
            let err = servers(file(value.into(), None), Flags::default()).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains(&format!("invalid server_addr {value:?}")),
                "{err}"
            );
            assert!(err.contains(why), "{value}: {err}");
            let flag = Flags {
                server: Some(value.into()),
                ..Default::default()
            };
            let err = format!("{:#}", servers(Config::default(), flag).unwrap_err());
            assert!(err.contains(&format!("invalid -server {value:?}")), "{err}");
            assert!(err.contains(why), "{value}: {err}");
        }
        let err = servers(file(ServerAddr::List(Vec::new()), None), Flags::default());
        assert!(format!("{:#}", err.unwrap_err()).contains("no address"));
        let list = ServerAddr::List(vec!["a:1".into(), " ".into()]);
        let err = format!(
            "{:#}",
            servers(file(list, None), Flags::default()).unwrap_err()
        );
        assert!(
            err.contains("invalid server_addr \"[a:1,  ]\": empty entry"),
            "{err}"
        );
    }
}
