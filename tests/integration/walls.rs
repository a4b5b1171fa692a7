//! Walls the compiler cannot keep on its own, checked over the source.

use std::fs;
use std::path::{Path, PathBuf};

/// The one client module that may use the sandbox crate: its launcher.
const LAUNCHER: &str = "src/connect.rs";

/// The client reaches the embedded Commerce emulator only over HTTP, as it reaches a real shop;
/// only the launcher starts it. Code that called into the emulator directly would test custsync
/// against the emulator's insides instead of against the API a shop really has, and would tie
/// the two so the emulator could no longer be changed (or left out) on its own.
#[test]
fn only_the_launcher_uses_the_sandbox_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with(LAUNCHER)),
        "the launcher {LAUNCHER} is missing: update this test when it moves"
    );
    let trespassers: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with(LAUNCHER))
        .filter(|f| {
            fs::read_to_string(f)
                .expect("a source file is readable")
                .contains("custsync_sandbox")
        })
        .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        trespassers.is_empty(),
        "{trespassers:?} use custsync_sandbox, which only {LAUNCHER} may: the client must reach \
         the emulator over HTTP, as it reaches a real shop, so that what the tests prove holds \
         for a real shop and the emulator stays free to change. Go through {LAUNCHER} instead."
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
