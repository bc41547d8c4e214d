//! ngrok v2's YAML configuration: keys, defaults, merging several files, and errors that
//! name the file, line, column and key. This is the only module that touches YAML, so the
//! YAML crate stays swappable.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `console_ui`: true, false or iftty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleUi {
    /// Always.
    True,
    /// Never.
    False,
    /// Only when stdout is a terminal.
    #[default]
    IfTty,
}

/// A value that may be a string or `false` (ngrok's `log` and `web_addr`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StringOrFalse {
    /// Turned off (`false`).
    Off(bool),
    /// A value.
    Value(String),
}

impl StringOrFalse {
    /// The value, or `None` when off.
    pub fn value(&self) -> Option<&str> {
        match self {
            StringOrFalse::Off(_) => None,
            StringOrFalse::Value(v) if v == "false" => None,
            StringOrFalse::Value(v) => Some(v),
        }
    }
}

/// A value that may be a string, number or boolean (`addr: 8080`, `bind_tls: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a number or true/false")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v).map(Scalar::Int).map_err(E::custom)
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

/// `server_addr` as written: one string (which may hold several addresses separated by
/// commas) or a YAML list of them. Kept as written so merging and saving files see the
/// user's form; [`ServerAddr::entries`] gives the addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddr {
    /// `server_addr: relay.example.com:4443` (or `a:4443,b:4443`).
    One(String),
    /// `server_addr: [a:4443, b:4443]`.
    List(Vec<String>),
}

impl ServerAddr {
    /// Every entry, list items and comma-separated parts alike, in order and untrimmed, so
    /// a checker can point at an empty one.
    pub fn entries(&self) -> Vec<&str> {
        match self {
            ServerAddr::One(s) => s.split(',').collect(),
            ServerAddr::List(l) => l.iter().flat_map(|s| s.split(',')).collect(),
        }
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::One(s) => f.write_str(s),
            ServerAddr::List(l) => write!(f, "[{}]", l.join(", ")),
        }
    }
}

impl From<&str> for ServerAddr {
    fn from(s: &str) -> Self {
        ServerAddr::One(s.to_string())
    }
}

impl<'de> Deserialize<'de> for ServerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum, so a wrong type is reported with the
        // file's line and column like every other key.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ServerAddr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("HOST:PORT, several separated by commas, or a list of them")
            }
            fn visit_str<E>(self, v: &str) -> Result<ServerAddr, E> {
                Ok(ServerAddr::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ServerAddr, A::Error> {
                let mut list = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    list.push(s);
                }
                Ok(ServerAddr::List(list))
            }
        }
        d.deserialize_any(V)
    }
}

/// Tunnel protocols a config may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// http(s).
    Http,
    /// tcp.
    Tcp,
    /// tls.
    Tls,
}

/// One entry of `tunnels:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// Protocol.
    pub proto: Option<Proto>,
    /// Local address: port, host:port, URL or file:// path.
    pub addr: Option<Scalar>,
    /// Whether requests are captured for the inspector.
    pub inspect: Option<bool>,
    /// Basic auth `user:password` enforced by the relay.
    pub auth: Option<String>,
    /// `rewrite`, `preserve` or a value.
    pub host_header: Option<String>,
    /// `both`, `true` or `false`.
    pub bind_tls: Option<Scalar>,
    /// Requested subdomain.
    pub subdomain: Option<String>,
    /// Requested hostname.
    pub hostname: Option<String>,
    /// Certificate for agent-side TLS termination.
    pub crt: Option<String>,
    /// Key for agent-side TLS termination.
    pub key: Option<String>,
    /// CAs for client certificates.
    pub client_cas: Option<String>,
    /// Requested public `host:port` (tcp).
    pub remote_addr: Option<String>,
    /// Free-form metadata.
    pub metadata: Option<String>,
}

