//! Regressions found by review: each spec failed before its fix.

use super::*;
use crate::spec::{CheckKind, Condition, Dependency, HealthCheck, PortRef, PortSpec, Readiness};

fn tcp_checked(name: &str, tweak: impl FnOnce(&mut ProgramSpec)) -> ProgramSpec {
    program(name, |p| {
        let mut check = HealthCheck::with_defaults(CheckKind::Tcp { port: PortRef::Number(8080) });
        check.initial_interval = Duration::ZERO;
        check.interval = secs(10);
        p.health_check = Some(check);
        p.readiness = Readiness::Health;
        p.autorestart = AutoRestart::Always;
        tweak(p);
    })
}

impl Harness {
    fn answer_last(&mut self, name: &str, result: ProbeResult) {
        let (id, seq) = self.probes[name];
        self.input(Input::ProbeResult { id, seq, result });
    }
}

/// F1: pause + resume of a RUNNING health-checked instance turns its liveness check off for good.
#[test]
fn review_health_checks_resume_after_pause_resume_of_a_running_instance() {
    let mut h = Harness::new(vec![tcp_checked("web", |_| {})]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.step();
    h.expect("connect web:0 :8080 (snooze file checked)");
    h.answer_last("web:0", ProbeResult::Connected);
    assert_eq!(h.state("web:0"), "RUNNING");
    h.request(1, Request::Pause { targets: targets(&["web"]) });
    h.request(2, Request::Resume { targets: targets(&["web"]) });
    h.actions();
    assert_eq!(h.state("web:0"), "RUNNING");
    // Expected: the next liveness check is armed. Actual: nothing is armed, ever again.
    assert!(h.supervisor.poll_timeout().is_some(), "no health check armed after resume");
}

/// F2: `readiness: notify` (or fd:N) with a health_check: the check never runs, and a
/// `healthy` dependent waits forever.
#[test]
fn review_notify_program_with_a_health_check_is_checked_once_running() {
    let cache = tcp_checked("cache", |p| {
        p.readiness = Readiness::Notify;
        p.ready_timeout = secs(60);
    });
    let web = program("web", |p| {
        p.starttime = Duration::ZERO;
        p.depends_on = vec![Dependency { program: "cache".to_string(), condition: Condition::Healthy, restart: false }];
    });
    let mut h = Harness::new(vec![cache, web]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    let id = h.spawn_ids["cache:0"];
    h.input(Input::Notify { id, fields: vec![NotifyField::Ready] });
    assert_eq!(h.state("cache:0"), "RUNNING");
    h.advance(secs(10));
    assert_eq!(h.actions(), "connect cache:0 :8080 (snooze file checked)", "no health check ever runs");
}

/// F3: a second shutdown request clears the stop queue; a queued instance without a pid
/// (BACKOFF here) is never stopped and the shutdown never finishes.
#[test]
fn review_second_shutdown_finishes_with_a_queued_dependency_in_backoff() {
    let db = program("db", |p| p.startretries = 5);
    let web = program("web", |p| {
        p.starttime = Duration::ZERO;
        p.stoptime = secs(30);
        p.depends_on = vec![Dependency { program: "db".to_string(), condition: Condition::Started, restart: false }];
    });
    let mut h = Harness::new(vec![db, web]);
    h.expect("spawn db:0");
    h.spawned("db:0", 10);
    h.expect("spawn web:0");
    h.spawned("web:0", 20);
    h.exited(10, ExitStatus::Exited(1)); // db fails its start: BACKOFF; web keeps running
    assert_eq!(h.state("db:0"), "BACKOFF");
    h.input(Input::Shutdown { conn: Some(5) });
    h.expect("kill -20 TERM"); // db is held until web is down
    h.input(Input::Shutdown { conn: None });
    h.expect("kill -20 KILL");
    h.exited(20, KILLED);
    h.advance(secs(120));
    assert_eq!(h.actions(), "reply 5 done shut down\nexit 0", "db:0 is {}", h.state("db:0"));
}

/// F4: the core accepts a port another instance already holds (stale `exclude`).
#[test]
fn review_a_port_already_held_is_never_given_to_a_second_instance() {
    let web = program("web", |p| {
        p.ports = vec![("http".to_string(), PortSpec::Allocate)];
        p.numprocs = 2;
        p.starttime = Duration::ZERO;
    });
    let mut h = Harness::new(vec![web]);
    h.actions();
    let (a, b) = (h.allocations[0], h.allocations[1]);
    h.input(Input::PortsAllocated { id: a, ports: Ok(vec![4000]) });
    h.input(Input::PortsAllocated { id: b, ports: Ok(vec![4000]) });
    let p0 = h.supervisor.port_of("web:0", "http");
    let p1 = h.supervisor.port_of("web:1", "http");
    assert_ne!(p0, p1, "both instances hold port 4000");
}

/// F5: MAINPID= naming another instance's main process steals its `by_pid` entry.
#[test]
fn review_mainpid_cannot_take_over_another_instances_pid() {
    let a = program("a", |p| p.starttime = Duration::ZERO);
    let b = program("b", |p| {
        p.readiness = Readiness::Notify;
        p.ready_timeout = secs(60);
    });
    let mut h = Harness::new(vec![a, b]);
    h.actions();
    h.spawned("a:0", 10);
    h.spawned("b:0", 20);
    let id = h.spawn_ids["b:0"];
    h.input(Input::Notify { id, fields: vec![NotifyField::MainPid(10)] });
    assert_eq!(h.supervisor.instance_of_pid(10), Some("a:0"), "pid 10 now belongs to b:0");
}

/// F6: WATCHDOG_USEC=0 disables the watchdog under systemd; here it kills the program at once.
#[test]
fn review_watchdog_usec_zero_disables_the_watchdog() {
    let mut h = Harness::new(vec![program("cache", |p| {
        p.readiness = Readiness::Notify;
        p.ready_timeout = secs(60);
        p.watchdog = Some(secs(30));
    })]);
    h.expect("spawn cache:0");
    h.spawned("cache:0", 100);
    let id = h.spawn_ids["cache:0"];
    h.input(Input::Notify { id, fields: vec![NotifyField::Ready, NotifyField::WatchdogUsec(0)] });
    h.advance(ms(1));
    assert_eq!(h.state("cache:0"), "RUNNING");
}

/// F7: a `restart: true` dependent held down by `ctl stop` (still stopping) is started again
/// when its dependency is restarted.
#[test]
fn review_restart_of_a_dependency_does_not_start_a_dependent_held_down_by_stop() {
    let db = program("db", |p| p.starttime = Duration::ZERO);
    let web = program("web", |p| {
        p.starttime = Duration::ZERO;
        p.stoptime = secs(30);
        p.depends_on = vec![Dependency { program: "db".to_string(), condition: Condition::Started, restart: true }];
    });
    let mut h = Harness::new(vec![db, web]);
    h.expect("spawn db:0");
    h.spawned("db:0", 10);
    h.expect("spawn web:0");
    h.spawned("web:0", 20);
    h.request(1, Request::Stop { targets: targets(&["web"]), wait: false, timeout: None });
    h.request(2, Request::Restart { targets: targets(&["db"]), wait: false });
    h.actions();
    h.exited(20, ExitStatus::Exited(0));
    h.exited(10, ExitStatus::Exited(0));
    h.spawned("db:0", 11);
    h.actions();
    assert_eq!(h.state("web:0"), "STOPPED", "web:0 was started though `ctl stop web` holds it down");
}

/// F8: ready_timeout (default 60 s) cuts an Aurora health-checked start short inside its grace
/// period: initial_interval 90 s, interval 10 s (m = 9, n = 10), healthy at 70 s.
#[test]
fn review_ready_timeout_does_not_fail_a_start_still_in_its_aurora_grace_period() {
    let mut h = Harness::new(vec![tcp_checked("web", |p| {
        if let Some(check) = &mut p.health_check {
            check.initial_interval = secs(90);
        }
    })]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    for _ in 0..6 {
        h.advance(secs(10));
        if h.state("web:0") != "STARTING" {
            break;
        }
        h.actions();
        h.answer_last("web:0", ProbeResult::Refused);
    }
    assert_eq!(h.state("web:0"), "STARTING", "failed at 60 s, within the grace period of 9 checks");
    h.advance(secs(10));
    h.actions();
    h.answer_last("web:0", ProbeResult::Connected);
    assert_eq!(h.state("web:0"), "RUNNING");
}

/// F9: a check timing out exactly when the next one is due (timeout == interval, the driver
/// waking on the deadline) leaves the probe deadline unchanged, so it is never re-armed.
#[test]
fn review_a_timed_out_check_re_arms_the_next_one_when_timeout_equals_interval() {
    let mut h = Harness::new(vec![tcp_checked("web", |p| {
        if let Some(check) = &mut p.health_check {
            check.timeout = secs(10);
            check.max_consecutive_failures = 5;
        }
    })]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.advance(secs(10));
    h.expect("connect web:0 :8080 (snooze file checked)");
    h.answer_last("web:0", ProbeResult::Connected);
    assert_eq!(h.state("web:0"), "RUNNING");
    h.advance(secs(10));
    h.expect("connect web:0 :8080 (snooze file checked)");
    h.advance(secs(10)); // times out at asked + 10 s == the next check's time
    assert!(h.actions().starts_with("cancel web:0"));
    assert!(h.supervisor.poll_timeout().is_some(), "health checks stopped for good");
}

/// F10: `ctl start --wait web` whose dependency is held down by `ctl stop` is never answered:
/// web waits (not blocked) for something that will not happen by itself.
#[test]
fn review_start_wait_on_a_dependent_of_a_held_down_program_is_answered() {
    let db = program("db", |p| p.starttime = Duration::ZERO);
    let web = program("web", |p| {
        p.starttime = Duration::ZERO;
        p.autostart = false;
        p.depends_on = vec![Dependency { program: "db".to_string(), condition: Condition::Ready, restart: false }];
    });
    let mut h = Harness::new(vec![db, web]);
    h.expect("spawn db:0");
    h.spawned("db:0", 10);
    h.request(1, Request::Stop { targets: targets(&["db"]), wait: false, timeout: None });
    h.exited(10, ExitStatus::Exited(0));
    h.actions();
    h.request(2, Request::Start { targets: targets(&["web"]), wait: true });
    h.advance(secs(3600));
    assert!(h.actions().contains("reply 2"), "web:0 is {} forever; the waiter is never answered", h.state("web:0"));
}

fn reload(h: &mut Harness, programs: Vec<ProgramSpec>) {
    h.input(Input::Reload { conn: None, result: Ok(Config { programs, ..Config::default() }) });
}

/// F11a: a reload that adds (or changes) a health_check restarts the instance, but its probe
/// keeps the old check (none): STARTING with nothing to pass, a failed start at ready_timeout.
#[test]
fn review_reload_adding_a_health_check_uses_it() {
    let plain = program("web", |p| p.autorestart = AutoRestart::Always);
    let mut h = Harness::new(vec![plain]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    reload(&mut h, vec![tcp_checked("web", |_| {})]);
    h.actions();
    h.exited(100, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("spawn web:0");
    h.spawned("web:0", 101);
    h.advance(secs(10));
    assert_eq!(h.actions(), "connect web:0 :8080 (snooze file checked)");
}

/// F11b: a reload that changes a fixed port restarts the instance with the old number.
#[test]
fn review_reload_changing_a_fixed_port_uses_the_new_number() {
    let on = |port: u16| {
        program("web", move |p| {
            p.ports = vec![("http".to_string(), PortSpec::Fixed(port))];
            p.starttime = Duration::ZERO;
        })
    };
    let mut h = Harness::new(vec![on(8080)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    reload(&mut h, vec![on(9090)]);
    h.actions();
    h.exited(100, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.actions();
    assert_eq!(h.supervisor.port_of("web:0", "http"), Ok(9090));
}
