//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), rendered from the
//! status rows, a small book of counters fed by transitions, and sv-lite's own `/proc` figures.
//!
//! [`Counters`] is fed every [`Transition`] (as the event log is) and every config reload; it
//! keeps per instance what `status` does not: restarts, exits by expected/unexpected, and when
//! the current run became RUNNING. [`render`] is pure; [`read_process_stats`] is the only part
//! that reads anything, and only when called (a scrape), so an idle daemon does not wake.
//!
//! Architecture invariant: no I/O and no clock in [`Counters`] or [`render`]; times come in
//! with the transitions and the reload calls.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::{EventKind, HealthState, InstanceStatus, StateName, Transition};

/// The states exported as `sv_lite_instance_state{state=...}`, one series each per instance.
pub const STATES: [StateName; 10] = [
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

/// What the metrics count, per instance and for config reloads.
///
/// An instance's counters live until [`Counters::forget`] (the driver calls it when a reload
/// removes the instance); if an instance of that name comes back it starts from zero, which
/// Prometheus reads as a counter reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    instances: HashMap<String, InstanceCounters>,
    /// Reloads attempted, failed ones included.
    pub reloads_total: u64,
    pub reload_failures_total: u64,
    pub last_reload_success: Option<SystemTime>,
}

/// One instance's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceCounters {
    /// It has entered STARTING at least once; every later entry is a restart.
    pub started: bool,
    pub restarts: u64,
    pub exits_expected: u64,
    pub exits_unexpected: u64,
    /// When it last entered RUNNING.
    pub started_at: Option<SystemTime>,
}

/// sv-lite's own process figures, the standard `process_*` metrics; `None` when unreadable.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    /// The soft limit; `None` when unlimited.
    pub max_fds: Option<f64>,
    /// Unix seconds.
    pub start_time_seconds: Option<f64>,
}

impl Counters {
    /// Counts one transition.
    ///
    /// An exit counts as unexpected when the transition is an unexpected exit, FATAL, or an
    /// unhealthy kill; any other transition carrying an exit (EXITED, STOPPED, a restart of an
    /// `autorestart: always` program ...) counts as expected.
    pub fn observe(&mut self, event: &Transition) {
        let counters = self.instances.entry(event.instance.clone()).or_default();
        if event.exit.is_some() {
            match event.kind {
                EventKind::UnexpectedExit | EventKind::Fatal | EventKind::Unhealthy => counters.exits_unexpected += 1,
                _ => counters.exits_expected += 1,
            }
        }
        match event.to {
            StateName::Starting if counters.started => counters.restarts += 1,
            StateName::Starting => counters.started = true,
            StateName::Running => counters.started_at = Some(event.time),
            _ => {}
        }
    }

    /// Counts one config reload (SIGHUP or `ctl reload`), `ok` when it was applied.
    pub fn reloaded(&mut self, ok: bool, when: SystemTime) {
        self.reloads_total += 1;
        if ok {
            self.last_reload_success = Some(when);
        } else {
            self.reload_failures_total += 1;
        }
    }

    /// Drops an instance's counters (it is gone from the config).
    pub fn forget(&mut self, instance: &str) {
        self.instances.remove(instance);
    }

    #[must_use]
    pub fn instance(&self, instance: &str) -> Option<&InstanceCounters> {
        self.instances.get(instance)
    }
}

