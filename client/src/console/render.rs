//! Lays the console state out as text, one frame at a time.

use super::text::{fit, sanitize, width};
use super::{ColorMode, ConsoleState, SessionStatus};

/// Column where values start, as in ngrok's console.
const LABEL_COL: usize = 30;
/// Width of each column of the connection statistics.
const STAT_COL: usize = 8;
const QUIT_HINT: &str = "(Ctrl+C to quit)";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Title,
    Green,
    Yellow,
    Red,
}

impl Style {
    fn code(self) -> Option<&'static str> {
        match self {
            Style::Plain => None,
            Style::Title => Some("\x1b[36m"),
            Style::Green => Some("\x1b[32m"),
            Style::Yellow => Some("\x1b[33m"),
            Style::Red => Some("\x1b[31m"),
        }
    }
}

/// One screen row as styled pieces of already-sanitized text.
#[derive(Default)]
struct Row(Vec<(String, Style)>);

impl Row {
    fn plain(s: impl Into<String>) -> Row {
        Row(vec![(s.into(), Style::Plain)])
    }

    fn labelled(label: &str, value: &str, style: Style) -> Row {
        Row(vec![
            (pad(label, LABEL_COL), Style::Plain),
            (sanitize(value), style),
        ])
    }
}

fn pad(s: &str, cols: usize) -> String {
    let mut out = s.to_string();
    out.extend(std::iter::repeat_n(' ', cols.saturating_sub(width(s))));
    out
}

/// Writes `row` clipped to `cols` columns. With a black background the row is padded to the
/// full width so the whole screen is painted, not just the text.
fn emit(out: &mut String, row: &Row, cols: usize, color: ColorMode) {
    let (base, restore) = match color {
        ColorMode::Black => (Some("\x1b[40;37m"), "\x1b[37m"),
        ColorMode::Transparent => (None, "\x1b[39m"),
    };
    if let Some(b) = base {
        out.push_str(b);
    }
    let mut left = cols;
    for (text, style) in &row.0 {
        let (part, used) = fit(text, left);
        if part.is_empty() {
            continue;
        }
        match style.code() {
            Some(code) => {
                out.push_str(code);
                out.push_str(part);
                out.push_str(restore);
            }
            None => out.push_str(part),
        }
        left -= used;
    }
    if base.is_some() {
        out.extend(std::iter::repeat_n(' ', left));
        out.push_str("\x1b[0m");
    }
}

fn status_row(status: &SessionStatus) -> Row {
    let (text, style) = match status {
        SessionStatus::Connecting => ("connecting".to_string(), Style::Plain),
        SessionStatus::Online => ("online".to_string(), Style::Green),
        SessionStatus::Reconnecting(why) if why.is_empty() => {
            ("reconnecting".to_string(), Style::Yellow)
        }
        SessionStatus::Reconnecting(why) => (format!("reconnecting ({why})"), Style::Yellow),
        SessionStatus::Failed(why) if why.is_empty() => ("failed".to_string(), Style::Red),
        SessionStatus::Failed(why) => (format!("failed: {why}"), Style::Red),
    };
    Row::labelled("Session Status", &text, style)
}

fn stat_cells(cells: &[String]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            s.push_str(c);
        } else {
            s.push_str(&pad(c, STAT_COL));
        }
    }
    s
}

fn secs(v: f64) -> String {
    // A stats source that has not seen a sample yet may hand over NaN; show it as nothing yet.
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "0.00".to_string()
    }
}

