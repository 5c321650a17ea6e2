//! The closed vocabulary between the core and its driver: what goes in ([`Input`]), what comes
//! out ([`Action`]), and the control requests and replies the core answers.
//!
//! Architecture invariant: none of these types is serde; the wire format lives in `control.rs`.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::spec::{Config, Launch, Signal};

/// The time of one wake-up, as the driver read it: the monotonic clock every deadline runs on,
/// and the wall clock (UTC) that schedules are written in. The core never reads either clock;
/// it compares the two across calls to notice a wall-clock step (NTP, `date -s`, a suspend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// The same moment `by` later on both clocks (tests' fake clock).
    #[must_use]
    pub fn advanced(self, by: Duration) -> Now {
        Now { mono: self.mono + by, wall: self.wall + by }
    }
}

/// A process id as the kernel gives it.
pub type Pid = i32;

/// Identifies a control connection; chosen by the driver, opaque to the core.
pub type ConnId = u64;

/// Identifies one instance for its whole life; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub u64);

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(u8),
    Signaled { signal: i32, core_dumped: bool },
}

impl ExitStatus {
    /// The shell's convention: the code, or 128 + the signal.
    #[must_use]
    pub fn shell_code(self) -> u8 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled { signal, .. } => 128u8.saturating_add(signal.clamp(0, 127) as u8),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exit status {code}"),
            ExitStatus::Signaled { signal, core_dumped } => {
                write!(f, "signal {}", Signal(signal))?;
                if core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// One transition of one instance: what every consumer (the event log, `ctl events`,
/// notifications, metrics) is fed. None of them parses the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Increasing from 1 in a daemon's life: `ctl events` orders and follows by it.
    pub seq: u64,
    /// When it happened (the wall clock of the wake-up).
    pub time: SystemTime,
    /// `web:0`.
    pub instance: String,
    pub program: String,
    pub from: StateName,
    pub to: StateName,
    /// What happened, for `notify: on:`.
    pub kind: EventKind,
    /// The human account: one or more lines, each shown in the event log after `web:0: `.
    pub reason: String,
    /// info for the ordinary, warn for unexpected-but-handled, error for what needs someone.
    pub level: log::Level,
    /// The process concerned: the new one when started, the old one when it exited.
    pub pid: Option<Pid>,
    /// The exit that caused it, if one did.
    pub exit: Option<ExitStatus>,
    /// The health check's last result, for health-related transitions.
    pub health: Option<String>,
}

/// What a transition means, as `notify: on:` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A process was spawned (STARTING).
    Starting,
    /// Ready: RUNNING.
    Running,
    /// Exited with an expected code and not restarted.
    Exited,
    /// Exited with an unexpected code or signal (restarted or not).
    UnexpectedExit,
    /// Waiting to retry after failed starts or a crash loop.
    Backoff,
    /// Gave up.
    Fatal,
    /// Its health check or watchdog failed while RUNNING.
    Unhealthy,
    Stopping,
    Stopped,
    Paused,
    Waiting,
    Scheduled,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Starting,
        EventKind::Running,
        EventKind::Exited,
        EventKind::UnexpectedExit,
        EventKind::Backoff,
        EventKind::Fatal,
        EventKind::Unhealthy,
        EventKind::Stopping,
        EventKind::Stopped,
        EventKind::Paused,
        EventKind::Waiting,
        EventKind::Scheduled,
    ];

    /// The name configs and `SV_EVENT` use: `unexpected_exit`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Starting => "starting",
            EventKind::Running => "running",
            EventKind::Exited => "exited",
            EventKind::UnexpectedExit => "unexpected_exit",
            EventKind::Backoff => "backoff",
            EventKind::Fatal => "fatal",
            EventKind::Unhealthy => "unhealthy",
            EventKind::Stopping => "stopping",
            EventKind::Stopped => "stopped",
            EventKind::Paused => "paused",
            EventKind::Waiting => "waiting",
            EventKind::Scheduled => "scheduled",
        }
    }

    /// Parses a kind as configs write it.
    ///
    /// # Errors
    ///
    /// The unknown name and the known ones.
    pub fn parse(text: &str) -> Result<EventKind, String> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
            format!("unknown event {text:?} (expected one of: {})", names.join(", "))
        })
    }

    /// The default `on:` of `notify:` entries.
    pub const DEFAULT_ON: [EventKind; 3] = [EventKind::Fatal, EventKind::UnexpectedExit, EventKind::Unhealthy];
}

