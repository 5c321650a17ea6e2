//! Stopping an instance stops its whole tree: a grandchild that called setsid and a
//! double-forked daemon adopted by sv-lite go too, and nothing unrelated is touched. Run with
//! a cgroup per instance (where this machine allows it, which the test checks on its own) and
//! with the `/proc` fallback forced by `--no-cgroups`.

mod common;

use common::*;

/// Pids of processes carrying this test's tag whose command line is `sleep SECONDS`.
fn sleeps(d: &Daemon, seconds: &str) -> Vec<i32> {
    tagged_pids(&d.dir.tag).into_iter().filter(|pid| is_sleep(*pid, seconds)).collect()
}

fn is_sleep(pid: i32, seconds: &str) -> bool {
    read(format!("/proc/{pid}/cmdline")).replace('\0', " ").trim() == format!("sleep {seconds}")
}

/// Every process on the machine whose command line is `sleep SECONDS`, tagged or not (a
/// process that cleared its environment carries no tag).
fn sleeps_anywhere(seconds: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| is_sleep(*pid, seconds))
        .collect()
}

/// Kills what a test left on purpose (it carries no tag for the directory's cleanup).
struct KillOnDrop(&'static str);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in sleeps_anywhere(self.0) {
            send_signal(pid, "KILL");
        }
    }
}

fn start(yaml: &str, cgroups: bool) -> Daemon {
    let args = if cgroups { Vec::new() } else { vec!["--no-cgroups"] };
    Daemon::start_with(TestDir::new(), yaml, Launch { args, ..Launch::default() })
}

/// Whether the daemon says it uses cgroups, checked against what the machine allows.
fn uses_cgroups(d: &Daemon, asked: bool) -> bool {
    let info = d.ctl_ok(&["info"]).stdout;
    let trees = info.lines().find(|line| line.starts_with("trees")).unwrap_or_default().to_string();
    let expected = asked && cgroups_required().is_some();
    if expected {
        assert!(trees.contains("cgroup v2"), "cgroup v2 is usable here, but the daemon says: {info}");
    } else {
        assert!(trees.contains("/proc walk"), "expected the /proc fallback: {info}");
    }
    let version = sv_lite(&if asked { vec!["--version"] } else { vec!["--no-cgroups", "--version"] });
    assert_eq!(version.stdout.contains("cgroup v2"), expected, "--version agrees: {}", version.stdout);
    expected
}

fn a_stop_reaches_the_whole_tree_but_nothing_else(cgroups: bool) {
    let d = start(
        r#"programs:
  web:
    cmd: [sh, -c, 'setsid sleep 301 & setsid sh -c "sleep 302 &"; (trap "" TERM; exec sleep 306) & exec sleep 300']
    stoptime: 30s
  other:
    cmd: [sh, -c, 'setsid sh -c "sleep 304 &"; exec sleep 303']
"#,
        cgroups,
    );
    let in_cgroup = uses_cgroups(&d, cgroups);
    d.wait_all_running(&["web:0", "other:0"]);
    for seconds in ["301", "302", "304", "306"] {
        d.wait_for(&format!("sleep {seconds} to run"), WAIT, || !sleeps(&d, seconds).is_empty());
    }
    if in_cgroup {
        let pid = sleeps(&d, "302")[0];
        let membership = read(format!("/proc/{pid}/cgroup"));
        assert!(
            membership.contains(&format!("/sv-lite.{}/web:0", d.pid)),
            "the daemon of web:0 is in its cgroup: {membership}"
        );
    }
    // An unrelated process of the test itself (not sv-lite's).
    let mut unrelated = std::process::Command::new("sleep").arg("305").env(TAG_VAR, &d.dir.tag).spawn().expect("sleep");
    let other = d.pid_of("other:0");
    let adopted_by_other = sleeps(&d, "304");

    d.ctl_ok(&["stop", "web"]);
    // 306 ignores SIGTERM: it goes when the main process has gone (the stop's sweep), long
    // before the 30 s stoptime.
    for seconds in ["300", "301", "302", "306"] {
        d.wait_for(&format!("sleep {seconds} to be gone"), WAIT, || sleeps(&d, seconds).is_empty());
    }
    assert_eq!(d.state_of("web:0"), "STOPPED");
    assert_eq!(d.pid_of("other:0"), other, "another instance is not touched");
    assert_eq!(sleeps(&d, "304"), adopted_by_other, "another instance's adopted daemon is not touched");
    assert!(matches!(unrelated.try_wait(), Ok(None)), "an unrelated process is not touched");
    let _ = unrelated.kill();
    let _ = unrelated.wait();
}

