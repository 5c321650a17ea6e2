//! The supervision core: a deterministic state machine over programs and their instances.
//!
//! Feed it [`Input`]s and clock values with [`Supervisor::handle_input`] and
//! [`Supervisor::handle_timeout`]; after each call, drain [`Supervisor::poll_action`] and sleep
//! until [`Supervisor::poll_timeout`].
//!
//! Architecture invariant: the core never reads the clock, never touches a file, socket,
//! process or signal, and has no `unsafe`. `tests/core_is_pure.rs` checks this.

mod instance;
mod notifier;
mod order;
mod probe;
mod timers;
mod timetable;
pub mod types;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

pub use instance::{human_duration, BACKOFF_BASE, BACKOFF_CAP, BACKOFF_JITTER, INSTANCE_VAR, SNOOZE_FILE};
pub use notifier::{Mail, HOOK_QUEUE, MAIL_EVENTS, MAX_HOOKS};
pub use types::*;

use instance::{Ctx, Event, Instance, Outcome, Phase, State, StopStep};
use timers::{TimerKey, Timers};

use crate::spec::{Config, ProgramSpec};

/// The supervisor: every program and instance, and what is waiting on them.
#[derive(Debug)]
pub struct Supervisor {
    /// The clocks as of the latest call (wall-clock steps show as a change of `wall - mono`).
    clock: Now,
    programs: BTreeMap<String, Program>,
    instances: HashMap<InstanceId, Instance>,
    /// Every process the core knows, with the instance and the part of it that owns it.
    by_pid: HashMap<Pid, (InstanceId, PidOwner)>,
    /// Ports held by instances, and ports released less than `PORT_QUARANTINE` ago (with when
    /// they may be handed out again): never given to another instance meanwhile.
    ports_held: HashMap<u16, Option<Instant>>,
    /// The earliest time a quarantined port may be handed out again.
    ports_released_next: Option<Instant>,
    /// Shell checks given up (timed out or stopped) whose exit has not been seen yet.
    dying_checks: HashSet<Pid>,
    timers: Timers,
    actions: VecDeque<Action>,
    waiters: Vec<Waiter>,
    next_id: u64,
    rng: Rng,
    shutdown: Option<Shutdown>,
    /// Persistent flags by instance name (`web:0`), as loaded from the state directory and
    /// changed by requests since.
    flags: HashSet<(String, Flag)>,
    /// Instances whose forwarded output waits for a slow reader (driver's report).
    output_stalled: HashSet<InstanceId>,
    /// Instances in `Waiting`, re-checked after every change (`order::release_waiting`).
    waiting: HashSet<InstanceId>,
    /// Stops, restarts and removals held until the dependents being stopped are down.
    stop_queue: Vec<(InstanceId, Event)>,
    /// The ids in `stop_queue`.
    stop_queued: HashSet<InstanceId>,
    /// Dependents stopped for a `restart: true` dependency, started again once down.
    restart_after: HashSet<InstanceId>,
    /// Program → the programs that depend on it.
    dependents: HashMap<String, Vec<String>>,
    /// Service files that failed to load, from the latest config (`status` shows them).
    problems: Vec<String>,
    /// The last `Transition::seq` handed out.
    transition_seq: u64,
    /// Where transitions are reported (`notify:`), and when.
    notifier: notifier::Notifier,
    /// The notifier deadline last armed, so a timer is armed once per change of it.
    notifier_armed: Option<Instant>,
}

/// Which part of an instance a process belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PidOwner {
    /// The instance's own process (or the daemon its pid file names).
    Main,
    /// A shell health check.
    Check,
}

/// How long a released port stays out of use: its old owner's sockets may linger (TIME_WAIT,
/// a slow child), and clients may still know it.
pub const PORT_QUARANTINE: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug)]
struct Program {
    spec: Rc<ProgramSpec>,
    /// Position is the instance number.
    instances: Vec<InstanceId>,
}

#[derive(Debug)]
struct Shutdown {
    exit_code: u8,
    conns: Vec<ConnId>,
    exited: bool,
}

/// A control request that answers once its instances reach a goal.
#[derive(Debug)]
struct Waiter {
    conn: ConnId,
    goal: Goal,
    instances: Vec<(String, InstanceId)>,
    /// Results decided up front (unknown targets).
    early: Vec<TargetResult>,
    /// Give up and answer with a failure at this time.
    deadline: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// RUNNING, or failed for good (start, restart).
    Up,
    /// Not running (stop).
    Down,
    /// Exactly this state (ctl wait).
    State(StateName),
}

impl Supervisor {
    /// Builds the programs of `config` and starts those with `autostart`. `seed` feeds the
    /// backoff jitter.
    pub fn new(config: &Config, now: Now, seed: u64) -> Supervisor {
        Supervisor::with_flags(config, now, seed, HashSet::new())
    }

    /// Like [`Supervisor::new`], honouring persistent flags: an instance flagged
    /// [`Flag::Stopped`] is not autostarted, one flagged [`Flag::Paused`] is paused once up.
    pub fn with_flags(config: &Config, clock: Now, seed: u64, flags: HashSet<(String, Flag)>) -> Supervisor {
        let now = clock.mono;
        let mut supervisor = Supervisor {
            clock,
            programs: BTreeMap::new(),
            instances: HashMap::new(),
            by_pid: HashMap::new(),
            ports_held: HashMap::new(),
            ports_released_next: None,
            dying_checks: HashSet::new(),
            timers: Timers::default(),
            actions: VecDeque::new(),
            waiters: Vec::new(),
            next_id: 0,
            rng: Rng::new(seed),
            shutdown: None,
            flags,
            output_stalled: HashSet::new(),
            waiting: HashSet::new(),
            stop_queue: Vec::new(),
            stop_queued: HashSet::new(),
            restart_after: HashSet::new(),
            dependents: HashMap::new(),
            problems: config.problems.clone(),
            transition_seq: 0,
            notifier: notifier::Notifier::new(&config.notify),
            notifier_armed: None,
        };
        let names: Vec<&str> = config.programs.iter().map(|program| program.name.as_str()).collect();
        supervisor.log(log::Level::Info, format!("supervising {} programs: {}", names.len(), names.join(", ")));
        // Every program first, then the starts: a program may depend on one added after it.
        let mut autostart = Vec::new();
        for spec in &config.programs {
            let ids = supervisor.add_program_stopped(now, Rc::new(spec.clone()));
            if spec.autostart {
                autostart.extend(ids);
            }
        }
        supervisor.index_dependents();
        for id in autostart {
            supervisor.autostart(now, id);
        }
        supervisor.after_mutation(now);
        supervisor
    }

