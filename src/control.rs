//! The control protocol: one JSON object per line each way (see docs/protocol.md).
//!
//! Pure: turns request lines into [`ControlRequest`]s and core [`Reply`]s into reply lines, and
//! back for the client. No sockets here; `daemon::control` and `client::ctl` do the I/O.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::core::{ExitStatus, InstanceStatus, Reply, Request, StateName, TargetResult};
use crate::spec::Signal;

/// Longest request line the daemon accepts, newline included.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request as the daemon routes it: most go to the core, reload and shutdown to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRequest {
    Core(Request),
    Reload,
    Shutdown,
    /// The daemon's own pid.
    DaemonPid,
    /// `info`: the daemon's version, pid, config and how it stops whole trees.
    Info,
    /// The number of one instance's named port.
    Port {
        target: String,
        name: String,
    },
    /// Recent transitions of the targets (all when empty), then (with `follow`) new ones.
    Events {
        targets: Vec<String>,
        follow: bool,
    },
    /// Recent output of one instance, then (with `follow`) a live stream.
    Tail {
        target: String,
        stream: TailStream,
        lines: usize,
        follow: bool,
    },
}

/// Which output stream `tail` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailStream {
    Stdout,
    Stderr,
}

/// A request on the wire.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireRequest {
    pub op: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
    /// `signal`: the signal name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// `wait`: the state to wait for (default RUNNING).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `wait`: seconds before giving up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// `tail`: `stdout` (default) or `stderr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `tail`: how many recent lines (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// `tail`: keep streaming new output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
    /// `port`: the port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// `snooze`: seconds until the snooze file is removed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

/// A reply on the wire. Exactly one of `status`, `results`, `error`, `message` is present.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WireReply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<WireStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<WireResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `pid` with no target: the daemon's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// `port`: the port's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tail`: output bytes (lossily UTF-8). A following tail gets more such replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `status`: service files that failed to load (`file:line:column: key: message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// `events`: transitions, oldest first. A following client gets more such replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<WireEvent>>,
}

/// One transition on the wire (`ctl events --json` prints these, one per line).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireEvent {
    pub seq: u64,
    /// UTC, milliseconds: `2026-12-07T08:30:00.123Z`.
    pub time: String,
    pub instance: String,
    pub program: String,
    pub from: String,
    pub to: String,
    /// `unexpected_exit`, `fatal`, ... (as `notify: on:` names them).
    pub kind: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

impl WireEvent {
    #[must_use]
    pub fn from_transition(event: &crate::core::Transition) -> WireEvent {
        let (exit_code, exit_signal) = match event.exit {
            Some(ExitStatus::Exited(code)) => (Some(code), None),
            Some(ExitStatus::Signaled { signal, .. }) => (None, Some(Signal(signal).name())),
            None => (None, None),
        };
        WireEvent {
            seq: event.seq,
            time: utc_millis(event.time),
            instance: event.instance.clone(),
            program: event.program.clone(),
            from: event.from.as_str().to_string(),
            to: event.to.as_str().to_string(),
            kind: event.kind.as_str().to_string(),
            reason: event.reason.clone(),
            pid: event.pid,
            exit_code,
            exit_signal,
            health: event.health.clone(),
        }
    }
}

/// `2026-12-07T08:30:00.123Z`.
fn utc_millis(time: std::time::SystemTime) -> String {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seconds = crate::schedule::format_utc(i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
    format!("{}.{:03}Z", seconds.trim_end_matches('Z'), since.subsec_millis())
}

/// How an exit reads: `exit status 3`, `signal SIGTERM`, or nothing.
#[must_use]
pub fn exit_text(code: Option<u8>, signal: Option<&str>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal SIG{signal}"),
        (None, None) => String::new(),
    }
}

impl WireEvent {
    /// The event as one line of text (`ctl events`, mail): time, instance, from -> to, kind,
    /// the exit if any, and the reason's lines joined with `; `.
    #[must_use]
    pub fn line(&self) -> String {
        let exit = exit_text(self.exit_code, self.exit_signal.as_deref());
        let exit = if exit.is_empty() { exit } else { format!(" ({exit})") };
        let reason = self.reason.replace('\n', "; ");
        format!("{} {} {} -> {} {}{exit}: {reason}", self.time, self.instance, self.from, self.to, self.kind)
    }
}