impl Transition {
    /// Whether a `notify:` entry with `on` reports it: its kind is listed, or it entered a
    /// listed state (a crash loop's unexpected exit into BACKOFF is both).
    #[must_use]
    pub fn matches(&self, on: &[EventKind]) -> bool {
        on.contains(&self.kind)
            || (self.to == StateName::Backoff && on.contains(&EventKind::Backoff))
            || (self.to == StateName::Fatal && on.contains(&EventKind::Fatal))
    }
}

/// Everything the outside world tells the core.
// A reload carries a whole Config, once per SIGHUP; the other inputs are not stored, so boxing
// it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// How an SMTP delivery asked for by [`Action::Mail`] ended.
    MailResult { sink: usize, id: u64, result: Result<(), String> },
    /// The sendmail child of delivery `id` runs as `pid` (its exit is the result).
    MailSpawned { sink: usize, id: u64, pid: Pid },
    /// The hook asked for by [`Action::RunHook`] runs as `pid`, or could not be started.
    HookSpawned { sink: usize, result: Result<Pid, String> },
    /// The driver started the process asked for by [`Action::Spawn`].
    Spawned { id: InstanceId, pid: Pid },
    /// The driver could not start it; `error` says which step failed and why. `transient`
    /// marks a lack of resources (descriptors, memory, processes) that a retry may get past.
    SpawnFailed { id: InstanceId, error: String, transient: bool },
    /// A child was reaped (ours or an adopted orphan).
    Exited { pid: Pid, status: ExitStatus },
    /// A control request.
    Request { conn: ConnId, request: Request },
    /// A connection went away: forget what it was waiting for.
    ConnClosed { conn: ConnId },
    /// The config was re-read (SIGHUP or `ctl reload`); `Err` carries the load error text.
    Reload { conn: Option<ConnId>, result: Result<Config, String> },
    /// Stop everything and exit (SIGTERM, SIGINT, SIGQUIT, `ctl shutdown`). A second one while
    /// already shutting down kills what is left at once.
    Shutdown { conn: Option<ConnId> },
    /// The answer to [`Action::RunProbe`]: what the check found. `seq` is the one the action
    /// carried; a stale answer (the instance moved on) is ignored.
    ProbeResult { id: InstanceId, seq: u64, result: ProbeResult },
    /// A shell check asked for by [`Action::RunProbe`] runs as `pid`; its exit is the result.
    ProbeSpawned { id: InstanceId, seq: u64, pid: Pid },
    /// A message on `NOTIFY_SOCKET` from the instance's process or a descendant (attributed
    /// by the driver through the sender's pid; a `MAINPID=` already checked).
    Notify { id: InstanceId, fields: Vec<NotifyField> },
    /// The instance's process `pid` wrote a newline to its notification fd (s6's
    /// `notification-fd`); ignored when the instance has moved on to another process.
    FdReady { id: InstanceId, pid: Pid },
    /// The answer to [`Action::AllocatePorts`]: one free port per name asked for, in order, or
    /// why none could be had.
    PortsAllocated { id: InstanceId, ports: Result<Vec<u16>, String> },
    /// The instance's forwarded output is (or is no longer) held back because the reader of the
    /// daemon's stdout/stderr is behind; its process waits in `write`. Shown in `status`.
    OutputStalled { id: InstanceId, stalled: bool },
}

/// A check the driver carries out for an instance's probe (pid-file monitor, health check,
/// HTTP lifecycle step). The core decides when and what a result means; the driver only runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeCheck {
    /// Read the pid file at `path`. `known` is the pid and start time already trusted, if any.
    PidFile { path: std::path::PathBuf, known: Option<(Pid, u64)> },
    /// `GET http://127.0.0.1:port{path}`.
    HttpGet { port: u16, path: String },
    /// `POST http://127.0.0.1:port{path}` (HTTP lifecycle).
    HttpPost { port: u16, path: String },
    /// Connect to `127.0.0.1:port`.
    Tcp { port: u16 },
    /// Run `/bin/sh -c command` with the instance's environment and working directory, output
    /// discarded; answered with `ProbeSpawned`, then its exit.
    Shell { launch: Launch },
}