    /// Applies one input.
    pub fn handle_input(&mut self, now: Now, input: Input) {
        let now = self.observe_clock(now);
        match input {
            Input::Spawned { id, pid } => self.apply(now, id, Event::Spawned(pid)),
            Input::SpawnFailed { id, error, transient } => self.apply(now, id, Event::SpawnFailed { error, transient }),
            Input::Exited { pid, status } => match self.by_pid.get(&pid) {
                Some(&(id, PidOwner::Main)) => self.apply(now, id, Event::Exited(status)),
                Some(&(id, PidOwner::Check)) => {
                    let seq = self.instances.get(&id).and_then(|instance| {
                        instance.probe.health.as_ref()?.in_flight.as_ref().map(|in_flight| in_flight.seq)
                    });
                    self.by_pid.remove(&pid);
                    if let Some(seq) = seq {
                        self.apply(now, id, Event::Health { seq, result: ProbeResult::Exited(status) });
                    }
                }
                None if self.notifier.exited(now, pid, status, &mut self.actions) => {}
                None if self.dying_checks.remove(&pid) => {
                    self.log(log::Level::Debug, format!("reaped pid {pid} ({status}), a health check given up"));
                }
                None => self.log(log::Level::Debug, format!("reaped pid {pid} ({status}), an adopted orphan")),
            },
            Input::Request { conn, request } => self.handle_request(now, conn, request),
            Input::ConnClosed { conn } => {
                self.waiters.retain(|waiter| waiter.conn != conn);
                if let Some(shutdown) = &mut self.shutdown {
                    shutdown.conns.retain(|&waiting| waiting != conn);
                }
            }
            Input::Reload { conn, result } => self.reload(now, conn, result),
            Input::Shutdown { conn } => self.begin_shutdown(now, 0, conn),
            Input::ProbeResult { id, seq, result } => {
                let event = match result {
                    ProbeResult::PidFile(observation) => Event::PidFile(observation),
                    result => {
                        let lifecycle = self.instances.get(&id).is_some_and(|instance| {
                            matches!(
                                instance.state,
                                State::Stopping {
                                    step: StopStep::GracefulPost { seq: s } | StopStep::AbortPost { seq: s },
                                    ..
                                } if s == seq
                            )
                        });
                        if lifecycle {
                            Event::Lifecycle { seq, result }
                        } else {
                            Event::Health { seq, result }
                        }
                    }
                };
                self.apply(now, id, event);
            }
            Input::Notify { id, fields } => self.notify(now, id, fields),
            Input::FdReady { id, pid } => {
                // A newline from an earlier run's process (a forked child kept the fd) is stale.
                if self.instances.get(&id).is_some_and(|instance| instance.state.pid() == Some(pid)) {
                    self.apply(now, id, Event::Ready);
                }
            }
            Input::MailResult { sink, id, result } => self.notifier.mail_done(now, sink, id, result, &mut self.actions),
            Input::MailSpawned { sink, id, pid } => self.notifier.mail_spawned(sink, id, pid),
            Input::HookSpawned { sink, result } => self.notifier.hook_spawned(now, sink, result, &mut self.actions),
            Input::ProbeSpawned { id, seq, pid } => self.apply(now, id, Event::CheckSpawned { seq, pid }),
            Input::PortsAllocated { id, ports } => self.apply(now, id, Event::PortsAllocated(ports)),
            Input::OutputStalled { id, stalled } => {
                if stalled {
                    self.output_stalled.insert(id);
                } else {
                    self.output_stalled.remove(&id);
                }
            }
        }
        self.after_mutation(now);
    }

