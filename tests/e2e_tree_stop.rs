//! Stopping an instance stops its whole tree: a grandchild that called setsid and a
//! double-forked daemon adopted by sv-lite go too, and nothing unrelated is touched.

mod common;

use common::*;

/// Pids of processes carrying this test's tag whose command line is `sleep SECONDS`.
fn sleeps(d: &Daemon, seconds: &str) -> Vec<i32> {
    tagged_pids(&d.dir.tag)
        .into_iter()
        .filter(|pid| read(format!("/proc/{pid}/cmdline")).replace('\0', " ").trim() == format!("sleep {seconds}"))
        .collect()
}

#[test]
fn a_stop_reaches_a_setsid_grandchild_and_a_double_forked_daemon_but_nothing_else() {
    let d = Daemon::start(
        r#"programs:
  web:
    cmd: [sh, -c, 'setsid sleep 301 & setsid sh -c "sleep 302 &"; exec sleep 300']
  other:
    cmd: [sh, -c, 'setsid sh -c "sleep 304 &"; exec sleep 303']
"#,
    );
    d.wait_all_running(&["web:0", "other:0"]);
    for seconds in ["301", "302", "304"] {
        d.wait_for(&format!("sleep {seconds} to run"), WAIT, || !sleeps(&d, seconds).is_empty());
    }
    // An unrelated process of the test itself (not sv-lite's).
    let mut unrelated = std::process::Command::new("sleep").arg("305").env(TAG_VAR, &d.dir.tag).spawn().expect("sleep");
    let other = d.pid_of("other:0");
    let adopted_by_other = sleeps(&d, "304");

    d.ctl_ok(&["stop", "web"]);
    for seconds in ["300", "301", "302"] {
        d.wait_for(&format!("sleep {seconds} to be gone"), WAIT, || sleeps(&d, seconds).is_empty());
    }
    assert_eq!(d.pid_of("other:0"), other, "another instance is not touched");
    assert_eq!(sleeps(&d, "304"), adopted_by_other, "another instance's adopted daemon is not touched");
    assert!(matches!(unrelated.try_wait(), Ok(None)), "an unrelated process is not touched");
    let _ = unrelated.kill();
    let _ = unrelated.wait();
}
