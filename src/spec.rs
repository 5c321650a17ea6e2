//! The normalised program model: what to run and how to supervise it.
//!
//! Every input format (the YAML `programs:` map, Tron's `services:` list, later a config
//! directory) produces these types; the core and the driver consume nothing else.
//!
//! Architecture invariant: nothing here is `Deserialize` and nothing here does I/O. Parsing lives
//! in `config.rs`; these are the validated results.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A whole validated configuration.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// Control socket path from the file, if given (the CLI and environment may override it).
    pub socket: Option<PathBuf>,
    /// Event log path, if any.
    pub logfile: Option<PathBuf>,
    /// Group whose members may use the control socket besides root and the daemon's uid.
    pub socket_group: Option<String>,
    /// Directory for persistent stop/pause flags (default: beside the socket).
    pub state_dir: Option<PathBuf>,
    /// Programs, sorted by name, names unique.
    pub programs: Vec<ProgramSpec>,
    /// What the loader accepted but the user should fix, each as `{file}:{line}:{column}:
    /// {key path}: {message}`, in file order. For the user only: supervision ignores it.
    pub warnings: Vec<String>,
    /// Service directories (`include:`), absolute, in config order: each file in them defines
    /// one program (`*.json` in service_manager's format, `*.yaml`/`*.yml` one sv-lite program).
    pub include: Vec<PathBuf>,
    /// Service files that failed to load, each as `{file}:{line}:{column}: {key}: {message}`:
    /// their programs are left out, or keep the last definition that loaded. Shown by `status`.
    pub problems: Vec<String>,
    /// Size rotation of `logfile` (`logfile_maxbytes`, `logfile_backups`).
    pub logfile_rotate: Rotate,
    /// Where transitions are reported (`notify:`), in config order.
    pub notify: Vec<NotifySpec>,
    /// Where the read-only HTTP endpoint listens (`http:`); off when `None`. Boxed: `Config`
    /// travels in `core::Input::Reload`, which clippy's `large_enum_variant` keeps small.
    pub http: Option<Box<HttpListen>>,
}

/// The address of the HTTP endpoint (`http: 127.0.0.1:9110` or `http: "unix:/run/sv-lite.http"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpListen {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// Size rotation of a log file: when a write would take it past `maxbytes`, `.N` is dropped,
/// the others shift up, the file becomes `.1` and a new one is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotate {
    /// 0: never rotate.
    pub maxbytes: u64,
    /// Rotated files kept (`file.1` … `file.N`); 0 with `maxbytes`: the file is truncated.
    pub backups: u32,
}

impl Default for Rotate {
    fn default() -> Rotate {
        Rotate { maxbytes: 0, backups: defaults::BACKUPS }
    }
}

/// One `notify:` entry: where events of which kinds and programs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySpec {
    pub sink: NotifySink,
    /// Event kinds reported (`on:`), never empty.
    pub on: Vec<crate::core::EventKind>,
    /// Programs reported (`programs:`); empty: all.
    pub programs: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifySink {
    Email(EmailSpec),
    Exec(ExecSpec),
}

/// `email:` — digests by SMTP or sendmail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailSpec {
    /// Recipients, each a plain `local@domain` address (validated; no display names).
    pub to: Vec<String>,
    /// The sender address as written; `%(host)s` is expanded with the host name when a mail
    /// is composed (the loader checks that it makes an address).
    pub from: String,
    pub via: MailVia,
    /// At most one mail per digest window; events inside it are gathered into that mail.
    pub digest: Duration,
}

/// How mail leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailVia {
    /// `smtp://[user:password@]HOST[:PORT]`, HOST an IP address (no DNS in the loop), port 25
    /// by default. Plain TCP only.
    Smtp { addr: std::net::SocketAddr, auth: Option<(String, String)> },
    /// `sendmail` or `sendmail:/path`: the message piped to `PATH -t -i`.
    Sendmail { path: PathBuf },
}

/// `exec:` — a command run once per event, with the event in its environment and on stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// Killed (its process group) when it runs longer.
    pub timeout: Duration,
}

