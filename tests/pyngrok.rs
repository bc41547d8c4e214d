//! pyngrok 7.5 (the Python wrapper, driving a v2 agent) against the real `burrow` binary.

use burrow_e2e::binaries::binary;
use burrow_e2e::{hermetic, Scratch};
use std::process::Command;

fn python() -> String {
    std::env::var("BURROW_PYNGROK_PYTHON").unwrap_or_else(|_| {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyngrok-venv/bin/python");
        assert!(
            std::path::Path::new(local).exists(),
            "pyngrok is not installed: run ./test.sh, or set BURROW_PYNGROK_PYTHON to a Python with pyngrok 7.5"
        );
        local.to_string()
    })
}

/// Runs one of the pyngrok scripts against the binary; it prints `N passed, M failed`.
fn run(script: &str) {
    let script = format!("{}/tests/pyngrok/{script}", env!("CARGO_MANIFEST_DIR"));
    // pyngrok and the agents it starts get a scratch HOME and no proxy variables.
    let home = Scratch::new("pyngrok-home");
    let out = hermetic(&mut Command::new(python()), &home)
        .arg(&script)
        .arg(binary("burrow"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "pyngrok run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// Connect http and tcp tunnels, list them, fetch through them, disconnect, kill.
#[test]
fn pyngrok_drives_burrow_as_an_ngrok_v2_agent() {
    run("drive_pyngrok.py");
}

/// How pyngrok spawns the agent, reads its errors, versions and saves tokens, checked
/// against a recording stand-in and then the real binary's `--version` and `authtoken`.
#[test]
fn pyngrok_command_lines_version_and_authtoken() {
    run("observe_cmdline.py");
}
