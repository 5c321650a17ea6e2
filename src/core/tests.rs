//! Executable specs for the state machine, on a fake clock. Each test feeds inputs and reads the
//! actions back as text through one [`Harness`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::spec::{AutoRestart, Config, ProgramSpec, Signal};

fn program(name: &str, tweak: impl FnOnce(&mut ProgramSpec)) -> ProgramSpec {
    let mut spec = ProgramSpec::with_defaults(name);
    spec.argv = vec!["/bin/true".to_string()];
    tweak(&mut spec);
    spec
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Harness {
    supervisor: Supervisor,
    /// The fake clocks: both move together, unless a test steps the wall clock.
    now: Now,
    /// Instance name -> id of its last `Spawn` action.
    spawn_ids: HashMap<String, InstanceId>,
    /// Actions drained but not yet checked by `expect`.
    rendered: Vec<String>,
    log: Vec<String>,
    /// `SetFlag` actions, as `web:0 stopped on`.
    flags: Vec<String>,
    /// The last probe check asked for each instance: (id, seq).
    probes: HashMap<String, (InstanceId, u64)>,
    /// Instances that asked for ports, oldest first.
    allocations: Vec<InstanceId>,
    /// Every transition record, in order.
    transitions: Vec<Transition>,
    /// `sweep NAME PID`: the tree kills that end each stop.
    sweeps: Vec<String>,
}

impl Harness {
    fn new(programs: Vec<ProgramSpec>) -> Harness {
        Harness::with_flags(programs, &[])
    }

    fn with_flags(programs: Vec<ProgramSpec>, flags: &[(&str, Flag)]) -> Harness {
        // A fixed wall-clock time: 2026-12-07T08:29:00Z, a Monday.
        let now = Now { mono: Instant::now(), wall: std::time::UNIX_EPOCH + secs(1_796_632_140) };
        let config = Config { programs, ..Config::default() };
        let flags = flags.iter().map(|(name, flag)| (name.to_string(), *flag)).collect();
        let supervisor = Supervisor::with_flags(&config, now, 7, flags);
        Harness {
            supervisor,
            now,
            spawn_ids: HashMap::new(),
            rendered: Vec::new(),
            log: Vec::new(),
            flags: Vec::new(),
            probes: HashMap::new(),
            allocations: Vec::new(),
            transitions: Vec::new(),
            sweeps: Vec::new(),
        }
    }

    /// Actions since the last call, all but log lines, as text, one per line.
    fn actions(&mut self) -> String {
        self.drain();
        std::mem::take(&mut self.rendered).join("\n")
    }

    fn drain(&mut self) {
        let out = &mut self.rendered;
        while let Some(action) = self.supervisor.poll_action() {
            match action {
                Action::Spawn { id, name, .. } => {
                    out.push(format!("spawn {name}"));
                    self.spawn_ids.insert(name, id);
                }
                // The whole tree is the instance's group and what left it: shown as the group.
                Action::KillTree { pid, signal, .. } => out.push(format!("kill -{pid} {}", signal.name())),
                // Kept apart, like flags: every stop ends with one (specs in `transitions`).
                Action::SweepTree { pid, instance } => self.sweeps.push(format!("sweep {instance} {pid}")),
                Action::Kill { pid, signal, group } => {
                    out.push(format!("kill {}{pid} {}", if group { "-" } else { "" }, signal.name()))
                }
                Action::Reply { conn, reply } => out.push(format!("reply {conn} {}", render_reply(&reply))),
                Action::Log { message, .. } => self.log.push(message),
                Action::Mail { sink, id, .. } => out.push(format!("mail {sink} #{id}")),
                Action::CancelMail { id } => out.push(format!("cancel mail #{id}")),
                Action::RunHook { sink, event, .. } => out.push(format!("hook {sink} {}", event.instance)),
                Action::Transition(event) => {
                    self.transitions.push(event.clone());
                    for line in event.reason.lines() {
                        self.log.push(format!("{}: {line}", event.instance));
                    }
                }
                Action::Exit(code) => out.push(format!("exit {code}")),
                Action::RunProbe { id, seq, check, snooze } => {
                    let name = self.spawn_ids.iter().find(|(_, spawned)| **spawned == id).map(|(name, _)| name.clone());
                    let name = name.unwrap_or_default();
                    self.probes.insert(name.clone(), (id, seq));
                    let snooze = if snooze.is_some() { " (snooze file checked)" } else { "" };
                    out.push(match check {
                        ProbeCheck::PidFile { path, known } => {
                            let known = known.map_or("-".to_string(), |(pid, start)| format!("{pid}@{start}"));
                            format!("check {name} {} known={known}", path.display())
                        }
                        ProbeCheck::HttpGet { port, path } => format!("get {name} :{port}{path}{snooze}"),
                        ProbeCheck::HttpPost { port, path } => format!("post {name} :{port}{path}"),
                        ProbeCheck::Tcp { port } => format!("connect {name} :{port}{snooze}"),
                        ProbeCheck::Shell { launch } => format!("shell {name} {}{snooze}", launch.argv.join(" ")),
                    });
                }
                Action::CancelProbe { id, seq } => {
                    let name = self.spawn_ids.iter().find(|(_, spawned)| **spawned == id).map(|(name, _)| name.clone());
                    out.push(format!("cancel {} {seq}", name.unwrap_or_default()));
                }
                Action::AllocatePorts { id, count, exclude } => {
                    out.push(format!("allocate {count} excluding {exclude:?}"));
                    self.allocations.push(id);
                }
                Action::Snooze { path, on } => {
                    out.push(format!("snooze {} {}", path.display(), if on { "on" } else { "off" }))
                }
                Action::SetFlag { instance, flag, on } => {
                    self.flags.push(format!("{instance} {} {}", flag.as_str(), if on { "on" } else { "off" }))
                }
            }
        }
    }

    #[track_caller]
    fn expect(&mut self, expected: &str) {
        assert_eq!(self.actions(), expected.trim());
    }

    fn input(&mut self, input: Input) {
        self.supervisor.handle_input(self.now, input);
    }

    fn spawned(&mut self, name: &str, pid: Pid) {
        let id = self.spawn_ids[name];
        self.input(Input::Spawned { id, pid });
    }

    fn spawn_failed(&mut self, name: &str, error: &str) {
        let id = self.spawn_ids[name];
        self.input(Input::SpawnFailed { id, error: error.to_string(), transient: false });
    }

    fn exited(&mut self, pid: Pid, status: ExitStatus) {
        self.input(Input::Exited { pid, status });
    }

    fn request(&mut self, conn: ConnId, request: Request) {
        self.input(Input::Request { conn, request });
    }

    /// Moves the clock, then fires what is due, as the driver does after `poll` returns.
    fn advance(&mut self, by: Duration) {
        self.now = self.now.advanced(by);
        self.supervisor.handle_timeout(self.now);
    }

    /// Jumps from deadline to deadline (the driver's poll timeout) until one does something;
    /// stale entries wake the driver spuriously and do nothing.
    fn step(&mut self) {
        for _ in 0..100 {
            let next = self.supervisor.poll_timeout().expect("a deadline is armed");
            if next > self.now.mono {
                self.now = self.now.advanced(next - self.now.mono);
            }
            self.supervisor.handle_timeout(self.now);
            let n_log = self.log.len();
            self.drain();
            if !self.rendered.is_empty() || self.log.len() > n_log {
                return;
            }
        }
        panic!("100 deadlines fired and did nothing");
    }

    fn state(&self, name: &str) -> String {
        let rows = self.supervisor.status(self.now, &[name.to_string()]);
        rows.first().map(|row| row.state.to_string()).unwrap_or_default()
    }

    fn logged(&mut self, needle: &str) -> bool {
        self.drain();
        self.log.iter().any(|line| line.contains(needle))
    }
}

fn render_reply(reply: &Reply) -> String {
    match reply {
        Reply::Status { rows, .. } => {
            rows.iter().map(|row| format!("{}={}", row.name, row.state)).collect::<Vec<_>>().join(",")
        }
        Reply::Results(results) => results
            .iter()
            .map(|result| format!("{}:{}:{}", result.name, if result.ok { "ok" } else { "FAIL" }, result.message))
            .collect::<Vec<_>>()
            .join(","),
        Reply::Error(error) => format!("error {error}"),
        Reply::Done(message) => format!("done {message}"),
    }
}

fn targets(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

const KILLED: ExitStatus = ExitStatus::Signaled { signal: libc_sigkill(), core_dumped: false };

/// SIGKILL's number, without touching libc in the core's tests.
const fn libc_sigkill() -> i32 {
    9
}

#[test]
fn autostart_spawns_and_starttime_leads_to_running() {
    let mut h = Harness::new(vec![program("web", |p| p.starttime = secs(2))]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    assert_eq!(h.state("web:0"), "STARTING");
    h.advance(ms(1999));
    assert_eq!(h.state("web:0"), "STARTING");
    h.advance(ms(1));
    assert_eq!(h.state("web:0"), "RUNNING");
    assert!(h.logged("web:0: RUNNING (pid 100)"));
    assert_eq!(h.supervisor.poll_timeout(), None, "nothing is due once running");
}

#[test]
fn exit_before_starttime_backs_off_exponentially_then_goes_fatal() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.starttime = secs(1);
        p.startretries = 2;
    })]);
    h.expect("spawn web:0");
    let mut pid = 100;
    let mut delays = Vec::new();
    for _ in 0..2 {
        h.spawned("web:0", pid);
        h.exited(pid, ExitStatus::Exited(1));
        assert_eq!(h.state("web:0"), "BACKOFF");
        h.expect("");
        let before = h.now.mono;
        h.step();
        delays.push(h.now.mono - before);
        h.expect("spawn web:0");
        pid += 1;
    }
    // Base 1 s then 2 s, each shortened by at most the jitter.
    assert!(delays[0] <= secs(1) && delays[0] >= secs(1).mul_f64(1.0 - BACKOFF_JITTER), "{delays:?}");
    assert!(delays[1] <= secs(2) && delays[1] >= secs(2).mul_f64(1.0 - BACKOFF_JITTER), "{delays:?}");
    h.spawned("web:0", pid);
    h.exited(pid, ExitStatus::Exited(1));
    assert_eq!(h.state("web:0"), "FATAL");
    h.expect("");
    assert!(h.logged("3 failed starts in a row"));
}

