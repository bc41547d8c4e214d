//! The README's first command, run exactly as the README prints it, from the checkout's root.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The first line of the README's first `sh` block, without its comment.
fn first_command() -> String {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("the README starts with a sh block");
    let line = block.lines().next().expect("a first command");
    line.split(" #").next().unwrap().trim().to_string()
}

#[test]
fn the_readme_first_command_serves_localhost_8080() {
    let line = first_command();
    assert!(line.ends_with(" http 8080"), "{line}");
    // Port 8080 is what the README names; if something else holds it, the tunnel must
    // still come up and answer (then with the agent's 502 page for that server).
    let upstream = std::net::TcpListener::bind("127.0.0.1:8080").ok();
    let ours = upstream.is_some();
    if let Some(l) = upstream {
        std::thread::spawn(move || {
            for mut s in l.incoming().map_while(Result::ok) {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nfrom 8080!\r\n",
                    );
                });
            }
        });
    }
    let home = std::env::temp_dir().join(format!("burrow-readme-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new("sh");
    for var in burrow_e2e::PROXY_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .arg("-c")
        .arg(format!("exec {line}"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let err = child.stderr.take().unwrap();
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = etx.send(l);
        }
    });
    drop(tx);
    // The first run builds the release binaries.
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let mut forwarding = Vec::new();
    while forwarding.len() < 2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("Forwarding ") => forwarding.push(l),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let stderr: Vec<String> = erx.try_iter().collect();
                panic!("no Forwarding lines; stderr:\n{}", stderr.join("\n"));
            }
        }
    }
    let http = forwarding
        .iter()
        .find(|l| l.starts_with("Forwarding  http://"))
        .unwrap_or_else(|| panic!("no http URL in {forwarding:?}"));
    assert!(http.ends_with(" -> http://localhost:8080"), "{http}");
    let url = http["Forwarding  ".len()..].split(' ').next().unwrap();
    let got = Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&got.stdout).to_string();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    if ours {
        assert_eq!(text, "from 8080!\r\n\n200", "through {url}");
    } else {
        assert!(text.ends_with("\n502"), "through {url}: {text}");
    }
    assert_eq!(status.code(), Some(0), "burrow exits 0 on Ctrl-C");
    let _ = std::fs::remove_dir_all(&home);
}
