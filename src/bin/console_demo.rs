//! Shows the console with a fixed state for two seconds, then gives the terminal back.
//! The tmux end-to-end test runs it; it is also a quick way to eyeball the layout.

use burrow::console::{ColorMode, ConnStats, Console, ConsoleState, RequestLine, SessionStatus};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let color = match std::env::args().nth(1).as_deref() {
        Some("transparent") => ColorMode::Transparent,
        _ => ColorMode::Black,
    };
    let request = |method: &str, path: &str, code, text: &str| RequestLine {
        method: method.into(),
        path: path.into(),
        status_code: Some(code),
        status_text: text.into(),
    };
    let state = ConsoleState {
        status: SessionStatus::Online,
        version: burrow::VERSION.into(),
        region: "United States (us)".into(),
        web_interface: Some("http://127.0.0.1:4040".into()),
        forwarding: vec![
            (
                "http://demo.burrow.test".into(),
                "http://localhost:8080".into(),
            ),
            (
                "https://demo.burrow.test".into(),
                "http://localhost:8080".into(),
            ),
        ],
        conns: ConnStats {
            ttl: 42,
            opn: 2,
            rt1: 0.25,
            rt5: 0.1,
            p50: 0.02,
            p90: 0.35,
        },
        requests: vec![
            // Hostile text stays inert on screen.
            request("GET", "/\x1b[2Jwiped", 404, "Not Found"),
            request("GET", "/", 200, "OK"),
        ],
    };
    let mut console = Console::start(color)?;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        console.draw(&state)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    console.restore();
    println!("console demo finished");
    Ok(())
}
