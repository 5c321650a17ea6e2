//! Architecture invariants that are absences, checked on the source text (see ARCHITECTURE.md).

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn core_does_no_io_and_reads_no_clock() {
    let files = rust_files(&src().join("core"));
    assert!(files.len() >= 4, "expected the core's files, found {files:?}");
    for path in files {
        let text = fs::read_to_string(&path).expect("readable source");
        let is_test_harness = path.ends_with("core/tests.rs");
        for banned in [
            "Instant::now",
            // Wall-clock times arrive as values (`Now::wall`); reading the clock is the driver's.
            "SystemTime::now",
            ".elapsed()",
            "libc::",
            "mio::",
            "std::fs",
            "std::net",
            "std::process",
            "unsafe {",
            "unsafe fn",
            "std::thread",
        ] {
            if is_test_harness && banned == "Instant::now" {
                continue; // The fake clock starts somewhere.
            }
            assert!(
                !text.contains(banned),
                "{}: the core must not use `{banned}` (see ARCHITECTURE.md)",
                path.display()
            );
        }
    }
}

#[test]
fn unsafe_lives_only_in_sys_and_every_block_says_why() {
    for path in rust_files(&src()) {
        let text = fs::read_to_string(&path).expect("readable source");
        let has_unsafe = text.lines().any(|line| {
            let code = line.trim_start();
            !code.starts_with("//") && (code.contains("unsafe {") || code.contains("unsafe fn"))
        });
        if path.ends_with("sys.rs") {
            let lines: Vec<&str> = text.lines().collect();
            for (index, line) in lines.iter().enumerate() {
                if line.contains("unsafe {") && !line.trim_start().starts_with("//") {
                    let preceding = lines[index.saturating_sub(4)..index].join("\n");
                    assert!(
                        preceding.contains("SAFETY:"),
                        "{}:{}: unsafe block without a SAFETY comment",
                        path.display(),
                        index + 1
                    );
                }
            }
        } else {
            assert!(!has_unsafe, "{}: unsafe code belongs in src/sys.rs", path.display());
        }
    }
}

#[test]
fn the_daemon_path_has_no_threads() {
    for path in rust_files(&src()) {
        let text = fs::read_to_string(&path).expect("readable source");
        // Unit tests may run servers in threads; the code above them may not.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(!code.contains("thread::spawn"), "{}: the daemon is single-threaded", path.display());
    }
}
