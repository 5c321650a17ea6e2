//! One instance of a program and its state machine.
//!
//! Every (state, event) pair is spelled out in [`Instance::on_event`]; there is no `_ =>` arm,
//! so a new state or event makes the compiler list every place to decide. States carry their
//! own deadlines ([`State::deadline`]), so a stale timer finds nothing due and does nothing.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use std::collections::HashMap;

use super::probe::{judge, HealthPhase, Probe, Verdict};
use super::timetable::Timetable;
use super::types::{
    Action, ExitStatus, InstanceId, NotifyField, Pid, PidObservation, ProbeCheck, ProbeResult, SpawnExtras, StateName,
};
use super::Rng;
use crate::spec::{AutoRestart, CheckKind, Overlap, PortRef, PortSpec, ProgramSpec, Readiness, Signal};

/// The variable that marks every process of an instance (`web:0`), inherited by its children.
pub const INSTANCE_VAR: &str = "SV_LITE_INSTANCE";

/// The file whose presence in an instance's working directory skips its health checks.
pub const SNOOZE_FILE: &str = ".healthchecksnooze";

/// Base of the exponential backoff between failed starts and between crashes in a loop.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Cap of that backoff.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// The least time a pid-file program gets for its pid file to appear, whatever `starttime`
/// says: a daemon needs a moment to fork and write it.
pub const PID_FILE_GRACE: Duration = Duration::from_secs(1);
/// Each backoff delay is shortened by up to this fraction, at random, so that many instances
/// failing together do not retry in lock step.
pub const BACKOFF_JITTER: f64 = 0.2;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum State {
    Stopped,
    /// Asked to start; its program's dependencies are not met yet (`reason` says which). The
    /// supervisor starts it when they are.
    Waiting {
        reason: String,
        blocked: bool,
    },
    /// `Action::Spawn` is queued; `Spawned` or `SpawnFailed` comes next.
    Spawning,
    /// Up, but not yet ready; an exit now is a failed start. Ready at `up_at` (starttime), or,
    /// when `None`, when the health check has passed enough times in a row.
    Starting {
        pid: Pid,
        up_at: Option<Instant>,
    },
    /// Pid-file program: the command exited 0; waiting until `up_at` for its pid file.
    WaitingPidFile {
        up_at: Instant,
    },
    Running {
        pid: Pid,
        since: Instant,
    },
    /// Stopped with SIGSTOP on request; not dead, not restarted, and proving nothing: no
    /// deadline runs while paused, so readiness cannot pass. `resume_to` is the phase it was
    /// paused in, and goes back to on resume.
    Paused {
        resume_to: Phase,
    },
    /// Waiting to spawn again.
    Backoff {
        retry_at: Instant,
        reason: String,
    },
    /// Being stopped: `step` is where in the stop sequence it is, and `next_at` when the next
    /// step begins (None once SIGKILL was sent).
    Stopping {
        pid: Pid,
        next_at: Option<Instant>,
        step: StopStep,
    },
    /// Exited on its own and not restarted.
    Exited {
        status: ExitStatus,
        expected: bool,
    },
    /// Gave up: too many failed starts, or the command cannot be started at all.
    Fatal {
        reason: String,
    },
    /// A scheduled program between runs: its timetable says when the next run begins.
    Scheduled,
}

/// Where a stopping instance is in its stop sequence: Aurora's HTTP lifecycle POSTs first
/// (when the program has one), then the stop signal, then SIGKILL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopStep {
    /// `graceful_shutdown_endpoint` was POSTed (check `seq`); waiting for the exit.
    GracefulPost { seq: u64 },
    /// `shutdown_endpoint` was POSTed (check `seq`); waiting for the exit.
    AbortPost { seq: u64 },
    /// The stop signal was sent; SIGKILL at `next_at`.
    Signal,
    /// SIGKILL was sent.
    Killed,
}

/// The phase a paused instance was in. Pause and resume are transitions of
/// [`Instance::on_event`] like any other: resuming goes back to this phase, so an instance paused
/// before it was ready becomes RUNNING only through `become_running`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Phase {
    /// Paused before readiness (`Starting`); resume starts the starting window over. For a
    /// pid-file program `pid` is the launcher's, or the daemon's once its pid file named it.
    Starting { pid: Pid },
    /// Pid-file program paused after its launcher exited, before the pid file named the daemon
    /// (`WaitingPidFile`). The launcher's process group is stopped and the pid file is read at
    /// every monitor interval; the daemon it names is stopped too (then `Starting { daemon }`).
    /// Resume starts the pid-file window over.
    WaitingPidFile,
    /// Paused while RUNNING; `since` is when it started running, for the crash-loop window.
    Running { pid: Pid, since: Instant },
}

impl State {
    /// The one deadline this state waits for, if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            State::Starting { up_at, .. } => *up_at,
            State::WaitingPidFile { up_at } => Some(*up_at),
            State::Backoff { retry_at, .. } => Some(*retry_at),
            State::Stopping { next_at, .. } => *next_at,
            State::Stopped
            | State::Waiting { .. }
            | State::Spawning
            | State::Running { .. }
            | State::Paused { .. }
            | State::Exited { .. }
            | State::Fatal { .. }
            | State::Scheduled => None,
        }
    }

    pub(crate) fn pid(&self) -> Option<Pid> {
        match self {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Paused { resume_to: Phase::Starting { pid } | Phase::Running { pid, .. } }
            | State::Stopping { pid, .. } => Some(*pid),
            State::Stopped
            | State::Waiting { .. }
            | State::Spawning
            | State::WaitingPidFile { .. }
            | State::Paused { resume_to: Phase::WaitingPidFile }
            | State::Backoff { .. }
            | State::Exited { .. }
            | State::Fatal { .. }
            | State::Scheduled => None,
        }
    }

    pub(crate) fn name(&self) -> StateName {
        match self {
            State::Stopped => StateName::Stopped,
            State::Waiting { .. } => StateName::Waiting,
            State::Spawning | State::Starting { .. } | State::WaitingPidFile { .. } => StateName::Starting,
            State::Running { .. } => StateName::Running,
            State::Paused { .. } => StateName::Paused,
            State::Backoff { .. } => StateName::Backoff,
            State::Stopping { .. } => StateName::Stopping,
            State::Exited { .. } => StateName::Exited,
            State::Fatal { .. } => StateName::Fatal,
            State::Scheduled => StateName::Scheduled,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// Start if not already up (ctl start, autostart).
    Start,
    /// Stop and stay down.
    Stop,
    /// Stop if up, then start.
    Restart,
    /// Stop if up, then forget the instance (reload removed it).
    Remove,
    /// SIGSTOP the group (ctl pause).
    Pause,
    /// SIGCONT the group (ctl resume).
    Resume,
    /// Wait for dependencies before starting (or say what is still missing); `blocked` when a
    /// dependency failed and will not get there by itself.
    Wait {
        reason: String,
        blocked: bool,
    },
    Spawned(Pid),
    SpawnFailed {
        error: String,
        transient: bool,
    },
    Exited(ExitStatus),
    /// The state's deadline passed.
    Timeout,
    /// The probe's deadline passed (pid-file read, health check, check timeout, snooze end).
    ProbeDue,
    /// What the driver found behind the pid file.
    PidFile(PidObservation),
    /// The answer to health check `seq`.
    Health {
        seq: u64,
        result: ProbeResult,
    },
    /// Shell health check `seq` runs as `pid`.
    CheckSpawned {
        seq: u64,
        pid: Pid,
    },
    /// The answer to lifecycle POST `seq`.
    Lifecycle {
        seq: u64,
        result: ProbeResult,
    },
    /// Ports found for the instance's allocated names, in order.
    PortsAllocated(Result<Vec<u16>, String>),
    /// The program said it is ready (`READY=1`, or a newline on its notification fd).
    Ready,
    /// `MAINPID=`: the service's main process is now this pid (checked by the driver).
    MainPid(Pid),
    /// Scheduled programs: be idle until the next fire time (a run in progress is stopped).
    Schedule,
    /// Scheduled programs: the fire time came (the supervisor starts the run if idle).
    Fire,
    /// Scheduled programs: the run went on past its `timeout`.
    RunTimeout,
}

/// What happens once a stopping instance is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterStop {
    Stay,
    Start,
    Remove,
    /// It was stopped because its health check failed its start: count a failed start.
    FailedStart,
    /// It was stopped because it became unhealthy: handle it as an unexpected exit of a run
    /// that began at `since`.
    Unhealthy {
        since: Instant,
    },
    /// A scheduled run was ended (timed out, or the schedule took over): back to SCHEDULED.
    Schedule,
}

/// What the supervisor must do after a transition, beyond the actions already queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Nothing,
    /// Forget this instance.
    Removed,
    /// A critical program failed for good: shut down and exit with this code.
    CriticalFailure(u8),
}

/// What a transition may touch besides the instance.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    /// The wall-clock time of `now` (UTC), for fire times and run records.
    pub wall: SystemTime,
    pub actions: &'a mut std::collections::VecDeque<Action>,
    pub rng: &'a mut Rng,
    /// No restarts while shutting down.
    pub shutting_down: bool,
    /// Ports held by instances (`None`) or quarantined until a time: never handed out meanwhile.
    pub held_ports: &'a HashMap<u16, Option<Instant>>,
    /// The instance's lines of this change, in order (`Instance::log`).
    pub lines: Vec<(log::Level, String)>,
}

