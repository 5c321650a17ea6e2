//! The mio reactor: turns readiness, signals and the clock into core inputs, and core actions
//! into syscalls.
//!
//! One `Poll` in one thread multiplexes the signal self-pipe ([`SIGNALS`]), the control socket
//! ([`CONTROL`]) and its connections (served by [`control::ControlServer`]), every child's
//! stdout/stderr pipe, probes and notification fds (tokens from one counter). The poll timeout is
//! the earlier of the core's earliest deadline and the next idle connection's, so an idle daemon
//! sleeps without waking.
//!
//! Architecture invariant: the driver makes no supervision decisions; it reads the clock once
//! per wake-up and hands everything to `core::Supervisor`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::unix::pipe::Receiver;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::signal::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

pub mod cgroup;
pub mod control;
pub mod eventlog;
pub mod events;
pub mod http;
pub mod ledger;
pub mod listeners;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod notify_out;
pub mod output;
pub mod ports;
pub mod probes;
pub mod rotate;
pub mod sockets;
pub mod stdio;
pub mod usage;
pub mod wallclock;
pub mod watch;

use std::collections::HashSet;

use mio::unix::SourceFd;

use self::control::{ControlServer, Serviced};
pub use self::eventlog::utc_timestamp;
use self::eventlog::EventLog;
use self::events::EventRing;
use self::http::HttpServer;
use self::listeners::Listeners;
use self::mail::Mailer;
use self::notify::{NotifyField, NotifySocket};
use self::output::{ChildOutput, OutputRing, OutputSink, StreamKind};
use self::probes::{ProbeKey, ProbeRequest, Probes};
use self::wallclock::{WallClock, WallEvent};
use self::watch::DirWatch;
use crate::config;
use crate::config::include::{self, Includes};
use crate::control::{self as protocol, ControlRequest, TailStream};
use crate::core::{
    Action, ConnId, ExitStatus, Input, InstanceId, Now, Pid, ProbeCheck, ProbeResult, SpawnExtras, Supervisor,
};
use crate::spec::{Config, Launch, MailVia, Rotate, Sink};
use crate::sys::{self, SpawnOptions, Stream};
use crate::{pidfile, state_dir};

const SIGNALS: Token = Token(0);
const CONTROL: Token = Token(1);
/// The daemon's own stdout and stderr, watched for writability while output waits.
const STDOUT: Token = Token(2);
const STDERR: Token = Token(3);
/// The sd_notify socket (`NOTIFY_SOCKET`).
const NOTIFY: Token = Token(4);
/// The wall-clock timer: a set of the clock (NTP step, `date -s`, resume) wakes the loop.
const WALLCLOCK: Token = Token(5);
/// The service directories' inotify descriptor.
const WATCH: Token = Token(6);
/// The HTTP endpoint's listener (`http:`).
const HTTP: Token = Token(7);
const FIRST_DYNAMIC_TOKEN: usize = 8;
/// How long buffered output may take to reach a slow reader at exit.
const EXIT_FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// Spawns carried out per turn of the loop; the rest wait for the next turn, so that a large
/// batch (1000 programs at startup) does not keep signals and the control socket waiting.
const SPAWNS_PER_TURN: usize = 64;

/// Control connections accepted (and their first requests answered) per turn of the loop; the
/// rest wait for the next turn. Clients connecting back to back kept the accept loop going for
/// good: nothing was reaped and no closed connection noticed (the soak found it).
const ACCEPTS_PER_TURN: usize = 16;

/// A spawn the core asked for, not yet carried out.
struct QueuedSpawn {
    id: InstanceId,
    name: String,
    launch: Launch,
    prefix: bool,
    tail_buffer: usize,
    extras: SpawnExtras,
}

/// Size of the reused read buffer for child pipes (the control server has one of its own).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What the daemon needs to start.
#[derive(Debug)]
pub struct DaemonOptions {
    pub config_path: PathBuf,
    pub config: Config,
    pub socket_path: PathBuf,
    /// Give each instance a cgroup when possible (`--no-cgroups` turns it off: the `/proc`
    /// walk is used).
    pub cgroups: bool,
}

/// Runs the daemon until shutdown; returns the process exit code.
pub fn run(options: DaemonOptions) -> Result<u8, String> {
    let mut driver = Driver::new(options)?;
    driver.run()
}

enum Source {
    Child {
        instance: InstanceId,
        receiver: Receiver,
        output: ChildOutput,
    },
    /// The read end of an instance's s6 notification fd, until its first newline.
    ReadyFd {
        instance: InstanceId,
        /// The process the pipe was made for: a newline from an earlier run does not count.
        pid: Pid,
        receiver: Receiver,
    },
}

struct Driver {
    /// The clocks as read once after each wake-up; every input of the turn carries them.
    now: Now,
    poll: Poll,
    signals: Signals,
    /// The control socket and its connections.
    control: ControlServer,
    config_path: PathBuf,
    state_dir: PathBuf,
    event_log: EventLog,
    sources: HashMap<Token, Source>,
    next_token: usize,
    supervisor: Supervisor,
    reaped: Vec<(Pid, ExitStatus)>,
    /// Spawns asked for and not yet carried out, oldest first.
    spawn_queue: std::collections::VecDeque<QueuedSpawn>,
    /// Spawns carried out in this turn of the loop.
    spawns_this_turn: usize,
    /// The control socket may have clients waiting to be accepted (`ACCEPTS_PER_TURN`).
    accept_pending: bool,
    /// Recent output per instance and stream, for `ctl tail`.
    rings: HashMap<(InstanceId, StreamKind), OutputRing>,
    /// Streams whose last spawn sent them to /dev/null (`discard`): `ctl tail` says so.
    discarded: HashSet<(InstanceId, StreamKind)>,
    /// HTTP and TCP checks in flight.
    probes: Probes,
    /// Listening sockets of socket-activated programs, kept across their restarts.
    listeners: Listeners,
    /// The sd_notify socket, or why it could not be bound.
    notify: Result<NotifySocket, String>,
    /// Wakes the loop when the wall clock is set, so schedules are re-timed at once rather than
    /// at the next wake-up. `None` if the kernel would not give one (schedules still work; a
    /// step is noticed at the next wake-up).
    wallclock: Option<WallClock>,
    /// The main config file as last loaded (service files are merged into it).
    main_config: Config,
    /// The service files of `include:` directories: what each defined, and its problems.
    includes: Includes,
    /// Watches the `include:` directories (inotify, or a rescan every few seconds).
    watch: DirWatch,
    /// The last transitions and the `ctl events -f` clients.
    events: EventRing,
    /// Whole-tree stops of this turn, carried out with one `/proc` walk (`kill_trees`).
    tree_kills: Vec<(Pid, crate::spec::Signal, String)>,
    /// Instances whose last `/proc` walk found processes outside their group: their sweep
    /// walks again.
    outside_group: HashSet<String>,
    /// One cgroup per instance, when they can be had (`cgroup.rs`); else `tree_method` says
    /// why the `/proc` walk is used.
    cgroups: Option<cgroup::Cgroups>,
    tree_method: String,
    /// Low descriptor numbers through which spawns pass their children's descriptors, so a
    /// spawn does not copy the whole table (`sys::SpawnSlots`).
    spawn_slots: Option<sys::SpawnSlots>,
    /// The previous CPU reading of each instance tree, for CPU% in `status`.
    usage: usage::Sampler,
    /// The read-only HTTP endpoint (`http:`), and a registry handle for it.
    http: Option<(HttpServer, mio::Registry)>,
    /// Restarts, exits and reloads, counted from transitions, for `/metrics`.
    counters: metrics::Counters,
    /// SMTP deliveries in flight, and which `notify:` entry each is for.
    mailer: Mailer,
    mail_sinks: HashMap<u64, usize>,
    /// This machine's name, for mail (`%(host)s`, the subject, HELO) and hooks.
    host: String,
    /// Problems already in the event log (each is logged once, when it appears).
    problems_logged: HashSet<String>,
    /// The start-up config's problems, logged when the loop starts (the event log is open then).
    startup_problems: Vec<String>,
    /// Flag changes asked for in this turn, written together by `write_flags`.
    flag_changes: Vec<state_dir::FlagChange>,
    /// The live processes in `state_dir`, for a start after a crash (`ledger.rs`).
    ledger: ledger::Journal,
    /// Flags that could not be written, for the answers to the requests that asked for them.
    unwritten: state_dir::Unwritten,
    /// Child pipes not read because the stream they are forwarded to is backed up.
    stalled: Vec<Token>,
    /// Instances the core was told have stalled output.
    stalled_instances: HashSet<InstanceId>,
    /// RLIMIT_NOFILE after raising it, for messages.
    fd_limit: u64,
    read_buffer: Vec<u8>,
    scratch: Vec<u8>,
    exit_code: Option<u8>,
}

