//! Readiness and order: how a program says it is ready (`readiness`, `ready_timeout`,
//! `watchdog`), the listening sockets it is handed (`sockets`, systemd's socket activation),
//! and the programs that must reach a condition before it starts (`depends_on`).
//!
//! Sockets are read before readiness: they take fds 3, 4, ... in config order, which
//! `readiness: fd:N` must not reuse, and each TCP socket is also a port name for templates.
//! Dependencies are read with their program, but their names and cycles can only be checked
//! once every program is known: [`Checker::check_dependencies`] does that at the end.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use super::aurora::port_name_problem;
use super::locate::{Segment, Target};
use super::scalars::{self, describe, suggest};
use super::{child, Checker};
use crate::spec::{self, Condition, Dependency, PortSpec, ProgramSpec, Readiness, SocketSpec};

const READINESS_KINDS: &[&str] = &["starttime", "notify", "fd:N", "health", "pid_file"];
const CONDITIONS: &[&str] = &["started", "ready", "healthy", "completed"];
const DEPENDENCY_KEYS: &[&str] = &["condition", "restart"];

/// The lowest and highest fd `readiness: fd:N` accepts; 0, 1 and 2 are stdio.
const NOTIFICATION_FDS: std::ops::RangeInclusive<i32> = 3..=1023;
/// The fd of a program's first socket; the others follow in config order.
const FIRST_SOCKET_FD: i32 = 3;
/// `sun_path` holds 108 bytes, with the terminating NUL.
const UNIX_PATH_MAX: usize = 107;

/// The program names one program's `depends_on` wrote, kept for the checks that need every
/// program: unknown names, self-dependencies, cycles.
pub(super) struct Declared {
    program: String,
    /// `programs.NAME.depends_on`.
    path: Vec<Segment>,
    names: Vec<String>,
}

