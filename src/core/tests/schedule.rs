//! Scheduled programs: SCHEDULED between runs, fire times from the wall clock, overlap, run
//! timeouts, stop and start, and wall-clock steps. The harness's clock starts at
//! 2026-12-07T08:29:00Z (a Monday).

use super::*;
use crate::schedule::{Entry, Schedule};
use crate::spec::{Overlap, ScheduleSpec};

fn every(entries: &[&str]) -> ScheduleSpec {
    let entries = entries.iter().map(|text| Entry::parse(text).expect("a valid schedule")).collect();
    ScheduleSpec { when: Schedule::new(entries), timeout: None, overlap: Overlap::Skip }
}

fn job(tweak: impl FnOnce(&mut ScheduleSpec)) -> ProgramSpec {
    program("job", |p| {
        let mut schedule = every(&["every 5m"]);
        tweak(&mut schedule);
        p.schedule = Some(schedule);
    })
}

impl Harness {
    fn row(&self, name: &str) -> InstanceStatus {
        self.supervisor.status(self.now, &[name.to_string()]).remove(0)
    }

    fn next_run(&self, name: &str) -> Option<String> {
        let next = self.row(name).schedule.and_then(|schedule| schedule.next)?;
        Some(crate::schedule::format_utc(timetable::unix_secs(next)))
    }

    fn last_run(&self, name: &str) -> Option<String> {
        let (_, took, result) = self.row(name).schedule.and_then(|schedule| schedule.last)?;
        Some(format!("{result} in {}", human_duration(took)))
    }

    /// How long until the daemon would wake.
    fn sleeps_for(&self) -> Option<Duration> {
        self.supervisor.poll_timeout().map(|deadline| deadline.saturating_duration_since(self.now.mono))
    }

    /// Steps the wall clock alone (NTP, `date -s`), then wakes the core with an input that
    /// changes nothing, as any wake-up of the driver would.
    fn step_wall_clock(&mut self, forward: bool, by: Duration) {
        self.now.wall = if forward { self.now.wall + by } else { self.now.wall - by };
        self.input(Input::ConnClosed { conn: 999 });
    }
}

#[test]
fn a_scheduled_program_waits_for_its_first_fire_time_and_the_daemon_sleeps_until_then() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.expect("");
    assert_eq!(h.state("job:0"), "SCHEDULED");
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:30:00Z"));
    assert_eq!(h.sleeps_for(), Some(secs(60)), "one wake-up, at the fire time, and none before");
    assert_eq!(h.row("job:0").detail.as_deref(), Some("next run 2026-12-07T08:30:00Z"));
}

#[test]
fn a_fire_time_starts_a_run_and_its_end_waits_for_the_next_one() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    assert!(h.logged("job:0: fire time 2026-12-07T08:30:00Z: starting a run"));
    h.spawned("job:0", 10);
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:35:00Z"));
    h.advance(secs(3));
    assert_eq!(h.state("job:0"), "RUNNING");
    h.advance(secs(4));
    h.exited(10, ExitStatus::Exited(0));
    h.expect("");
    assert_eq!(h.state("job:0"), "SCHEDULED");
    assert_eq!(h.last_run("job:0").as_deref(), Some("exit status 0 in 7s"));
    assert!(
        h.logged("job:0: run ended after 7s: exit status 0 (expected); SCHEDULED, next run at 2026-12-07T08:35:00Z")
    );
    // The next fire time is a wall-clock time, not 5 minutes after this run's end.
    assert_eq!(h.sleeps_for(), Some(secs(5 * 60 - 7)));
}

#[test]
fn a_short_run_that_fails_is_a_finished_run_not_a_failed_start() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(ms(100));
    h.exited(10, ExitStatus::Exited(3));
    h.expect("");
    assert_eq!(h.state("job:0"), "SCHEDULED", "no BACKOFF and no retry for a scheduled run");
    assert_eq!(h.last_run("job:0").as_deref(), Some("exit status 3 in 100ms"));
    assert!(h.logged("(unexpected); SCHEDULED"));
}

