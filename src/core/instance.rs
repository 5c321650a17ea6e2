//! One instance of a program and its state machine.
//!
//! Every (state, event) pair is spelled out in [`Instance::on_event`]; there is no `_ =>` arm,
//! so a new state or event makes the compiler list every place to decide. States carry their
//! own deadlines ([`State::deadline`]), so a stale timer finds nothing due and does nothing.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::types::{Action, ExitStatus, InstanceId, Pid, PidObservation, StateName};
use super::Rng;
use crate::spec::{AutoRestart, ProgramSpec, Signal};

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
    /// `Action::Spawn` is queued; `Spawned` or `SpawnFailed` comes next.
    Spawning,
    /// Up, but not yet for `starttime`; an exit now is a failed start.
    Starting {
        pid: Pid,
        up_at: Instant,
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
    /// Stop signal sent; SIGKILL at `kill_at` (None once it was sent).
    Stopping {
        pid: Pid,
        kill_at: Option<Instant>,
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
            State::Starting { up_at, .. } | State::WaitingPidFile { up_at } => Some(*up_at),
            State::Backoff { retry_at, .. } => Some(*retry_at),
            State::Stopping { kill_at, .. } => *kill_at,
            State::Stopped
            | State::Spawning
            | State::Running { .. }
            | State::Paused { .. }
            | State::Exited { .. }
            | State::Fatal { .. } => None,
        }
    }

    pub(crate) fn pid(&self) -> Option<Pid> {
        match self {
            State::Starting { pid, .. }
            | State::Running { pid, .. }
            | State::Paused { resume_to: Phase::Starting { pid } | Phase::Running { pid, .. } }
            | State::Stopping { pid, .. } => Some(*pid),
            State::Stopped
            | State::Spawning
            | State::WaitingPidFile { .. }
            | State::Paused { resume_to: Phase::WaitingPidFile }
            | State::Backoff { .. }
            | State::Exited { .. }
            | State::Fatal { .. } => None,
        }
    }

    pub(crate) fn name(&self) -> StateName {
        match self {
            State::Stopped => StateName::Stopped,
            State::Spawning | State::Starting { .. } | State::WaitingPidFile { .. } => StateName::Starting,
            State::Running { .. } => StateName::Running,
            State::Paused { .. } => StateName::Paused,
            State::Backoff { .. } => StateName::Backoff,
            State::Stopping { .. } => StateName::Stopping,
            State::Exited { .. } => StateName::Exited,
            State::Fatal { .. } => StateName::Fatal,
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
    Spawned(Pid),
    SpawnFailed {
        error: String,
        transient: bool,
    },
    Exited(ExitStatus),
    /// The state's deadline passed.
    Timeout,
    /// The monitor interval of a pid-file program passed.
    Monitor,
    /// What the driver found behind the pid file.
    PidFile(PidObservation),
}

/// What happens once a stopping instance is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterStop {
    Stay,
    Start,
    Remove,
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
    pub actions: &'a mut std::collections::VecDeque<Action>,
    pub rng: &'a mut Rng,
    /// No restarts while shutting down.
    pub shutting_down: bool,
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
    /// Pid-file programs: when the next monitor check is due.
    pub monitor_at: Option<Instant>,
    /// Monitor checks passed since the instance came up (Tron's STARTING until the first).
    pub checks: u32,
    /// Held down by a persistent stop flag: autostart and reloads leave it down.
    pub held_stopped: bool,
    /// Paused by a persistent flag: started, then paused at once.
    pub held_paused: bool,
}

