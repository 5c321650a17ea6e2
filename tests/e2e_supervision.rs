//! Supervision of real children: exit codes and autorestart, starttime/startretries leading to
//! FATAL, stopsignal and stoptime, process-group kills, exec failures, a clean signal state in
//! children, and an idle daemon that never wakes up.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, TestDir, WAIT};

/// Event log lines saying `instance` was spawned.
fn spawns(d: &Daemon, instance: &str) -> usize {
    d.event_lines(&[&format!("{instance}: spawned with pid")]).len()
}

#[test]
fn autorestart_unexpected_restarts_on_codes_outside_exitcodes_only() {
    let d = Daemon::start(
        r#"
programs:
  crashy:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/crashy.runs; sleep 0.5; exit 3"]
    autorestart: unexpected
    exitcodes: [0]
    starttime: 0.1
  clean:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/clean.runs; sleep 0.5; exit 0"]
    exitcodes: [0]
    starttime: 0.1
  three_is_fine:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/three.runs; sleep 0.5; exit 3"]
    exitcodes: 3
    starttime: 0.1
  delayed:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/delayed.runs; sleep 0.5; exit 7"]
    restart_delay: 0.5
    starttime: 0.1
  victim:
    cmd: "sleep 1000"
    starttime: 0.1
"#,
    );
    // Exit 3 is not in [0]: restarted, again and again; a crash loop backs off.
    d.wait_lines("crashy.runs", 3);
    d.wait_event("crashy:0: exited with exit status 3 (unexpected); restarting");
    d.wait_event("crash 2 in a row");
    d.ctl_ok(&["stop", "crashy"]);

    // Exit 0 is expected: EXITED, not restarted.
    let row = d.wait_state("clean:0", "EXITED");
    assert_eq!(row["exit_code"], 0, "{row}");
    assert_eq!(row["detail"], "expected", "{row}");
    d.wait_event("clean:0: exited with exit status 0 (expected); EXITED");
    assert_eq!(common::line_count(&d.path("clean.runs")), 1);
    assert_eq!(spawns(&d, "clean:0"), 1);

    // `exitcodes: 3` (a single integer) makes exit 3 the expected one.
    let row = d.wait_state("three_is_fine:0", "EXITED");
    assert_eq!(row["exit_code"], 3, "{row}");
    assert_eq!(row["detail"], "expected", "{row}");
    assert_eq!(spawns(&d, "three_is_fine:0"), 1);

    // restart_delay: the restart waits in BACKOFF first.
    d.wait_lines("delayed.runs", 2);
    d.wait_event("delayed:0: exited with exit status 7 (unexpected); BACKOFF, restarting in 500ms");

    // A signal we did not send is unexpected too: restarted.
    let victim = d.wait_running("victim:0");
    assert!(common::send_signal(victim, "KILL"));
    d.wait_for("victim:0 to run again with a new pid", WAIT, || {
        d.state_of("victim:0") == "RUNNING" && d.pid_of("victim:0").is_some_and(|pid| pid != victim)
    });
    d.wait_event("victim:0: exited with signal SIGKILL (unexpected); restarting");

    // Nothing else is spawned for the instances that exited.
    assert_eq!(common::line_count(&d.path("clean.runs")), 1);
    assert_eq!(common::line_count(&d.path("three.runs")), 1);
    assert_eq!(d.state_of("clean:0"), "EXITED");
}

#[test]
fn autorestart_never_leaves_exited_and_always_restarts_after_exit_0() {
    let d = Daemon::start(
        r#"
programs:
  never:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/never.runs; sleep 0.5; exit 3"]
    autorestart: never
    starttime: 0.1
  always:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/always.runs; sleep 0.5; exit 0"]
    autorestart: always
    starttime: 0.1
"#,
    );
    let row = d.wait_state("never:0", "EXITED");
    assert_eq!(row["exit_code"], 3, "{row}");
    assert_eq!(row["detail"], "unexpected", "{row}");
    d.wait_event("never:0: exited with exit status 3 (unexpected); EXITED");

    d.wait_lines("always.runs", 3);
    d.wait_event("always:0: exited with exit status 0 (expected); restarting");
    d.ctl_ok(&["stop", "always"]);

    assert_eq!(common::line_count(&d.path("never.runs")), 1);
    assert_eq!(spawns(&d, "never:0"), 1);
    assert_eq!(d.state_of("never:0"), "EXITED");
}