/// A whole configuration file (or the merge of several).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Ignored, accepted for compatibility.
    pub version: Option<Value>,
    /// Token for the relay.
    pub authtoken: Option<String>,
    /// The region to ask the relay for; also fills `{region}` in `server_addr`.
    pub region: Option<String>,
    /// `true`, `false` or `iftty`.
    pub console_ui: Option<Scalar>,
    /// `transparent` or `black`.
    pub console_ui_color: Option<String>,
    /// `http://[user:pass@]host:port`.
    pub http_proxy: Option<String>,
    /// `socks5://[user:pass@]host:port`.
    pub socks5_proxy: Option<String>,
    /// Bytes of captured requests kept; -1 disables capture.
    pub inspect_db_size: Option<i64>,
    /// `debug`, `info`, `warn`, `error`, `crit`.
    pub log_level: Option<String>,
    /// `logfmt`, `json` or `term`.
    pub log_format: Option<String>,
    /// `stdout`, `stderr`, `false` or a path.
    pub log: Option<StringOrFalse>,
    /// Free-form metadata.
    pub metadata: Option<String>,
    /// `trusted`, `host` or a PEM path.
    pub root_cas: Option<String>,
    /// The relay's agent address, or several (a YAML list or a comma-separated string).
    pub server_addr: Option<ServerAddr>,
    /// Accepted; Burrow does not self-update.
    pub update: Option<Scalar>,
    /// Accepted; Burrow does not self-update.
    pub update_channel: Option<String>,
    /// Address of the local API and inspector, or false.
    pub web_addr: Option<StringOrFalse>,
    /// Named tunnels.
    pub tunnels: Option<BTreeMap<String, TunnelConfig>>,
}

/// A configuration error naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The default configuration file: `~/.burrow/burrow.yml`.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".burrow").join("burrow.yml"))
}

fn locate(text: &str, key: &str) -> String {
    // Best effort for errors found after merging: the line where the key is defined.
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with(&format!("{key}:")) || t.starts_with(&format!("\"{key}\":")) {
            return format!(" line {} column {}", i + 1, line.len() - t.len() + 1);
        }
    }
    String::new()
}

/// A file's parsed content, kept with its text for error locations.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it came from.
    pub path: PathBuf,
    text: String,
    value: Value,
}

/// Reads and checks one file; `Ok(None)` if it is the default file and missing.
pub fn load(path: &Path, required: bool) -> Result<Option<Loaded>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError(format!(
                "cannot read config file {}: {e}",
                path.display()
            )))
        }
    };
    parse_text(path, text).map(Some)
}

/// Parses and checks config text that came from `path`.
pub fn parse_text(path: &Path, text: String) -> Result<Loaded, ConfigError> {
    let at = |e: &serde_yaml::Error| match e.location() {
        Some(l) => format!("{} line {} column {}", path.display(), l.line(), l.column()),
        None => path.display().to_string(),
    };
    // serde_yaml's message ends with "at line L column C"; the file and place lead instead.
    let msg = |e: &serde_yaml::Error| {
        let m = e.to_string();
        match m.rfind(" at line ") {
            Some(i) if e.location().is_some() => m[..i].to_string(),
            _ => m,
        }
    };
    let value: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml::from_str(&text)
            .map_err(|e| ConfigError(format!("invalid config file {}: {}", at(&e), msg(&e))))?
    };
    if !matches!(value, Value::Mapping(_)) {
        return Err(ConfigError(format!(
            "invalid config file {}: the top level must be a mapping of keys",
            path.display()
        )));
    }
    // Deserialise from the text, not the value, so errors carry line and column.
    if !text.trim().is_empty() {
        serde_yaml::from_str::<Config>(&text)
            .map_err(|e| ConfigError(format!("invalid config file {}: {}", at(&e), msg(&e))))?;
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        text,
        value,
    })
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_mapping() && v.is_mapping() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Merges files in order (later keys win, tunnels merge by name) and validates the result.
/// Merges the files in order (later ones win) and checks the settings, not the tunnels
/// (see [`crate::config::merge_all`]).
pub fn merge_files(files: &[Loaded]) -> Result<Config, ConfigError> {
    let mut merged = Value::Mapping(Mapping::new());
    for f in files {
        merge(&mut merged, f.value.clone());
    }
    // Through text, so the merge is read exactly as each file was.
    let text = serde_yaml::to_string(&merged)
        .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
    let cfg: Config = serde_yaml::from_str(&text)
        .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
    validate(&cfg)?;
    Ok(cfg)
}

/// Which file defines `tunnel`, for error messages.
pub fn where_defined(files: &[Loaded], tunnel: &str) -> String {
    for f in files.iter().rev() {
        let defines = f.value.get("tunnels").and_then(|t| t.get(tunnel)).is_some();
        if defines {
            return format!("{}{}", f.path.display(), locate(&f.text, tunnel));
        }
    }
    "the configuration".into()
}

