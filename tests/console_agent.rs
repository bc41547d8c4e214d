//! The real agent's console in a real terminal (tmux): live status, forwarding rows,
//! requests appearing as they happen, and a clean terminal after Ctrl-C.

use burrow_e2e::binaries::binary;
use burrow_e2e::tmux::Tmux;
use burrow_e2e::upstream::http_server;
use burrow_e2e::{curl_command, free_port, Scratch, PROXY_VARS};

#[test]
fn console_shows_the_session_and_live_requests_then_restores_the_terminal() {
    let port = http_server("418 I'm a teapot", "");
    let web = free_port();
    let dir = Scratch::new("console");
    let cfg = dir.file(
        "c.yml",
        &format!("web_addr: 127.0.0.1:{web}\nconsole_ui: true\n"),
    );
    let tmux = Tmux::new("console-agent");
    // The pane's shell gets a scratch HOME and no proxy variables, like every other agent
    // the tests start.
    let home = Scratch::new("home");
    let cmd = format!(
        "env {} HOME='{}' '{}' http {port} -config '{}'; echo agent-exited-$?; sleep 30",
        PROXY_VARS.map(|v| format!("-u {v}")).join(" "),
        home.0.display(),
        binary("burrow").display(),
        cfg.display()
    );
    tmux.cmd(&[
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
    let screen = tmux.wait_for_text("agent", "online");
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
    let out = curl_command()
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
    let screen = tmux.wait_for_text("agent", "GET /brew");
    assert!(screen.contains("418"), "{screen}");
    tmux.cmd(&["send-keys", "-t", "agent", "C-c"]);
    let screen = tmux.wait_for_text("agent", "agent-exited-0");
    assert!(
        !screen.contains("Session Status"),
        "console not cleared:\n{screen}"
    );
    drop((dir, home));
}