/// Every event log line is `YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL message`, in UTC.
fn assert_event_log_format(d: &Daemon) {
    let events = d.events();
    assert!(!events.is_empty(), "the event log is empty");
    for line in events.lines() {
        let (stamp, rest) = line.split_once(' ').unwrap_or_default();
        let shape: String = stamp.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).collect();
        assert_eq!(shape, "0000-00-00T00:00:00.000Z", "timestamp of event line {line:?}");
        let level = rest.split_whitespace().next().unwrap_or_default();
        assert!(["ERROR", "WARN", "INFO"].contains(&level), "level of event line {line:?}");
    }
}

#[test]
fn a_crash_loop_backs_off_and_a_run_past_the_stability_window_resets_it() {
    // Runs 1-3 crash at once; run 4 lasts longer than the 2 s window, then crashes; run 5
    // stays up.
    let d = Daemon::start(
        r#"
programs:
  looping:
    cmd: ["/bin/sh", "-c", "n=$(cat {dir}/runs 2>/dev/null | wc -l); echo run >> {dir}/runs; case $n in 0|1|2) sleep 0.2; exit 3;; 3) sleep 3; exit 3;; *) exec sleep 1000;; esac"]
    starttime: 0.1
    stability_window: 2
"#,
    );
    d.wait_lines("runs", 5);
    d.wait_running("looping:0");
    let exits = d.event_lines(&["looping:0: exited with exit status 3 (unexpected)"]);
    assert_eq!(exits.len(), 4, "{}", d.events());
    // Crash 1 restarts at once, crashes 2 and 3 in a row back off, and the long run 4 resets
    // the count: restarted at once again.
    assert!(exits[0].ends_with("; restarting"), "{}", exits[0]);
    assert!(
        exits[1].contains("BACKOFF, restarting in") && exits[1].contains("crash 2 in a row within 2s"),
        "{}",
        exits[1]
    );
    assert!(
        exits[2].contains("BACKOFF, restarting in") && exits[2].contains("crash 3 in a row within 2s"),
        "{}",
        exits[2]
    );
    assert!(exits[3].ends_with("; restarting"), "the stable run reset the backoff: {}", exits[3]);
    assert_event_log_format(&d);
}