#[test]
fn a_run_that_cannot_start_waits_for_the_next_fire_time() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawn_failed("job:0", "exec /nope: No such file or directory (os error 2)");
    assert_eq!(h.state("job:0"), "SCHEDULED");
    assert_eq!(
        h.last_run("job:0").as_deref(),
        Some("cannot start: exec /nope: No such file or directory (os error 2) in 0ms")
    );
    h.advance(secs(5 * 60));
    h.expect("spawn job:0");
}

#[test]
fn fire_times_do_not_drift_over_many_runs() {
    let mut h = Harness::new(vec![job(|_| {})]);
    for (run, pid) in (0..50).zip(100..) {
        h.step();
        h.expect("spawn job:0");
        h.spawned("job:0", pid);
        // Runs of uneven lengths, and a loop that wakes late.
        h.advance(ms(1_000 + 37 * run));
        h.exited(pid, ExitStatus::Exited(0));
    }
    // 50 runs from 08:30: the 51st fire time is 08:30 + 50 * 5 minutes = 12:40, to the second.
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T12:40:00Z"));
    let until = timetable::system_time(1_796_632_140 + 60 + 50 * 300).duration_since(h.now.wall).unwrap();
    assert_eq!(h.sleeps_for(), Some(until));
}

#[test]
fn a_fire_time_during_a_run_is_skipped_by_default() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(secs(5 * 60));
    h.expect("");
    assert!(h.logged("job:0: fire time 2026-12-07T08:35:00Z: skipped, the previous run is still going (RUNNING)"));
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:40:00Z"));
}

