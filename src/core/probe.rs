//! One probe machine per instance: the pid-file monitor and the health check.
//!
//! The probe decides when a check is due and what a result means; the driver only carries checks
//! out (`Action::RunProbe`) and reports what it found (`Input::ProbeResult`). Its one deadline
//! (the earliest of the next pid-file read, the next health check, the timeout of the check in
//! flight and the end of a timed snooze) is armed as `TimerKey::Probe`.
//!
//! Health checks follow Aurora's HealthCheckConfig:
//! - checks run every `interval`, the first one `interval` after the start;
//! - failures among the first m = ceil(initial_interval / interval) checks are not counted
//!   (the grace period);
//! - an instance is ready after `min_consecutive_successes` passes in a row, and its start has
//!   failed when n = m + max_consecutive_failures + min_consecutive_successes checks have run
//!   without that;
//! - once running, more than `max_consecutive_failures` counted failures in a row make it
//!   unhealthy;
//! - a check still unanswered after `timeout` is a failure;
//! - while the snooze file exists, checks are skipped and not counted.

use std::time::{Duration, Instant};

use super::instance::human_duration;
use super::types::{ExitStatus, HealthState, HealthStatus, Pid, ProbeResult};
use crate::spec::{CheckKind, HealthCheck};

/// An instance's probe: its pid-file monitor, its health check, and a timed snooze.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Probe {
    /// Sequence numbers for the checks asked of the driver.
    seq: u64,
    /// Pid-file programs: when the next read of the pid file is due.
    pub pid_file_at: Option<Instant>,
    /// Programs with a health check.
    pub health: Option<Health>,
    /// `ctl snooze --for`: when to remove the snooze file.
    pub unsnooze_at: Option<Instant>,
    /// `ready_timeout` of a start that waits for the program to say it is ready.
    pub ready_by: Option<Instant>,
    /// `watchdog`: the ping expected by then (`WATCHDOG=1`).
    pub watchdog_at: Option<Instant>,
    /// `WATCHDOG_USEC=` sent by the program: its own watchdog interval, instead of the config's.
    pub watchdog_every: Option<Duration>,
}

impl Probe {
    pub(crate) fn new(check: Option<HealthCheck>) -> Probe {
        Probe {
            seq: 0,
            pid_file_at: None,
            health: check.map(Health::new),
            unsnooze_at: None,
            ready_by: None,
            watchdog_at: None,
            watchdog_every: None,
        }
    }

    /// A fresh sequence number for a check.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The one deadline the probe waits for, if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [
            self.pid_file_at,
            self.health.as_ref().and_then(Health::deadline),
            self.unsnooze_at,
            self.ready_by,
            self.watchdog_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The pid of a shell check running now, if any.
    pub(crate) fn check_pid(&self) -> Option<Pid> {
        self.health.as_ref().and_then(|health| health.in_flight.as_ref()).and_then(|in_flight| in_flight.pid)
    }
}

/// Whether the health check runs as the readiness step (STARTING) or as a liveness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HealthPhase {
    Starting,
    Running,
}

/// What a counted health result means for the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing changes for the instance.
    Nothing,
    /// Enough passes in a row: the instance is ready (RUNNING).
    Ready,
    /// n checks without enough passes: the start failed, for this reason.
    StartFailed(String),
    /// Too many failures in a row while running: stop and restart it, for this reason.
    Unhealthy(String),
}

/// A health check being carried out by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub seq: u64,
    pub asked_at: Instant,
    pub timeout_at: Instant,
    /// A shell check's process, once spawned.
    pub pid: Option<Pid>,
}

/// The health-check half of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Health {
    pub check: HealthCheck,
    /// None while checks are off (the instance is not STARTING or RUNNING, or is paused).
    pub phase: Option<HealthPhase>,
    /// When the next check is due (None while one is in flight or checks are off).
    pub next_at: Option<Instant>,
    pub in_flight: Option<InFlight>,
    /// Checks counted since the phase began (snoozed ones are not).
    pub checks: u32,
    pub successes: u32,
    pub failures: u32,
    pub state: HealthState,
    pub last: Option<String>,
    /// The latency of the last result, when it was an answer.
    pub latency: Option<Duration>,
}