#[test]
fn failed_starts_are_retried_startretries_times_then_fatal() {
    let d = Daemon::start(
        r#"
programs:
  quick:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/quick.runs; exit 1"]
    startretries: 2
    starttime: 1
  short:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/short.runs; sleep 0.3; exit 0"]
    startretries: 0
    starttime: 10
"#,
    );
    // startretries 2: one spawn and two retries, then FATAL.
    let row = d.wait_state("quick:0", "FATAL");
    assert_eq!(common::line_count(&d.path("quick.runs")), 3, "{}", d.events());
    assert_eq!(spawns(&d, "quick:0"), 3, "{}", d.events());
    let detail = row["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("exit status 1") && detail.contains("3 failed starts"), "FATAL reason: {row}");
    assert_eq!(d.event_lines(&["quick:0", "BACKOFF, retry 1 of 2"]).len(), 1, "{}", d.events());
    assert_eq!(d.event_lines(&["quick:0", "BACKOFF, retry 2 of 2"]).len(), 1, "{}", d.events());
    assert_eq!(d.event_lines(&["quick:0", "FATAL"]).len(), 1, "{}", d.events());
    assert_event_log_format(&d);

    // An exit before starttime is a failed start, even with an expected exit code.
    let row = d.wait_state("short:0", "FATAL");
    assert_eq!(common::line_count(&d.path("short.runs")), 1);
    assert!(row["detail"].as_str().unwrap_or_default().contains("before starttime"), "{row}");

    // FATAL stays FATAL: nothing more is spawned on its own.
    d.ctl_ok(&["status"]);
    assert_eq!(common::line_count(&d.path("quick.runs")), 3);

    // `ctl start` tries again (three more spawns), waits, and reports the failure.
    let output = d.ctl(&["start", "quick"]);
    assert_eq!(output.code, Some(1), "ctl start on a failing program:\n{output}");
    assert!(output.stderr.contains("quick:0") && output.stderr.contains("FATAL"), "ctl start names FATAL:\n{output}");
    assert_eq!(common::line_count(&d.path("quick.runs")), 6);
    assert_eq!(d.state_of("quick:0"), "FATAL");
}

#[test]
fn an_exit_after_starttime_counts_as_a_started_run_even_when_the_daemon_sees_it_late() {
    // The child runs 3 s, longer than its 2 s starttime, then exits 0. The daemon is paused
    // (SIGSTOP) during that run, so when it resumes, the starttime deadline and the exit are
    // both pending. By its own clock the instance was up for starttime: the exit must count as
    // the end of a started run (exit 0 is expected: EXITED), not as a failed start.
    let d = Daemon::start(
        r#"
programs:
  late:
    cmd: ["/bin/sh", "-c", "echo up > {dir}/up; sleep 3; exit 0"]
    starttime: 2
    autostart: false
"#,
    );
    // The pause must begin before the 2 s deadline; on a very slow machine it may not, and the
    // attempt proves nothing: try again.
    for attempt in 1..=3 {
        let _ = std::fs::remove_file(d.path("up"));
        d.ctl_ok(&["start", "--no-wait", "late"]);
        d.wait_file("up", "up");
        d.signal("STOP");
        let pid = d.pid_of_paused("late:0");
        let start = common::proc_stat(pid).map(|(_, start)| start).unwrap_or_default();
        // The child exits while the daemon is paused: a zombie until the daemon reaps it.
        let exited = common::poll_until(
            WAIT,
            || !matches!(common::proc_stat(pid), Some((state, other)) if state != 'Z' && other == start),
        );
        d.signal("CONT");
        assert!(exited, "the child did not exit within {WAIT:?}");

        let row = d.wait_state_any("late:0", &["EXITED", "BACKOFF", "FATAL"]);
        let paused_in_time = d.event_lines(&["late:0: RUNNING"]).len() < attempt;
        if !paused_in_time {
            eprintln!("attempt {attempt}: the daemon saw the deadline before the pause; trying again");
            d.ctl_ok(&["stop", "late"]);
            continue;
        }
        assert_eq!(row["state"], "EXITED", "a 3 s run with starttime 2 s is a started run: {row}\n{}", d.events());
        assert!(!d.events().contains("before starttime"), "{}", d.events());
        return;
    }
    panic!("could not pause the daemon within 2 s of a spawn in 3 attempts\n{}", d.diagnostics());
}

#[test]
fn stopsignal_is_what_ctl_stop_sends() {
    let d = Daemon::start(
        r#"
programs:
  usr1:
    cmd: ["/bin/sh", "-c", "trap 'echo got-usr1 > {dir}/sig; exit 0' USR1; echo ready > {dir}/ready; while :; do sleep 1; done"]
    stopsignal: USR1
    starttime: 0.2
  numeric:
    cmd: ["/bin/sh", "-c", "trap 'echo got-int > {dir}/sig2; exit 0' INT; echo ready > {dir}/ready2; while :; do sleep 1; done"]
    stopsignal: 2
    starttime: 0.2
"#,
    );
    d.wait_all_running(&["usr1:0", "numeric:0"]);
    d.wait_file("ready", "ready");
    d.wait_file("ready2", "ready");

    let output = d.ctl_ok(&["stop", "usr1"]);
    assert!(output.stdout.contains("usr1:0: stopped"), "{output}");
    assert_eq!(common::read(d.path("sig")), "got-usr1\n");
    let row = d.row("usr1:0").unwrap_or_default();
    assert_eq!(row["state"], "STOPPED", "{row}");
    assert_eq!(row["exit_code"], 0, "the trap's exit 0: {row}");
    d.wait_event("usr1:0: stopping: sending SIGUSR1 to process group");

    d.ctl_ok(&["stop", "numeric:0"]);
    assert_eq!(common::read(d.path("sig2")), "got-int\n");
    d.wait_event("numeric:0: stopping: sending SIGINT to process group");
}

#[test]
fn a_child_ignoring_the_stopsignal_is_killed_after_stoptime() {
    let d = Daemon::start(
        r#"
programs:
  stubborn:
    cmd: ["/bin/sh", "-c", "trap '' TERM; echo ready > {dir}/ready; while :; do sleep 1; done"]
    stoptime: 1
    starttime: 0.2
"#,
    );
    let pid = d.wait_running("stubborn:0");
    d.wait_file("ready", "ready");
    let (_, start) = common::proc_stat(pid).expect("stubborn is alive");

    let output = d.ctl_ok(&["stop", "stubborn"]);
    assert!(output.stdout.contains("stubborn:0: stopped"), "{output}");
    // `ctl stop` returns only once the instance is down.
    let row = d.row("stubborn:0").unwrap_or_default();
    assert_eq!(row["state"], "STOPPED", "{row}");
    assert_eq!(row["exit_signal"], "KILL", "{row}");
    assert!(common::gone(pid, start), "pid {pid} still exists after ctl stop returned");
    let events = d.events();
    assert!(events.contains("stubborn:0: stopping: sending SIGTERM"), "{events}");
    assert!(events.contains("sending SIGKILL"), "{events}");
    assert!(events.contains("stubborn:0: stopped (signal SIGKILL)"), "{events}");
}

#[test]
fn stop_signals_the_whole_process_group_so_a_shells_children_stop_too() {
    let d = Daemon::start(
        r#"
programs:
  shell:
    cmd: ["/bin/sh", "-c", "sleep 1000 & echo $! > {dir}/grandchild; wait"]
    starttime: 0.2
"#,
    );
    let pid = d.wait_running("shell:0");
    let grandchild: i32 = d.wait_file("grandchild", "\n").trim().parse().expect("grandchild pid");
    let (_, start) = common::proc_stat(grandchild).expect("the grandchild runs");
    assert!(common::alive(grandchild));

    // Each instance leads its own process group, and its children are in it.
    let pgrp = |pid: i32| -> Option<String> {
        let stat = common::read(format!("/proc/{pid}/stat"));
        stat.rsplit(')').next()?.split_whitespace().nth(2).map(str::to_string)
    };
    assert_eq!(pgrp(pid), Some(pid.to_string()), "the instance leads its process group");
    assert_eq!(pgrp(grandchild), Some(pid.to_string()), "the grandchild is in the instance's group");

    d.ctl_ok(&["stop", "shell"]);
    assert_eq!(d.state_of("shell:0"), "STOPPED");
    // Gone, not a zombie: the daemon (a child subreaper) reaps the orphan too.
    d.wait_for(&format!("grandchild {grandchild} to be gone"), WAIT, || common::gone(grandchild, start));
}

#[test]
fn exec_failures_are_fatal_with_the_os_error_and_the_daemon_carries_on() {
    let dir = TestDir::new();
    std::fs::write(dir.join("not-executable"), "#!/bin/sh\necho hi\n").expect("write script");
    let d = Daemon::start_in(
        dir,
        r#"
programs:
  absent:
    cmd: "{dir}/no/such/binary --flag"
  absent_in_path:
    cmd: "sv-lite-test-no-such-command-xyz"
  not_executable:
    cmd: "{dir}/not-executable"
  bad_dir:
    cmd: "sleep 1000"
    workingdir: {dir}/no-such-dir
  bad_log:
    cmd: "sleep 1000"
    stdout: {dir}/no-such-dir/out.log
  fine:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
    );
    let fine = d.wait_running("fine:0");
    let detail = |name: &str| -> String {
        let row = d.wait_state(name, "FATAL");
        row["detail"].as_str().unwrap_or_default().to_string()
    };
    let absent = detail("absent:0");
    assert!(absent.contains("No such file or directory"), "absent: {absent}");
    assert!(absent.contains("/no/such/binary"), "absent names the program: {absent}");
    let in_path = detail("absent_in_path:0");
    assert!(in_path.contains("No such file or directory"), "absent_in_path: {in_path}");
    let not_executable = detail("not_executable:0");
    assert!(not_executable.contains("Permission denied"), "not_executable: {not_executable}");
    let bad_dir = detail("bad_dir:0");
    assert!(bad_dir.contains("no-such-dir") && bad_dir.contains("No such file or directory"), "bad_dir: {bad_dir}");
    // Each message names the step that failed, not a guess.
    assert!(absent.contains("exec "), "absent names the exec step: {absent}");
    assert!(bad_dir.contains("workingdir "), "bad_dir names the workingdir step: {bad_dir}");
    let bad_log = detail("bad_log:0");
    assert!(bad_log.contains("stdout file") && bad_log.contains("out.log"), "bad_log: {bad_log}");

    // The table shows the reason too, and the event log records it.
    let table = d.ctl_ok(&["status"]).stdout;
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("absent:0") && line.contains("FATAL") && line.contains("No such file")),
        "{table}"
    );
    d.wait_event("absent:0: cannot start");

    // `ctl start` reports the failure, and the daemon and the other program are unaffected.
    let output = d.ctl(&["start", "bad_dir"]);
    assert_eq!(output.code, Some(1), "{output}");
    assert!(output.stderr.contains("FATAL") && output.stderr.contains("no-such-dir"), "{output}");
    assert_eq!(d.pid_of("fine:0"), Some(fine));
    assert_eq!(d.state_of("fine:0"), "RUNNING");
    assert!(common::alive(d.pid), "the daemon died");
}

