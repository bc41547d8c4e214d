// Build-time code shared by the agent's and the relay's build scripts (`include!`d there):
// every file of a folder of the repository becomes a `FILES` table in the binary, so the
// pages they serve need no files at run time.

use std::fmt::Write;
use std::path::Path;

/// Writes `OUT_DIR/out` with `FILES`, the files of `../folder` (from the crate), described
/// in its doc comment as `what`.
fn embed(folder: &str, what: &str, out: &str) {
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("..").join(folder);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut table =
        format!("/// {what} as (name, contents).\npub static FILES: &[(&str, &[u8])] = &[\n");
    for p in names {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let abs = p.canonicalize().unwrap_or(p.clone());
        let _ = writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    table.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join(out);
    std::fs::write(&dest, table).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
}
