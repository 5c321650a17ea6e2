//! `sv-lite ctl`: the control client. Sends one request per command over the Unix socket and
//! renders the reply. Exit codes: 0 success, 1 a target failed or is unknown, 2 the daemon
//! cannot be reached or the command line is wrong.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::{WireEvent, WireReply, WireRequest, WireStatus};
use crate::core::human_duration;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 2;

pub const USAGE: &str = "usage: sv-lite ctl [-s SOCKET | -c FILE] [COMMAND [ARGS]]

Without COMMAND: an interactive shell (commands from stdin when it is not a terminal).

commands:
  status [--json] [TARGET...]     show instances (all when no target)
  start [--no-wait] TARGET...     start and wait until RUNNING (or failed)
  stop [--no-wait] TARGET...      stop and wait until down; stays down across restarts
                                  and reloads until `start`
  zap TARGET... [--timeout SECS]  stop and wait; exit 1 if still running after SECS
  restart [--no-wait] TARGET...   stop, then start and wait until RUNNING
  signal SIG TARGET...            send a signal (TERM, HUP, USR1, 9...) to the process groups
  pause TARGET...                 SIGSTOP the process groups (state PAUSED)
  resume TARGET...                SIGCONT paused instances
  snooze [--for DURATION] TARGET...
                                  skip health checks: create .healthchecksnooze in the
                                  instances' working directories (removed after DURATION)
  unsnooze TARGET...              remove the snooze file: health checks count again
  port TARGET NAME                the number of an instance's named port
  pid [TARGET...]                 the daemon's pid, or the instances' pids, one per line
  info                            the daemon's version, pid, config, and how it stops and
                                  measures whole process trees (cgroups or /proc)
  wait TARGET... [--state STATE] [--timeout SECS]
                                  block until the targets are in STATE (default RUNNING);
                                  exit 1 on timeout
  tail [-f] [-n N] TARGET [stdout|stderr]
                                  recent output of one instance; -f follows until Ctrl-C
  events [-f] [--json] [TARGET...]
                                  recent transitions (the last 1000); -f follows new ones
  reload                          re-read the config and apply the difference
  shutdown                        stop everything and exit the daemon

TARGET is NAME (all its instances), NAME:N (one instance) or all.
The socket is -s, else $SV_LITE_SOCKET, else the config's `socket`, else the default.";

/// A parsed ctl command line (after the socket options).
#[derive(Debug, PartialEq)]
pub struct Command {
    pub request: WireRequest,
    /// `status --json`.
    pub json: bool,
}

/// The commands `ctl` knows, for help and completion.
pub const COMMANDS: &[&str] = &[
    "status", "start", "stop", "zap", "restart", "signal", "pause", "resume", "snooze", "unsnooze", "port", "pid",
    "info", "wait", "tail", "events", "reload", "shutdown",
];