/// One field of an sd_notify message, as `sd_notify(3)` documents them (`daemon::notify`
/// parses them; the core decides what they mean).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyField {
    /// `READY=1`: startup is finished.
    Ready,
    /// `RELOADING=1`: reloading its configuration.
    Reloading,
    /// `STOPPING=1`: shutting down.
    Stopping,
    /// `STATUS=...`: free-form status text (UTF-8), kept as sent.
    Status(String),
    /// `ERRNO=N`: the service failed with this errno (N ≥ 0).
    Errno(i32),
    /// `MAINPID=N`: the main process is now N (N > 0).
    MainPid(Pid),
    /// `WATCHDOG=1`: the watchdog keep-alive.
    Watchdog,
    /// `WATCHDOG=trigger`: the program asks to be handled as if its watchdog expired.
    WatchdogTrigger,
    /// `WATCHDOG_USEC=N`: a new watchdog interval, in microseconds (0 turns it off).
    WatchdogUsec(u64),
    /// `EXTEND_TIMEOUT_USEC=N`: the current start needs N more microseconds.
    ExtendTimeoutUsec(u64),
    /// `BARRIER=1`: answered by the driver, by closing the descriptor that came with it.
    Barrier,
}

/// What a spawn needs beyond the command: readiness plumbing and socket activation.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpawnExtras {
    /// The program, whose listening sockets (if any) the instance gets as fds 3, 4, ...
    pub program: String,
    /// Set `NOTIFY_SOCKET` (readiness: notify).
    pub notify: bool,
    /// The write end of a pipe as this fd; a newline on it means ready (readiness: fd:N).
    pub ready_fd: Option<i32>,
    /// Set `WATCHDOG_USEC` (and `WATCHDOG_PID`) to this.
    pub watchdog: Option<Duration>,
    /// Size rotation of the `stdout`/`stderr` files, if they are files.
    pub stdout_rotate: crate::spec::Rotate,
    pub stderr_rotate: crate::spec::Rotate,
}

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    PidFile(PidObservation),
    /// A complete HTTP response: status and (bounded) body.
    Http {
        status: u16,
        body: String,
    },
    /// The TCP connection succeeded.
    Connected,
    /// Nothing listens on the port.
    Refused,
    /// The check could not be carried out or the peer misbehaved.
    Failed(String),
    /// A shell check exited.
    Exited(ExitStatus),
    /// The instance's `.healthchecksnooze` file exists: the check was not run.
    Snoozed,
}

/// What the driver found behind a pid file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidObservation {
    /// The file names a live process that is ours (same start time as before, or a new
    /// descendant of sv-lite).
    Alive { pid: Pid, start_time: u64 },
    /// No file, no process, a reused pid, or a process sv-lite did not start; says which.
    Gone { reason: String },
}

/// A flag that outlives the daemon (Proc::tored's touch files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flag {
    /// Held down by `ctl stop` until `ctl start`.
    Stopped,
    /// Paused by `ctl pause` until `ctl resume`.
    Paused,
}

impl Flag {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Stopped => "stopped",
            Flag::Paused => "paused",
        }
    }
}

