//! The terminal console: the live status screen ngrok v2 shows while its tunnels run.
//!
//! Layout, top to bottom: a title line, the session rows (`Session Status`, `Version`,
//! `Region`, `Web Interface`, one `Forwarding` row per public URL), the connection statistics
//! and the most recent HTTP requests, as many as the terminal has room for.
//! All text in [`ConsoleState`] comes from the network or from local servers, so it is
//! stripped of control characters and escape sequences before it is printed.

mod render;
mod terminal;
mod text;

pub use terminal::{terminal_size, Console};

/// How the session with the relay is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SessionStatus {
    /// Dialling the relay for the first time.
    #[default]
    Connecting,
    /// Authenticated and serving tunnels.
    Online,
    /// Lost the relay and retrying; the reason the last attempt failed.
    Reconnecting(String),
    /// Gave up; the reason.
    Failed(String),
}

/// Connection statistics, as in ngrok's `Connections` row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConnStats {
    /// Connections handled in total.
    pub ttl: u64,
    /// Connections open now.
    pub opn: u64,
    /// Connections per second, averaged over the last minute.
    pub rt1: f64,
    /// Connections per second, averaged over the last five minutes.
    pub rt5: f64,
    /// Median connection duration, in seconds.
    pub p50: f64,
    /// 90th percentile connection duration, in seconds.
    pub p90: f64,
}

/// One HTTP request in the console's list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLine {
    /// Request method, e.g. `GET`.
    pub method: String,
    /// Request target, e.g. `/favicon.ico`.
    pub path: String,
    /// Response status code; `None` while the response is still pending.
    pub status_code: Option<u16>,
    /// Response reason phrase, e.g. `Not Found`.
    pub status_text: String,
}

/// Everything the console shows, refreshed by its owner.
#[derive(Debug, Clone, Default)]
pub struct ConsoleState {
    /// Session state, coloured by health.
    pub status: SessionStatus,
    /// Agent version.
    pub version: String,
    /// Region the relay serves.
    pub region: String,
    /// Address of the inspection web interface, if it is enabled.
    pub web_interface: Option<String>,
    /// `(public URL, local address)` per tunnel endpoint.
    pub forwarding: Vec<(String, String)>,
    /// Connection statistics.
    pub conns: ConnStats,
    /// Recent HTTP requests, newest first.
    pub requests: Vec<RequestLine>,
}

/// Background of the console, the `console_ui_color` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorMode {
    /// Keep the terminal's own background.
    Transparent,
    /// Paint the whole screen black, ngrok's default.
    #[default]
    Black,
}

impl ColorMode {
    /// Parses a `console_ui_color` value (`transparent` or `black`).
    pub fn parse(s: &str) -> Option<ColorMode> {
        match s {
            "transparent" => Some(ColorMode::Transparent),
            "black" => Some(ColorMode::Black),
            _ => None,
        }
    }
}

/// Renders one full frame for a terminal of `width` x `height`: rows separated by `\n`, each
/// clipped to `width` columns, at most `height` rows (exactly `height` with a black
/// background), and no cursor movement.
pub fn render(state: &ConsoleState, width: u16, height: u16, color: ColorMode) -> String {
    render::render(state, width, height, color)
}