/// Parses `COMMAND [ARGS]`.
pub fn parse_command(args: &[String]) -> Result<Command, String> {
    let Some((name, rest)) = args.split_first() else {
        return Err("no command given".to_string());
    };
    if !COMMANDS.contains(&name.as_str()) {
        return Err(format!("unknown command `{name}` (expected one of: {})", COMMANDS.join(", ")));
    }
    // zap is Proc::tored's name for a stop that waits, with a timeout.
    let op = if name == "zap" { "stop".to_string() } else { name.clone() };
    let mut request = WireRequest { op, ..WireRequest::default() };
    let mut json = false;
    let mut no_wait = false;
    let mut words = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let mut value = |flag: &str| rest.next().cloned().ok_or_else(|| format!("{name}: {flag} needs a value"));
        match (name.as_str(), arg.as_str()) {
            ("start" | "stop" | "restart", "--no-wait") => no_wait = true,
            ("status" | "events", "--json") => json = true,
            ("events", "-f" | "--follow") => request.follow = true,
            ("wait", "--state") => request.state = Some(value("--state")?),
            ("wait" | "zap", "--timeout") => {
                let text = value("--timeout")?;
                let seconds: f64 = text.parse().map_err(|_| format!("wait: --timeout takes seconds, not {text:?}"))?;
                if !(seconds.is_finite() && seconds >= 0.0) {
                    return Err(format!("wait: --timeout takes seconds, not {text:?}"));
                }
                request.timeout = Some(seconds);
            }
            ("snooze", "--for") => {
                let text = value("--for")?;
                let duration =
                    crate::config::parse_duration(&text).map_err(|error| format!("snooze: --for: {error}"))?;
                request.duration = Some(duration.as_secs_f64());
            }
            ("tail", "-f" | "--follow") => request.follow = true,
            ("tail", "-n" | "--lines") => {
                let text = value("-n")?;
                request.lines =
                    Some(text.parse().map_err(|_| format!("tail: -n takes a number of lines, not {text:?}"))?);
            }
            (_, flag) if flag.starts_with('-') && flag.len() > 1 && !(name == "signal" && words.is_empty()) => {
                return Err(format!("{name}: unknown option {flag}"));
            }
            _ => words.push(arg.clone()),
        }
    }
    match name.as_str() {
        "start" | "stop" | "zap" | "restart" | "pause" | "resume" | "snooze" | "unsnooze" | "wait"
            if words.is_empty() =>
        {
            return Err(format!("{name}: give at least one TARGET (name, name:N or all)"));
        }
        "signal" => {
            if words.len() < 2 {
                return Err("signal: usage: signal SIG TARGET...".to_string());
            }
            let signal = words.remove(0);
            crate::spec::Signal::parse(signal.trim_start_matches('-'))?;
            request.signal = Some(signal.trim_start_matches('-').to_string());
        }
        "tail" => {
            if let Some(last) = words.last().filter(|word| *word == "stdout" || *word == "stderr") {
                request.stream = Some(last.clone());
                words.pop();
            }
            if words.len() != 1 {
                return Err("tail: usage: tail [-f] [-n N] TARGET [stdout|stderr]".to_string());
            }
        }
        "port" => {
            let [target, port] = <[String; 2]>::try_from(std::mem::take(&mut words))
                .map_err(|_| "port: usage: port TARGET NAME".to_string())?;
            request.port = Some(port);
            words.push(target);
        }
        "reload" | "shutdown" | "info" if !words.is_empty() => return Err(format!("{name} takes no targets")),
        _ => {}
    }
    request.wait = matches!(name.as_str(), "start" | "stop" | "restart" | "zap") && !no_wait;
    request.targets = words;
    Ok(Command { request, json })
}

