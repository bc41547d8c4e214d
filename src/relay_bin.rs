//! The `burrowd` binary as an operator runs it: hermetic, on loopback ports it chooses.

use crate::binaries::binary;
use crate::process::{hermetic, Killed, Scratch};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// `burrowd` with `args`, hermetic (see [`hermetic`]) with `home` as `HOME`; the
/// environment's `BURROWD_AUTH_TOKENS` and `BURROWD_ADMIN_TOKEN` are not passed on either
/// (tests that need them set them themselves). The admin listener gets a port of the
/// system's choosing unless `args` name another.
pub fn burrowd(home: impl AsRef<Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("burrowd"));
    hermetic(&mut cmd, home)
        .env_remove("BURROWD_AUTH_TOKENS")
        .env_remove("BURROWD_ADMIN_TOKEN")
        .args(["--admin-addr", "127.0.0.1:0"])
        .args(args);
    cmd
}

/// A running `burrowd` on loopback ports it chose; stopped when dropped.
pub struct Burrowd {
    child: Killed,
    /// The agents' port.
    pub control: u16,
    /// The http port.
    pub http: u16,
    /// The https port.
    pub https: u16,
    /// The admin API's port, if it listens.
    pub admin: Option<u16>,
}

impl Burrowd {
    /// Starts `burrowd` with its state in `state`, `extra` flags and `env`, and reads its
    /// addresses.
    pub fn start(state: &Scratch, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let state_dir = state.path("state");
        let mut cmd = burrowd(
            state,
            &[
                "--http-addr",
                "127.0.0.1:0",
                "--https-addr",
                "127.0.0.1:0",
                "--control-addr",
                "127.0.0.1:0",
                "--tcp-ports",
                "0-0",
                "--state-dir",
                &state_dir,
            ],
        );
        cmd.args(extra).envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("burrowd starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout was piped")).lines();
        let child = Killed(child);
        let port = |l: &str| {
            l.rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
                .unwrap_or_else(|| panic!("no port in {l:?}"))
        };
        let (mut control, mut http, mut https, mut admin) = (0, 0, 0, None);
        for l in lines.by_ref().map_while(Result::ok) {
            let l = l.trim_start();
            if l.starts_with("agents") {
                control = port(l);
            } else if l.starts_with("http ") {
                http = port(l);
            } else if l.starts_with("https") {
                https = port(l);
            } else if l.starts_with("admin") {
                admin = Some(port(l));
            } else if l.starts_with("fingerprint") {
                break;
            }
        }
        assert!(
            control > 0 && https > 0,
            "burrowd did not print its addresses"
        );
        std::thread::spawn(move || lines.for_each(drop));
        Burrowd {
            child,
            control,
            http,
            https,
            admin,
        }
    }

    /// Kills it at once (SIGKILL): no goodbye to its agents, nothing saved.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}