fn validate(cfg: &Config) -> Result<(), ConfigError> {
    if let Some(c) = &cfg.console_ui {
        parse_console_ui(c).map_err(|e| ConfigError(e.to_string()))?;
    }
    if let Some(c) = &cfg.console_ui_color {
        if !matches!(c.as_str(), "transparent" | "black") {
            return Err(ConfigError(format!(
                "invalid console_ui_color {c:?}: want transparent or black"
            )));
        }
    }
    if let Some(f) = &cfg.log_format {
        crate::logfmt::Format::parse(f).map_err(|e| ConfigError(e.to_string()))?;
    }
    if let Some(l) = &cfg.log_level {
        crate::logfmt::parse_level(l).map_err(|e| ConfigError(e.to_string()))?;
    }
    if let Some(n) = cfg.inspect_db_size {
        if n < -1 {
            return Err(ConfigError(format!(
                "invalid inspect_db_size {n}: want a byte count, 0 for the default, or -1"
            )));
        }
    }
    if let Some(s) = &cfg.server_addr {
        // Region not known yet (a flag may set it): any region gives the same verdict.
        crate::config::settings::relay_addresses(&s.entries(), None)
            .map_err(|e| ConfigError(format!("invalid server_addr {:?}: {e}", s.to_string())))?;
    }
    if let Some(w) = cfg.web_addr.as_ref().and_then(|w| w.value()) {
        w.parse::<std::net::SocketAddr>()
            .map_err(|_| ConfigError(format!("invalid web_addr {w:?}: want IP:PORT or false")))?;
    }
    Ok(())
}

/// Parses `console_ui`.
pub fn parse_console_ui(v: &Scalar) -> Result<ConsoleUi, ConsoleUiError> {
    match v.to_string().as_str() {
        "true" => Ok(ConsoleUi::True),
        "false" => Ok(ConsoleUi::False),
        "iftty" => Ok(ConsoleUi::IfTty),
        other => Err(ConsoleUiError(other.to_string())),
    }
}

/// A `console_ui` value other than true, false or iftty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid console_ui {0:?}: want true, false or iftty")]
pub struct ConsoleUiError(pub String);