/// Sends the command and prints the reply (every reply, for `tail -f`); returns the exit code.
pub fn run(socket: &Path, command: &Command) -> u8 {
    let mut request = command.request.clone();
    // `pid TARGET...` is a status query printed as pids.
    let pids_of_targets = request.op == "pid" && !request.targets.is_empty();
    if pids_of_targets {
        request.op = "status".to_string();
    }
    let mut ok = true;
    let result = exchange(socket, &request, |reply| {
        ok &= reply.ok;
        if pids_of_targets {
            render_pids(reply);
        } else {
            render(reply, command.json);
        }
    });
    match result {
        Ok(()) => {}
        Err(Failure::Unreachable(error)) => {
            eprintln!(
                "sv-lite ctl: cannot connect to {}: {error} (is sv-lite running? start it with `sv-lite -c FILE`)",
                socket.display()
            );
            return EXIT_UNREACHABLE;
        }
        Err(Failure::Protocol(error)) => {
            eprintln!("sv-lite ctl: {}: {error}", socket.display());
            return EXIT_UNREACHABLE;
        }
        Err(Failure::Untrusted(error)) => {
            eprintln!("sv-lite ctl: {error}");
            return EXIT_UNREACHABLE;
        }
    }
    if ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

enum Failure {
    Unreachable(std::io::Error),
    Protocol(String),
    /// The server is not one we may trust with a request.
    Untrusted(String),
}

/// Connects to the daemon's socket and checks who answers before anything is sent: the
/// server must run as root, as our own uid, or as the owner of the socket's directory.
/// Anything else may be someone who created the path first (in `/tmp`, say) to read our
/// requests or feed us false answers.
pub fn connect(socket: &Path) -> Result<UnixStream, String> {
    let stream = UnixStream::connect(socket).map_err(|error| format!("cannot connect: {error}"))?;
    check_server(socket, &stream)?;
    Ok(stream)
}

fn check_server(socket: &Path, stream: &UnixStream) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let (pid, uid, _) = crate::sys::peer_credentials(stream.as_raw_fd())
        .map_err(|error| format!("{}: cannot check the server's credentials: {error}", socket.display()))?;
    let me = crate::sys::geteuid();
    let dir_owner = socket
        .parent()
        .map(|dir| if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
        .and_then(|dir| std::fs::metadata(dir).ok())
        .map(|meta| meta.uid());
    if uid == 0 || uid == me || dir_owner == Some(uid) {
        return Ok(());
    }
    Err(format!(
        "refusing to talk to {}: the server (pid {pid}) runs as uid {uid}, which is not root, not you (uid {me}) \
         and not the owner of the socket's directory; someone else may have created that socket",
        socket.display()
    ))
}

/// Sends one request and hands each reply line to `on_reply`: one line, or for a following
/// `tail` one line per chunk of output until the daemon closes the connection.
fn exchange(socket: &Path, request: &WireRequest, mut on_reply: impl FnMut(&WireReply)) -> Result<(), Failure> {
    let mut stream = UnixStream::connect(socket).map_err(Failure::Unreachable)?;
    check_server(socket, &stream).map_err(Failure::Untrusted)?;
    let mut line = serde_json::to_vec(request).map_err(|error| Failure::Protocol(error.to_string()))?;
    line.push(b'\n');
    // A refusing daemon answers and closes before reading: read its answer even if the
    // write failed.
    let write_error = stream.write_all(&line).err();
    let streaming = matches!(request.op.as_str(), "tail" | "events") && request.follow;
    let mut reader = BufReader::new(stream);
    let mut answered = false;
    loop {
        let mut answer = String::new();
        match reader.read_line(&mut answer) {
            Ok(0) if answered => return Ok(()),
            Ok(0) => {
                let why = match &write_error {
                    Some(error) => format!("sending request: {error}"),
                    None => "the daemon closed the connection without answering".to_string(),
                };
                return Err(Failure::Protocol(why));
            }
            Ok(_) => {
                let reply: WireReply = serde_json::from_str(&answer)
                    .map_err(|error| Failure::Protocol(format!("unreadable reply: {error}")))?;
                answered = true;
                on_reply(&reply);
                if !streaming || !reply.ok {
                    return Ok(());
                }
            }
            Err(error) => {
                let why = match &write_error {
                    Some(write_error) => format!("sending request: {write_error}"),
                    None => format!("reading reply: {error}"),
                };
                return Err(Failure::Protocol(why));
            }
        }
    }
}

fn render_pids(reply: &WireReply) {
    for row in reply.status.iter().flatten() {
        match (row.pid, &row.error) {
            (Some(pid), _) => println!("{pid}"),
            (None, Some(error)) => eprintln!("{}: ERROR {error}", row.name),
            (None, None) => eprintln!("{}: not running ({})", row.name, row.state),
        }
    }
}

/// `ctl events`: one line per transition, or one JSON object per line with `--json`.
fn render_events(events: &[WireEvent], json: bool) {
    let mut out = std::io::stdout().lock();
    for event in events {
        let line = if json { serde_json::to_string(event).unwrap_or_default() } else { event.line() };
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

fn render(reply: &WireReply, json: bool) {
    if let Some(events) = &reply.events {
        render_events(events, json);
        return;
    }
    // Service files that failed to load: on stderr, so `--json` output stays one array.
    for problem in &reply.problems {
        eprintln!("sv-lite ctl: service file problem: {problem}");
    }
    if json {
        if let Some(rows) = &reply.status {
            println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        }
        return;
    }
    if let Some(rows) = &reply.status {
        print!("{}", status_table(rows, use_colour()));
    }
    if let Some(results) = &reply.results {
        for result in results {
            if result.ok {
                println!("{}: {}", result.name, result.message);
            } else {
                eprintln!("{}: ERROR {}", result.name, result.message);
            }
        }
    }
    if let Some(message) = &reply.message {
        println!("{message}");
    }
    if let Some(pid) = reply.pid {
        println!("{pid}");
    }
    if let Some(port) = reply.port {
        println!("{port}");
    }
    if let Some(data) = &reply.data {
        print!("{data}");
        let _ = std::io::stdout().flush();
    }
    if let Some(error) = &reply.error {
        eprintln!("sv-lite ctl: {error}");
    }
}

fn use_colour() -> bool {
    crate::sys::isatty(1) && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// The status table, one row per instance.
#[must_use]
pub fn status_table(rows: &[WireStatus], colour: bool) -> String {
    let name_width = rows.iter().map(|row| row.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:<name_width$}  {:<9}  {:<9}  {:>7}  {:>5}  {:>6}  INFO\n",
        "NAME", "STATE", "SERVICE", "PID", "CPU%", "RSS"
    );
    for row in rows {
        let info = row_info(row);
        let pid = row.pid.map(|pid| pid.to_string()).unwrap_or_else(|| "-".to_string());
        let state = if colour { paint(&row.state) } else { format!("{:<9}", row.state) };
        let service = row.service.as_deref().unwrap_or("-");
        let cpu = row.cpu_percent.map_or_else(|| "-".to_string(), |percent| format!("{percent:.1}"));
        let rss = row.rss_bytes.map_or_else(|| "-".to_string(), human_bytes);
        out.push_str(&format!(
            "{:<name_width$}  {state}  {service:<9}  {pid:>7}  {cpu:>5}  {rss:>6}  {info}\n",
            row.name
        ));
    }
    out
}

/// `812K`, `12.3M`, `1.2G`.
fn human_bytes(bytes: u64) -> String {
    let kib = bytes as f64 / 1024.0;
    if kib < 1024.0 {
        format!("{kib:.0}K")
    } else if kib < 1024.0 * 1024.0 {
        format!("{:.1}M", kib / 1024.0)
    } else {
        format!("{:.1}G", kib / 1024.0 / 1024.0)
    }
}

fn row_info(row: &WireStatus) -> String {
    if let Some(error) = &row.error {
        return error.clone();
    }
    let mut info = state_info(row);
    if let Some(notify) = &row.notify {
        info = if info.is_empty() { notify.clone() } else { format!("{info}; {notify}") };
    }
    if let Some(health) = &row.health {
        let failures = row.health_failures.filter(|&failures| failures > 0);
        let mut text = health.clone();
        if let Some(failures) = failures {
            text.push_str(&format!(" ({failures} failed in a row)"));
        }
        if let Some(last) = &row.health_last {
            text.push_str(&format!(", last {last}"));
        }
        info = if info.is_empty() { text } else { format!("{info}; {text}") };
    }
    if !row.ports.is_empty() {
        let ports: Vec<String> = row.ports.iter().map(|(name, port)| format!("{name}={port}")).collect();
        info = if info.is_empty() { ports.join(" ") } else { format!("{info}; {}", ports.join(" ")) };
    }
    if row.state != "SCHEDULED" {
        if let Some(next) = &row.next_run {
            let next = format!("next run {next}");
            info = if info.is_empty() { next } else { format!("{info}; {next}") };
        }
    }
    if let (Some(start), Some(ms), Some(result)) = (&row.last_run_start, row.last_run_ms, &row.last_run_result) {
        let last = format!("last run {start} took {}: {result}", human_duration(Duration::from_millis(ms)));
        info = if info.is_empty() { last } else { format!("{info}; {last}") };
    }
    if row.output_stalled {
        let note = "output stalled: sv-lite's stdout/stderr reader is not reading";
        return if info.is_empty() { note.to_string() } else { format!("{info}; {note}") };
    }
    info
}

fn state_info(row: &WireStatus) -> String {
    let since = human_duration(Duration::from_millis(row.since_ms));
    let exit = crate::control::exit_text(row.exit_code, row.exit_signal.as_deref());
    match row.state.as_str() {
        "RUNNING" => format!("uptime {since}"),
        "STARTING" | "STOPPING" | "PAUSED" => format!("for {since}"),
        "EXITED" => format!("{exit} ({}) {since} ago", row.detail.as_deref().unwrap_or("")),
        "FATAL" | "BACKOFF" | "WAITING" | "SCHEDULED" => row.detail.clone().unwrap_or_default(),
        "STOPPED" if row.held.is_some() => row.detail.clone().unwrap_or_default(),
        _ if !exit.is_empty() => format!("last {exit}, {since} ago"),
        _ => String::new(),
    }
}

fn paint(state: &str) -> String {
    let colour = match state {
        "RUNNING" => "32",
        "STARTING" | "STOPPING" | "BACKOFF" | "PAUSED" => "33",
        "SCHEDULED" => "36",
        "FATAL" | "EXITED" | "UNKNOWN" => "31",
        _ => "2",
    };
    format!("\x1b[{colour}m{state:<9}\x1b[0m")
}

/// The control socket: `-s`, then `$SV_LITE_SOCKET`, then the config's, then the default.
#[must_use]
pub fn resolve_socket(flag: Option<PathBuf>, config_socket: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("SV_LITE_SOCKET").filter(|value| !value.is_empty()).map(PathBuf::from))
        .or(config_socket)
        .unwrap_or_else(default_socket)
}

/// `/run/sv-lite.sock` as root, else `$XDG_RUNTIME_DIR/sv-lite.sock`, else a private
/// directory in the temp dir (the temp dir itself is world-writable).
#[must_use]
pub fn default_socket() -> PathBuf {
    if crate::sys::geteuid() == 0 {
        return PathBuf::from("/run/sv-lite.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|value| !value.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("sv-lite.sock"),
        None => std::env::temp_dir().join(format!("sv-lite-{}", crate::sys::geteuid())).join("sv-lite.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_parse_and_mistakes_are_named() {
        let command = parse_command(&args("start web web:1")).unwrap();
        assert_eq!(command.request.op, "start");
        assert!(command.request.wait);
        assert!(!parse_command(&args("stop --no-wait all")).unwrap().request.wait);
        assert!(parse_command(&args("status --json")).unwrap().json);
        assert!(parse_command(&args("start")).unwrap_err().contains("TARGET"));
        assert!(parse_command(&args("explode")).unwrap_err().contains("unknown command"));
        assert!(parse_command(&args("reload web")).unwrap_err().contains("takes no targets"));
        let tail = parse_command(&args("tail -f -n 5 web:0 stderr")).unwrap().request;
        assert_eq!((tail.follow, tail.lines, tail.stream.as_deref()), (true, Some(5), Some("stderr")));
        assert_eq!(parse_command(&args("signal -HUP web")).unwrap().request.signal.as_deref(), Some("HUP"));
        assert!(parse_command(&args("signal BOGUS web")).unwrap_err().contains("unknown signal"));
        let zap = parse_command(&args("zap web --timeout 3")).unwrap().request;
        assert_eq!((zap.op.as_str(), zap.wait, zap.timeout), ("stop", true, Some(3.0)));
        let wait = parse_command(&args("wait web --state stopped --timeout 2.5")).unwrap().request;
        assert_eq!((wait.state.as_deref(), wait.timeout), (Some("stopped"), Some(2.5)));
        assert!(parse_command(&args("wait web --timeout soon")).unwrap_err().contains("seconds"));
    }
}
