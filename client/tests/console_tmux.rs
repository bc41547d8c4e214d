//! The console on a real terminal: the demo example runs in a detached tmux pane, whose
//! screen is read back while it draws and after it exits.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Fails the test, naming the fix, when tmux is missing: a console test that quietly
/// passes without a terminal checks nothing.
fn require_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tmux is not installed: apt-get install -y tmux (./test.sh does)"
    );
}

/// The example sits next to the test executable's `deps/` directory; `cargo test` builds
/// examples alongside the tests.
fn demo_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("console_demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the whole `cargo test -p burrow` (which builds examples) or \
         `cargo build -p burrow --example console_demo` first",
        path.display()
    );
    path
}

/// A private tmux server, so the test neither sees nor disturbs the user's sessions.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn query(&self, format: &str) -> String {
        self.cmd(&["display-message", "-p", "-t", "demo", format])
            .trim()
            .to_string()
    }

    fn wait_for(&self, what: &str, mut ok: impl FnMut(&Tmux) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{}",
                self.cmd(&["capture-pane", "-p", "-t", "demo"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .env_remove("TMUX")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[test]
fn console_draws_and_gives_the_terminal_back() {
    require_tmux();
    let demo = demo_path();
    let tmux = Tmux {
        socket: std::env::temp_dir().join(format!("burrow-console-{}.sock", std::process::id())),
    };
    // The shell outlives the demo so the screen it left behind can be inspected; a dead
    // pane would not do, as tmux paints its own notice over it.
    let script = format!("'{}'; echo \"demo exited $?\"; sleep 60", demo.display());
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "demo",
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);

    tmux.wait_for("the console to draw", |t| {
        t.cmd(&["capture-pane", "-p", "-t", "demo"])
            .contains("Session Status")
    });
    let screen = tmux.cmd(&["capture-pane", "-p", "-t", "demo"]);
    let rows: Vec<&str> = screen.lines().collect();
    let row = |prefix: &str| {
        rows.iter()
            .find(|r| r.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} row on screen:\n{screen}"))
            .trim_end()
    };
    assert!(row("burrow").ends_with("(Ctrl+C to quit)"), "{screen}");
    assert_eq!(
        row("Session Status"),
        format!("{:30}online", "Session Status")
    );
    assert_eq!(
        row("Forwarding"),
        format!(
            "{:30}http://demo.burrow.test -> http://localhost:8080",
            "Forwarding"
        )
    );
    assert!(rows
        .iter()
        .any(|r| r.contains("https://demo.burrow.test -> ")));
    assert!(row("Connections").ends_with("ttl     opn     rt1     rt5     p50     p90"));
    // The hostile path neither cleared the screen nor got its escape printed.
    assert!(row("GET /wiped").ends_with("404 Not Found"), "{screen}");
    assert!(screen.lines().count() <= 30);
    assert_eq!(
        tmux.query("#{alternate_on}"),
        "1",
        "console not on the alternate screen"
    );
    assert_eq!(
        tmux.query("#{cursor_flag}"),
        "0",
        "cursor visible while drawing"
    );

    tmux.wait_for("the demo to exit", |t| {
        t.cmd(&["capture-pane", "-p", "-t", "demo"])
            .contains("demo exited")
    });
    let after = tmux.cmd(&["capture-pane", "-p", "-t", "demo"]);
    assert!(
        after.contains("console demo finished\ndemo exited 0"),
        "{after}"
    );
    assert!(
        !after.contains("Session Status"),
        "console left on the main screen:\n{after}"
    );
    assert_eq!(
        tmux.query("#{alternate_on}"),
        "0",
        "alternate screen not left"
    );
    assert_eq!(tmux.query("#{cursor_flag}"), "1", "cursor still hidden");
}