fn header_rows(state: &ConsoleState, cols: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let title = "burrow";
    let gap = cols.saturating_sub(width(title) + width(QUIT_HINT)).max(1);
    rows.push(Row(vec![
        (title.to_string(), Style::Title),
        (" ".repeat(gap), Style::Plain),
        (QUIT_HINT.to_string(), Style::Plain),
    ]));
    rows.push(Row::default());
    rows.push(status_row(&state.status));
    rows.push(Row::labelled("Version", &state.version, Style::Plain));
    rows.push(Row::labelled("Region", &state.region, Style::Plain));
    if let Some(web) = &state.web_interface {
        rows.push(Row::labelled("Web Interface", web, Style::Plain));
    }
    for (url, local) in &state.forwarding {
        let value = format!("{} -> {}", sanitize(url), sanitize(local));
        rows.push(Row::labelled("Forwarding", &value, Style::Plain));
    }
    rows.push(Row::default());
    let names = ["ttl", "opn", "rt1", "rt5", "p50", "p90"].map(String::from);
    rows.push(Row::labelled(
        "Connections",
        &stat_cells(&names),
        Style::Plain,
    ));
    let c = &state.conns;
    let values = [
        c.ttl.to_string(),
        c.opn.to_string(),
        secs(c.rt1),
        secs(c.rt5),
        secs(c.p50),
        secs(c.p90),
    ];
    rows.push(Row::labelled("", &stat_cells(&values), Style::Plain));
    rows.push(Row::default());
    rows.push(Row::plain("HTTP Requests"));
    rows.push(Row::plain("-------------"));
    rows.push(Row::default());
    rows
}

fn request_row(req: &super::RequestLine, cols: usize) -> Row {
    let what = format!("{} {}", sanitize(&req.method), sanitize(&req.path));
    let status = match req.status_code {
        Some(code) => format!("{code} {}", sanitize(&req.status_text)),
        None => sanitize(&req.status_text),
    };
    let status = status.trim().to_string();
    // Short requests line their status up in the value column; long paths give way so the
    // status stays on screen, marked with an ellipsis where the path was cut.
    let room = cols.saturating_sub(width(&status) + 1).max(LABEL_COL);
    let what = if width(&what) <= room {
        pad(&what, LABEL_COL)
    } else {
        let (head, _) = fit(&what, room.saturating_sub(1));
        format!("{head}…")
    };
    Row(vec![
        (what, Style::Plain),
        (" ".to_string(), Style::Plain),
        (status, Style::Plain),
    ])
}

