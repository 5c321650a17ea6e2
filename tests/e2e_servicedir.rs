//! The service directory end to end (`include:`): files dropped in, changed, touched, written
//! in steps, saved through an editor's temp file, broken, duplicated and removed, with no
//! SIGHUP; and chromium's service_manager files as its reference writes them.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// A daemon whose config includes `{dir}/services` (created empty).
fn start() -> (Daemon, PathBuf) {
    let dir = TestDir::new();
    let services = dir.join("services");
    fs::create_dir_all(&services).expect("mkdir services");
    let d = Daemon::start_in(dir, "include: {dir}/services\n");
    (d, services)
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// `ctl status` stderr lines about service files.
fn problems(d: &Daemon) -> String {
    let output = d.ctl(&["status"]);
    output.stderr.lines().filter(|line| line.contains("service file problem")).collect::<Vec<_>>().join("\n")
}

/// Waits until a marker service (a new file) runs: the daemon has handled every change made
/// before it was written.
fn barrier(d: &Daemon, services: &Path, name: &str) {
    write(&services.join(format!("{name}.yaml")), "cmd: sleep 300\n");
    d.wait_running(&format!("{name}:0"));
}

#[test]
fn a_file_dropped_in_starts_a_change_restarts_a_touch_does_nothing_and_a_removal_stops() {
    let (d, services) = start();
    let web = services.join("web.yaml");
    write(&web, "cmd: sleep 300\n");
    let first = d.wait_running("web:0");
    d.wait_event("web:0: spawned");

    // The same bytes again (a touch, a rewrite): nothing happens.
    write(&web, "cmd: sleep 300\n");
    barrier(&d, &services, "marker1");
    assert_eq!(d.pid_of("web:0"), Some(first), "an unchanged file must not restart its service");
    assert_eq!(d.event_lines(&["web:0: spawned"]).len(), 1, "{}", d.events());

    // New content: restarted with it.
    write(&web, "cmd: sleep 301\n");
    d.wait_for("web:0 to run its new command", WAIT, || {
        d.pid_of("web:0").is_some_and(|pid| pid != first && read(format!("/proc/{pid}/cmdline")).contains("301"))
    });

    // Removed: stopped with its stop sequence, then forgotten.
    let second = d.wait_running("web:0");
    fs::remove_file(&web).expect("rm web.yaml");
    d.wait_for("web:0 to be gone from status", WAIT, || d.state_of("web:0") == "ABSENT");
    assert!(!alive(second), "the removed service's process must be stopped");
    d.wait_event("web:0: removed");
}

#[test]
fn a_file_written_in_several_steps_is_read_once_it_is_complete() {
    let (d, services) = start();
    let path = services.join("api.json");
    // `cp` and slow writers close a file more than once on the way: the first close leaves
    // half a JSON object, which must never be reported (the daemon waits 200 ms after the last
    // event on a file).
    write(&path, "{\n  \"name\": \"api\",\n");
    // Long enough for the daemon to see the first close on its own (it wakes within a
    // millisecond), well inside the 200 ms it waits before reading.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let mut file = fs::OpenOptions::new().append(true).open(&path).expect("reopen");
    file.write_all(b"  \"cmd\": \"sleep 300\"\n}\n").expect("append");
    drop(file);
    d.wait_running("api:0");
    assert_eq!(problems(&d), "", "a half-written file must not be reported");
    assert_eq!(d.event_lines(&["ERROR", "api.json"]), Vec::<String>::new(), "no error for the half-written file");
    assert_eq!(d.event_lines(&["service files changed", "api.json"]).len(), 1, "read once: {}", d.events());
    assert_eq!(d.event_lines(&["api:0: spawned"]).len(), 1);
}

#[test]
fn an_editor_save_through_a_temp_file_and_rename_restarts_once_and_temp_files_are_ignored() {
    let (d, services) = start();
    let web = services.join("web.yaml");
    write(&web, "cmd: sleep 300\n");
    let first = d.wait_running("web:0");
    // vim: a swap file, a backup, then the new file renamed over the old one.
    let swap = services.join(".web.yaml.swp");
    write(&swap, "binary swap junk \u{1}\u{2}");
    let backup = services.join("web.yaml~");
    write(&backup, "cmd: sleep 300\n");
    let temp = services.join("web.yaml.tmp");
    write(&temp, "cmd: sleep 302\n");
    fs::rename(&temp, &web).expect("rename over web.yaml");
    d.wait_for("web:0 to run the renamed-in command", WAIT, || {
        d.pid_of("web:0").is_some_and(|pid| pid != first && read(format!("/proc/{pid}/cmdline")).contains("302"))
    });
    fs::remove_file(&swap).expect("rm swap");
    barrier(&d, &services, "marker");
    assert_eq!(d.names(), ["marker:0", "web:0"], "temp, swap and backup files define nothing");
    assert_eq!(problems(&d), "");
}

#[test]
fn a_broken_file_is_reported_with_its_position_and_its_running_service_keeps_the_old_definition() {
    let (d, services) = start();
    let web = services.join("web.yaml");
    write(&web, "cmd: sleep 300\nstopsignal: TERM\n");
    let pid = d.wait_running("web:0");
    write(&web, "cmd: sleep 300\nstopsignal: SIGBOGUS\n");
    d.wait_for("the broken file in status", WAIT, || problems(&d).contains("web.yaml:2:"));
    let reported = problems(&d);
    assert!(reported.contains("stopsignal"), "the key is named: {reported}");
    d.wait_event("web.yaml:2:");
    assert_eq!(d.pid_of("web:0"), Some(pid), "the running service keeps its old definition");
    // Fixed: the problem goes, and the service restarts with the new definition.
    write(&web, "cmd: sleep 303\n");
    d.wait_for("web:0 restarted with the fixed file", WAIT, || {
        d.pid_of("web:0").is_some_and(|new| new != pid && read(format!("/proc/{new}/cmdline")).contains("303"))
    });
    assert_eq!(problems(&d), "");
}

#[test]
fn a_name_defined_twice_is_an_error_on_the_later_file_and_the_first_wins() {
    let (d, services) = start();
    write(&services.join("b.yaml"), "name: web\ncmd: sleep 300\n");
    let pid = d.wait_running("web:0");
    // a.json sorts first, but b.yaml had the name first.
    write(&services.join("a.json"), "{\"name\": \"web\", \"cmd\": \"sleep 304\"}\n");
    d.wait_for("the duplicate reported", WAIT, || problems(&d).contains("a.json"));
    assert!(problems(&d).contains("already defined by"), "{}", problems(&d));
    assert_eq!(d.pid_of("web:0"), Some(pid));
    // Once the first file goes, the other one's definition takes the name.
    fs::remove_file(services.join("b.yaml")).expect("rm b.yaml");
    d.wait_for("web:0 from a.json", WAIT, || {
        d.pid_of("web:0").is_some_and(|new| new != pid && read(format!("/proc/{new}/cmdline")).contains("304"))
    });
    assert_eq!(problems(&d), "");
}

#[test]
fn a_directory_that_does_not_exist_yet_is_picked_up_when_it_is_created() {
    let dir = TestDir::new();
    let services = dir.join("later/services");
    let d = Daemon::start_in(dir, "include: {dir}/later/services\n");
    fs::create_dir_all(&services).expect("mkdir -p");
    write(&services.join("web.yaml"), "cmd: sleep 300\n");
    d.wait_running("web:0");
}

#[test]
fn include_is_read_again_on_reload() {
    let dir = TestDir::new();
    for name in ["one", "two"] {
        fs::create_dir_all(dir.join(name)).expect("mkdir");
    }
    fs::write(dir.join("one/a.yaml"), "cmd: sleep 300\n").expect("write");
    fs::write(dir.join("two/b.yaml"), "cmd: sleep 300\n").expect("write");
    let d = Daemon::start_in(dir, "include: [{dir}/one]\n");
    d.wait_running("a:0");
    fs::write(&d.config, d.dir.expand("logfile: {dir}/events.log\ninclude: [{dir}/two]\n")).expect("rewrite config");
    d.ctl_ok(&["reload"]);
    d.wait_running("b:0");
    d.wait_for("a:0 to be removed", WAIT, || d.state_of("a:0") == "ABSENT");
    // The new directory is watched, the old one no longer.
    fs::write(d.path("two/c.yaml"), "cmd: sleep 300\n").expect("write");
    d.wait_running("c:0");
    fs::write(d.path("one/z.yaml"), "cmd: sleep 300\n").expect("write");
    barrier(&d, &d.path("two"), "marker");
    assert_eq!(d.state_of("z:0"), "ABSENT", "a directory no longer included is not watched");
}

/// `run.py` of the test tree: records its arguments in `argv-TOOL`, and a service sleeps.
const RUN_PY: &str = "#!/usr/bin/env python3
import os, sys, time
with open(os.path.join(os.getcwd(), 'argv-' + sys.argv[1]), 'w') as f:
    f.write(' '.join(sys.argv[1:]) + '\\n')
if sys.argv[1].startswith('infra.services.'):
    time.sleep(300)
";

/// The reference's two examples, with `root_directory` pointing at the test tree.
fn reference_files(root: &std::path::Path) -> (String, String) {
    let mastermon = format!(
        r#"{{
  "name": "mastermon",
  "root_directory": "{root}",
  "tool": "infra.services.mastermon",
  "args": [
    "--url", "http://build.chromium.org/p/chromium",
    "--ts-mon-endpoint", "file:///tmp/metrics"
  ],
  "stop_time": 5
}}
"#,
        root = root.display()
    );
    let cleanup_logs = format!(
        r#"{{
  "name": "cleanup_logs",
  "root_directory": "{root}",
  "tool": "infra.tools.cleanup_logs",
  // alternative: "cmd": "./run.py infra.tools.cleanup_logs",
  "args": []
  // All times are UTC
  "scheduling": [
      "every month offset 2d8h30m",
      "every workday offset 8h30m",
      "every monday every hour offset 30m",
      "every 5m offset 1m"
  ]
  "timeout": "2h"
}}
"#,
        root = root.display()
    );
    (mastermon, cleanup_logs)
}

