//! Health checks, ports and the HTTP lifecycle (Aurora), on the fake clock.

use super::*;
use crate::spec::{CheckKind, HealthCheck, HttpLifecycle, PortRef, PortSpec};

fn http_check(tweak: impl FnOnce(&mut HealthCheck)) -> HealthCheck {
    let mut check = HealthCheck::with_defaults(CheckKind::Http {
        port: PortRef::Named("health".to_string()),
        endpoint: "/health".to_string(),
        expected_response: "ok".to_string(),
        expected_response_code: 0,
    });
    tweak(&mut check);
    check
}

/// `web` with a fixed health port 8080 and an HTTP check on it.
fn checked(tweak: impl FnOnce(&mut HealthCheck)) -> ProgramSpec {
    program("web", |p| {
        p.ports = vec![("health".to_string(), PortSpec::Fixed(8080))];
        p.health_check = Some(http_check(tweak));
        p.readiness = crate::spec::Readiness::Health;
        // The config loader turns this on for a `health` port; the core sees it spelled out.
        p.lifecycle = Some(HttpLifecycle::with_defaults(PortRef::Named("health".to_string())));
        p.autorestart = AutoRestart::Always;
        p.startretries = 1;
    })
}

fn ok() -> ProbeResult {
    ProbeResult::Http { status: 200, body: "ok\n".to_string() }
}

fn failing() -> ProbeResult {
    ProbeResult::Http { status: 500, body: "oops".to_string() }
}

impl Harness {
    /// Like `expect`, leaving out the `cancel` lines of lifecycle POSTs whose step ended.
    #[track_caller]
    fn expect_without_cancels(&mut self, expected: &str) {
        let actions = self.actions();
        let kept: Vec<&str> = actions.lines().filter(|line| !line.starts_with("cancel ")).collect();
        assert_eq!(kept.join("\n"), expected.trim());
    }

    /// Answers the last check asked for `name`.
    fn answer(&mut self, name: &str, result: ProbeResult) {
        let (id, seq) = self.probes[name];
        self.input(Input::ProbeResult { id, seq, result });
    }

    /// Moves to the next check of `name`, expects it, and answers it.
    fn next_check(&mut self, name: &str, result: ProbeResult) {
        self.step();
        assert_eq!(self.actions(), format!("get {name} :8080/health (snooze file checked)"));
        self.answer(name, result);
    }

    fn latency(&self, name: &str) -> Option<Duration> {
        let rows = self.supervisor.status(self.now, &[name.to_string()]);
        rows.first().and_then(|row| row.health.as_ref()).and_then(|health| health.latency)
    }

    fn health(&self, name: &str) -> String {
        let rows = self.supervisor.status(self.now, &[name.to_string()]);
        rows.first()
            .and_then(|row| row.health.as_ref())
            .map_or("-".to_string(), |health| format!("{} {}", health.state.as_str(), health.failures))
    }
}

