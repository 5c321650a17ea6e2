//! `sv-lite ctl`: the control client. Sends one request per command over the Unix socket and
//! renders the reply. Exit codes: 0 success, 1 a target failed or is unknown, 2 the daemon
//! cannot be reached or the command line is wrong.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::{WireReply, WireRequest, WireStatus};
use crate::core::human_duration;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 2;

pub const USAGE: &str = "usage: sv-lite ctl [-s SOCKET | -c FILE] COMMAND [ARGS]

commands:
  status [--json] [TARGET...]     show instances (all when no target)
  start [--no-wait] TARGET...     start and wait until RUNNING (or failed)
  stop [--no-wait] TARGET...      stop and wait until down
  restart [--no-wait] TARGET...   stop, then start and wait until RUNNING
  reload                          re-read the config and apply the difference
  shutdown                        stop everything and exit the daemon

TARGET is NAME (all its instances), NAME:N (one instance) or all.
The socket is -s, else $SV_LITE_SOCKET, else the config's `socket`, else the default.";

/// A parsed ctl command line (after the socket options).
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub request: WireRequest,
    pub json: bool,
}

/// Parses `COMMAND [ARGS]`.
pub fn parse_command(args: &[String]) -> Result<Command, String> {
    let Some((name, rest)) = args.split_first() else {
        return Err("no command given".to_string());
    };
    let mut wait = true;
    let mut json = false;
    let mut targets = Vec::new();
    for arg in rest {
        match arg.as_str() {
            "--no-wait" => wait = false,
            "--json" => json = true,
            flag if flag.starts_with('-') => return Err(format!("{name}: unknown option {flag}")),
            target => targets.push(target.to_string()),
        }
    }
    let needs_targets = matches!(name.as_str(), "start" | "stop" | "restart");
    match name.as_str() {
        "status" | "start" | "stop" | "restart" | "reload" | "shutdown" => {}
        other => return Err(format!("unknown command `{other}`")),
    }
    if needs_targets && targets.is_empty() {
        return Err(format!("{name}: give at least one TARGET (name, name:N or all)"));
    }
    if !needs_targets && name != "status" && !targets.is_empty() {
        return Err(format!("{name} takes no targets"));
    }
    if json && name != "status" {
        return Err("--json goes with status".to_string());
    }
    let wait = wait && needs_targets;
    Ok(Command { request: WireRequest { op: name.clone(), targets, wait }, json })
}

/// Sends the command and prints the reply; returns the exit code.
pub fn run(socket: &Path, command: &Command) -> u8 {
    let reply = match exchange(socket, &command.request) {
        Ok(reply) => reply,
        Err(Failure::Unreachable(error)) => {
            eprintln!("sv-lite ctl: cannot connect to {}: {error} (is sv-lite running? start it with `sv-lite -c FILE`)", socket.display());
            return EXIT_UNREACHABLE;
        }
        Err(Failure::Protocol(error)) => {
            eprintln!("sv-lite ctl: {}: {error}", socket.display());
            return EXIT_UNREACHABLE;
        }
    };
    render(&reply, command.json);
    if reply.ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

enum Failure {
    Unreachable(std::io::Error),
    Protocol(String),
}

fn exchange(socket: &Path, request: &WireRequest) -> Result<WireReply, Failure> {
    let mut stream = UnixStream::connect(socket).map_err(Failure::Unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|error| Failure::Protocol(error.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|error| Failure::Protocol(format!("sending request: {error}")))?;
    let _ = stream.set_read_timeout(None::<Duration>);
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    match reader.read_line(&mut answer) {
        Ok(0) => Err(Failure::Protocol("the daemon closed the connection without answering".to_string())),
        Ok(_) => serde_json::from_str(&answer).map_err(|error| Failure::Protocol(format!("unreadable reply: {error}"))),
        Err(error) => Err(Failure::Protocol(format!("reading reply: {error}"))),
    }
}

fn render(reply: &WireReply, json: bool) {
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
    let mut out = format!("{:<name_width$}  {:<8}  {:>7}  INFO\n", "NAME", "STATE", "PID");
    for row in rows {
        let info = row_info(row);
        let pid = row.pid.map(|pid| pid.to_string()).unwrap_or_else(|| "-".to_string());
        let state = if colour { paint(&row.state) } else { format!("{:<8}", row.state) };
        out.push_str(&format!("{:<name_width$}  {state}  {pid:>7}  {info}\n", row.name));
    }
    out
}

fn row_info(row: &WireStatus) -> String {
    if let Some(error) = &row.error {
        return error.clone();
    }
    let since = human_duration(Duration::from_millis(row.since_ms));
    let exit = match (&row.exit_code, &row.exit_signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal SIG{signal}"),
        (None, None) => String::new(),
    };
    match row.state.as_str() {
        "RUNNING" => format!("uptime {since}"),
        "STARTING" | "STOPPING" => format!("for {since}"),
        "EXITED" => format!("{exit} ({}) {since} ago", row.detail.as_deref().unwrap_or("")),
        "FATAL" | "BACKOFF" => row.detail.clone().unwrap_or_default(),
        _ if !exit.is_empty() => format!("last {exit}, {since} ago"),
        _ => String::new(),
    }
}

fn paint(state: &str) -> String {
    let colour = match state {
        "RUNNING" => "32",
        "STARTING" | "STOPPING" | "BACKOFF" => "33",
        "FATAL" | "EXITED" | "UNKNOWN" => "31",
        _ => "2",
    };
    format!("\x1b[{colour}m{state:<8}\x1b[0m")
}

/// The control socket: `-s`, then `$SV_LITE_SOCKET`, then the config's, then the default.
#[must_use]
pub fn resolve_socket(flag: Option<PathBuf>, config_socket: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("SV_LITE_SOCKET").filter(|value| !value.is_empty()).map(PathBuf::from))
        .or(config_socket)
        .unwrap_or_else(default_socket)
}

/// `/run/sv-lite.sock` as root, else `$XDG_RUNTIME_DIR/sv-lite.sock`, else the temp dir.
#[must_use]
pub fn default_socket() -> PathBuf {
    if crate::sys::geteuid() == 0 {
        return PathBuf::from("/run/sv-lite.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|value| !value.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("sv-lite.sock"),
        None => std::env::temp_dir().join(format!("sv-lite-{}.sock", crate::sys::geteuid())),
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
    }
}