impl Driver {
    fn new(mut options: DaemonOptions) -> Result<Driver, String> {
        // First, so that the slots lie below everything the daemon will open.
        let spawn_slots = match sys::SpawnSlots::reserve() {
            Ok(slots) => Some(slots),
            Err(error) => {
                log::warn!("cannot reserve spawn slots ({error}); each spawn will copy the descriptor table");
                None
            }
        };
        let poll = Poll::new().map_err(|error| format!("cannot create poll: {error}"))?;
        // Signals first: before any child exists, so no SIGCHLD is lost.
        let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1])
            .map_err(|error| format!("cannot install signal handlers: {error}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|error| format!("cannot register signals: {error}"))?;
        let fd_limit = match sys::raise_fd_limit() {
            Ok(limit) => {
                log::debug!("open files limit: {limit}");
                limit
            }
            Err(error) => {
                log::warn!("cannot raise the open files limit: {error}");
                0
            }
        };
        if sys::getpid() != 1 {
            if let Err(error) = sys::set_child_subreaper() {
                log::warn!("cannot become child subreaper: {error}; orphans of programs will not be reaped by sv-lite");
            }
        }
        let control = ControlServer::bind(
            &options.socket_path,
            options.config.socket_group.as_deref(),
            poll.registry(),
            CONTROL,
        )?;
        for (fd, token) in stdio::install().into_iter().zip([STDOUT, STDERR]) {
            if let Some(fd) = fd {
                if let Err(error) = poll.registry().register(&mut SourceFd(&fd), token, Interest::WRITABLE) {
                    log::debug!("cannot watch fd {fd} for writability: {error}; writes to it are retried each turn");
                }
            }
        }
        // One sd_notify socket for every instance, beside the control socket. A failure here
        // matters only to `readiness: notify` programs, whose spawns then fail saying why.
        let notify_path = {
            let mut name = options.socket_path.as_os_str().to_os_string();
            name.push(".notify");
            PathBuf::from(name)
        };
        let notify = NotifySocket::bind(&notify_path).and_then(|mut socket| {
            poll.registry()
                .register(&mut socket, NOTIFY, Interest::READABLE)
                .map_err(|error| format!("notify socket {}: cannot register: {error}", notify_path.display()))?;
            Ok(socket)
        });
        if let Err(error) = &notify {
            log::warn!("{error}; programs with `readiness: notify` cannot start");
        }
        let mut event_log = EventLog::open(options.config.logfile.clone(), options.config.logfile_rotate)?;
        let state_dir =
            options.config.state_dir.clone().unwrap_or_else(|| state_dir::default_for(&options.socket_path));
        let flags = match state_dir::load(&state_dir) {
            Ok(flags) => flags,
            Err(error) => {
                log::warn!(
                    "state directory {}: cannot read flags: {error}; starting without them",
                    state_dir.display()
                );
                Default::default()
            }
        };
        // Before anything starts: stop what a crashed run left behind (the control socket is
        // bound, so no other daemon owns them), then keep a fresh ledger.
        let ledger = ledger::reclaim(&state_dir, &mut event_log);
        // The service directories: read now, watched from here on.
        // Watched before they are read, so a file written in between is not missed.
        let main_config = options.config.clone();
        let mut watch = DirWatch::new(&main_config.include, Instant::now());
        if let Err(error) = watch.register(poll.registry(), WATCH) {
            log::warn!(
                "service directories: cannot watch with inotify ({error}); rescanning every few seconds instead"
            );
            watch = DirWatch::rescan_only(&main_config.include, Instant::now());
        }
        let mut includes = include::scan(&main_config.include);
        options.config = includes.merge(&main_config);
        if !main_config.include.is_empty() {
            log::info!("service directories watched by {}", watch.mode());
        }
        // Listening sockets are bound with the config: a bind error is a config error.
        let mut listeners = Listeners::default();
        let in_main = |name: &str| main_config.programs.iter().any(|program| program.name == name);
        listeners.apply_sparing(&mut options.config, &|name| !in_main(name))?;
        // Armed with no time: it only wakes the loop when the clock is set (also on a resume
        // from suspend); the next turn's clock read shows the core the step.
        let wallclock =
            WallClock::new().and_then(|mut clock| clock.register(poll.registry(), WALLCLOCK).map(|()| clock));
        let wallclock = wallclock
            .map_err(|error| log::warn!("{error}; a step of the wall clock is noticed at the next wake-up only"))
            .ok();
        // The HTTP endpoint is bound with the config: a bind error stops the start, as a bad
        // control socket does.
        let http = match &options.config.http {
            Some(listen) => {
                let server = HttpServer::bind(listen, poll.registry(), HTTP)?;
                let registry = poll.registry().try_clone().map_err(|error| format!("http: {error}"))?;
                Some((server, registry))
            }
            None => None,
        };
        let (cgroups, tree_method) = match options.cgroups.then(|| cgroup::Cgroups::start(sys::getpid())) {
            Some(Ok(cgroups)) => {
                let method = cgroups.describe();
                (Some(cgroups), method)
            }
            Some(Err(why)) => (None, format!("/proc walk and SV_LITE_INSTANCE markers ({why})")),
            None => (None, "/proc walk and SV_LITE_INSTANCE markers (--no-cgroups)".to_string()),
        };
        log::info!("whole-tree stop and accounting: {tree_method}");
        let now = read_clock();
        let supervisor = Supervisor::with_flags(&options.config, now, seed(), flags);
        log::info!("listening on {}", options.socket_path.display());
        Ok(Driver {
            now,
            poll,
            signals,
            control,
            config_path: options.config_path,
            state_dir,
            event_log,
            sources: HashMap::new(),
            next_token: FIRST_DYNAMIC_TOKEN,
            supervisor,
            reaped: Vec::new(),
            spawn_queue: std::collections::VecDeque::new(),
            spawns_this_turn: 0,
            accept_pending: false,
            rings: HashMap::new(),
            discarded: HashSet::new(),
            probes: Probes::new(),
            listeners,
            notify,
            wallclock,
            main_config,
            includes,
            watch,
            events: EventRing::default(),
            tree_kills: Vec::new(),
            outside_group: HashSet::new(),
            cgroups,
            tree_method,
            spawn_slots,
            usage: usage::Sampler::default(),
            http,
            counters: metrics::Counters::default(),
            mailer: Mailer::new(),
            mail_sinks: HashMap::new(),
            host: notify_out::host_name(),
            problems_logged: HashSet::new(),
            startup_problems: options.config.problems.clone(),
            flag_changes: Vec::new(),
            ledger,
            unwritten: state_dir::Unwritten::default(),
            stalled: Vec::new(),
            stalled_instances: HashSet::new(),
            fd_limit,
            read_buffer: vec![0; READ_BUFFER_BYTES],
            scratch: Vec::with_capacity(READ_BUFFER_BYTES),
            exit_code: None,
        })
    }

    fn run(&mut self) -> Result<u8, String> {
        let mut events = Events::with_capacity(256);
        let problems = std::mem::take(&mut self.startup_problems);
        self.log_new_problems(&problems);
        self.drain_actions();
        while self.exit_code.is_none() {
            let http_idle = self.http.as_ref().and_then(|(server, _)| server.next_deadline());
            let deadline = [
                self.supervisor.poll_timeout(),
                self.control.next_idle_deadline(),
                self.watch.next_deadline(),
                http_idle,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = if self.spawn_queue.is_empty() && !self.accept_pending {
                deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO) // More spawns or accepts to do: look at events, then carry on.
            };
            self.spawns_this_turn = 0;
            let polled = self.poll.poll(&mut events, timeout);
            self.now = read_clock();
            if let Err(error) = polled {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {error}"));
            }
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.handle_signals(),
                    CONTROL => self.accept_pending = true,
                    STDOUT | STDERR => {} // Flushed below, every turn.
                    NOTIFY => self.handle_notifications(),
                    WALLCLOCK => self.handle_wallclock(),
                    WATCH => self.watch.handle_readable(self.now.mono),
                    HTTP => self.accept_http(),
                    token => self.handle_source(token),
                }
                if self.exit_code.is_some() {
                    break;
                }
            }
            if self.accept_pending && self.exit_code.is_none() {
                self.accept_connections();
            }
            self.service_files_due();
            self.supervisor.handle_timeout(self.now);
            self.drain_actions();
            if let Some((server, registry)) = &mut self.http {
                server.close_idle(registry, self.now.mono);
            }
            let closed = self.control.close_idle(self.poll.registry(), self.now.mono);
            self.conns_closed(closed);
            self.flush_output();
            self.ledger.flush(&mut self.event_log);
        }
        self.finish();
        Ok(self.exit_code.unwrap_or(0))
    }

    fn feed(&mut self, input: Input) {
        let reload = matches!(input, Input::Reload { .. });
        self.supervisor.handle_input(self.now, input);
        self.drain_actions();
        if reload {
            // Cgroups of instances that an earlier reload removed, now empty.
            if let Some(cgroups) = &mut self.cgroups {
                let supervisor = &self.supervisor;
                cgroups.forget(|instance| supervisor.lookup(instance).is_ok());
            }
        }
    }

    /// Carries out every action the core has queued, and spawns up to this turn's budget
    /// (spawn results are fed back at once, and may queue more actions).
    fn drain_actions(&mut self) {
        loop {
            while let Some(action) = self.supervisor.poll_action() {
                self.carry_out(action);
            }
            self.kill_trees();
            self.write_flags();
            if self.spawns_this_turn >= SPAWNS_PER_TURN {
                return;
            }
            let Some(QueuedSpawn { id, name, launch, prefix, tail_buffer, extras }) = self.spawn_queue.pop_front()
            else {
                return;
            };
            if !self.supervisor.wants_spawn(id) {
                log::debug!("{name}: queued spawn dropped; the instance no longer wants it");
                continue;
            }
            self.spawns_this_turn += 1;
            let input = match self.spawn(id, &name, &launch, prefix, tail_buffer, &extras) {
                Ok(pid) => {
                    self.ledger_record(id, &name, pid, true);
                    Input::Spawned { id, pid }
                }
                Err((error, transient)) => Input::SpawnFailed { id, error, transient },
            };
            self.supervisor.handle_input(self.now, input);
        }
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Spawn { id, name, launch, prefix, tail_buffer, extras } => {
                self.spawn_queue.push_back(QueuedSpawn { id, name, launch, prefix, tail_buffer, extras });
            }
            Action::Kill { pid, signal, group } => {
                // A daemon found through its pid file may not lead a process group:
                // then the signal goes to the pid alone.
                let result = match sys::kill(pid, signal, group) {
                    Ok(false) if group => sys::kill(pid, signal, false),
                    other => other,
                };
                if let Err(error) = result {
                    log::warn!(
                        "cannot send {signal} to {} {pid}: {error}",
                        if group { "process group" } else { "pid" }
                    );
                }
            }
            Action::SweepTree { pid, instance } => {
                let in_cgroup = self.cgroups.as_ref().is_some_and(|cgroups| cgroups.has(&instance));
                if in_cgroup || self.outside_group.remove(&instance) {
                    self.carry_out(Action::KillTree { pid, signal: crate::spec::Signal::KILL, instance });
                } else if let Err(error) = sys::kill(pid, crate::spec::Signal::KILL, true) {
                    // Without a cgroup, and when the stop's walk found nothing outside the
                    // group, the group is all there is to sweep: no walk of /proc for each of
                    // the 10,000 exits of a shutdown.
                    log::debug!("{instance}: cannot sweep process group {pid}: {error}");
                }
            }
            Action::KillTree { pid, signal, instance } => {
                // The cgroup holds the whole tree, group included: each process gets the signal
                // once (a second SIGTERM or SIGINT means "hurry" to some programs).
                if self.kill_cgroup(&instance, signal) {
                    return;
                }
                let result = match sys::kill(pid, signal, true) {
                    Ok(false) => sys::kill(pid, signal, false),
                    other => other,
                };
                if let Err(error) = result {
                    log::debug!("{instance}: cannot send {signal} to process group {pid}: {error}");
                }
                // What left the group (setsid) or the tree (a double fork, adopted by us):
                // found by one /proc walk for every stop of this turn (`kill_trees`).
                self.tree_kills.push((pid, signal, instance));
            }
            Action::RunProbe { id, seq, check, snooze } => self.run_probe(id, seq, check, snooze),
            Action::CancelProbe { id, seq } => {
                if self.probes.cancel(self.poll.registry(), ProbeKey { instance: id, seq }) {
                    log::debug!("{id:?}: check {seq} given up");
                }
            }
            Action::AllocatePorts { id, count, exclude } => {
                let ports = ports::allocate(count, &exclude);
                self.supervisor.handle_input(self.now, Input::PortsAllocated { id, ports });
            }
            Action::Snooze { path, on } => {
                let result = if on { create_snooze_file(&path) } else { sys::remove_if_exists(&path) };
                if let Err(error) = result {
                    let verb = if on { "create" } else { "remove" };
                    let message = format!("cannot {verb} snooze file {}: {error}", path.display());
                    self.event_log.write(log::Level::Warn, &message);
                }
            }
            Action::SetFlag { instance, flag, on } => {
                // Written as one batch with one directory fsync, before the next reply goes out.
                self.flag_changes.push(state_dir::FlagChange { instance, flag, on });
            }
            Action::Reply { conn, mut reply } => {
                self.write_flags();
                self.unwritten.amend(conn, &mut reply);
                let line = self.encode_reply(&reply);
                self.send(conn, &line, true);
            }
            Action::Log { level, message } => self.event_log.write(level, &message),
            Action::Mail { sink, id, mail } => self.send_mail(sink, id, &mail),
            Action::CancelMail { id } => {
                self.mail_sinks.remove(&id);
                self.mailer.cancel(self.poll.registry(), id);
            }
            Action::RunHook { sink, argv, event } => {
                let result = notify_out::run_hook(&argv, &event, &self.host, self.spawn_slots.as_ref());
                if let Err(error) = &result {
                    log::debug!("notify hook {}: {error}", argv.first().map_or("", String::as_str));
                }
                self.feed(Input::HookSpawned { sink, result });
            }
            Action::Transition(event) => {
                self.counters.observe(&event);
                for line in event.reason.lines() {
                    self.event_log.write(event.level, &format!("{}: {line}", event.instance));
                }
                let followers = self.events.push(event);
                if !followers.is_empty() {
                    let line = self.events.last().map(|event| protocol::encode_events([event])).unwrap_or_default();
                    for conn in followers {
                        self.send(conn, &line, false);
                    }
                }
            }
            Action::Exit(code) => self.exit_code = Some(code),
        }
    }

    /// Carries out one check for an instance's probe. Pid files are read at once; HTTP and TCP
    /// checks are sockets in this `Poll` (answered from `handle_source`); a shell check is a
    /// child reaped by the same `waitpid` loop as every other.
    fn run_probe(&mut self, id: InstanceId, seq: u64, check: ProbeCheck, snooze: Option<PathBuf>) {
        let now = self.now;
        if snooze.as_deref().is_some_and(Path::exists) {
            self.supervisor.handle_input(now, Input::ProbeResult { id, seq, result: ProbeResult::Snoozed });
            return;
        }
        let request = match check {
            ProbeCheck::PidFile { path, known } => {
                let observation = pidfile::observe(&path, known, sys::getpid());
                log::debug!("pid file {}: {observation:?}", path.display());
                let alive = match observation {
                    crate::core::PidObservation::Alive { pid, .. } => Some(pid),
                    crate::core::PidObservation::Gone { .. } => None,
                };
                let result = ProbeResult::PidFile(observation);
                self.supervisor.handle_input(now, Input::ProbeResult { id, seq, result });
                if let Some(pid) = alive {
                    self.ledger_main_pid(id, pid);
                }
                return;
            }
            ProbeCheck::Shell { launch } => {
                // Through the slots too: a shell check per instance must not copy the table.
                let options = SpawnOptions {
                    slots: self.spawn_slots.as_ref(),
                    ..SpawnOptions::streams(Stream::Null, Stream::Null, Stream::Null)
                };
                let input = match sys::spawn(&launch, options) {
                    Ok(child) => Input::ProbeSpawned { id, seq, pid: child.pid },
                    Err(error) => Input::ProbeResult { id, seq, result: ProbeResult::Failed(error.to_string()) },
                };
                self.supervisor.handle_input(now, input);
                return;
            }
            ProbeCheck::HttpGet { port, path } => ProbeRequest::Get { port, path },
            ProbeCheck::HttpPost { port, path } => ProbeRequest::Post { port, path },
            ProbeCheck::Tcp { port } => ProbeRequest::Connect { port },
        };
        let token = self.next_token();
        let key = ProbeKey { instance: id, seq };
        if let Err(outcome) = self.probes.start(self.poll.registry(), token, key, request) {
            self.supervisor.handle_input(now, Input::ProbeResult { id, seq, result: outcome });
        }
    }

    /// Reads the sd_notify socket and hands each message to the instance it belongs to: the
    /// sender's pid (from `SCM_CREDENTIALS`) or its nearest ancestor that is an instance's main
    /// process. Messages from anyone else are ignored (debug log). `MAINPID=` must name a live
    /// descendant of sv-lite, as a pid file must.
    fn handle_notifications(&mut self) {
        let Ok(socket) = &mut self.notify else { return };
        let notifications = socket.receive();
        for notification in notifications {
            let sender = notification.pid;
            let owner = pidfile::nearest_known(sender, |pid| self.supervisor.instance_with_main_pid(pid).is_some())
                .and_then(|pid| self.supervisor.instance_with_main_pid(pid));
            let Some(id) = owner else {
                log::debug!("sd_notify from pid {sender}, which is no instance's process or descendant; ignored");
                continue;
            };
            let me = sys::getpid();
            let fields: Vec<NotifyField> = notification
                .fields
                .into_iter()
                .filter(|field| match field {
                    NotifyField::MainPid(pid) if !acceptable_main_pid(*pid, me) => {
                        log::warn!("MAINPID={pid} is not a live process started under sv-lite; ignored");
                        false
                    }
                    _ => true,
                })
                .collect();
            if !fields.is_empty() {
                let main_pids: Vec<Pid> = fields
                    .iter()
                    .filter_map(|field| match field {
                        NotifyField::MainPid(pid) => Some(*pid),
                        _ => None,
                    })
                    .collect();
                self.feed(Input::Notify { id, fields });
                for pid in main_pids {
                    self.ledger_main_pid(id, pid);
                }
            }
        }
    }

    /// Writes the flag changes queued by this turn's actions (one fsync for all).
    fn write_flags(&mut self) {
        if self.flag_changes.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.flag_changes);
        for (change, error) in state_dir::apply(&self.state_dir, &changes) {
            let (flag, dir) = (change.flag.as_str(), self.state_dir.display());
            let why = if change.on {
                format!("the {flag} flag was not saved in {dir}: {error}; it holds only until the daemon restarts")
            } else {
                format!("the {flag} flag could not be cleared in {dir}: {error}; a restarted daemon applies it again")
            };
            self.event_log.write(log::Level::Warn, &format!("{}: {why}", change.instance));
            self.unwritten.record(&change, why);
        }
    }

    fn spawn(
        &mut self,
        id: InstanceId,
        name: &str,
        launch: &Launch,
        prefix: bool,
        tail_buffer: usize,
        extras: &SpawnExtras,
    ) -> Result<Pid, (String, bool)> {
        let mut launch = std::borrow::Cow::Borrowed(launch);
        if extras.notify {
            let path = match &self.notify {
                Ok(socket) => socket.path().display().to_string(),
                Err(error) => return Err((format!("readiness: notify: {error}"), false)),
            };
            launch.to_mut().env.push(("NOTIFY_SOCKET".to_string(), path));
        }
        if let Some(watchdog) = extras.watchdog {
            launch.to_mut().env.push(("WATCHDOG_USEC".to_string(), watchdog.as_micros().to_string()));
        }
        // Socket activation: the program's listeners as fds 3, 4, ... with LISTEN_FDS,
        // LISTEN_FDNAMES, and LISTEN_PID set to the child's own pid by the spawn.
        let (mut extra_fds, socket_names) = self.listeners.for_program(&extras.program);
        if !socket_names.is_empty() {
            launch.to_mut().env.extend(crate::activation::listen_env(&socket_names));
        }
        // s6's notification fd: the write end of a pipe as fd N; we read the other end.
        let ready_pipe = match extras.ready_fd {
            Some(target) => {
                let (read_end, write_end) =
                    std::io::pipe().map_err(|error| (format!("readiness fd:{target}: pipe: {error}"), true))?;
                extra_fds.push((target, write_end.as_raw_fd()));
                Some((OwnedFd::from(read_end), OwnedFd::from(write_end)))
            }
            None => None,
        };
        let launch = launch.as_ref();
        let (stdout_rotate, stderr_rotate) = (extras.stdout_rotate, extras.stderr_rotate);
        let stdout_sink = open_sink(&launch.stdout, StreamKind::Stdout, name, prefix, stdout_rotate)
            .map_err(|error| (error, false))?;
        let stderr_sink = open_sink(&launch.stderr, StreamKind::Stderr, name, prefix, stderr_rotate)
            .map_err(|error| (error, false))?;
        let cgroup_dir = match self.cgroups.as_mut().map(|cgroups| cgroups.enter(name)) {
            Some(Ok(procs)) => Some(procs),
            Some(Err(error)) => {
                log::warn!("{name}: cannot make its cgroup ({error}); its tree is found through /proc");
                None
            }
            None => None,
        };
        // A discarded stream goes to /dev/null: no pipe, no descriptor of ours, nothing to read
        // (and so nothing for `ctl tail`). Without /dev, `spawn` pipes it and we drain it.
        let stream_for = |sink: &Sink| if *sink == Sink::Discard { Stream::Null } else { Stream::Pipe };
        let options = SpawnOptions {
            stdin: Stream::Null,
            stdout: stream_for(&launch.stdout),
            stderr: stream_for(&launch.stderr),
            foreground_tty: false,
            extra_fds: &extra_fds,
            listen_pid: !socket_names.is_empty(),
            watchdog_pid: extras.watchdog.is_some(),
            cgroup_dir: cgroup_dir.as_ref().map(AsRawFd::as_raw_fd),
            slots: self.spawn_slots.as_ref(),
        };
        let child = sys::spawn(launch, options).map_err(|error| {
            let mut message = error.to_string();
            if error.error.raw_os_error() == Some(libc::EMFILE) {
                message.push_str(&format!(
                    " (the open files limit is {}, and each instance holds 2 pipes; raise `ulimit -n`)",
                    self.fd_limit
                ));
            }
            (message, error.is_transient())
        })?;
        drop(cgroup_dir);
        if let Some(error) = &child.cgroup_error {
            log::warn!("{name}: cannot be born in its cgroup ({error}); its tree is found through /proc");
            if let Some(cgroups) = &mut self.cgroups {
                cgroups.leave(name);
            }
        }
        for (stream, pipe) in [(StreamKind::Stdout, &child.stdout), (StreamKind::Stderr, &child.stderr)] {
            if pipe.is_some() {
                self.rings.entry((id, stream)).or_insert_with(|| OutputRing::new(tail_buffer));
                self.discarded.remove(&(id, stream));
            } else {
                self.rings.remove(&(id, stream));
                self.discarded.insert((id, stream));
            }
        }
        if let Some(pipe) = child.stdout {
            self.watch_pipe(
                id,
                Receiver::from(pipe),
                ChildOutput::new(name.to_string(), StreamKind::Stdout, stdout_sink),
            );
        }
        if let Some(pipe) = child.stderr {
            self.watch_pipe(
                id,
                Receiver::from(pipe),
                ChildOutput::new(name.to_string(), StreamKind::Stderr, stderr_sink),
            );
        }
        if let Some((read_end, write_end)) = ready_pipe {
            drop(write_end); // The child has its copy; EOF comes when every copy is closed.
            self.watch_ready_fd(id, child.pid, Receiver::from(read_end));
        }
        Ok(child.pid)
    }

    /// Watches the read end of an instance's notification fd for its first newline.
    fn watch_ready_fd(&mut self, instance: InstanceId, pid: Pid, receiver: Receiver) {
        // No read now: the core learns of the spawn only after this returns. A newline already
        // written is reported by the registration itself (epoll checks readiness at add).
        if let Err((error, _)) = self.watch(Source::ReadyFd { instance, pid, receiver }) {
            log::warn!("{instance:?}: cannot watch its notification fd: {error}");
        }
    }

    /// Registers a pipe source's read end (non-blocking, readable) under a new token; on an
    /// error the source comes back, for the message.
    fn watch(&mut self, mut source: Source) -> Result<(), (io::Error, Source)> {
        let token = self.next_token();
        let (Source::Child { receiver, .. } | Source::ReadyFd { receiver, .. }) = &mut source;
        let registered = receiver
            .set_nonblocking(true)
            .and_then(|()| self.poll.registry().register(receiver, token, Interest::READABLE));
        match registered {
            Ok(()) => {
                self.sources.insert(token, source);
                Ok(())
            }
            Err(error) => Err((error, source)),
        }
    }

    /// Reads an instance's notification fd: the first newline means ready, and the fd is done.
    fn read_ready_fd(&mut self, token: Token) {
        let Some(Source::ReadyFd { receiver, instance, pid }) = self.sources.get_mut(&token) else { return };
        let (instance, pid) = (*instance, *pid);
        let mut ready = false;
        let mut done = false;
        loop {
            match receiver.read(&mut self.read_buffer) {
                Ok(0) => {
                    done = true;
                    break;
                }
                Ok(n) => {
                    if self.read_buffer[..n].contains(&b'\n') {
                        ready = true;
                        done = true;
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        if done {
            if let Some(Source::ReadyFd { mut receiver, .. }) = self.sources.remove(&token) {
                let _ = self.poll.registry().deregister(&mut receiver);
            }
        }
        if ready {
            self.feed(Input::FdReady { id: instance, pid });
        }
    }

    fn watch_pipe(&mut self, instance: InstanceId, receiver: Receiver, output: ChildOutput) {
        if let Err((error, Source::Child { output, .. })) = self.watch(Source::Child { instance, receiver, output }) {
            log::warn!("{}: cannot watch {}: {error}; its output is lost", output.name, output.stream.as_str());
        }
    }

    fn next_token(&mut self) -> Token {
        take_token(&mut self.next_token)
    }

    fn handle_signals(&mut self) {
        // Drain first, then act (signal-hook's pipe.rs: the reverse may lose signals).
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGCHLD => {
                    let mut reaped = std::mem::take(&mut self.reaped);
                    sys::reap_all(&mut reaped);
                    for (pid, status) in reaped.drain(..) {
                        self.ledger.exited(pid);
                        self.feed(Input::Exited { pid, status });
                    }
                    self.reaped = reaped;
                }
                SIGTERM | SIGINT | SIGQUIT => {
                    self.event_log.write(log::Level::Info, &format!("received {}", crate::spec::Signal(signal)));
                    self.feed(Input::Shutdown { conn: None });
                }
                SIGHUP => {
                    self.event_log.write(log::Level::Info, "received SIGHUP: reloading config");
                    let result = self.load_config();
                    self.counters.reloaded(result.is_ok(), self.now.wall);
                    self.feed(Input::Reload { conn: None, result });
                }
                SIGUSR1 => self.reopen_logs(),
                other => log::debug!("ignoring signal {other}"),
            }
        }
    }

    /// The wall clock was set (or the timer fired): nothing to do here but wake up; the clocks
    /// read for this turn show the step to the core.
    fn handle_wallclock(&mut self) {
        if let Some(clock) = &mut self.wallclock {
            if clock.handle_readable() == WallEvent::ClockSet {
                log::debug!("the wall clock was set");
            }
        }
    }

    /// Reads the config file again, with every service file of its `include:` directories.
    fn load_config(&mut self) -> Result<Config, String> {
        let main = config::load(&self.config_path).map_err(|errors| errors.to_string())?;
        main.warnings.iter().for_each(|warning| log::warn!("{warning}"));
        let listed: Vec<PathBuf> = main.include.iter().flat_map(|dir| self.list_service_files(dir)).collect();
        let gone: Vec<PathBuf> =
            self.includes.paths().filter(|path| !listed.contains(&path.to_path_buf())).map(Path::to_path_buf).collect();
        for path in listed.iter().chain(&gone) {
            self.read_service_file(path);
        }
        let mut config = self.includes.merge(&main);
        self.bind_listeners(&mut config, &main)?;
        // Only a config that loaded moves the watch: a failed reload changes nothing.
        self.watch.set_dirs(&main.include, self.now.mono);
        self.main_config = main;
        Ok(config)
    }

    /// The service files of one `include:` directory; one that cannot be listed is recorded
    /// as a problem.
    fn list_service_files(&mut self, dir: &Path) -> Vec<PathBuf> {
        match include::list(dir) {
            Ok(paths) => {
                self.includes.update_directory(dir, None);
                paths
            }
            Err(why) => {
                self.includes.update_directory(dir, Some(&why));
                Vec::new()
            }
        }
    }

    /// Reads one service file (or finds it gone) into the book; returns whether it changed.
    fn read_service_file(&mut self, path: &Path) -> bool {
        match include::read(path) {
            Ok(contents) => self.includes.update(path, contents.as_deref()),
            Err(why) => self.includes.update_unreadable(path, &why),
        }
    }

    /// Service files whose last change is 200 ms old (or a rescan): read them, and if any
    /// changed, apply the merged config as a reload does (added programs start, removed ones
    /// stop, changed ones restart, the rest are left alone). No SIGHUP needed.
    fn service_files_due(&mut self) {
        if self.watch.next_deadline().is_none_or(|at| at > self.now.mono) {
            return;
        }
        let due = self.watch.take_due(self.now.mono, self.includes.paths().collect::<Vec<_>>());
        let mut changed = Vec::new();
        for path in due {
            // Editors' temp files and other names define nothing: not even read.
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            if let config::service_file::FileKind::Ignored(why) = config::service_file::kind(name) {
                log::debug!("{}: ignored: {why}", path.display());
                continue;
            }
            if self.read_service_file(&path) {
                changed.push(path.display().to_string());
            }
        }
        if changed.is_empty() {
            return;
        }
        let mut config = self.includes.merge(&self.main_config);
        let message = format!("service files changed: {}", changed.join(", "));
        self.event_log.write(log::Level::Info, &message);
        let main = self.main_config.clone();
        let result = self.bind_listeners(&mut config, &main).map(|()| config);
        self.feed(Input::Reload { conn: None, result });
    }

    /// Binds the listening sockets `config` names. A service file's program whose socket cannot
    /// be bound is left out with a problem; a main-config program's failure fails the config.
    fn bind_listeners(&mut self, config: &mut Config, main: &Config) -> Result<(), String> {
        let in_main = |name: &str| main.programs.iter().any(|program| program.name == name);
        let result = self.listeners.apply_sparing(config, &|name| !in_main(name));
        self.log_new_problems(&config.problems);
        result
    }

    /// Logs each problem of the service files once, when it first appears.
    fn log_new_problems(&mut self, problems: &[String]) {
        for problem in problems {
            if self.problems_logged.insert(problem.clone()) {
                self.event_log.write(log::Level::Error, &format!("service file: {problem}"));
            }
        }
        self.problems_logged.retain(|logged| problems.contains(logged));
    }

    fn reopen_logs(&mut self) {
        self.event_log.reopen();
        for source in self.sources.values_mut() {
            if let Source::Child { output, .. } = source {
                if let Err(error) = output.reopen() {
                    log::warn!(
                        "{}: cannot reopen {} file: {error}; keeping the old one",
                        output.name,
                        output.stream.as_str()
                    );
                }
            }
        }
        self.event_log.write(log::Level::Info, "received SIGUSR1: reopened log files");
    }

    /// Accepts up to `ACCEPTS_PER_TURN` clients; `accept_pending` stays set while more may wait.
    fn accept_connections(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let accepted = self.control.accept(self.poll.registry(), &mut || take_token(&mut self.next_token));
            let Some(token) = accepted else {
                self.accept_pending = false;
                return;
            };
            // A client may have written before we registered: read now (edge-triggered).
            self.service_connection(token);
        }
    }

    fn handle_source(&mut self, token: Token) {
        // Child output first: the busiest source, found by one map lookup, before the
        // servers' own lookups.
        match self.sources.get(&token) {
            Some(Source::Child { .. }) => return self.read_child(token),
            Some(Source::ReadyFd { .. }) => return self.read_ready_fd(token),
            None => {}
        }
        if self.http.as_ref().is_some_and(|(server, _)| server.owns(token)) {
            self.serve_http(token);
            return;
        }
        if self.mailer.owns(token) {
            if let Some((id, result)) = self.mailer.handle(self.poll.registry(), token) {
                if let Some(sink) = self.mail_sinks.remove(&id) {
                    self.feed(Input::MailResult { sink, id, result });
                }
            }
            return;
        }
        if self.probes.owns(token) {
            if let Some((key, outcome)) = self.probes.handle(self.poll.registry(), token) {
                let input = Input::ProbeResult { id: key.instance, seq: key.seq, result: outcome };
                self.feed(input);
            }
            return;
        }
        if self.control.owns(token) {
            self.service_connection(token);
        }
        // Otherwise a spurious event for a source already gone.
    }

    fn read_child(&mut self, token: Token) {
        let Some(Source::Child { receiver, output, instance }) = self.sources.get_mut(&token) else { return };
        let key = (*instance, output.stream);
        let mut ring = self.rings.get_mut(&key);
        let followed = self.control.is_followed(key);
        let forwarded_to = output.forwarded_to();
        let mut for_followers = Vec::new();
        let mut at_eof = false;
        let mut stalled = false;
        loop {
            if forwarded_to.is_some_and(stdio::over_high_water) {
                // The reader of our stdout/stderr is behind: leave the bytes in the pipe, so
                // the child waits in write() as on a slow terminal. Read again once it drains.
                stalled = true;
                break;
            }
            match receiver.read(&mut self.read_buffer) {
                Ok(0) => {
                    at_eof = true;
                    break;
                }
                Ok(n) => {
                    let chunk = &self.read_buffer[..n];
                    output.deliver(chunk, &mut self.scratch);
                    if let Some(ring) = ring.as_mut() {
                        ring.push(chunk);
                    }
                    if followed {
                        for_followers.extend_from_slice(chunk);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::warn!("{}: reading {}: {error}", output.name, output.stream.as_str());
                    at_eof = true;
                    break;
                }
            }
        }
        let instance = key.0;
        if stalled && !self.stalled.contains(&token) {
            self.stalled.push(token);
            if self.stalled_instances.insert(instance) {
                self.supervisor.handle_input(self.now, Input::OutputStalled { id: instance, stalled: true });
            }
        }
        if !for_followers.is_empty() {
            let closed = self.control.feed_followers(self.poll.registry(), key, &for_followers);
            self.conns_closed(closed);
        }
        if at_eof {
            if let Some(Source::Child { mut receiver, mut output, instance }) = self.sources.remove(&token) {
                output.finish(&mut self.scratch);
                let _ = self.poll.registry().deregister(&mut receiver);
                log::debug!("{} ({instance:?}): {} closed", output.name, output.stream.as_str());
            }
        }
    }

    /// Writes what the readers of our stdout and stderr take, then reads again the pipes that
    /// waited for them, once their stream has drained below the low-water mark.
    fn flush_output(&mut self) {
        stdio::flush(StreamKind::Stdout);
        stdio::flush(StreamKind::Stderr);
        if self.stalled.is_empty() && self.stalled_instances.is_empty() {
            return;
        }
        let ready: Vec<Token> = self
            .stalled
            .iter()
            .copied()
            .filter(|token| match self.sources.get(token) {
                Some(Source::Child { output, .. }) => {
                    output.forwarded_to().is_none_or(|stream| stdio::pending(stream) < stdio::LOW_WATER)
                }
                Some(Source::ReadyFd { .. }) | None => true,
            })
            .collect();
        self.stalled.retain(|token| !ready.contains(token));
        for token in ready {
            self.read_child(token);
        }
        let still: HashSet<InstanceId> = self
            .stalled
            .iter()
            .filter_map(|token| match self.sources.get(token) {
                Some(Source::Child { instance, .. }) => Some(*instance),
                Some(Source::ReadyFd { .. }) | None => None,
            })
            .collect();
        let resumed: Vec<InstanceId> = self.stalled_instances.difference(&still).copied().collect();
        for id in resumed {
            self.stalled_instances.remove(&id);
            self.supervisor.handle_input(self.now, Input::OutputStalled { id, stalled: false });
        }
        self.drain_actions();
    }

    /// Hands a connection's requests on, in the order they came, then lets the server close it
    /// if its client has left and everything is answered.
    fn service_connection(&mut self, token: Token) {
        let Some(Serviced { conn, requests }) = self.control.service(token) else { return };
        for request in requests {
            match request {
                Ok(request) => self.route_request(conn, request),
                Err(error) => self.send(conn, &protocol::encode_error(&error), false),
            }
        }
        let closed = self.control.settle(self.poll.registry(), conn);
        self.conns_closed(closed);
    }

    /// Routes one request: `reload`, `pid`, `port` and `tail` are answered here, the rest goes
    /// to the core.
    fn route_request(&mut self, conn: ConnId, request: ControlRequest) {
        self.control.begin_request(conn);
        let input = match request {
            ControlRequest::Port { target, name } => {
                match self.supervisor.port_of(&target, &name) {
                    Ok(port) => self.send(conn, &protocol::encode_port(port), true),
                    Err(error) => self.send(conn, &protocol::encode_error(&error), true),
                }
                return;
            }
            ControlRequest::DaemonPid => {
                self.send(conn, &protocol::encode_pid(sys::getpid()), true);
                return;
            }
            ControlRequest::Info => {
                let text = format!(
                    "version  {}\npid      {}\nconfig   {}\ntrees    {}\n",
                    env!("CARGO_PKG_VERSION"),
                    sys::getpid(),
                    self.config_path.display(),
                    self.tree_method
                );
                self.send(conn, &protocol::encode_data(text.as_bytes()), true);
                return;
            }
            ControlRequest::Tail { target, stream, lines, follow } => {
                self.tail(conn, &target, stream, lines, follow);
                return;
            }
            ControlRequest::Events { targets, follow } => {
                let line = protocol::encode_events(self.events.recent(&targets));
                // The backlog goes out as an answer (4 MiB allowed); only then is it a follower
                // (256 KiB).
                self.send(conn, &line, true);
                if follow && self.control.owns_conn(conn) {
                    self.control.mark_following(conn);
                    self.events.follow(conn, targets);
                }
                return;
            }
            ControlRequest::Core(request) => {
                // Flags this request sets are written within this feed; a failure is its own.
                self.unwritten.begin(Some(conn));
                self.feed(Input::Request { conn, request });
                self.unwritten.begin(None);
                return;
            }
            ControlRequest::Shutdown => Input::Shutdown { conn: Some(conn) },
            ControlRequest::Reload => {
                self.event_log.write(log::Level::Info, "reload requested over the control socket");
                let result = self.load_config();
                self.counters.reloaded(result.is_ok(), self.now.wall);
                Input::Reload { conn: Some(conn), result }
            }
        };
        self.feed(input);
    }

    /// Sends bytes to a connection (see [`ControlServer::send`]).
    fn send(&mut self, conn: ConnId, bytes: &[u8], answers: bool) {
        let closed = self.control.send(self.poll.registry(), conn, bytes, answers);
        self.conns_closed(closed);
    }

    /// Signals everything in `instance`'s cgroup (SIGKILL through `cgroup.kill`); false when it
    /// has none, or it failed (then the `/proc` walk does it).
    fn kill_cgroup(&mut self, instance: &str, signal: crate::spec::Signal) -> bool {
        let Some(cgroups) = self.cgroups.as_mut().filter(|cgroups| cgroups.has(instance)) else { return false };
        let result = if signal == crate::spec::Signal::KILL {
            cgroups.kill(instance)
        } else {
            cgroups.pids(instance).map(|pids| {
                for pid in pids {
                    if let Err(error) = sys::kill(pid, signal, false) {
                        log::debug!("{instance}: cannot send {signal} to pid {pid}: {error}");
                    }
                }
            })
        };
        match result {
            Ok(()) => true,
            Err(error) => {
                log::warn!("{instance}: cannot signal its cgroup ({error}); walking /proc instead");
                false
            }
        }
    }

    /// Signals what left each stopped instance's process group, for all of this turn's stops
    /// with one walk of `/proc`.
    fn kill_trees(&mut self) {
        if self.tree_kills.is_empty() {
            return;
        }
        let kills = std::mem::take(&mut self.tree_kills);
        let stops: Vec<(Pid, String)> = kills.iter().map(|(pid, _, instance)| (*pid, instance.clone())).collect();
        for ((_, members), (_, signal, instance)) in usage::trees_members(&stops, sys::getpid()).into_iter().zip(&kills)
        {
            if !members.is_empty() {
                self.outside_group.insert(instance.clone());
            }
            for other in members {
                match sys::kill(other, *signal, false) {
                    Ok(_) => log::debug!("{instance}: sent {signal} to pid {other}, outside its process group"),
                    Err(error) => log::debug!("{instance}: cannot send {signal} to pid {other}: {error}"),
                }
            }
        }
    }

    /// New HTTP connections.
    fn accept_http(&mut self) {
        let Some((mut server, registry)) = self.http.take() else { return };
        server.accept(&registry, &mut || self.next_token());
        self.http = Some((server, registry));
    }

    /// An HTTP connection is ready: its requests are answered from the core's state. Read-only.
    fn serve_http(&mut self, token: Token) {
        let Some((mut server, registry)) = self.http.take() else { return };
        let now = self.now.mono;
        server.handle(&registry, token, now, &mut |request| self.http_response(&request.path));
        self.http = Some((server, registry));
    }

    fn http_response(&mut self, path: &str) -> http::Response {
        let text = |status, body: String| http::Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into_bytes(),
        };
        match path {
            "/healthz" => text(200, "ok\n".to_string()),
            "/readyz" => {
                let waiting = self.supervisor.not_ready();
                if waiting.is_empty() {
                    text(200, "ready\n".to_string())
                } else {
                    text(503, waiting.iter().map(|line| format!("{line}\n")).collect())
                }
            }
            "/status" => {
                let rows = self.supervisor.status(self.now, &[]);
                let body = self.status_json(&rows);
                http::Response { status: 200, content_type: "application/json", body }
            }
            "/metrics" => {
                let rows = self.supervisor.status(self.now, &[]);
                self.counters.keep_only(&rows);
                let roots = usage_roots(&rows);
                let usage = self.usage.read(&roots, self.cgroups.as_ref(), self.now.mono, false);
                let body = metrics::render(&rows, &self.counters, &metrics::read_process_stats(), &usage);
                http::Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: body.into_bytes(),
                }
            }
            _ => text(404, "not found: /healthz, /readyz, /status and /metrics are\n".to_string()),
        }
    }

    /// `status --json`'s array, with each tree's CPU and memory.
    fn status_json(&mut self, rows: &[crate::core::InstanceStatus]) -> Vec<u8> {
        let roots = usage_roots(rows);
        let usage = self.usage.read(&roots, self.cgroups.as_ref(), self.now.mono, true);
        let mut wire = protocol::wire_rows(rows);
        for row in &mut wire {
            fill_usage(row, &usage);
        }
        serde_json::to_vec_pretty(&wire).unwrap_or_default()
    }

    /// A reply line; `status` rows get the CPU and memory of each instance's process tree,
    /// read from `/proc` now (only when asked: nothing is sampled in between).
    fn encode_reply(&mut self, reply: &crate::core::Reply) -> Vec<u8> {
        let crate::core::Reply::Status { rows, .. } = reply else { return protocol::encode_reply(reply) };
        let roots = usage_roots(rows);
        let usage = self.usage.read(&roots, self.cgroups.as_ref(), self.now.mono, true);
        protocol::encode_reply_with(reply, &mut |row| fill_usage(row, &usage))
    }

    /// Composes one notification mail (with the instances' recent output) and starts its
    /// delivery; a delivery that fails at once is reported at once.
    fn send_mail(&mut self, sink: usize, id: u64, mail: &crate::core::Mail) {
        let mut tails: Vec<(String, String, Vec<u8>)> = Vec::new();
        for name in &mail.instances {
            let Ok(instance) = self.supervisor.lookup(name) else { continue };
            for (stream, label) in [(StreamKind::Stderr, "stderr"), (StreamKind::Stdout, "stdout")] {
                if let Some(ring) = self.rings.get(&(instance, stream)) {
                    tails.push((name.clone(), label.to_string(), ring.last_lines(notify_out::TAIL_LINES)));
                }
            }
        }
        let message = notify_out::compose_mail(mail, &self.host, &tails, id, self.now.wall);
        let from = mail.spec.from.replace("%(host)s", &self.host);
        let result = match &mail.spec.via {
            MailVia::Smtp { addr, auth } => {
                let token = self.next_token();
                self.mailer
                    .start(
                        self.poll.registry(),
                        token,
                        id,
                        *addr,
                        auth.clone(),
                        &self.host,
                        &from,
                        &mail.spec.to,
                        message,
                    )
                    .map(|()| {
                        self.mail_sinks.insert(id, sink);
                    })
            }
            MailVia::Sendmail { path } => mail::sendmail(path, &message).map(|pid| {
                self.feed(Input::MailSpawned { sink, id, pid });
            }),
        };
        if let Err(error) = result {
            self.feed(Input::MailResult { sink, id, result: Err(error) });
        }
    }

    /// Tells the core about connections the server closed, so that it drops their waiters.
    fn conns_closed(&mut self, closed: Vec<ConnId>) {
        for conn in closed {
            self.events.closed(conn);
            self.unwritten.forget(conn);
            self.supervisor.handle_input(self.now, Input::ConnClosed { conn });
        }
    }

    /// Answers `tail`: the last lines from the ring, then, with `follow`, new output as it comes.
    fn tail(&mut self, conn: ConnId, target: &str, stream: TailStream, lines: usize, follow: bool) {
        let instance = match self.supervisor.lookup(target) {
            Ok(instance) => instance,
            Err(error) => {
                self.send(conn, &protocol::encode_error(&error), true);
                return;
            }
        };
        let stream = match stream {
            TailStream::Stdout => StreamKind::Stdout,
            TailStream::Stderr => StreamKind::Stderr,
        };
        if self.discarded.contains(&(instance, stream)) {
            let message = format!(
                "{target}: its {} is discarded (`{}: discard`): nothing is kept",
                stream.as_str(),
                stream.as_str()
            );
            self.send(conn, &protocol::encode_error(&message), true);
            return;
        }
        let recent = self.rings.get(&(instance, stream)).map(|ring| ring.last_lines(lines)).unwrap_or_default();
        if follow {
            self.control.follow(conn, (instance, stream));
        }
        self.send(conn, &protocol::encode_data(&recent), true);
    }

    /// Last duties before exit: deliver pending replies, drain the programs' output to our
    /// stdout and stderr (waiting for a slow reader up to [`EXIT_FLUSH_DEADLINE`]), remove the
    /// socket.
    fn finish(&mut self) {
        let deadline = Instant::now() + EXIT_FLUSH_DEADLINE;
        if let Some(cgroups) = &mut self.cgroups {
            cgroups.finish(deadline.min(Instant::now() + CGROUP_EXIT_WAIT));
        }
        if let Some((server, _)) = &self.http {
            server.remove_socket();
        }
        self.control.finish();
        let tokens: Vec<Token> = self.sources.keys().copied().collect();
        for token in tokens {
            if let Some(Source::Child { .. }) = self.sources.get(&token) {
                self.read_child(token);
            }
        }
        // Pipes held back by a slow reader: give them until the deadline.
        while !self.stalled.is_empty() && Instant::now() < deadline {
            for stream in [StreamKind::Stdout, StreamKind::Stderr] {
                stdio::drain(stream, stdio::LOW_WATER, deadline);
            }
            let stalled = std::mem::take(&mut self.stalled);
            for token in stalled {
                self.read_child(token);
            }
        }
        self.control.remove_socket();
        stdio::uninstall(deadline);
    }
}