#[test]
fn failures_in_the_grace_period_do_not_count_and_one_pass_makes_it_running() {
    // Aurora's defaults: 15 s grace and every 10 s, so m = 2 and n = 3.
    let mut h = Harness::new(vec![checked(|_| {})]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    assert_eq!(h.state("web:0"), "STARTING");
    // No starttime: nothing happens until the first check, one interval after the start.
    h.advance(secs(9));
    h.expect("");
    h.advance(secs(1));
    h.expect("get web:0 :8080/health (snooze file checked)");
    h.answer("web:0", failing());
    assert_eq!(h.state("web:0"), "STARTING");
    assert_eq!(h.health("web:0"), "PENDING 0", "a failure in the grace period is not counted");
    h.next_check("web:0", ProbeResult::Refused);
    assert_eq!(h.health("web:0"), "PENDING 0");
    h.next_check("web:0", ok());
    assert_eq!(h.state("web:0"), "RUNNING");
    assert_eq!(h.health("web:0"), "HEALTHY 0");
    assert!(h.logged("web:0: health check passed: HTTP 200 in 0ms; HEALTHY"));
    assert!(h.logged("web:0: RUNNING (pid 100)"));
}

#[test]
fn no_pass_within_n_checks_is_a_failed_start_stopped_then_backoff_then_fatal() {
    let mut h = Harness::new(vec![checked(|_| {})]);
    h.expect("spawn web:0");
    for (attempt, pid) in [(1, 100), (2, 101)] {
        h.spawned("web:0", pid);
        for _ in 0..2 {
            h.next_check("web:0", failing());
            assert_eq!(h.state("web:0"), "STARTING");
        }
        // Check n = 3 fails too: the start has failed. The instance is stopped properly
        // (lifecycle POST: the program has a `health` port), then counted as a failed start.
        h.next_check("web:0", failing());
        assert_eq!(h.state("web:0"), "STOPPING");
        assert!(h.logged("start failed: 3 health checks without 1 passing in a row"));
        h.expect("post web:0 :8080/quitquitquit");
        h.exited(pid, ExitStatus::Exited(0));
        if attempt == 1 {
            assert_eq!(h.state("web:0"), "BACKOFF");
            h.step();
            h.expect_without_cancels("spawn web:0");
        }
    }
    // startretries: 1, so the second failed start is final.
    assert_eq!(h.state("web:0"), "FATAL");
}

#[test]
fn min_consecutive_successes_needs_passes_in_a_row_within_n() {
    // No grace, 2 failures tolerated, 3 passes needed: n = 0 + 2 + 3 = 5.
    let tweak = |c: &mut HealthCheck| {
        c.initial_interval = Duration::ZERO;
        c.max_consecutive_failures = 2;
        c.min_consecutive_successes = 3;
    };
    let mut h = Harness::new(vec![checked(tweak)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    for result in [ok(), ok(), failing(), ok()] {
        h.next_check("web:0", result);
        assert_eq!(h.state("web:0"), "STARTING");
    }
    // The fifth check passes, but only 2 in a row: the start has failed.
    h.next_check("web:0", ok());
    assert_eq!(h.state("web:0"), "STOPPING");

    // Three in a row from the start: RUNNING after the third.
    let mut h = Harness::new(vec![checked(tweak)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.next_check("web:0", ok());
    h.next_check("web:0", ok());
    assert_eq!(h.state("web:0"), "STARTING");
    h.next_check("web:0", ok());
    assert_eq!(h.state("web:0"), "RUNNING");
}

#[test]
fn more_than_max_consecutive_failures_after_running_stops_it_politely_and_restarts_it() {
    let tweak = |c: &mut HealthCheck| {
        c.initial_interval = Duration::ZERO;
        c.max_consecutive_failures = 1;
    };
    let mut h = Harness::new(vec![checked(tweak)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.next_check("web:0", ok());
    assert_eq!(h.state("web:0"), "RUNNING");
    // One failure is tolerated; a pass resets the count.
    h.next_check("web:0", failing());
    assert_eq!((h.state("web:0"), h.health("web:0")), ("RUNNING".to_string(), "HEALTHY 1".to_string()));
    h.next_check("web:0", ok());
    h.next_check("web:0", failing());
    h.next_check("web:0", failing());
    assert_eq!(h.state("web:0"), "STOPPING");
    assert_eq!(h.health("web:0"), "UNHEALTHY 2");
    assert!(h.logged("web:0: unhealthy: 2 health checks failed in a row"));
    // The full stop sequence: /quitquitquit, /abortabortabort, then SIGTERM, then SIGKILL.
    h.expect("post web:0 :8080/quitquitquit");
    h.advance(secs(5));
    h.expect_without_cancels("post web:0 :8080/abortabortabort");
    h.advance(secs(5));
    h.expect_without_cancels("kill -100 TERM");
    h.advance(secs(10));
    h.expect("kill -100 KILL");
    h.exited(100, KILLED);
    // Restarted as after an unexpected exit.
    h.expect("spawn web:0");
    assert!(h.logged("unhealthy: 2 health checks failed in a row"));
}

#[test]
fn a_check_that_does_not_answer_in_time_is_cancelled_and_counts_as_a_failure() {
    let tweak = |c: &mut HealthCheck| {
        c.initial_interval = Duration::ZERO;
        c.max_consecutive_failures = 0;
    };
    let mut h = Harness::new(vec![checked(tweak)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.next_check("web:0", ok());
    assert_eq!(h.state("web:0"), "RUNNING");
    h.step();
    h.expect("get web:0 :8080/health (snooze file checked)");
    let (id, seq) = h.probes["web:0"];
    // The default timeout is 1 s. An answer's latency is the time since it was asked.
    h.advance(ms(40));
    h.input(Input::ProbeResult { id, seq, result: ok() });
    assert_eq!(h.latency("web:0"), Some(ms(40)));
    h.step();
    h.expect("get web:0 :8080/health (snooze file checked)");
    let (_, seq) = h.probes["web:0"];
    h.advance(ms(999));
    h.expect("");
    h.advance(ms(1));
    assert_eq!(h.latency("web:0"), None, "a time-out has no latency");
    assert!(h.actions().starts_with(&format!("cancel web:0 {seq}\npost web:0 :8080/quitquitquit")));
    assert!(h.logged("unhealthy: 1 health checks failed in a row (last: timed out after 1s)"));
    // A late answer to the cancelled check changes nothing.
    h.answer("web:0", ok());
    assert_eq!(h.state("web:0"), "STOPPING");
}

#[test]
fn snoozed_checks_are_not_counted_and_status_says_snoozed() {
    let tweak = |c: &mut HealthCheck| {
        c.initial_interval = Duration::ZERO;
    };
    let mut h = Harness::new(vec![checked(tweak)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.next_check("web:0", ok());
    for _ in 0..5 {
        h.next_check("web:0", ProbeResult::Snoozed);
        assert_eq!(h.state("web:0"), "RUNNING");
    }
    assert_eq!(h.health("web:0"), "SNOOZED 0");
    assert!(h.logged(".healthchecksnooze exists: health checks skipped; SNOOZED"));
    h.next_check("web:0", ok());
    assert_eq!(h.health("web:0"), "HEALTHY 0");
}

#[test]
fn snooze_for_a_duration_creates_the_file_and_removes_it_when_the_time_is_up() {
    let mut h = Harness::new(vec![program("web", |p| p.workingdir = Some("/srv/web".into()))]);
    h.expect("spawn web:0");
    h.request(1, Request::Snooze { targets: targets(&["web"]), duration: Some(secs(600)) });
    h.expect("snooze /srv/web/.healthchecksnooze on\nreply 1 web:0:ok:snoozed for 10m: /srv/web/.healthchecksnooze");
    h.advance(secs(599));
    h.expect("");
    h.advance(secs(1));
    h.expect("snooze /srv/web/.healthchecksnooze off");
    h.request(2, Request::Snooze { targets: targets(&["web"]), duration: None });
    h.request(3, Request::Unsnooze { targets: targets(&["web"]) });
    h.expect(
        "snooze /srv/web/.healthchecksnooze on\nreply 2 web:0:ok:snoozed until `ctl unsnooze`: /srv/web/.healthchecksnooze\n\
         snooze /srv/web/.healthchecksnooze off\nreply 3 web:0:ok:unsnoozed: /srv/web/.healthchecksnooze removed",
    );
}

#[test]
fn a_refused_lifecycle_endpoint_skips_its_wait() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.ports = vec![("health".to_string(), PortSpec::Fixed(8080))];
        p.lifecycle = Some(HttpLifecycle::with_defaults(PortRef::Named("health".to_string())));
        p.starttime = Duration::ZERO;
    })]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.request(1, Request::Stop { targets: targets(&["web"]), wait: true, timeout: None });
    h.expect("post web:0 :8080/quitquitquit");
    let (_, graceful) = h.probes["web:0"];
    h.answer("web:0", ProbeResult::Refused);
    // Each POST whose step is over is given up, so no connection lingers.
    h.expect(&format!("post web:0 :8080/abortabortabort\ncancel web:0 {graceful}"));
    let (_, abort) = h.probes["web:0"];
    h.answer("web:0", ProbeResult::Refused);
    h.expect(&format!("kill -100 TERM\ncancel web:0 {abort}"));
    // An exit during the graceful step ends the sequence there.
    h.exited(100, ExitStatus::Exited(0));
    h.expect("reply 1 web:0:ok:stopped");
    h.request(2, Request::Start { targets: targets(&["web"]), wait: false });
    h.expect("spawn web:0\nreply 2 web:0:ok:starting");
    h.spawned("web:0", 101);
    h.request(3, Request::Stop { targets: targets(&["web"]), wait: true, timeout: None });
    h.expect("post web:0 :8080/quitquitquit");
    let (_, graceful) = h.probes["web:0"];
    h.answer("web:0", ProbeResult::Http { status: 200, body: String::new() });
    h.exited(101, ExitStatus::Exited(0));
    h.expect(&format!("cancel web:0 {graceful}\nreply 3 web:0:ok:stopped"));
}

#[test]
fn ports_are_allocated_once_per_instance_kept_across_restarts_and_quarantined_when_removed() {
    let web = program("web", |p| {
        p.ports =
            vec![("http".to_string(), PortSpec::Allocate), ("alias".to_string(), PortSpec::Alias("http".to_string()))];
        p.numprocs = 2;
        p.starttime = Duration::ZERO;
    });
    let mut h = Harness::new(vec![web.clone()]);
    assert_eq!(h.actions(), "allocate 1 excluding []\nallocate 1 excluding []");
    let first = h.allocations[0];
    h.input(Input::PortsAllocated { id: first, ports: Ok(vec![4000]) });
    h.expect("spawn web:0");
    // The second request went out before 4000 was taken: handed 4000 too, it asks again,
    // excluding it, and never shares it.
    let second = h.allocations[1];
    h.input(Input::PortsAllocated { id: second, ports: Ok(vec![4000]) });
    h.expect("allocate 1 excluding [4000]");
    h.input(Input::PortsAllocated { id: second, ports: Ok(vec![4001]) });
    h.expect("spawn web:1");
    assert_eq!(h.supervisor.port_of("web:1", "http"), Ok(4001));
    let rows = h.supervisor.status(h.now, &targets(&["web:0"]));
    assert_eq!(rows[0].ports, [("http".to_string(), 4000), ("alias".to_string(), 4000)]);
    assert_eq!(h.supervisor.port_of("web:0", "alias"), Ok(4000));
    assert!(h.supervisor.port_of("web:0", "nope").unwrap_err().contains("no port named \"nope\""));
    // A restart keeps the port: no new allocation.
    h.spawned("web:0", 100);
    h.exited(100, ExitStatus::Exited(1));
    h.expect("spawn web:0");
    assert_eq!(h.supervisor.port_of("web:0", "http"), Ok(4000));
    // A reload that removes web:1 gives its port back into quarantine; a new instance does not get it.
    h.spawned("web:0", 101);
    h.spawned("web:1", 102);
    let mut one = web.clone();
    one.numprocs = 1;
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![one], ..Config::default() }) });
    h.exited(102, ExitStatus::Exited(0));
    h.drain();
    let mut two = web;
    two.numprocs = 2;
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![two], ..Config::default() }) });
    assert!(h.actions().contains("allocate 1 excluding [4000, 4001]"), "the removed instance's port stays out of use");
}

