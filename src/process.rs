//! Processes the tests start: scratch directories, a hermetic environment, and children
//! whose output is read line by line.

use crate::PROXY_VARS;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago, for a program that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burrow-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier run with a recycled pid would not be fresh.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch(dir)
    }

    /// Writes `text` to `name` inside and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// The path of `name` inside, as a string for a command line.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes `cmd` hermetic: `HOME` is the scratch directory `home` (so the default
/// `~/.burrow/burrow.yml` of whoever runs the tests is never read or written) and no proxy
/// variables are passed on.
pub fn hermetic(cmd: &mut Command, home: impl AsRef<Path>) -> &mut Command {
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home.as_ref())
}

/// A child process, killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running program whose stdout arrives line by line; killed when dropped.
pub struct Running {
    /// The process.
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its `HOME`, removed after the process is gone.
    _home: Scratch,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `cmd` with stdout and stderr piped; `home` is removed once it is gone.
    pub fn start(mut cmd: Command, home: Scratch) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout was piped");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Running {
            child,
            lines,
            _home: home,
        }
    }

    /// The next line `pred` accepts, within `within`.
    pub fn line_within(&self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if pred(&l) {
                return Some(l);
            }
        }
        None
    }

    /// The next line `pred` accepts; panics after 15 s.
    pub fn line_matching(&self, pred: impl Fn(&str) -> bool) -> String {
        self.line_within(Duration::from_secs(15), pred)
            .expect("no matching line within 15 s")
    }

    /// Sends a signal (`-INT`, `-TERM`, `-KILL`).
    pub fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    /// The exit code, if the process ends within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Sends `sig` (`-INT`, `-TERM`, `-KILL`) to `child` with `/bin/kill`.
pub fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
}
