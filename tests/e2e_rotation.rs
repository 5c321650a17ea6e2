//! Log files that rotate themselves (issue 13): a program's stdout file rotates by size, each
//! file whole lines, none missing or duplicated across them.
//!
//! Needs the YAML keys `stdout_maxbytes`/`stdout_backups` and the core passing the spec's
//! `stdout_rotate` to the driver (`SpawnExtras`).

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Daemon, WAIT};

const LAST: u64 = 1_000_000;
const MAXBYTES: u64 = 1024 * 1024;

#[test]
fn a_fast_writer_s_stdout_rotates_line_aligned_with_three_backups() {
    // About 6.9 MB of numbered lines through a 1 MB limit: rotated six times, `.4` never kept.
    let d = Daemon::start(&format!(
        r#"
programs:
  counter:
    cmd: ["seq", "1", "{LAST}"]
    starttime: 0
    autorestart: never
    stdout: "{{dir}}/out.log"
    stdout_maxbytes: 1MB
    stdout_backups: 3
"#
    ));
    d.wait_state("counter:0", "EXITED");
    // Exit and pipe EOF are independent: wait for the last line to reach the file.
    let last_line = format!("\n{LAST}\n");
    d.wait_for("the last line in out.log", WAIT, || common::read(d.path("out.log")).ends_with(&last_line));

    let mut names: Vec<String> =
        fs::read_dir(&d.dir.path).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.retain(|name| name.starts_with("out.log"));
    names.sort();
    assert_eq!(names, ["out.log", "out.log.1", "out.log.2", "out.log.3"]);

    let oldest_first: Vec<PathBuf> = ["out.log.3", "out.log.2", "out.log.1", "out.log"].map(|name| d.path(name)).into();
    let mut expected: Option<u64> = None;
    for path in &oldest_first {
        let text = fs::read_to_string(path).unwrap();
        assert!(text.len() as u64 <= MAXBYTES, "{}: {} bytes", path.display(), text.len());
        assert!(text.ends_with('\n'), "{}: ends mid-line", path.display());
        for line in text.lines() {
            let n: u64 = line.parse().unwrap_or_else(|_| panic!("{}: torn line {line:?}", path.display()));
            assert_eq!(n, expected.unwrap_or(n), "{}: a line missing or duplicated", path.display());
            expected = Some(n + 1);
        }
    }
    assert_eq!(expected, Some(LAST + 1));
    // The rotated files were full: the oldest kept starts well past line 1.
    let first_kept: u64 = fs::read_to_string(&oldest_first[0]).unwrap().lines().next().unwrap().parse().unwrap();
    assert!(first_kept > 1, "{first_kept}");
    d.shutdown();
}

#[test]
fn the_event_log_rotates_the_same_way() {
    let d = Daemon::start(
        r#"
logfile: "{dir}/events.log"
logfile_maxbytes: 4KB
logfile_backups: 2
programs:
  flappy:
    cmd: [sh, -c, "exit 1"]
    starttime: 0
    autorestart: always
    stability_window: 0
"#,
    );
    d.wait_for("the event log rotated twice", WAIT, || d.path("events.log.2").exists());
    // A few more rotations, then the files as they are.
    let before = fs::read_to_string(d.path("events.log.2")).unwrap_or_default();
    d.wait_for("another rotation", WAIT, || fs::read_to_string(d.path("events.log.2")).unwrap_or_default() != before);
    // Stopped and waited for, so that no rotation runs while the files are read.
    d.ctl_ok(&["stop", "flappy"]);
    assert!(!d.path("events.log.3").exists(), "only two backups are kept");
    for name in ["events.log.2", "events.log.1"] {
        let text = fs::read_to_string(d.path(name)).unwrap();
        assert!(text.len() <= 4096, "{name}: {} bytes", text.len());
        assert!(text.ends_with('\n'), "{name} ends mid-line");
        for line in text.lines() {
            assert!(line.starts_with("20") && line.contains("Z "), "{name}: a torn line {line:?}");
        }
    }
}