impl Health {
    pub(crate) fn new(check: HealthCheck) -> Health {
        Health {
            check,
            phase: None,
            next_at: None,
            in_flight: None,
            checks: 0,
            successes: 0,
            failures: 0,
            state: HealthState::Pending,
            last: None,
            latency: None,
        }
    }

    /// m: the checks whose failures the grace period forgives.
    pub(crate) fn grace_checks(&self) -> u32 {
        let interval = self.check.interval.as_nanos().max(1);
        u32::try_from(self.check.initial_interval.as_nanos().div_ceil(interval)).unwrap_or(u32::MAX)
    }

    /// n: the checks within which a start must pass `min_consecutive_successes` in a row.
    pub(crate) fn start_budget(&self) -> u32 {
        self.grace_checks()
            .saturating_add(self.check.max_consecutive_failures)
            .saturating_add(self.check.min_consecutive_successes)
    }

    /// Starts checking in `phase`, counters reset; the first check is one interval away.
    pub(crate) fn begin(&mut self, now: Instant, phase: HealthPhase) {
        self.phase = Some(phase);
        self.next_at = Some(now + self.check.interval);
        self.in_flight = None;
        self.checks = 0;
        self.successes = 0;
        self.failures = 0;
        if phase == HealthPhase::Starting {
            self.state = HealthState::Pending;
        }
    }

    /// Keeps counting, now as a liveness check (the readiness step passed).
    pub(crate) fn promote(&mut self) {
        self.phase = Some(HealthPhase::Running);
    }

    /// Stops checking; returns the check that was in flight, for the driver to cancel.
    pub(crate) fn end(&mut self) -> Option<InFlight> {
        self.phase = None;
        self.next_at = None;
        self.in_flight.take()
    }

    pub(crate) fn due(&self, now: Instant) -> bool {
        self.phase.is_some() && self.in_flight.is_none() && self.next_at.is_some_and(|at| at <= now)
    }

    /// Records that check `seq` was asked for now.
    pub(crate) fn asked(&mut self, now: Instant, seq: u64) {
        self.next_at = None;
        self.in_flight = Some(InFlight { seq, asked_at: now, timeout_at: now + self.check.timeout, pid: None });
    }

    /// The earliest time this half needs the core's attention.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.phase?;
        match &self.in_flight {
            Some(in_flight) => Some(in_flight.timeout_at),
            None => self.next_at,
        }
    }

    /// Whether the check in flight has run past its timeout.
    pub(crate) fn timed_out(&self, now: Instant) -> bool {
        self.in_flight.as_ref().is_some_and(|in_flight| in_flight.timeout_at <= now)
    }

    /// Takes the answer to check `seq`, if it is the one in flight; returns its latency.
    pub(crate) fn answer(&mut self, now: Instant, seq: u64) -> Option<Duration> {
        let in_flight = self.in_flight.as_ref().filter(|in_flight| in_flight.seq == seq)?;
        let asked_at = in_flight.asked_at;
        self.in_flight = None;
        // Fixed cadence from when the check was asked, never in the past.
        self.next_at = Some((asked_at + self.check.interval).max(now));
        Some(now.saturating_duration_since(asked_at))
    }

    /// Counts one result (`passed`, with a short description) and says what it means.
    pub(crate) fn count(&mut self, passed: bool, detail: String) -> Verdict {
        let Some(phase) = self.phase else { return Verdict::Nothing };
        self.checks = self.checks.saturating_add(1);
        self.last = Some(detail.clone());
        if passed {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            self.state = HealthState::Healthy;
        } else {
            self.successes = 0;
            if self.checks > self.grace_checks() {
                self.failures = self.failures.saturating_add(1);
            }
            if self.state == HealthState::Snoozed {
                self.state = HealthState::Pending;
            }
        }
        match phase {
            HealthPhase::Starting => {
                if self.successes >= self.check.min_consecutive_successes {
                    Verdict::Ready
                } else if self.checks >= self.start_budget() {
                    self.state = HealthState::Unhealthy;
                    Verdict::StartFailed(format!(
                        "{} health checks without {} passing in a row (last: {detail})",
                        self.checks, self.check.min_consecutive_successes
                    ))
                } else {
                    Verdict::Nothing
                }
            }
            HealthPhase::Running => {
                if !passed && self.failures > self.check.max_consecutive_failures {
                    self.state = HealthState::Unhealthy;
                    Verdict::Unhealthy(format!("{} health checks failed in a row (last: {detail})", self.failures))
                } else {
                    Verdict::Nothing
                }
            }
        }
    }

    /// A skipped check: the snooze file exists.
    pub(crate) fn snoozed(&mut self) {
        self.state = HealthState::Snoozed;
        self.last = Some("snoozed (.healthchecksnooze exists)".to_string());
    }

    pub(crate) fn status(&self) -> HealthStatus {
        HealthStatus { state: self.state, failures: self.failures, last: self.last.clone(), latency: self.latency }
    }
}

