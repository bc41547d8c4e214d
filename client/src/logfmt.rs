//! logfmt log lines as the ngrok v2 agent writes them and its wrappers parse them:
//! `t=2006-01-02T15:04:05+0000 lvl=info msg="..." key=value`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Quotes a value when it holds spaces, quotes, `=`, backslashes or control characters.
pub fn quote(v: &str) -> String {
    let needs = v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if !needs {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub use burrow_http::calendar::civil_from_days;

/// Go's reference layout `2006-01-02T15:04:05-0700`, in UTC.
pub fn timestamp(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn level(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "eror",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "dbug",
    }
}

#[derive(Default)]
struct Fields {
    msg: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.rest.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// ngrok's `log_format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `t=... lvl=... msg=... key=value`.
    Logfmt,
    /// One JSON object per line with the same keys.
    Json,
    /// For people: time, level, message, then the fields.
    Term,
}

impl Format {
    /// Parses `logfmt`, `json` or `term`.
    pub fn parse(s: &str) -> Result<Format, FormatError> {
        match s {
            "logfmt" => Ok(Format::Logfmt),
            "json" => Ok(Format::Json),
            "term" => Ok(Format::Term),
            other => Err(FormatError(other.to_string())),
        }
    }
}

/// A `log_format` (or `--log-format`) that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log_format {0:?}: want logfmt, json or term")]
pub struct FormatError(pub String);

/// A `log_level` (or `--log-level`) that names no level; holds the name lowercased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log level {0:?}: want debug (dbug), info, warn, error (eror) or crit")]
pub struct LevelError(pub String);

/// Writes each event as one line to the sink, flushed at once.
pub struct LogfmtLayer {
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
    format: Format,
}

impl LogfmtLayer {
    /// A logfmt layer writing to `sink`.
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Self::with_format(sink, Format::Logfmt)
    }

    /// A layer writing `format` lines to `sink`.
    pub fn with_format(sink: Box<dyn Write + Send>, format: Format) -> Self {
        LogfmtLayer {
            sink: Arc::new(Mutex::new(sink)),
            format,
        }
    }
}

/// Formats one line (with its newline).
pub fn line(
    format: Format,
    now: SystemTime,
    lvl: &str,
    msg: &str,
    fields: &[(&str, String)],
) -> String {
    match format {
        Format::Logfmt => {
            let mut out = format!("t={} lvl={lvl} msg={}", timestamp(now), quote(msg));
            for (k, v) in fields {
                out.push_str(&format!(" {k}={}", quote(v)));
            }
            out + "\n"
        }
        Format::Json => {
            let mut map = serde_json::Map::new();
            map.insert("t".into(), timestamp(now).into());
            map.insert("lvl".into(), lvl.into());
            map.insert("msg".into(), msg.into());
            for (k, v) in fields {
                map.insert((*k).into(), v.clone().into());
            }
            serde_json::Value::Object(map).to_string() + "\n"
        }
        Format::Term => {
            let t = timestamp(now);
            let mut out = format!("{} {:<4} {msg:<40}", &t[11..19], lvl.to_uppercase());
            for (k, v) in fields {
                out.push_str(&format!(" {k}={}", quote(v)));
            }
            out + "\n"
        }
    }
}

impl<S: Subscriber> Layer<S> for LogfmtLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let line = line(
            self.format,
            SystemTime::now(),
            level(event.metadata().level()),
            &f.msg,
            &f.rest
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect::<Vec<_>>(),
        );
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = sink.write_all(line.as_bytes());
        let _ = sink.flush();
    }
}

/// Parses a log level name as ngrok writes them.
pub fn parse_level(l: &str) -> Result<Level, LevelError> {
    match l.to_ascii_lowercase().as_str() {
        "dbug" | "debug" | "trace" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" | "warning" => Ok(Level::WARN),
        "eror" | "error" | "crit" => Ok(Level::ERROR),
        other => Err(LevelError(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("a\"b\\c=d"), "\"a\\\"b\\\\c=d\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn three_formats() {
        let t = UNIX_EPOCH + Duration::from_secs(1_136_214_245);
        let f = [
            ("obj", "web".to_string()),
            ("addr", "127.0.0.1:4040".to_string()),
        ];
        assert_eq!(
            line(Format::Logfmt, t, "info", "starting web service", &f),
            "t=2006-01-02T15:04:05+0000 lvl=info msg=\"starting web service\" obj=web addr=127.0.0.1:4040\n"
        );
        let j: serde_json::Value =
            serde_json::from_str(&line(Format::Json, t, "info", "m \"q\"", &f)).unwrap();
        assert_eq!(j["msg"], "m \"q\"");
        assert_eq!(j["addr"], "127.0.0.1:4040");
        assert!(line(Format::Term, t, "warn", "hello", &f).starts_with("15:04:05 WARN hello"));
    }

    #[test]
    fn go_time_layout() {
        let t = UNIX_EPOCH + Duration::from_secs(1_136_214_245);
        assert_eq!(timestamp(t), "2006-01-02T15:04:05+0000");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00+0000"
        );
    }
}