    /// Fires every deadline at or before `now`. Spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Now) {
        let now = self.observe_clock(now);
        for key in self.timers.pop_due(now) {
            match key {
                TimerKey::Waiter(conn) => self.expire_waiters(now, conn),
                TimerKey::Probe(id) => {
                    let due = self
                        .instances
                        .get(&id)
                        .and_then(|instance| instance.probe.deadline())
                        .is_some_and(|at| at <= now);
                    if due {
                        self.apply(now, id, Event::ProbeDue);
                    }
                }
                TimerKey::Instance(id) => {
                    let due = self
                        .instances
                        .get(&id)
                        .and_then(|instance| instance.state.deadline())
                        .is_some_and(|deadline| deadline <= now);
                    if due {
                        self.apply(now, id, Event::Timeout);
                    }
                }
                TimerKey::Schedule(id) => self.schedule_due(now, id),
                TimerKey::Notifier => {
                    // Popped: whatever the notifier's deadline is now gets armed again.
                    self.notifier_armed = None;
                    self.notifier.handle_timeout(now, &mut self.actions);
                }
            }
        }
        self.after_mutation(now);
    }

    /// When to call [`Supervisor::handle_timeout`] next; `None` means only input can wake us.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// The next action to carry out, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Status rows for `targets` (all instances when empty), as `ctl status` shows them.
    #[must_use]
    pub fn status(&self, now: Now, targets: &[String]) -> Vec<InstanceStatus> {
        self.status_at(now.mono, targets)
    }

    fn status_at(&self, now: Instant, targets: &[String]) -> Vec<InstanceStatus> {
        let (ids, unknown) = self.resolve(targets);
        // One service state per program, not per row: a program may have thousands of rows.
        let mut services: HashMap<&str, Option<ServiceState>> = HashMap::new();
        let mut rows: Vec<InstanceStatus> = ids
            .iter()
            .filter_map(|id| self.instances.get(id))
            .map(|instance| {
                let program = instance.spec.name.as_str();
                let mut row = status_row(now, instance);
                row.service = *services.entry(program).or_insert_with(|| self.service_state(program));
                row.output_stalled = self.output_stalled.contains(&instance.id);
                row
            })
            .collect();
        rows.extend(unknown.into_iter().map(|result| InstanceStatus {
            name: result.name,
            state: StateName::Unknown,
            pid: None,
            since: std::time::Duration::ZERO,
            last_exit: None,
            detail: None,
            error: Some(result.message),
            service: None,
            held: None,
            output_stalled: false,
            ports: Vec::new(),
            health: None,
            notify: None,
            schedule: None,
        }));
        rows
    }

    /// What keeps sv-lite from being ready (`GET /readyz`): each instance of an autostart
    /// program that is not RUNNING, not a one-shot that completed (EXITED with an expected code)
    /// and not a scheduled program between runs, as `web:0 STARTING`. An instance held down by
    /// `ctl stop` does not count: someone stopped it on purpose. Empty: ready.
    #[must_use]
    pub fn not_ready(&self) -> Vec<String> {
        let mut waiting = Vec::new();
        for program in self.programs.values().filter(|program| program.spec.autostart) {
            for instance in program.instances.iter().filter_map(|id| self.instances.get(id)) {
                let ready = match &instance.state {
                    State::Running { .. } | State::Scheduled | State::Exited { expected: true, .. } => true,
                    State::Stopped => instance.held_stopped,
                    _ => false,
                };
                if !ready {
                    waiting.push(format!("{} {}", instance.name, instance.state.name()));
                }
            }
        }
        waiting
    }

    /// The one instance `target` names (`name:N`, or `name` of a single-instance program).
    pub fn lookup(&self, target: &str) -> Result<InstanceId, String> {
        let (ids, unknown) = self.resolve(&[target.to_string()]);
        if let Some(error) = unknown.into_iter().next() {
            return Err(error.message);
        }
        match ids[..] {
            [id] => Ok(id),
            _ => Err(format!("`{target}` names {} instances; name one, e.g. {target}:0", ids.len())),
        }
    }

    /// Whether the instance still waits for the spawn it asked for (a queued spawn of an
    /// instance stopped meanwhile must not be carried out).
    #[must_use]
    pub fn wants_spawn(&self, id: InstanceId) -> bool {
        self.instances.get(&id).is_some_and(|instance| instance.state == State::Spawning)
    }

    /// The instance whose main process is `pid` (not a health check's).
    #[must_use]
    pub fn instance_with_main_pid(&self, pid: Pid) -> Option<InstanceId> {
        match self.by_pid.get(&pid) {
            Some(&(id, PidOwner::Main)) => Some(id),
            Some(&(_, PidOwner::Check)) | None => None,
        }
    }

    /// The instance a pid belongs to, as `name:N`.
    #[must_use]
    pub fn instance_of_pid(&self, pid: Pid) -> Option<&str> {
        self.by_pid.get(&pid).and_then(|(id, _)| self.instances.get(id)).map(|instance| instance.name.as_str())
    }

    /// The stop signal and stop time of an instance's program, for the ledger of live instances
    /// (what a daemon started after a crash of this one sends to its orphans).
    #[must_use]
    pub fn stop_sequence(&self, id: InstanceId) -> Option<(crate::spec::Signal, std::time::Duration)> {
        self.instances.get(&id).map(|instance| (instance.spec.stopsignal, instance.spec.stoptime))
    }

    /// Armed timer entries, stale ones included (for tests of timer growth).
    #[must_use]
    pub fn n_timers(&self) -> usize {
        self.timers.len()
    }

    /// A program's overall state (Tron's service states); `None` for a removed program.
    #[must_use]
    pub fn service_state(&self, program: &str) -> Option<ServiceState> {
        let program = self.programs.get(program)?;
        let instances: Vec<&Instance> = program.instances.iter().filter_map(|id| self.instances.get(id)).collect();
        let (mut up, mut starting, mut failed) = (0u32, 0u32, 0u32);
        for instance in &instances {
            match &instance.state {
                State::Running { .. } | State::Paused { resume_to: Phase::Running { .. } }
                    if instance.pid_mode() && instance.checks == 0 =>
                {
                    starting += 1
                }
                // Between runs, a scheduled program is where it should be.
                State::Running { .. } | State::Paused { resume_to: Phase::Running { .. } } | State::Scheduled => {
                    up += 1
                }
                // Paused before it was ready: not up until it is resumed and passes readiness.
                State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Paused { resume_to: Phase::Starting { .. } | Phase::WaitingPidFile } => starting += 1,
                State::Backoff { .. } | State::Fatal { .. } | State::Exited { expected: false, .. } => failed += 1,
                State::Waiting { blocked: true, .. } => failed += 1,
                State::Waiting { blocked: false, .. } => starting += 1,
                State::Stopped | State::Stopping { .. } | State::Exited { expected: true, .. } => {}
            }
        }
        Some(match (up, starting, failed) {
            (0, 0, 0) => ServiceState::Down,
            (0, 0, _) => ServiceState::Failed,
            (_, _, 1..) => ServiceState::Degraded,
            (_, 1.., 0) => ServiceState::Starting,
            (_, 0, 0) => ServiceState::Up,
        })
    }

    // ---- internals ----

    fn add_program(&mut self, now: Instant, spec: Rc<ProgramSpec>) {
        let ids = self.add_program_stopped(now, Rc::clone(&spec));
        self.index_dependents();
        if spec.autostart {
            for id in ids {
                self.autostart(now, id);
            }
        }
    }

    /// Adds a program's instances, all stopped; returns their ids.
    fn add_program_stopped(&mut self, now: Instant, spec: Rc<ProgramSpec>) -> Vec<InstanceId> {
        let mut program = Program { spec: Rc::clone(&spec), instances: Vec::new() };
        for index in 0..spec.numprocs {
            program.instances.push(self.new_instance(now, &spec, index));
        }
        let ids = program.instances.clone();
        self.programs.insert(spec.name.clone(), program);
        ids
    }

    /// Starts an instance unless a persistent stop flag holds it down; a scheduled one waits
    /// for its first fire time.
    fn autostart(&mut self, now: Instant, id: InstanceId) {
        let Some(instance) = self.instances.get(&id) else { return };
        if instance.held_stopped {
            let message = format!(
                "{}: held down by a stop flag; `sv-lite ctl start {}` releases it",
                instance.name, instance.name
            );
            self.log(log::Level::Info, message);
            return;
        }
        if instance.spec.schedule.is_some() {
            self.apply(now, id, Event::Schedule);
        } else {
            self.start_gated(now, id);
        }
    }

    fn new_instance(&mut self, now: Instant, spec: &Rc<ProgramSpec>, index: u32) -> InstanceId {
        let id = InstanceId(self.next_id);
        self.next_id += 1;
        let mut instance = Instance::new(id, Rc::clone(spec), index, now);
        instance.held_stopped = self.flags.contains(&(instance.name.clone(), Flag::Stopped));
        instance.held_paused = self.flags.contains(&(instance.name.clone(), Flag::Paused));
        self.instances.insert(id, instance);
        id
    }

    /// Sets or clears a persistent flag, and asks the driver to write it.
    fn set_flag(&mut self, id: InstanceId, flag: Flag, on: bool) {
        let Some(instance) = self.instances.get_mut(&id) else { return };
        let field = match flag {
            Flag::Stopped => &mut instance.held_stopped,
            Flag::Paused => &mut instance.held_paused,
        };
        if *field == on {
            return;
        }
        *field = on;
        let name = instance.name.clone();
        if on {
            self.flags.insert((name.clone(), flag));
        } else {
            self.flags.remove(&(name.clone(), flag));
        }
        self.actions.push_back(Action::SetFlag { instance: name, flag, on });
    }

    /// Runs one event through an instance and keeps the pid map, timers and shutdown in step.
    fn apply(&mut self, now: Instant, id: InstanceId, event: Event) {
        self.apply_with(now, id, |instance, ctx| instance.on_event(ctx, event));
    }

    /// Runs `change` on one instance, then keeps the supervisor's books (timers, `by_pid`,
    /// ports) and acts on the outcome. Every change to an instance goes through here.
    fn apply_with(
        &mut self,
        now: Instant,
        id: InstanceId,
        change: impl FnOnce(&mut Instance, &mut Ctx<'_>) -> Outcome,
    ) {
        let shutting_down = self.shutdown.is_some();
        self.release_quarantined_ports(now);
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        let pid_before = instance.state.pid();
        let name_before = instance.state.name();
        let check_before = instance.probe.check_pid();
        let deadline_before = instance.state.deadline();
        let probe_before = instance.probe.deadline();
        let timetable_before = instance.timetable.deadline();
        let ports_before = instance.allocated.clone();
        let wall = wall_at(self.clock, now);
        let mut ctx = Ctx {
            now,
            wall,
            actions: &mut self.actions,
            rng: &mut self.rng,
            shutting_down,
            held_ports: &self.ports_held,
            lines: Vec::new(),
        };
        let mut outcome = change(instance, &mut ctx);
        // A persistent pause flag pauses an instance as soon as it has a process, through the
        // same Pause transition as `ctl pause`: paused while STARTING, it is RUNNING only after
        // a resume and its readiness step.
        if instance.held_paused
            && outcome == Outcome::Nothing
            && matches!(instance.state, State::Starting { .. } | State::WaitingPidFile { .. } | State::Running { .. })
        {
            outcome = instance.on_event(&mut ctx, Event::Pause);
        }
        let mut lines = std::mem::take(&mut ctx.lines);
        if let Some(probe_at) = instance.probe.deadline() {
            // Also when unchanged but due: the timer that brought us here was popped already.
            if Some(probe_at) != probe_before || probe_at <= now {
                self.timers.arm(probe_at, TimerKey::Probe(id));
            }
        }
        if let Some(at) = instance.timetable.deadline() {
            if Some(at) != timetable_before || at <= now {
                self.timers.arm(at, TimerKey::Schedule(id));
            }
        }
        let note = std::mem::take(&mut instance.note);
        let name_after = instance.state.name();
        let pid_now = instance.state.pid();
        let mut record = None;
        // A new pid within a state (spawned, MAINPID) is not a transition: its log line stays one.
        if name_before != name_after {
            let health = instance.probe.health.as_ref().and_then(|health| health.last.clone());
            record = Some(Transition {
                seq: 0,
                time: wall,
                instance: instance.name.clone(),
                program: instance.spec.name.clone(),
                from: name_before,
                to: name_after,
                kind: event_kind(name_after, note),
                reason: String::new(),
                level: log::Level::Info,
                pid: pid_now.or(pid_before),
                exit: note.exit.map(|(status, _)| status),
                health: if note.unhealthy { health } else { None },
            });
        } else {
            // No transition: the lines are plain log lines.
            for (level, text) in lines.drain(..) {
                self.actions.push_back(Action::Log { level, message: format!("{}: {text}", instance.name) });
            }
        }
        if matches!(instance.state, State::Waiting { .. }) {
            self.waiting.insert(id);
        }
        let pid_after = instance.state.pid();
        if pid_before != pid_after {
            if let Some(pid) = pid_before {
                self.by_pid.remove(&pid);
            }
            if let Some(pid) = pid_after {
                self.by_pid.insert(pid, (id, PidOwner::Main));
            }
        }
        let check_after = instance.probe.check_pid();
        if check_before != check_after {
            if let Some(pid) = check_before {
                // Given up before its exit was seen: its exit is expected, not an orphan's.
                if self.by_pid.remove(&pid).is_some() {
                    self.dying_checks.insert(pid);
                }
            }
            if let Some(pid) = check_after {
                self.by_pid.insert(pid, (id, PidOwner::Check));
            }
        }
        if let Some(deadline) = instance.state.deadline() {
            if Some(deadline) != deadline_before || deadline <= now {
                self.timers.arm(deadline, TimerKey::Instance(id));
            }
        }
        let ports_after = (instance.allocated != ports_before).then(|| instance.allocated.clone());
        if let Some(ports_after) = ports_after {
            for port in ports_before {
                self.quarantine_port(now, port);
            }
            for port in ports_after {
                self.ports_held.insert(port, None);
            }
        }
        if let Some(record) = record {
            self.transition(now, record, lines);
        }
        match outcome {
            Outcome::Nothing => {}
            Outcome::Removed => {
                if let Some(instance) = self.instances.remove(&id) {
                    if let Some(pid) = instance.state.pid() {
                        self.by_pid.remove(&pid);
                    }
                    for port in instance.allocated {
                        self.quarantine_port(now, port);
                    }
                    self.log(log::Level::Info, format!("{}: removed", instance.name));
                }
            }
            Outcome::CriticalFailure(code) => {
                let name = self.instances.get(&id).map(|instance| instance.name.clone()).unwrap_or_default();
                self.log(
                    log::Level::Error,
                    format!("{name}: critical program failed; shutting down with exit code {code}"),
                );
                self.begin_shutdown(now, code, None);
            }
        }
    }

    /// Takes the clocks of this call and returns its monotonic time. A wall-clock step (the two
    /// clocks moved apart by more than `CLOCK_STEP` since the last call: NTP stepped the clock,
    /// someone ran `date -s`, the machine slept) re-times every schedule from the new time.
    fn observe_clock(&mut self, now: Now) -> Instant {
        let before = std::mem::replace(&mut self.clock, now);
        let step = clock_step(before, now);
        if step.unsigned_abs() > CLOCK_STEP.as_millis() {
            let ids: Vec<InstanceId> = self
                .instances
                .values()
                .filter(|instance| instance.timetable.next.is_some())
                .map(|instance| instance.id)
                .collect();
            let direction = if step > 0 { "forward" } else { "back" };
            let by = human_duration(Duration::from_millis(u64::try_from(step.unsigned_abs()).unwrap_or(u64::MAX)));
            self.log(
                log::Level::Warn,
                format!(
                    "the wall clock moved {direction} by {by}; fire times of {} scheduled instances computed again",
                    ids.len()
                ),
            );
            let back_by =
                (step < 0).then(|| Duration::from_millis(u64::try_from(step.unsigned_abs()).unwrap_or(u64::MAX)));
            for id in ids {
                self.apply_with(now.mono, id, |instance, ctx| {
                    if let Some(spec) = &instance.spec.schedule {
                        instance.timetable.retime(spec, ctx.now, ctx.wall, back_by);
                    }
                    Outcome::Nothing
                });
            }
        }
        now.mono
    }

    /// A scheduled instance's timetable deadline passed: a fire time (start the run, or apply
    /// the overlap rule), or the run's timeout.
    fn schedule_due(&mut self, now: Instant, id: InstanceId) {
        let Some(instance) = self.instances.get(&id) else { return };
        if instance.timetable.fire_due(now) {
            self.apply(now, id, Event::Fire);
            // Idle when it fired: the run starts, through the dependency gate like any start.
            if self.instances.get(&id).is_some_and(|instance| instance.state == State::Scheduled) {
                self.start_gated(now, id);
            }
        }
        let timed_out = self
            .instances
            .get(&id)
            .and_then(|instance| instance.timetable.run_deadline)
            .is_some_and(|deadline| deadline <= now);
        if timed_out {
            self.apply(now, id, Event::RunTimeout);
        }
    }

    /// Turns the log lines an instance wrote during one change into the reason of that change's
    /// `Transition` record, which replaces them: the event log line is rendered from the record.
    fn transition(&mut self, now: Instant, mut record: Transition, lines: Vec<(log::Level, String)>) {
        let mut reasons = Vec::new();
        let mut level = log::Level::Info;
        for (line_level, text) in lines {
            if line_level <= log::Level::Info {
                level = level.min(line_level);
                reasons.push(text);
            } else {
                // Debug lines stay debug lines: only info and above make the reason.
                let message = format!("{}: {text}", record.instance);
                self.actions.push_back(Action::Log { level: line_level, message });
            }
        }
        // One line per message, as the event log has always shown them.
        record.reason =
            if reasons.is_empty() { format!("{} -> {}", record.from, record.to) } else { reasons.join("\n") };
        record.level = level;
        self.transition_seq += 1;
        record.seq = self.transition_seq;
        self.notifier.observe(now, &record, &mut self.actions);
        self.actions.push_back(Action::Transition(record));
    }

    /// An sd_notify message for instance `id`. Goes through `apply`'s bookkeeping like any
    /// event (READY=1 and MAINPID= are events of the state table).
    fn notify(&mut self, now: Instant, id: InstanceId, fields: Vec<NotifyField>) {
        // Fields that are not transitions are recorded first, then the transitions apply in
        // order through the one state table.
        // MAINPID= may not name another instance's process.
        let fields: Vec<NotifyField> = fields
            .into_iter()
            .filter(|field| match field {
                NotifyField::MainPid(pid) => match self.by_pid.get(pid) {
                    Some(&(owner, _)) if owner != id => {
                        self.actions.push_back(Action::Log {
                            level: log::Level::Warn,
                            message: format!("MAINPID={pid} belongs to another instance; ignored"),
                        });
                        false
                    }
                    _ => true,
                },
                _ => true,
            })
            .collect();
        self.apply_with(now, id, |instance, ctx| instance.notified(ctx, fields));
    }

    /// A port its instance gave back: out of use for `PORT_QUARANTINE`.
    fn quarantine_port(&mut self, now: Instant, port: u16) {
        let until = now + PORT_QUARANTINE;
        self.ports_held.insert(port, Some(until));
        self.ports_released_next = Some(self.ports_released_next.map_or(until, |next| next.min(until)));
    }

    /// Hands quarantined ports back once their time is up. Checked on every change, so it
    /// costs one comparison until a release is due.
    fn release_quarantined_ports(&mut self, now: Instant) {
        if self.ports_released_next.is_none_or(|next| next > now) {
            return;
        }
        self.ports_held.retain(|_, until| until.is_none_or(|until| until > now));
        self.ports_released_next = self.ports_held.values().flatten().min().copied();
    }

    /// `ctl snooze` / `ctl unsnooze`: create or remove the targets' snooze files; with
    /// `duration`, remove them again when it is over.
    fn snooze(
        &mut self,
        now: Instant,
        conn: ConnId,
        targets: &[String],
        on: bool,
        duration: Option<std::time::Duration>,
    ) {
        let (ids, mut results) = self.resolve(targets);
        for (name, id) in self.named(&ids) {
            let Some(instance) = self.instances.get_mut(&id) else { continue };
            let path = instance.snooze_path();
            let before = instance.probe.deadline();
            instance.probe.unsnooze_at = if on { duration.map(|duration| now + duration) } else { None };
            if let Some(at) = instance.probe.deadline() {
                if Some(at) != before {
                    self.timers.arm(at, TimerKey::Probe(id));
                }
            }
            let what = match (on, duration) {
                (true, Some(duration)) => format!("snoozed for {}: {}", human_duration(duration), path.display()),
                (true, None) => format!("snoozed until `ctl unsnooze`: {}", path.display()),
                (false, _) => format!("unsnoozed: {} removed", path.display()),
            };
            self.actions.push_back(Action::Snooze { path, on });
            self.log(log::Level::Info, format!("{name}: {what}"));
            results.push(TargetResult { name, ok: true, message: what });
        }
        self.reply(conn, Reply::Results(results));
    }

    /// The instance that holds `port` by name: `ctl port TARGET NAME`.
    pub fn port_of(&self, target: &str, name: &str) -> Result<u16, String> {
        let id = self.lookup(target)?;
        let instance = self.instances.get(&id).ok_or_else(|| format!("{target}: no such instance"))?;
        instance.ports.iter().find(|(known, _)| known == name).map(|(_, port)| *port).ok_or_else(|| {
            let known: Vec<&str> = instance.spec.ports.iter().map(|(name, _)| name.as_str()).collect();
            if known.is_empty() {
                format!("{}: has no ports", instance.name)
            } else if instance.spec.ports.iter().any(|(known, _)| known == name) {
                format!("{}: port {name} has no number yet (the instance has not started)", instance.name)
            } else {
                format!("{}: no port named {name:?} (it has: {})", instance.name, known.join(", "))
            }
        })
    }

    fn handle_request(&mut self, now: Instant, conn: ConnId, request: Request) {
        if self.shutdown.is_some() && !matches!(request, Request::Status { .. }) {
            self.reply(conn, Reply::Error("sv-lite is shutting down".to_string()));
            return;
        }
        match request {
            Request::Status { targets } => {
                let rows = self.status_at(now, &targets);
                let problems = self.problems.clone();
                self.reply(conn, Reply::Status { rows, problems });
            }
            Request::Start { targets, wait } => self.act_on(now, conn, &targets, Event::Start, Goal::Up, wait, None),
            Request::Stop { targets, wait, timeout } => {
                self.act_on(now, conn, &targets, Event::Stop, Goal::Down, wait, timeout)
            }
            Request::Restart { targets, wait } => {
                self.act_on(now, conn, &targets, Event::Restart, Goal::Up, wait, None)
            }
            Request::Signal { signal, targets } => self.send_signal(conn, signal, &targets),
            Request::Pause { targets } => self.pause_or_resume(now, conn, &targets, Event::Pause),
            Request::Resume { targets } => self.pause_or_resume(now, conn, &targets, Event::Resume),
            Request::Snooze { targets, duration } => self.snooze(now, conn, &targets, true, duration),
            Request::Unsnooze { targets } => self.snooze(now, conn, &targets, false, None),
            Request::Wait { targets, state, timeout } => {
                let (ids, early) = self.resolve(&targets);
                if ids.is_empty() && early.is_empty() {
                    self.reply(conn, Reply::Error("no target given (name, name:N or all)".to_string()));
                    return;
                }
                let instances = self.named(&ids);
                let deadline = timeout.map(|timeout| now + timeout);
                if let Some(deadline) = deadline {
                    self.timers.arm(deadline, TimerKey::Waiter(conn));
                }
                self.waiters.push(Waiter { conn, goal: Goal::State(state), instances, early, deadline });
            }
        }
    }

    fn named(&self, ids: &[InstanceId]) -> Vec<(String, InstanceId)> {
        ids.iter().filter_map(|id| self.instances.get(id).map(|instance| (instance.name.clone(), *id))).collect()
    }

    fn send_signal(&mut self, conn: ConnId, signal: crate::spec::Signal, targets: &[String]) {
        let (ids, mut results) = self.resolve(targets);
        for (name, id) in self.named(&ids) {
            let Some(instance) = self.instances.get(&id) else { continue };
            match instance.state.pid() {
                Some(pid) => {
                    self.actions.push_back(Action::Kill { pid, signal, group: true });
                    self.log(log::Level::Info, format!("{name}: sending {signal} to process group {pid} on request"));
                    results.push(TargetResult {
                        name,
                        ok: true,
                        message: format!("sent {signal} to process group {pid}"),
                    });
                }
                None => {
                    let message = format!("not running ({})", instance.state.name());
                    results.push(TargetResult { name, ok: false, message });
                }
            }
        }
        self.reply(conn, Reply::Results(results));
    }

    fn pause_or_resume(&mut self, now: Instant, conn: ConnId, targets: &[String], event: Event) {
        let (ids, mut results) = self.resolve(targets);
        let pausing = event == Event::Pause;
        for (name, id) in self.named(&ids) {
            // A scheduled program between runs has no process to pause, and a persistent flag
            // would stop every later run as it starts.
            let scheduled = self.instances.get(&id).is_some_and(|instance| instance.state == State::Scheduled);
            if pausing && scheduled {
                results.push(TargetResult {
                    name,
                    ok: false,
                    message: "cannot pause: SCHEDULED (no run in progress)".to_string(),
                });
                continue;
            }
            self.set_flag(id, Flag::Paused, pausing);
            let was_paused = self.instances.get(&id).is_some_and(|instance| instance.state.name() == StateName::Paused);
            self.apply(now, id, event.clone());
            let Some(instance) = self.instances.get(&id) else { continue };
            let state = instance.state.name();
            let (ok, message) = match (pausing, state) {
                (true, StateName::Paused) => (true, "paused".to_string()),
                (false, StateName::Running) => (true, "resumed".to_string()),
                // Paused before it was ready: continued, and RUNNING only once readiness passes.
                (false, StateName::Starting) if was_paused => (true, "resumed; STARTING until ready".to_string()),
                (true, _) => (false, format!("cannot pause: {state}")),
                (false, _) => (false, format!("cannot resume: {state}")),
            };
            results.push(TargetResult { name, ok, message });
        }
        self.reply(conn, Reply::Results(results));
    }

    fn expire_waiters(&mut self, now: Instant, conn: ConnId) {
        let mut index = 0;
        while index < self.waiters.len() {
            let waiter = &self.waiters[index];
            if waiter.conn != conn || waiter.deadline.is_none_or(|deadline| deadline > now) {
                index += 1;
                continue;
            }
            let waiter = self.waiters.swap_remove(index);
            let mut results = waiter.early;
            for (name, id) in waiter.instances {
                let state = self.instances.get(&id).map_or(StateName::Unknown, |instance| instance.state.name());
                let ok = match waiter.goal {
                    Goal::State(goal) => goal == state,
                    Goal::Down => matches!(state, StateName::Stopped | StateName::Exited | StateName::Fatal),
                    Goal::Up => state == StateName::Running,
                };
                let message = if ok { format!("{state}") } else { format!("timed out; still {state}") };
                results.push(TargetResult { name, ok, message });
            }
            self.reply(conn, Reply::Results(results));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn act_on(
        &mut self,
        now: Instant,
        conn: ConnId,
        targets: &[String],
        event: Event,
        goal: Goal,
        wait: bool,
        timeout: Option<std::time::Duration>,
    ) {
        let (ids, early) = self.resolve(targets);
        if ids.is_empty() && early.is_empty() {
            self.reply(conn, Reply::Error("no target given (name, name:N or all)".to_string()));
            return;
        }
        let instances = self.named(&ids);
        let mut needs_started = HashSet::new();
        for &(_, id) in &instances {
            // Explicit requests are remembered across daemon restarts (Proc::tored's flags).
            match event {
                Event::Stop => self.set_flag(id, Flag::Stopped, true),
                Event::Start | Event::Restart => {
                    self.set_flag(id, Flag::Stopped, false);
                    self.set_flag(id, Flag::Paused, false);
                }
                _ => {}
            }
            let Some(program) = self.instances.get(&id).map(|instance| instance.spec.name.clone()) else { continue };
            match event {
                Event::Start => {
                    // A later start wins over a stop still waiting in the queue.
                    if self.stop_queued.remove(&id) {
                        self.stop_queue.retain(|(queued, _)| *queued != id);
                    }
                    // What it needs and is not up is started too, then it starts or waits.
                    self.start_dependencies(now, &program, &mut needs_started);
                    self.start_gated(now, id);
                }
                Event::Restart => {
                    // `restart: true` dependents are stopped first and started again once
                    // this one is back.
                    for dependent in self.restart_dependents(&program) {
                        let ids = self.programs.get(&dependent).map(|p| p.instances.clone()).unwrap_or_default();
                        for dependent_id in ids {
                            if self
                                .instances
                                .get(&dependent_id)
                                .is_some_and(|dependent| dependent.is_live() && !dependent.held_stopped)
                            {
                                self.queue_stop(dependent_id, Event::Stop);
                                self.restart_after.insert(dependent_id);
                            }
                        }
                    }
                    self.queue_stop(id, Event::Restart);
                }
                // Stopped in order: dependents among the targets first.
                _ => self.queue_stop(id, event.clone()),
            }
        }
        self.release_stops(now);
        if wait {
            let deadline = timeout.map(|timeout| now + timeout);
            if let Some(deadline) = deadline {
                self.timers.arm(deadline, TimerKey::Waiter(conn));
            }
            self.waiters.push(Waiter { conn, goal, instances, early, deadline });
        } else {
            let verb = match event {
                Event::Start => "starting",
                Event::Restart => "restarting",
                _ => "stopping",
            };
            let mut results = early;
            results.extend(instances.into_iter().map(|(name, _)| TargetResult {
                name,
                ok: true,
                message: verb.to_string(),
            }));
            self.reply(conn, Reply::Results(results));
        }
    }

    /// Instances named by `targets` (every one when empty), and a failed result per unknown
    /// target.
    fn resolve(&self, targets: &[String]) -> (Vec<InstanceId>, Vec<TargetResult>) {
        let mut ids = Vec::new();
        let mut unknown = Vec::new();
        let everything = targets.is_empty() || targets.iter().any(|target| target == "all");
        if everything {
            ids.extend(self.programs.values().flat_map(|program| program.instances.iter().copied()));
            // Instances of removed programs that are still stopping.
            let listed: HashSet<InstanceId> = ids.iter().copied().collect();
            let mut leftovers: Vec<InstanceId> =
                self.instances.keys().filter(|id| !listed.contains(id)).copied().collect();
            leftovers.sort();
            ids.extend(leftovers);
        }
        for target in targets.iter().filter(|target| *target != "all") {
            let (name, index) = match target.split_once(':') {
                Some((name, index)) => (name, Some(index)),
                None => (target.as_str(), None),
            };
            let Some(program) = self.programs.get(name) else {
                unknown.push(TargetResult {
                    name: target.clone(),
                    ok: false,
                    message: format!("no such program `{name}`"),
                });
                continue;
            };
            match index {
                None => ids.extend(program.instances.iter().copied()),
                Some(index) => match index.parse::<usize>().ok().and_then(|index| program.instances.get(index)) {
                    Some(id) => ids.push(*id),
                    None => unknown.push(TargetResult {
                        name: target.clone(),
                        ok: false,
                        message: format!(
                            "no such instance `{target}` ({name} has {} instances, {name}:0 to {name}:{})",
                            program.instances.len(),
                            program.instances.len().saturating_sub(1)
                        ),
                    }),
                },
            }
        }
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(*id));
        (ids, unknown)
    }

    fn reload(&mut self, now: Instant, conn: Option<ConnId>, result: Result<Config, String>) {
        let config = match result {
            Ok(config) => config,
            Err(error) => {
                self.log(log::Level::Error, format!("reload failed, nothing changed:\n{error}"));
                if let Some(conn) = conn {
                    self.reply(conn, Reply::Error(format!("reload failed, nothing changed:\n{error}")));
                }
                return;
            }
        };
        if self.shutdown.is_some() {
            if let Some(conn) = conn {
                self.reply(conn, Reply::Error("sv-lite is shutting down".to_string()));
            }
            return;
        }
        self.problems.clone_from(&config.problems);
        self.notifier.configure(&config.notify);
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut resized = Vec::new();
        let mut removed = Vec::new();
        let new_names: std::collections::BTreeSet<&str> =
            config.programs.iter().map(|spec| spec.name.as_str()).collect();
        let old_names: Vec<String> = self.programs.keys().cloned().collect();
        for name in old_names.iter().filter(|name| !new_names.contains(name.as_str())) {
            if let Some(program) = self.programs.remove(name) {
                for id in program.instances {
                    self.apply(now, id, Event::Remove);
                }
                removed.push(name.clone());
            }
        }
        for spec in &config.programs {
            let Some(program) = self.programs.get(&spec.name) else {
                added.push(spec.name.clone());
                self.add_program(now, Rc::new(spec.clone()));
                continue;
            };
            if *program.spec == *spec {
                continue;
            }
            let spec = Rc::new(spec.clone());
            let options_changed = !program.spec.same_except_numprocs(&spec);
            if options_changed {
                changed.push(spec.name.clone());
            } else {
                resized.push(format!("{} ({} -> {})", spec.name, program.spec.numprocs, spec.numprocs));
            }
            self.resize_program(now, &spec);
            let kept: Vec<InstanceId> =
                self.programs.get(&spec.name).map(|program| program.instances.clone()).unwrap_or_default();
            for id in kept {
                let Some(instance) = self.instances.get_mut(&id) else { continue };
                let was_live = instance.is_live();
                let was_scheduled = instance.state == State::Scheduled;
                instance.spec = Rc::clone(&spec);
                if options_changed {
                    // Fire times come from the new schedule; without one, no run timeout
                    // is left either.
                    instance.timetable.disarm();
                    if spec.schedule.is_none() {
                        instance.timetable.run_deadline = None;
                    }
                }
                if instance.held_stopped {
                    continue; // Held down by `ctl stop`: takes the new spec, stays down.
                }
                if options_changed && spec.schedule.is_some() && (was_live || was_scheduled || spec.autostart) {
                    // A run in progress is stopped; the next run is at the new schedule's next
                    // fire time, not now.
                    self.apply(now, id, Event::Schedule);
                } else if options_changed && was_scheduled && spec.schedule.is_none() {
                    // The schedule was taken away: a kept-running program now, if autostart.
                    self.apply(now, id, Event::Stop);
                    if spec.autostart {
                        self.autostart(now, id);
                    }
                } else if options_changed && was_live {
                    self.apply(now, id, Event::Restart);
                } else if options_changed && spec.autostart {
                    self.autostart(now, id);
                }
            }
        }
        self.index_dependents();
        let summary = reload_summary(&added, &changed, &resized, &removed);
        self.log(log::Level::Info, format!("reloaded config: {summary}"));
        if let Some(conn) = conn {
            self.reply(conn, Reply::Done(format!("reloaded: {summary}")));
        }
    }

    /// Brings a program's instance count to `spec.numprocs` and installs `spec`: surplus
    /// instances are removed (stopped first), new ones are added and started if autostart.
    fn resize_program(&mut self, now: Instant, spec: &Rc<ProgramSpec>) {
        let Some(program) = self.programs.get_mut(&spec.name) else { return };
        program.spec = Rc::clone(spec);
        let wanted = spec.numprocs as usize;
        let surplus: Vec<InstanceId> = program.instances.drain(wanted.min(program.instances.len())..).collect();
        let missing = wanted.saturating_sub(program.instances.len());
        let first_new = program.instances.len() as u32;
        for id in surplus {
            self.apply(now, id, Event::Remove);
        }
        let mut new_ids = Vec::new();
        for offset in 0..missing as u32 {
            new_ids.push(self.new_instance(now, spec, first_new + offset));
        }
        if let Some(program) = self.programs.get_mut(&spec.name) {
            program.instances.extend(new_ids.iter().copied());
        }
        if spec.autostart {
            for id in new_ids {
                self.autostart(now, id);
            }
        }
    }

    fn begin_shutdown(&mut self, now: Instant, exit_code: u8, conn: Option<ConnId>) {
        if let Some(shutdown) = &mut self.shutdown {
            match conn {
                Some(conn) => shutdown.conns.push(conn),
                None => {
                    self.log(
                        log::Level::Warn,
                        "shutdown requested again: killing every remaining process now".to_string(),
                    );
                    self.stop_queue.clear();
                    self.stop_queued.clear();
                    let ids: Vec<InstanceId> = self.instances.keys().copied().collect();
                    for id in ids {
                        // Through apply_with, so its books (timers, checks) follow; an instance
                        // with no process yet (backoff, spawning, waiting) is simply stopped.
                        let has_pid = self.instances.get(&id).is_some_and(|instance| instance.state.pid().is_some());
                        if has_pid {
                            self.apply_with(now, id, |instance, ctx| {
                                instance.kill_now(ctx);
                                Outcome::Nothing
                            });
                        } else {
                            self.apply(now, id, Event::Stop);
                        }
                    }
                }
            }
            return;
        }
        self.log(
            log::Level::Info,
            format!(
                "shutting down: stopping {} instances",
                self.instances.values().filter(|instance| instance.is_live()).count()
            ),
        );
        self.shutdown = Some(Shutdown { exit_code, conns: conn.into_iter().collect(), exited: false });
        let mut ids: Vec<InstanceId> = self.instances.keys().copied().collect();
        ids.sort();
        // Dependents before what they depend on: the queue releases each level once the one
        // above is down.
        self.restart_after.clear();
        for id in ids {
            if self.instances.get(&id).is_some_and(Instance::is_live) {
                self.queue_stop(id, Event::Stop);
            } else {
                self.apply(now, id, Event::Stop);
            }
        }
        self.release_stops(now);
    }

    /// Drops stale entries from the top of the timer heap, so that `poll_timeout` is a deadline
    /// that still matters.
    fn prune_timers(&mut self) {
        while let Some((deadline, key)) = self.timers.peek() {
            let live = match key {
                TimerKey::Instance(id) => {
                    self.instances.get(&id).and_then(|instance| instance.state.deadline()) == Some(deadline)
                }
                TimerKey::Probe(id) => {
                    self.instances.get(&id).and_then(|instance| instance.probe.deadline()) == Some(deadline)
                }
                TimerKey::Schedule(id) => {
                    self.instances.get(&id).and_then(|instance| instance.timetable.deadline()) == Some(deadline)
                }
                TimerKey::Notifier => self.notifier.deadline() == Some(deadline),
                TimerKey::Waiter(conn) => {
                    self.waiters.iter().any(|waiter| waiter.conn == conn && waiter.deadline == Some(deadline))
                }
            };
            if live {
                return;
            }
            self.timers.pop();
        }
    }

    /// Answers waiters whose goal is reached, and exits once a shutdown is complete.
    fn after_mutation(&mut self, now: Instant) {
        self.release_stops(now);
        self.restart_dependents_when_down(now);
        self.release_waiting(now);
        let mut index = 0;
        while index < self.waiters.len() {
            match self.waiter_results(&self.waiters[index]) {
                Some(results) => {
                    let waiter = self.waiters.swap_remove(index);
                    self.reply(waiter.conn, Reply::Results(results));
                }
                None => index += 1,
            }
        }
        // Only a shutdown needs to know that everything is down; checking on every input would
        // make a start-up of n instances O(n^2).
        let shutdown_done = self.shutdown.as_ref().is_some_and(|shutdown| !shutdown.exited)
            && self.instances.values().all(|instance| !instance.is_live());
        if let Some(shutdown) = &mut self.shutdown {
            if shutdown_done {
                shutdown.exited = true;
                let exit_code = shutdown.exit_code;
                let conns = std::mem::take(&mut shutdown.conns);
                for conn in conns {
                    self.reply(conn, Reply::Done("shut down".to_string()));
                }
                self.log(log::Level::Info, format!("every instance is down; exiting with code {exit_code}"));
                self.actions.push_back(Action::Exit(exit_code));
            }
        }
        // Last: every change above may have started a delivery or a hook.
        let notifier_at = self.notifier.deadline();
        if notifier_at != self.notifier_armed {
            if let Some(at) = notifier_at {
                self.timers.arm(at, TimerKey::Notifier);
            }
            self.notifier_armed = notifier_at;
        }
        self.prune_timers();
    }

    fn waiter_results(&self, waiter: &Waiter) -> Option<Vec<TargetResult>> {
        // Runs after every input: a cheap scan first, so that `ctl wait` on n instances that
        // are starting does not format n messages per input.
        let pending =
            |id: &InstanceId| self.instances.get(id).is_some_and(|instance| waiter_pending(waiter.goal, instance));
        // From the end: instances start (and stop) in order, so a pending one is found first.
        if waiter.instances.iter().rev().any(|(_, id)| pending(id)) {
            return None;
        }
        let mut results = waiter.early.clone();
        for (name, id) in &waiter.instances {
            let Some(instance) = self.instances.get(id) else {
                results.push(TargetResult {
                    name: name.clone(),
                    ok: waiter.goal == Goal::Down,
                    message: "removed".to_string(),
                });
                continue;
            };
            let (ok, message) = match (waiter.goal, &instance.state) {
                (Goal::Up, State::Running { pid, .. }) => (true, format!("started (pid {pid})")),
                (Goal::Up, State::Fatal { reason }) => (false, format!("FATAL: {reason}")),
                (Goal::Up, State::Exited { status, .. }) => (false, format!("exited with {status}")),
                (Goal::Up, State::Stopped) => (false, "stopped before it was up".to_string()),
                // A scheduled run that ended before it counted as RUNNING (a short job).
                (Goal::Up, State::Scheduled) => {
                    let ended = instance.timetable.last.as_ref().map_or("ran", |last| last.result.as_str());
                    (true, format!("run ended: {ended}; SCHEDULED"))
                }
                (Goal::Up, State::Waiting { reason, blocked: true }) => (false, format!("WAITING: {reason}")),
                (Goal::Down, _) => (true, "stopped".to_string()),
                (Goal::State(goal), _) => (true, goal.to_string()),
                // The states still on their way, which the scan above has ruled out.
                (Goal::Up, _) => return None,
            };
            results.push(TargetResult { name: name.clone(), ok, message });
        }
        Some(results)
    }

    fn reply(&mut self, conn: ConnId, reply: Reply) {
        self.actions.push_back(Action::Reply { conn, reply });
    }

    fn log(&mut self, level: log::Level, message: String) {
        self.actions.push_back(Action::Log { level, message });
    }
}

/// Whether a waiter for `goal` must wait on this instance. Down is exactly "not live":
/// `Instance::is_live` is the one place that decides it.
fn waiter_pending(goal: Goal, instance: &Instance) -> bool {
    match (goal, &instance.state) {
        (Goal::Up, State::Waiting { blocked, .. }) => !blocked,
        (
            Goal::Up,
            State::Spawning
            | State::Starting { .. }
            | State::WaitingPidFile { .. }
            | State::Paused { .. }
            | State::Backoff { .. }
            | State::Stopping { .. },
        ) => true,
        (Goal::Up, _) => false,
        (Goal::Down, _) => instance.is_live(),
        (Goal::State(goal), state) => state.name() != goal,
    }
}

fn status_row(now: Instant, instance: &Instance) -> InstanceStatus {
    let detail = match &instance.state {
        State::Fatal { reason } => Some(reason.clone()),
        State::Waiting { reason, .. } => Some(reason.clone()),
        State::Backoff { retry_at, reason } => {
            Some(format!("{reason}; retry in {}", human_duration(retry_at.saturating_duration_since(now))))
        }
        State::Exited { expected, .. } => Some(if *expected { "expected" } else { "unexpected" }.to_string()),
        State::Paused { resume_to: Phase::Running { .. } } => {
            Some("SIGSTOP sent; `ctl resume` continues it".to_string())
        }
        State::Paused { resume_to: Phase::Starting { .. } } => {
            Some("paused before it was ready; `ctl resume` continues it, STARTING again".to_string())
        }
        State::Paused { resume_to: Phase::WaitingPidFile } => Some(
            "paused before its pid file appeared; the daemon it names is paused too; `ctl resume` continues it, \
             STARTING again"
                .to_string(),
        ),
        State::WaitingPidFile { .. } => Some("waiting for the pid file".to_string()),
        State::Stopped if instance.held_stopped => {
            Some("held down by `ctl stop` (persistent); `ctl start` releases it".to_string())
        }
        State::Scheduled => Some(match instance.timetable.next {
            Some(fire) => format!("next run {}", crate::schedule::format_utc(fire.wall)),
            None => "no fire time ahead".to_string(),
        }),
        State::Stopped if instance.spec.schedule.is_some() => {
            Some("schedule off; `ctl start` runs it now and turns the schedule on".to_string())
        }
        State::Stopped | State::Spawning | State::Starting { .. } | State::Running { .. } | State::Stopping { .. } => {
            None
        }
    };
    let schedule = instance.spec.schedule.as_ref().map(|_| ScheduleStatus {
        next: instance.timetable.next.map(|fire| timetable::system_time(fire.wall)),
        last: instance.timetable.last.as_ref().map(|last| (last.started, last.duration, last.result.clone())),
    });
    let held = if instance.held_stopped {
        Some(Flag::Stopped)
    } else if instance.held_paused {
        Some(Flag::Paused)
    } else {
        None
    };
    InstanceStatus {
        service: None,
        held,
        output_stalled: false,
        ports: instance.ports.clone(),
        health: instance.probe.health.as_ref().filter(|health| health.last.is_some()).map(probe::Health::status),
        notify: instance.notify_text(),
        schedule,
        name: instance.name.clone(),
        state: instance.state.name(),
        pid: instance.state.pid(),
        since: now.saturating_duration_since(instance.since),
        last_exit: instance.last_exit,
        detail,
        error: None,
    }
}

fn reload_summary(added: &[String], changed: &[String], resized: &[String], removed: &[String]) -> String {
    let parts: Vec<String> = [("added", added), ("changed", changed), ("resized", resized), ("removed", removed)]
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(label, names)| format!("{label} {}", names.join(", ")))
        .collect();
    if parts.is_empty() {
        "no changes".to_string()
    } else {
        parts.join("; ")
    }
}