#[test]
fn a_quarantined_port_is_handed_out_again_once_its_time_is_up() {
    let web = |numprocs| {
        program("web", |p| {
            p.ports = vec![("http".to_string(), PortSpec::Allocate)];
            p.numprocs = numprocs;
            p.starttime = Duration::ZERO;
        })
    };
    let mut h = Harness::new(vec![web(2)]);
    assert_eq!(h.actions(), "allocate 1 excluding []\nallocate 1 excluding []");
    let (first, second) = (h.allocations[0], h.allocations[1]);
    h.input(Input::PortsAllocated { id: first, ports: Ok(vec![4000]) });
    h.input(Input::PortsAllocated { id: second, ports: Ok(vec![4001]) });
    h.expect("spawn web:0\nspawn web:1");
    h.spawned("web:0", 100);
    h.spawned("web:1", 101);
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![web(1)], ..Config::default() }) });
    h.exited(101, ExitStatus::Exited(0));
    h.drain();
    h.advance(PORT_QUARANTINE - ms(1));
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![web(2)], ..Config::default() }) });
    assert!(h.actions().contains("allocate 1 excluding [4000, 4001]"), "still in quarantine");
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![web(1)], ..Config::default() }) });
    h.drain();
    h.advance(ms(1));
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![web(2)], ..Config::default() }) });
    assert!(h.actions().contains("allocate 1 excluding [4000]"), "4001's quarantine is over");
}

#[test]
fn an_explicit_starttime_readiness_keeps_the_health_check_as_a_liveness_check_only() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.ports = vec![("health".to_string(), PortSpec::Fixed(8080))];
        p.health_check = Some(http_check(|c| c.initial_interval = Duration::ZERO));
        p.readiness = crate::spec::Readiness::Starttime;
        p.starttime = secs(2);
    })]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    // Ready by starttime, without any check.
    h.advance(secs(2));
    assert_eq!(h.state("web:0"), "RUNNING");
    h.expect("");
    // Then the check runs, as a liveness check.
    h.next_check("web:0", ok());
    assert_eq!(h.health("web:0"), "HEALTHY 0");
}