#[test]
fn spawn_failure_is_fatal_with_the_reason() {
    let mut h = Harness::new(vec![program("web", |_| {})]);
    h.expect("spawn web:0");
    h.spawn_failed("web:0", "exec /nope: No such file or directory (os error 2)");
    assert_eq!(h.state("web:0"), "FATAL");
    let rows = h.supervisor.status(h.now, &[]);
    assert_eq!(rows[0].detail.as_deref(), Some("exec /nope: No such file or directory (os error 2)"));
}

fn running(h: &mut Harness, name: &str, pid: Pid) {
    h.spawned(name, pid);
    h.advance(secs(1));
    assert_eq!(h.state(name), "RUNNING");
}

#[test]
fn autorestart_unexpected_restarts_only_unexpected_exits() {
    let mut h = Harness::new(vec![program("web", |p| p.exitcodes = vec![0, 2])]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.advance(secs(60));
    h.exited(100, ExitStatus::Exited(3));
    h.expect("spawn web:0");
    running(&mut h, "web:0", 101);
    h.advance(secs(60));
    h.exited(101, ExitStatus::Exited(2));
    h.expect("");
    assert_eq!(h.state("web:0"), "EXITED");
    assert!(h.logged("exited with exit status 2 (expected); EXITED"));
}

#[test]
fn autorestart_always_and_never() {
    let mut h = Harness::new(vec![
        program("always", |p| p.autorestart = AutoRestart::Always),
        program("never", |p| p.autorestart = AutoRestart::Never),
    ]);
    h.expect("spawn always:0\nspawn never:0");
    running(&mut h, "always:0", 100);
    h.spawned("never:0", 200);
    h.advance(secs(30));
    h.exited(100, ExitStatus::Exited(0));
    h.expect("spawn always:0");
    h.exited(200, KILLED);
    h.expect("");
    assert_eq!(h.state("never:0"), "EXITED");
}

#[test]
fn restart_delay_then_crash_loop_backoff_and_reset_after_a_stable_run() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.autorestart = AutoRestart::Always;
        p.restart_delay = secs(3);
        p.stability_window = secs(10);
    })]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.advance(secs(20));
    // A crash after a stable run: only restart_delay.
    h.exited(100, ExitStatus::Exited(1));
    h.expect("");
    h.advance(ms(2999));
    h.expect("");
    h.advance(ms(1));
    h.expect("spawn web:0");
    // Two quick crashes in a row: restart_delay plus backoff.
    running(&mut h, "web:0", 101);
    h.exited(101, ExitStatus::Exited(1));
    h.advance(secs(3));
    h.expect("spawn web:0");
    running(&mut h, "web:0", 102);
    h.exited(102, ExitStatus::Exited(1));
    h.advance(secs(3));
    h.expect("");
    h.step();
    h.expect("spawn web:0");
    assert!(h.logged("crash 2 in a row"));
    // A run past the window resets the count.
    running(&mut h, "web:0", 103);
    h.advance(secs(11));
    h.exited(103, ExitStatus::Exited(1));
    h.advance(secs(3));
    h.expect("spawn web:0");
}

