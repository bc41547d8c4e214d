//! The console on a real terminal: the console demo (`src/bin/console_demo.rs`) runs in a
//! detached tmux pane, whose screen is read back while it draws and after it exits.

use burrow_e2e::tmux::Tmux;

#[test]
fn console_draws_and_gives_the_terminal_back() {
    let demo = env!("CARGO_BIN_EXE_console_demo");
    let tmux = Tmux::new("console");
    // The shell outlives the demo so the screen it left behind can be inspected; a dead
    // pane would not do, as tmux paints its own notice over it.
    let script = format!("'{demo}'; echo \"demo exited $?\"; sleep 60");
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

    let screen = tmux.wait_for_text("demo", "Session Status");
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
        tmux.query("demo", "#{alternate_on}"),
        "1",
        "console not on the alternate screen"
    );
    assert_eq!(
        tmux.query("demo", "#{cursor_flag}"),
        "0",
        "cursor visible while drawing"
    );

    let after = tmux.wait_for_text("demo", "demo exited");
    assert!(
        after.contains("console demo finished\ndemo exited 0"),
        "{after}"
    );
    assert!(
        !after.contains("Session Status"),
        "console left on the main screen:\n{after}"
    );
    assert_eq!(
        tmux.query("demo", "#{alternate_on}"),
        "0",
        "alternate screen not left"
    );
    assert_eq!(
        tmux.query("demo", "#{cursor_flag}"),
        "1",
        "cursor still hidden"
    );
}
