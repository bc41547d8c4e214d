//! The binaries of the agent and relay crates (`burrow`, `burrowd`), for tests that
//! run them as a user would.
//!
//! Cargo tells an integration test only where its own package's binaries are, so these
//! are found where cargo puts every binary: beside the test executable's `deps/` folder.
//! `cargo test` builds another package's binaries only as unit-test executables, so a
//! binary that is missing, or older than a source file cargo recorded for it, is built
//! here first (`./test.sh` builds them before the tests start): a stale binary would test
//! yesterday's code.
//!
//! The build names the tests too (`cargo build --workspace --bins --tests`): cargo turns
//! on the dev-dependencies' features only when something that uses them is built, so a
//! plain `--bins` build would resolve other features and compile a second copy of most
//! dependencies beside the tests' (minutes and gigabytes), where this one only links the
//! binaries against the copy the tests already use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The path of the workspace binary `name`, built first if missing or stale.
pub fn binary(name: &str) -> PathBuf {
    // One build at a time in this process; cargo's own lock covers other processes.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = profile_dir();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let dep_info = dir.join(format!("{name}.d"));
    if !fresh(&path, &dep_info) {
        build(&dir);
        assert!(
            fresh(&path, &dep_info),
            "{} is still missing or stale after building the workspace's binaries",
            path.display()
        );
    }
    path
}

/// `target/<profile>`: the test executable lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in a target/<profile>/deps folder", exe.display()))
        .to_path_buf()
}

/// Whether `bin` exists and is newer than every file its dep-info (`NAME.d`, written by
/// cargo beside it) lists: the check cargo itself makes for workspace sources.
fn fresh(bin: &Path, dep_info: &Path) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string(dep_info) else {
        return false;
    };
    let Some((_, sources)) = info.split_once(": ") else {
        return false;
    };
    source_paths(sources).iter().all(|source| {
        std::fs::metadata(source)
            .and_then(|m| m.modified())
            .is_ok_and(|changed| changed <= built)
    })
}

/// The paths of a dep-info line: separated by spaces, with spaces inside a path escaped
/// as `\ `.
fn source_paths(line: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = line.trim_end().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' | '\n' => {
                if !current.is_empty() {
                    paths.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        paths.push(PathBuf::from(current));
    }
    paths
}

/// Builds every binary (and test) of the workspace in the profile `dir` belongs to.
fn build(dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--tests"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?} to build the binaries: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::source_paths;
    use std::path::PathBuf;

    #[test]
    fn dep_info_paths_keep_escaped_spaces() {
        assert_eq!(
            source_paths("/a/b.rs /c\\ d/e.rs  /f.rs\n"),
            ["/a/b.rs", "/c d/e.rs", "/f.rs"].map(PathBuf::from)
        );
    }
}