#[test]
fn zero_restart_delay_respawns_in_the_same_step() {
    let mut h = Harness::new(vec![program("web", |p| p.autorestart = AutoRestart::Always)]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.advance(secs(30));
    h.exited(100, KILLED);
    h.expect("spawn web:0");
}

#[test]
fn stop_sends_stopsignal_then_sigkill_after_stoptime_and_waiters_answer() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.stopsignal = Signal(10);
        p.stoptime = secs(5);
    })]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.request(1, Request::Stop { targets: targets(&["web"]), wait: true, timeout: None });
    h.expect("kill -100 USR1");
    assert_eq!(h.state("web:0"), "STOPPING");
    h.advance(ms(4999));
    h.expect("");
    h.advance(ms(1));
    h.expect("kill -100 KILL");
    h.exited(100, KILLED);
    h.expect("reply 1 web:0:ok:stopped");
    assert_eq!(h.state("web:0"), "STOPPED");
    // A stopped instance is not restarted.
    h.advance(secs(100));
    h.expect("");
}

#[test]
fn start_waits_for_running_or_fatal() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.autostart = false;
        p.startretries = 0;
    })]);
    h.expect("");
    assert_eq!(h.state("web:0"), "STOPPED");
    h.request(1, Request::Start { targets: targets(&["web:0"]), wait: true });
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.expect("");
    h.advance(secs(1));
    h.expect("reply 1 web:0:ok:started (pid 100)");
    h.request(2, Request::Stop { targets: targets(&["all"]), wait: false, timeout: None });
    h.expect("kill -100 TERM\nreply 2 web:0:ok:stopping");
    h.exited(100, KILLED);
    h.request(3, Request::Start { targets: targets(&["web"]), wait: true });
    h.expect("spawn web:0");
    h.spawned("web:0", 101);
    h.exited(101, ExitStatus::Exited(1));
    h.expect("reply 3 web:0:FAIL:FATAL: exited with exit status 1 before starttime (1s), 1 failed starts in a row");
}

#[test]
fn unknown_targets_fail_and_name_the_problem() {
    let mut h = Harness::new(vec![program("web", |p| p.numprocs = 2)]);
    h.actions();
    h.request(1, Request::Start { targets: targets(&["nope", "web:7"]), wait: true });
    h.expect("reply 1 nope:FAIL:no such program `nope`,web:7:FAIL:no such instance `web:7` (web has 2 instances, web:0 to web:1)");
}