/// Everything the core asks the outside world to do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Start a process for this instance and answer with `Spawned` or `SpawnFailed`.
    Spawn {
        id: InstanceId,
        name: String,
        launch: Launch,
        prefix: bool,
        tail_buffer: usize,
        extras: SpawnExtras,
    },
    /// Send a signal to a process, or to its whole process group.
    Kill {
        pid: Pid,
        signal: Signal,
        group: bool,
    },
    Reply {
        conn: ConnId,
        reply: Reply,
    },
    /// One line of the event log.
    Log {
        level: log::Level,
        message: String,
    },
    /// Everything is down: exit the daemon with this code.
    Exit(u8),
    /// Carry out one check for an instance's probe and answer with `Input::ProbeResult` (a
    /// shell check: `Input::ProbeSpawned`, then its exit). `snooze` is the snooze file whose
    /// existence skips the check (`ProbeResult::Snoozed`), for health checks.
    RunProbe {
        id: InstanceId,
        seq: u64,
        check: ProbeCheck,
        snooze: Option<std::path::PathBuf>,
    },
    /// Give up on a check still in flight (its timeout passed): close its socket, or kill the
    /// shell check's process group.
    CancelProbe {
        id: InstanceId,
        seq: u64,
    },
    /// Find one free TCP port per name (`count` of them) not in `exclude`, and answer with
    /// `Input::PortsAllocated`.
    AllocatePorts {
        id: InstanceId,
        count: usize,
        exclude: Vec<u16>,
    },
    /// Create (or remove) an instance's health-check snooze file.
    Snooze {
        path: std::path::PathBuf,
        on: bool,
    },
    /// An instance changed state: write it to the event log, keep it for `ctl events`, and
    /// (the core has already decided) nothing else.
    Transition(Transition),
    /// Compose and deliver one notification mail (`notify: email:`); answer with
    /// `Input::MailResult` (SMTP) or `Input::MailSpawned` (sendmail, whose exit is the result).
    Mail {
        sink: usize,
        id: u64,
        mail: super::notifier::Mail,
    },
    /// Give up on delivery `id` (its time is up): close its connection, or kill its sendmail.
    CancelMail {
        id: u64,
    },
    /// Run a `notify: exec:` hook for `event`; answer with `Input::HookSpawned`. Its exit comes
    /// back through `Input::Exited` like any other.
    RunHook {
        sink: usize,
        argv: Vec<String>,
        event: Transition,
    },
    /// Stop an instance's whole tree: signal the process group of `pid`, every descendant of
    /// `pid`, and every process adopted by sv-lite that carries `SV_LITE_INSTANCE=instance`
    /// (it left the tree with setsid or a double fork). Nothing else is touched.
    KillTree {
        pid: Pid,
        signal: Signal,
        instance: String,
    },
    /// The main process `pid` ended a stop: SIGKILL to whatever is left of the instance's tree
    /// (its cgroup, or its group and the marked processes sv-lite adopted), as `KillTree` does.
    SweepTree {
        pid: Pid,
        instance: String,
    },
    /// Persist (or clear) a flag for an instance, e.g. `web:0`.
    SetFlag {
        instance: String,
        flag: Flag,
        on: bool,
    },
}

/// A control request, already parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status {
        targets: Vec<String>,
    },
    Start {
        targets: Vec<String>,
        wait: bool,
    },
    /// With `timeout`, fail (exit 1) if still not down by then (`ctl zap`).
    Stop {
        targets: Vec<String>,
        wait: bool,
        timeout: Option<Duration>,
    },
    Restart {
        targets: Vec<String>,
        wait: bool,
    },
    /// Send any signal to the instances' process groups.
    Signal {
        signal: Signal,
        targets: Vec<String>,
    },
    /// SIGSTOP the process groups; PAUSED instances are not treated as dead.
    Pause {
        targets: Vec<String>,
    },
    /// SIGCONT the process groups of PAUSED instances.
    Resume {
        targets: Vec<String>,
    },
    /// Create the targets' snooze files, removed again after `duration` when given.
    Snooze {
        targets: Vec<String>,
        duration: Option<Duration>,
    },
    /// Remove the targets' snooze files.
    Unsnooze {
        targets: Vec<String>,
    },
    /// Answer once every target is in `state`, or fail after `timeout`.
    Wait {
        targets: Vec<String>,
        state: StateName,
        timeout: Option<Duration>,
    },
}

/// The core's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Status rows, and the service files that failed to load (`Config::problems`).
    Status { rows: Vec<InstanceStatus>, problems: Vec<String> },
    /// One line per target or instance; the request succeeded when every one is ok.
    Results(Vec<TargetResult>),
    /// The request as a whole failed (bad reload, shutdown in progress...).
    Error(String),
    /// The request as a whole succeeded.
    Done(String),
}

