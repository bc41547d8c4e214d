//! A private tmux server for tests of what a terminal shows: programs run in its panes,
//! whose screens are read back.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a screen may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(15);

/// Fails the test, naming the fix, when tmux is missing: a console test that quietly
/// passes without a terminal checks nothing.
pub fn require_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tmux is not installed: apt-get install -y tmux (./test.sh does)"
    );
}

/// A tmux server of its own (its own socket), so a test neither sees nor disturbs the
/// user's sessions; killed when dropped.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A server on a fresh socket named after `tag`; tmux starts it with the first session.
    pub fn new(tag: &str) -> Tmux {
        require_tmux();
        let socket = std::env::temp_dir().join(format!("burrow-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        Tmux { socket }
    }

    /// Runs a tmux command on this server and returns its stdout; panics if it fails.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the pane of session `target` shows now.
    pub fn screen(&self, target: &str) -> String {
        self.cmd(&["capture-pane", "-p", "-t", target])
    }

    /// A tmux format (e.g. `#{alternate_on}`) expanded for session `target`.
    pub fn query(&self, target: &str, format: &str) -> String {
        self.cmd(&["display-message", "-p", "-t", target, format])
            .trim()
            .to_string()
    }

    /// Waits until `ok` holds, polling every 50 ms; panics after 15 s naming `what` and
    /// showing the screen of `target`.
    pub fn wait_for(&self, target: &str, what: &str, mut ok: impl FnMut(&Tmux) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ok(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{}",
                self.screen(target)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen of `target` contains `text`, and returns that screen.
    pub fn wait_for_text(&self, target: &str, text: &str) -> String {
        let mut seen = String::new();
        self.wait_for(target, &format!("{text:?}"), |t| {
            seen = t.screen(target);
            seen.contains(text)
        });
        seen
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX");
        cmd
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]).output();
        let _ = std::fs::remove_file(&self.socket);
    }
}