/// Whether a `MAINPID=` may be followed: a live descendant of sv-lite (`me`), not sv-lite
/// itself, as the pid-file reuse guard demands.
fn acceptable_main_pid(pid: Pid, me: Pid) -> bool {
    pid != me && pidfile::stat(pid).is_some() && pidfile::descends_from(pid, me)
}

/// Creates a snooze file without following a symlink, truncating anything or waiting on a FIFO:
/// the working directory may belong to the program.
fn create_snooze_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"))
    }
}

fn open_sink(sink: &Sink, stream: StreamKind, name: &str, prefix: bool, rotate: Rotate) -> Result<OutputSink, String> {
    match sink {
        Sink::Discard => Ok(OutputSink::Discard),
        Sink::Forward => Ok(OutputSink::forward(stream, name, prefix)),
        // supervisord's habit, `stdout_logfile=/dev/stdout`: our own stdout, through the
        // non-blocking queue, not a blocking file write that a stalled reader could hang.
        Sink::File(path) if matches!(path.to_str(), Some("/dev/stdout" | "/proc/self/fd/1")) => {
            Ok(OutputSink::forward(stream, name, prefix).retarget(StreamKind::Stdout))
        }
        Sink::File(path) if matches!(path.to_str(), Some("/dev/stderr" | "/proc/self/fd/2")) => {
            Ok(OutputSink::forward(stream, name, prefix).retarget(StreamKind::Stderr))
        }
        Sink::File(path) => OutputSink::file(path, rotate)
            .map_err(|error| format!("{} file {}: {error}", stream.as_str(), path.display())),
    }
}

