//! Readiness the program announces (sd_notify, s6's notification fd), ready_timeout and the
//! watchdog, on the fake clock.

use super::*;
use crate::spec::Readiness;

fn notify_program(tweak: impl FnOnce(&mut ProgramSpec)) -> ProgramSpec {
    program("cache", |p| {
        p.readiness = Readiness::Notify;
        p.ready_timeout = secs(60);
        p.autorestart = AutoRestart::Always;
        tweak(p);
    })
}

impl Harness {
    fn notify(&mut self, name: &str, fields: Vec<NotifyField>) {
        let id = self.spawn_ids[name];
        self.input(Input::Notify { id, fields });
    }

    fn notify_text(&self, name: &str) -> Option<String> {
        self.supervisor.status(self.now, &[name.to_string()]).first().and_then(|row| row.notify.clone())
    }
}

#[test]
fn notify_is_running_only_after_ready_and_shows_status_and_flags() {
    let mut h = Harness::new(vec![notify_program(|_| {})]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    // starttime (1 s) means nothing here: only READY=1 does.
    h.advance(secs(30));
    assert_eq!(h.state("cache:0"), "STARTING");
    h.notify("cache:0", vec![NotifyField::Status("loading the dataset".to_string())]);
    assert_eq!(h.notify_text("cache:0").as_deref(), Some("loading the dataset"));
    h.notify("cache:0", vec![NotifyField::Ready, NotifyField::Status("Ready to accept connections".to_string())]);
    assert_eq!(h.state("cache:0"), "RUNNING");
    assert!(h.logged("cache:0: ready (the program said so)"));
    h.notify("cache:0", vec![NotifyField::Reloading]);
    assert_eq!(h.notify_text("cache:0").as_deref(), Some("reloading; Ready to accept connections"));
    h.notify("cache:0", vec![NotifyField::Ready]);
    assert_eq!(h.notify_text("cache:0").as_deref(), Some("Ready to accept connections"));
    h.notify("cache:0", vec![NotifyField::Stopping, NotifyField::Errno(5)]);
    assert_eq!(h.notify_text("cache:0").as_deref(), Some("stopping; errno 5; Ready to accept connections"));
    assert_eq!(h.supervisor.poll_timeout(), None, "no watchdog, nothing armed");
}

#[test]
fn no_readiness_within_ready_timeout_is_a_failed_start_stopped_with_its_sequence() {
    let mut h = Harness::new(vec![notify_program(|p| p.startretries = 0)]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    h.advance(ms(59_999));
    h.expect("");
    h.advance(ms(1));
    h.expect("kill -100 TERM");
    assert_eq!(h.state("cache:0"), "STOPPING");
    assert!(h.logged("cache:0: start failed: not ready within ready_timeout (1m); stopping it"));
    h.exited(100, ExitStatus::Signaled { signal: 15, core_dumped: false });
    assert_eq!(h.state("cache:0"), "FATAL");
}

#[test]
fn extend_timeout_usec_moves_the_readiness_deadline() {
    let mut h = Harness::new(vec![notify_program(|_| {})]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    h.advance(secs(50));
    h.notify("cache:0", vec![NotifyField::ExtendTimeoutUsec(30_000_000)]);
    h.advance(secs(20));
    assert_eq!(h.state("cache:0"), "STARTING", "60 s passed, but the program asked for 30 s more at 50 s");
    h.advance(secs(10));
    assert_eq!(h.state("cache:0"), "STOPPING");
}

#[test]
fn an_exit_before_ready_is_a_failed_start() {
    let mut h = Harness::new(vec![notify_program(|_| {})]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    h.advance(secs(5));
    h.exited(100, ExitStatus::Exited(0));
    assert_eq!(h.state("cache:0"), "BACKOFF");
    assert!(h.logged("exited with exit status 0 before it said it was ready"));
}

#[test]
fn a_missed_watchdog_ping_stops_and_restarts_it_and_pings_or_watchdog_usec_keep_it() {
    let mut h = Harness::new(vec![notify_program(|p| p.watchdog = Some(secs(30)))]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    h.notify("cache:0", vec![NotifyField::Ready]);
    assert_eq!(h.state("cache:0"), "RUNNING");
    // Pings every 20 s keep it.
    for _ in 0..3 {
        h.advance(secs(20));
        h.notify("cache:0", vec![NotifyField::Watchdog]);
    }
    h.expect("");
    // The program asks for a longer interval.
    h.notify("cache:0", vec![NotifyField::WatchdogUsec(90_000_000)]);
    h.advance(secs(89));
    assert_eq!(h.state("cache:0"), "RUNNING");
    h.advance(secs(1));
    assert_eq!(h.state("cache:0"), "STOPPING");
    h.expect("kill -100 TERM");
    assert!(h.logged("cache:0: watchdog: no WATCHDOG=1 for 1m30s; stopping it to restart"));
    h.exited(100, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("spawn cache:0");
    // The next run has the config's interval again.
    h.spawned("cache:0", 101);
    h.notify("cache:0", vec![NotifyField::Ready]);
    h.advance(secs(30));
    assert_eq!(h.state("cache:0"), "STOPPING");
}

#[test]
fn mainpid_moves_the_instance_to_the_new_process() {
    let mut h = Harness::new(vec![notify_program(|_| {})]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    h.notify("cache:0", vec![NotifyField::MainPid(200), NotifyField::Ready]);
    assert_eq!(h.supervisor.status(h.now, &targets(&["cache:0"]))[0].pid, Some(200));
    // The old launcher's exit is now an orphan's; the new pid's exit is the instance's.
    h.exited(100, ExitStatus::Exited(0));
    assert_eq!(h.state("cache:0"), "RUNNING");
    h.exited(200, ExitStatus::Exited(1));
    assert_eq!(h.state("cache:0"), "STARTING", "restarted at once (autorestart: always)");
}

#[test]
fn an_s6_notification_fd_newline_is_readiness() {
    let mut h = Harness::new(vec![program("svc", |p| p.readiness = Readiness::Fd(3))]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 100);
    h.advance(secs(10));
    assert_eq!(h.state("svc:0"), "STARTING");
    let id = h.spawn_ids["svc:0"];
    // A newline from another process (an earlier run's child that kept the fd) does not count.
    h.input(Input::FdReady { id, pid: 99 });
    assert_eq!(h.state("svc:0"), "STARTING");
    h.input(Input::FdReady { id, pid: 100 });
    assert_eq!(h.state("svc:0"), "RUNNING");
}