/// One program: a command and the policy that keeps `numprocs` instances of it alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub name: String,
    /// argv[0] is looked up in PATH when it contains no slash. Never empty.
    pub argv: Vec<String>,
    /// Instances `name:0` .. `name:numprocs-1`; at least 1.
    pub numprocs: u32,
    pub autostart: bool,
    pub autorestart: AutoRestart,
    /// Exit codes that count as expected.
    pub exitcodes: Vec<u8>,
    /// Failed starts retried in a row before FATAL.
    pub startretries: u32,
    /// How long an instance must stay up to count as RUNNING.
    pub starttime: Duration,
    /// Wait before restarting an instance that exited after it was RUNNING.
    pub restart_delay: Duration,
    /// A run shorter than this counts as a crash for the crash-loop backoff.
    pub stability_window: Duration,
    pub stopsignal: Signal,
    /// Wait after stopsignal before SIGKILL.
    pub stoptime: Duration,
    pub stdout: Sink,
    pub stderr: Sink,
    /// Variables added to the inherited environment, sorted by name.
    pub env: Vec<(String, String)>,
    pub workingdir: Option<PathBuf>,
    pub umask: Option<u32>,
    /// A FATAL or final exit of this program shuts the supervisor down with its exit code.
    pub critical: bool,
    /// Prefix forwarded output lines with the instance name.
    pub prefix: bool,
    /// Bytes of recent output kept in memory per stream per instance for `ctl tail`.
    pub tail_buffer: usize,
    /// When set, the command starts a daemon that writes its pid here; the instance is up
    /// while that pid lives. A template: see [`ProgramSpec::launch`].
    pub pid_file: Option<String>,
    /// How often a pid-file daemon is checked.
    pub monitor_interval: Duration,
    /// Named TCP ports each instance gets (Aurora's `thermos.ports`), in config order.
    pub ports: Vec<(String, PortSpec)>,
    /// Aurora's HealthCheckConfig: readiness and liveness by repeated checks.
    pub health_check: Option<HealthCheck>,
    /// How the instance says it is ready (RUNNING).
    pub readiness: Readiness,
    /// `notify`, `fd:N`, `health`: no readiness by then is a failed start.
    pub ready_timeout: Duration,
    /// `notify` only: `WATCHDOG=1` expected at least this often once RUNNING.
    pub watchdog: Option<Duration>,
    /// Programs that must reach a condition before this one starts, in config order.
    pub depends_on: Vec<Dependency>,
    /// Listening sockets sv-lite holds and passes to each instance (systemd socket
    /// activation), in config order: fds 3, 4, ...
    pub sockets: Vec<(String, SocketSpec)>,
    /// Aurora's HttpLifecycleConfig: POSTs before the stop signal. On by default when the
    /// program has a port named `health` (the config loader fills it in); `lifecycle: none`
    /// turns it off.
    pub lifecycle: Option<HttpLifecycle>,
    /// Run at fire times instead of kept running (`schedule:`/`cron:`, service_manager's
    /// `scheduling`).
    pub schedule: Option<ScheduleSpec>,
    /// Size rotation of a `stdout`/`stderr` file (`stdout_maxbytes`, `stdout_backups`, ...).
    pub stdout_rotate: Rotate,
    pub stderr_rotate: Rotate,
}

/// When a scheduled program runs, and how a run is bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// The fire times of all entries, merged (UTC).
    pub when: crate::schedule::Schedule,
    /// A run still going after this long is stopped with the stop sequence (`timeout:`).
    pub timeout: Option<Duration>,
    /// What a fire time does while the previous run is still going.
    pub overlap: Overlap,
}

/// `overlap:` of a scheduled program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip the new run and log it (cron's and service_manager's behaviour).
    #[default]
    Skip,
    /// Stop the old run with its stop sequence, then start the new one.
    Kill,
}

/// How an instance says it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Up for `starttime` (the default).
    Starttime,
    /// systemd's `sd_notify`: `READY=1` on `$NOTIFY_SOCKET`.
    Notify,
    /// s6's notification-fd: the first newline written to this fd.
    Fd(i32),
    /// The health check passes (the default for a program with `health_check`).
    Health,
    /// The pid file names a live daemon (the default, and the only choice, with `pid_file`).
    PidFile,
}

/// As the config writes it: `starttime`, `notify`, `fd:3`, `health`, `pid_file`.
impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Starttime => f.write_str("starttime"),
            Readiness::Notify => f.write_str("notify"),
            Readiness::Fd(fd) => write!(f, "fd:{fd}"),
            Readiness::Health => f.write_str("health"),
            Readiness::PidFile => f.write_str("pid_file"),
        }
    }
}

/// What a dependency must reach before its dependent starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Every instance has a process.
    Started,
    /// Every instance is RUNNING.
    Ready,
    /// Every instance is RUNNING and, with a health check, HEALTHY.
    Healthy,
    /// Every instance exited with an expected code and will not be restarted.
    Completed,
}