/// The next token from the driver's one counter: tokens are never reused, so a late event for a
/// closed source finds nothing.
fn take_token(counter: &mut usize) -> Token {
    let token = Token(*counter);
    *counter += 1;
    token
}

/// The `(main pid, instance)` of each row with a process, whose trees `status` measures.
fn usage_roots(rows: &[crate::core::InstanceStatus]) -> Vec<(Pid, &str)> {
    rows.iter().filter_map(|row| Some((row.pid?, row.name.as_str()))).collect()
}

/// A status row's CPU and memory, from one reading of `/proc`.
fn fill_usage(row: &mut protocol::WireStatus, usage: &HashMap<Pid, usage::Usage>) {
    if let Some(usage) = row.pid.and_then(|pid| usage.get(&pid)) {
        row.cpu_seconds = Some((usage.cpu_seconds * 100.0).round() / 100.0);
        row.cpu_percent = usage.cpu_percent.map(|percent| (percent * 10.0).round() / 10.0);
        row.rss_bytes = Some(usage.rss_bytes);
    }
}

/// How long the exit waits for the last stops' killed processes to leave their cgroups, so
/// that the cgroups can be removed.
const CGROUP_EXIT_WAIT: Duration = Duration::from_secs(1);

/// Both clocks, read together: once per wake-up of the loop.
fn read_clock() -> Now {
    Now { mono: Instant::now(), wall: SystemTime::now() }
}

fn seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_nanos() as u64).unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}