/// Renders one frame; see [`super::render`].
pub(super) fn render(state: &ConsoleState, cols: u16, lines: u16, color: ColorMode) -> String {
    let (cols, lines) = (cols as usize, lines as usize);
    if cols == 0 || lines == 0 {
        return String::new();
    }
    let mut rows = header_rows(state, cols);
    let free = lines.saturating_sub(rows.len());
    rows.extend(
        state
            .requests
            .iter()
            .take(free)
            .map(|r| request_row(r, cols)),
    );
    rows.truncate(lines);
    if color == ColorMode::Black {
        // The black background covers the whole terminal, not just the rows with text.
        rows.resize_with(lines, Row::default);
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        emit(&mut out, row, cols, color);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ConnStats, RequestLine};
    use super::*;

    fn req(method: &str, path: &str, code: Option<u16>, text: &str) -> RequestLine {
        RequestLine {
            method: method.into(),
            path: path.into(),
            status_code: code,
            status_text: text.into(),
        }
    }

    fn state() -> ConsoleState {
        ConsoleState {
            status: SessionStatus::Online,
            version: "0.1.0".into(),
            region: "United States (us)".into(),
            web_interface: Some("http://127.0.0.1:4040".into()),
            forwarding: vec![
                (
                    "http://abc.example.com".into(),
                    "http://localhost:80".into(),
                ),
                (
                    "https://abc.example.com".into(),
                    "http://localhost:80".into(),
                ),
            ],
            conns: ConnStats {
                ttl: 12,
                opn: 3,
                rt1: 0.5,
                rt5: 0.123,
                p50: 0.0456,
                p90: 1.5,
            },
            requests: vec![
                req("GET", "/favicon.ico", Some(404), "Not Found"),
                req("POST", "/api", Some(200), "OK"),
                req("GET", "/slow", None, ""),
            ],
        }
    }

    /// The frame with all escape sequences removed, as a viewer would read it.
    fn visible(frame: &str) -> Vec<String> {
        frame.split('\n').map(sanitize).collect()
    }

    #[test]
    fn shows_every_section() {
        let frame = render(&state(), 80, 40, ColorMode::Transparent);
        let rows = visible(&frame);
        let expected = [
            "burrow                                                          (Ctrl+C to quit)",
            "",
            "Session Status                online",
            "Version                       0.1.0",
            "Region                        United States (us)",
            "Web Interface                 http://127.0.0.1:4040",
            "Forwarding                    http://abc.example.com -> http://localhost:80",
            "Forwarding                    https://abc.example.com -> http://localhost:80",
            "",
            "Connections                   ttl     opn     rt1     rt5     p50     p90",
            "                              12      3       0.50    0.12    0.05    1.50",
            "",
            "HTTP Requests",
            "-------------",
            "",
            "GET /favicon.ico               404 Not Found",
            "POST /api                      200 OK",
            "GET /slow                      ",
        ];
        assert_eq!(rows, expected);
        assert!(!frame.ends_with('\n'));
    }

    #[test]
    fn omits_web_interface_when_disabled_and_shows_zero_stats() {
        let mut s = state();
        s.web_interface = None;
        s.conns = ConnStats {
            rt1: f64::NAN,
            ..ConnStats::default()
        };
        let rows = visible(&render(&s, 80, 40, ColorMode::Transparent));
        assert!(!rows.iter().any(|r| r.starts_with("Web Interface")));
        assert!(rows.contains(&format!(
            "{:30}0       0       0.00    0.00    0.00    0.00",
            ""
        )));
    }

    #[test]
    fn lines_are_clipped_to_width() {
        let mut s = state();
        s.requests.push(req(
            "GET",
            &format!("/{}", "x".repeat(200)),
            Some(200),
            "OK",
        ));
        s.forwarding
            .push(("https://日本語.example".into(), "localhost:8080".into()));
        for color in [ColorMode::Transparent, ColorMode::Black] {
            for cols in [1u16, 10, 29, 31, 40, 80] {
                let frame = render(&s, cols, 40, color);
                for row in visible(&frame) {
                    assert!(width(&row) <= cols as usize, "{row:?} wider than {cols}");
                    if color == ColorMode::Black {
                        assert_eq!(width(&row), cols as usize, "{row:?} not painted");
                    }
                }
            }
        }
        // A long path is cut, not the status after it.
        let rows = visible(&render(&s, 60, 40, ColorMode::Transparent));
        let long = rows.iter().find(|r| r.starts_with("GET /xxx")).unwrap();
        assert!(long.ends_with("x… 200 OK"), "{long:?}");
        assert_eq!(width(long), 60);
    }

    #[test]
    fn never_more_lines_than_height() {
        let mut s = state();
        s.requests = (0..100)
            .map(|i| req("GET", &format!("/{i}"), Some(200), "OK"))
            .collect();
        for h in [1u16, 2, 5, 15, 16, 24] {
            let frame = render(&s, 80, h, ColorMode::Transparent);
            assert_eq!(frame.split('\n').count(), h as usize, "height {h}");
        }
        // Newest first: the rows that fit are the first requests.
        let rows = visible(&render(&s, 80, 17, ColorMode::Transparent));
        assert_eq!(rows.len(), 17);
        assert!(rows[15].starts_with("GET /0 "));
        assert!(rows[16].starts_with("GET /1 "));
        assert_eq!(render(&s, 80, 0, ColorMode::Black), "");
        assert_eq!(render(&s, 0, 24, ColorMode::Black), "");
        // Few requests: transparent stops after the content, black fills the screen.
        let s = state();
        assert_eq!(
            render(&s, 80, 50, ColorMode::Transparent)
                .split('\n')
                .count(),
            18
        );
        assert_eq!(render(&s, 80, 50, ColorMode::Black).split('\n').count(), 50);
    }

    #[test]
    fn untrusted_text_cannot_drive_the_terminal() {
        let mut s = state();
        s.requests = vec![req(
            "GET\x1b[H",
            "/\x1b[2J\x1b]0;pwned\x07evil\r\nFAKE 200 OK",
            Some(200),
            "OK\x1b[?1049l",
        )];
        s.version = "1\x1b[31m".into();
        s.region = "us\u{9b}2J".into();
        s.status = SessionStatus::Failed("bad\x1b[?25h".into());
        s.forwarding = vec![("http://x\x07".into(), "local\x08host".into())];
        for color in [ColorMode::Transparent, ColorMode::Black] {
            let frame = render(&s, 100, 30, color);
            for bad in [
                "\x1b[2J", "\x1b[H", "\x1b]", "\x07", "\r", "\x08", "\u{9b}", "\x1b[?",
            ] {
                assert!(!frame.contains(bad), "{bad:?} reached the terminal");
            }
            let rows = visible(&frame);
            assert!(rows.iter().any(|r| r.starts_with("GET /evil  FAKE 200 OK")));
            assert!(rows
                .iter()
                .any(|r| r.trim_end() == "Session Status                failed: bad"));
            // Only the console's own colour codes remain.
            let codes: Vec<&str> = frame
                .match_indices('\x1b')
                .map(|(i, _)| {
                    let end = frame[i..].find('m').unwrap();
                    &frame[i..=i + end]
                })
                .collect();
            for code in codes {
                assert!(
                    [
                        "\x1b[40;37m",
                        "\x1b[37m",
                        "\x1b[39m",
                        "\x1b[0m",
                        "\x1b[36m",
                        "\x1b[31m"
                    ]
                    .contains(&code),
                    "unexpected {code:?}"
                );
            }
        }
    }

    #[test]
    fn status_colours() {
        let line = |status: SessionStatus, color| {
            let s = ConsoleState {
                status,
                ..ConsoleState::default()
            };
            render(&s, 80, 24, color)
                .lines()
                .nth(2)
                .unwrap()
                .to_string()
        };
        let online = line(SessionStatus::Online, ColorMode::Transparent);
        assert_eq!(
            online,
            format!("{:30}\x1b[32monline\x1b[39m", "Session Status")
        );
        let recon = line(
            SessionStatus::Reconnecting("dial tcp: refused".into()),
            ColorMode::Transparent,
        );
        assert_eq!(
            recon,
            format!(
                "{:30}\x1b[33mreconnecting (dial tcp: refused)\x1b[39m",
                "Session Status"
            )
        );
        let failed = line(SessionStatus::Failed("auth".into()), ColorMode::Transparent);
        assert_eq!(
            failed,
            format!("{:30}\x1b[31mfailed: auth\x1b[39m", "Session Status")
        );
        let connecting = line(SessionStatus::Connecting, ColorMode::Transparent);
        assert_eq!(connecting, format!("{:30}connecting", "Session Status"));
    }

    #[test]
    fn colour_modes() {
        let s = state();
        let transparent = render(&s, 80, 24, ColorMode::Transparent);
        assert!(
            !transparent.contains("\x1b[40"),
            "transparent must not set a background"
        );
        assert!(transparent.starts_with("\x1b[36mburrow\x1b[39m"));
        assert!(transparent.lines().nth(1).unwrap().is_empty());

        let black = render(&s, 80, 24, ColorMode::Black);
        for row in black.lines() {
            assert!(row.starts_with("\x1b[40;37m"), "{row:?}");
            assert!(row.ends_with("\x1b[0m"), "{row:?}");
        }
        // Coloured text returns to the console's white-on-black, not the terminal's default.
        let status = black.lines().nth(2).unwrap();
        assert_eq!(
            status,
            format!(
                "\x1b[40;37m{:30}\x1b[32monline\x1b[37m{:44}\x1b[0m",
                "Session Status", ""
            )
        );
        assert!(!black.contains("\x1b[39m"));
    }
}