impl Condition {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
    }
}

/// `depends_on: {db: ready}` or `{db: {condition: ready, restart: true}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub program: String,
    pub condition: Condition,
    /// Restarting the dependency stops this program first and starts it again once the
    /// dependency is back at its condition.
    pub restart: bool,
}

/// A listening socket for socket activation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    /// A TCP listener; port 0 allocates one, which `{{ports[NAME]}}` then names.
    Tcp(std::net::SocketAddr),
    /// A Unix stream listener at this path.
    Unix(PathBuf),
}

impl SocketSpec {
    /// The port of a TCP socket (0 when the daemon picks it); `None` for a Unix socket.
    #[must_use]
    pub fn tcp_port(&self) -> Option<u16> {
        match self {
            SocketSpec::Tcp(address) => Some(address.port()),
            SocketSpec::Unix(_) => None,
        }
    }
}

/// How one named port of an instance is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSpec {
    /// A free port, picked by the daemon, kept across the instance's restarts.
    Allocate,
    /// This fixed number.
    Fixed(u16),
    /// The same port as another name (Aurora's `portmap`: `{aurora: http}`).
    Alias(String),
}

/// A port given by name (one of the program's `ports`) or by number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    Named(String),
    Number(u16),
}

/// What a health check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// `GET http://127.0.0.1:PORT/endpoint`. A non-empty `expected_response` must equal the
    /// body (trimmed, case-insensitive); a non-zero `expected_response_code` must equal the
    /// status, otherwise any 2xx passes.
    Http { port: PortRef, endpoint: String, expected_response: String, expected_response_code: u16 },
    /// `/bin/sh -c COMMAND` in the instance's workingdir with its environment; exit 0 passes.
    Shell { command: String },
    /// A TCP connection to `127.0.0.1:PORT` succeeds.
    Tcp { port: PortRef },
}

/// Aurora's HealthCheckConfig, with Aurora's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// Grace period: failures among the first ceil(initial_interval / interval) checks are
    /// not counted.
    pub initial_interval: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_consecutive_failures: u32,
    pub min_consecutive_successes: u32,
}

impl HealthCheck {
    /// A check of `kind` with Aurora's defaults (15 s grace, every 10 s, 1 s timeout, 0
    /// failures tolerated, 1 success to be ready).
    #[must_use]
    pub fn with_defaults(kind: CheckKind) -> HealthCheck {
        HealthCheck {
            kind,
            initial_interval: Duration::from_secs(15),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            max_consecutive_failures: 0,
            min_consecutive_successes: 1,
        }
    }
}

/// Aurora's HttpLifecycleConfig, with Aurora's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLifecycle {
    pub port: PortRef,
    pub graceful_shutdown_endpoint: String,
    pub graceful_shutdown_wait: Duration,
    pub shutdown_endpoint: String,
    pub shutdown_wait: Duration,
}

impl HttpLifecycle {
    /// `/quitquitquit`, then `/abortabortabort`, 5 s each, on `port`.
    #[must_use]
    pub fn with_defaults(port: PortRef) -> HttpLifecycle {
        HttpLifecycle {
            port,
            graceful_shutdown_endpoint: "/quitquitquit".to_string(),
            graceful_shutdown_wait: Duration::from_secs(5),
            shutdown_endpoint: "/abortabortabort".to_string(),
            shutdown_wait: Duration::from_secs(5),
        }
    }
}

impl ProgramSpec {
    /// A program with every option at its default and an empty command; each input format
    /// starts here and sets what its input says.
    #[must_use]
    pub fn with_defaults(name: &str) -> ProgramSpec {
        ProgramSpec {
            name: name.to_string(),
            argv: Vec::new(),
            numprocs: defaults::NUMPROCS,
            autostart: true,
            autorestart: AutoRestart::Unexpected,
            exitcodes: vec![0],
            startretries: defaults::STARTRETRIES,
            starttime: defaults::STARTTIME,
            restart_delay: defaults::RESTART_DELAY,
            stability_window: defaults::STABILITY_WINDOW,
            stopsignal: Signal::TERM,
            stoptime: defaults::STOPTIME,
            stdout: Sink::Forward,
            stderr: Sink::Forward,
            env: Vec::new(),
            workingdir: None,
            umask: None,
            critical: false,
            prefix: true,
            tail_buffer: defaults::TAIL_BUFFER,
            pid_file: None,
            monitor_interval: defaults::MONITOR_INTERVAL,
            ports: Vec::new(),
            health_check: None,
            lifecycle: None,
            readiness: Readiness::Starttime,
            ready_timeout: defaults::READY_TIMEOUT,
            watchdog: None,
            depends_on: Vec::new(),
            sockets: Vec::new(),
            schedule: None,
            stdout_rotate: Rotate::default(),
            stderr_rotate: Rotate::default(),
        }
    }