/// A reply line carrying transitions.
#[must_use]
pub fn encode_events<'a>(events: impl IntoIterator<Item = &'a crate::core::Transition>) -> Vec<u8> {
    let events = events.into_iter().map(WireEvent::from_transition).collect();
    encode_line(&WireReply { ok: true, events: Some(events), ..WireReply::default() })
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WireStatus {
    pub name: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Milliseconds in the current state.
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The program's overall state: STARTING, UP, DEGRADED, FAILED or DOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A persistent flag holding the instance: `stopped` or `paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// Its forwarded output waits for a slow reader of the daemon's stdout/stderr.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_stalled: bool,
    /// Its named ports: name → number.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ports: std::collections::BTreeMap<String, u16>,
    /// Health check: HEALTHY, UNHEALTHY, SNOOZED or PENDING (absent without a check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Failed health checks in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_failures: Option<u32>,
    /// The last health-check result (`HTTP 200 in 3ms`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_last: Option<String>,
    /// What the program said over sd_notify (`STATUS=` text, stopping, reloading, errno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// CPU time of the instance's whole process tree, in seconds (read when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// CPU use of the tree since the previous `status`, in percent of one CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Resident memory of the tree, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Scheduled programs: the next fire time (UTC, `2026-12-07T08:30:00Z`); absent while the
    /// schedule is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// Scheduled programs: when the last finished run began (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_start: Option<String>,
    /// Scheduled programs: how long the last finished run took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_ms: Option<u64>,
    /// Scheduled programs: how the last run ended (`exited with 0`, `timed out after 2h; ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_result: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireResult {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<ControlRequest, String> {
    let wire: WireRequest = serde_json::from_slice(line).map_err(|error| format!("malformed request: {error}"))?;
    let WireRequest { op, targets, wait, signal, state, timeout, stream, lines, follow, port, duration } = wire;
    let request = match op.as_str() {
        "status" => Request::Status { targets },
        "start" => Request::Start { targets, wait },
        "stop" => Request::Stop { targets, wait, timeout: parse_timeout(timeout)? },
        "restart" => Request::Restart { targets, wait },
        "pause" => Request::Pause { targets },
        "resume" => Request::Resume { targets },
        "snooze" => Request::Snooze { targets, duration: parse_timeout(duration)? },
        "unsnooze" => Request::Unsnooze { targets },
        "port" => {
            let [target] = <[String; 1]>::try_from(targets).map_err(|_| "port: give exactly one target".to_string())?;
            let name = port.ok_or("port: missing \"port\" (the port's name)")?;
            return Ok(ControlRequest::Port { target, name });
        }
        "signal" => {
            let signal = signal.ok_or("signal: missing \"signal\"")?;
            Request::Signal { signal: Signal::parse(&signal)?, targets }
        }
        "wait" => {
            let state = StateName::parse(state.as_deref().unwrap_or("RUNNING"))?;
            Request::Wait { targets, state, timeout: parse_timeout(timeout)? }
        }
        "pid" => return Ok(ControlRequest::DaemonPid),
        "info" => return Ok(ControlRequest::Info),
        "tail" => {
            let [target] = <[String; 1]>::try_from(targets).map_err(|_| "tail: give exactly one target".to_string())?;
            let stream = match stream.as_deref().unwrap_or("stdout") {
                "stdout" => TailStream::Stdout,
                "stderr" => TailStream::Stderr,
                other => return Err(format!("tail: unknown stream {other:?} (expected stdout or stderr)")),
            };
            return Ok(ControlRequest::Tail { target, stream, lines: lines.unwrap_or(10), follow });
        }
        "events" => return Ok(ControlRequest::Events { targets, follow }),
        "reload" => return Ok(ControlRequest::Reload),
        "shutdown" => return Ok(ControlRequest::Shutdown),
        other => {
            return Err(format!(
                "unknown request op {other:?} (expected status, start, stop, restart, signal, pause, resume, snooze, unsnooze, wait, pid, info, port, tail, events, reload or shutdown)"
            ))
        }
    };
    Ok(ControlRequest::Core(request))
}

fn parse_timeout(timeout: Option<f64>) -> Result<Option<Duration>, String> {
    match timeout {
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Some(Duration::from_secs_f64(seconds.min(1e9)))),
        Some(seconds) => Err(format!("invalid timeout {seconds} (expected seconds, zero or more)")),
        None => Ok(None),
    }
}

/// A reply line carrying the daemon's pid.
#[must_use]
pub fn encode_pid(pid: i32) -> Vec<u8> {
    encode_line(&WireReply { ok: true, pid: Some(pid), ..WireReply::default() })
}

/// A reply line carrying a port number.
#[must_use]
pub fn encode_port(port: u16) -> Vec<u8> {
    encode_line(&WireReply { ok: true, port: Some(port), ..WireReply::default() })
}

/// A reply line carrying output bytes for `tail`.
#[must_use]
pub fn encode_data(bytes: &[u8]) -> Vec<u8> {
    encode_line(&WireReply {
        ok: true,
        data: Some(String::from_utf8_lossy(bytes).into_owned()),
        ..WireReply::default()
    })
}