impl Checker<'_> {
    /// Reads `sockets` of the program map `map` at `path` into `spec`. `ports` are the names
    /// written under `ports`. Returns the socket names templates may use as ports: every one
    /// not known to be a Unix socket (a bad address is reported once, where it is written).
    pub(super) fn sockets(
        &mut self,
        path: &[Segment],
        map: &Mapping,
        spec: &mut ProgramSpec,
        ports: &[String],
    ) -> Vec<String> {
        let mut names = Vec::new();
        let Some(value) = map.get("sockets") else { return names };
        let path = child(path, "sockets");
        const EXPECTED: &str = "a mapping of socket names to addresses, such as {http: \"0.0.0.0:8080\"}";
        let map = match value {
            Value::Null => return names,
            other => self.mapping(&path, other, EXPECTED),
        };
        let Some(map) = map else { return names };
        // `numprocs > 1` is fine: every instance gets the same listeners, as with systemd's
        // `Accept=no`, and the kernel hands each connection to one of them.
        let mut sockets: Vec<(String, SocketSpec)> = Vec::new();
        for (key, value) in map {
            let Some(name) = name_text(key) else {
                self.error(&path, Target::Value, format!("expected a socket name, found {}", describe(key)));
                continue;
            };
            let socket_path = child(&path, &name);
            let address = self.value(&socket_path, value, socket_address);
            if !matches!(address, Some(SocketSpec::Unix(_))) {
                names.push(name.clone());
            }
            if let Some(problem) = port_name_problem("socket", &name) {
                self.error(&socket_path, Target::Key, problem);
                continue;
            }
            if ports.contains(&name) {
                let message = format!(
                    "socket `{name}` has the name of a port in `ports`; rename one (a TCP socket is a port name \
                     itself: {{{{ports[{name}]}}}} gives its port)"
                );
                self.error(&socket_path, Target::Key, message);
                continue;
            }
            let Some(address) = address else { continue };
            let same = sockets.iter().find(|(_, other)| *other == address && other.tcp_port() != Some(0));
            if let Some((other, _)) = same {
                self.error(&socket_path, Target::Value, format!("socket `{name}` has the same address as `{other}`"));
                continue;
            }
            if address.tcp_port().is_some() {
                self.check_socket_variable(&socket_path, &name, &spec.ports, &sockets);
            }
            sockets.push((name, address));
        }
        spec.sockets = sockets;
        names
    }

    /// A TCP socket sets `PORT_<NAME>` as a port does; two names such as `admin-ui` and
    /// `admin_ui` would set the same one.
    fn check_socket_variable(
        &mut self,
        path: &[Segment],
        name: &str,
        ports: &[(String, PortSpec)],
        sockets: &[(String, SocketSpec)],
    ) {
        let variable = spec::port_env_name(name);
        let clash = |other: &&String| spec::port_env_name(other) == variable;
        let port = ports.iter().map(|(other, _)| other).find(clash);
        let socket =
            sockets.iter().filter(|(_, socket)| socket.tcp_port().is_some()).map(|(other, _)| other).find(clash);
        let message = match (port, socket) {
            (Some(port), _) => format!("port `{port}` and socket `{name}` would both set {variable}; rename one"),
            (None, Some(socket)) => format!("sockets `{socket}` and `{name}` would both set {variable}; rename one"),
            (None, None) => return,
        };
        self.error(path, Target::Key, message);
    }

    /// Reads `readiness`, `ready_timeout` and `watchdog` of the program map `map` at `path`
    /// into `spec`, whose `sockets` are already read.
    pub(super) fn readiness(&mut self, path: &[Segment], map: &Mapping, spec: &mut ProgramSpec) {
        // By the keys written, not the values read: a bad `pid_file` or `health_check` is
        // reported at its own key, and not again here.
        let has_pid_file = map.contains_key("pid_file");
        let has_check = map.contains_key("health_check");
        spec.readiness = if has_pid_file {
            Readiness::PidFile
        } else if has_check {
            Readiness::Health
        } else {
            Readiness::Starttime
        };
        let mut written = None;
        if let Some(value) = map.get("readiness") {
            let readiness_path = child(path, "readiness");
            written = self.value(&readiness_path, value, readiness_kind);
            if let Some(readiness) = written {
                match readiness_problem(readiness, has_pid_file, has_check, &spec.sockets) {
                    Some(problem) => self.error(&readiness_path, Target::Value, problem),
                    None => spec.readiness = readiness,
                }
            }
        }
        if let Some(value) = map.get("ready_timeout") {
            if let Some(timeout) = self.positive_duration(&child(path, "ready_timeout"), value) {
                spec.ready_timeout = timeout;
            }
        }
        if let Some(value) = map.get("watchdog") {
            let watchdog_path = child(path, "watchdog");
            let interval = self.positive_duration(&watchdog_path, value);
            // After a bad `readiness`, its own error says enough.
            let readiness_is_bad = map.contains_key("readiness") && written.is_none();
            if written != Some(Readiness::Notify) && !readiness_is_bad {
                let message = format!(
                    "`watchdog` needs `readiness: notify` (the program sends WATCHDOG=1 with sd_notify), \
                     but readiness is `{}`",
                    written.unwrap_or(spec.readiness)
                );
                self.error(&watchdog_path, Target::Key, message);
            } else {
                spec.watchdog = interval;
            }
        }
    }

    /// Reads `depends_on` of the program map `map` at `path` into `spec`, and keeps the names
    /// it wrote for [`Checker::check_dependencies`].
    pub(super) fn depends_on(&mut self, path: &[Segment], map: &Mapping, spec: &mut ProgramSpec) {
        let Some(value) = map.get("depends_on") else { return };
        let path = child(path, "depends_on");
        let map = match value {
            Value::Null => return,
            Value::Sequence(_) => {
                let message = "expected a mapping of program names to conditions, found a list; write each \
                               as `NAME: ready` (or started, healthy, completed)";
                self.error(&path, Target::Value, message);
                return;
            }
            other => self.mapping(&path, other, "a mapping of program names to conditions, such as {db: ready}"),
        };
        let Some(map) = map else { return };
        let mut names = Vec::new();
        let mut dependencies = Vec::new();
        for (key, value) in map {
            let Some(program) = name_text(key) else {
                self.error(&path, Target::Value, format!("expected a program name, found {}", describe(key)));
                continue;
            };
            names.push(program.clone());
            if let Some((condition, restart)) = self.dependency(&child(&path, &program), value) {
                dependencies.push(Dependency { program, condition, restart });
            }
        }
        self.dependencies.push(Declared { program: spec.name.clone(), path, names });
        spec.depends_on = dependencies;
    }

    /// One value of `depends_on`: a condition, or `{condition: COND, restart: BOOL}`.
    fn dependency(&mut self, path: &[Segment], value: &Value) -> Option<(Condition, bool)> {
        let Value::Mapping(map) = value else {
            return self.value(path, value, condition).map(|condition| (condition, false));
        };
        let errors_before = self.errors.len();
        let (mut condition_read, mut restart) = (Condition::Ready, false);
        for (key, value) in self.entries(path, map, DEPENDENCY_KEYS) {
            let path = child(path, key);
            match key {
                "condition" => condition_read = self.value(&path, value, condition).unwrap_or(Condition::Ready),
                "restart" => restart = self.value(&path, value, scalars::boolean).unwrap_or(false),
                _ => {}
            }
        }
        (self.errors.len() == errors_before).then_some((condition_read, restart))
    }

    /// Checks every `depends_on` against the program names of the whole file (`known`):
    /// unknown names (unless `!unknown_names`, when other files may define them), programs that
    /// depend on themselves, and cycles, each cycle reported once, at the `depends_on` of its
    /// program that comes first in the file.
    pub(super) fn check_dependencies(&mut self, known: &[&str], unknown_names: bool) {
        let declared = std::mem::take(&mut self.dependencies);
        for Declared { program, path, names } in &declared {
            for name in names {
                let message = if name == program {
                    "a program cannot depend on itself".to_string()
                } else if known.contains(&name.as_str()) || !unknown_names {
                    continue;
                } else {
                    match suggest(name, known) {
                        Some(near) => format!("unknown program `{name}`; did you mean `{near}`?"),
                        None => format!("unknown program `{name}` (no program or service has that name)"),
                    }
                };
                self.error(&child(path, name), Target::Key, message);
            }
        }
        let graph: Vec<(&str, &[String])> =
            declared.iter().map(|declared| (declared.program.as_str(), declared.names.as_slice())).collect();
        for cycle in cycles(&graph) {
            let mut chain: Vec<&str> = cycle.iter().map(|&index| declared[index].program.as_str()).collect();
            chain.push(chain[0]);
            self.error(&declared[cycle[0]].path, Target::Key, format!("dependency cycle: {}", chain.join(" -> ")));
        }
    }
}