impl Instance {
    pub(crate) fn new(id: InstanceId, spec: Rc<ProgramSpec>, index: u32, now: Instant) -> Self {
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
            monitor_at: None,
            checks: 0,
            held_stopped: false,
            held_paused: false,
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
            State::Stopped | State::Exited { .. } | State::Fatal { .. } => false,
        }
    }

    /// Applies one event. Every pair is decided here.
    pub(crate) fn on_event(&mut self, ctx: &mut Ctx<'_>, event: Event) -> Outcome {
        let now = ctx.now;
        match (&self.state, event) {
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
                event @ (Event::Stop | Event::Restart | Event::Remove),
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
            (State::Stopping { .. }, event @ (Event::Stop | Event::Restart | Event::Remove)) => {
                if self.after_stop != AfterStop::Remove {
                    self.after_stop = after_stop_for(&event);
                }
                Outcome::Nothing
            }
            (
                State::WaitingPidFile { .. } | State::Paused { resume_to: Phase::WaitingPidFile },
                event @ (Event::Stop | Event::Restart | Event::Remove),
            ) => {
                // No daemon known yet: stop whatever the command left in its process group.
                let paused_groups = self.paused_groups();
                if let Some(launcher) = self.launcher {
                    ctx.actions.push_back(Action::Kill { pid: launcher, signal: self.spec.stopsignal, group: true });
                }
                for group in paused_groups {
                    ctx.actions.push_back(Action::Kill { pid: group, signal: Signal::CONT, group: true });
                }
                self.monitor_at = None; // Nothing left to look for.
                self.log(ctx, log::Level::Info, "stopped before its pid file appeared".to_string());
                self.enter(now, State::Stopped);
                match after_stop_for(&event) {
                    AfterStop::Stay => Outcome::Nothing,
                    AfterStop::Start => {
                        self.spawn(ctx);
                        Outcome::Nothing
                    }
                    AfterStop::Remove => Outcome::Removed,
                }
            }
            (
                State::Stopped | State::Spawning | State::Backoff { .. } | State::Exited { .. } | State::Fatal { .. },
                event @ (Event::Stop | Event::Restart | Event::Remove),
            ) => match after_stop_for(&event) {
                AfterStop::Stay => {
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
                self.checks = 0;
                if self.pid_mode() {
                    self.launcher = Some(pid);
                    self.daemon = None;
                    self.enter(now, State::Starting { pid, up_at: now + self.start_window() });
                } else if self.spec.starttime.is_zero() {
                    self.become_running(ctx, pid);
                } else {
                    self.enter(now, State::Starting { pid, up_at: now + self.spec.starttime });
                }
                Outcome::Nothing
            }
            (State::Spawning, Event::SpawnFailed { error, transient: true }) => {
                // Out of descriptors, memory or processes: a failed start, retried with backoff.
                self.start_failed(ctx, format!("cannot start: {error}"), 1, None)
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
            (State::Starting { pid, up_at }, Event::Exited(ExitStatus::Exited(0)))
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
            (State::Starting { up_at, .. }, Event::Exited(status)) if *up_at <= now && !self.pid_mode() => {
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
            (State::Stopping { .. }, Event::Exited(status)) => {
                self.last_exit = Some(status);
                self.log(ctx, log::Level::Info, format!("stopped ({status})"));
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
                if *up_at <= now {
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
            (State::Stopping { pid, kill_at: Some(kill_at) }, Event::Timeout) => {
                if *kill_at <= now {
                    let pid = *pid;
                    self.log(
                        ctx,
                        log::Level::Warn,
                        format!(
                            "still running {} after {}; sending SIGKILL",
                            human_duration(self.spec.stoptime),
                            self.spec.stopsignal
                        ),
                    );
                    ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                    self.state = State::Stopping { pid, kill_at: None };
                }
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::Running { .. }
                | State::Paused { .. }
                | State::Stopping { kill_at: None, .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Timeout,
            ) => Outcome::Nothing,

            // ---- pid files ----
            (
                State::Running { .. }
                | State::Paused { resume_to: Phase::Running { .. } | Phase::WaitingPidFile }
                | State::Stopping { .. },
                Event::Monitor,
            ) => {
                if self.monitor_at.is_some_and(|due| due <= now) {
                    self.check_pid_file(ctx);
                }
                Outcome::Nothing
            }
            (
                State::Stopped
                | State::Spawning
                | State::Starting { .. }
                | State::WaitingPidFile { .. }
                | State::Paused { resume_to: Phase::Starting { .. } }
                | State::Backoff { .. }
                | State::Exited { .. }
                | State::Fatal { .. },
                Event::Monitor,
            ) => {
                self.monitor_at = None;
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
                State::Starting { up_at, .. } | State::WaitingPidFile { up_at },
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
            (State::Stopping { .. }, Event::PidFile(PidObservation::Gone { reason })) => {
                self.log(ctx, log::Level::Info, format!("stopped ({reason})"));
                self.kill_leftovers(ctx);
                self.enter(now, State::Stopped);
                self.finish_stop(ctx)
            }
            (State::Stopping { .. }, Event::PidFile(PidObservation::Alive { .. })) => Outcome::Nothing,
            (
                State::Stopped | State::Spawning | State::Backoff { .. } | State::Exited { .. } | State::Fatal { .. },
                Event::PidFile(_),
            ) => Outcome::Nothing, // A late answer for a state already left.
            (
                State::Paused { resume_to: Phase::WaitingPidFile },
                Event::PidFile(PidObservation::Alive { pid, start_time }),
            ) => {
                // Named while paused: stop it too. Not readiness: it becomes RUNNING only after a
                // resume, when the pid file names it again at the end of a new window.
                self.daemon = Some((pid, start_time));
                self.monitor_at = None;
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
        // TODO(ports): pass the instance's resolved ports.
        let Some(path) = self.spec.launch(self.index, &[]).pid_file else { return };
        self.monitor_at = Some(ctx.now + self.spec.monitor_interval);
        ctx.actions.push_back(Action::CheckPidFile { id: self.id, path, known: self.daemon });
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
        self.monitor_at = None;
    }

    /// After a stop completed: stay down, start again, or go away.
    fn finish_stop(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        match self.after_stop {
            AfterStop::Stay => Outcome::Nothing,
            AfterStop::Start if ctx.shutting_down => Outcome::Nothing,
            AfterStop::Start => {
                self.failures = 0;
                self.crashes = 0;
                self.spawn(ctx);
                Outcome::Nothing
            }
            AfterStop::Remove => Outcome::Removed,
        }
    }

    /// A failed start (exit before `starttime`, or no pid file): back off and retry, or give
    /// up. `why` says what happened; `code` is the exit code a critical failure exits with.
    fn start_failed(&mut self, ctx: &mut Ctx<'_>, why: String, code: u8, status: Option<ExitStatus>) -> Outcome {
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
            let reason = format!(
                "{why} before starttime ({}), {} failed starts in a row",
                human_duration(self.spec.starttime),
                self.failures
            );
            self.log(ctx, log::Level::Error, format!("{reason}; FATAL"));
            self.enter(now, State::Fatal { reason });
            return self.critical_outcome(code);
        }
        let delay = backoff_delay(self.failures, ctx.rng);
        let reason = format!("{why} before starttime");
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
                self.enter(now, State::Starting { pid, up_at: now + self.start_window() });
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

    /// How long a start has to prove itself: `starttime`, and at least `PID_FILE_GRACE` for a
    /// pid-file program, whose daemon needs a moment to fork and write its pid file.
    fn start_window(&self) -> Duration {
        if self.pid_mode() {
            self.spec.starttime.max(PID_FILE_GRACE)
        } else {
            self.spec.starttime
        }
    }

    /// Kills the process now (second shutdown request).
    pub(crate) fn kill_now(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(pid) = self.state.pid() {
            ctx.actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
            self.state = State::Stopping { pid, kill_at: None };
            self.after_stop = AfterStop::Stay;
        }
    }

    fn spawn(&mut self, ctx: &mut Ctx<'_>) {
        self.after_stop = AfterStop::Stay;
        self.enter(ctx.now, State::Spawning);
        ctx.actions.push_back(Action::Spawn {
            id: self.id,
            name: self.name.clone(),
            // TODO(ports): pass the instance's resolved ports.
            launch: self.spec.launch(self.index, &[]),
            prefix: self.spec.prefix,
            tail_buffer: self.spec.tail_buffer,
        });
    }

    fn begin_stop(&mut self, ctx: &mut Ctx<'_>, pid: Pid) {
        let signal = self.spec.stopsignal;
        let verb = match self.after_stop {
            AfterStop::Stay => "stopping",
            AfterStop::Start => "restarting",
            AfterStop::Remove => "removing",
        };
        self.log(ctx, log::Level::Info, format!("{verb}: sending {signal} to process group {pid}"));
        ctx.actions.push_back(Action::Kill { pid, signal, group: true });
        self.enter(ctx.now, State::Stopping { pid, kill_at: Some(ctx.now + self.spec.stoptime) });
    }

    fn become_running(&mut self, ctx: &mut Ctx<'_>, pid: Pid) {
        if self.pid_mode() {
            self.monitor_at = Some(ctx.now + self.spec.monitor_interval);
        }
        self.failures = 0;
        self.enter(ctx.now, State::Running { pid, since: ctx.now });
        self.log(ctx, log::Level::Info, format!("RUNNING (pid {pid})"));
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

    fn log(&self, ctx: &mut Ctx<'_>, level: log::Level, text: String) {
        ctx.actions.push_back(Action::Log { level, message: format!("{}: {text}", self.name) });
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
        Event::Stop
        | Event::Start
        | Event::Pause
        | Event::Resume
        | Event::Spawned(_)
        | Event::SpawnFailed { .. }
        | Event::Exited(_)
        | Event::Timeout
        | Event::Monitor
        | Event::PidFile(_) => AfterStop::Stay,
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
        match (hours, seconds) {
            (0, 0) => format!("{minutes}m"),
            (0, _) => format!("{minutes}m{seconds}s"),
            _ => format!("{hours}h{minutes}m"),
        }
    }
}