#[test]
fn overlap_kill_stops_the_old_run_then_starts_the_new_one() {
    let mut h = Harness::new(vec![job(|schedule| schedule.overlap = Overlap::Kill)]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(secs(5 * 60));
    h.expect("kill -10 TERM");
    h.exited(10, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("spawn job:0");
    assert_eq!(h.last_run("job:0").as_deref(), Some("stopped for the next run (overlap: kill); signal SIGTERM in 5m"));
}

#[test]
fn a_run_past_its_timeout_is_stopped_with_the_stop_sequence_and_recorded() {
    let mut h = Harness::new(vec![job(|schedule| schedule.timeout = Some(secs(90)))]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(secs(90));
    h.expect("kill -10 TERM");
    assert!(h.logged("job:0: run timed out after 1m30s; stopping it"));
    // It ignores SIGTERM: SIGKILL after stoptime.
    h.step();
    h.expect("kill -10 KILL");
    h.exited(10, ExitStatus::Signaled { signal: 9, core_dumped: false });
    h.expect("");
    assert_eq!(h.state("job:0"), "SCHEDULED");
    assert_eq!(h.last_run("job:0").as_deref(), Some("timed out after 1m30s; signal SIGKILL in 1m40s"));
}

#[test]
fn ctl_stop_turns_the_schedule_off_persistently_and_ctl_start_runs_it_now() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.request(1, Request::Stop { targets: vec!["job".into()], wait: false, timeout: None });
    h.expect("reply 1 job:0:ok:stopping");
    assert_eq!(h.state("job:0"), "STOPPED");
    assert_eq!(h.flags, ["job:0 stopped on"]);
    assert_eq!(h.next_run("job:0"), None);
    assert_eq!(h.sleeps_for(), None, "nothing to wake for");
    h.request(2, Request::Start { targets: vec!["job".into()], wait: true });
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(ms(300));
    h.exited(10, ExitStatus::Exited(0));
    h.expect("reply 2 job:0:ok:run ended: exit status 0; SCHEDULED");
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:30:00Z"));
}

#[test]
fn a_persistent_stop_flag_keeps_the_schedule_off_at_start_up() {
    let mut h = Harness::with_flags(vec![job(|_| {})], &[("job:0", Flag::Stopped)]);
    h.expect("");
    assert_eq!(h.state("job:0"), "STOPPED");
    assert_eq!(h.sleeps_for(), None);
}

#[test]
fn a_program_without_autostart_has_its_schedule_off_until_started() {
    let mut spec = job(|_| {});
    spec.autostart = false;
    let mut h = Harness::new(vec![spec]);
    assert_eq!(h.state("job:0"), "STOPPED");
    assert_eq!(h.sleeps_for(), None);
    assert_eq!(
        h.row("job:0").detail.as_deref(),
        Some("schedule off; `ctl start` runs it now and turns the schedule on")
    );
    h.request(1, Request::Start { targets: vec!["job".into()], wait: false });
    h.expect("spawn job:0\nreply 1 job:0:ok:starting");
}

#[test]
fn a_wall_clock_step_recomputes_the_fire_times_and_missed_ones_are_not_caught_up() {
    let mut h = Harness::new(vec![job(|_| {})]);
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:30:00Z"));
    // NTP steps the clock 2 hours forward: the fire times in between are not run.
    h.step_wall_clock(true, secs(2 * 3600));
    h.expect("");
    assert!(h.logged("the wall clock moved forward by 2h; fire times of 1 scheduled instances computed again"));
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T10:30:00Z"));
    assert_eq!(h.sleeps_for(), Some(secs(60)));
    // And back by a day: the times come again.
    h.step_wall_clock(false, secs(24 * 3600));
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-06T10:30:00Z"));
    // A second of drift is not a step.
    h.step_wall_clock(true, ms(900));
    assert!(!h.logged("moved forward by 900ms"));
}

#[test]
fn fire_times_come_from_the_calendar_not_from_intervals() {
    // Monday 08:29: `every workday offset 8h30m` fires in a minute, then on Tuesday.
    let spec = program("report", |p| p.schedule = Some(every(&["every workday offset 8h30m"])));
    let mut h = Harness::new(vec![spec]);
    assert_eq!(h.next_run("report:0").as_deref(), Some("2026-12-07T08:30:00Z"));
    h.advance(secs(60));
    h.expect("spawn report:0");
    assert_eq!(h.next_run("report:0").as_deref(), Some("2026-12-08T08:30:00Z"));
}

#[test]
fn entries_are_merged() {
    let spec = program("job", |p| p.schedule = Some(every(&["every 1h @ 45m", "every 10m @ 1m"])));
    let mut h = Harness::new(vec![spec]);
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:31:00Z"));
    h.advance(secs(120));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(ms(10));
    h.exited(10, ExitStatus::Exited(0));
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:41:00Z"));
}

#[test]
fn a_reload_that_changes_the_schedule_ends_the_run_and_waits_for_the_new_fire_time() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    let changed = program("job", |p| p.schedule = Some(every(&["every 1h"])));
    let config = Config { programs: vec![changed], ..Config::default() };
    h.input(Input::Reload { conn: None, result: Ok(config) });
    h.expect("kill -10 TERM");
    h.exited(10, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("");
    assert_eq!(h.state("job:0"), "SCHEDULED");
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T09:00:00Z"));
}

#[test]
fn a_reload_that_drops_the_schedule_makes_it_a_kept_running_program() {
    let mut h = Harness::new(vec![job(|_| {})]);
    let plain = program("job", |_| {});
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![plain], ..Config::default() }) });
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    // No fire time is left to wake for.
    h.advance(secs(5 * 60));
    assert_eq!(h.state("job:0"), "RUNNING");
    assert!(!h.logged("fire time"));
}

#[test]
fn shutdown_stops_a_run_and_leaves_the_schedule() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.input(Input::Shutdown { conn: None });
    h.expect("kill -10 TERM");
    h.exited(10, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("exit 0");
}

// ---- regressions from review ----

#[test]
fn a_small_step_back_of_the_wall_clock_does_not_run_a_fire_time_twice() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(secs(1));
    h.exited(10, ExitStatus::Exited(0));
    // NTP steps the clock back 3 s, to before 08:30:00, which has just run.
    h.step_wall_clock(false, secs(3));
    assert_eq!(h.next_run("job:0").as_deref(), Some("2026-12-07T08:35:00Z"));
    h.advance(secs(10));
    h.expect("");
}