/// The cycles of the dependency graph `declared` (each program with the names it depends on),
/// each as indexes into `declared` (file order), starting at its member that comes first. One
/// cycle per back edge of a depth-first search: every program in a cycle is in at least one of
/// them, and none is repeated.
pub(super) fn cycles(declared: &[(&str, &[String])]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Visit {
        New,
        OnPath,
        Done,
    }
    let index_of = |name: &str| declared.iter().position(|(program, _)| *program == name);
    let edges: Vec<Vec<usize>> = declared
        .iter()
        .map(|(program, names)| {
            // A self-dependency is reported as such, not as a cycle.
            names.iter().filter(|name| *name != program).filter_map(|name| index_of(name)).collect()
        })
        .collect();
    let mut visits = vec![Visit::New; declared.len()];
    let mut found: Vec<Vec<usize>> = Vec::new();
    for start in 0..declared.len() {
        if visits[start] != Visit::New {
            continue;
        }
        visits[start] = Visit::OnPath;
        // The current path, each node with the index of the next edge to follow.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(&(node, next)) = path.last() {
            let Some(&target) = edges[node].get(next) else {
                visits[node] = Visit::Done;
                path.pop();
                continue;
            };
            let top = path.len() - 1;
            path[top].1 += 1;
            match visits[target] {
                Visit::New => {
                    visits[target] = Visit::OnPath;
                    path.push((target, 0));
                }
                Visit::OnPath => {
                    let from = path.iter().position(|&(member, _)| member == target).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].iter().map(|&(member, _)| member).collect();
                    let first = (0..cycle.len()).min_by_key(|&position| cycle[position]).unwrap_or(0);
                    cycle.rotate_left(first);
                    if !found.contains(&cycle) {
                        found.push(cycle);
                    }
                }
                Visit::Done => {}
            }
        }
    }
    found
}

/// `starttime`, `notify`, `fd:N`, `health` or `pid_file`.
fn readiness_kind(value: &Value) -> Result<Readiness, String> {
    let expected = || format!("expected {}", one_of(READINESS_KINDS));
    let Value::String(text) = value else {
        return Err(format!("{}, found {}", expected(), describe(value)));
    };
    let lower = text.trim().to_ascii_lowercase();
    match lower.as_str() {
        "starttime" => return Ok(Readiness::Starttime),
        "notify" => return Ok(Readiness::Notify),
        "health" => return Ok(Readiness::Health),
        "pid_file" => return Ok(Readiness::PidFile),
        "fd" => return Err("`fd` needs the fd the program writes its newline to, as in fd:3".to_string()),
        _ => {}
    }
    let Some(number) = lower.strip_prefix("fd:") else {
        return Err(match suggest(text, READINESS_KINDS) {
            Some(near) => format!("{}, found {text:?}; did you mean `{near}`?", expected()),
            None => format!("{}, found {text:?}", expected()),
        });
    };
    let range = format!("{} to {}", NOTIFICATION_FDS.start(), NOTIFICATION_FDS.end());
    let fd: i32 =
        number.trim().parse().map_err(|_| format!("invalid fd in {text:?} (expected fd:N, with N from {range})"))?;
    let stdio = match fd {
        0 => "stdin",
        1 => "stdout",
        2 => "stderr",
        fd if NOTIFICATION_FDS.contains(&fd) => return Ok(Readiness::Fd(fd)),
        _ => return Err(format!("fd {fd} is out of range ({range})")),
    };
    Err(format!("fd {fd} is the program's {stdio}; the notification fd must be one of {range}, as in fd:3"))
}