impl Reply {
    /// Whether the client should exit 0.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        match self {
            Reply::Status { rows, .. } => rows.iter().all(|row| row.error.is_none()),
            Reply::Results(results) => results.iter().all(|result| result.ok),
            Reply::Error(_) => false,
            Reply::Done(_) => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetResult {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// One row of `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    /// `web:0`, or the target as asked when it names nothing.
    pub name: String,
    pub state: StateName,
    pub pid: Option<Pid>,
    /// Time in the current state.
    pub since: Duration,
    /// The last exit, if any.
    pub last_exit: Option<ExitStatus>,
    /// Why the instance is FATAL or BACKOFF, or other detail.
    pub detail: Option<String>,
    /// Set when the row is an unknown target.
    pub error: Option<String>,
    /// The program's overall state (Tron's service states).
    pub service: Option<ServiceState>,
    /// Held down or paused by a persistent flag.
    pub held: Option<Flag>,
    /// Its forwarded output waits for a slow reader of the daemon's stdout/stderr.
    pub output_stalled: bool,
    /// Its named ports, resolved.
    pub ports: Vec<(String, u16)>,
    /// Health-check state, for programs with a health check.
    pub health: Option<HealthStatus>,
    /// What the program said over sd_notify: `STATUS=` text, stopping/reloading, errno.
    pub notify: Option<String>,
    /// Scheduled programs: the next fire time and the last run.
    pub schedule: Option<ScheduleStatus>,
}

/// What `status` shows of a scheduled program's timetable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// The next fire time; `None` while the schedule is off (`ctl stop`).
    pub next: Option<SystemTime>,
    /// The last run that ended: when it began, how long it took, how it ended.
    pub last: Option<(SystemTime, Duration, String)>,
}

/// What `status` shows of an instance's health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthStatus {
    /// HEALTHY, UNHEALTHY, SNOOZED, or PENDING before the first counted result.
    pub state: HealthState,
    /// Failed checks in a row.
    pub failures: u32,
    /// The last result, e.g. `HTTP 200 in 3ms`, `exit 1 in 20ms`, `timed out after 1s`.
    pub last: Option<String>,
    /// How long the last result took, when the check answered (not for a time-out, a refused
    /// connection or a failure to run it).
    pub latency: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    Pending,
    Healthy,
    Unhealthy,
    Snoozed,
}

impl HealthState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Pending => "PENDING",
            HealthState::Healthy => "HEALTHY",
            HealthState::Unhealthy => "UNHEALTHY",
            HealthState::Snoozed => "SNOOZED",
        }
    }
}

/// A program's overall state, as Tron names a service's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// Started; stays so until every instance is up and, for pid-file programs, has passed its
    /// first monitor check.
    Starting,
    /// Every instance is up.
    Up,
    /// Some instances are unexpectedly down and being recovered.
    Degraded,
    /// Every instance is down unexpectedly.
    Failed,
    /// Stopped on request.
    Down,
}

impl ServiceState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "STARTING",
            ServiceState::Up => "UP",
            ServiceState::Degraded => "DEGRADED",
            ServiceState::Failed => "FAILED",
            ServiceState::Down => "DOWN",
        }
    }
}

/// The state names users see (supervisord's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateName {
    Stopped,
    /// Asked to start, waiting for its dependencies (`depends_on`).
    Waiting,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Fatal,
    Paused,
    /// A scheduled program between runs.
    Scheduled,
    Unknown,
}

impl StateName {
    /// Every state an instance can be in (not `Unknown`, which names no instance).
    pub const ALL: [StateName; 10] = [
        StateName::Stopped,
        StateName::Waiting,
        StateName::Starting,
        StateName::Running,
        StateName::Backoff,
        StateName::Stopping,
        StateName::Exited,
        StateName::Fatal,
        StateName::Paused,
        StateName::Scheduled,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Stopped => "STOPPED",
            StateName::Waiting => "WAITING",
            StateName::Starting => "STARTING",
            StateName::Running => "RUNNING",
            StateName::Backoff => "BACKOFF",
            StateName::Stopping => "STOPPING",
            StateName::Exited => "EXITED",
            StateName::Fatal => "FATAL",
            StateName::Paused => "PAUSED",
            StateName::Scheduled => "SCHEDULED",
            StateName::Unknown => "UNKNOWN",
        }
    }

    /// Parses a state name as users write it (`running`, `RUNNING`).
    pub fn parse(text: &str) -> Result<StateName, String> {
        let all = StateName::ALL;
        all.into_iter().find(|state| state.as_str().eq_ignore_ascii_case(text)).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|state| state.as_str()).collect();
            format!("unknown state {text:?} (expected one of: {})", names.join(", "))
        })
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