const SIGNAL_PROBES: &str = r#"
programs:
  probe:
    cmd: ["grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status"]
    stdout: {dir}/sig
    autorestart: never
    starttime: 0
  probe_via_shell:
    cmd: ["/bin/sh", "-c", "grep -E '^(SigBlk|SigIgn)' /proc/self/status > {dir}/sig_shell; exec sleep 1000"]
    starttime: 0.2
"#;

/// Starts the probes under a daemon that ignores `signals` (numbers), checks that the daemon
/// does ignore them, and that both children have no blocked signal and none of the ignored
/// signals selected by `checked` (bit n-1 for signal n).
fn check_clean_signal_state(signals: &[u32], checked: u64) {
    let names: Vec<String> = signals.iter().map(u32::to_string).collect();
    let d = Daemon::start_via_shell(SIGNAL_PROBES, &format!("trap '' {}", names.join(" ")));
    let daemon_ignored = common::proc_status_field(d.pid, "SigIgn").unwrap_or_default();
    let ignored = u64::from_str_radix(&daemon_ignored, 16).unwrap_or(0);
    for signal in signals {
        assert_ne!(
            ignored & (1 << (signal - 1)),
            0,
            "precondition: the daemon ignores signal {signal} (SigIgn {daemon_ignored})"
        );
    }

    d.wait_state("probe:0", "EXITED");
    for (file, how) in [("sig", "exec'd directly"), ("sig_shell", "under sh")] {
        let text = d.wait_file(file, "SigIgn");
        let field = |key: &str| -> u64 {
            let value = text.lines().find_map(|line| line.strip_prefix(key)).unwrap_or_default().trim();
            u64::from_str_radix(value, 16).unwrap_or_else(|_| panic!("no {key} in:\n{text}"))
        };
        assert_eq!(field("SigBlk:"), 0, "blocked signals in a child {how}:\n{text}");
        let left = field("SigIgn:") & checked;
        let numbers: Vec<u32> = (1..=64).filter(|signal| left & (1 << (signal - 1)) != 0).collect();
        assert!(
            left == 0,
            "a child {how} still ignores signals {numbers:?} (the daemon ignores {daemon_ignored}, itself started with {signals:?} ignored):\n{text}"
        );
    }
}

