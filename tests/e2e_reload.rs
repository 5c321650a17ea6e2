//! Live reload through SIGHUP and `ctl reload`: what did not change keeps running with the
//! same pid, and a config that fails to load changes nothing.

mod common;

use std::collections::BTreeMap;

use common::{Daemon, WAIT};

const BEFORE: &str = r#"
programs:
  kept:
    cmd: "sleep 1000"
    starttime: 0.2
  edited:
    cmd: ["/bin/sh", "-c", "echo $VERSION >> {dir}/edited.versions; exec sleep 1000"]
    env:
      VERSION: one
    starttime: 0.2
  gone:
    cmd: "sleep 1000"
    starttime: 0.2
  shrink:
    cmd: "sleep 1000"
    numprocs: 3
    starttime: 0.2
  grow:
    cmd: "sleep 1000"
    numprocs: 1
    starttime: 0.2
"#;

const AFTER: &str = r#"
programs:
  kept:
    cmd: "sleep 1000"
    starttime: 0.2
  edited:
    cmd: ["/bin/sh", "-c", "echo $VERSION >> {dir}/edited.versions; exec sleep 1000"]
    env:
      VERSION: two
    starttime: 0.2
  fresh:
    cmd: "sleep 1000"
    starttime: 0.2
  shrink:
    cmd: "sleep 1000"
    numprocs: 1
    starttime: 0.2
  grow:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0.2
"#;

const BEFORE_INSTANCES: &[&str] = &["edited:0", "gone:0", "grow:0", "kept:0", "shrink:0", "shrink:1", "shrink:2"];

