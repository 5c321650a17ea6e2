//! What the notifier's actions turn into: a mail's text, and a hook's process.
//!
//! The core decides what to send and when (`core::notifier`); this renders a `Mail` with the
//! instances' recent output, and starts a hook with the event in its environment and, as JSON,
//! on its stdin (a memfd, so writing it never blocks the loop).

use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use crate::control::WireEvent;
use crate::core::{Mail, Pid, Transition};
use crate::spec::{Launch, Sink};
use crate::sys;

/// Lines of each stream's recent output in a mail.
pub const TAIL_LINES: usize = 50;

/// This machine's name (`/proc/sys/kernel/hostname`), or `localhost`.
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// `text` with control characters (a program's output may hold any byte) other than tab and
/// newline replaced by `?`: no bare CR or NUL reaches SMTP DATA or a hook's environment.
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\t' && c != '\n' { '?' } else { c }).collect()
}

/// What a kind says in a subject.
fn what(kind: &str) -> &str {
    match kind {
        "unexpected_exit" => "exited unexpectedly",
        "fatal" => "is FATAL",
        "unhealthy" => "is unhealthy",
        "backoff" => "is in BACKOFF",
        "exited" => "exited",
        "running" => "is RUNNING",
        "stopped" => "stopped",
        other => other,
    }
}

/// The subject: the host, the instance and what happened (with counts for a digest).
#[must_use]
pub fn subject(mail: &Mail, host: &str) -> String {
    let total: u32 = mail.counts.iter().map(|(_, _, n)| n).sum();
    match mail.counts.as_slice() {
        [(instance, kind, 1)] => format!("[sv-lite {host}] {instance} {}", what(kind)),
        [(instance, kind, n)] => format!("[sv-lite {host}] {instance} {} {n} times", what(kind)),
        [(instance, kind, _), ..] => {
            format!("[sv-lite {host}] {instance} {} and more ({total} events)", what(kind))
        }
        [] => format!("[sv-lite {host}] no events"),
    }
}

/// The whole message: headers, the counts, the events, and each instance's recent stderr and
/// stdout (`tails`: instance, stream, bytes).
#[must_use]
pub fn compose_mail(mail: &Mail, host: &str, tails: &[(String, String, Vec<u8>)], id: u64, now: SystemTime) -> String {
    let mut body = String::new();
    let total: u32 = mail.counts.iter().map(|(_, _, n)| n).sum();
    body.push_str(&format!("sv-lite on {host} reports {total} events.\n\n"));
    for (instance, kind, n) in &mail.counts {
        let times = if *n == 1 { "once".to_string() } else { format!("{n} times") };
        body.push_str(&format!("{instance} {} {times}\n", what(kind)));
    }
    let shown = mail.events.len();
    body.push_str(&format!(
        "\nEvents (UTC){}:\n",
        if (shown as u32) < total { format!(", the first {shown}") } else { String::new() }
    ));
    for event in &mail.events {
        body.push_str(&event_line(event));
        body.push('\n');
    }
    for (instance, stream, bytes) in tails {
        if bytes.is_empty() {
            continue;
        }
        body.push_str(&format!("\nLast {TAIL_LINES} lines of {instance} {stream}:\n"));
        for line in String::from_utf8_lossy(bytes).lines() {
            body.push_str("  ");
            body.push_str(&clean(line));
            body.push('\n');
        }
    }
    let from = mail.spec.from.replace("%(host)s", host);
    let stamp = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_millis());
    let message_id = format!("<{stamp}.{id}.sv-lite@{host}>");
    super::mail::compose(&from, &mail.spec.to, &subject(mail, host), &body, now, &message_id)
}

/// One event as a line of text.
#[must_use]
pub fn event_line(event: &Transition) -> String {
    clean(&WireEvent::from_transition(event).line())
}

/// Starts a `notify: exec:` hook for `event`: `SV_EVENT`, `SV_INSTANCE`, `SV_PROGRAM`,
/// `SV_FROM`, `SV_TO`, `SV_REASON`, `SV_PID`, `SV_EXIT`, `SV_TIME` (and `SV_HOST`) in its
/// environment, the event as one line of JSON on its stdin. Its own process group (killed as
/// one on timeout), stdout discarded, stderr the daemon's.
///
/// # Errors
///
/// Which step failed: the memfd, or the spawn.
pub fn run_hook(
    argv: &[String],
    event: &Transition,
    host: &str,
    slots: Option<&sys::SpawnSlots>,
) -> Result<Pid, String> {
    let wire = WireEvent::from_transition(event);
    let mut json = serde_json::to_vec(&wire).map_err(|error| format!("encode the event: {error}"))?;
    json.push(b'\n');
    let exit = match (wire.exit_code, &wire.exit_signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("SIG{signal}"),
        (None, None) => String::new(),
    };
    let env = vec![
        ("SV_EVENT".to_string(), wire.kind.clone()),
        ("SV_INSTANCE".to_string(), wire.instance.clone()),
        ("SV_PROGRAM".to_string(), wire.program.clone()),
        ("SV_FROM".to_string(), wire.from.clone()),
        ("SV_TO".to_string(), wire.to.clone()),
        ("SV_REASON".to_string(), clean(&wire.reason.replace('\n', "; "))),
        ("SV_PID".to_string(), wire.pid.map(|pid| pid.to_string()).unwrap_or_default()),
        ("SV_EXIT".to_string(), exit),
        ("SV_TIME".to_string(), wire.time.clone()),
        ("SV_HOST".to_string(), host.to_string()),
    ];
    spawn_fed(argv.to_vec(), env, &json, slots)
        .map_err(|error| format!("{}: {error}", argv.first().map_or("hook", String::as_str)))
}

/// Starts `argv` (with `env` added to the inherited environment) reading `input` on its stdin
/// from a memfd, so nothing is written from the loop and no pipe can stall it; its own process
/// group, stdout discarded, stderr the daemon's. For hooks and sendmail, whose exit is reaped
/// by the daemon like any other.
///
/// # Errors
///
/// Which step failed: the memfd, or the spawn (`exec ...: No such file or directory`).
pub fn spawn_fed(
    argv: Vec<String>,
    env: Vec<(String, String)>,
    input: &[u8],
    slots: Option<&sys::SpawnSlots>,
) -> Result<Pid, String> {
    let in_memory = || -> std::io::Result<std::fs::File> {
        let mut file = std::fs::File::from(sys::memfd("sv-lite-input")?);
        file.write_all(input)?;
        file.rewind()?;
        Ok(file)
    };
    let stdin = in_memory().map_err(|error| format!("the input in a memfd: {error}"))?;
    let launch = Launch {
        argv,
        env,
        workingdir: None,
        umask: None,
        stdout: Sink::Discard,
        stderr: Sink::Forward,
        pid_file: None,
    };
    let options = sys::SpawnOptions {
        slots,
        ..sys::SpawnOptions::streams(sys::Stream::Fd(stdin.as_raw_fd()), sys::Stream::Null, sys::Stream::Inherit)
    };
    // The child has its own copy of the memfd; ours closes here.
    sys::spawn(&launch, options).map(|child| child.pid).map_err(|error| error.to_string())
}
