//! Human output of `burrowd admin`: aligned tables, UTC times, and text made safe for a
//! terminal.

use serde_json::Value;

/// `v[key]` as text: strings as they are, numbers and booleans printed, anything else
/// (null, missing) empty. Control characters are escaped: labels, metadata and key
/// comments come from others, and a terminal would obey escape sequences in them.
pub fn text(v: &Value, key: &str) -> String {
    clean(&match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

/// `s` with control characters escaped (`\u{1b}`), so it prints as itself.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `v[key]` as a count.
pub fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// `v` as a list (empty when it is not one).
pub fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS` in UTC (empty for 0 or missing).
pub fn utc(v: &Value, key: &str) -> String {
    match v[key].as_u64() {
        Some(secs) if secs > 0 => utc_secs(secs),
        _ => String::new(),
    }
}

fn utc_secs(secs: u64) -> String {
    let rem = secs % 86_400;
    let (year, month, day) = burrow_http::calendar::civil_from_days((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A byte count for people: `512 B`, `1.5 KiB`, `12 MiB`.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in ["KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// `n` and the noun, singular or plural.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Rows under `headers`, each column as wide as its widest cell, two spaces apart; `(none)`
/// when there are no rows.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Label: value lines with the values aligned.
pub fn pairs(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:width$}  {v}").trim_end().to_string() + "\n")
        .collect()
}

/// `text` with every line indented by two spaces.
pub fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["ID", "LABEL", "HINT"],
            &[
                vec!["tok_1".into(), "ci".into(), "brt_ab…".into()],
                vec!["tok_22".into(), "laptop".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "ID      LABEL   HINT\ntok_1   ci      brt_ab…\ntok_22  laptop\n"
        );
        assert_eq!(table(&["A"], &[]), "(none)\n");
    }

    #[test]
    fn times_bytes_and_hostile_text() {
        assert_eq!(utc_secs(0), "1970-01-01 00:00:00");
        assert_eq!(utc_secs(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_secs(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(&json!({"created": 0}), "created"), "");
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 << 20), "20 MiB");
        assert_eq!(
            text(&json!({"label": "a\u{1b}[2Jb"}), "label"),
            "a\\u{1b}[2Jb"
        );
        assert_eq!(text(&json!({"n": 3}), "n"), "3");
        assert_eq!(text(&json!({}), "n"), "");
        assert_eq!(
            pairs(&[("a", "1".into()), ("long", "".into())]),
            "a     1\nlong\n"
        );
    }
}
