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

    /// Forgets every instance not in `rows` (removed by a reload), so a name that comes back
    /// starts from zero instead of counting its first start as a restart.
    pub fn keep_only(&mut self, rows: &[InstanceStatus]) {
        let live: std::collections::HashSet<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        let gone: Vec<String> = self.instances.keys().filter(|name| !live.contains(name.as_str())).cloned().collect();
        for name in gone {
            self.forget(&name);
        }
    }

    #[must_use]
    pub fn instance(&self, instance: &str) -> Option<&InstanceCounters> {
        self.instances.get(instance)
    }
}

/// Renders the exposition text: one family after another, each with `# HELP` and `# TYPE`,
/// instances in the order of `rows` (rows that name no instance are skipped).
#[must_use]
pub fn render(
    rows: &[InstanceStatus],
    counters: &Counters,
    process: &ProcessStats,
    usage: &std::collections::HashMap<crate::core::Pid, super::usage::Usage>,
) -> String {
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
        for state in StateName::ALL {
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
            "1 when the instance counts as ready for /readyz: RUNNING, a completed one-shot, or a scheduled program between runs.",
            |row, _| {
                let completed = row.state == StateName::Exited && row.detail.as_deref() == Some("expected");
                Some(f64::from(u8::from(matches!(row.state, StateName::Running | StateName::Scheduled) || completed)))
            },
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
            |row, _| Some(row.health.as_ref()?.latency?.as_secs_f64()),
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

    // The whole process tree of each running instance (daemon::usage).
    type TreeValue = fn(&super::usage::Usage) -> f64;
    let trees: [(&str, &str, &str, TreeValue); 2] = [
        (
            "sv_lite_instance_cpu_seconds_total",
            "counter",
            "CPU time of the instance's process tree (its process and all descendants).",
            |usage| usage.cpu_seconds,
        ),
        (
            "sv_lite_instance_resident_memory_bytes",
            "gauge",
            "Resident memory of the instance's process tree.",
            |usage| usage.rss_bytes as f64,
        ),
    ];
    for (name, kind, help, value) in trees {
        header(&mut out, name, kind, help);
        for (labels, row, _) in &rows {
            if let Some(tree) = row.pid.and_then(|pid| usage.get(&pid)) {
                sample(&mut out, name, labels, "", value(tree));
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
    let ticks = crate::sys::clock_ticks() as f64;
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use super::*;
    use crate::core::{ExitStatus, HealthStatus};

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn transition(
        instance: &str,
        from: StateName,
        to: StateName,
        kind: EventKind,
        exit: Option<ExitStatus>,
    ) -> Transition {
        Transition {
            seq: 1,
            time: at(1_700_000_000),
            instance: instance.to_string(),
            program: instance.split(':').next().unwrap_or_default().to_string(),
            from,
            to,
            kind,
            reason: String::new(),
            level: log::Level::Info,
            pid: None,
            exit,
            health: None,
        }
    }

    fn row(name: &str, state: StateName, health: Option<HealthStatus>) -> InstanceStatus {
        InstanceStatus {
            name: name.to_string(),
            state,
            pid: None,
            since: Duration::ZERO,
            last_exit: None,
            detail: None,
            error: None,
            service: None,
            held: None,
            output_stalled: false,
            ports: Vec::new(),
            health,
            notify: None,
            schedule: None,
        }
    }

    /// web:0 started, crashed, restarted and is RUNNING and HEALTHY; worker:0 exited cleanly
    /// once and is in BACKOFF; one reload failed, one succeeded.
    fn fixture() -> (Vec<InstanceStatus>, Counters, ProcessStats) {
        use StateName::*;
        let mut counters = Counters::default();
        for event in [
            transition("web:0", Stopped, Starting, EventKind::Starting, None),
            transition("web:0", Starting, Running, EventKind::Running, None),
            transition("web:0", Running, Backoff, EventKind::UnexpectedExit, Some(ExitStatus::Exited(1))),
            transition("web:0", Backoff, Starting, EventKind::Starting, None),
            Transition { time: at(1_700_000_100), ..transition("web:0", Starting, Running, EventKind::Running, None) },
            transition("worker:0", Stopped, Starting, EventKind::Starting, None),
            transition("worker:0", Starting, Backoff, EventKind::Backoff, Some(ExitStatus::Exited(0))),
        ] {
            counters.observe(&event);
        }
        counters.reloaded(false, at(1_700_000_050));
        counters.reloaded(true, at(1_700_000_060));
        let health = HealthStatus {
            state: HealthState::Healthy,
            failures: 0,
            last: Some("HTTP 200 in 3ms".to_string()),
            latency: Some(Duration::from_millis(3)),
        };
        let mut web = row("web:0", Running, Some(health));
        web.pid = Some(4242);
        let rows = vec![web, row("worker:0", Backoff, None)];
        let process = ProcessStats {
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4_194_304.0),
            virtual_bytes: Some(8_388_608.0),
            open_fds: Some(9.0),
            max_fds: Some(1024.0),
            start_time_seconds: Some(1_699_999_990.25),
        };
        (rows, counters, process)
    }

    #[test]
    fn renders_the_fixture_exactly() {
        let (rows, counters, process) = fixture();
        let tree = super::super::usage::Usage { cpu_seconds: 2.5, cpu_percent: None, rss_bytes: 1_048_576 };
        let text = render(&rows, &counters, &process, &std::collections::HashMap::from([(4242, tree)]));
        assert_eq!(text, EXPECTED);
    }

    #[test]
    fn label_values_are_escaped() {
        let rows = [row("a\\b\"c\nd:0", StateName::Running, None)];
        let text = render(&rows, &Counters::default(), &ProcessStats::default(), &std::collections::HashMap::new());
        assert!(
            text.contains("sv_lite_instance_up{program=\"a\\\\b\\\"c\\nd\",instance=\"a\\\\b\\\"c\\nd:0\"} 1\n"),
            "{text}"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn counters_of_instances_a_reload_removed_are_forgotten() {
        let (_, mut counters, _) = fixture();
        counters.keep_only(&[row("web:0", StateName::Running, None)]);
        assert!(counters.instance("web:0").is_some());
        assert!(counters.instance("worker:0").is_none(), "worker:0 is gone from status");
    }

    #[test]
    fn counters_follow_transitions() {
        use StateName::*;
        let (_, mut counters, _) = fixture();
        let web = *counters.instance("web:0").expect("web:0 was observed");
        let expected = InstanceCounters {
            started: true,
            restarts: 1,
            exits_expected: 0,
            exits_unexpected: 1,
            started_at: Some(at(1_700_000_100)),
        };
        assert_eq!(web, expected);
        let worker = counters.instance("worker:0").expect("worker:0 was observed");
        assert_eq!((worker.restarts, worker.exits_expected, worker.exits_unexpected), (0, 1, 0));

        // A stop is an expected exit, FATAL and an unhealthy kill are not; each new start after
        // the first is a restart.
        for event in [
            transition("web:0", Running, Stopping, EventKind::Stopping, None),
            transition(
                "web:0",
                Stopping,
                Stopped,
                EventKind::Stopped,
                Some(ExitStatus::Signaled { signal: 15, core_dumped: false }),
            ),
            transition("web:0", Stopped, Starting, EventKind::Starting, None),
            transition("web:0", Starting, Fatal, EventKind::Fatal, Some(ExitStatus::Exited(2))),
            transition("web:0", Fatal, Starting, EventKind::Starting, None),
            transition("web:0", Starting, Running, EventKind::Running, None),
            transition("web:0", Running, Backoff, EventKind::Unhealthy, Some(ExitStatus::Exited(143))),
        ] {
            counters.observe(&event);
        }
        let web = counters.instance("web:0").expect("web:0 was observed");
        assert_eq!((web.restarts, web.exits_expected, web.exits_unexpected), (3, 1, 3));
        assert_eq!((counters.reloads_total, counters.reload_failures_total), (2, 1));
        assert_eq!(counters.last_reload_success, Some(at(1_700_000_060)));

        counters.forget("web:0");
        assert_eq!(counters.instance("web:0"), None);
        let text = render(
            &[row("web:0", Starting, None)],
            &counters,
            &ProcessStats::default(),
            &std::collections::HashMap::new(),
        );
        assert!(text.contains("sv_lite_instance_restarts_total{program=\"web\",instance=\"web:0\"} 0\n"), "{text}");
    }

    #[test]
    fn process_stats_are_read_from_proc() {
        let stats = read_process_stats();
        let now = unix_seconds(SystemTime::now());
        let start = stats.start_time_seconds.expect("start time from /proc/self/stat and /proc/stat");
        assert!(start <= now + 1.0 && start > now - 86_400.0, "start {start}, now {now}");
        assert!(stats.resident_bytes.expect("VmRSS") > 0.0);
        assert!(stats.virtual_bytes.expect("VmSize") >= stats.resident_bytes.unwrap_or_default());
        assert!(stats.open_fds.expect("/proc/self/fd") >= 3.0);
        assert!(stats.cpu_seconds.expect("utime and stime") >= 0.0);
        assert_eq!(crate::sys::clock_ticks() as f64, 100.0, "AT_CLKTCK is 100 on every Linux we run on");
    }

    /// promtool (Debian's `prometheus` package, installed by .ci/run) accepts the fixture, with
    /// a name that needs escaping, and with this process's real figures.
    #[test]
    fn promtool_accepts_the_rendering() {
        let (mut rows, counters, _) = fixture();
        rows.push(row("a\\b\"c\nd:0", StateName::Fatal, None));
        for process in [fixture().2, read_process_stats()] {
            let path = std::env::temp_dir().join(format!("sv-lite-metrics-{}.prom", std::process::id()));
            std::fs::File::create(&path)
                .and_then(|mut file| {
                    file.write_all(render(&rows, &counters, &process, &std::collections::HashMap::new()).as_bytes())
                })
                .expect("write the rendering to a temp file");
            let output = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::from(std::fs::File::open(&path).expect("reopen the rendering")))
                .output()
                .unwrap_or_else(|err| panic!("promtool: {err}; install it with .ci/run (Debian package prometheus)"));
            let _ = std::fs::remove_file(&path);
            assert!(
                output.status.success(),
                "promtool check metrics: {}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    const EXPECTED: &str = r#"# HELP sv_lite_instance_state 1 for the state the instance is in, 0 for the others.
# TYPE sv_lite_instance_state gauge
sv_lite_instance_state{program="web",instance="web:0",state="STOPPED"} 0
sv_lite_instance_state{program="web",instance="web:0",state="WAITING"} 0
sv_lite_instance_state{program="web",instance="web:0",state="STARTING"} 0
sv_lite_instance_state{program="web",instance="web:0",state="RUNNING"} 1
sv_lite_instance_state{program="web",instance="web:0",state="BACKOFF"} 0
sv_lite_instance_state{program="web",instance="web:0",state="STOPPING"} 0
sv_lite_instance_state{program="web",instance="web:0",state="EXITED"} 0
sv_lite_instance_state{program="web",instance="web:0",state="FATAL"} 0
sv_lite_instance_state{program="web",instance="web:0",state="PAUSED"} 0
sv_lite_instance_state{program="web",instance="web:0",state="SCHEDULED"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="STOPPED"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="WAITING"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="STARTING"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="RUNNING"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="BACKOFF"} 1
sv_lite_instance_state{program="worker",instance="worker:0",state="STOPPING"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="EXITED"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="FATAL"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="PAUSED"} 0
sv_lite_instance_state{program="worker",instance="worker:0",state="SCHEDULED"} 0
# HELP sv_lite_instance_exits_total Exits of the instance's process, by whether expected.
# TYPE sv_lite_instance_exits_total counter
sv_lite_instance_exits_total{program="web",instance="web:0",expected="true"} 0
sv_lite_instance_exits_total{program="web",instance="web:0",expected="false"} 1
sv_lite_instance_exits_total{program="worker",instance="worker:0",expected="true"} 1
sv_lite_instance_exits_total{program="worker",instance="worker:0",expected="false"} 0
# HELP sv_lite_instance_up 1 when the instance is RUNNING.
# TYPE sv_lite_instance_up gauge
sv_lite_instance_up{program="web",instance="web:0"} 1
sv_lite_instance_up{program="worker",instance="worker:0"} 0
# HELP sv_lite_instance_ready 1 when the instance counts as ready for /readyz: RUNNING, a completed one-shot, or a scheduled program between runs.
# TYPE sv_lite_instance_ready gauge
sv_lite_instance_ready{program="web",instance="web:0"} 1
sv_lite_instance_ready{program="worker",instance="worker:0"} 0
# HELP sv_lite_instance_restarts_total Starts of the instance after its first.
# TYPE sv_lite_instance_restarts_total counter
sv_lite_instance_restarts_total{program="web",instance="web:0"} 1
sv_lite_instance_restarts_total{program="worker",instance="worker:0"} 0
# HELP sv_lite_instance_start_time_seconds Unix time the current run became RUNNING.
# TYPE sv_lite_instance_start_time_seconds gauge
sv_lite_instance_start_time_seconds{program="web",instance="web:0"} 1700000100
# HELP sv_lite_instance_health_check_ok 1 when the instance's health check is HEALTHY.
# TYPE sv_lite_instance_health_check_ok gauge
sv_lite_instance_health_check_ok{program="web",instance="web:0"} 1
# HELP sv_lite_instance_health_check_latency_seconds Latency of the last health check that answered.
# TYPE sv_lite_instance_health_check_latency_seconds gauge
sv_lite_instance_health_check_latency_seconds{program="web",instance="web:0"} 0.003
# HELP sv_lite_instance_cpu_seconds_total CPU time of the instance's process tree (its process and all descendants).
# TYPE sv_lite_instance_cpu_seconds_total counter
sv_lite_instance_cpu_seconds_total{program="web",instance="web:0"} 2.5
# HELP sv_lite_instance_resident_memory_bytes Resident memory of the instance's process tree.
# TYPE sv_lite_instance_resident_memory_bytes gauge
sv_lite_instance_resident_memory_bytes{program="web",instance="web:0"} 1048576
# HELP sv_lite_config_reloads_total Config reloads attempted.
# TYPE sv_lite_config_reloads_total counter
sv_lite_config_reloads_total 2
# HELP sv_lite_config_reload_failures_total Config reloads that failed.
# TYPE sv_lite_config_reload_failures_total counter
sv_lite_config_reload_failures_total 1
# HELP sv_lite_config_last_reload_success_timestamp_seconds Unix time of the last successful config reload.
# TYPE sv_lite_config_last_reload_success_timestamp_seconds gauge
sv_lite_config_last_reload_success_timestamp_seconds 1700000060
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4194304
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 8388608
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 9
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1024
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1699999990.25
"#;
}
