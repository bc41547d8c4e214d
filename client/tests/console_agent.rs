//! The real agent's console in a real terminal (tmux): live status, forwarding rows,
//! requests appearing as they happen, and a clean terminal after Ctrl-C.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "agent"])
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what:?} never appeared:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn console_shows_the_session_and_live_requests_then_restores_the_terminal() {
    assert!(
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "tmux is not installed: apt-get install -y tmux (./test.sh does)"
    );
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in upstream.incoming().map_while(Result::ok) {
            let mut b = [0u8; 2048];
            let _ = s.read(&mut b);
            let _ = s.write_all(
                b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let web = common::free_port();
    let dir = common::Scratch::new("console");
    let cfg = dir.file(
        "c.yml",
        &format!("web_addr: 127.0.0.1:{web}\nconsole_ui: true\n"),
    );
    let tmux = Tmux(format!("burrow-test-{}", std::process::id()));
    // The pane's shell gets a scratch HOME and no proxy variables, like every other agent
    // the tests start.
    let home = common::Scratch::new("home");
    let cmd = format!(
        "env {} HOME='{}' '{}' http {port} -config '{}'; echo agent-exited-$?; sleep 30",
        common::PROXY_VARS.map(|v| format!("-u {v}")).join(" "),
        home.0.display(),
        env!("CARGO_BIN_EXE_burrow"),
        cfg.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "agent",
        "-x",
        "110",
        "-y",
        "30",
        &cmd,
    ]);
    let screen = tmux.wait_for("online");
    assert!(screen.contains("Session Status"), "{screen}");
    assert!(
        screen.contains(&format!(
            "Web Interface                 http://127.0.0.1:{web}"
        )),
        "{screen}"
    );
    let url = screen
        .lines()
        .filter(|l| l.starts_with("Forwarding"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .find(|u| u.starts_with("http://"))
        .expect("forwarding row")
        .to_string();
    assert!(
        screen.contains(&format!("-> http://localhost:{port}")),
        "{screen}"
    );
    let out = common::curl_command()
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{url}/brew"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "418");
    let screen = tmux.wait_for("GET /brew");
    assert!(screen.contains("418"), "{screen}");
    tmux.run(&["send-keys", "-t", "agent", "C-c"]);
    let screen = tmux.wait_for("agent-exited-0");
    assert!(
        !screen.contains("Session Status"),
        "console not cleared:\n{screen}"
    );
    drop((dir, home));
}