/// Why `readiness` cannot be used with the rest of the program, if it cannot.
fn readiness_problem(
    readiness: Readiness,
    has_pid_file: bool,
    has_check: bool,
    sockets: &[(String, SocketSpec)],
) -> Option<String> {
    if has_pid_file && readiness != Readiness::PidFile {
        return Some(format!(
            "readiness `{readiness}` cannot be used with `pid_file`: the command starts a daemon that writes \
             its pid there, and the instance is ready once that daemon lives; remove `readiness`, or \
             `pid_file` if the program stays in the foreground"
        ));
    }
    match readiness {
        Readiness::PidFile if !has_pid_file => {
            Some("`readiness: pid_file` needs a `pid_file` (where the daemon writes its pid)".to_string())
        }
        Readiness::Health if !has_check => {
            Some("`readiness: health` needs a `health_check` (the instance is ready once it passes)".to_string())
        }
        Readiness::Fd(fd) => {
            let index = usize::try_from(fd - FIRST_SOCKET_FD).ok()?;
            let (name, _) = sockets.get(index)?;
            let last = FIRST_SOCKET_FD + i32::try_from(sockets.len()).unwrap_or(i32::MAX) - 1;
            Some(format!(
                "fd {fd} is socket `{name}`'s (sockets take fds {FIRST_SOCKET_FD} to {last}, in config order); \
                 use fd:{} or higher",
                last + 1
            ))
        }
        _ => None,
    }
}

/// A socket address: `unix:/absolute/path`, or an IP address and port.
pub(super) fn socket_address(value: &Value) -> Result<SocketSpec, String> {
    const EXPECTED: &str = "expected an IP address and port, or unix:/path";
    let text = match value {
        Value::String(text) => text.trim(),
        Value::Number(number) => {
            return Err(format!(
                "{EXPECTED}, found an integer {number}; for port {number} on every interface, \
                 write \"0.0.0.0:{number}\" (or \"[::]:{number}\" for IPv6 too)"
            ))
        }
        other => return Err(format!("{EXPECTED}, found {}", describe(other))),
    };
    if let Some(path) = text.strip_prefix("unix:") {
        return if !path.starts_with('/') {
            Err(format!("unix socket path {path:?} must be absolute, as in unix:/run/web.sock"))
        } else if path.contains('\0') {
            Err("unix socket path must not contain a NUL byte".to_string())
        } else if path.len() > UNIX_PATH_MAX {
            Err(format!("unix socket path is {} bytes long; the limit is {UNIX_PATH_MAX}", path.len()))
        } else {
            Ok(SocketSpec::Unix(PathBuf::from(path)))
        };
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(SocketSpec::Tcp(address));
    }
    let hint = match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => format!("; add the port, as in \"{text}:8080\""),
        Ok(IpAddr::V6(_)) => format!("; add the port, with the address in brackets, as in \"[{text}]:8080\""),
        Err(_) if text.strip_prefix(':').is_some_and(|port| port.parse::<u16>().is_ok()) => {
            format!("; add the address, as in \"0.0.0.0{text}\" (every interface)")
        }
        Err(_) => " (such as \"0.0.0.0:8080\", \"[::]:8080\" or \"unix:/run/web.sock\"; \
                   host names are not looked up)"
            .to_string(),
    };
    Err(format!("invalid socket address {text:?}: {EXPECTED}{hint}"))
}

/// A dependency's condition.
fn condition(value: &Value) -> Result<Condition, String> {
    let expected = format!("expected {}", one_of(CONDITIONS));
    let Value::String(text) = value else {
        return Err(format!("{expected}, or a mapping with `condition` and `restart`, found {}", describe(value)));
    };
    // `healthy` is accepted for a program without a health check too, and then means the
    // same as `ready` (see `Condition::Healthy`): a dependent need not know how its
    // dependency proves it is up.
    match text.trim().to_ascii_lowercase().as_str() {
        "started" => Ok(Condition::Started),
        "ready" => Ok(Condition::Ready),
        "healthy" => Ok(Condition::Healthy),
        "completed" => Ok(Condition::Completed),
        _ => Err(match suggest(text, CONDITIONS) {
            Some(near) => format!("{expected}, found {text:?}; did you mean `{near}`?"),
            None => format!("{expected}, found {text:?}"),
        }),
    }
}

/// A map key that names something: a string, or a number read as its digits.
fn name_text(key: &Value) -> Option<String> {
    match key {
        Value::String(_) | Value::Number(_) => scalars::scalar_text(key),
        _ => None,
    }
}

/// `a, b or c`.
fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [only] => (*only).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
