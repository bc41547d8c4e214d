//! A real etcd for the relay fleet's tests: one member on free loopback ports with its data
//! in a scratch directory, stopped and removed when dropped.
//!
//! Only the standard library is used, so burrow-store's own tests include this file as it
//! is (`#[path]`) rather than keeping a second copy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd gets to elect itself and answer `/health`.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// The mark that tells etcd's shell to keep the data directory (see [`TestEtcd::stop`]).
const KEEP: &str = "keep";

/// One etcd member on loopback.
///
/// etcd runs under a small shell that kills it as soon as its standard input closes, which
/// happens when this is dropped or stopped, and also when the test process dies in any way,
/// so no etcd outlives its tests even from a `static`.
pub struct TestEtcd {
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    running: Option<(Child, ChildStdin)>,
}

impl TestEtcd {
    /// Starts etcd and waits until it answers; panics, saying what to install, if the
    /// `etcd` binary is missing, and with etcd's log if it does not come up.
    pub fn start() -> TestEtcd {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burrow-etcd-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create etcd's scratch directory");
        let mut etcd = TestEtcd {
            client_port: free_port(),
            peer_port: free_port(),
            dir,
            running: None,
        };
        etcd.launch();
        etcd
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// etcd's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Kills etcd at once, as a crash would; its data stays for [`TestEtcd::restart`].
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.running.take() {
            // Without this mark the shell removes the data, as it must when this process
            // dies with a `static` TestEtcd that is never dropped.
            let _ = std::fs::write(self.dir.join(KEEP), b"");
            // The shell kills etcd when its input closes and waits for it before exiting.
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same data directory and ports, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn launch(&mut self) {
        let binary = find_etcd().unwrap_or_else(|| {
            panic!(
                "etcd is not installed: the relay fleet's tests run a real etcd; \
                 install it with `apt-get install etcd-server`"
            )
        });
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = self.dir.join("etcd.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open etcd's log");
        let _ = std::fs::remove_file(self.dir.join(KEEP));
        // `read` returns once stdin closes (our end dropped, or this process gone).
        let script = r#""$@" & pid=$!; read _; kill -9 "$pid"; wait "$pid";
            [ -e "$BURROW_ETCD_DIR/keep" ] || rm -rf "$BURROW_ETCD_DIR"; exit 0"#;
        let child = Command::new("sh")
            .env("BURROW_ETCD_DIR", &self.dir)
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&binary)
            .args(["--name", "n", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("n={peer}")])
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().expect("etcd's log"))
            .stderr(log_file)
            .spawn()
            .expect("start sh for etcd");
        let mut child = child;
        let stdin = child.stdin.take().expect("etcd's shell's stdin");
        self.running = Some((child, stdin));
        let deadline = Instant::now() + READY_WITHIN;
        while !healthy(self.client_port) {
            let exited = self
                .running
                .as_mut()
                .and_then(|(c, _)| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                panic!(
                    "etcd on port {} did not come up: its log ends with\n{}",
                    self.client_port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `etcd` binary on `PATH` (Debian's etcd-server puts it in /usr/bin).
fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("etcd"))
        .find(|p| is_file(p))
}

fn is_file(p: &Path) -> bool {
    p.metadata().is_ok_and(|m| m.is_file())
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Whether etcd answers `/health` with a leader: before that it refuses writes.
fn healthy(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.contains(r#""health":"true""#)
}