/// One reply line, newline included; `status` rows are passed through `fill` first (the
/// daemon adds what only it can read, such as CPU and memory).
#[must_use]
pub fn encode_reply_with(reply: &Reply, fill: &mut dyn FnMut(&mut WireStatus)) -> Vec<u8> {
    match reply {
        Reply::Status { rows, problems } => {
            let mut status: Vec<WireStatus> = rows.iter().map(wire_status).collect();
            status.iter_mut().for_each(fill);
            encode_line(&WireReply {
                ok: reply.is_ok(),
                status: Some(status),
                problems: problems.clone(),
                ..WireReply::default()
            })
        }
        other => encode_reply(other),
    }
}

/// One reply line, newline included.
#[must_use]
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let ok = reply.is_ok();
    let wire = match reply {
        Reply::Status { rows, problems } => WireReply {
            ok,
            status: Some(rows.iter().map(wire_status).collect()),
            problems: problems.clone(),
            ..WireReply::default()
        },
        Reply::Results(results) => {
            WireReply { ok, results: Some(results.iter().map(wire_result).collect()), ..WireReply::default() }
        }
        Reply::Error(error) => WireReply { ok, error: Some(error.clone()), ..WireReply::default() },
        Reply::Done(message) => WireReply { ok, message: Some(message.clone()), ..WireReply::default() },
    };
    encode_line(&wire)
}

/// A protocol-level error reply line (malformed, oversize, refused).
#[must_use]
pub fn encode_error(error: &str) -> Vec<u8> {
    encode_line(&WireReply { ok: false, error: Some(error.to_string()), ..WireReply::default() })
}

fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail; fall back to a fixed error line regardless.
    let mut line =
        serde_json::to_vec(value).unwrap_or_else(|_| br#"{"ok":false,"error":"internal encoding error"}"#.to_vec());
    line.push(b'\n');
    line
}

/// Status rows as `status --json` prints them.
#[must_use]
pub fn wire_rows(rows: &[InstanceStatus]) -> Vec<WireStatus> {
    rows.iter().map(wire_status).collect()
}

fn wire_status(row: &InstanceStatus) -> WireStatus {
    let (exit_code, exit_signal) = match row.last_exit {
        Some(ExitStatus::Exited(code)) => (Some(code), None),
        Some(ExitStatus::Signaled { signal, .. }) => (None, Some(Signal(signal).name())),
        None => (None, None),
    };
    WireStatus {
        name: row.name.clone(),
        state: row.state.as_str().to_string(),
        pid: row.pid,
        since_ms: u64::try_from(row.since.as_millis()).unwrap_or(u64::MAX),
        exit_code,
        exit_signal,
        detail: row.detail.clone(),
        error: row.error.clone(),
        service: row.service.map(|service| service.as_str().to_string()),
        held: row.held.map(|flag| flag.as_str().to_string()),
        output_stalled: row.output_stalled,
        ports: row.ports.iter().cloned().collect(),
        health: row.health.as_ref().map(|health| health.state.as_str().to_string()),
        health_failures: row.health.as_ref().map(|health| health.failures),
        health_last: row.health.as_ref().and_then(|health| health.last.clone()),
        notify: row.notify.clone(),
        cpu_seconds: None,
        cpu_percent: None,
        rss_bytes: None,
        next_run: row.schedule.as_ref().and_then(|schedule| schedule.next).map(utc),
        last_run_start: row.schedule.as_ref().and_then(|schedule| schedule.last.as_ref()).map(|last| utc(last.0)),
        last_run_ms: row
            .schedule
            .as_ref()
            .and_then(|schedule| schedule.last.as_ref())
            .map(|last| u64::try_from(last.1.as_millis()).unwrap_or(u64::MAX)),
        last_run_result: row.schedule.as_ref().and_then(|schedule| schedule.last.as_ref()).map(|last| last.2.clone()),
    }
}

/// A wall-clock time as UTC to the second, `2026-12-07T08:30:00Z`.
fn utc(time: std::time::SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    crate::schedule::format_utc(i64::try_from(secs).unwrap_or(i64::MAX))
}

fn wire_result(result: &TargetResult) -> WireResult {
    WireResult { name: result.name.clone(), ok: result.ok, message: result.message.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_request(br#"{"op":"start","targets":["web:0"],"wait":true}"#),
            Ok(ControlRequest::Core(Request::Start { targets: vec!["web:0".into()], wait: true }))
        );
        assert_eq!(parse_request(br#"{"op":"reload"}"#), Ok(ControlRequest::Reload));
        assert!(parse_request(b"garbage").unwrap_err().contains("malformed request"));
        assert!(parse_request(br#"{"op":"explode"}"#).unwrap_err().contains("unknown request op"));
        assert!(parse_request(br#"{"op":"status","evil":1}"#).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn replies_round_trip() {
        let line =
            encode_reply(&Reply::Results(vec![TargetResult { name: "web:0".into(), ok: false, message: "x".into() }]));
        let wire: WireReply = serde_json::from_slice(&line).unwrap();
        assert!(!wire.ok);
        assert_eq!(wire.results.unwrap()[0].name, "web:0");
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