#[derive(Debug)]
pub(crate) struct Instance {
    pub id: InstanceId,
    /// `web:0`.
    pub name: String,
    pub index: u32,
    pub spec: Rc<ProgramSpec>,
    pub state: State,
    /// When the current state was entered.
    pub since: Instant,
    /// Failed starts in a row (reset on RUNNING).
    failures: u32,
    /// Runs in a row shorter than the stability window (reset by a longer run).
    crashes: u32,
    after_stop: AfterStop,
    pub last_exit: Option<ExitStatus>,
    /// Pid-file programs: the daemon's pid and start time as last verified.
    pub daemon: Option<(Pid, u64)>,
    /// Pid-file programs: the process group of the command that launched the daemon.
    launcher: Option<Pid>,
    /// The pid-file monitor and the health check.
    pub probe: Probe,
    /// Why a stop for `AfterStop::FailedStart`/`Unhealthy` happened, for the record.
    recover_why: String,
    /// Why a scheduled run is being stopped (timed out, overlap: kill), for its record.
    run_end_why: String,
    /// sd_notify: the last `STATUS=` text, `STOPPING`/`RELOADING` flags, `ERRNO=`.
    pub notify_status: Option<String>,
    notify_flags: Vec<&'static str>,
    notify_errno: Option<i32>,
    /// The instance's ports, resolved (name, number); kept across restarts.
    pub ports: Vec<(String, u16)>,
    /// The numbers allocated for its `PortSpec::Allocate` names, in config order.
    pub allocated: Vec<u16>,
    /// Monitor checks passed since the instance came up (Tron's STARTING until the first).
    pub checks: u32,
    /// Held down by a persistent stop flag: autostart and reloads leave it down.
    pub held_stopped: bool,
    /// Paused by a persistent flag: started, then paused at once.
    pub held_paused: bool,
    /// Scheduled programs: next fire time, the run's timeout, the last run.
    pub timetable: Timetable,
    /// What the change being applied involved, for its `Transition` record (taken by the
    /// supervisor after each change).
    pub note: ChangeNote,
}

/// What a change involved beyond its states: the exit that caused it, and whether it was an
/// unhealthy verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChangeNote {
    /// The exit and whether it was expected (an exit we asked for with a stop counts as expected).
    pub exit: Option<(ExitStatus, bool)>,
    pub unhealthy: bool,
}

impl Instance {
    pub(crate) fn new(id: InstanceId, spec: Rc<ProgramSpec>, index: u32, now: Instant) -> Self {
        let probe = Probe::new(spec.health_check.clone());
        let ports = spec.resolve_ports(&[]);
        Instance {
            id,
            name: format!("{}:{}", spec.name, index),
            index,
            spec,
            state: State::Stopped,
            since: now,
            failures: 0,
            crashes: 0,
            after_stop: AfterStop::Stay,
            last_exit: None,
            daemon: None,
            launcher: None,
            probe,
            recover_why: String::new(),
            run_end_why: String::new(),
            notify_status: None,
            notify_flags: Vec::new(),
            notify_errno: None,
            ports,
            allocated: Vec::new(),
            checks: 0,
            held_stopped: false,
            held_paused: false,
            timetable: Timetable::default(),
            note: ChangeNote::default(),
        }
    }

    /// Whether the program is watched through a pid file.
    pub(crate) fn pid_mode(&self) -> bool {
        self.spec.pid_file.is_some()
    }

    /// Whether a process exists or is about to (so a reload must restart it).
    pub(crate) fn is_live(&self) -> bool {
        match self.state {
            State::Spawning
            | State::Starting { .. }
            | State::WaitingPidFile { .. }
            | State::Running { .. }
            | State::Paused { .. }
            | State::Backoff { .. }
            | State::Stopping { .. } => true,
            // Waiting has no process yet: a shutdown need not wait for it.
            State::Stopped | State::Waiting { .. } | State::Exited { .. } | State::Fatal { .. } | State::Scheduled => {
                false
            }
        }
    }

    /// Applies one event, then stops the health check if the instance left the states it runs
    /// in (STARTING, RUNNING).
    pub(crate) fn on_event(&mut self, ctx: &mut Ctx<'_>, event: Event) -> Outcome {
        let post_before = self.lifecycle_post();
        let outcome = self.transition(ctx, event);
        // A lifecycle POST whose step is over (waited out, refused, or the program exited) is
        // given up, so its connection does not linger.
        if let Some(seq) = post_before.filter(|seq| self.lifecycle_post() != Some(*seq)) {
            ctx.actions.push_back(Action::CancelProbe { id: self.id, seq });
        }
        let checking = matches!(self.state, State::Starting { .. } | State::Running { .. });
        if !checking {
            self.end_health(ctx);
        }
        // A scheduled instance stopped (ctl stop, shutdown): its run is over and its schedule off.
        if self.spec.schedule.is_some()
            && matches!(self.state, State::Stopped | State::Exited { .. } | State::Fatal { .. })
        {
            if self.timetable.run.is_some() {
                let status = self.last_exit.map_or(String::new(), |status| format!("; {status}"));
                self.timetable.end_run(ctx.now, ctx.wall, format!("stopped{status}"));
            }
            self.timetable.disarm();
        }
        // The readiness timeout runs only while STARTING, the watchdog only while RUNNING.
        match self.state {
            State::Starting { up_at: None, .. } if self.announces_readiness() => {
                if self.probe.ready_by.is_none() {
                    self.probe.ready_by = Some(ctx.now + self.ready_timeout());
                }
            }
            _ => self.probe.ready_by = None,
        }
        match (&self.state, self.watchdog_interval()) {
            (State::Running { .. }, Some(every)) => {
                if self.probe.watchdog_at.is_none() {
                    self.probe.watchdog_at = Some(ctx.now + every);
                }
            }
            _ => self.probe.watchdog_at = None,
        }
        outcome
    }

    /// The lifecycle POST of the current stop step, if any.
    fn lifecycle_post(&self) -> Option<u64> {
        match self.state {
            State::Stopping { step: StopStep::GracefulPost { seq } | StopStep::AbortPost { seq }, .. } => Some(seq),
            _ => None,
        }
    }

    /// How the instance becomes ready: as configured (the config loader picks the default:
    /// `health` with a health check, `pid_file` with a pid file). A pid file always decides.
    pub(crate) fn readiness(&self) -> Readiness {
        if self.pid_mode() {
            Readiness::PidFile
        } else {
            self.spec.readiness
        }
    }

    /// Whether readiness is announced by the program or its checks (and so bounded by
    /// `ready_timeout`), rather than by `starttime`.
    fn announces_readiness(&self) -> bool {
        matches!(self.readiness(), Readiness::Notify | Readiness::Fd(_) | Readiness::Health)
    }

    /// How long a start may take to be ready: `ready_timeout`, and for a health check at least
    /// the time its n checks take (Aurora's grace period must not be cut short).
    fn ready_timeout(&self) -> Duration {
        let checks = self.probe.health.as_ref().filter(|_| self.readiness() == Readiness::Health).map(|health| {
            health.check.interval.saturating_mul(health.start_budget()).saturating_add(health.check.timeout)
        });
        self.spec.ready_timeout.max(checks.unwrap_or_default())
    }

    /// The watchdog interval in force: the program's `WATCHDOG_USEC=`, else the config's.
    fn watchdog_interval(&self) -> Option<Duration> {
        if self.readiness() != Readiness::Notify {
            return None;
        }
        self.probe.watchdog_every.or(self.spec.watchdog).filter(|every| !every.is_zero())
    }

    /// Applies one event. Every pair is decided here.
    fn transition(&mut self, ctx: &mut Ctx<'_>, event: Event) -> Outcome {
        let now = ctx.now;
        match (&self.state, event) {
            // ---- schedules: SCHEDULED between runs; a run ends back in SCHEDULED ----
            (State::Scheduled, Event::Start | Event::Restart) => {
                // A run now: the fire time through the dependency gate, or `ctl start`.
                self.failures = 0;
                self.crashes = 0;
                self.spawn(ctx);
                Outcome::Nothing
            }
            (State::Scheduled, Event::Stop) => {
                self.timetable.disarm();
                let what = if ctx.shutting_down { "stopped" } else { "schedule off until `ctl start`; STOPPED" };
                self.log(ctx, log::Level::Info, what.to_string());
                self.enter(now, State::Stopped);
                Outcome::Nothing
            }
            (State::Scheduled, Event::Remove) => Outcome::Removed,
            (State::Scheduled, Event::Wait { reason, blocked }) => {
                self.log(ctx, log::Level::Info, format!("WAITING: {reason}"));
                self.enter(now, State::Waiting { reason, blocked });
                Outcome::Nothing
            }
            (State::Scheduled, Event::Schedule) => {
                self.arm_timetable(ctx);
                Outcome::Nothing
            }
            (State::Scheduled, Event::Fire) => {
                if let Some(fired) = self.fired(ctx) {
                    self.log(ctx, log::Level::Info, format!("fire time {fired}: starting a run"));
                }
                Outcome::Nothing
            }
            (
                State::Stopped | State::Exited { .. } | State::Fatal { .. } | State::Backoff { .. } | State::Spawning,
                Event::Schedule,
            )
            | (State::Waiting { .. }, Event::Schedule) => {
                // Spawning: the queued spawn is dropped (`Supervisor::wants_spawn`).
                self.enter_scheduled(ctx, log::Level::Info, "on its schedule".to_string())
            }
            (State::Stopped | State::Exited { .. } | State::Fatal { .. }, Event::Fire) => {
                // The schedule is off.
                self.timetable.disarm();
                Outcome::Nothing
            }
            (
                State::Waiting { .. }
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. },
                Event::Fire,
            ) => {
                let Some(fired) = self.fired(ctx) else { return Outcome::Nothing };
                let overlap = self.spec.schedule.as_ref().map_or(Overlap::Skip, |schedule| schedule.overlap);
                let killable = self.state.pid().is_some() && !matches!(self.state, State::Stopping { .. });
                if overlap == Overlap::Kill
                    && self.after_stop == AfterStop::Schedule
                    && matches!(self.state, State::Stopping { .. })
                {
                    // Already stopping (timed out): the new run starts once it is down.
                    self.log(
                        ctx,
                        log::Level::Warn,
                        format!("fire time {fired}: a new run starts once the previous one is down"),
                    );
                    self.after_stop = AfterStop::Start;
                    return Outcome::Nothing;
                }
                if overlap == Overlap::Kill && killable {
                    self.log(
                        ctx,
                        log::Level::Warn,
                        format!("fire time {fired}: the previous run is still going; overlap: kill stops it and starts a new one"),
                    );
                    self.run_end_why = "stopped for the next run (overlap: kill)".to_string();
                    return self.transition(ctx, Event::Restart);
                }
                let why = match self.state {
                    State::Waiting { .. } => "a run is already waiting for its dependencies".to_string(),
                    _ => format!("the previous run is still going ({})", self.state.name()),
                };
                self.log(ctx, log::Level::Warn, format!("fire time {fired}: skipped, {why}"));
                Outcome::Nothing
            }
            (
                State::Starting { .. }
                | State::Running { .. }
                | State::Paused { resume_to: Phase::Starting { .. } | Phase::Running { .. } },
                Event::RunTimeout,
            ) if self.timetable.run_deadline.is_some_and(|deadline| deadline <= now) => {
                self.timetable.run_deadline = None;
                let timeout = self.spec.schedule.as_ref().and_then(|schedule| schedule.timeout).unwrap_or_default();
                let why = format!("timed out after {}", human_duration(timeout));
                self.log(ctx, log::Level::Warn, format!("run {why}; stopping it"));
                self.run_end_why = why;
                self.transition(ctx, Event::Schedule)
            }
            (
                State::Stopped
                | State::Waiting { .. }
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. }
                | State::Scheduled,
                Event::RunTimeout,
            ) => {
                // No run to time out (or not yet due): only the deadline goes.
                if self.timetable.run_deadline.is_some_and(|deadline| deadline <= now) {
                    self.timetable.run_deadline = None;
                }
                Outcome::Nothing
            }
            (State::Scheduled, Event::PortsAllocated(result)) => {
                if let Ok(ports) = result {
                    self.take_ports(ports);
                }
                Outcome::Nothing
            }
            (State::Scheduled, Event::CheckSpawned { pid, .. }) => {
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                Outcome::Nothing
            }
            (State::Scheduled, Event::Spawned(pid)) => {
                crate::never!("{}: spawned pid {pid} while SCHEDULED; killing it", self.name);
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                Outcome::Nothing
            }
            (State::Scheduled, event @ (Event::SpawnFailed { .. } | Event::Exited(_))) => {
                crate::never!("{}: {event:?} while SCHEDULED", self.name);
                Outcome::Nothing
            }
            (State::Scheduled, Event::ProbeDue) => {
                self.probe_due(ctx);
                Outcome::Nothing
            }
            (
                State::Scheduled,
                Event::Pause
                | Event::Resume
                | Event::Timeout
                | Event::PidFile(_)
                | Event::Health { .. }
                | Event::Lifecycle { .. }
                | Event::Ready
                | Event::MainPid(_),
            ) => Outcome::Nothing, // No run, nothing of a process to act on.