#[test]
fn ctl_stop_during_a_run_records_it_and_turns_the_schedule_off() {
    let mut h = Harness::new(vec![job(|schedule| schedule.timeout = Some(secs(600)))]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.request(1, Request::Stop { targets: vec!["job".into()], wait: false, timeout: None });
    h.expect("kill -10 TERM\nreply 1 job:0:ok:stopping");
    h.exited(10, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("");
    assert_eq!(h.state("job:0"), "STOPPED");
    assert_eq!(h.next_run("job:0"), None);
    assert_eq!(h.last_run("job:0").as_deref(), Some("stopped; signal SIGTERM in 0ms"));
    assert_eq!(h.sleeps_for(), None, "neither the fire time nor the run's timeout wakes it");
}

#[test]
fn a_reload_that_drops_the_schedule_of_a_program_without_autostart_stops_it() {
    let mut h = Harness::new(vec![job(|_| {})]);
    let plain = program("job", |p| p.autostart = false);
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![plain], ..Config::default() }) });
    h.expect("");
    assert_eq!(h.state("job:0"), "STOPPED");
    assert_eq!(h.sleeps_for(), None);
}

#[test]
fn a_dependent_of_a_scheduled_program_starts_and_completed_means_its_last_run_succeeded() {
    use crate::spec::{Condition, Dependency};
    let needs = |condition| {
        program("web", move |p| {
            p.starttime = Duration::ZERO;
            p.depends_on = vec![Dependency { program: "job".into(), condition, restart: false }];
        })
    };
    let mut h = Harness::new(vec![job(|_| {}), needs(Condition::Ready)]);
    h.expect("spawn web:0");
    let mut h = Harness::new(vec![job(|_| {}), needs(Condition::Completed)]);
    h.expect("");
    assert_eq!(h.state("web:0"), "WAITING");
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(ms(200));
    h.exited(10, ExitStatus::Exited(0));
    h.expect("spawn web:0");
}

#[test]
fn a_scheduled_program_between_runs_cannot_be_paused_and_gets_no_flag() {
    let mut h = Harness::new(vec![job(|_| {})]);
    h.request(1, Request::Pause { targets: vec!["job".into()] });
    h.expect("reply 1 job:0:FAIL:cannot pause: SCHEDULED (no run in progress)");
    assert!(h.flags.is_empty());
}

#[test]
fn overlap_kill_while_a_timed_out_run_is_stopping_starts_the_next_run_once_it_is_down() {
    let mut h = Harness::new(vec![job(|schedule| {
        schedule.overlap = Overlap::Kill;
        schedule.timeout = Some(secs(299));
    })]);
    h.advance(secs(60));
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    h.advance(secs(299));
    h.expect("kill -10 TERM");
    h.advance(secs(1));
    h.expect("");
    assert!(h.logged("fire time 2026-12-07T08:35:00Z: a new run starts once the previous one is down"));
    h.exited(10, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("spawn job:0");
}

#[test]
fn a_reload_that_schedules_a_running_program_records_the_stopped_run_at_the_time_it_ended() {
    let mut h = Harness::new(vec![program("job", |_| {})]);
    h.expect("spawn job:0");
    h.spawned("job:0", 10);
    let scheduled = job(|_| {});
    h.input(Input::Reload { conn: None, result: Ok(Config { programs: vec![scheduled], ..Config::default() }) });
    h.expect("kill -10 TERM");
    h.exited(10, ExitStatus::Signaled { signal: 15, core_dumped: false });
    assert_eq!(h.state("job:0"), "SCHEDULED");
    let (started, took, _) = h.row("job:0").schedule.and_then(|schedule| schedule.last).expect("a record");
    assert_eq!(started, h.now.wall);
    assert_eq!(took, Duration::ZERO);
}
