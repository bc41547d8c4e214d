//! pyngrok 7.5 (the Python wrapper, driving a v2 agent) against the real `burrow` binary:
//! connect http and tcp tunnels, list them, fetch through them, disconnect, kill.

use std::process::Command;

#[test]
fn pyngrok_drives_burrow_as_an_ngrok_v2_agent() {
    let python = std::env::var("BURROW_PYNGROK_PYTHON").unwrap_or_else(|_| {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyngrok-venv/bin/python");
        assert!(
            std::path::Path::new(local).exists(),
            "pyngrok is not installed: run ./test.sh, or set BURROW_PYNGROK_PYTHON to a Python with pyngrok 7.5"
        );
        local.to_string()
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/pyngrok/drive_pyngrok.py"
    );
    let out = Command::new(python)
        .args([script, env!("CARGO_BIN_EXE_burrow")])
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