/// Signals 1 to 31.
const STANDARD_SIGNALS: u64 = 0x7fff_ffff;

#[test]
fn children_start_with_default_dispositions_for_standard_signals_and_an_empty_mask() {
    // The daemon starts with SIGUSR2 and SIGTSTP ignored, as a careless parent would leave
    // them (ignored dispositions survive exec); it ignores SIGPIPE itself. Its children must
    // get none of that.
    check_clean_signal_state(&[12, 20], STANDARD_SIGNALS);
}

#[test]
fn children_start_with_no_ignored_signal_at_all_realtime_ones_included() {
    // The whole SigIgn must be zero, with SIGRTMIN+1 and SIGRTMIN+6 ignored by the daemon.
    // (Under `cargo test` every process also inherits signal 32 ignored: cargo starts the test
    // binary through glibc's posix_spawn, which sets glibc's internal signals to SIG_IGN.)
    check_clean_signal_state(&[12, 35, 40], u64::MAX);
}

/// Waits until the daemon's voluntary context switches hold still for half a second (the
/// last control connection's EOF wakes it once), then counts them over three seconds or until
/// `until`, whichever is later. Returns (voluntary, nonvoluntary, when the count started).
fn wakeups_while_idle(d: &Daemon, until: Option<Instant>) -> (u64, u64, Instant) {
    let voluntary = || common::thread_counter(d.pid, "voluntary_ctxt_switches");
    let involuntary = || common::thread_counter(d.pid, "nonvoluntary_ctxt_switches");
    let mut last = voluntary();
    let mut steady_since = Instant::now();
    d.wait_for("the daemon to settle after the last ctl call", WAIT, || {
        let now = voluntary();
        if now != last {
            last = now;
            steady_since = Instant::now();
        }
        steady_since.elapsed() >= Duration::from_millis(500)
    });
    let started = Instant::now();
    let (voluntary_before, involuntary_before) = (voluntary(), involuntary());
    // The one fixed wait of the suite: the measurement itself.
    let end = until.map_or(started, |until| until.max(started)).max(started + Duration::from_secs(3));
    std::thread::sleep(end - started);
    (voluntary() - voluntary_before, involuntary() - involuntary_before, started)
}