    /// The number of each of the program's ports for an instance, given the numbers of its
    /// allocated and fixed ports (`assigned`, by name): aliases resolved. Then each TCP socket
    /// of `sockets`, whose name is a port name too (for templates and `PORT_<NAME>`): a fixed
    /// one gives its own port, one on port 0 the number `assigned` has for the socket's name
    /// (the port the daemon bound). A name without a number is left out.
    #[must_use]
    pub fn resolve_ports(&self, assigned: &[(String, u16)]) -> Vec<(String, u16)> {
        let lookup = |name: &str| assigned.iter().find(|(known, _)| known == name).map(|(_, port)| *port);
        let ports = self.ports.iter().filter_map(|(name, spec)| {
            let number = match spec {
                PortSpec::Fixed(port) => Some(*port),
                PortSpec::Allocate => lookup(name),
                PortSpec::Alias(target) => lookup(target).or_else(|| {
                    self.ports.iter().find_map(|(other, spec)| match spec {
                        PortSpec::Fixed(port) if other == target => Some(*port),
                        _ => None,
                    })
                }),
            };
            number.map(|port| (name.clone(), port))
        });
        let sockets = self.sockets.iter().filter_map(|(name, socket)| {
            let number = match socket.tcp_port()? {
                0 => lookup(name),
                port => Some(port),
            };
            number.map(|port| (name.clone(), port))
        });
        ports.chain(sockets).collect()
    }

    /// Whether two specs differ only in `numprocs`, so a reload may keep the surviving
    /// instances running.
    #[must_use]
    pub fn same_except_numprocs(&self, other: &ProgramSpec) -> bool {
        let mut other = other.clone();
        other.numprocs = self.numprocs;
        // A new dependency graph applies to later starts; it restarts nothing.
        other.depends_on.clone_from(&self.depends_on);
        *self == other
    }

    /// What instance `index` runs, given its resolved ports (`ports`, name to number, from
    /// [`ProgramSpec::resolve_ports`]): every template expanded by [`ProgramSpec::expand`]'s
    /// rules, and `PORT_<NAME>` (see [`port_env_name`]) set for each port unless `env` sets that
    /// variable itself. Config validation expanded every field for instance 0, with a number for
    /// every declared port, so this cannot fail for a loaded spec given all its ports; if it
    /// somehow does, the text is kept unexpanded.
    #[must_use]
    pub fn launch(&self, index: u32, ports: &[(String, u16)]) -> Launch {
        let vars = self.template_vars(index, ports);
        let pid_file = vars.iter().find(|(key, _)| *key == "pid_file").map(|(_, path)| PathBuf::from(path));
        let expand = |text: &str| self.expand_or_keep(text, &vars, ports);
        let expand_path =
            |path: &PathBuf| path.to_str().map_or_else(|| path.clone(), |text| PathBuf::from(expand(text)));
        let expand_sink = |sink: &Sink| match sink {
            Sink::File(path) => Sink::File(expand_path(path)),
            other => other.clone(),
        };
        let mut env: Vec<(String, String)> = ports
            .iter()
            .map(|(name, number)| (port_env_name(name), number.to_string()))
            .filter(|(variable, _)| !self.env.iter().any(|(set, _)| set == variable))
            .collect();
        env.extend(self.env.iter().map(|(key, value)| (key.clone(), expand(value))));
        env.sort_by(|left, right| left.0.cmp(&right.0));
        Launch {
            argv: self.argv.iter().map(|word| expand(word)).collect(),
            env,
            workingdir: self.workingdir.as_ref().map(expand_path),
            umask: self.umask,
            stdout: expand_sink(&self.stdout),
            stderr: expand_sink(&self.stderr),
            pid_file,
        }
    }

    /// `text` expanded for instance `index` with its resolved `ports`, by the rules `launch`
    /// uses for argv and paths: port templates (`{{thermos.ports[NAME]}}`, `{{ports[NAME]}}`,
    /// see [`expand_ports`]), then `%(name)s`, `%(instance_number)s` and (when set)
    /// `%(pid_file)s` (see [`expand_template`]). For the shell health check's command and the
    /// HTTP endpoints, which config validation checked the same way; on an error the text is
    /// kept unexpanded and the error logged.
    #[must_use]
    pub fn expand(&self, text: &str, index: u32, ports: &[(String, u16)]) -> String {
        let vars = self.template_vars(index, ports);
        self.expand_or_keep(text, &vars, ports)
    }