#[test]
fn restart_stops_then_spawns_again() {
    let mut h = Harness::new(vec![program("web", |_| {})]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.request(1, Request::Restart { targets: targets(&["web"]), wait: true });
    h.expect("kill -100 TERM");
    h.exited(100, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("spawn web:0");
    h.spawned("web:0", 101);
    h.advance(secs(1));
    h.expect("reply 1 web:0:ok:started (pid 101)");
}

#[test]
fn a_stop_ends_by_sweeping_the_tree_before_anything_new_is_spawned() {
    let mut h = Harness::new(vec![program("web", |_| {})]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.request(1, Request::Restart { targets: targets(&["web"]), wait: true });
    h.expect("kill -100 TERM");
    assert!(h.sweeps.is_empty(), "no sweep while the main process lives: {:?}", h.sweeps);
    h.input(Input::Exited { pid: 100, status: ExitStatus::Signaled { signal: 15, core_dumped: false } });
    // Read the queue itself: the sweep must come before the new run's spawn, which would
    // share the instance's cgroup and marker.
    let mut kinds = Vec::new();
    while let Some(action) = h.supervisor.poll_action() {
        match action {
            Action::SweepTree { pid, instance } => kinds.push(format!("sweep {instance} {pid}")),
            Action::Spawn { name, .. } => kinds.push(format!("spawn {name}")),
            _ => {}
        }
    }
    assert_eq!(kinds, ["sweep web:0 100", "spawn web:0"]);
}

#[test]
fn a_program_that_exits_by_itself_is_not_swept() {
    let mut h = Harness::new(vec![program("web", |p| p.autorestart = AutoRestart::Always)]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 100);
    h.exited(100, ExitStatus::Exited(1));
    h.actions();
    assert!(h.sweeps.is_empty(), "an exit on its own leaves the descendants alone: {:?}", h.sweeps);
    // A stop that escalates to SIGKILL ends with a sweep too.
    h.spawned("web:0", 101);
    h.advance(secs(2));
    h.request(2, Request::Stop { targets: targets(&["web"]), wait: false, timeout: None });
    h.expect("kill -101 TERM\nreply 2 web:0:ok:stopping");
    h.advance(secs(11));
    h.expect("kill -101 KILL");
    h.exited(101, KILLED);
    h.actions();
    assert_eq!(h.sweeps, ["sweep web:0 101"]);
}

#[test]
fn orphans_are_reaped_quietly() {
    let mut h = Harness::new(vec![program("web", |_| {})]);
    h.expect("spawn web:0");
    h.exited(4242, ExitStatus::Exited(0));
    h.expect("");
    assert!(h.logged("reaped pid 4242"));
}

fn reload(h: &mut Harness, programs: Vec<ProgramSpec>) {
    let config = Config { programs, ..Config::default() };
    h.input(Input::Reload { conn: Some(9), result: Ok(config) });
}

#[test]
fn reload_applies_only_the_difference() {
    let mut h = Harness::new(vec![
        program("same", |_| {}),
        program("changed", |_| {}),
        program("gone", |_| {}),
        program("grow", |_| {}),
        program("shrink", |p| p.numprocs = 3),
    ]);
    h.expect(
        "spawn same:0\nspawn changed:0\nspawn gone:0\nspawn grow:0\nspawn shrink:0\nspawn shrink:1\nspawn shrink:2",
    );
    for (pid, name) in [
        (1, "changed:0"),
        (2, "gone:0"),
        (3, "grow:0"),
        (4, "same:0"),
        (5, "shrink:0"),
        (6, "shrink:1"),
        (7, "shrink:2"),
    ] {
        h.spawned(name, pid);
    }
    h.advance(secs(1));
    reload(
        &mut h,
        vec![
            program("same", |_| {}),
            program("changed", |p| p.argv = vec!["/bin/false".to_string()]),
            program("grow", |p| p.numprocs = 2),
            program("shrink", |p| p.numprocs = 1),
            program("new", |_| {}),
        ],
    );
    h.expect(
        "kill -2 TERM\nkill -1 TERM\nspawn grow:1\nkill -6 TERM\nkill -7 TERM\nspawn new:0\nreply 9 done reloaded: added new; changed changed; resized grow (1 -> 2), shrink (3 -> 1); removed gone",
    );
    assert_eq!(h.supervisor.instance_of_pid(4), Some("same:0"));
    assert_eq!(h.supervisor.instance_of_pid(5), Some("shrink:0"));
    assert_eq!(h.supervisor.instance_of_pid(3), Some("grow:0"));
    h.exited(1, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("spawn changed:0");
    h.exited(2, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.exited(6, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.exited(7, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("");
    let names: Vec<String> = h.supervisor.status(h.now, &[]).into_iter().map(|row| row.name).collect();
    assert_eq!(names, ["changed:0", "grow:0", "grow:1", "new:0", "same:0", "shrink:0"]);
}

#[test]
fn a_failed_reload_changes_nothing() {
    let mut h = Harness::new(vec![program("web", |_| {})]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.input(Input::Reload {
        conn: Some(3),
        result: Err("sv.yaml:2:3: programs.web.numprocs: must be at least 1".to_string()),
    });
    h.expect("reply 3 error reload failed, nothing changed:\nsv.yaml:2:3: programs.web.numprocs: must be at least 1");
    assert_eq!(h.supervisor.instance_of_pid(100), Some("web:0"));
}

#[test]
fn shutdown_stops_everything_then_exits_and_a_second_request_kills() {
    let mut h = Harness::new(vec![program("a", |_| {}), program("b", |p| p.stoptime = secs(30))]);
    h.expect("spawn a:0\nspawn b:0");
    running(&mut h, "a:0", 1);
    h.spawned("b:0", 2);
    h.input(Input::Shutdown { conn: Some(5) });
    h.expect("kill -1 TERM\nkill -2 TERM");
    h.exited(1, ExitStatus::Exited(0));
    h.expect("");
    h.input(Input::Shutdown { conn: None });
    h.expect("kill -2 KILL");
    h.exited(2, KILLED);
    h.expect("reply 5 done shut down\nexit 0");
}

#[test]
fn a_critical_program_going_fatal_shuts_down_with_its_exit_code() {
    let mut h = Harness::new(vec![
        program("db", |p| {
            p.critical = true;
            p.startretries = 0;
        }),
        program("web", |_| {}),
    ]);
    h.expect("spawn db:0\nspawn web:0");
    running(&mut h, "web:0", 2);
    h.spawned("db:0", 1);
    h.exited(1, ExitStatus::Exited(42));
    h.expect("kill -2 TERM");
    h.exited(2, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("exit 42");
}

#[test]
fn a_critical_program_exiting_under_never_shuts_down_with_128_plus_signal() {
    let mut h = Harness::new(vec![program("job", |p| {
        p.critical = true;
        p.autorestart = AutoRestart::Never;
        p.starttime = Duration::ZERO;
    })]);
    h.expect("spawn job:0");
    h.spawned("job:0", 1);
    h.exited(1, KILLED);
    h.expect("exit 137");
}

#[test]
fn stale_timers_do_nothing_and_idle_instances_arm_none() {
    let mut h = Harness::new(vec![program("web", |p| p.numprocs = 100)]);
    h.actions();
    for index in 0..100 {
        h.spawned(&format!("web:{index}"), 1000 + index);
    }
    h.advance(secs(1));
    assert_eq!(h.supervisor.n_timers(), 0, "running instances arm no timers");
    assert_eq!(h.supervisor.poll_timeout(), None);
    // A stop arms the kill deadline; an exit before it makes the entry stale, and it is pruned
    // at once, so an idle daemon does not wake for it.
    h.request(1, Request::Stop { targets: targets(&["web:0"]), wait: false, timeout: None });
    assert_eq!(h.supervisor.n_timers(), 1);
    h.exited(1000, ExitStatus::Exited(0));
    h.actions();
    assert_eq!(h.supervisor.n_timers(), 0, "the stale kill deadline is pruned");
    assert_eq!(h.supervisor.poll_timeout(), None);
    assert_eq!(h.state("web:0"), "STOPPED");
}

#[test]
fn requests_during_shutdown_are_refused_but_status_answers() {
    let mut h = Harness::new(vec![program("web", |_| {})]);
    h.expect("spawn web:0");
    h.spawned("web:0", 1);
    h.input(Input::Shutdown { conn: None });
    h.actions();
    h.request(2, Request::Start { targets: targets(&["web"]), wait: true });
    h.expect("reply 2 error sv-lite is shutting down");
    h.request(3, Request::Status { targets: vec![] });
    h.expect("reply 3 web:0=STOPPING");
}

#[test]
fn timers_pop_due_keys_in_order_once() {
    use super::timers::{TimerKey, Timers};
    let t0 = Instant::now();
    let mut timers = Timers::default();
    let a = TimerKey::Instance(InstanceId(1));
    let b = TimerKey::Instance(InstanceId(2));
    timers.arm(t0 + secs(2), b);
    timers.arm(t0 + secs(1), a);
    timers.arm(t0 + secs(1), a);
    assert_eq!(timers.next_deadline(), Some(t0 + secs(1)));
    assert_eq!(timers.pop_due(t0), vec![]);
    assert_eq!(timers.pop_due(t0 + secs(1)), vec![a]);
    assert_eq!(timers.pop_due(t0 + secs(5)), vec![b]);
    assert_eq!(timers.len(), 0);
}

fn pid_daemon(tweak: impl FnOnce(&mut ProgramSpec)) -> ProgramSpec {
    program("svc", |p| {
        p.pid_file = Some("/run/%(name)s-%(instance_number)s.pid".to_string());
        p.monitor_interval = secs(5);
        p.autorestart = AutoRestart::Always;
        p.restart_delay = secs(2);
        tweak(p);
    })
}

fn alive(pid: Pid, start_time: u64) -> PidObservation {
    PidObservation::Alive { pid, start_time }
}

fn gone(reason: &str) -> PidObservation {
    PidObservation::Gone { reason: reason.to_string() }
}

impl Harness {
    fn pid_file(&mut self, name: &str, observation: PidObservation) {
        let id = self.spawn_ids[name];
        let seq = self.probes.get(name).map_or(0, |(_, seq)| *seq);
        self.input(Input::ProbeResult { id, seq, result: ProbeResult::PidFile(observation) });
    }

    fn service(&self, program: &str) -> &'static str {
        self.supervisor.service_state(program).map_or("-", ServiceState::as_str)
    }
}

#[test]
fn a_daemon_is_watched_through_its_pid_file_and_restarted_after_restart_delay() {
    let mut h = Harness::new(vec![pid_daemon(|_| {})]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    assert_eq!(h.service("svc"), "STARTING");
    // The command forks the daemon and exits 0: read the pid file now.
    h.exited(10, ExitStatus::Exited(0));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", alive(20, 777));
    assert_eq!(h.state("svc:0"), "RUNNING");
    assert_eq!(h.service("svc"), "STARTING", "Tron: STARTING until the first monitor check");
    h.advance(secs(5));
    h.expect("check svc:0 /run/svc-0.pid known=20@777");
    h.pid_file("svc:0", alive(20, 777));
    assert_eq!(h.service("svc"), "UP");
    // SIGCHLD tells us at once (we are its subreaper); leftovers are killed before the restart.
    h.advance(secs(30));
    h.actions();
    h.exited(20, KILLED);
    h.expect("kill -20 KILL\nkill -10 KILL");
    assert_eq!(h.state("svc:0"), "BACKOFF");
    assert_eq!(h.service("svc"), "FAILED");
    h.advance(ms(1999));
    h.expect("");
    h.advance(ms(1));
    h.expect("spawn svc:0");
}

#[test]
fn a_daemon_found_gone_by_the_monitor_is_restarted_and_a_new_pid_is_followed() {
    let mut h = Harness::new(vec![pid_daemon(|p| p.starttime = Duration::ZERO)]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.expect("");
    // Even with starttime 0 the pid file gets PID_FILE_GRACE to appear.
    h.advance(ms(999));
    h.expect("");
    h.advance(ms(1));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", alive(10, 1));
    assert_eq!(h.state("svc:0"), "RUNNING");
    h.advance(secs(5));
    h.expect("check svc:0 /run/svc-0.pid known=10@1");
    // nginx's binary upgrade: the file now names a new master, which is ours.
    h.pid_file("svc:0", alive(30, 2));
    assert_eq!(h.supervisor.instance_of_pid(30), Some("svc:0"));
    assert!(h.logged("pid file now names pid 30 (was 10); following it"));
    h.advance(secs(5));
    h.expect("check svc:0 /run/svc-0.pid known=30@2");
    h.pid_file("svc:0", gone("pid 30 from /run/svc-0.pid now belongs to another process (pid reused)"));
    h.expect("kill -30 KILL\nkill -10 KILL");
    assert!(h.logged(
        "daemon is gone (pid 30 from /run/svc-0.pid now belongs to another process (pid reused)) (unexpected)"
    ));
    h.advance(secs(2));
    h.expect("spawn svc:0");
}

#[test]
fn a_pid_file_that_never_appears_within_starttime_is_a_failed_start() {
    let mut h = Harness::new(vec![pid_daemon(|p| {
        p.startretries = 0;
        p.starttime = secs(3);
    })]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.exited(10, ExitStatus::Exited(0));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    assert_eq!(h.state("svc:0"), "STARTING", "still within starttime");
    h.advance(secs(3));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    h.expect("kill -10 KILL");
    assert_eq!(h.state("svc:0"), "FATAL");
    let rows = h.supervisor.status(h.now, &[]);
    assert!(rows[0]
        .detail
        .as_deref()
        .unwrap_or("")
        .starts_with("no live pid within starttime: pid file /run/svc-0.pid"));
}

#[test]
fn a_launcher_failing_is_a_failed_start_and_stop_reaches_the_daemon() {
    let mut h = Harness::new(vec![pid_daemon(|p| p.stoptime = secs(4))]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.exited(10, ExitStatus::Exited(1));
    h.expect("kill -10 KILL");
    assert_eq!(h.state("svc:0"), "BACKOFF");
    h.step();
    h.expect("spawn svc:0");
    h.spawned("svc:0", 11);
    h.exited(11, ExitStatus::Exited(0));
    h.pid_file("svc:0", alive(21, 5));
    h.actions();
    h.request(1, Request::Stop { targets: targets(&["svc"]), wait: true, timeout: None });
    h.expect("kill -21 TERM");
    h.exited(21, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("kill -21 KILL\nkill -11 KILL\nreply 1 svc:0:ok:stopped");
    assert_eq!(h.service("svc"), "DOWN");
}

#[test]
fn service_states_up_degraded_failed_down() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.numprocs = 2;
        p.autorestart = AutoRestart::Always;
        p.restart_delay = secs(5);
    })]);
    h.actions();
    assert_eq!(h.service("web"), "STARTING");
    h.spawned("web:0", 1);
    h.spawned("web:1", 2);
    h.advance(secs(1));
    assert_eq!(h.service("web"), "UP");
    h.exited(1, KILLED);
    assert_eq!(h.service("web"), "DEGRADED");
    h.exited(2, KILLED);
    assert_eq!(h.service("web"), "FAILED");
    h.request(1, Request::Stop { targets: targets(&["web"]), wait: false, timeout: None });
    assert_eq!(h.service("web"), "DOWN");
    let rows = h.supervisor.status(h.now, &[]);
    assert_eq!(rows[0].service, Some(ServiceState::Down));
}

#[test]
fn stop_flags_persist_hold_instances_down_and_start_clears_them() {
    let mut h = Harness::with_flags(vec![program("web", |p| p.numprocs = 2)], &[("web:1", Flag::Stopped)]);
    h.expect("spawn web:0");
    assert!(h.logged("web:1: held down by a stop flag; `sv-lite ctl start web:1` releases it"));
    let rows = h.supervisor.status(h.now, &[]);
    assert_eq!(rows[1].held, Some(Flag::Stopped));
    h.spawned("web:0", 1);
    h.request(1, Request::Stop { targets: targets(&["web:0"]), wait: false, timeout: None });
    h.actions();
    assert_eq!(h.flags, ["web:0 stopped on"]);
    // A reload does not start held instances, even a changed program.
    reload(
        &mut h,
        vec![program("web", |p| {
            p.numprocs = 2;
            p.argv = vec!["/bin/false".to_string()];
        })],
    );
    h.expect("reply 9 done reloaded: changed web");
    h.exited(1, KILLED);
    h.expect("");
    h.request(2, Request::Start { targets: targets(&["web"]), wait: false });
    h.expect("spawn web:0\nspawn web:1\nreply 2 web:0:ok:starting,web:1:ok:starting");
    assert_eq!(h.flags, ["web:0 stopped on", "web:0 stopped off", "web:1 stopped off"]);
}

#[test]
fn zap_fails_when_the_process_outlives_the_timeout() {
    let mut h = Harness::new(vec![program("web", |p| p.stoptime = secs(30))]);
    h.expect("spawn web:0");
    running(&mut h, "web:0", 1);
    h.request(1, Request::Stop { targets: targets(&["web"]), wait: true, timeout: Some(secs(2)) });
    h.expect("kill -1 TERM");
    h.advance(secs(2));
    h.expect("reply 1 web:0:FAIL:timed out; still STOPPING");
}

#[test]
fn an_exit_seen_after_starttime_passed_counts_as_a_started_run() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.starttime = secs(2);
        p.startretries = 0;
    })]);
    h.expect("spawn web:0");
    h.spawned("web:0", 1);
    // The daemon was busy: the exit is handled before the starttime deadline it passed.
    h.now = h.now.advanced(secs(3));
    h.exited(1, ExitStatus::Exited(0));
    h.expect("");
    assert_eq!(h.state("web:0"), "EXITED", "an expected exit of a started run, not a failed start");
}

#[test]
fn running_out_of_descriptors_at_spawn_is_retried_not_fatal() {
    let mut h = Harness::new(vec![program("web", |p| p.startretries = 1)]);
    h.expect("spawn web:0");
    let id = h.spawn_ids["web:0"];
    h.input(Input::SpawnFailed {
        id,
        error: "exec sleep: Too many open files (os error 24)".to_string(),
        transient: true,
    });
    assert_eq!(h.state("web:0"), "BACKOFF");
    h.step();
    h.expect("spawn web:0");
    h.input(Input::SpawnFailed {
        id,
        error: "exec sleep: Too many open files (os error 24)".to_string(),
        transient: true,
    });
    assert_eq!(h.state("web:0"), "FATAL", "still bounded by startretries");
}

// Issue 9, item 4 ("Readiness cannot be skipped"): pause and resume are transitions of the state
// table, and an instance paused before it was ready becomes RUNNING only through its readiness
// step (the starttime deadline, or the pid file naming a live daemon) after it is resumed.

#[test]
fn a_pause_while_starting_holds_readiness_and_resume_starts_the_window_over() {
    let mut h = Harness::new(vec![program("web", |p| p.starttime = secs(2))]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.advance(secs(1));
    h.request(1, Request::Pause { targets: targets(&["web"]) });
    h.expect("kill -100 STOP\nreply 1 web:0:ok:paused");
    assert_eq!(h.state("web:0"), "PAUSED");
    // The starttime deadline passes while it is stopped: a stopped process proves nothing.
    h.advance(secs(10));
    assert_eq!(h.state("web:0"), "PAUSED");
    assert!(!h.logged("RUNNING"));
    h.request(2, Request::Resume { targets: targets(&["web"]) });
    assert_eq!(h.state("web:0"), "STARTING", "resumed before it was ready: not RUNNING yet");
    h.expect("kill -100 CONT\nreply 2 web:0:ok:resumed; STARTING until ready");
    // The full starttime again, counted from the resume.
    h.advance(ms(1999));
    assert_eq!(h.state("web:0"), "STARTING");
    h.advance(ms(1));
    assert_eq!(h.state("web:0"), "RUNNING");
    assert!(h.logged("web:0: RUNNING (pid 100)"));
}

#[test]
fn an_exit_while_paused_before_readiness_is_a_failed_start() {
    let mut h = Harness::new(vec![program("web", |p| {
        p.starttime = secs(2);
        p.autorestart = AutoRestart::Always;
    })]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.request(1, Request::Pause { targets: targets(&["web"]) });
    h.expect("kill -100 STOP\nreply 1 web:0:ok:paused");
    h.advance(secs(10));
    h.exited(100, KILLED);
    assert_eq!(h.state("web:0"), "BACKOFF");
    assert!(h.logged("web:0: exited with signal SIGKILL before starttime; BACKOFF, retry 1 of 3"), "{:?}", h.log);
}

#[test]
fn a_pid_file_program_paused_while_its_launcher_runs_is_running_only_with_the_daemon_pid() {
    let mut h = Harness::new(vec![pid_daemon(|p| p.starttime = secs(3))]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.request(1, Request::Pause { targets: targets(&["svc"]) });
    h.expect("kill -10 STOP\nreply 1 svc:0:ok:paused");
    h.advance(secs(10));
    h.request(2, Request::Resume { targets: targets(&["svc"]) });
    assert_eq!(h.state("svc:0"), "STARTING");
    h.expect("kill -10 CONT\nreply 2 svc:0:ok:resumed; STARTING until ready");
    // The launcher daemonizes and exits 0: that is its job, not the daemon exiting.
    h.exited(10, ExitStatus::Exited(0));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", alive(20, 7));
    assert_eq!(h.state("svc:0"), "RUNNING");
    assert_eq!(h.supervisor.status(h.now, &[])[0].pid, Some(20));
    assert!(h.logged("svc:0: RUNNING (pid 20)"));
}

#[test]
fn a_pause_while_waiting_for_the_pid_file_pauses_the_daemon_it_names_and_resume_needs_readiness() {
    let mut h = Harness::new(vec![pid_daemon(|p| p.starttime = secs(3))]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.exited(10, ExitStatus::Exited(0));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    // No daemon known yet: stop what is left in the launcher's group, and look for the daemon.
    h.request(1, Request::Pause { targets: targets(&["svc"]) });
    h.expect("kill -10 STOP\ncheck svc:0 /run/svc-0.pid known=-\nreply 1 svc:0:ok:paused");
    assert_eq!(h.state("svc:0"), "PAUSED");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    // Past the starting window: still paused, not a failed start; the pid file is watched.
    h.advance(secs(5));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    assert_eq!(h.state("svc:0"), "PAUSED");
    // The pid file names the daemon (it forked into a session of its own): pause it too.
    h.pid_file("svc:0", alive(20, 7));
    h.expect("kill -20 STOP");
    assert_eq!(h.state("svc:0"), "PAUSED");
    assert_eq!(h.supervisor.instance_of_pid(20), Some("svc:0"));
    h.advance(secs(60));
    h.expect("");
    assert_eq!(h.state("svc:0"), "PAUSED");
    h.request(2, Request::Resume { targets: targets(&["svc"]) });
    assert_eq!(h.state("svc:0"), "STARTING");
    h.expect("kill -20 CONT\nkill -10 CONT\nreply 2 svc:0:ok:resumed; STARTING until ready");
    // RUNNING only when the pid file, read after the new window, names the live daemon.
    h.advance(ms(2999));
    h.expect("");
    h.advance(ms(1));
    h.expect("check svc:0 /run/svc-0.pid known=20@7");
    h.pid_file("svc:0", alive(20, 7));
    assert_eq!(h.state("svc:0"), "RUNNING");
    assert_eq!(h.supervisor.status(h.now, &[])[0].pid, Some(20));
    assert!(h.logged("svc:0: RUNNING (pid 20)"));
}

#[test]
fn a_pause_while_waiting_for_the_pid_file_then_resume_waits_for_the_pid_file() {
    let mut h = Harness::new(vec![pid_daemon(|p| {
        p.starttime = secs(3);
        p.startretries = 0;
    })]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.exited(10, ExitStatus::Exited(0));
    h.actions();
    h.request(1, Request::Pause { targets: targets(&["svc"]) });
    h.expect("kill -10 STOP\ncheck svc:0 /run/svc-0.pid known=-\nreply 1 svc:0:ok:paused");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    h.advance(secs(2));
    h.request(2, Request::Resume { targets: targets(&["svc"]) });
    h.expect("kill -10 CONT\ncheck svc:0 /run/svc-0.pid known=-\nreply 2 svc:0:ok:resumed; STARTING until ready");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    assert_eq!(h.state("svc:0"), "STARTING", "a new window from the resume");
    h.advance(ms(2999));
    h.expect("");
    h.advance(ms(1));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", alive(20, 7));
    assert_eq!(h.state("svc:0"), "RUNNING");
    assert_eq!(h.supervisor.status(h.now, &[])[0].pid, Some(20));
}

#[test]
fn a_pause_flag_at_start_pauses_before_readiness_and_resume_goes_through_starttime() {
    let mut h = Harness::with_flags(vec![program("web", |p| p.starttime = secs(2))], &[("web:0", Flag::Paused)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 1);
    h.expect("kill -1 STOP");
    assert_eq!(h.state("web:0"), "PAUSED");
    h.advance(secs(10));
    h.expect("");
    assert_eq!(h.state("web:0"), "PAUSED");
    assert!(!h.logged("RUNNING"));
    h.request(1, Request::Resume { targets: targets(&["web"]) });
    assert_eq!(h.state("web:0"), "STARTING");
    h.expect("kill -1 CONT\nreply 1 web:0:ok:resumed; STARTING until ready");
    assert_eq!(h.flags, ["web:0 paused off"]);
    h.advance(ms(1999));
    assert_eq!(h.state("web:0"), "STARTING");
    h.advance(ms(1));
    assert_eq!(h.state("web:0"), "RUNNING");
    assert!(h.logged("web:0: RUNNING (pid 1)"));
}

#[test]
fn a_pause_flag_at_start_of_a_pid_file_program_pauses_the_launcher_and_resume_needs_the_pid_file() {
    let mut h = Harness::with_flags(vec![pid_daemon(|_| {})], &[("svc:0", Flag::Paused)]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.expect("kill -10 STOP");
    assert_eq!(h.state("svc:0"), "PAUSED");
    h.advance(secs(10));
    h.expect("");
    h.request(1, Request::Resume { targets: targets(&["svc"]) });
    assert_eq!(h.state("svc:0"), "STARTING", "the launcher is not the daemon");
    h.expect("kill -10 CONT\nreply 1 svc:0:ok:resumed; STARTING until ready");
    h.exited(10, ExitStatus::Exited(0));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    h.pid_file("svc:0", alive(20, 7));
    assert_eq!(h.state("svc:0"), "RUNNING");
    assert_eq!(h.supervisor.status(h.now, &[])[0].pid, Some(20));
}

#[test]
fn a_launcher_that_daemonized_before_its_pause_landed_leaves_the_daemon_paused_and_stop_continues_both() {
    let mut h = Harness::with_flags(vec![pid_daemon(|p| p.stoptime = secs(4))], &[("svc:0", Flag::Paused)]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.expect("kill -10 STOP");
    // SIGSTOP came too late: the launcher had forked the daemon and exits 0.
    h.exited(10, ExitStatus::Exited(0));
    h.expect("check svc:0 /run/svc-0.pid known=-");
    assert_eq!(h.state("svc:0"), "PAUSED");
    h.pid_file("svc:0", alive(20, 7));
    h.expect("kill -20 STOP");
    assert_eq!(h.state("svc:0"), "PAUSED");
    h.request(1, Request::Stop { targets: targets(&["svc"]), wait: true, timeout: None });
    h.expect("kill -20 TERM\nkill -20 CONT\nkill -10 CONT");
    h.exited(20, ExitStatus::Signaled { signal: 15, core_dumped: false });
    h.expect("kill -20 KILL\nkill -10 KILL\nreply 1 svc:0:ok:stopped");
}

#[test]
fn stopping_while_paused_waiting_for_the_pid_file_continues_the_launcher_group() {
    let mut h = Harness::new(vec![pid_daemon(|_| {})]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.exited(10, ExitStatus::Exited(0));
    h.actions();
    h.request(1, Request::Pause { targets: targets(&["svc"]) });
    h.expect("kill -10 STOP\ncheck svc:0 /run/svc-0.pid known=-\nreply 1 svc:0:ok:paused");
    h.pid_file("svc:0", gone("pid file /run/svc-0.pid: No such file or directory (os error 2)"));
    h.request(2, Request::Stop { targets: targets(&["svc"]), wait: true, timeout: None });
    h.expect("kill -10 TERM\nkill -10 CONT\nreply 2 svc:0:ok:stopped");
    assert_eq!(h.state("svc:0"), "STOPPED");
    assert_eq!(h.supervisor.poll_timeout(), None, "no pid-file watch left");
}

#[test]
fn a_daemon_named_while_paused_that_exits_in_its_new_window_is_a_failed_start() {
    let mut h = Harness::new(vec![pid_daemon(|p| p.starttime = secs(3))]);
    h.expect("spawn svc:0");
    h.spawned("svc:0", 10);
    h.exited(10, ExitStatus::Exited(0));
    h.actions();
    h.request(1, Request::Pause { targets: targets(&["svc"]) });
    h.actions();
    h.pid_file("svc:0", alive(20, 7));
    h.expect("kill -20 STOP");
    h.request(2, Request::Resume { targets: targets(&["svc"]) });
    h.expect("kill -20 CONT\nkill -10 CONT\nreply 2 svc:0:ok:resumed; STARTING until ready");
    // Exit 0 of the daemon is not the launcher finishing its job.
    h.exited(20, ExitStatus::Exited(0));
    h.expect("kill -20 KILL\nkill -10 KILL");
    assert_eq!(h.state("svc:0"), "BACKOFF");
    assert!(h.logged("svc:0: exited with exit status 0 before starttime; BACKOFF"), "{:?}", h.log);
}

#[test]
fn a_program_paused_before_readiness_is_starting_not_up() {
    let mut h = Harness::new(vec![program("web", |p| p.starttime = secs(2))]);
    h.expect("spawn web:0");
    h.spawned("web:0", 100);
    h.request(1, Request::Pause { targets: targets(&["web"]) });
    h.actions();
    assert_eq!(h.service("web"), "STARTING");
    h.request(2, Request::Resume { targets: targets(&["web"]) });
    h.advance(secs(2));
    assert_eq!(h.service("web"), "UP");
    h.request(3, Request::Pause { targets: targets(&["web"]) });
    assert_eq!(h.service("web"), "UP", "paused after it was ready: still up");
}

mod health;
mod notify;
mod order;
mod readiness;
mod regressions;
mod schedule;
mod transitions;