/// What a transition into `to` means, given what the change involved.
fn event_kind(to: StateName, note: instance::ChangeNote) -> EventKind {
    if note.unhealthy {
        return EventKind::Unhealthy;
    }
    if to == StateName::Fatal {
        return EventKind::Fatal;
    }
    if let Some((_, false)) = note.exit {
        return EventKind::UnexpectedExit;
    }
    match to {
        StateName::Starting => EventKind::Starting,
        StateName::Running => EventKind::Running,
        StateName::Exited => EventKind::Exited,
        StateName::Backoff => EventKind::Backoff,
        // FATAL returned above.
        StateName::Fatal => EventKind::Fatal,
        StateName::Stopping => EventKind::Stopping,
        StateName::Stopped | StateName::Unknown => EventKind::Stopped,
        StateName::Paused => EventKind::Paused,
        StateName::Waiting => EventKind::Waiting,
        StateName::Scheduled => EventKind::Scheduled,
    }
}

/// A wall-clock change larger than this between two calls, beyond the monotonic time that
/// passed, is a step of the clock rather than drift.
pub const CLOCK_STEP: Duration = Duration::from_secs(2);

/// How far the wall clock moved against the monotonic clock from `before` to `now`, in
/// milliseconds (positive: forward).
fn clock_step(before: Now, now: Now) -> i128 {
    let millis = |wall: SystemTime| match wall.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => since.as_millis() as i128,
        Err(error) => -(error.duration().as_millis() as i128),
    };
    let mono = now.mono.saturating_duration_since(before.mono).as_millis() as i128;
    millis(now.wall) - millis(before.wall) - mono
}

/// The wall-clock time at monotonic `mono`, from the clocks of the latest call.
fn wall_at(clock: Now, mono: Instant) -> SystemTime {
    match mono.checked_duration_since(clock.mono) {
        Some(later) => clock.wall + later,
        None => clock.wall - clock.mono.saturating_duration_since(mono),
    }
}

/// A small deterministic generator (xorshift64*) for backoff jitter.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A value in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (value >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