/// Renders the exposition text: one family after another, each with `# HELP` and `# TYPE`,
/// instances in the order of `rows` (rows that name no instance are skipped).
#[must_use]
pub fn render(rows: &[InstanceStatus], counters: &Counters, process: &ProcessStats) -> String {
    const NONE: InstanceCounters =
        InstanceCounters { started: false, restarts: 0, exits_expected: 0, exits_unexpected: 0, started_at: None };
    let rows: Vec<(String, &InstanceStatus, &InstanceCounters)> = rows
        .iter()
        .filter(|row| row.error.is_none())
        .map(|row| {
            let program = row.name.rsplit_once(':').map_or(row.name.as_str(), |(program, _)| program);
            let labels = format!("program=\"{}\",instance=\"{}\"", escape(program), escape(&row.name));
            (labels, row, counters.instances.get(&row.name).unwrap_or(&NONE))
        })
        .collect();
    let mut out = String::with_capacity(512 + rows.len() * 1536);

    header(&mut out, "sv_lite_instance_state", "gauge", "1 for the state the instance is in, 0 for the others.");
    for (labels, row, _) in &rows {
        for state in STATES {
            let extra = format!(",state=\"{state}\"");
            sample(&mut out, "sv_lite_instance_state", labels, &extra, f64::from(u8::from(row.state == state)));
        }
    }
    header(
        &mut out,
        "sv_lite_instance_exits_total",
        "counter",
        "Exits of the instance's process, by whether expected.",
    );
    for (labels, _, counted) in &rows {
        sample(&mut out, "sv_lite_instance_exits_total", labels, ",expected=\"true\"", counted.exits_expected as f64);
        sample(
            &mut out,
            "sv_lite_instance_exits_total",
            labels,
            ",expected=\"false\"",
            counted.exits_unexpected as f64,
        );
    }

    // One value per instance, or none (the series is left out for that instance).
    type Value = fn(&InstanceStatus, &InstanceCounters) -> Option<f64>;
    let per_instance: [(&str, &str, &str, Value); 6] = [
        ("sv_lite_instance_up", "gauge", "1 when the instance is RUNNING.", |row, _| {
            Some(f64::from(u8::from(row.state == StateName::Running)))
        }),
        (
            "sv_lite_instance_ready",
            "gauge",
            "1 when the instance is RUNNING or a scheduled program between runs.",
            |row, _| Some(f64::from(u8::from(matches!(row.state, StateName::Running | StateName::Scheduled)))),
        ),
        ("sv_lite_instance_restarts_total", "counter", "Starts of the instance after its first.", |_, counted| {
            Some(counted.restarts as f64)
        }),
        (
            "sv_lite_instance_start_time_seconds",
            "gauge",
            "Unix time the current run became RUNNING.",
            |row, counted| counted.started_at.filter(|_| row.state == StateName::Running).map(unix_seconds),
        ),
        ("sv_lite_instance_health_check_ok", "gauge", "1 when the instance's health check is HEALTHY.", |row, _| {
            row.health.as_ref().map(|health| f64::from(u8::from(health.state == HealthState::Healthy)))
        }),
        (
            "sv_lite_instance_health_check_latency_seconds",
            "gauge",
            "Latency of the last health check that answered.",
            |row, _| row.health.as_ref()?.last.as_deref().and_then(latency_seconds),
        ),
    ];
    for (name, kind, help, value) in per_instance {
        header(&mut out, name, kind, help);
        for (labels, row, counted) in &rows {
            if let Some(value) = value(row, counted) {
                sample(&mut out, name, labels, "", value);
            }
        }
    }

    let reloads = [
        ("sv_lite_config_reloads_total", "counter", "Config reloads attempted.", Some(counters.reloads_total as f64)),
        (
            "sv_lite_config_reload_failures_total",
            "counter",
            "Config reloads that failed.",
            Some(counters.reload_failures_total as f64),
        ),
        (
            "sv_lite_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful config reload.",
            counters.last_reload_success.map(unix_seconds),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            process.cpu_seconds,
        ),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", process.resident_bytes),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", process.virtual_bytes),
        ("process_open_fds", "gauge", "Number of open file descriptors.", process.open_fds),
        ("process_max_fds", "gauge", "Maximum number of open file descriptors.", process.max_fds),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            process.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in reloads {
        if let Some(value) = value {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
    out
}

/// Reads sv-lite's own figures from `/proc/self` (stat, status, fd, limits, auxv) and
/// `/proc/stat`. Clock ticks come from the auxiliary vector (`AT_CLKTCK`), 100 if it is
/// unreadable, since `sysconf` would need `unsafe` outside `sys.rs`.
#[must_use]
pub fn read_process_stats() -> ProcessStats {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis, from field 3 (state) on.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |number: usize| fields.get(number - 3).and_then(|text| text.parse::<f64>().ok());
    let ticks = clock_ticks();
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> Option<f64> {
        let value = status.lines().find_map(|line| line.strip_prefix(key))?;
        Some(value.trim().strip_suffix("kB")?.trim().parse::<f64>().ok()? * 1024.0)
    };
    let boot_time = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| text.lines().find_map(|line| line.strip_prefix("btime "))?.trim().parse::<f64>().ok());
    let max_fds = fs::read_to_string("/proc/self/limits").ok().and_then(|text| {
        text.lines().find_map(|line| line.strip_prefix("Max open files"))?.split_whitespace().next()?.parse().ok()
    });
    ProcessStats {
        cpu_seconds: field(14).zip(field(15)).map(|(user, system)| (user + system) / ticks),
        resident_bytes: kib("VmRSS:"),
        virtual_bytes: kib("VmSize:"),
        // Less the descriptor the listing itself holds open.
        open_fds: fs::read_dir("/proc/self/fd").ok().map(|entries| entries.count().saturating_sub(1) as f64),
        max_fds,
        start_time_seconds: boot_time.zip(field(22)).map(|(boot, start)| boot + start / ticks),
    }
}

/// `# HELP` and `# TYPE` of one family (help texts are ours: nothing to escape).
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// One labelled sample: `labels` is the instance's, `extra` starts with a comma or is empty.
fn sample(out: &mut String, name: &str, labels: &str, extra: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}{extra}}} {value}");
}

/// A label value as the text format quotes it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64())
}

/// The latency in a health check's last result (`HTTP 200 in 3ms`, `exit 1 in 1.5s`): what
/// follows the last ` in `, in milliseconds or seconds as `human_duration` writes them below a
/// minute. `None` for results without one (`timed out after 1s`, `connection refused`).
fn latency_seconds(last: &str) -> Option<f64> {
    let took = last.rsplit_once(" in ")?.1;
    match took.strip_suffix("ms") {
        Some(millis) => Some(millis.parse::<f64>().ok()? / 1000.0),
        None => took.strip_suffix('s')?.parse().ok(),
    }
}

/// `AT_CLKTCK` from `/proc/self/auxv` (pairs of native words), else the usual 100.
fn clock_ticks() -> f64 {
    const AT_CLKTCK: usize = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let auxv = fs::read("/proc/self/auxv").unwrap_or_default();
    let word = |bytes: &[u8]| bytes.try_into().map_or(0, usize::from_ne_bytes);
    auxv.chunks_exact(2 * WORD)
        .find(|pair| word(&pair[..WORD]) == AT_CLKTCK)
        .map_or(100.0, |pair| word(&pair[WORD..]) as f64)
        .max(1.0)
}