#[test]
fn the_references_mastermon_and_cleanup_logs_files_as_written() {
    let (d, services) = start();
    let root = d.path("infra-python");
    fs::create_dir_all(&root).expect("mkdir root");
    let run_py = root.join("run.py");
    fs::write(&run_py, RUN_PY).expect("write run.py");
    fs::set_permissions(&run_py, fs::Permissions::from_mode(0o755)).expect("chmod");
    let (mastermon, cleanup_logs) = reference_files(&root);

    write(&services.join("mastermon.json"), &mastermon);
    d.wait_running("mastermon:0");
    let argv = wait_file_contains(&root.join("argv-infra.services.mastermon"), "\n");
    assert_eq!(
        argv,
        "infra.services.mastermon --url http://build.chromium.org/p/chromium --ts-mon-endpoint file:///tmp/metrics\n"
    );
    // `stop_time: 5` is its stoptime: SIGTERM is enough here, but the status says what it is.
    // As the reference writes it, cleanup_logs has comments (accepted) and misses commas
    // (reported, with where).
    write(&services.join("cleanup_logs.json"), &cleanup_logs);
    d.wait_for("the missing comma reported", WAIT, || problems(&d).contains("missing comma?"));
    let reported = problems(&d);
    assert!(reported.contains("cleanup_logs.json:8:3"), "line and column of the key after `\"args\": []`: {reported}");
    assert_eq!(d.state_of("cleanup_logs:0"), "ABSENT");

    // With the commas the reference forgot, it loads: a scheduled program.
    let fixed =
        cleanup_logs.replace("\"args\": []\n", "\"args\": [],\n").replace("  ]\n  \"timeout\"", "  ],\n  \"timeout\"");
    write(&services.join("cleanup_logs.json"), &fixed);
    let row = d.wait_state("cleanup_logs:0", "SCHEDULED");
    let next = row["next_run"].as_str().unwrap_or_default().to_string();
    // The merged schedule's next time: `every 5m offset 1m` (minute 1, 6, ... 56) unless a
    // Monday's :30 comes first.
    let minute: u32 = next.get(14..16).and_then(|minute| minute.parse().ok()).unwrap_or(99);
    assert!(next.ends_with(":00Z") && (minute % 5 == 1 || minute == 30), "next_run {next:?} in {row}");
    assert_eq!(problems(&d), "");
    // `ctl start` runs it now, once; it goes back to its schedule.
    d.ctl_ok(&["start", "cleanup_logs"]);
    wait_file_contains(&root.join("argv-infra.tools.cleanup_logs"), "infra.tools.cleanup_logs");
    d.wait_for("the run recorded", WAIT, || {
        d.row("cleanup_logs:0")
            .is_some_and(|row| row["state"] == "SCHEDULED" && row["last_run_result"] == "exit status 0")
    });
}
