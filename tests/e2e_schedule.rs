//! Schedules end to end. On the real clock with minute units (a test may wait up to a minute
//! and a bit), and under libfaketime with the dynamic build for calendar times and clock steps
//! (LD_PRELOAD cannot reach into the static binary; product code has no switch that fakes time).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Up to a minute for the next minute boundary, plus a noisy machine's slack.
const NEXT_MINUTE: Duration = Duration::from_secs(90);

fn libfaketime() -> PathBuf {
    ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("libfaketime (Debian package faketime) is needed; .ci/run installs it")
}

/// The dynamic build of this test run (libfaketime preloads into it).
fn dynamic_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sv-lite"))
}

fn field(row: &serde_json::Value, key: &str) -> String {
    row[key].as_str().unwrap_or_default().to_string()
}

#[test]
fn minute_schedules_fire_on_the_minute_and_a_run_past_its_timeout_is_stopped() {
    let d = Daemon::start(
        "programs:
  tick:
    cmd: [sh, -c, 'date -u +%S >> {dir}/ticks']
    schedule: every 1m
  slow:
    cmd: [sleep, '300']
    cron: '* * * * *'
    timeout: 2s
    stoptime: 1s
  daily:
    cmd: [sh, -c, 'echo ran >> {dir}/daily']
    schedule: '@ 04:15'
",
    );
    for instance in ["tick:0", "slow:0", "daily:0"] {
        let row = d.wait_state(instance, "SCHEDULED");
        let next = field(&row, "next_run");
        assert!(next.ends_with(":00Z"), "fire times are whole minutes: {row}");
    }
    assert!(field(&d.row("daily:0").unwrap_or_default(), "next_run").ends_with("T04:15:00Z"));

    // The next minute boundary: `tick` runs and ends, `slow` runs past its timeout.
    // The shell creates the file before `date` writes to it: wait for a whole line.
    d.wait_for("tick to run", NEXT_MINUTE, || read(d.path("ticks")).ends_with('\n'));
    let ticks = read(d.path("ticks"));
    let seconds: u32 = ticks.trim().parse().unwrap_or_else(|_| panic!("ticks: {ticks:?}"));
    assert!(seconds < 5, "a fire time is the start of its minute (ran at second {seconds})");
    d.wait_for("tick's run recorded", WAIT, || {
        d.row("tick:0").is_some_and(|row| row["state"] == "SCHEDULED" && row["last_run_result"] == "exit status 0")
    });
    d.wait_for("slow's run to time out", WAIT, || {
        d.row("slow:0").is_some_and(|row| field(&row, "last_run_result").starts_with("timed out after 2s"))
    });
    assert_eq!(d.state_of("slow:0"), "SCHEDULED");
    d.wait_event("slow:0: run timed out after 2s; stopping it");

    // `ctl start` runs a scheduled program now, once; `ctl stop` turns its schedule off.
    d.ctl_ok(&["start", "daily"]);
    wait_file_contains(&d.path("daily"), "ran");
    d.wait_state("daily:0", "SCHEDULED");
    d.ctl_ok(&["stop", "daily"]);
    let row = d.wait_state("daily:0", "STOPPED");
    assert_eq!(row["next_run"], serde_json::Value::Null, "no fire time while stopped: {row}");
    assert_eq!(row["held"], "stopped", "the stop persists like any stop: {row}");
}

#[test]
fn an_overlapping_fire_time_is_skipped() {
    let d = Daemon::start(
        "programs:
  long:
    cmd: [sleep, '300']
    schedule: every 1m
",
    );
    d.wait_state("long:0", "SCHEDULED");
    // A run now (`ctl start`), still going at the next fire time.
    d.ctl_ok(&["start", "long"]);
    let pid = Some(d.wait_running("long:0"));
    d.wait_for("the next fire time skipped", NEXT_MINUTE, || {
        d.events().contains("long:0: fire time") && d.events().contains("skipped, the previous run is still going")
    });
    assert_eq!(d.pid_of("long:0"), pid, "the run in progress goes on");
}

/// Starts the dynamic build under libfaketime with the clock at `start` (UTC).
fn start_faked(yaml: &str, faketime: &[(&str, &str)]) -> Daemon {
    let preload = libfaketime().display().to_string();
    let mut env = vec![("LD_PRELOAD", preload.as_str()), ("FAKETIME_DONT_FAKE_MONOTONIC", "1"), ("TZ", "UTC")];
    env.extend_from_slice(faketime);
    let dir = TestDir::new();
    let launch = Launch { env, binary: Some(dynamic_binary()), ..Launch::default() };
    Daemon::start_with(dir, yaml, launch)
}

#[test]
fn calendar_units_under_libfaketime_every_workday_skips_the_weekend() {
    // Friday 2026-12-11, five seconds before 08:30.
    let d = start_faked(
        "programs:
  report:
    cmd: [sh, -c, 'echo ran >> {dir}/report']
    schedule: every workday offset 8h30m
",
        &[("FAKETIME", "@2026-12-11 08:29:55")],
    );
    let row = d.wait_state("report:0", "SCHEDULED");
    assert_eq!(field(&row, "next_run"), "2026-12-11T08:30:00Z");
    wait_file_contains(&d.path("report"), "ran");
    d.wait_for("the next run on Monday", WAIT, || {
        d.row("report:0")
            .is_some_and(|row| row["state"] == "SCHEDULED" && field(&row, "next_run") == "2026-12-14T08:30:00Z")
    });
}

#[test]
fn a_wall_clock_step_recomputes_fire_times_under_libfaketime() {
    let dir_for_offset = TestDir::new();
    let offset_file = dir_for_offset.write("faketime", "+0\n");
    let offset = offset_file.display().to_string();
    let d = start_faked(
        "programs:
  hourly:
    cmd: [sh, -c, 'echo ran >> {dir}/hourly']
    schedule: every 1h
",
        &[("FAKETIME_TIMESTAMP_FILE", offset.as_str()), ("FAKETIME_NO_CACHE", "1")],
    );
    let before = field(&d.wait_state("hourly:0", "SCHEDULED"), "next_run");
    // NTP steps the clock forward by 2h20m: the fire times in between are not caught up.
    std::fs::write(&offset_file, "+8400\n").expect("step the fake clock");
    // Any wake-up shows the step to the core: this status is one.
    d.wait_for("the step noticed", WAIT, || {
        d.ctl(&["status"]);
        d.events().contains("the wall clock moved forward by 2h20m")
    });
    let after = field(&d.row("hourly:0").unwrap_or_default(), "next_run");
    assert_ne!(after, before);
    assert!(after > before, "{after} after {before}");
}