            // ---- waiting for dependencies (the supervisor decides when they are met) ----
            (
                State::Stopped | State::Exited { .. } | State::Fatal { .. } | State::Backoff { .. },
                Event::Wait { reason, blocked },
            ) => {
                self.failures = 0;
                self.crashes = 0;
                self.log(ctx, log::Level::Info, format!("WAITING: {reason}"));
                self.enter(now, State::Waiting { reason, blocked });
                Outcome::Nothing
            }
            (State::Waiting { reason: old, .. }, Event::Wait { reason, blocked }) => {
                if *old != reason {
                    let level = if blocked { log::Level::Warn } else { log::Level::Info };
                    self.log(ctx, level, format!("WAITING: {reason}"));
                    self.state = State::Waiting { reason, blocked };
                }
                Outcome::Nothing
            }
            (
                State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Stopping { .. },
                Event::Wait { .. },
            ) => Outcome::Nothing, // Already started: dependencies gate starts only.
            (State::Waiting { .. }, Event::Start) => {
                self.log(ctx, log::Level::Info, "dependencies met; starting".to_string());
                self.spawn(ctx);
                Outcome::Nothing
            }
            (State::Waiting { .. }, Event::Stop) => {
                self.log(ctx, log::Level::Info, "stopped while waiting for its dependencies".to_string());
                self.enter(now, State::Stopped);
                Outcome::Nothing
            }
            (State::Waiting { .. }, Event::Remove) => Outcome::Removed,
            (
                State::Waiting { .. },
                Event::Restart
                | Event::Pause
                | Event::Resume
                | Event::Timeout
                | Event::ProbeDue
                | Event::PidFile(_)
                | Event::Health { .. }
                | Event::Lifecycle { .. }
                | Event::Ready
                | Event::MainPid(_),
            ) => Outcome::Nothing, // Still waiting; nothing of a process to act on.
            (State::Waiting { .. }, Event::PortsAllocated(result)) => {
                if let Ok(ports) = result {
                    self.take_ports(ports);
                }
                Outcome::Nothing
            }
            (State::Waiting { .. }, Event::CheckSpawned { pid, .. }) => {
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                Outcome::Nothing
            }
            (State::Waiting { .. }, event @ (Event::Spawned(_) | Event::SpawnFailed { .. } | Event::Exited(_))) => {
                crate::never!("{}: {event:?} while waiting for dependencies", self.name);
                Outcome::Nothing
            }

            // ---- start ----
            (State::Stopped | State::Exited { .. } | State::Fatal { .. } | State::Backoff { .. }, Event::Start) => {
                self.failures = 0;
                self.crashes = 0;
                self.spawn(ctx);
                Outcome::Nothing
            }
            (
                State::Spawning | State::Starting { .. } | State::WaitingPidFile { .. } | State::Running { .. },
                Event::Start,
            ) => Outcome::Nothing,
            (State::Paused { resume_to }, Event::Start) => {
                let resume_to = resume_to.clone();
                self.resume(ctx, resume_to);
                Outcome::Nothing
            }
            (State::Stopping { .. }, Event::Start) => {
                if self.after_stop != AfterStop::Remove {
                    self.after_stop = AfterStop::Start;
                }
                Outcome::Nothing
            }

            // ---- stop, restart, remove ----
            (
                State::Starting { pid, .. }
                | State::Running { pid, .. }
                | State::Paused { resume_to: Phase::Starting { pid } | Phase::Running { pid, .. } },
                event @ (Event::Stop | Event::Restart | Event::Remove | Event::Schedule),
            ) => {
                let pid = *pid;
                let paused_groups = self.paused_groups();
                self.after_stop = after_stop_for(&event);
                self.begin_stop(ctx, pid);
                // A stopped process cannot act on its stop signal until continued.
                for group in paused_groups {
                    ctx.actions.push_back(Action::Kill { pid: group, signal: Signal::CONT, group: true });
                }
                Outcome::Nothing
            }
            (State::Stopping { .. }, event @ (Event::Stop | Event::Restart | Event::Remove | Event::Schedule)) => {
                if self.after_stop != AfterStop::Remove {
                    self.after_stop = after_stop_for(&event);
                }
                Outcome::Nothing
            }
            (
                State::WaitingPidFile { .. } | State::Paused { resume_to: Phase::WaitingPidFile },
                event @ (Event::Stop | Event::Restart | Event::Remove | Event::Schedule),
            ) => {
                // No daemon known yet: stop whatever the command left in its process group.
                let paused_groups = self.paused_groups();
                if let Some(launcher) = self.launcher {
                    ctx.actions.push_back(Action::Kill { pid: launcher, signal: self.spec.stopsignal, group: true });
                }
                for group in paused_groups {
                    ctx.actions.push_back(Action::Kill { pid: group, signal: Signal::CONT, group: true });
                }
                self.probe.pid_file_at = None; // Nothing left to look for.
                self.log(ctx, log::Level::Info, "stopped before its pid file appeared".to_string());
                self.enter(now, State::Stopped);
                match after_stop_for(&event) {
                    AfterStop::Stay | AfterStop::FailedStart | AfterStop::Unhealthy { .. } => Outcome::Nothing,
                    AfterStop::Start => {
                        self.spawn(ctx);
                        Outcome::Nothing
                    }
                    AfterStop::Remove => Outcome::Removed,
                    AfterStop::Schedule => self.end_run(ctx, "stopped before its pid file appeared".to_string(), None),
                }
            }
            (
                State::Stopped | State::Spawning | State::Backoff { .. } | State::Exited { .. } | State::Fatal { .. },
                event @ (Event::Stop | Event::Restart | Event::Remove),
            ) => match after_stop_for(&event) {
                AfterStop::Stay | AfterStop::FailedStart | AfterStop::Unhealthy { .. } => {
                    if self.state != State::Stopped {
                        self.log(ctx, log::Level::Info, "stopped".to_string());
                        self.enter(now, State::Stopped);
                    }
                    Outcome::Nothing
                }
                AfterStop::Start => {
                    self.failures = 0;
                    self.crashes = 0;
                    self.spawn(ctx);
                    Outcome::Nothing
                }
                AfterStop::Remove => Outcome::Removed,
                AfterStop::Schedule => {
                    crate::never!("{}: Schedule in {} is decided above", self.name, self.state.name());
                    Outcome::Nothing
                }
            },

