//! Taking over the terminal while the console runs, and giving it back.

use super::{render, ColorMode, ConsoleState};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENTER: &str = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
// The cursor is shown after leaving, not before, so a terminal that keeps per-screen cursor
// state still ends up with it visible on the main screen.
const LEAVE: &str = "\x1b[0m\x1b[?1049l\x1b[?25h";
/// How long a measured terminal size is trusted; asking costs a process spawn per frame
/// otherwise, and a resize showing up a second late is harmless.
const SIZE_TTL: Duration = Duration::from_secs(1);

/// Owns the terminal while the console runs: enters the alternate screen and hides the
/// cursor; [`Console::draw`] repaints; dropping it or [`Console::restore`] gives the terminal
/// back.
#[derive(Debug)]
pub struct Console {
    color: ColorMode,
    active: bool,
    size: Option<((u16, u16), Instant)>,
}

impl Console {
    /// Switches standard output to the alternate screen with the cursor hidden.
    pub fn start(color: ColorMode) -> std::io::Result<Console> {
        let mut out = std::io::stdout().lock();
        out.write_all(ENTER.as_bytes())?;
        out.flush()?;
        Ok(Console {
            color,
            active: true,
            size: None,
        })
    }

    /// Repaints the screen with `state`, sized to the terminal as it is now.
    pub fn draw(&mut self, state: &ConsoleState) -> std::io::Result<()> {
        if !self.active {
            return Ok(());
        }
        let (cols, rows) = match self.size {
            Some((size, at)) if at.elapsed() < SIZE_TTL => size,
            _ => {
                let size = terminal_size();
                self.size = Some((size, Instant::now()));
                size
            }
        };
        let frame = render(state, cols, rows, self.color);
        // Overwriting in place, rather than clearing first, keeps the repaint flicker-free;
        // each row erases what is left of the previous frame to its right, and the final
        // erase takes out rows the new frame no longer reaches.
        let mut buf = String::with_capacity(frame.len() + 16 * rows as usize);
        for (i, line) in frame.split('\n').enumerate() {
            buf.push_str(&format!("\x1b[{};1H", i + 1));
            buf.push_str(line);
            buf.push_str("\x1b[K");
        }
        buf.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        out.write_all(buf.as_bytes())?;
        out.flush()
    }

    /// Leaves the alternate screen and shows the cursor again; later calls do nothing.
    pub fn restore(&mut self) {
        if !self.active {
            return;
        }
        self.active = false;
        // Nothing useful can be done if the terminal is gone already.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(LEAVE.as_bytes());
        let _ = out.flush();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The terminal's size as `(columns, rows)`: `stty size` on the controlling terminal, else
/// the `COLUMNS`/`LINES` environment variables, else 80x24.
pub fn terminal_size() -> (u16, u16) {
    stty_size().or_else(env_size).unwrap_or((80, 24))
}

fn stty_size() -> Option<(u16, u16)> {
    // Asking the controlling terminal directly works even when stdin is redirected.
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = Command::new("stty")
        .arg("size")
        .stdin(tty)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_stty(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `stty size` output, `ROWS COLS`; a pty nobody sized reports zeros, which mean
/// "unknown" rather than an empty screen.
fn parse_stty(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (rows, cols) = (it.next()??, it.next()??);
    (rows > 0 && cols > 0).then_some((cols, rows))
}

fn env_size() -> Option<(u16, u16)> {
    let get = |k| {
        std::env::var(k)
            .ok()?
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
    };
    Some((get("COLUMNS")?, get("LINES")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stty_output() {
        assert_eq!(parse_stty("24 80\n"), Some((80, 24)));
        assert_eq!(parse_stty("50 132"), Some((132, 50)));
        assert_eq!(parse_stty("0 0\n"), None);
        assert_eq!(parse_stty(""), None);
        assert_eq!(parse_stty("x y"), None);
    }

    #[test]
    fn size_is_never_zero() {
        let (c, r) = terminal_size();
        assert!(c > 0 && r > 0);
    }
}