/// Sets `authtoken` in the file at `path`, keeping every other key; written to a temporary
/// file and renamed, so the file is complete before anyone is told it was saved.
pub fn save_authtoken(path: &Path, token: &str) -> Result<(), ConfigError> {
    let mut value = match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            serde_yaml::from_str::<Value>(&text).map_err(|e| {
                ConfigError(format!(
                    "cannot update {}: it is not valid YAML: {e}",
                    path.display()
                ))
            })?
        }
        Ok(_) => Value::Mapping(Mapping::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Mapping(Mapping::new()),
        Err(e) => return Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
    };
    let Value::Mapping(map) = &mut value else {
        return Err(ConfigError(format!(
            "cannot update {}: the top level is not a mapping",
            path.display()
        )));
    };
    map.insert("authtoken".into(), token.into());
    let text = serde_yaml::to_string(&value)
        .map_err(|e| ConfigError(format!("cannot write {}: {e}", path.display())))?;
    let fail = |e: std::io::Error| ConfigError(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        // The file holds a secret.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::merge_all;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let l = parse_text(Path::new("/etc/b.yml"), text.to_string())?;
        merge_all(&[l])
    }

    #[test]
    fn ngrok_v2_file_parses() {
        let c = parse(
            "version: \"2\"\nauthtoken: abc\nregion: eu\nconsole_ui: iftty\nweb_addr: 127.0.0.1:4041\nlog: false\ninspect_db_size: -1\nupdate: false\ntunnels:\n  web:\n    proto: http\n    addr: 8080\n    bind_tls: true\n    subdomain: app\n  ssh:\n    proto: tcp\n    addr: 22\n",
        )
        .unwrap();
        assert_eq!(c.authtoken.as_deref(), Some("abc"));
        assert_eq!(c.tunnels.as_ref().unwrap().len(), 2);
        assert_eq!(c.log, Some(StringOrFalse::Off(false)));
        assert!(parse("{}").is_ok());
        assert!(parse("").is_ok());
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let e = parse("authtoken: x\nbogus_key: 1\n").unwrap_err().0;
        assert!(e.contains("/etc/b.yml line 2 column 1"), "{e}");
        assert!(e.contains("unknown field `bogus_key`"), "{e}");
        let e = parse("tunnels:\n  web:\n    proto: htp\n    addr: 80\n")
            .unwrap_err()
            .0;
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("htp"), "{e}");
        let e = parse("tunnels:\n  web:\n    addr: 80\n").unwrap_err().0;
        assert!(
            e.contains("invalid tunnel \"web\" in /etc/b.yml line 2 column 3"),
            "{e}"
        );
        assert!(e.contains("missing proto"), "{e}");
        let e = parse("tunnels:\n  web:\n    proto: http\n").unwrap_err().0;
        assert!(e.contains("missing addr"), "{e}");
        let e = parse("tunnels:\n  web:\n    proto: tcp\n    addr: 99999\n")
            .unwrap_err()
            .0;
        assert!(e.contains("out of range"), "{e}");
        let e = parse("inspect_db_size: lots\n").unwrap_err().0;
        assert!(e.contains("line 1"), "{e}");
        let e = parse("web_addr: here\n").unwrap_err().0;
        assert!(e.contains("invalid web_addr"), "{e}");
        let e = parse("- a\n- b\n").unwrap_err().0;
        assert!(e.contains("mapping"), "{e}");
        let e = parse("tunnels: [\n").unwrap_err().0;
        assert!(e.contains("/etc/b.yml"), "{e}");
    }

    #[test]
    fn server_addr_is_a_string_or_a_list() {
        let c = parse("server_addr: relay.example.com:4443\n").unwrap();
        assert_eq!(c.server_addr, Some("relay.example.com:4443".into()));
        let c = parse("server_addr: a:4443,b:4443\n").unwrap();
        assert_eq!(c.server_addr.unwrap().entries(), ["a:4443", "b:4443"]);
        let c = parse("server_addr: [a:4443, \"{region}.b:4443\"]\n").unwrap();
        let addrs = c.server_addr.unwrap();
        assert_eq!(addrs.entries(), ["a:4443", "{region}.b:4443"]);
        let c = parse("server_addr:\n  - a:4443\n  - b:4443\n").unwrap();
        assert_eq!(
            c.server_addr,
            Some(ServerAddr::List(vec!["a:4443".into(), "b:4443".into()]))
        );
        let e = parse("region: eu\nserver_addr: 4443\n").unwrap_err().0;
        assert!(e.contains("/etc/b.yml line 2"), "{e}");
        assert!(e.contains("HOST:PORT"), "{e}");
        let e = parse("server_addr: a:4443,,b:4443\n").unwrap_err().0;
        assert!(
            e.contains("invalid server_addr \"a:4443,,b:4443\": empty entry"),
            "{e}"
        );
        let e = parse("server_addr: [a:4443, nowhere]\n").unwrap_err().0;
        assert!(e.contains("\"nowhere\": want HOST:PORT"), "{e}");
    }

    #[test]
    fn later_files_win_and_tunnels_merge_by_name() {
        let a = parse_text(
            Path::new("a.yml"),
            "authtoken: one\nregion: us\ntunnels:\n  web:\n    proto: http\n    addr: 80\n".into(),
        )
        .unwrap();
        let b = parse_text(
            Path::new("b.yml"),
            "authtoken: two\ntunnels:\n  web:\n    addr: 81\n  db:\n    proto: tcp\n    addr: 5432\n".into(),
        )
        .unwrap();
        let c = merge_all(&[a, b]).unwrap();
        assert_eq!(c.authtoken.as_deref(), Some("two"));
        assert_eq!(c.region.as_deref(), Some("us"));
        let t = c.tunnels.unwrap();
        assert_eq!(t["web"].addr, Some(Scalar::Int(81)));
        assert_eq!(t["web"].proto, Some(Proto::Http));
        assert!(t.contains_key("db"));
    }

    #[test]
    fn authtoken_is_saved_keeping_other_keys() {
        let dir = std::env::temp_dir().join(format!("burrow-cfg-{}", rand::random::<u32>()));
        let path = dir.join("x.yml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &path,
            "region: eu\ntunnels:\n  a:\n    proto: tcp\n    addr: 22\n",
        )
        .unwrap();
        save_authtoken(&path, "tok").unwrap();
        let c = merge_all(&[load(&path, true).unwrap().unwrap()]).unwrap();
        assert_eq!(c.authtoken.as_deref(), Some("tok"));
        assert_eq!(c.region.as_deref(), Some("eu"));
        assert!(c.tunnels.unwrap().contains_key("a"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