#[test]
fn a_stop_reaches_the_whole_tree_with_cgroups() {
    a_stop_reaches_the_whole_tree_but_nothing_else(true);
}

#[test]
fn a_stop_reaches_the_whole_tree_with_the_proc_fallback() {
    a_stop_reaches_the_whole_tree_but_nothing_else(false);
}

/// A daemon that clears its environment and is orphaned before the stop carries no marker:
/// only a cgroup holds it. The fallback's known limit is checked too, as README states it.
fn a_daemon_without_environment(cgroups: bool, seconds: &'static str) {
    let _cleanup = KillOnDrop(seconds);
    let d = start(
        &format!(
            r#"programs:
  web:
    cmd: [sh, -c, 'env -i setsid sh -c "sleep {seconds} &"; setsid sh -c "sleep 1{seconds} &"; exec sleep 300']
"#
        ),
        cgroups,
    );
    let in_cgroup = uses_cgroups(&d, cgroups);
    d.wait_running("web:0");
    d.wait_for("the daemon to run", WAIT, || !sleeps_anywhere(seconds).is_empty());
    let daemon = sleeps_anywhere(seconds)[0];
    d.ctl_ok(&["stop", "web"]);
    d.wait_for("the main process to stop", WAIT, || sleeps(&d, "300").is_empty());
    // A marked daemon that left the group goes only by the sweep's walk (or the cgroup): once
    // it is gone, the sweep has run, and what survived it survived for good.
    let marked = format!("1{seconds}");
    d.wait_for("the marked daemon to be gone", WAIT, || sleeps(&d, &marked).is_empty());
    if in_cgroup {
        d.wait_for("the environment-less daemon to be gone", WAIT, || !alive(daemon));
    } else {
        assert!(alive(daemon), "the fallback cannot find a process without its marker that left the tree");
    }
}

#[test]
fn a_daemon_that_cleared_its_environment_is_stopped_by_its_cgroup() {
    if cgroups_required().is_none() {
        return;
    }
    a_daemon_without_environment(true, "307");
}

#[test]
fn the_fallback_cannot_see_a_daemon_that_cleared_its_environment() {
    a_daemon_without_environment(false, "308");
}

#[test]
fn the_daemon_removes_its_cgroups_at_exit_and_those_left_by_a_killed_one() {
    let Some(own) = cgroups_required() else { return };
    // What a daemon killed with SIGKILL leaves: its directory, with an empty instance cgroup.
    // Pid numbers above the kernel's limit never name a live process.
    let stale = own.join("sv-lite.4194305");
    std::fs::create_dir_all(stale.join("web:0")).expect("a stale cgroup");
    let d = start(
        r#"programs:
  web:
    cmd: [sh, -c, 'setsid sleep 309 & exec sleep 300']
"#,
        true,
    );
    d.wait_running("web:0");
    let ours = own.join(format!("sv-lite.{}", d.pid));
    assert!(ours.join("web:0").is_dir(), "the instance's cgroup {}", ours.display());
    assert!(!stale.exists(), "the stale cgroup is removed at start");
    d.shutdown();
    assert!(!ours.exists(), "{} is removed at exit", ours.display());
}

#[test]
fn a_run_after_a_stop_starts_in_a_fresh_cgroup_and_is_not_killed_at_birth() {
    // Linux 6.18 kills a child born (clone3, CLONE_INTO_CGROUP) into a cgroup that once got
    // `cgroup.kill`: every stop ends with one, so each run after a stop needs a new cgroup.
    let d = start(
        r#"programs:
  web:
    cmd: [sleep, '300']
    starttime: 0.2s
"#,
        true,
    );
    let in_cgroup = uses_cgroups(&d, true);
    let mut pid = d.wait_running("web:0");
    for _ in 0..3 {
        d.ctl_ok(&["restart", "web"]);
        let again = d.wait_running("web:0");
        assert_ne!(again, pid, "a new run");
        pid = again;
        if in_cgroup {
            let membership = read(format!("/proc/{pid}/cgroup"));
            assert!(membership.contains(&format!("sv-lite.{}", d.pid)), "in the daemon's cgroups: {membership}");
        }
    }
    assert_eq!(d.state_of("web:0"), "RUNNING");
}