#[test]
fn an_idle_daemon_does_not_wake_up_for_deadlines_that_no_longer_matter() {
    // Stopping an instance arms its stoptime deadline (here 3 s), and stopping one that is
    // still starting leaves its starttime deadline (3.5 s) behind. Both processes are gone at
    // once, so nothing is due any more: the daemon must not wake up for them.
    let d = Daemon::start(
        r#"
programs:
  stopped:
    cmd: "sleep 1000"
    starttime: 0.1
    stoptime: 3
  starting:
    cmd: "sleep 1000"
    starttime: 3.5
    autostart: false
"#,
    );
    d.wait_running("stopped:0");
    let stopped_at = Instant::now();
    d.ctl_ok(&["stop", "stopped"]);
    d.ctl_ok(&["start", "--no-wait", "starting"]);
    d.ctl_ok(&["stop", "starting"]);
    assert_eq!(d.state_of("stopped:0"), "STOPPED");
    assert_eq!(d.state_of("starting:0"), "STOPPED");
    let (voluntary, involuntary, started) = wakeups_while_idle(&d, Some(stopped_at + Duration::from_secs(5)));
    assert!(
        started < stopped_at + Duration::from_secs(3),
        "precondition: the count must start before the stale deadlines (the machine was too slow to tell)"
    );
    assert_eq!(
        voluntary, 0,
        "the idle daemon woke up {voluntary} times for stale deadlines (nonvoluntary switches, not counted: {involuntary})\n{}",
        d.diagnostics()
    );
}

#[test]
fn an_idle_daemon_does_not_wake_up() {
    let d = Daemon::start(
        r#"
programs:
  a:
    cmd: "sleep 1000"
    starttime: 0.2
  b:
    cmd: "sleep 1000"
    starttime: 0.2
  c:
    cmd: "sleep 1000"
    starttime: 0.2
  d:
    cmd: "sleep 1000"
    starttime: 0.2
  e:
    cmd: "sleep 1000"
    numprocs: 1
    starttime: 0.2
"#,
    );
    d.wait_all_running(&["a:0", "b:0", "c:0", "d:0", "e:0"]);
    let (voluntary, involuntary, _) = wakeups_while_idle(&d, None);
    assert_eq!(
        voluntary,
        0,
        "the idle daemon woke up {voluntary} times in 3 s (nonvoluntary switches, not counted: {involuntary})\n{}",
        d.diagnostics()
    );
}