/// Judges one result of a health check of `kind`: `Ok(detail)` when it passed, `Err(detail)`
/// when it failed. `latency` goes into the detail.
pub(crate) fn judge(kind: &CheckKind, result: &ProbeResult, latency: Duration) -> Result<String, String> {
    let took = human_duration(latency);
    match (kind, result) {
        (CheckKind::Http { expected_response, expected_response_code, .. }, ProbeResult::Http { status, body }) => {
            let status_ok = if *expected_response_code == 0 {
                (200..300).contains(status)
            } else {
                status == expected_response_code
            };
            if !status_ok {
                let wanted =
                    if *expected_response_code == 0 { "2xx".to_string() } else { expected_response_code.to_string() };
                return Err(format!("HTTP {status} (expected {wanted}) in {took}"));
            }
            if !expected_response.is_empty() && !body.trim().eq_ignore_ascii_case(expected_response.trim()) {
                let shown: String = body.trim().chars().take(40).collect();
                return Err(format!("HTTP {status} body {shown:?}, expected {expected_response:?}, in {took}"));
            }
            Ok(format!("HTTP {status} in {took}"))
        }
        (CheckKind::Tcp { .. }, ProbeResult::Connected) => Ok(format!("connected in {took}")),
        (CheckKind::Shell { .. }, ProbeResult::Exited(ExitStatus::Exited(0))) => Ok(format!("exit 0 in {took}")),
        (CheckKind::Shell { .. }, ProbeResult::Exited(status)) => Err(format!("{status} in {took}")),
        (_, ProbeResult::Refused) => Err("connection refused".to_string()),
        (_, ProbeResult::Failed(reason)) => Err(reason.clone()),
        (_, other) => Err(format!("unexpected answer {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(initial: u64, interval: u64, max_failures: u32, min_successes: u32) -> Health {
        let mut check = HealthCheck::with_defaults(CheckKind::Shell { command: "true".to_string() });
        check.initial_interval = Duration::from_secs(initial);
        check.interval = Duration::from_secs(interval);
        check.max_consecutive_failures = max_failures;
        check.min_consecutive_successes = min_successes;
        Health::new(check)
    }

    #[test]
    fn the_grace_and_the_start_budget_follow_aurora() {
        // Aurora's defaults: 15 s grace, every 10 s, 0 failures, 1 success: m = 2, n = 3.
        let h = health(15, 10, 0, 1);
        assert_eq!((h.grace_checks(), h.start_budget()), (2, 3));
        let h = health(30, 10, 2, 3);
        assert_eq!((h.grace_checks(), h.start_budget()), (3, 8));
        let h = health(0, 10, 0, 1);
        assert_eq!((h.grace_checks(), h.start_budget()), (0, 1));
    }

    #[test]
    fn judging_http_follows_expected_response_and_code() {
        let kind = |response: &str, code: u16| CheckKind::Http {
            port: crate::spec::PortRef::Number(1),
            endpoint: "/health".to_string(),
            expected_response: response.to_string(),
            expected_response_code: code,
        };
        let http = |status: u16, body: &str| ProbeResult::Http { status, body: body.to_string() };
        let ms = Duration::from_millis(3);
        assert!(judge(&kind("", 0), &http(204, ""), ms).is_ok());
        assert!(judge(&kind("", 0), &http(500, ""), ms).is_err());
        assert!(judge(&kind("ok", 0), &http(200, " OK\n"), ms).is_ok());
        assert!(judge(&kind("ok", 0), &http(200, "not ok"), ms).is_err());
        assert!(judge(&kind("", 503), &http(503, ""), ms).is_ok());
        assert!(judge(&kind("", 503), &http(200, ""), ms).is_err());
        assert_eq!(judge(&kind("", 0), &ProbeResult::Refused, ms), Err("connection refused".to_string()));
    }
}