            // ---- pause, resume ----
            (State::Starting { pid, .. }, Event::Pause) => {
                // The starting window stops here: a stopped process proves nothing.
                let pid = *pid;
                self.log(
                    ctx,
                    log::Level::Info,
                    format!("pausing before it was ready: sending SIGSTOP to process group {pid}; PAUSED"),
                );
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::STOP, group: true });
                self.enter(now, State::Paused { resume_to: Phase::Starting { pid } });
                Outcome::Nothing
            }
            (State::Running { pid, since }, Event::Pause) => {
                let (pid, since) = (*pid, *since);
                self.log(ctx, log::Level::Info, format!("pausing: sending SIGSTOP to process group {pid}; PAUSED"));
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::STOP, group: true });
                self.enter(now, State::Paused { resume_to: Phase::Running { pid, since } });
                Outcome::Nothing
            }
            (State::WaitingPidFile { .. }, Event::Pause) => {
                // No daemon known yet. Stop what is left in the launcher's group (a daemon that
                // kept it), and watch the pid file so that the daemon it names is stopped too.
                let groups: Vec<Pid> = self.launcher.into_iter().collect();
                for &group in &groups {
                    ctx.actions.push_back(Action::Kill { pid: group, signal: Signal::STOP, group: true });
                }
                self.log(
                    ctx,
                    log::Level::Info,
                    format!(
                        "pausing before its pid file appeared: sending SIGSTOP to {}; PAUSED, and the daemon it \
                         names is paused too",
                        process_groups(&groups)
                    ),
                );
                self.enter(now, State::Paused { resume_to: Phase::WaitingPidFile });
                self.check_pid_file(ctx);
                Outcome::Nothing
            }
            (State::Paused { resume_to }, Event::Resume) => {
                let resume_to = resume_to.clone();
                self.resume(ctx, resume_to);
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Pause,
            )
            | (
                State::Stopped
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Resume,
            ) => Outcome::Nothing, // The request reports the state; nothing to do.

            // ---- spawn results ----
            (State::Spawning, Event::Spawned(pid)) => {
                self.log(ctx, log::Level::Info, format!("spawned with pid {pid}"));
                if let Some(schedule) = &self.spec.schedule {
                    self.timetable.begin_run(schedule, now, ctx.wall);
                }
                self.checks = 0;
                self.probe.watchdog_every = None;
                self.notify_status = None;
                self.notify_flags.clear();
                self.notify_errno = None;
                if self.pid_mode() {
                    self.launcher = Some(pid);
                    self.daemon = None;
                    self.enter(now, State::Starting { pid, up_at: Some(now + self.start_window()) });
                } else if self.readiness() == Readiness::Starttime && self.spec.starttime.is_zero() {
                    self.become_running(ctx, pid);
                } else {
                    // Starttime: ready at its deadline. Notify, fd, health: ready when the program
                    // or its check says so, within ready_timeout.
                    let up_at = self.begin_start_window(now);
                    self.enter(now, State::Starting { pid, up_at });
                }
                Outcome::Nothing
            }
            (State::Spawning, Event::SpawnFailed { error, transient: true }) => {
                // Out of descriptors, memory or processes: a failed start, retried with backoff.
                self.start_failed(ctx, format!("cannot start: {error}"), 1, None)
            }
            (State::Spawning, Event::SpawnFailed { error, transient: false })
                if self.spec.schedule.is_some() && !ctx.shutting_down =>
            {
                // The next fire time tries again.
                self.end_run(ctx, format!("cannot start: {error}"), None)
            }
            (State::Spawning, Event::SpawnFailed { error, transient: false }) => {
                self.log(ctx, log::Level::Error, format!("cannot start: {error}; FATAL"));
                self.enter(now, State::Fatal { reason: error });
                self.critical_outcome(1)
            }
            (
                State::Stopped
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Spawned(pid),
            ) => {
                crate::never!("{}: spawned pid {pid} while {}; killing it", self.name, self.state.name());
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::SpawnFailed { error, .. },
            ) => {
                crate::never!("{}: spawn failure while {}: {error}", self.name, self.state.name());
                Outcome::Nothing
            }

            // ---- exits ----
            (State::Starting { pid, up_at: Some(up_at) }, Event::Exited(ExitStatus::Exited(0)))
                if self.pid_mode() && self.launcher == Some(*pid) =>
            {
                // The command daemonized: its job is done, the pid file tells the rest. (A daemon
                // named by its pid file while paused is `Starting` too; its exit is a failed start.)
                let up_at = *up_at;
                self.enter(now, State::WaitingPidFile { up_at });
                self.check_pid_file(ctx);
                Outcome::Nothing
            }
            (State::Paused { resume_to: Phase::Starting { pid } }, Event::Exited(ExitStatus::Exited(0)))
                if self.pid_mode() && self.launcher == Some(*pid) =>
            {
                // The command daemonized before SIGSTOP reached it: still paused, now waiting for
                // the pid file, whose daemon is stopped as soon as it is named.
                self.enter(now, State::Paused { resume_to: Phase::WaitingPidFile });
                self.check_pid_file(ctx);
                Outcome::Nothing
            }
            (State::Starting { up_at: Some(up_at), .. }, Event::Exited(status))
                if *up_at <= now && !self.pid_mode() =>
            {
                // Up for starttime, but the exit arrived before the deadline was handled (a busy
                // daemon): the run counts as started.
                let since = *up_at - self.spec.starttime;
                self.failures = 0;
                self.exited_after_running(ctx, since, format!("exited with {status}"), Some(status))
            }
            (State::Starting { .. } | State::Paused { resume_to: Phase::Starting { .. } }, Event::Exited(status)) => {
                // Before readiness, paused or not, an exit is a failed start: a paused start has
                // no deadline, so it never counts as up.
                self.kill_leftovers(ctx);
                self.start_failed(ctx, format!("exited with {status}"), status.shell_code(), Some(status))
            }
            (
                State::Running { since, .. } | State::Paused { resume_to: Phase::Running { since, .. } },
                Event::Exited(status),
            ) => {
                let since = *since;
                self.kill_leftovers(ctx);
                self.exited_after_running(ctx, since, format!("exited with {status}"), Some(status))
            }
            (State::Stopping { pid, .. }, Event::Exited(status)) => {
                let pid = *pid;
                self.last_exit = Some(status);
                self.note.exit = Some((status, true));
                self.log(ctx, log::Level::Info, format!("stopped ({status})"));
                self.sweep_tree(ctx, pid);
                self.kill_leftovers(ctx);
                self.enter(now, State::Stopped);
                self.finish_stop(ctx)
            }
            (
                State::Stopped
                | State::Spawning
                | State::WaitingPidFile { .. }
                | State::Paused { resume_to: Phase::WaitingPidFile }
                | State::Backoff { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Exited(status),
            ) => {
                crate::never!("{}: exit ({status}) while {} with no pid", self.name, self.state.name());
                Outcome::Nothing
            }

            // ---- deadlines ----
            (State::Starting { pid, up_at }, Event::Timeout) => {
                if up_at.is_some_and(|up_at| up_at <= now) {
                    let pid = *pid;
                    if self.pid_mode() {
                        self.check_pid_file(ctx);
                    } else {
                        self.become_running(ctx, pid);
                    }
                }
                Outcome::Nothing
            }
            (State::WaitingPidFile { up_at }, Event::Timeout) => {
                if *up_at <= now {
                    self.check_pid_file(ctx);
                }
                Outcome::Nothing
            }
            (State::Backoff { retry_at, .. }, Event::Timeout) => {
                if *retry_at <= now && !ctx.shutting_down {
                    self.spawn(ctx);
                }
                Outcome::Nothing
            }
            (State::Stopping { pid, next_at: Some(next_at), step }, Event::Timeout) => {
                if *next_at <= now {
                    let (pid, step) = (*pid, *step);
                    self.next_stop_step(ctx, pid, step);
                }
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::Running { .. }
                | State::Paused { .. }
                | State::Stopping { next_at: None, .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Timeout,
            ) => Outcome::Nothing,

            // ---- readiness the program announces ----
            (State::Starting { pid, up_at: None }, Event::Ready)
                if matches!(self.readiness(), Readiness::Notify | Readiness::Fd(_)) =>
            {
                let pid = *pid;
                self.log(ctx, log::Level::Info, "ready (the program said so)".to_string());
                self.become_running(ctx, pid);
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Ready,
            ) => Outcome::Nothing, // Already ready, or not waiting for it (a paused start resumes first).
            (State::Starting { pid, up_at }, Event::MainPid(new_pid)) => {
                let (old, up_at) = (*pid, *up_at);
                if new_pid != old {
                    self.log(ctx, log::Level::Info, format!("MAINPID={new_pid} (was {old}); following it"));
                    self.state = State::Starting { pid: new_pid, up_at };
                }
                Outcome::Nothing
            }
            (State::Running { pid, since }, Event::MainPid(new_pid)) => {
                let (old, since) = (*pid, *since);
                if new_pid != old {
                    self.log(ctx, log::Level::Info, format!("MAINPID={new_pid} (was {old}); following it"));
                    self.state = State::Running { pid: new_pid, since };
                }
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::WaitingPidFile { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::MainPid(_),
            ) => Outcome::Nothing,

            // ---- probes ----
            (
                State::Stopped
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::ProbeDue,
            ) => {
                self.probe_due(ctx);
                Outcome::Nothing
            }
            (State::Starting { .. } | State::Running { .. }, Event::Health { seq, result }) => {
                self.health_result(ctx, seq, result)
            }
            (
                State::Stopped
                | State::Spawning
                | State::WaitingPidFile { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Health { .. },
            ) => Outcome::Nothing, // A late answer: checks stopped with the state.
            (
                State::Stopped
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::CheckSpawned { seq, pid },
            ) => {
                let current = self.probe.health.as_mut().and_then(|health| health.in_flight.as_mut());
                match current {
                    Some(in_flight) if in_flight.seq == seq => in_flight.pid = Some(pid),
                    _ => {
                        // Its check was given up meanwhile: it must not run on unwatched.
                        ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                    }
                }
                Outcome::Nothing
            }
            (State::Stopping { pid, step, .. }, Event::Lifecycle { seq, result }) => {
                let (pid, step) = (*pid, *step);
                let current =
                    matches!(step, StopStep::GracefulPost { seq: s } | StopStep::AbortPost { seq: s } if s == seq);
                if current {
                    match result {
                        ProbeResult::Refused => {
                            // Nothing listens: skip the wait.
                            self.log(ctx, log::Level::Info, "lifecycle endpoint refused the connection".to_string());
                            self.next_stop_step(ctx, pid, step);
                        }
                        ProbeResult::Http { status, .. } => {
                            self.log(ctx, log::Level::Debug, format!("lifecycle endpoint answered HTTP {status}"));
                        }
                        other => {
                            self.log(ctx, log::Level::Debug, format!("lifecycle endpoint: {other:?}"));
                        }
                    }
                }
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Lifecycle { .. },
            ) => Outcome::Nothing, // A late answer for a stop already over.
            (State::Spawning, Event::PortsAllocated(Ok(ports))) => {
                if ports.iter().any(|port| ctx.held_ports.contains_key(port)) {
                    // Another instance got it meanwhile (requests made together exclude each
                    // other's answers only once those are in): ask again, excluding it now.
                    let mut exclude: Vec<u16> = ctx.held_ports.keys().copied().collect();
                    exclude.sort_unstable();
                    ctx.actions.push_back(Action::AllocatePorts { id: self.id, count: ports.len(), exclude });
                    return Outcome::Nothing;
                }
                self.take_ports(ports);
                self.push_spawn(ctx);
                Outcome::Nothing
            }
            (State::Spawning, Event::PortsAllocated(Err(error))) => {
                // Like running out of descriptors: a failed start, retried with backoff.
                self.start_failed(ctx, format!("cannot allocate ports: {error}"), 1, None)
            }
            (
                State::Stopped
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Running { .. }
                | State::Paused { .. }
                | State::Backoff { .. }
                | State::Stopping { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::PortsAllocated(result),
            ) => {
                if let Ok(ports) = result {
                    self.take_ports(ports);
                }
                Outcome::Nothing
            }
            (
                State::Starting { .. } | State::WaitingPidFile { .. },
                Event::PidFile(PidObservation::Alive { pid, start_time }),
            ) => {
                self.daemon = Some((pid, start_time));
                self.log(ctx, log::Level::Info, format!("pid file names pid {pid}, alive"));
                self.become_running(ctx, pid);
                Outcome::Nothing
            }
            (
                State::Starting { up_at: Some(up_at), .. } | State::WaitingPidFile { up_at },
                Event::PidFile(PidObservation::Gone { reason }),
            ) => {
                if *up_at > now {
                    return Outcome::Nothing; // Still within starttime: the deadline checks again.
                }
                self.kill_leftovers(ctx);
                let why = format!("no live pid within starttime: {reason}");
                self.start_failed(ctx, why, 1, None)
            }
            (
                State::Running { pid, since } | State::Paused { resume_to: Phase::Running { pid, since } },
                Event::PidFile(PidObservation::Alive { pid: new_pid, start_time }),
            ) => {
                let (old_pid, since) = (*pid, *since);
                self.checks += 1;
                self.daemon = Some((new_pid, start_time));
                if new_pid != old_pid {
                    self.log(
                        ctx,
                        log::Level::Info,
                        format!("pid file now names pid {new_pid} (was {old_pid}); following it"),
                    );
                    self.state = match self.state {
                        State::Paused { .. } => State::Paused { resume_to: Phase::Running { pid: new_pid, since } },
                        _ => State::Running { pid: new_pid, since },
                    };
                }
                Outcome::Nothing
            }
            (
                State::Running { since, .. } | State::Paused { resume_to: Phase::Running { since, .. } },
                Event::PidFile(PidObservation::Gone { reason }),
            ) => {
                let since = *since;
                self.kill_leftovers(ctx);
                self.exited_after_running(ctx, since, format!("daemon is gone ({reason})"), None)
            }
            (State::Stopping { pid, .. }, Event::PidFile(PidObservation::Gone { reason })) => {
                let pid = *pid;
                self.log(ctx, log::Level::Info, format!("stopped ({reason})"));
                self.sweep_tree(ctx, pid);
                self.kill_leftovers(ctx);
                self.enter(now, State::Stopped);
                self.finish_stop(ctx)
            }
            (State::Stopping { .. }, Event::PidFile(PidObservation::Alive { .. })) => Outcome::Nothing,
            (
                State::Stopped
                | State::Spawning
                | State::Starting { up_at: None, .. }
                | State::Backoff { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::PidFile(_),
            ) => Outcome::Nothing, // A late answer for a state already left.
            (
                State::Paused { resume_to: Phase::WaitingPidFile },
                Event::PidFile(PidObservation::Alive { pid, start_time }),
            ) => {
                // Named while paused: stop it too. Not readiness: it becomes RUNNING only after a
                // resume, when the pid file names it again at the end of a new window.
                self.daemon = Some((pid, start_time));
                self.probe.pid_file_at = None;
                self.log(
                    ctx,
                    log::Level::Info,
                    format!("pid file names pid {pid}, alive; sending SIGSTOP to process group {pid}; PAUSED"),
                );
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::STOP, group: true });
                self.state = State::Paused { resume_to: Phase::Starting { pid } };
                Outcome::Nothing
            }
            (State::Paused { resume_to: Phase::WaitingPidFile }, Event::PidFile(PidObservation::Gone { .. })) => {
                Outcome::Nothing // Not there yet; the monitor interval looks again.
            }
            (State::Paused { resume_to: Phase::Starting { .. } }, Event::PidFile(_)) => {
                // A check asked for before the pause: readiness is judged after the resume, when
                // the starting window has run again.
                Outcome::Nothing
            }
        }
    }

    /// Asks the driver to read the pid file; re-arms the monitor check.
    fn check_pid_file(&mut self, ctx: &mut Ctx<'_>) {
        let Some(path) = self.launch().pid_file else { return };
        self.probe.pid_file_at = Some(ctx.now + self.spec.monitor_interval);
        let seq = self.probe.next_seq();
        let check = ProbeCheck::PidFile { path, known: self.daemon };
        ctx.actions.push_back(Action::RunProbe { id: self.id, seq, check, snooze: None });
    }

    /// Pid-file programs: stops what a dead daemon or failed launch left behind (the daemon's
    /// process group and the launcher's), so nothing holds the port the next one needs.
    fn kill_leftovers(&mut self, ctx: &mut Ctx<'_>) {
        if !self.pid_mode() {
            return;
        }
        let groups: Vec<Pid> = self.daemon.map(|(pid, _)| pid).into_iter().chain(self.launcher).collect();
        for pid in groups {
            ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
        }
        self.daemon = None;
        self.launcher = None;
        self.probe.pid_file_at = None;
    }

    /// After a stop completed: stay down, start again, or go away.
    fn finish_stop(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        // A scheduled run stopped for the next one (overlap: kill, `ctl restart`) is recorded
        // before that one begins.
        if self.after_stop == AfterStop::Start && self.timetable.run.is_some() {
            let why = std::mem::take(&mut self.run_end_why);
            let why = if why.is_empty() { "stopped for a new run".to_string() } else { why };
            let status = self.last_exit.map_or(String::new(), |status| format!("; {status}"));
            self.timetable.end_run(ctx.now, ctx.wall, format!("{why}{status}"));
        }
        match self.after_stop {
            AfterStop::Schedule if ctx.shutting_down => Outcome::Nothing,
            AfterStop::Schedule => {
                let why = std::mem::take(&mut self.run_end_why);
                let why = if why.is_empty() { "stopped".to_string() } else { why };
                let status = self.last_exit.map_or(String::new(), |status| format!("; {status}"));
                self.end_run(ctx, format!("{why}{status}"), None)
            }
            AfterStop::Stay => Outcome::Nothing,
            AfterStop::Start if ctx.shutting_down => Outcome::Nothing,
            AfterStop::Start => {
                self.failures = 0;
                self.crashes = 0;
                self.spawn(ctx);
                Outcome::Nothing
            }
            AfterStop::Remove => Outcome::Removed,
            AfterStop::FailedStart | AfterStop::Unhealthy { .. } if ctx.shutting_down => Outcome::Nothing,
            AfterStop::FailedStart => {
                let why = std::mem::take(&mut self.recover_why);
                self.start_failed(ctx, why, 1, None)
            }
            AfterStop::Unhealthy { since } => {
                let why = std::mem::take(&mut self.recover_why);
                self.exited_after_running(ctx, since, why, None)
            }
        }
    }

    /// A failed start (exit before `starttime`, or no pid file): back off and retry, or give
    /// up. `why` says what happened; `code` is the exit code a critical failure exits with.
    fn start_failed(&mut self, ctx: &mut Ctx<'_>, why: String, code: u8, status: Option<ExitStatus>) -> Outcome {
        if let Some(status) = status {
            // Scheduled runs judge their exit by `exitcodes` (end_run); other failed starts are unexpected.
            let expected = self.spec.schedule.is_some()
                && matches!(status, ExitStatus::Exited(code) if self.spec.exitcodes.contains(&code));
            self.note.exit = Some((status, expected));
        }
        if self.spec.schedule.is_some() && !ctx.shutting_down {
            // A scheduled run is not kept up: a short one is a run, not a failed start.
            return self.end_run(ctx, why, status);
        }
        let now = ctx.now;
        if status.is_some() {
            self.last_exit = status;
        }
        self.failures += 1;
        if ctx.shutting_down {
            self.log(ctx, log::Level::Info, format!("{why} while starting"));
            self.enter(now, State::Stopped);
            return Outcome::Nothing;
        }
        if self.failures > self.spec.startretries {
            let reason = format!("{why} {}, {} failed starts in a row", self.readiness_text(true), self.failures);
            self.log(ctx, log::Level::Error, format!("{reason}; FATAL"));
            self.enter(now, State::Fatal { reason });
            return self.critical_outcome(code);
        }
        let delay = backoff_delay(self.failures, ctx.rng);
        let reason = format!("{why} {}", self.readiness_text(false));
        self.log(
            ctx,
            log::Level::Warn,
            format!(
                "{reason}; BACKOFF, retry {} of {} in {}",
                self.failures,
                self.spec.startretries,
                human_duration(delay)
            ),
        );
        self.enter(now, State::Backoff { retry_at: now + delay, reason });
        Outcome::Nothing
    }

    /// An exit of an instance that had started: restart per `autorestart`, with
    /// `restart_delay` and the crash-loop backoff, or stay EXITED.
    fn exited_after_running(
        &mut self,
        ctx: &mut Ctx<'_>,
        since: Instant,
        why: String,
        status: Option<ExitStatus>,
    ) -> Outcome {
        if self.spec.schedule.is_some() && !ctx.shutting_down {
            return self.end_run(ctx, why, status);
        }
        let now = ctx.now;
        let ran_for = now.saturating_duration_since(since);
        if status.is_some() {
            self.last_exit = status;
        }
        // A daemon that vanished without an exit status we saw is unexpected.
        let expected = match status {
            Some(ExitStatus::Exited(code)) => self.spec.exitcodes.contains(&code),
            Some(ExitStatus::Signaled { .. }) | None => false,
        };
        if let Some(status) = status {
            self.note.exit = Some((status, expected));
        }
        let code = status.map_or(1, ExitStatus::shell_code);
        let restart = !ctx.shutting_down
            && match self.spec.autorestart {
                AutoRestart::Always => true,
                AutoRestart::Never => false,
                AutoRestart::Unexpected => !expected,
            };
        let kind = if expected { "expected" } else { "unexpected" };
        if !restart {
            self.log(ctx, log::Level::Info, format!("{why} ({kind}); EXITED"));
            let status = status.unwrap_or(ExitStatus::Exited(code));
            self.enter(now, State::Exited { status, expected });
            // A critical program that will not come back takes the container down.
            return if self.spec.critical && !ctx.shutting_down {
                Outcome::CriticalFailure(code)
            } else {
                Outcome::Nothing
            };
        }
        if ran_for < self.spec.stability_window {
            self.crashes += 1;
        } else {
            self.crashes = 0;
        }
        let mut delay = self.spec.restart_delay;
        if self.crashes >= 2 {
            delay += backoff_delay(self.crashes - 1, ctx.rng);
        }
        if delay.is_zero() {
            self.log(ctx, log::Level::Warn, format!("{why} ({kind}); restarting"));
            self.spawn(ctx);
            return Outcome::Nothing;
        }
        let reason = format!("{why} ({kind})");
        let crash_note = if self.crashes >= 2 {
            format!(", crash {} in a row within {}", self.crashes, human_duration(self.spec.stability_window))
        } else {
            String::new()
        };
        self.log(
            ctx,
            log::Level::Warn,
            format!("{reason}; BACKOFF, restarting in {}{crash_note}", human_duration(delay)),
        );
        self.enter(now, State::Backoff { retry_at: now + delay, reason });
        Outcome::Nothing
    }

    /// Continues a paused instance in the phase it was paused in. Paused before readiness, it
    /// is STARTING again with the full starting window, not what was left of it: the time spent
    /// stopped proved nothing, and an instance paused just before its deadline would otherwise
    /// count as ready moments after it was continued, before it had run long enough to fail.
    fn resume(&mut self, ctx: &mut Ctx<'_>, resume_to: Phase) {
        let now = ctx.now;
        let groups = self.paused_groups();
        for &group in &groups {
            ctx.actions.push_back(Action::Kill { pid: group, signal: Signal::CONT, group: true });
        }
        let continued = format!("sending SIGCONT to {}", process_groups(&groups));
        let window = human_duration(self.start_window());
        match resume_to {
            Phase::Starting { pid } => {
                let text = format!("resuming before it was ready: {continued}; STARTING again for {window}");
                self.log(ctx, log::Level::Info, text);
                let up_at = self.begin_start_window(now);
                self.enter(now, State::Starting { pid, up_at });
            }
            Phase::WaitingPidFile => {
                let text = format!("resuming before its pid file appeared: {continued}; STARTING again for {window}");
                self.log(ctx, log::Level::Info, text);
                self.enter(now, State::WaitingPidFile { up_at: now + self.start_window() });
                self.check_pid_file(ctx);
            }
            Phase::Running { pid, since } => {
                self.log(ctx, log::Level::Info, format!("resuming: {continued}; RUNNING"));
                self.enter(now, State::Running { pid, since });
                self.keep_checking_health(now);
            }
        }
    }

    /// The process groups a pause stopped, to continue on resume or stop: the paused process's
    /// and, for a pid-file program paused before readiness, the launcher's (stopped by a pause
    /// while waiting for the pid file). Empty unless paused.
    fn paused_groups(&self) -> Vec<Pid> {
        let State::Paused { resume_to } = &self.state else { return Vec::new() };
        match resume_to {
            Phase::Running { pid, .. } => vec![*pid],
            Phase::Starting { pid } => {
                let launcher = self.launcher.filter(|launcher| self.pid_mode() && launcher != pid);
                std::iter::once(*pid).chain(launcher).collect()
            }
            Phase::WaitingPidFile => self.launcher.into_iter().collect(),
        }
    }

    /// What a start has to pass, for messages: `before starttime (1s)`, or, with a health check
    /// as the readiness step, `before its health check passed`.
    fn readiness_text(&self, with_time: bool) -> String {
        if self.readiness() == Readiness::Health {
            "before its health check passed".to_string()
        } else if matches!(self.readiness(), Readiness::Notify | Readiness::Fd(_)) {
            "before it said it was ready".to_string()
        } else if with_time {
            format!("before starttime ({})", human_duration(self.spec.starttime))
        } else {
            "before starttime".to_string()
        }
    }

    /// How long a start has to prove itself: `starttime`, and at least `PID_FILE_GRACE` for a
    /// pid-file program, whose daemon needs a moment to fork and write its pid file.
    fn start_window(&self) -> Duration {
        if self.pid_mode() {
            self.spec.starttime.max(PID_FILE_GRACE)
        } else {
            self.spec.starttime
        }
    }

    /// Turns the schedule on: sets the next fire time unless one is set (scheduled programs only).
    fn arm_timetable(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(schedule) = &self.spec.schedule {
            self.timetable.arm(schedule, ctx.now, ctx.wall);
        }
    }

    /// A fire time came: the timetable moves on to the next one. Returns the time that fired
    /// (`None` if the program is not scheduled).
    fn fired(&mut self, ctx: &mut Ctx<'_>) -> Option<String> {
        let schedule = self.spec.schedule.as_ref()?;
        let fired = self.timetable.next.map(|fire| fire.wall);
        self.timetable.advance(schedule, ctx.now, ctx.wall);
        Some(fired.map_or_else(|| "(none)".to_string(), crate::schedule::format_utc))
    }

    /// A scheduled run is over (`result` says how): recorded, and SCHEDULED until the next fire time.
    fn end_run(&mut self, ctx: &mut Ctx<'_>, result: String, status: Option<ExitStatus>) -> Outcome {
        if status.is_some() {
            self.last_exit = status;
        }
        // An exit is recorded as its status (`exit status 0`), as `status` shows exits.
        let result = status.map_or(result, |status| status.to_string());
        self.failures = 0;
        self.crashes = 0;
        self.run_end_why.clear();
        let expected = match status {
            Some(ExitStatus::Exited(code)) => self.spec.exitcodes.contains(&code),
            Some(ExitStatus::Signaled { .. }) | None => false,
        };
        if let Some(status) = status {
            self.note.exit = Some((status, expected));
        }
        let took = self.timetable.end_run(ctx.now, ctx.wall, result.clone());
        let level = if expected { log::Level::Info } else { log::Level::Warn };
        let kind = match status {
            Some(_) if expected => " (expected)",
            Some(_) => " (unexpected)",
            None => "",
        };
        self.enter_scheduled(ctx, level, format!("run ended after {}: {result}{kind}", human_duration(took)))
    }

    /// Idle until the next fire time: SCHEDULED, logged with `lead` and that time.
    fn enter_scheduled(&mut self, ctx: &mut Ctx<'_>, level: log::Level, lead: String) -> Outcome {
        self.arm_timetable(ctx);
        let next = match self.timetable.next {
            Some(fire) => format!("next run at {}", crate::schedule::format_utc(fire.wall)),
            None => "no fire time ahead".to_string(),
        };
        self.log(ctx, level, format!("{lead}; SCHEDULED, {next}"));
        self.enter(ctx.now, State::Scheduled);
        Outcome::Nothing
    }

    /// The stop sequence ends when the main process has gone: whatever is left of its tree
    /// (a worker that outlived it, a daemon it left behind) is killed, as a container runtime
    /// does when PID 1 exits. Only at the end of a stop: a program that exits by itself, or a
    /// pid-file launcher, leaves its descendants alone.
    fn sweep_tree(&mut self, ctx: &mut Ctx<'_>, pid: Pid) {
        ctx.actions.push_back(Action::SweepTree { pid, instance: self.name.clone() });
    }

    /// Kills the process and its whole tree now (second shutdown request).
    pub(crate) fn kill_now(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(pid) = self.state.pid() {
            ctx.actions.push_back(Action::KillTree { pid, signal: Signal::KILL, instance: self.name.clone() });
            self.state = State::Stopping { pid, next_at: None, step: StopStep::Killed };
            self.after_stop = AfterStop::Stay;
        }
    }

    /// Starts the instance: first the ports it lacks (answered with `PortsAllocated`), then
    /// the process.
    fn spawn(&mut self, ctx: &mut Ctx<'_>) {
        self.after_stop = AfterStop::Stay;
        // `ctl start` of a scheduled program turns its schedule on again.
        self.arm_timetable(ctx);
        self.enter(ctx.now, State::Spawning);
        // A new run takes the spec as it is now (a reload may have changed the check or the
        // ports); the old process was stopped with the old ones.
        if self.probe.health.as_ref().map(|health| &health.check) != self.spec.health_check.as_ref() {
            self.probe.health = self.spec.health_check.clone().map(super::probe::Health::new);
        }
        if self.allocated.len() == self.allocated_names() {
            let allocated = std::mem::take(&mut self.allocated);
            self.take_ports(allocated);
        } else {
            self.allocated.clear();
        }
        let wanted = self.allocated_names();
        if self.allocated.len() != wanted {
            let mut exclude: Vec<u16> = ctx.held_ports.keys().copied().collect();
            exclude.sort_unstable();
            ctx.actions.push_back(Action::AllocatePorts { id: self.id, count: wanted, exclude });
            return;
        }
        self.push_spawn(ctx);
    }

    fn push_spawn(&mut self, ctx: &mut Ctx<'_>) {
        ctx.actions.push_back(Action::Spawn {
            id: self.id,
            name: self.name.clone(),
            launch: self.launch(),
            prefix: self.spec.prefix,
            tail_buffer: self.spec.tail_buffer,
            extras: SpawnExtras {
                program: self.spec.name.clone(),
                notify: self.readiness() == Readiness::Notify,
                ready_fd: match self.readiness() {
                    Readiness::Fd(fd) => Some(fd),
                    _ => None,
                },
                watchdog: self.spec.watchdog.filter(|_| self.readiness() == Readiness::Notify),
                stdout_rotate: self.spec.stdout_rotate,
                stderr_rotate: self.spec.stderr_rotate,
            },
        });
    }

    /// What this instance runs, every template expanded with its number and its ports.
    /// What the instance runs: the spec's launch, with `SV_LITE_INSTANCE=name:N` added (unless
    /// the program sets it), so that a process that left the instance's tree (setsid, double
    /// fork) can still be found as the instance's when it is stopped.
    pub(crate) fn launch(&self) -> crate::spec::Launch {
        let mut launch = self.launch_spec();
        if !launch.env.iter().any(|(name, _)| name == INSTANCE_VAR) {
            launch.env.push((INSTANCE_VAR.to_string(), self.name.clone()));
        }
        launch
    }

    fn launch_spec(&self) -> crate::spec::Launch {
        self.spec.launch(self.index, &self.ports)
    }

    /// `text` with the instance's templates (`%(name)s`, `{{ports[NAME]}}`...) expanded.
    fn expand(&self, text: &str) -> String {
        self.spec.expand(text, self.index, &self.ports)
    }

    /// How many of the program's ports are allocated (rather than fixed or aliases).
    fn allocated_names(&self) -> usize {
        self.spec.ports.iter().filter(|(_, port)| *port == PortSpec::Allocate).count()
    }

    /// Keeps the ports found for the allocated names; they stay with the instance across its
    /// restarts, until it is removed.
    fn take_ports(&mut self, numbers: Vec<u16>) {
        if numbers.len() != self.allocated_names() {
            crate::never!("{}: {} ports allocated for {} names", self.name, numbers.len(), self.allocated_names());
            return;
        }
        self.allocated = numbers;
        let names = self.spec.ports.iter().filter(|(_, port)| *port == PortSpec::Allocate).map(|(name, _)| name);
        let assigned: Vec<(String, u16)> = names.cloned().zip(self.allocated.iter().copied()).collect();
        self.ports = self.spec.resolve_ports(&assigned);
    }

    /// The number of a port given by name or number, if the instance has it.
    pub(crate) fn port(&self, port: &PortRef) -> Option<u16> {
        match port {
            PortRef::Number(number) => Some(*number),
            PortRef::Named(name) => self.ports.iter().find(|(known, _)| known == name).map(|(_, number)| *number),
        }
    }

    /// The snooze file of the instance: `.healthchecksnooze` in its working directory (the
    /// daemon's own when it has none). Instances that share a directory share the snooze.
    pub(crate) fn snooze_path(&self) -> std::path::PathBuf {
        let dir = self.launch().workingdir.unwrap_or_else(|| std::path::PathBuf::from("."));
        dir.join(SNOOZE_FILE)
    }

    /// A new starting window from `now`: the starttime deadline, or, with a health check, none
    /// (the check begins again and decides).
    fn begin_start_window(&mut self, now: Instant) -> Option<Instant> {
        self.probe.ready_by = None;
        match self.readiness() {
            Readiness::Starttime | Readiness::PidFile => Some(now + self.start_window()),
            Readiness::Health => {
                if let Some(health) = &mut self.probe.health {
                    health.begin(now, HealthPhase::Starting);
                }
                None
            }
            Readiness::Notify | Readiness::Fd(_) => None,
        }
    }

    /// Begins the stop sequence: the HTTP lifecycle POSTs when the program has them, else the
    /// stop signal.
    fn begin_stop(&mut self, ctx: &mut Ctx<'_>, pid: Pid) {
        let verb = match self.after_stop {
            AfterStop::Stay => "stopping",
            AfterStop::Start => "restarting",
            AfterStop::Remove => "removing",
            AfterStop::FailedStart | AfterStop::Unhealthy { .. } => "restarting",
            AfterStop::Schedule => "ending the run",
        };
        self.enter(ctx.now, State::Stopping { pid, next_at: None, step: StopStep::Killed });
        if self.post_lifecycle(ctx, pid, false, verb) {
            return;
        }
        let signal = self.spec.stopsignal;
        self.log(ctx, log::Level::Info, format!("{verb}: sending {signal} to process group {pid}"));
        ctx.actions.push_back(Action::KillTree { pid, signal, instance: self.name.clone() });
        self.state = State::Stopping { pid, next_at: Some(ctx.now + self.spec.stoptime), step: StopStep::Signal };
    }

    /// POSTs the graceful (or, with `abort`, the abort) lifecycle endpoint and waits for the
    /// exit; false when the program has no lifecycle, or its port has no number.
    fn post_lifecycle(&mut self, ctx: &mut Ctx<'_>, pid: Pid, abort: bool, lead: &str) -> bool {
        let Some(lifecycle) = self.spec.lifecycle.clone() else { return false };
        let Some(port) = self.port(&lifecycle.port) else { return false };
        let (endpoint, wait) = if abort {
            (&lifecycle.shutdown_endpoint, lifecycle.shutdown_wait)
        } else {
            (&lifecycle.graceful_shutdown_endpoint, lifecycle.graceful_shutdown_wait)
        };
        let path = self.expand(endpoint);
        let seq = self.probe.next_seq();
        self.log(
            ctx,
            log::Level::Info,
            format!("{lead}: POST {path} to port {port}, waiting up to {}", human_duration(wait)),
        );
        ctx.actions.push_back(Action::RunProbe {
            id: self.id,
            seq,
            check: ProbeCheck::HttpPost { port, path },
            snooze: None,
        });
        let step = if abort { StopStep::AbortPost { seq } } else { StopStep::GracefulPost { seq } };
        self.state = State::Stopping { pid, next_at: Some(ctx.now + wait), step };
        true
    }

    /// Moves a stop sequence on from `step` (its wait is over, or its endpoint refused).
    fn next_stop_step(&mut self, ctx: &mut Ctx<'_>, pid: Pid, step: StopStep) {
        let now = ctx.now;
        match step {
            StopStep::GracefulPost { .. } => {
                if !self.post_lifecycle(ctx, pid, true, "still running") {
                    self.next_stop_step(ctx, pid, StopStep::AbortPost { seq: 0 });
                }
            }
            StopStep::AbortPost { .. } => {
                let signal = self.spec.stopsignal;
                self.log(ctx, log::Level::Info, format!("still running; sending {signal} to process group {pid}"));
                ctx.actions.push_back(Action::KillTree { pid, signal, instance: self.name.clone() });
                self.state = State::Stopping { pid, next_at: Some(now + self.spec.stoptime), step: StopStep::Signal };
            }
            StopStep::Signal => {
                self.log(
                    ctx,
                    log::Level::Warn,
                    format!(
                        "still running {} after {}; sending SIGKILL",
                        human_duration(self.spec.stoptime),
                        self.spec.stopsignal
                    ),
                );
                ctx.actions.push_back(Action::KillTree { pid, signal: Signal::KILL, instance: self.name.clone() });
                self.state = State::Stopping { pid, next_at: None, step: StopStep::Killed };
            }
            StopStep::Killed => {}
        }
    }

    /// The probe's deadline passed: read the pid file, run or time out a health check, end a
    /// timed snooze, whichever is due.
    fn probe_due(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.probe.unsnooze_at.is_some_and(|at| at <= now) {
            self.probe.unsnooze_at = None;
            self.log(ctx, log::Level::Info, "snooze time is up; removing the snooze file".to_string());
            ctx.actions.push_back(Action::Snooze { path: self.snooze_path(), on: false });
        }
        if self.probe.pid_file_at.is_some_and(|at| at <= now) {
            let watching = matches!(
                self.state,
                State::Running { .. }
                    | State::Paused { resume_to: Phase::Running { .. } | Phase::WaitingPidFile }
                    | State::Stopping { .. }
            );
            if watching {
                self.check_pid_file(ctx);
            } else {
                self.probe.pid_file_at = None;
            }
        }
        if self.probe.ready_by.is_some_and(|at| at <= now) {
            self.probe.ready_by = None;
            if let State::Starting { pid, .. } = self.state {
                let why = format!("not ready within ready_timeout ({})", human_duration(self.ready_timeout()));
                self.recover_why = why.clone();
                self.log(ctx, log::Level::Warn, format!("start failed: {why}; stopping it"));
                self.after_stop = AfterStop::FailedStart;
                self.begin_stop(ctx, pid);
                return;
            }
        }
        if self.probe.watchdog_at.is_some_and(|at| at <= now) {
            self.probe.watchdog_at = None;
            if let State::Running { pid, since } = self.state {
                let every = self.watchdog_interval().map(human_duration).unwrap_or_default();
                self.watchdog_missed(ctx, pid, since, format!("watchdog: no WATCHDOG=1 for {every}"));
                return;
            }
        }
        let Some(health) = &self.probe.health else { return };
        if health.timed_out(now) {
            let timeout = health.check.timeout;
            self.cancel_check(ctx);
            self.count_health(ctx, false, format!("timed out after {}", human_duration(timeout)), None);
            return;
        }
        if health.due(now) {
            self.run_health_check(ctx);
        }
    }

    /// A missed watchdog ping: like a failed health check after RUNNING, the instance is
    /// stopped with its stop sequence and restarted.
    fn watchdog_missed(&mut self, ctx: &mut Ctx<'_>, pid: Pid, since: Instant, why: String) {
        self.recover_why = why.clone();
        self.log(ctx, log::Level::Warn, format!("{why}; stopping it to restart"));
        self.after_stop = AfterStop::Unhealthy { since };
        self.note.unhealthy = true;
        self.begin_stop(ctx, pid);
    }

    /// What a program said on `NOTIFY_SOCKET` (already attributed to this instance, `MAINPID`
    /// already checked by the driver).
    pub(crate) fn notified(&mut self, ctx: &mut Ctx<'_>, fields: Vec<NotifyField>) -> Outcome {
        let mut outcome = Outcome::Nothing;
        for field in fields {
            match field {
                NotifyField::Ready => {
                    self.notify_flags.retain(|flag| *flag != "reloading");
                    outcome = self.on_event(ctx, Event::Ready);
                }
                NotifyField::Status(text) => self.notify_status = Some(text),
                NotifyField::Reloading => self.set_notify_flag("reloading"),
                NotifyField::Stopping => self.set_notify_flag("stopping"),
                NotifyField::Errno(errno) => self.notify_errno = Some(errno),
                NotifyField::MainPid(pid) => outcome = self.on_event(ctx, Event::MainPid(pid)),
                NotifyField::Watchdog => {
                    if let (State::Running { .. }, Some(every)) = (&self.state, self.watchdog_interval()) {
                        self.probe.watchdog_at = Some(ctx.now + every);
                    }
                }
                NotifyField::WatchdogTrigger => {
                    if let State::Running { pid, since } = self.state {
                        let why = "watchdog: the program asked for it (WATCHDOG=trigger)".to_string();
                        self.watchdog_missed(ctx, pid, since, why);
                    }
                }
                NotifyField::WatchdogUsec(usec) => {
                    // 0 turns the watchdog off, as under systemd.
                    self.probe.watchdog_every = Some(Duration::from_micros(usec));
                    if self.state.name() == StateName::Running {
                        self.probe.watchdog_at = self.watchdog_interval().map(|every| ctx.now + every);
                    }
                }
                NotifyField::ExtendTimeoutUsec(usec) => {
                    if let Some(ready_by) = self.probe.ready_by {
                        self.probe.ready_by = Some(ready_by.max(ctx.now + Duration::from_micros(usec)));
                    }
                }
                NotifyField::Barrier => {} // The driver closed the fd that came with it.
            }
        }
        outcome
    }

    fn set_notify_flag(&mut self, flag: &'static str) {
        if !self.notify_flags.contains(&flag) {
            self.notify_flags.push(flag);
        }
    }

    /// What the program told us, for `status`: its STATUS= text and STOPPING/RELOADING/ERRNO.
    pub(crate) fn notify_text(&self) -> Option<String> {
        let mut parts: Vec<String> = self.notify_flags.iter().map(|flag| flag.to_string()).collect();
        if let Some(errno) = self.notify_errno {
            parts.push(format!("errno {errno}"));
        }
        if let Some(text) = &self.notify_status {
            parts.push(text.clone());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Asks the driver for one health check.
    fn run_health_check(&mut self, ctx: &mut Ctx<'_>) {
        let Some(kind) = self.probe.health.as_ref().map(|health| health.check.kind.clone()) else { return };
        let check = match &kind {
            CheckKind::Http { port, endpoint, .. } => {
                self.port(port).map(|port| ProbeCheck::HttpGet { port, path: endpoint.clone() })
            }
            CheckKind::Tcp { port } => self.port(port).map(|port| ProbeCheck::Tcp { port }),
            CheckKind::Shell { command } => {
                let mut launch = self.launch();
                launch.argv = vec!["/bin/sh".to_string(), "-c".to_string(), self.expand(command)];
                launch.stdout = crate::spec::Sink::Discard;
                launch.stderr = crate::spec::Sink::Discard;
                launch.pid_file = None;
                Some(ProbeCheck::Shell { launch })
            }
        };
        let seq = self.probe.next_seq();
        let snooze = self.snooze_path();
        if let Some(health) = &mut self.probe.health {
            health.asked(ctx.now, seq);
        }
        match check {
            Some(check) => ctx.actions.push_back(Action::RunProbe { id: self.id, seq, check, snooze: Some(snooze) }),
            None => {
                // The port is not known (yet): a failed check, said as much.
                let _ = self.probe.health.as_mut().map(|health| health.answer(ctx.now, seq));
                self.count_health(ctx, false, "its port has no number".to_string(), None);
            }
        }
    }

    /// Gives up on the check in flight: the driver closes its socket, a shell check is killed.
    fn cancel_check(&mut self, ctx: &mut Ctx<'_>) {
        let Some(health) = &mut self.probe.health else { return };
        let Some(in_flight) = health.in_flight.take() else { return };
        health.next_at = Some((in_flight.asked_at + health.check.interval).max(ctx.now));
        if let Some(pid) = in_flight.pid {
            ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
        }
        ctx.actions.push_back(Action::CancelProbe { id: self.id, seq: in_flight.seq });
    }

    /// Stops health checking (the instance left STARTING/RUNNING).
    fn end_health(&mut self, ctx: &mut Ctx<'_>) {
        let Some(health) = &mut self.probe.health else { return };
        if health.phase.is_none() {
            return;
        }
        if let Some(in_flight) = health.end() {
            if let Some(pid) = in_flight.pid {
                ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
            }
            ctx.actions.push_back(Action::CancelProbe { id: self.id, seq: in_flight.seq });
        }
    }

    /// The answer to health check `seq`.
    fn health_result(&mut self, ctx: &mut Ctx<'_>, seq: u64, result: ProbeResult) -> Outcome {
        let Some(health) = &mut self.probe.health else { return Outcome::Nothing };
        let Some(latency) = health.answer(ctx.now, seq) else { return Outcome::Nothing };
        if result == ProbeResult::Snoozed {
            if health.state != crate::core::HealthState::Snoozed {
                health.snoozed();
                self.log(ctx, log::Level::Info, format!("{SNOOZE_FILE} exists: health checks skipped; SNOOZED"));
            }
            return Outcome::Nothing;
        }
        let (passed, detail) = match judge(&health.check.kind, &result, latency) {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        let answered = matches!(result, ProbeResult::Http { .. } | ProbeResult::Connected | ProbeResult::Exited(_));
        self.count_health(ctx, passed, detail, answered.then_some(latency));
        Outcome::Nothing
    }

    /// Counts one health result and acts on what it means.
    fn count_health(&mut self, ctx: &mut Ctx<'_>, passed: bool, detail: String, latency: Option<Duration>) {
        let Some(health) = &mut self.probe.health else { return };
        health.latency = latency;
        let before = health.state;
        let verdict = health.count(passed, detail.clone());
        let after = health.state;
        let failures = health.failures;
        if before != after {
            let level = if passed { log::Level::Info } else { log::Level::Warn };
            self.log(
                ctx,
                level,
                format!("health check {}: {detail}; {}", if passed { "passed" } else { "failed" }, after.as_str()),
            );
        } else if !passed {
            self.log(ctx, log::Level::Debug, format!("health check failed ({failures} in a row): {detail}"));
        }
        match (verdict, self.state.clone()) {
            (Verdict::Nothing, _) => {}
            (Verdict::Ready, State::Starting { pid, .. }) => {
                if let Some(health) = &mut self.probe.health {
                    health.promote();
                }
                self.become_running(ctx, pid);
            }
            (Verdict::StartFailed(why), State::Starting { pid, .. }) => {
                self.recover_why = why.clone();
                self.log(ctx, log::Level::Warn, format!("start failed: {why}"));
                self.after_stop = AfterStop::FailedStart;
                self.begin_stop(ctx, pid);
            }
            (Verdict::Unhealthy(why), State::Running { pid, since }) => {
                self.recover_why = format!("unhealthy: {why}");
                self.log(ctx, log::Level::Warn, format!("unhealthy: {why}; stopping it to restart"));
                self.after_stop = AfterStop::Unhealthy { since };
                self.note.unhealthy = true;
                self.begin_stop(ctx, pid);
            }
            // A verdict for a phase the instance has left meanwhile.
            (Verdict::Ready | Verdict::StartFailed(_) | Verdict::Unhealthy(_), _) => {}
        }
    }

    fn become_running(&mut self, ctx: &mut Ctx<'_>, pid: Pid) {
        if self.pid_mode() {
            self.probe.pid_file_at = Some(ctx.now + self.spec.monitor_interval);
        }
        self.keep_checking_health(ctx.now);
        self.failures = 0;
        self.enter(ctx.now, State::Running { pid, since: ctx.now });
        self.log(ctx, log::Level::Info, format!("RUNNING (pid {pid})"));
    }

    /// Once RUNNING, the health check (if any) is a liveness check: it goes on from the
    /// readiness step, or begins now (a pid-file, notify or fd program, or after a resume).
    fn keep_checking_health(&mut self, now: Instant) {
        if let Some(health) = &mut self.probe.health {
            match health.phase {
                Some(HealthPhase::Running) => {}
                Some(HealthPhase::Starting) => health.promote(),
                None => health.begin(now, HealthPhase::Running),
            }
        }
    }

    fn enter(&mut self, now: Instant, state: State) {
        self.state = state;
        self.since = now;
    }

    fn critical_outcome(&self, code: u8) -> Outcome {
        if self.spec.critical {
            Outcome::CriticalFailure(code)
        } else {
            Outcome::Nothing
        }
    }

    /// One line of what this change did; the supervisor makes it the reason of the change's
    /// `Transition`, or a log line if the state did not change.
    fn log(&self, ctx: &mut Ctx<'_>, level: log::Level, text: String) {
        ctx.lines.push((level, text));
    }
}

/// `process group 10`, `process groups 20 and 10`: the groups a message names.
fn process_groups(pids: &[Pid]) -> String {
    match pids {
        [] => "no process group (none known)".to_string(),
        [pid] => format!("process group {pid}"),
        _ => format!("process groups {}", pids.iter().map(Pid::to_string).collect::<Vec<_>>().join(" and ")),
    }
}

fn after_stop_for(event: &Event) -> AfterStop {
    match event {
        Event::Restart => AfterStop::Start,
        Event::Remove => AfterStop::Remove,
        Event::Schedule | Event::RunTimeout => AfterStop::Schedule,
        Event::Stop
        | Event::Fire
        | Event::Start
        | Event::Pause
        | Event::Resume
        | Event::Spawned(_)
        | Event::SpawnFailed { .. }
        | Event::Exited(_)
        | Event::Timeout
        | Event::ProbeDue
        | Event::PidFile(_)
        | Event::Health { .. }
        | Event::CheckSpawned { .. }
        | Event::Lifecycle { .. }
        | Event::PortsAllocated(_)
        | Event::Ready
        | Event::MainPid(_)
        | Event::Wait { .. } => AfterStop::Stay,
    }
}

/// The n-th (1-based) backoff delay: `BACKOFF_BASE * 2^(n-1)`, capped, minus jitter.
pub(crate) fn backoff_delay(n: u32, rng: &mut Rng) -> Duration {
    let exponent = n.saturating_sub(1).min(16);
    let nominal = BACKOFF_BASE.saturating_mul(1u32 << exponent).min(BACKOFF_CAP);
    nominal.mul_f64(1.0 - BACKOFF_JITTER * rng.next_unit())
}

/// `1.5s`, `250ms`, `2m30s`: short, for messages.
pub fn human_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        let tenths = millis / 100;
        if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else {
        let seconds = duration.as_secs();
        let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        match (hours, minutes, seconds) {
            (0, _, 0) => format!("{minutes}m"),
            (0, _, _) => format!("{minutes}m{seconds}s"),
            (_, 0, _) => format!("{hours}h"),
            _ => format!("{hours}h{minutes}m"),
        }
    }
}