    /// `name`, `instance_number` and, when the program has one, the expanded `pid_file`.
    fn template_vars(&self, index: u32, ports: &[(String, u16)]) -> Vec<(&'static str, String)> {
        let mut vars = vec![("name", self.name.clone()), ("instance_number", index.to_string())];
        if let Some(template) = &self.pid_file {
            let pid_file = self.expand_or_keep(template, &vars, ports);
            vars.push(("pid_file", pid_file));
        }
        vars
    }

    fn expand_or_keep(&self, template: &str, vars: &[(&str, String)], ports: &[(String, u16)]) -> String {
        expand_all(template, vars, ports).unwrap_or_else(|error| {
            log::error!("{}: {error}; using {template:?} unexpanded", self.name);
            template.to_string()
        })
    }
}

/// The environment variable that carries port `name`'s number: `PORT_` and the name in upper
/// case with `-` as `_` (`admin-http` is `PORT_ADMIN_HTTP`).
#[must_use]
pub fn port_env_name(name: &str) -> String {
    format!("PORT_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// Port templates (see [`expand_ports`]), then `%(key)s` templates (see [`expand_template`]).
///
/// # Errors
///
/// The first bad template of either kind, as those functions describe it.
pub fn expand_all(template: &str, vars: &[(&str, String)], ports: &[(String, u16)]) -> Result<String, String> {
    expand_template(&expand_ports(template, ports)?, vars)
}

/// Expands Aurora's port templates: `{{thermos.ports[NAME]}}` and `{{ports[NAME]}}` (spaces
/// allowed inside the braces) become the number of port `NAME` in `ports`. Any other `{{...}}`
/// is kept as written (a Go template in a `docker` command, say), except Aurora's other
/// `{{thermos.…}}` and `{{mesos.…}}` bindings, which sv-lite does not have.
///
/// # Errors
///
/// A message naming the first bad template: a port not in `ports` (listing those that are), a
/// missing `]` or `}}`, or an unsupported Aurora binding.
pub fn expand_ports(template: &str, ports: &[(String, u16)]) -> Result<String, String> {
    let mut expanded = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        expanded.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let inner = after.trim_start();
        let Some(reference) = inner.strip_prefix("thermos.ports[").or_else(|| inner.strip_prefix("ports[")) else {
            if inner.starts_with("thermos.") || inner.starts_with("mesos.") {
                let binding = after.find("}}").map_or(after, |close| &after[..close]).trim();
                return Err(format!(
                    "unsupported template `{{{{{binding}}}}}`: sv-lite expands `{{{{thermos.ports[NAME]}}}}` and \
                     `{{{{ports[NAME]}}}}`, and `%(instance_number)s` for the instance number"
                ));
            }
            expanded.push_str("{{");
            rest = after;
            continue;
        };
        let written = |end: usize| format!("{{{{{}", &after[..after.len() - reference.len() + end]);
        let Some(close) = reference.find(']') else {
            let end = reference.find("}}").unwrap_or(reference.len());
            return Err(format!("unterminated port template `{}` (expected e.g. `{{{{ports[http]}}}}`)", written(end)));
        };
        let Some(tail) = reference[close + 1..].trim_start().strip_prefix("}}") else {
            return Err(format!("port template `{}` must end in `]}}}}`", written(close + 1)));
        };
        let name = reference[..close].trim();
        let Some((_, number)) = ports.iter().find(|(known, _)| known == name) else {
            let known: Vec<&str> = ports.iter().map(|(known, _)| known.as_str()).collect();
            let template = written(reference.len() - tail.len());
            return Err(if known.is_empty() {
                format!("unknown port `{name}` in `{template}`: the program declares no ports (add `ports: [{name}]`)")
            } else {
                format!("unknown port `{name}` in `{template}` (declared ports: {})", known.join(", "))
            });
        };
        expanded.push_str(&number.to_string());
        rest = tail;
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// Expands Tron/Python-style templates: `%(key)s` is the value of `key` in `vars`, `%(key)d`
/// the same value when it is a number, and `%%` a literal `%`. A `%` that starts neither is
/// kept as it is, so commands such as `date +%s` need no escaping.
///
/// # Errors
///
/// A message naming the first bad template: an unknown variable (listing the known ones), a
/// missing `)`, a conversion other than `s` or `d`, or `d` applied to a value that is no number.
pub fn expand_template(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut expanded = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(percent) = rest.find('%') {
        expanded.push_str(&rest[..percent]);
        let after = &rest[percent + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            expanded.push('%');
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix('(') else {
            expanded.push('%');
            rest = after;
            continue;
        };
        let Some(close) = inner.find(')') else {
            return Err(format!("unterminated template `%({inner}` (expected e.g. `%(name)s`)"));
        };
        let key = &inner[..close];
        let tail = &inner[close + 1..];
        let Some(conversion @ ('s' | 'd')) = tail.chars().next() else {
            return Err(format!("template `%({key})` must end in `s` or `d`, as in `%({key})s`"));
        };
        let Some((_, value)) = vars.iter().find(|(name, _)| *name == key) else {
            let known: Vec<&str> = vars.iter().map(|(name, _)| *name).collect();
            return Err(format!("unknown template variable `%({key}){conversion}` (known: {})", known.join(", ")));
        };
        if conversion == 'd' && value.parse::<i64>().is_err() {
            return Err(format!("`%({key})d` needs a number, but {key} is {value:?}; use `%({key})s`"));
        }
        expanded.push_str(value);
        rest = &tail[1..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// What one instance runs, with every template (`%(name)s`, `%(instance_number)s`,
/// `%(pid_file)s`, `%(key)d`, `{{thermos.ports[NAME]}}`, `{{ports[NAME]}}`) expanded and the
/// `PORT_<NAME>` variables in `env`. Built by [`ProgramSpec::launch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workingdir: Option<PathBuf>,
    pub umask: Option<u32>,
    pub stdout: Sink,
    pub stderr: Sink,
    pub pid_file: Option<PathBuf>,
}

/// Defaults, shared by every input format.
pub mod defaults {
    use std::time::Duration;
    pub const NUMPROCS: u32 = 1;
    /// Rotated log files kept (supervisord's `*_logfile_backups`).
    pub const BACKUPS: u32 = 10;
    /// `notify: email: digest:`.
    pub const DIGEST: Duration = Duration::from_secs(60);
    /// `notify: exec: timeout:`.
    pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);
    pub const STARTRETRIES: u32 = 3;
    pub const STARTTIME: Duration = Duration::from_secs(1);
    pub const RESTART_DELAY: Duration = Duration::ZERO;
    pub const STABILITY_WINDOW: Duration = Duration::from_secs(10);
    pub const STOPTIME: Duration = Duration::from_secs(10);
    pub const TAIL_BUFFER: usize = 64 * 1024;
    pub const MONITOR_INTERVAL: Duration = Duration::from_secs(5);
    pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
}

/// When an instance that exited on its own is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoRestart {
    Always,
    Never,
    /// Only when the exit code is not in `exitcodes`, or a signal we did not send killed it.
    Unexpected,
}

/// Where one output stream of an instance goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Lines go to the daemon's own stdout/stderr (prefixed unless `prefix: false`).
    Forward,
    Discard,
    /// Appended to this file.
    File(PathBuf),
}

/// A signal number, valid on this platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signal(pub i32);

/// Signal names accepted in configs and on the command line, without the `SIG` prefix.
pub const SIGNAL_NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

impl Signal {
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    pub const CONT: Signal = Signal(libc::SIGCONT);

    /// Parses `TERM`, `SIGTERM`, `term` or a number between 1 and 64.
    pub fn parse(text: &str) -> Result<Signal, String> {
        let trimmed = text.trim();
        if let Ok(number) = trimmed.parse::<i32>() {
            return Signal::from_number(number);
        }
        let upper = trimmed.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        SIGNAL_NAMES.iter().find(|(name, _)| *name == bare).map(|&(_, number)| Signal(number)).ok_or_else(|| {
            format!(
                "unknown signal {text:?} (expected a number or one of: {})",
                SIGNAL_NAMES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// A signal number in the range the kernel accepts.
    pub fn from_number(number: i32) -> Result<Signal, String> {
        if (1..=64).contains(&number) {
            Ok(Signal(number))
        } else {
            Err(format!("signal number {number} is out of range (1 to 64)"))
        }
    }

    /// `TERM`, or the number for signals without a name here (real-time signals).
    #[must_use]
    pub fn name(self) -> String {
        SIGNAL_NAMES
            .iter()
            .find(|&&(_, number)| number == self.0)
            .map(|(name, _)| (*name).to_string())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIG{}", self.name())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // STYLE.md rule 18: allowed in tests
mod tests {
    use super::*;

    #[test]
    fn signal_names_numbers_and_errors() {
        assert_eq!(Signal::parse("TERM"), Ok(Signal(libc::SIGTERM)));
        assert_eq!(Signal::parse("sigusr1"), Ok(Signal(libc::SIGUSR1)));
        assert_eq!(Signal::parse("9"), Ok(Signal(9)));
        assert!(Signal::parse("0").is_err());
        let error = Signal::parse("TERMINATE").unwrap_err();
        assert!(error.contains("USR1"), "{error}");
        assert_eq!(Signal(libc::SIGKILL).to_string(), "SIGKILL");
    }

    fn vars() -> Vec<(&'static str, String)> {
        vec![("name", "web".to_string()), ("instance_number", "3".to_string())]
    }

    #[test]
    fn templates_expand_names_numbers_and_percent() {
        let expanded = expand_template("%(name)s-%(instance_number)s.%(instance_number)d 100%% %s", &vars());
        assert_eq!(expanded, Ok("web-3.3 100% %s".to_string()));
        assert_eq!(expand_template("", &vars()), Ok(String::new()));
        assert_eq!(expand_template("50%", &vars()), Ok("50%".to_string()));
    }

    #[test]
    fn template_errors_name_the_problem() {
        let error = expand_template("/run/%(nmae)s.pid", &vars());
        assert_eq!(error, Err("unknown template variable `%(nmae)s` (known: name, instance_number)".to_string()));
        let error = expand_template("%(name)d", &vars());
        assert!(error.as_ref().is_err_and(|error| error.contains("needs a number")), "{error:?}");
        let error = expand_template("%(name", &vars());
        assert!(error.as_ref().is_err_and(|error| error.starts_with("unterminated template")), "{error:?}");
        let error = expand_template("%(name)x", &vars());
        assert!(error.as_ref().is_err_and(|error| error.contains("must end in `s` or `d`")), "{error:?}");
        assert!(expand_template("%(name)", &vars()).is_err());
    }

    #[test]
    fn launch_expands_every_template_field() {
        let spec = ProgramSpec {
            argv: vec!["run".to_string(), "--pid=%(pid_file)s".to_string(), "-n%(instance_number)d".to_string()],
            numprocs: 3,
            autorestart: AutoRestart::Always,
            stdout: Sink::File(PathBuf::from("/log/%(name)s-%(instance_number)s.out")),
            stderr: Sink::Discard,
            env: vec![("ID".to_string(), "%(name)s:%(instance_number)s".to_string())],
            workingdir: Some(PathBuf::from("/srv/%(name)s")),
            umask: Some(0o22),
            pid_file: Some("/run/%(name)s-%(instance_number)s.pid".to_string()),
            ..ProgramSpec::with_defaults("worker")
        };
        let launch = spec.launch(2, &[]);
        assert_eq!(launch.argv, ["run", "--pid=/run/worker-2.pid", "-n2"]);
        assert_eq!(launch.pid_file, Some(PathBuf::from("/run/worker-2.pid")));
        assert_eq!(launch.stdout, Sink::File(PathBuf::from("/log/worker-2.out")));
        assert_eq!(launch.stderr, Sink::Discard);
        assert_eq!(launch.env, [("ID".to_string(), "worker:2".to_string())]);
        assert_eq!(launch.workingdir, Some(PathBuf::from("/srv/worker")));
        assert_eq!(launch.umask, Some(0o22));

        // A template validation should have rejected stays as written.
        let broken = ProgramSpec { pid_file: None, ..spec };
        assert_eq!(broken.launch(0, &[]).argv[1], "--pid=%(pid_file)s");
    }

    fn ports() -> Vec<(String, u16)> {
        vec![("http".to_string(), 8080), ("admin-ui".to_string(), 9000)]
    }

    #[test]
    fn port_templates_expand_in_both_spellings() {
        let expanded =
            expand_ports("-port {{thermos.ports[http]}} -admin={{ports[admin-ui]}} {{ ports[ http ] }}", &ports());
        assert_eq!(expanded, Ok("-port 8080 -admin=9000 8080".to_string()));
        // Other double braces are not ours: kept as written.
        let go_template = "docker inspect -f '{{.State.Pid}}' {{ port }} {{";
        assert_eq!(expand_ports(go_template, &ports()), Ok(go_template.to_string()));
    }

    #[test]
    fn port_template_errors_name_the_problem() {
        let error = expand_ports("x {{thermos.ports[htp]}}", &ports());
        assert_eq!(
            error,
            Err("unknown port `htp` in `{{thermos.ports[htp]}}` (declared ports: http, admin-ui)".to_string())
        );
        let error = expand_ports("{{ports[http]}}", &[]);
        assert_eq!(
            error,
            Err("unknown port `http` in `{{ports[http]}}`: the program declares no ports (add `ports: [http]`)"
                .to_string())
        );
        let error = expand_ports("{{ports[http}}", &ports());
        assert_eq!(
            error,
            Err("unterminated port template `{{ports[http` (expected e.g. `{{ports[http]}}`)".to_string())
        );
        let error = expand_ports("{{ports[http] }", &ports());
        assert_eq!(error, Err("port template `{{ports[http]` must end in `]}}`".to_string()));
        let error = expand_ports("--shard={{mesos.instance}}", &ports()).unwrap_err();
        assert!(error.starts_with("unsupported template `{{mesos.instance}}`"), "{error}");
        assert!(expand_ports("{{thermos.task_id}}", &ports()).unwrap_err().contains("%(instance_number)s"));
    }

    #[test]
    fn launch_expands_ports_everywhere_and_sets_port_variables() {
        let spec = ProgramSpec {
            argv: vec!["serve".to_string(), "--port={{thermos.ports[http]}}".to_string()],
            stdout: Sink::File(PathBuf::from("/log/%(name)s-{{ports[http]}}.out")),
            env: vec![
                ("LISTEN".to_string(), ":{{ports[admin-ui]}}".to_string()),
                ("PORT_HTTP".to_string(), "mine".to_string()),
            ],
            workingdir: Some(PathBuf::from("/srv/{{ports[http]}}")),
            pid_file: Some("/run/%(name)s-{{ports[http]}}.pid".to_string()),
            ..ProgramSpec::with_defaults("web")
        };
        let launch = spec.launch(1, &ports());
        assert_eq!(launch.argv, ["serve", "--port=8080"]);
        assert_eq!(launch.stdout, Sink::File(PathBuf::from("/log/web-8080.out")));
        assert_eq!(launch.workingdir, Some(PathBuf::from("/srv/8080")));
        assert_eq!(launch.pid_file, Some(PathBuf::from("/run/web-8080.pid")));
        // `env` wins over the port's own variable.
        let env: Vec<(&str, &str)> = launch.env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        assert_eq!(env, [("LISTEN", ":9000"), ("PORT_ADMIN_UI", "9000"), ("PORT_HTTP", "mine")]);
        assert_eq!(
            spec.expand("test -f /tmp/%(name)s.%(instance_number)s.{{ports[http]}}", 1, &ports()),
            "test -f /tmp/web.1.8080"
        );
        assert_eq!(spec.expand("%(pid_file)s", 0, &ports()), "/run/web-8080.pid");
        // Without the number, the template stays as written (config validation prevents this).
        assert_eq!(spec.launch(0, &[]).argv[1], "--port={{thermos.ports[http]}}");
        assert_eq!(port_env_name("admin-ui"), "PORT_ADMIN_UI");
    }

    #[test]
    fn tcp_sockets_resolve_as_ports_after_the_ports_themselves() {
        let tcp = |text: &str| SocketSpec::Tcp(text.parse().unwrap());
        let spec = ProgramSpec {
            ports: vec![("admin".to_string(), PortSpec::Allocate)],
            sockets: vec![
                ("http".to_string(), tcp("0.0.0.0:8080")),
                ("control".to_string(), SocketSpec::Unix(PathBuf::from("/run/web.sock"))),
                ("metrics".to_string(), tcp("[::1]:0")),
            ],
            ..ProgramSpec::with_defaults("web")
        };
        let assigned = [("admin".to_string(), 31000), ("metrics".to_string(), 31001)];
        let resolved = spec.resolve_ports(&assigned);
        let resolved: Vec<(&str, u16)> = resolved.iter().map(|(name, port)| (name.as_str(), *port)).collect();
        assert_eq!(resolved, [("admin", 31000), ("http", 8080), ("metrics", 31001)]);
        // A port-0 socket without its bound number is left out, like an unallocated port.
        let resolved = spec.resolve_ports(&[]);
        assert_eq!(resolved, [("http".to_string(), 8080)]);
        assert_eq!(Readiness::Fd(3).to_string(), "fd:3");
        assert_eq!(Readiness::PidFile.to_string(), "pid_file");
    }
}