/// name -> (state, pid) of every listed instance.
fn snapshot(d: &Daemon) -> BTreeMap<String, (String, Option<i64>)> {
    let status = d.status_json();
    status
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let name = row["name"].as_str().unwrap_or_default().to_string();
                    (name, (row["state"].as_str().unwrap_or_default().to_string(), row["pid"].as_i64()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The 1-based line of the config file that contains `needle`.
fn line_of(d: &Daemon, needle: &str) -> usize {
    let text = common::read(&d.config);
    text.lines()
        .position(|line| line.contains(needle))
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

fn start_of(pid: i32) -> u64 {
    common::proc_stat(pid).map(|(_, start)| start).unwrap_or_else(|| panic!("pid {pid} is not running"))
}

/// Applies AFTER to a daemon running BEFORE with `reload`, and checks every kind of change.
fn reload_applies_the_difference(reload: impl Fn(&Daemon)) {
    let d = Daemon::start(BEFORE);
    let pids = d.wait_all_running(BEFORE_INSTANCES);
    let pid: BTreeMap<&str, i32> = BEFORE_INSTANCES.iter().copied().zip(pids).collect();
    let starts: BTreeMap<&str, u64> = pid.iter().map(|(name, pid)| (*name, start_of(*pid))).collect();
    d.wait_file("edited.versions", "one\n");

    d.write_config(AFTER);
    reload(&d);
    d.wait_event("reloaded config:");
    let summary = d.event_lines(&["reloaded config:"]).join("\n");
    for part in ["added fresh", "changed edited", "shrink (3 -> 1)", "grow (1 -> 2)", "removed gone"] {
        assert!(summary.contains(part), "reload summary lacks {part:?}: {summary}");
    }

    // Added and restarted programs come up; the changed one runs with its new options.
    d.wait_all_running(&["fresh:0", "grow:1", "edited:0"]);
    d.wait_for("edited:0 to run with a new pid", WAIT, || {
        d.pid_of("edited:0").is_some_and(|new| new != pid["edited:0"])
    });
    d.wait_state("edited:0", "RUNNING");
    assert_eq!(d.wait_file("edited.versions", "two\n"), "one\ntwo\n");
    d.wait_for("the old edited:0 process to be gone", WAIT, || common::gone(pid["edited:0"], starts["edited:0"]));

    // Removed programs and surplus instances are stopped and no longer listed.
    d.wait_for("gone, shrink:1 and shrink:2 to be removed", WAIT, || {
        let names = d.names();
        !names.iter().any(|name| name == "gone:0" || name == "shrink:1" || name == "shrink:2")
    });
    for name in ["gone:0", "shrink:1", "shrink:2"] {
        d.wait_for(&format!("the process of {name} to be gone"), WAIT, || common::gone(pid[name], starts[name]));
    }
    assert_eq!(d.names(), ["edited:0", "fresh:0", "grow:0", "grow:1", "kept:0", "shrink:0"]);

    // What did not change kept its process.
    for name in ["kept:0", "shrink:0", "grow:0"] {
        assert_eq!(d.state_of(name), "RUNNING", "{name}");
        assert_eq!(d.pid_of(name), Some(pid[name]), "{name} kept its pid");
        assert_eq!(start_of(pid[name]), starts[name], "{name} is the same process");
    }
    assert_eq!(d.event_lines(&["kept:0: spawned"]).len(), 1, "kept:0 was spawned once");
    assert_eq!(d.event_lines(&["shrink:0: spawned"]).len(), 1, "shrink:0 was spawned once");
    assert_eq!(d.event_lines(&["grow:0: spawned"]).len(), 1, "grow:0 was spawned once");

    // Reloading the same file again changes nothing at all.
    let before = snapshot(&d);
    reload(&d);
    d.wait_for("a second reload", WAIT, || d.event_lines(&["reloaded config:"]).len() == 2);
    assert!(d.events().contains("reloaded config: no changes"), "{}", d.events());
    assert_eq!(snapshot(&d), before);
}

#[test]
fn ctl_reload_restarts_changed_starts_added_stops_removed_and_keeps_the_rest() {
    reload_applies_the_difference(|d| {
        let output = d.ctl_ok(&["reload"]);
        assert!(output.stdout.contains("reloaded"), "ctl reload output:\n{output}");
    });
}

#[test]
fn sighup_reload_restarts_changed_starts_added_stops_removed_and_keeps_the_rest() {
    reload_applies_the_difference(|d| d.signal("HUP"));
}

#[test]
fn a_config_that_fails_to_load_on_reload_changes_nothing() {
    let good = r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0.2
  worker:
    cmd: "sleep 1000"
    starttime: 0.2
"#;
    let d = Daemon::start(good);
    d.wait_all_running(&["web:0", "web:1", "worker:0"]);
    let before = snapshot(&d);

    // A YAML syntax error, through ctl.
    d.write_config("programs:\n  web: [\n    cmd: sleep\n");
    let output = d.ctl(&["reload"]);
    assert_eq!(output.code, Some(1), "ctl reload of a broken file:\n{output}");
    assert!(output.stderr.contains("reload failed"), "{output}");
    assert!(
        output.stderr.contains("sv-lite.yaml") && output.stderr.contains("invalid yaml"),
        "the error names the file and problem:\n{output}"
    );
    assert_eq!(snapshot(&d), before);
    d.wait_event("reload failed");

    // A semantic error (numprocs 0) while other programs change too: nothing is applied.
    d.write_config(
        r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 0
    starttime: 0.2
  added:
    cmd: "sleep 1000"
"#,
    );
    let output = d.ctl(&["reload"]);
    assert_eq!(output.code, Some(1), "ctl reload of an invalid config:\n{output}");
    assert!(output.stderr.contains("programs.web.numprocs"), "the error names the key path:\n{output}");
    let line = line_of(&d, "numprocs: 0");
    assert!(output.stderr.contains(&format!("sv-lite.yaml:{line}:")), "the error names line {line}:\n{output}");
    assert_eq!(snapshot(&d), before);
    d.wait_for("the numprocs error in the event log", WAIT, || d.events().contains("programs.web.numprocs"));

    // The same through SIGHUP: reported in the event log only.
    d.write_config("programs:\n  web:\n    cmd: \"sleep 1000\"\n    stopsignal: NOPE\n");
    d.signal("HUP");
    d.wait_for("the stopsignal error in the event log", WAIT, || d.events().contains("programs.web.stopsignal"));
    assert_eq!(d.event_lines(&["reload failed"]).len(), 3, "{}", d.events());
    assert_eq!(snapshot(&d), before);
    assert!(!d.events().contains("reloaded config"), "{}", d.events());
    assert!(!d.events().contains("added:0"), "{}", d.events());

    // The daemon still reloads a good config afterwards.
    d.write_config(good);
    d.ctl_ok(&["reload"]);
    assert_eq!(snapshot(&d), before);
}
