//! `make bench`: sv-lite's speed and footprint against baselines measured in the same run.
//!
//! Usage: `bench PATH_TO_SV_LITE [SECTION]` (the static release binary; `make bench` passes it).
//! SECTION, or `BENCH_ONLY=scale,spawn` for several, runs only those parts and prints their
//! rows without touching `docs/BENCHMARKS.md`: `restart`, `spawn`, `ctl`, `memory`, `scale`,
//! `log` (all four log-capture variants), `forward` (only `writer | cat > file` and forwarded
//! output), `shutdown`, `binary`.
//! Environment: `BENCH_LOG_MIB` (default 1024) sets the size of the log-capture runs;
//! `BENCH_NO_CGROUPS=1` starts every daemon with `--no-cgroups` (the 10,000-instance section
//! measures both ways anyway).
//!
//! Starts the real daemon with generated configs in a temporary directory, measures from
//! outside (CLOCK_MONOTONIC stamps written by the children themselves, /proc, the control
//! socket), prints one markdown table and rewrites the part of `docs/BENCHMARKS.md` between
//! `<!-- bench:begin -->` and `<!-- bench:end -->`. No assertions: it measures and reports.
//! The helpers `stamp`, `respawner` and `writer` (examples/*.rs) are built on the first run.
//!
//! Every process started here is ended here: the daemon by SIGTERM (then SIGKILL), everything
//! else by SIGKILL, and the benchmark is a child subreaper so that orphans come back to it
//! and are found and reaped. The daemon and the respawner get SIGTERM if the benchmark dies.
#![allow(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

type Res<T> = Result<T, String>;

/// Kills of the restart-latency measure, per supervisor.
const RESTARTS: usize = 20;
/// The stability window written into the restart config, and how long each instance is left
/// running before it is killed (past the window, so no crash-loop backoff applies).
const STABILITY_WINDOW_MS: u64 = 500;
const RUN_BEFORE_KILL_MS: u64 = 700;
/// Runs of the spawn-1000 measure, per supervisor.
const SPAWN_RUNS: usize = 3;
const SPAWN_COUNT: usize = 1000;
/// Whole-process ctl runs, and socket-only round trips.
const CTL_RUNS: usize = 200;
const SOCKET_RUNS: usize = 1000;
const CTL_PROGRAMS: usize = 100;
const IDLE_SECONDS: u64 = 10;
const MEMORY_SIZES: [usize; 4] = [1, 100, 1000, 10_000];
const MEMORY_RUNS_SMALL: usize = 3;
/// The 10,000-instance measures: runs per mode (and of the spawner), and the ctl runs in
/// each run of the default mode.
const SCALE_COUNT: usize = 10_000;
const SCALE_RUNS: usize = 3;
const SCALE_CTL_RUNS: usize = 100;
const SCALE_JSON_RUNS: usize = 10;
const LOG_RUNS: usize = 3;
/// A log-capture variant stops repeating once its runs have taken this long.
const LOG_VARIANT_BUDGET: Duration = Duration::from_secs(60);
const SHUTDOWN_RUNS: usize = 5;
const SHUTDOWN_PROGRAMS: usize = 100;
/// Bytes per line written by `stamp`.
const STAMP_LINE: usize = 32;
/// Bytes per line written by `writer`.
const WRITER_LINE: u64 = 128;
const MIB: u64 = 1 << 20;

const BEGIN_MARKER: &str = "<!-- bench:begin -->";
const END_MARKER: &str = "<!-- bench:end -->";

// ---------------------------------------------------------------------------------------------
// Small system helpers.

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid out-pointer for the duration of the call; CLOCK_MONOTONIC is
    // always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fn send_signal(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: kill takes plain integers; pid > 0 so it never targets a group or everyone.
        unsafe { libc::kill(pid, signal) };
    }
}

fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integer arguments only.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if result != 0 {
        progress(&format!("warning: cannot become a child subreaper: {}", std::io::Error::last_os_error()));
    }
}

/// Asks the kernel to send `signal` to the child when the benchmark dies.
fn die_with_parent(command: &mut Command, signal: i32) {
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0);
            Ok(())
        });
    }
}

/// waitpid(pid, WNOHANG): `Ok(Some(raw status))` once reaped, `Ok(None)` while it runs.
fn waitpid_nohang(pid: i32) -> std::io::Result<Option<i32>> {
    let mut raw: libc::c_int = 0;
    // SAFETY: `raw` is a valid out-pointer to a c_int on our stack; WNOHANG never blocks.
    let result = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
    match result {
        0 => Ok(None),
        r if r > 0 => Ok(Some(raw)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// A pidfd: becomes readable when the process exits, so a wait can have a timeout without
/// polling (which would blur the timing of short processes).
struct PidFd(i32);

impl PidFd {
    fn open(pid: i32) -> Option<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then_some(PidFd(fd as i32))
    }

    fn wait_readable(&self, timeout: Duration) {
        let mut poll_fd = libc::pollfd { fd: self.0, events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd on our stack, for the duration of the call.
        unsafe { libc::poll(&mut poll_fd, 1, ms) };
    }
}

impl Drop for PidFd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor and close it once.
        unsafe { libc::close(self.0) };
    }
}

/// Reaps any exited child (our own or an adopted orphan): its pid and raw status.
fn reap_any() -> Option<(i32, i32)> {
    let mut raw: libc::c_int = 0;
    // SAFETY: as in waitpid_nohang.
    let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
    (pid > 0).then_some((pid, raw))
}

fn describe_status(raw: i32) -> String {
    if raw < 0 {
        "exited (status unknown)".to_string()
    } else if libc::WIFEXITED(raw) {
        format!("exit status {}", libc::WEXITSTATUS(raw))
    } else if libc::WIFSIGNALED(raw) {
        format!("killed by signal {}", libc::WTERMSIG(raw))
    } else {
        format!("raw status {raw}")
    }
}

/// (pid, ppid, state) of every process, from /proc/PID/stat.
fn scan_processes() -> Vec<(i32, i32, char)> {
    let mut processes = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else { return processes };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        if let Some((state, ppid)) = stat_state(pid) {
            processes.push((pid, ppid, state));
        }
    }
    processes
}

/// State letter and ppid of `pid`, or None when it no longer exists.
fn stat_state(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid ...`; comm may hold spaces and parentheses, so cut at the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a live process (a zombie has exited and counts as gone).
fn process_alive(pid: i32) -> bool {
    matches!(stat_state(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// A `/proc/PID/status` field in its first number (kB for memory fields).
fn status_field(pid: i32, field: &str) -> Option<u64> {
    proc_field(&format!("/proc/{pid}/status"), field)
}

fn proc_field(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// Voluntary plus involuntary context switches over all threads of `pid`.
fn context_switches(pid: i32) -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let path = task.path().join("status");
        let path = path.to_str()?;
        total += proc_field(path, "voluntary_ctxt_switches")? + proc_field(path, "nonvoluntary_ctxt_switches")?;
    }
    Some(total)
}

/// A double-quoted YAML scalar (JSON strings are valid YAML).
fn yaml_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn sleep_until(deadline_ns: u64) {
    let now = monotonic_ns();
    if deadline_ns > now {
        std::thread::sleep(Duration::from_nanos(deadline_ns - now));
    }
}

/// (state, pid, ms in state) of one instance, asked over the control socket.
fn instance_state(socket: &Path, name: &str) -> Res<(String, i32, u64)> {
    let mut stream = UnixStream::connect(socket).map_err(|error| format!("connect: {error}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("{{\"op\":\"status\",\"targets\":[{}]}}\n", yaml_str(name));
    stream.write_all(request.as_bytes()).map_err(|error| format!("write: {error}"))?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(|error| format!("read: {error}"))?;
    let reply: Value = serde_json::from_str(&reply).map_err(|error| format!("reply: {error}"))?;
    let row = &reply["status"][0];
    let state = row["state"].as_str().ok_or_else(|| format!("no state in {reply}"))?;
    Ok((state.to_string(), row["pid"].as_i64().unwrap_or(0) as i32, row["since_ms"].as_u64().unwrap_or(0)))
}

/// Reads `stamp` lines: (pid, CLOCK_MONOTONIC ns), complete lines only.
fn read_stamps(path: &Path) -> Vec<(i32, u64)> {
    let Ok(bytes) = fs::read(path) else { return Vec::new() };
    bytes
        .chunks_exact(STAMP_LINE)
        .filter_map(|line| {
            let text = std::str::from_utf8(line).ok()?;
            let mut words = text.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting.

#[derive(Clone, Debug, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, value: f64) {
        self.0.push(value);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut values = self.0.clone();
        values.sort_by(f64::total_cmp);
        values
    }

    fn median(&self) -> Option<f64> {
        let values = self.sorted();
        let n = values.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(values[n / 2]),
            _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
        }
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Option<f64> {
        let values = self.sorted();
        if values.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
        values.get(rank - 1).copied()
    }

    fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }
}

#[derive(Clone, Copy)]
enum Unit {
    /// Values are nanoseconds.
    Time,
    /// Values are MB/s.
    Rate,
    /// Values are KiB.
    Kib,
}

fn time_unit(ns: f64) -> (&'static str, f64) {
    if ns < 1e6 {
        ("µs", 1e3)
    } else if ns < 1e9 {
        ("ms", 1e6)
    } else {
        ("s", 1e9)
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn fmt_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Time => {
            let (name, scale) = time_unit(value);
            format!("{} {name}", number(value / scale))
        }
        Unit::Rate => format!("{value:.0} MB/s"),
        Unit::Kib => format!("{:.2} MiB", value / 1024.0),
    }
}

/// `median (min–max, n=N)`, in one unit.
fn fmt_samples(samples: &Samples, unit: Unit) -> String {
    let (Some(median), Some(min), Some(max)) = (samples.median(), samples.min(), samples.max()) else {
        return "n/a".to_string();
    };
    let n = samples.0.len();
    if n == 1 {
        return format!("{} (n=1)", fmt_value(median, unit));
    }
    match unit {
        Unit::Time => {
            let (name, scale) = time_unit(median);
            format!("{} {name} ({}–{}, n={n})", number(median / scale), number(min / scale), number(max / scale))
        }
        Unit::Rate => format!("{median:.0} MB/s ({min:.0}–{max:.0}, n={n})"),
        Unit::Kib => format!("{:.2} MiB ({:.2}–{:.2}, n={n})", median / 1024.0, min / 1024.0, max / 1024.0),
    }
}

fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => Some(ours / theirs),
        _ => None,
    }
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "n/a".to_string(), |ratio| format!("{ratio:.2}×"))
}

fn verdict(met: Option<bool>) -> String {
    match met {
        Some(true) => "yes".to_string(),
        Some(false) => "**no**".to_string(),
        None => "n/a".to_string(),
    }
}

struct Row {
    metric: String,
    ours: String,
    baseline: String,
    ratio: String,
    target: String,
    met: String,
}

impl Row {
    fn new(metric: &str, ours: String, baseline: String, ratio: String, target: &str, met: Option<bool>) -> Row {
        Row { metric: metric.to_string(), ours, baseline, ratio, target: target.to_string(), met: verdict(met) }
    }

    fn failed(metric: &str, error: &str, target: &str) -> Row {
        Row::new(
            metric,
            format!("**failed**: {}", error.replace('\n', " ")),
            "—".into(),
            "—".into(),
            target,
            Some(false),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

/// A running daemon.
struct Daemon {
    pid: i32,
    socket: PathBuf,
    log: PathBuf,
    /// CLOCK_MONOTONIC just before it was spawned.
    spawned_at: u64,
}

struct Bench {
    sv: PathBuf,
    stamp: PathBuf,
    respawner: PathBuf,
    writer: PathBuf,
    dir: PathBuf,
    /// Where the log-capture outputs go (tmpfs when there is room, for steadier numbers).
    log_dir: PathBuf,
    /// RLIMIT_NOFILE for the next daemon, when set.
    daemon_nofile: Option<u64>,
    /// `BENCH_NO_CGROUPS`: every daemon but those of the 10,000-instance section (which
    /// measures both ways) runs with `--no-cgroups`.
    no_cgroups: bool,
    /// Raw statuses of processes reaped while looking for something else.
    reaped: HashMap<i32, i32>,
    /// Problems seen in the daemon, for the notes under the table.
    notes: Vec<String>,
    started: Instant,
}

impl Bench {
    fn progress(&self, message: &str) {
        let elapsed = self.started.elapsed().as_secs();
        progress(&format!("[{}:{:02}] {message}", elapsed / 60, elapsed % 60));
    }

    fn note(&mut self, note: String) {
        self.progress(&format!("NOTE: {note}"));
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    // ---- processes ----

    /// Spawns a process we track by pid (never through `Child::wait`).
    fn spawn(&mut self, command: &mut Command) -> Res<i32> {
        let child = command.spawn().map_err(|error| format!("spawn {:?}: {error}", command.get_program()))?;
        let pid = child.id() as i32;
        self.reaped.remove(&pid);
        Ok(pid)
    }

    /// `Some(raw status)` once `pid` has exited and been reaped (by us, now or earlier).
    fn try_wait(&mut self, pid: i32) -> Option<i32> {
        if let Some(&status) = self.reaped.get(&pid) {
            return Some(status);
        }
        match waitpid_nohang(pid) {
            Ok(None) => None,
            Ok(Some(status)) => {
                self.reaped.insert(pid, status);
                Some(status)
            }
            Err(_) => Some(-1),
        }
    }

    /// Waits for `pid` to exit, at most `timeout`; woken by a pidfd at the moment it exits.
    fn wait_exit(&mut self, pid: i32, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let pidfd = PidFd::open(pid);
        loop {
            if let Some(status) = self.try_wait(pid) {
                return Some(status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match &pidfd {
                Some(pidfd) => pidfd.wait_readable(left),
                None => std::thread::sleep(left.min(Duration::from_micros(500))),
            }
        }
    }

    fn reap_orphans(&mut self) {
        while let Some((pid, status)) = reap_any() {
            self.reaped.insert(pid, status);
        }
    }

    /// SIGKILLs every live descendant until none is left; returns how many were alive at first.
    fn kill_descendants(&mut self) -> usize {
        let me = std::process::id() as i32;
        let mut first = None;
        for _ in 0..200 {
            let processes = scan_processes();
            let mut children: HashMap<i32, Vec<(i32, char)>> = HashMap::new();
            for &(pid, ppid, state) in &processes {
                children.entry(ppid).or_default().push((pid, state));
            }
            let mut descendants = Vec::new();
            let mut queue = vec![me];
            while let Some(parent) = queue.pop() {
                for &(pid, state) in children.get(&parent).map(Vec::as_slice).unwrap_or_default() {
                    descendants.push((pid, state));
                    queue.push(pid);
                }
            }
            let live: Vec<i32> = descendants.iter().filter(|(_, state)| *state != 'Z').map(|(pid, _)| *pid).collect();
            first.get_or_insert(live.len());
            for &pid in &live {
                send_signal(pid, libc::SIGKILL);
            }
            self.reap_orphans();
            if descendants.is_empty() {
                break;
            }
            sleep_ms(10);
        }
        first.unwrap_or(0)
    }

    fn log_tail(path: &Path) -> String {
        let text = fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
        if tail.is_empty() {
            "(no output)".to_string()
        } else {
            tail
        }
    }

    /// Fails when the daemon has exited.
    fn check_daemon(&mut self, daemon: &Daemon) -> Res<()> {
        match self.try_wait(daemon.pid) {
            None => Ok(()),
            Some(status) => Err(format!(
                "the daemon exited unexpectedly ({}); its stderr ends: {}",
                describe_status(status),
                Bench::log_tail(&daemon.log)
            )),
        }
    }

    // ---- the daemon ----

    fn config(&self, name: &str, programs: &str) -> (PathBuf, String) {
        let socket = self.dir.join(format!("{name}.sock"));
        let text = format!("socket: {}\nprograms:\n{programs}", yaml_str(&path_str(&socket)));
        (socket, text)
    }

    fn program(name: &str, argv: &[String], extra: &[&str]) -> String {
        let cmd: Vec<String> = argv.iter().map(|word| yaml_str(word)).collect();
        let mut text = format!("  {name}:\n    cmd: [{}]\n", cmd.join(", "));
        for line in extra {
            text.push_str(&format!("    {line}\n"));
        }
        text
    }

    /// Writes the config and starts `sv-lite -c CONFIG`, stderr to `NAME.log`.
    /// With `BENCH_NO_CGROUPS` set, the daemon gets `--no-cgroups`.
    fn start_daemon(&mut self, name: &str, programs: &str, stdout: Stdio) -> Res<Daemon> {
        let flags: &[&str] = if self.no_cgroups { &["--no-cgroups"] } else { &[] };
        self.start_daemon_with(name, programs, stdout, flags)
    }

    /// `start_daemon`, with `flags` (such as `--no-cgroups`) before `-c CONFIG`.
    fn start_daemon_with(&mut self, name: &str, programs: &str, stdout: Stdio, flags: &[&str]) -> Res<Daemon> {
        let (socket, text) = self.config(name, programs);
        let config = self.dir.join(format!("{name}.yaml"));
        fs::write(&config, text).map_err(|error| format!("{}: {error}", config.display()))?;
        let log = self.dir.join(format!("{name}.log"));
        let stderr = File::create(&log).map_err(|error| format!("{}: {error}", log.display()))?;
        let _ = fs::remove_file(&socket);
        let mut command = Command::new(&self.sv);
        command
            .args(flags)
            .arg("-c")
            .arg(&config)
            .env_remove("SV_LITE_SOCKET")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        die_with_parent(&mut command, libc::SIGTERM);
        if let Some(nofile) = self.daemon_nofile {
            let limit = libc::rlimit { rlim_cur: nofile as libc::rlim_t, rlim_max: nofile as libc::rlim_t };
            // SAFETY: the closure runs between fork and exec and only calls setrlimit, which is
            // async-signal-safe, with a pointer to a value it owns.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let spawned_at = monotonic_ns();
        let pid = self.spawn(&mut command)?;
        Ok(Daemon { pid, socket, log, spawned_at })
    }

    /// SIGTERM, then SIGKILL after `timeout`; then kills whatever it left behind. Returns the
    /// time to exit.
    fn stop_daemon(&mut self, daemon: &Daemon, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        let already_gone = self.try_wait(daemon.pid).is_some();
        send_signal(daemon.pid, libc::SIGTERM);
        let exited = self.wait_exit(daemon.pid, timeout);
        let elapsed = start.elapsed();
        if exited.is_none() {
            self.note(format!(
                "the daemon did not exit within {} s of SIGTERM; killed it (stderr ends: {})",
                timeout.as_secs(),
                Bench::log_tail(&daemon.log)
            ));
            send_signal(daemon.pid, libc::SIGKILL);
            let _ = self.wait_exit(daemon.pid, Duration::from_secs(5));
        }
        let left = self.kill_descendants();
        if left > 0 && exited.is_some() && !already_gone {
            self.note(format!("{left} processes were still alive after the daemon exited on SIGTERM (killed them)"));
        }
        self.reaped.remove(&daemon.pid);
        exited.map(|_| elapsed)
    }

    /// `sv-lite ctl -s SOCKET status --json`, parsed.
    /// `sv-lite ctl -s SOCKET status --json`, parsed; killed after `timeout`.
    fn status(&mut self, daemon: &Daemon, timeout: Duration) -> Res<Vec<Value>> {
        let (out_path, err_path) = (self.dir.join("status.json"), self.dir.join("status.err"));
        let create = |path: &Path| File::create(path).map_err(|error| format!("{}: {error}", path.display()));
        let mut command = Command::new(&self.sv);
        command.arg("ctl").arg("-s").arg(&daemon.socket).args(["status", "--json"]);
        command.stdin(Stdio::null()).stdout(create(&out_path)?).stderr(create(&err_path)?);
        let pid = self.spawn(&mut command)?;
        let Some(status) = self.wait_exit(pid, timeout) else {
            send_signal(pid, libc::SIGKILL);
            let _ = self.wait_exit(pid, Duration::from_secs(5));
            self.reaped.remove(&pid);
            return Err(format!("`ctl status --json` got no answer within {:.0} s", timeout.as_secs_f64()));
        };
        self.reaped.remove(&pid);
        if status != 0 {
            let stderr = fs::read_to_string(&err_path).unwrap_or_default();
            return Err(format!("ctl status --json: {}: {}", describe_status(status), stderr.trim()));
        }
        let stdout = fs::read(&out_path).map_err(|error| format!("{}: {error}", out_path.display()))?;
        match serde_json::from_slice(&stdout) {
            Ok(Value::Array(rows)) => Ok(rows),
            Ok(_) => Err("ctl status --json: not a JSON array".to_string()),
            Err(error) => Err(format!("ctl status --json: {error}")),
        }
    }

    /// Polls `ctl status --json` until `count` instances are RUNNING. Fails when the daemon
    /// dies, when every instance is settled and some are not RUNNING, or when no progress is
    /// seen for `stall`.
    fn wait_running(&mut self, daemon: &Daemon, count: usize, stall: Duration) -> Res<Ready> {
        let interval = Duration::from_millis((10 + count as u64 / 50).min(250));
        let give_up = Instant::now() + Duration::from_secs(30).max(Duration::from_millis(15 * count as u64));
        let mut best = 0;
        let mut last_progress = Instant::now();
        let mut first_answer = None;
        loop {
            self.check_daemon(daemon)?;
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{best} of {count} RUNNING when the benchmark gave up waiting"));
            }
            let asked_at = monotonic_ns();
            match self.status(daemon, left) {
                Ok(rows) => {
                    if first_answer.is_none() {
                        first_answer = Some(Duration::from_nanos(monotonic_ns() - asked_at));
                    }
                    let running = rows.iter().filter(|row| row["state"] == "RUNNING").count();
                    let first_answer = first_answer.unwrap_or_default();
                    if running >= count {
                        let ramp = Duration::from_nanos(monotonic_ns() - daemon.spawned_at);
                        return Ok(Ready { ramp, rows, first_answer });
                    }
                    let settled = rows
                        .iter()
                        .filter(|row| matches!(row["state"].as_str(), Some("RUNNING" | "FATAL" | "EXITED")))
                        .count();
                    if running > best {
                        best = running;
                        last_progress = Instant::now();
                    } else if (settled >= count && rows.len() >= count) || last_progress.elapsed() > stall {
                        let elapsed = (monotonic_ns() - daemon.spawned_at) as f64 / 1e9;
                        let first = if first_answer > Duration::from_secs(1) {
                            format!(" (its first `ctl status` answer took {:.1} s)", first_answer.as_secs_f64())
                        } else {
                            String::new()
                        };
                        return Err(format!(
                            "{}, {elapsed:.1} s after exec{first}",
                            summarize(&rows, count, last_progress.elapsed())
                        ));
                    }
                }
                Err(error) => {
                    if last_progress.elapsed() > stall {
                        return Err(format!("no usable status after {} s: {error}", last_progress.elapsed().as_secs()));
                    }
                }
            }
            std::thread::sleep(interval);
        }
    }

    /// Polls a stamp file until it holds `count` lines; fails when `supervisor` exits or no
    /// new line comes for `stall`. The file is only `stat`ed until it is long enough (10,000
    /// stamps are 320 KB: reading them every millisecond would take a core from the run).
    fn wait_stamps(&mut self, file: &Path, count: usize, supervisor: i32, stall: Duration) -> Res<Vec<(i32, u64)>> {
        let mut seen = 0;
        let mut last_progress = Instant::now();
        loop {
            let size = fs::metadata(file).map_or(0, |meta| meta.len() as usize);
            if size >= count * STAMP_LINE {
                let stamps = read_stamps(file);
                if stamps.len() >= count {
                    return Ok(stamps);
                }
            }
            if size / STAMP_LINE > seen {
                seen = size / STAMP_LINE;
                last_progress = Instant::now();
            }
            if let Some(status) = self.try_wait(supervisor) {
                return Err(format!(
                    "the supervisor exited ({}) with {seen} of {count} stamps",
                    describe_status(status)
                ));
            }
            if last_progress.elapsed() > stall {
                return Err(format!("{seen} of {count} children started; no new one for {} s", stall.as_secs()));
            }
            sleep_ms(1);
        }
    }

    // ---- restart latency ----

    /// Kills the newest stamp `RESTARTS` times, each after it ran `RUN_BEFORE_KILL_MS`, and
    /// returns kill→stamp latencies in ns.
    /// With `socket`, checks over the control socket, just before each kill, that the
    /// instance is RUNNING and has been for the stability window.
    fn kill_and_time(&mut self, file: &Path, supervisor: i32, what: &str, socket: Option<&Path>) -> Res<Samples> {
        let mut samples = Samples::default();
        let mut stamps = self.wait_stamps(file, 1, supervisor, Duration::from_secs(10))?;
        for round in 0..RESTARTS {
            let Some(&(pid, started)) = stamps.last() else { return Err("no stamp".to_string()) };
            let kill_at = started + RUN_BEFORE_KILL_MS * 1_000_000;
            if let Some(socket) = socket {
                sleep_until(kill_at - 50_000_000);
                let state = instance_state(socket, "stamp:0");
                if !matches!(&state, Ok((state, pid_now, since_ms)) if state == "RUNNING" && *pid_now == pid && *since_ms >= STABILITY_WINDOW_MS)
                {
                    self.note(format!("restart latency: before kill {}, `stamp:0` was not RUNNING past the window with pid {pid}: {state:?}", round + 1));
                }
            }
            sleep_until(kill_at);
            let killed_at = monotonic_ns();
            send_signal(pid, libc::SIGKILL);
            stamps = self
                .wait_stamps(file, round + 2, supervisor, Duration::from_secs(15))
                .map_err(|error| format!("after kill {} of {RESTARTS}: {error}", round + 1))?;
            let (new_pid, restarted) = stamps[round + 1];
            if new_pid == pid {
                return Err(format!("stamp {} has the killed pid {pid}", round + 2));
            }
            samples.push(restarted.saturating_sub(killed_at) as f64);
            if (round + 1) % 5 == 0 {
                self.progress(&format!("restart latency, {what}: {} of {RESTARTS}", round + 1));
            }
        }
        Ok(samples)
    }

    fn restart_svlite(&mut self) -> Res<Samples> {
        let file = self.dir.join("restart-svlite.stamps");
        let _ = fs::remove_file(&file);
        let window = format!("stability_window: {}", STABILITY_WINDOW_MS as f64 / 1000.0);
        let programs = Bench::program(
            "stamp",
            &[path_str(&self.stamp), path_str(&file)],
            &["starttime: 0", "restart_delay: 0", "autorestart: always", &window],
        );
        let daemon = self.start_daemon("restart", &programs, Stdio::null())?;
        let result = self.kill_and_time(&file, daemon.pid, "sv-lite", Some(&daemon.socket));
        let result = match result {
            Ok(samples) => Ok(samples),
            Err(error) => {
                let status = self.status(&daemon, Duration::from_secs(10));
                let rows = status.map(|rows| summarize(&rows, 1, Duration::ZERO)).unwrap_or_else(|error| error);
                Err(format!("{error}; status: {rows}"))
            }
        };
        self.stop_daemon(&daemon, Duration::from_secs(15));
        result
    }

    fn restart_baseline(&mut self) -> Res<Samples> {
        let file = self.dir.join("restart-baseline.stamps");
        let _ = fs::remove_file(&file);
        let mut command = Command::new(&self.respawner);
        command.arg("loop").arg(&self.stamp).arg(&file).stdin(Stdio::null()).stdout(Stdio::null());
        die_with_parent(&mut command, libc::SIGKILL);
        let pid = self.spawn(&mut command)?;
        let result = self.kill_and_time(&file, pid, "respawner", None);
        send_signal(pid, libc::SIGKILL);
        let _ = self.wait_exit(pid, Duration::from_secs(5));
        self.kill_descendants();
        result
    }

    fn restart_rows(&mut self, rows: &mut Vec<Row>) {
        self.progress("restart latency: sv-lite");
        let ours = self.restart_svlite();
        self.progress("restart latency: minimal respawner");
        let theirs = self.restart_baseline();
        match (&ours, &theirs) {
            (Ok(ours), Ok(theirs)) => {
                let median = ratio(ours.median(), theirs.median());
                let p90 = ratio(ours.percentile(90.0), theirs.percentile(90.0));
                rows.push(Row::new(
                    "restart latency, median (SIGKILL → new instance's first stamp)",
                    fmt_samples(ours, Unit::Time),
                    format!("respawner {}", fmt_samples(theirs, Unit::Time)),
                    fmt_ratio(median),
                    "≤ 1.2× respawner",
                    median.map(|ratio| ratio <= 1.2),
                ));
                let p90_of = |samples: &Samples| {
                    samples.percentile(90.0).map_or("n/a".to_string(), |value| fmt_value(value, Unit::Time))
                };
                rows.push(Row::new(
                    "restart latency, p90",
                    p90_of(ours),
                    format!("respawner {}", p90_of(theirs)),
                    fmt_ratio(p90),
                    "≤ 2× respawner",
                    p90.map(|ratio| ratio <= 2.0),
                ));
            }
            _ => {
                let error = [("sv-lite", &ours), ("respawner", &theirs)]
                    .iter()
                    .filter_map(|(who, result)| result.as_ref().err().map(|error| format!("{who}: {error}")))
                    .collect::<Vec<_>>()
                    .join("; ");
                rows.push(Row::failed("restart latency", &error, "≤ 1.2× (median), ≤ 2× (p90) respawner"));
            }
        }
    }

    // ---- spawn 1000 ----

    fn spawn_svlite(&mut self, run: usize) -> Res<f64> {
        let file = self.dir.join(format!("spawn-svlite-{run}.stamps"));
        let _ = fs::remove_file(&file);
        let argv = [path_str(&self.stamp), path_str(&file)];
        let programs: String =
            (0..SPAWN_COUNT).map(|i| Bench::program(&format!("p{i:04}"), &argv, &["starttime: 0"])).collect();
        let daemon = self.start_daemon("spawn", &programs, Stdio::null())?;
        let result = self.wait_stamps(&file, SPAWN_COUNT, daemon.pid, Duration::from_secs(15));
        let result = result.map(|stamps| {
            let last = stamps.iter().map(|&(_, at)| at).max().unwrap_or(0);
            last.saturating_sub(daemon.spawned_at) as f64
        });
        if let Some(elapsed) = self.stop_daemon(&daemon, Duration::from_secs(30)) {
            self.progress(&format!("  (shutdown with {SPAWN_COUNT} programs took {} ms)", elapsed.as_millis()));
        }
        let _ = fs::remove_file(&file);
        result
    }

    /// `respawner spawn-n COUNT stamp`: ns from just before its spawn to the last stamp.
    fn spawn_baseline(&mut self, run: usize, count: usize) -> Res<f64> {
        let file = self.dir.join(format!("spawn-baseline-{count}-{run}.stamps"));
        let _ = fs::remove_file(&file);
        let mut command = Command::new(&self.respawner);
        command
            .arg("spawn-n")
            .arg(count.to_string())
            .arg(&self.stamp)
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        die_with_parent(&mut command, libc::SIGKILL);
        let spawned_at = monotonic_ns();
        let pid = self.spawn(&mut command)?;
        let result = self.wait_stamps(&file, count, pid, Duration::from_secs(15));
        let result =
            result.map(|stamps| stamps.iter().map(|&(_, at)| at).max().unwrap_or(0).saturating_sub(spawned_at) as f64);
        self.kill_descendants();
        let _ = fs::remove_file(&file);
        result
    }

    fn spawn_rows(&mut self, rows: &mut Vec<Row>) {
        let (mut ours, mut theirs) = (Samples::default(), Samples::default());
        let mut errors = Vec::new();
        for run in 0..SPAWN_RUNS {
            self.progress(&format!("spawn {SPAWN_COUNT}: run {} of {SPAWN_RUNS}", run + 1));
            match self.spawn_svlite(run) {
                Ok(ns) => ours.push(ns),
                Err(error) => errors.push(format!("sv-lite: {error}")),
            }
            match self.spawn_baseline(run, SPAWN_COUNT) {
                Ok(ns) => theirs.push(ns),
                Err(error) => errors.push(format!("spawner: {error}")),
            }
        }
        if ours.0.is_empty() || theirs.0.is_empty() {
            rows.push(Row::failed("spawn 1000", &errors.join("; "), "≤ 1.1× spawner"));
            return;
        }
        for error in errors {
            self.note(format!("spawn {SPAWN_COUNT}: a run failed: {error}"));
        }
        let r = ratio(ours.median(), theirs.median());
        rows.push(Row::new(
            "spawn 1000 (exec → last of 1000 programs' stamps)",
            fmt_samples(&ours, Unit::Time),
            format!("spawner loop {}", fmt_samples(&theirs, Unit::Time)),
            fmt_ratio(r),
            "≤ 1.1× spawner",
            r.map(|r| r <= 1.1),
        ));
    }

    // ---- ctl round trip and idle ----

    fn sleep_programs(count: usize) -> String {
        let argv = ["sleep".to_string(), "100000".to_string()];
        (0..count).map(|i| Bench::program(&format!("p{i:03}"), &argv, &["starttime: 0"])).collect()
    }

    /// Spawn to exit of one process, in ns (the exit is seen through a pidfd, not by polling).
    fn time_command(&mut self, command: &mut Command) -> Res<f64> {
        let start = monotonic_ns();
        let pid = self.spawn(command)?;
        let status = self.wait_exit(pid, Duration::from_secs(10));
        let elapsed = monotonic_ns() - start;
        self.reaped.remove(&pid);
        let describe = || format!("{:?} {:?}", command.get_program(), command.get_args().collect::<Vec<_>>());
        match status {
            Some(0) => Ok(elapsed as f64),
            Some(status) => Err(format!("{}: {}", describe(), describe_status(status))),
            None => {
                send_signal(pid, libc::SIGKILL);
                let _ = self.wait_exit(pid, Duration::from_secs(5));
                self.reaped.remove(&pid);
                Err(format!("{}: no exit within 10 s", describe()))
            }
        }
    }

    fn socket_round_trip(socket: &Path, request: &[u8]) -> Res<f64> {
        let start = monotonic_ns();
        let mut stream = UnixStream::connect(socket).map_err(|error| format!("connect: {error}"))?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        stream.write_all(request).map_err(|error| format!("write: {error}"))?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).map_err(|error| format!("read: {error}"))?;
        let elapsed = monotonic_ns() - start;
        if !reply.starts_with("{\"ok\":true") {
            return Err(format!("unexpected reply {:?}", reply.trim()));
        }
        Ok(elapsed as f64)
    }

    /// `runs` × `sv-lite ctl -s SOCKET status TARGET` as a whole process, each followed by
    /// a run of the static `sv-lite --version`; pushes both times (ns).
    fn ctl_against_exec(
        &mut self,
        socket: &Path,
        target: &str,
        runs: usize,
        ctl: &mut Samples,
        exec: &mut Samples,
    ) -> Res<()> {
        for _ in 0..runs {
            let mut ctl_command = Command::new(&self.sv);
            ctl_command.arg("ctl").arg("-s").arg(socket).args(["status", target]);
            ctl_command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            let mut version = Command::new(&self.sv);
            version.arg("--version").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            let ctl_ns = self.time_command(&mut ctl_command)?;
            let exec_ns = self.time_command(&mut version)?;
            ctl.push(ctl_ns);
            exec.push(exec_ns);
        }
        Ok(())
    }

    fn ctl_rows(&mut self, rows: &mut Vec<Row>) {
        self.progress(&format!("ctl and idle: starting {CTL_PROGRAMS} programs"));
        let daemon = match self.start_daemon("ctl", &Bench::sleep_programs(CTL_PROGRAMS), Stdio::null()) {
            Ok(daemon) => daemon,
            Err(error) => {
                rows.push(Row::failed("ctl round trip", &error, "≤ 1.3× static exec"));
                rows.push(Row::failed("idle context switches", &error, "0"));
                return;
            }
        };
        if let Err(error) = self.wait_running(&daemon, CTL_PROGRAMS, Duration::from_secs(15)) {
            rows.push(Row::failed("ctl round trip", &error, "≤ 1.3× static exec"));
            rows.push(Row::failed("idle context switches", &error, "0"));
            self.stop_daemon(&daemon, Duration::from_secs(15));
            return;
        }
        // Idle: nothing talks to the daemon for IDLE_SECONDS.
        sleep_ms(1000);
        self.progress(&format!("idle: counting context switches for {IDLE_SECONDS} s"));
        let before = context_switches(daemon.pid);
        std::thread::sleep(Duration::from_secs(IDLE_SECONDS));
        let after = context_switches(daemon.pid);
        match (before, after) {
            (Some(before), Some(after)) => {
                let switches = after.saturating_sub(before);
                rows.push(Row::new(
                    &format!("idle: daemon context switches in {IDLE_SECONDS} s, {CTL_PROGRAMS} sleeping programs"),
                    format!("{switches} (n=1)"),
                    "—".into(),
                    "—".into(),
                    "0",
                    Some(switches == 0),
                ));
            }
            _ => rows.push(Row::failed("idle context switches", "cannot read /proc/PID/task/*/status", "0")),
        }

        self.progress(&format!("ctl: {CTL_RUNS} × `ctl status p000:0`, {CTL_RUNS} × `sv-lite --version`"));
        let (mut ctl, mut exec) = (Samples::default(), Samples::default());
        match self.ctl_against_exec(&daemon.socket, "p000:0", CTL_RUNS, &mut ctl, &mut exec) {
            Err(error) => rows.push(Row::failed("ctl round trip", &error, "≤ 1.3× static exec")),
            Ok(()) => {
                let r = ratio(ctl.median(), exec.median());
                rows.push(Row::new(
                    &format!("`ctl status NAME:0`, whole process, {CTL_PROGRAMS} programs"),
                    fmt_samples(&ctl, Unit::Time),
                    format!("exec of static `sv-lite --version` {}", fmt_samples(&exec, Unit::Time)),
                    fmt_ratio(r),
                    "≤ 1.3× static exec",
                    r.map(|r| r <= 1.3),
                ));
            }
        }

        self.progress(&format!("ctl: {SOCKET_RUNS} socket round trips"));
        let request = b"{\"op\":\"status\",\"targets\":[\"p000:0\"]}\n";
        let mut socket = Samples::default();
        let mut error = None;
        for _ in 0..SOCKET_RUNS {
            match Bench::socket_round_trip(&daemon.socket, request) {
                Ok(ns) => socket.push(ns),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        match error {
            Some(error) => rows.push(Row::failed("ctl socket round trip", &error, "(reported)")),
            None => rows.push(Row::new(
                "ctl socket round trip alone (connect, status request, one reply line)",
                fmt_samples(&socket, Unit::Time),
                "—".into(),
                "—".into(),
                "(reported)",
                None,
            )),
        }
        if let Err(error) = self.check_daemon(&daemon) {
            self.note(format!("ctl benchmark: {error}"));
        }
        self.stop_daemon(&daemon, Duration::from_secs(15));
    }

    // ---- memory ----

    /// One daemon with `count` instances of `sleep`: its memory once all are RUNNING, the time
    /// from exec to all RUNNING, and the time from SIGTERM to its exit.
    /// With `nofile`, the daemon starts with RLIMIT_NOFILE (soft and hard) raised to it.
    fn memory_run(&mut self, count: usize, nofile: Option<u64>) -> Res<MemoryRun> {
        let argv = ["sleep".to_string(), "100000".to_string()];
        let numprocs = format!("numprocs: {count}");
        let programs = Bench::program("sleep", &argv, &["starttime: 0", numprocs.as_str()]);
        self.daemon_nofile = nofile;
        let daemon = self.start_daemon("memory", &programs, Stdio::null());
        self.daemon_nofile = None;
        let daemon = daemon?;
        let result = self.wait_running(&daemon, count, Duration::from_secs(20)).and_then(|ready| {
            sleep_ms(300);
            let rss = status_field(daemon.pid, "VmRSS").ok_or("cannot read VmRSS")?;
            let pss = proc_field(&format!("/proc/{}/smaps_rollup", daemon.pid), "Pss").ok_or("cannot read Pss")?;
            Ok(MemoryRun { rss, pss, ramp: ready.ramp, first_answer: ready.first_answer, shutdown: None })
        });
        let result = result.map_err(|error| {
            let pss = proc_field(&format!("/proc/{}/smaps_rollup", daemon.pid), "Pss");
            match (status_field(daemon.pid, "VmRSS"), pss) {
                (Some(rss), Some(pss)) => format!(
                    "{error}; the daemon's VmRSS · Pss then: {:.2} MiB · {:.2} MiB",
                    rss as f64 / 1024.0,
                    pss as f64 / 1024.0
                ),
                _ => error,
            }
        });
        let shutdown = self.stop_daemon(&daemon, Duration::from_secs(60));
        result.map(|run| MemoryRun { shutdown, ..run })
    }

    fn memory_rows(&mut self, rows: &mut Vec<Row>) {
        for count in MEMORY_SIZES {
            let runs = if count <= 1000 { MEMORY_RUNS_SMALL } else { 1 };
            // When the instances need more descriptors than the daemon may open, the run fails
            // and is reported; a second run gives the daemon room, to get the memory figure.
            let room = 4 * count as u64 + 1024;
            let raised = format!(", daemon's RLIMIT_NOFILE raised to {room} by the benchmark");
            let mut attempts: Vec<(&str, Option<u64>)> = vec![("", None)];
            if count > 1000 {
                attempts.push((&raised, Some(room)));
            }
            for (label, nofile) in attempts {
                if let Some(room) = nofile {
                    if let Err(error) = can_raise_nofile(room) {
                        self.note(format!(
                            "{count} × `sleep`: not repeated with a higher RLIMIT_NOFILE for the daemon: {error}"
                        ));
                        break;
                    }
                }
                let (mut rss, mut pss, mut ramp, mut shutdown) =
                    (Samples::default(), Samples::default(), Samples::default(), Samples::default());
                let mut first_answer = Samples::default();
                let mut error = None;
                for run in 0..runs {
                    self.progress(&format!("memory: {count} × sleep{label}, run {} of {runs}", run + 1));
                    match self.memory_run(count, nofile) {
                        Ok(run) => {
                            rss.push(run.rss as f64);
                            pss.push(run.pss as f64);
                            ramp.push(run.ramp.as_nanos() as f64);
                            first_answer.push(run.first_answer.as_nanos() as f64);
                            if let Some(elapsed) = run.shutdown {
                                shutdown.push(elapsed.as_nanos() as f64);
                            }
                        }
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                let metric = format!("memory: daemon VmRSS · Pss, {count} × `sleep`{label}");
                let target = if count == 1000 { "< 8 MiB RSS" } else { "(reported)" };
                match error {
                    Some(error) => rows.push(Row::failed(&metric, &error, target)),
                    None => {
                        let met = (count == 1000).then(|| rss.median().is_some_and(|kib| kib < 8.0 * 1024.0));
                        rows.push(Row::new(
                            &metric,
                            format!("{} · {}", fmt_samples(&rss, Unit::Kib), fmt_samples(&pss, Unit::Kib)),
                            "—".into(),
                            "—".into(),
                            target,
                            met,
                        ));
                        if count >= 1000 {
                            self.note(format!(
                                "{count} × `sleep`{label}: daemon exec → all RUNNING (per `ctl status`) {}; the first \
                                 `ctl status` (sent 10–250 ms after exec) waited {} for its answer; SIGTERM → daemon exit {}",
                                fmt_samples(&ramp, Unit::Time),
                                fmt_samples(&first_answer, Unit::Time),
                                fmt_samples(&shutdown, Unit::Time)
                            ));
                        }
                        // It worked within the inherited limit: no need for the second run.
                        break;
                    }
                }
            }
        }
    }

    // ---- 10,000 instances ----

    /// One daemon with `SCALE_COUNT` instances of `stamp`, both streams discarded, in
    /// `mode`: the time from its spawn to the last stamp, its memory once all have stamped
    /// and are RUNNING, then (in the default mode) the ctl measures, then its shutdown.
    fn scale_svlite(&mut self, run: usize, mode: CgroupMode, out: &mut ScaleSamples) -> Res<()> {
        let file = self.dir.join(format!("scale-{}-{run}.stamps", mode.name()));
        let _ = fs::remove_file(&file);
        let argv = [path_str(&self.stamp), path_str(&file)];
        let numprocs = format!("numprocs: {SCALE_COUNT}");
        let programs =
            Bench::program("stamp", &argv, &["starttime: 0", "stdout: discard", "stderr: discard", &numprocs]);
        let daemon = self.start_daemon_with("scale", &programs, Stdio::null(), mode.flags())?;
        let result = self.scale_measure(&daemon, &file, mode, out);
        let result = result.map_err(|error| {
            let rss = status_field(daemon.pid, "VmRSS")
                .map(|kib| format!("; the daemon's VmRSS then: {:.2} MiB", kib as f64 / 1024.0))
                .unwrap_or_default();
            format!("{error}{rss}")
        });
        let shutdown = self.stop_daemon(&daemon, Duration::from_secs(120));
        if let (Ok(()), Some(elapsed)) = (&result, shutdown) {
            out.shutdown.push(elapsed.as_nanos() as f64);
        }
        let _ = fs::remove_file(&file);
        result
    }

    fn scale_measure(&mut self, daemon: &Daemon, file: &Path, mode: CgroupMode, out: &mut ScaleSamples) -> Res<()> {
        let stamps = match self.wait_stamps(file, SCALE_COUNT, daemon.pid, Duration::from_secs(20)) {
            Ok(stamps) => stamps,
            Err(error) => {
                let status = self.status(daemon, Duration::from_secs(30));
                let rows = status.map_or_else(|error| error, |rows| summarize(&rows, SCALE_COUNT, Duration::ZERO));
                return Err(format!("{error}; status: {rows}"));
            }
        };
        let last = stamps.iter().map(|&(_, at)| at).max().unwrap_or(0);
        out.start.push(last.saturating_sub(daemon.spawned_at) as f64);
        sleep_ms(300);
        let rss = status_field(daemon.pid, "VmRSS").ok_or("cannot read VmRSS")?;
        let pss = proc_field(&format!("/proc/{}/smaps_rollup", daemon.pid), "Pss").ok_or("cannot read Pss")?;
        // Every stamp is in; the daemon must also see every instance RUNNING.
        let rows = self.status(daemon, Duration::from_secs(30))?;
        let running = rows.iter().filter(|row| row["state"] == "RUNNING").count();
        if running < SCALE_COUNT {
            return Err(format!("all stamps are in, but {}", summarize(&rows, SCALE_COUNT, Duration::ZERO)));
        }
        out.rss.push(rss as f64);
        out.pss.push(pss as f64);
        if mode == CgroupMode::Default {
            self.ctl_against_exec(&daemon.socket, "stamp:0", SCALE_CTL_RUNS, &mut out.ctl, &mut out.exec)?;
            let json = self.dir.join("scale-status.json");
            let request = b"{\"op\":\"status\",\"targets\":[]}\n";
            for _ in 0..SCALE_JSON_RUNS {
                let stdout = File::create(&json).map_err(|error| format!("{}: {error}", json.display()))?;
                let mut command = Command::new(&self.sv);
                command.arg("ctl").arg("-s").arg(&daemon.socket).args(["status", "--json"]);
                command.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::null());
                out.json.push(self.time_command(&mut command)?);
                out.json_socket.push(Bench::socket_round_trip(&daemon.socket, request)?);
            }
            out.json_bytes = fs::metadata(&json).map_or(0, |meta| meta.len());
            let _ = fs::remove_file(&json);
        }
        if let Some(hwm) = status_field(daemon.pid, "VmHWM") {
            out.hwm.push(hwm as f64);
        }
        self.check_daemon(daemon)
    }

    fn scale_rows(&mut self, rows: &mut Vec<Row>) {
        let modes = [CgroupMode::Default, CgroupMode::NoCgroups];
        let mut ours = [ScaleSamples::default(), ScaleSamples::default()];
        let mut baseline = Samples::default();
        let mut baseline_errors = Vec::new();
        for run in 0..SCALE_RUNS {
            // Three measures per run, in an order that rotates from run to run.
            for step in 0..3 {
                match (step + run) % 3 {
                    2 => {
                        self.progress(&format!("{SCALE_COUNT} instances, run {} of {SCALE_RUNS}: spawner", run + 1));
                        match self.spawn_baseline(run, SCALE_COUNT) {
                            Ok(ns) => baseline.push(ns),
                            Err(error) => baseline_errors.push(error),
                        }
                    }
                    index => {
                        let mode = modes[index];
                        self.progress(&format!(
                            "{SCALE_COUNT} instances, run {} of {SCALE_RUNS}: sv-lite, {}",
                            run + 1,
                            mode.label()
                        ));
                        if let Err(error) = self.scale_svlite(run, mode, &mut ours[index]) {
                            self.progress(&format!("  failed: {error}"));
                            ours[index].errors.push(error);
                        }
                    }
                }
            }
        }
        for error in &baseline_errors {
            self.note(format!("{SCALE_COUNT} × `stamp`: a spawner run failed: {error}"));
        }
        let baseline_text = format!("spawner loop {}", fmt_samples(&baseline, Unit::Time));
        for (mode, samples) in modes.iter().zip(&ours) {
            let metric = format!(
                "start {SCALE_COUNT} (`stdout`, `stderr: discard`; {}): exec → last of {SCALE_COUNT} stamps",
                mode.label()
            );
            let memory = format!("memory: daemon VmRSS · Pss, {SCALE_COUNT} discarded instances, {}", mode.label());
            if samples.start.0.is_empty() {
                let error = samples.errors.join("; ");
                rows.push(Row::failed(&metric, &error, "≤ 1.3× spawner"));
                rows.push(Row::failed(&memory, &error, "≤ 30 MiB RSS"));
                continue;
            }
            for error in &samples.errors {
                self.note(format!("{SCALE_COUNT} × `stamp`, {}: a run failed: {error}", mode.label()));
            }
            let r = ratio(samples.start.median(), baseline.median());
            rows.push(Row::new(
                &metric,
                fmt_samples(&samples.start, Unit::Time),
                baseline_text.clone(),
                fmt_ratio(r),
                "≤ 1.3× spawner",
                r.map(|r| r <= 1.3),
            ));
            if samples.rss.0.is_empty() {
                rows.push(Row::failed(&memory, &samples.errors.join("; "), "≤ 30 MiB RSS"));
            } else {
                rows.push(Row::new(
                    &memory,
                    format!("{} · {}", fmt_samples(&samples.rss, Unit::Kib), fmt_samples(&samples.pss, Unit::Kib)),
                    "—".into(),
                    "—".into(),
                    "≤ 30 MiB RSS",
                    samples.rss.median().map(|kib| kib <= 30.0 * 1024.0),
                ));
            }
            self.note(format!(
                "{SCALE_COUNT} × `stamp`, discarded streams, {}: SIGTERM → daemon exit {}; the daemon's peak RSS \
                 (VmHWM) at the end of the run {}",
                mode.label(),
                fmt_samples(&samples.shutdown, Unit::Time),
                fmt_samples(&samples.hwm, Unit::Kib)
            ));
        }
        let default = &ours[0];
        if default.ctl.0.is_empty() {
            let error =
                if default.errors.is_empty() { "no run got that far".to_string() } else { default.errors.join("; ") };
            rows.push(Row::failed(
                &format!("`ctl status NAME:0`, {SCALE_COUNT} instances"),
                &error,
                "≤ 1.3× static exec",
            ));
            rows.push(Row::failed(&format!("`ctl status --json`, all {SCALE_COUNT}"), &error, "≤ 100 ms"));
            return;
        }
        let r = ratio(default.ctl.median(), default.exec.median());
        rows.push(Row::new(
            &format!("`ctl status NAME:0`, whole process, {SCALE_COUNT} instances"),
            fmt_samples(&default.ctl, Unit::Time),
            format!("exec of static `sv-lite --version` {}", fmt_samples(&default.exec, Unit::Time)),
            fmt_ratio(r),
            "≤ 1.3× static exec",
            r.map(|r| r <= 1.3),
        ));
        rows.push(Row::new(
            &format!(
                "`ctl status --json`, all {SCALE_COUNT} instances, whole process (stdout → file, {:.1} MB)",
                default.json_bytes as f64 / 1e6
            ),
            fmt_samples(&default.json, Unit::Time),
            "—".into(),
            "—".into(),
            "≤ 100 ms",
            default.json.median().map(|ns| ns <= 100e6),
        ));
        rows.push(Row::new(
            &format!("ctl socket round trip alone, status of all {SCALE_COUNT} instances (one reply line)"),
            fmt_samples(&default.json_socket, Unit::Time),
            "—".into(),
            "—".into(),
            "(reported)",
            None,
        ));
    }

    // ---- log capture and forwarding ----

    /// One writer run; returns payload MB/s.
    fn log_run(&mut self, mode: LogMode, mib: u64) -> Res<f64> {
        let out = self.log_dir.join(format!("log-{}.out", mode.name()));
        let stamp = self.dir.join("writer.stamp");
        let _ = fs::remove_file(&out);
        let _ = fs::remove_file(&stamp);
        let payload = mib * MIB;
        let argv = [path_str(&self.writer), mib.to_string(), path_str(&stamp)];
        let create = |path: &Path| File::create(path).map_err(|error| format!("{}: {error}", path.display()));
        let mut daemon = None;
        let mut watched = Vec::new();
        match mode {
            LogMode::File => {
                let mut command = Command::new(&argv[0]);
                command.args(&argv[1..]).stdin(Stdio::null()).stdout(create(&out)?);
                watched.push(self.spawn(&mut command)?);
            }
            LogMode::Cat => {
                let mut cat = Command::new("cat");
                cat.stdin(Stdio::piped()).stdout(create(&out)?);
                let mut child = cat.spawn().map_err(|error| format!("spawn cat: {error}"))?;
                let pipe = child.stdin.take().ok_or("cat has no stdin pipe")?;
                watched.push(child.id() as i32);
                let mut command = Command::new(&argv[0]);
                command.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::from(pipe));
                watched.push(self.spawn(&mut command)?);
            }
            LogMode::Daemon => {
                let sink = format!("stdout: {}", yaml_str(&path_str(&out)));
                let programs = Bench::program("writer", &argv, &["starttime: 0", "autorestart: never", &sink]);
                daemon = Some(self.start_daemon("log", &programs, Stdio::null())?);
            }
            LogMode::Forward => {
                let programs = Bench::program("writer", &argv, &["starttime: 0", "autorestart: never"]);
                daemon = Some(self.start_daemon("forward", &programs, Stdio::from(create(&out)?))?);
            }
        }
        let result = self.wait_log(&out, &stamp, payload, mode, daemon.as_ref(), &watched);
        if let Some(daemon) = &daemon {
            self.stop_daemon(daemon, Duration::from_secs(15));
        }
        for pid in watched {
            if self.wait_exit(pid, Duration::from_secs(10)).is_none() {
                self.note(format!(
                    "log capture, {}: pid {pid} still running after the output was complete",
                    mode.name()
                ));
            }
            self.reaped.remove(&pid);
        }
        self.kill_descendants();
        let _ = fs::remove_file(&out);
        let _ = fs::remove_file(&stamp);
        result
    }

    /// Waits until `out` holds all the writer's lines; MB/s of payload from the writer's start.
    fn wait_log(
        &mut self,
        out: &Path,
        stamp: &Path,
        payload: u64,
        mode: LogMode,
        daemon: Option<&Daemon>,
        watched: &[i32],
    ) -> Res<f64> {
        let lines = payload / WRITER_LINE;
        let mut expected = if matches!(mode, LogMode::Forward) { None } else { Some(payload) };
        let mut size = 0;
        let mut last_growth = Instant::now();
        let done_at = loop {
            let now_size = fs::metadata(out).map(|meta| meta.len()).unwrap_or(0);
            if now_size > size {
                size = now_size;
                last_growth = Instant::now();
            }
            if expected.is_none() && size > 0 {
                // Forwarded lines carry a prefix: learn the line length from the first one.
                let first = fs::read(out).ok().and_then(|bytes| bytes.iter().position(|&b| b == b'\n'));
                expected = first.map(|newline| (newline as u64 + 1) * lines);
            }
            if expected.is_some_and(|expected| size >= expected) {
                break monotonic_ns();
            }
            if last_growth.elapsed() > Duration::from_secs(15) {
                let who = match daemon {
                    Some(daemon) => self.check_daemon(daemon).err().unwrap_or_default(),
                    None => String::new(),
                };
                return Err(format!("output stopped at {size} of {} bytes {who}", expected.unwrap_or(0)));
            }
            if daemon.is_none()
                && watched.iter().all(|&pid| self.try_wait(pid).is_some())
                && fs::metadata(out).map(|m| m.len()).unwrap_or(0) == size
            {
                return Err(format!("the pipeline exited with {size} of {} bytes written", expected.unwrap_or(0)));
            }
            sleep_ms(1);
        };
        if let Some(expected) = expected {
            if size > expected {
                self.note(format!("log capture, {}: {size} bytes in the file, {expected} expected", mode.name()));
            }
        }
        let text = fs::read_to_string(stamp).map_err(|error| format!("writer stamp: {error}"))?;
        let start: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("start "))
            .and_then(|ns| ns.parse().ok())
            .ok_or("writer stamp has no start")?;
        let seconds = done_at.saturating_sub(start) as f64 / 1e9;
        Ok(payload as f64 / seconds / 1e6)
    }

    /// The log-capture rows; with `forward_only`, only cat and forwarding are run.
    fn log_rows(&mut self, rows: &mut Vec<Row>, mib: u64, forward_only: bool) {
        let modes: &[LogMode] = if forward_only {
            &[LogMode::Cat, LogMode::Forward]
        } else {
            &[LogMode::Cat, LogMode::File, LogMode::Daemon, LogMode::Forward]
        };
        let mut samples: BTreeMap<&str, Samples> = BTreeMap::new();
        let mut spent: BTreeMap<&str, Duration> = BTreeMap::new();
        let mut errors: BTreeMap<&str, String> = BTreeMap::new();
        for run in 0..LOG_RUNS {
            for &mode in modes {
                let name = mode.name();
                if errors.contains_key(name) || spent.get(name).is_some_and(|spent| *spent > LOG_VARIANT_BUDGET) {
                    continue;
                }
                self.progress(&format!("log capture: {} MiB, {}, run {} of {LOG_RUNS}", mib, mode.label(), run + 1));
                let start = Instant::now();
                match self.log_run(mode, mib) {
                    Ok(rate) => samples.entry(name).or_default().push(rate),
                    Err(error) => {
                        errors.insert(name, error);
                    }
                }
                *spent.entry(name).or_default() += start.elapsed();
            }
        }
        let get = |mode: LogMode| samples.get(mode.name()).cloned().unwrap_or_default();
        let cat = get(LogMode::Cat);
        let file = get(LogMode::File);
        let baseline = format!(
            "`writer | cat > file` {} · `writer > file` {}",
            errors.get("cat").map_or_else(|| fmt_samples(&cat, Unit::Rate), |error| format!("failed: {error}")),
            errors.get("file").map_or_else(|| fmt_samples(&file, Unit::Rate), |error| format!("failed: {error}")),
        );
        for (mode, metric, target, threshold) in [
            (
                LogMode::Daemon,
                format!("log capture to a file (`stdout: FILE`), {mib} MiB of 128-byte lines"),
                "≥ 0.9× cat",
                Some(0.9),
            ),
            (
                LogMode::Forward,
                format!("forwarded output (no `stdout` key; daemon stdout → file), {mib} MiB"),
                "(reported)",
                None,
            ),
        ] {
            if !modes.iter().any(|&run| run.name() == mode.name()) {
                continue;
            }
            if let Some(error) = errors.get(mode.name()) {
                rows.push(Row::failed(&metric, error, target));
                continue;
            }
            let ours = get(mode);
            let r = ratio(ours.median(), cat.median());
            rows.push(Row::new(
                &metric,
                fmt_samples(&ours, Unit::Rate),
                baseline.clone(),
                format!("{} of cat", fmt_ratio(r)),
                target,
                threshold.and_then(|threshold| r.map(|r| r >= threshold)),
            ));
        }
    }

    // ---- shutdown ----

    fn shutdown_run(&mut self) -> Res<f64> {
        let daemon = self.start_daemon("shutdown", &Bench::sleep_programs(SHUTDOWN_PROGRAMS), Stdio::null())?;
        let rows = match self.wait_running(&daemon, SHUTDOWN_PROGRAMS, Duration::from_secs(15)) {
            Ok(ready) => ready.rows,
            Err(error) => {
                self.stop_daemon(&daemon, Duration::from_secs(15));
                return Err(error);
            }
        };
        let mut alive: Vec<i32> = rows.iter().filter_map(|row| row["pid"].as_i64()).map(|pid| pid as i32).collect();
        sleep_ms(300);
        let start = monotonic_ns();
        send_signal(daemon.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut daemon_gone = false;
        let result = loop {
            if !daemon_gone {
                daemon_gone = self.try_wait(daemon.pid).is_some();
            }
            while let Some(&pid) = alive.last() {
                if process_alive(pid) {
                    break;
                }
                alive.pop();
            }
            if daemon_gone && alive.is_empty() {
                break Ok((monotonic_ns() - start) as f64);
            }
            if Instant::now() > deadline {
                break Err(format!(
                    "after 20 s: daemon {}, {} of {SHUTDOWN_PROGRAMS} children still alive",
                    if daemon_gone { "exited" } else { "still running" },
                    alive.len()
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if let Some(status) = self.reaped.get(&daemon.pid).copied() {
            if status != 0 {
                self.note(format!("shutdown: the daemon exited with {} after SIGTERM", describe_status(status)));
            }
        }
        self.stop_daemon(&daemon, Duration::from_secs(5));
        result
    }

    fn shutdown_rows(&mut self, rows: &mut Vec<Row>) {
        let mut samples = Samples::default();
        for run in 0..SHUTDOWN_RUNS {
            self.progress(&format!("shutdown: run {} of {SHUTDOWN_RUNS}", run + 1));
            match self.shutdown_run() {
                Ok(ns) => samples.push(ns),
                Err(error) => {
                    rows.push(Row::failed("shutdown", &error, "< 30 ms"));
                    return;
                }
            }
        }
        let met = samples.median().map(|ns| ns < 30e6);
        rows.push(Row::new(
            &format!("shutdown: SIGTERM → daemon and all {SHUTDOWN_PROGRAMS} `sleep` children gone"),
            fmt_samples(&samples, Unit::Time),
            "—".into(),
            "—".into(),
            "< 30 ms",
            met,
        ));
    }

    // ---- binary ----

    fn binary_row(&self, rows: &mut Vec<Row>) {
        match fs::read(&self.sv) {
            Ok(bytes) => {
                let size = bytes.len() as f64;
                let (has_interp, has_symtab) = elf_facts(&bytes).unwrap_or((true, true));
                rows.push(Row::new(
                    "binary size",
                    format!(
                        "{:.2} MiB ({} bytes; {}, {})",
                        size / MIB as f64,
                        bytes.len(),
                        if has_symtab { "**not stripped**" } else { "stripped" },
                        if has_interp { "**has an ELF interpreter (dynamic)**" } else { "static" }
                    ),
                    "—".into(),
                    "—".into(),
                    "≤ 2.5 MiB",
                    Some(size <= 2.5 * MIB as f64),
                ));
            }
            Err(error) => {
                rows.push(Row::failed("binary size", &format!("{}: {error}", self.sv.display()), "≤ 2.5 MiB"))
            }
        }
    }
}

/// (has a PT_INTERP program header, has a SHT_SYMTAB section) of a 64-bit little-endian ELF.
fn elf_facts(bytes: &[u8]) -> Option<(bool, bool)> {
    if bytes.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize);
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?) as usize);
    let (phoff, shoff) = (u64_at(0x20)?, u64_at(0x28)?);
    let (phentsize, phnum, shentsize, shnum) = (u16_at(0x36)?, u16_at(0x38)?, u16_at(0x3a)?, u16_at(0x3c)?);
    const PT_INTERP: u32 = 3;
    const SHT_SYMTAB: u32 = 2;
    let mut interp = false;
    for index in 0..phnum {
        interp |= u32_at(phoff + index * phentsize)? == PT_INTERP;
    }
    let mut symtab = false;
    for index in 0..shnum {
        symtab |= u32_at(shoff + index * shentsize + 4)? == SHT_SYMTAB;
    }
    Some((interp, symtab))
}

/// All instances RUNNING.
struct Ready {
    /// From just before the daemon's spawn.
    ramp: Duration,
    /// The `ctl status --json` rows that showed it.
    rows: Vec<Value>,
    /// How long the first `ctl status` took to answer.
    first_answer: Duration,
}

struct MemoryRun {
    /// KiB.
    rss: u64,
    /// KiB.
    pss: u64,
    ramp: Duration,
    first_answer: Duration,
    shutdown: Option<Duration>,
}

/// Which way the daemon finds each instance's processes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CgroupMode {
    /// A cgroup per instance where cgroup v2 can be written (the default).
    Default,
    /// `--no-cgroups`: the /proc fallback.
    NoCgroups,
}

impl CgroupMode {
    fn name(self) -> &'static str {
        match self {
            CgroupMode::Default => "cgroups",
            CgroupMode::NoCgroups => "no-cgroups",
        }
    }

    fn label(self) -> &'static str {
        match self {
            CgroupMode::Default => "default (a cgroup per instance)",
            CgroupMode::NoCgroups => "`--no-cgroups`",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            CgroupMode::Default => &[],
            CgroupMode::NoCgroups => &["--no-cgroups"],
        }
    }
}

/// What the 10,000-instance runs of one mode measured (times in ns, memory in KiB).
#[derive(Default)]
struct ScaleSamples {
    /// Daemon spawn → last stamp.
    start: Samples,
    rss: Samples,
    pss: Samples,
    /// VmHWM at the end of a run, after the ctl measures.
    hwm: Samples,
    shutdown: Samples,
    /// `ctl status stamp:0` and the static exec it is compared with, whole processes.
    ctl: Samples,
    exec: Samples,
    /// `ctl status --json` of all, whole process; and the same request on the socket alone.
    json: Samples,
    json_socket: Samples,
    json_bytes: u64,
    errors: Vec<String>,
}

#[derive(Clone, Copy)]
enum LogMode {
    Cat,
    File,
    Daemon,
    Forward,
}

impl LogMode {
    fn name(self) -> &'static str {
        match self {
            LogMode::Cat => "cat",
            LogMode::File => "file",
            LogMode::Daemon => "sv-lite-file",
            LogMode::Forward => "sv-lite-forward",
        }
    }

    fn label(self) -> &'static str {
        match self {
            LogMode::Cat => "`writer | cat > file`",
            LogMode::File => "`writer > file`",
            LogMode::Daemon => "sv-lite `stdout: FILE`",
            LogMode::Forward => "sv-lite forwarding",
        }
    }
}

/// `N RUNNING, M FATAL (first reason: ...)` for an error message.
fn summarize(rows: &[Value], expected: usize, stalled: Duration) -> String {
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows {
        *states.entry(row["state"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    let counts: Vec<String> = states.iter().map(|(state, n)| format!("{n} {state}")).collect();
    let reason = rows
        .iter()
        .filter(|row| row["state"] != "RUNNING")
        .find_map(|row| {
            row["error"]
                .as_str()
                .or(row["detail"].as_str())
                .map(|text| format!("{}: {text}", row["name"].as_str().unwrap_or("?")))
        })
        .map(|text| format!("; first reason: {text}"))
        .unwrap_or_default();
    let stall = if stalled > Duration::from_secs(1) {
        format!(" (no progress for {} s)", stalled.as_secs())
    } else {
        String::new()
    };
    format!("{} of {expected} instances: {}{reason}{stall}", rows.len(), counts.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Setup, machine facts, output.

/// Builds the helper examples with the same cargo and profile as this one; returns their dir.
fn build_helpers() -> Res<PathBuf> {
    let exe = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    let dir = exe.parent().ok_or("no directory for the bench binary")?.to_path_buf();
    let release = dir.parent().and_then(Path::file_name).is_some_and(|name| name == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--example",
        "stamp",
        "--example",
        "respawner",
        "--example",
        "writer",
    ]);
    if release {
        command.arg("--release");
    }
    progress(&format!("building the helper examples ({})", if release { "release" } else { "debug" }));
    let status = command.status().map_err(|error| format!("cargo build: {error}"))?;
    if !status.success() {
        return Err(format!("cargo build of the helper examples failed: {status}"));
    }
    Ok(dir)
}

fn cpu_model() -> String {
    let text = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn core_count() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(0)
}

fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// `2026-11-23 14:31 UTC`.
fn utc_now() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0);
    let (days, day_seconds) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", day_seconds / 3600, day_seconds / 60 % 60)
}

fn limits() -> String {
    let read = |path: &str| fs::read_to_string(path).map(|text| text.trim().to_string()).unwrap_or_else(|_| "?".into());
    let nofile = fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .map(|line| line.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join("/"))
        .unwrap_or_else(|| "?".into());
    format!("pid_max {}, open files (soft/hard) {nofile}", read("/proc/sys/kernel/pid_max"))
}

/// Bytes available to us on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stats` a valid out-pointer, both live
    // for the call.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    (result == 0).then(|| stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// `tmpfs at /dev/shm/...` or `ext4 at /tmp/...`, from /proc/self/mounts (longest prefix).
fn fs_name(path: &Path) -> String {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let kind = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount).then(|| (mount.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "?".to_string(), |(_, kind)| kind);
    format!("{kind} at `{}`", path.display())
}

/// Whether this process may raise its RLIMIT_NOFILE hard limit to `limit` (then restored), so
/// that a child may too.
fn can_raise_nofile(limit: u64) -> Res<()> {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `old` is a valid out-pointer for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if old.rlim_max >= limit {
        return Ok(());
    }
    let raised = libc::rlimit { rlim_cur: old.rlim_cur, rlim_max: limit as libc::rlim_t };
    // SAFETY: a pointer to a value on our stack, read during the call only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(format!(
            "the hard limit {} cannot be raised to {limit} here ({})",
            old.rlim_max,
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: as above; lowering a limit back is always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
    Ok(())
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn render(rows: &[Row], header: &[String], notes: &[String]) -> String {
    let mut out = String::new();
    out.push_str("## Latest run\n\n");
    for line in header {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str("\n| metric | sv-lite | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|\n");
    for row in rows {
        let cells = [&row.metric, &row.ours, &row.baseline, &row.ratio, &row.target, &row.met];
        let cells: Vec<String> = cells.iter().map(|cell| cell.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out.push_str("\nFigures are median (min–max, n = runs). Times are measured from outside the daemon.\n");
    if !notes.is_empty() {
        out.push_str("\nObserved during this run:\n\n");
        for note in notes {
            out.push_str(&format!("- {note}\n"));
        }
    }
    out
}

const DOC_HEADER: &str =
    "# Benchmarks\n\n`make bench` regenerates the part of this file between the bench markers.\n\n";
const DOC_HISTORY: &str = "## History / before-after\n\nBefore/after numbers for each optimisation, newest first. `make bench` never touches this section.\n";

/// Replaces the block between the markers, keeping everything else (the history section).
fn update_doc(path: &Path, block: &str) -> Res<()> {
    let generated = format!("{BEGIN_MARKER}\n{block}{END_MARKER}\n");
    let old = fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN_MARKER), old.find(END_MARKER)) {
        (Some(begin), Some(end)) if end > begin => {
            let after = &old[end + END_MARKER.len()..];
            format!("{}{generated}{}", &old[..begin], after.strip_prefix('\n').unwrap_or(after))
        }
        _ if old.is_empty() => format!("{DOC_HEADER}{generated}\n{DOC_HISTORY}"),
        _ => match old.find("## History") {
            Some(history) => format!("{}{generated}\n{}", &old[..history], &old[history..]),
            None => format!("{old}\n{generated}\n{DOC_HISTORY}"),
        },
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    }
    fs::write(path, new).map_err(|error| format!("{}: {error}", path.display()))
}

/// The parts of the bench, in the order `make bench` runs them (`forward` only when named).
const SECTIONS: [&str; 9] = ["restart", "spawn", "ctl", "memory", "scale", "log", "forward", "shutdown", "binary"];

/// `BENCH_ONLY=scale,spawn`: the sections to run, or None (all of them) when unset or empty.
fn bench_only() -> Res<Option<Vec<String>>> {
    let Ok(text) = std::env::var("BENCH_ONLY") else { return Ok(None) };
    let names: Vec<String> =
        text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_string).collect();
    if let Some(unknown) = names.iter().find(|name| !SECTIONS.contains(&name.as_str())) {
        return Err(format!("BENCH_ONLY: no section `{unknown}` (sections: {})", SECTIONS.join(", ")));
    }
    Ok((!names.is_empty()).then_some(names))
}

fn run(sv: PathBuf, section: Option<&str>) -> Res<()> {
    let started = Instant::now();
    let load_before = load_average();
    let sv =
        fs::canonicalize(&sv).map_err(|error| format!("{}: {error} (build it with `make static`)", sv.display()))?;
    let helpers = build_helpers()?;
    let mib: u64 = match std::env::var("BENCH_LOG_MIB") {
        Ok(text) => text
            .parse()
            .ok()
            .filter(|&mib| mib > 0)
            .ok_or(format!("BENCH_LOG_MIB={text:?} is not a positive number"))?,
        Err(_) => 1024,
    };
    let only = match section {
        Some(section) => Some(vec![section.to_string()]),
        None => bench_only()?,
    };
    become_subreaper();
    let dir = std::env::temp_dir().join(format!("sv-lite-bench-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let shm = PathBuf::from("/dev/shm");
    let log_dir = if free_bytes(&shm).is_some_and(|free| free > 2 * mib * MIB + 512 * MIB) {
        shm.join(format!("sv-lite-bench-{}", std::process::id()))
    } else {
        dir.clone()
    };
    fs::create_dir_all(&log_dir).map_err(|error| format!("{}: {error}", log_dir.display()))?;
    let mut bench = Bench {
        sv: sv.clone(),
        stamp: helpers.join("stamp"),
        respawner: helpers.join("respawner"),
        writer: helpers.join("writer"),
        dir: dir.clone(),
        log_dir: log_dir.clone(),
        daemon_nofile: None,
        no_cgroups: std::env::var_os("BENCH_NO_CGROUPS").is_some(),
        reaped: HashMap::new(),
        notes: Vec::new(),
        started,
    };
    bench.progress(&format!("sv-lite {}; work dir {}", sv.display(), dir.display()));

    let mut rows = Vec::new();
    let wants = |section: &str| only.as_ref().is_none_or(|only| only.iter().any(|name| name == section));
    if wants("restart") {
        bench.restart_rows(&mut rows);
    }
    if wants("spawn") {
        bench.spawn_rows(&mut rows);
    }
    if wants("ctl") {
        bench.ctl_rows(&mut rows);
    }
    if wants("memory") {
        bench.memory_rows(&mut rows);
    }
    if wants("scale") {
        bench.scale_rows(&mut rows);
    }
    if wants("log") {
        bench.log_rows(&mut rows, mib, false);
    }
    if only.as_ref().is_some_and(|only| only.iter().any(|name| name == "forward")) {
        bench.log_rows(&mut rows, mib, true);
    }
    if wants("shutdown") {
        bench.shutdown_rows(&mut rows);
    }
    if wants("binary") {
        bench.binary_row(&mut rows);
    }
    let left = bench.kill_descendants();
    if left > 0 {
        bench.note(format!("{left} processes were left at the end of the run (killed)"));
    }
    for dir in [&dir, &log_dir] {
        if let Err(error) = fs::remove_dir_all(dir) {
            if error.kind() != std::io::ErrorKind::NotFound {
                progress(&format!("warning: cannot remove {}: {error}", dir.display()));
            }
        }
    }

    let others: Vec<&str> =
        ["supervisord", "runsvdir", "s6-svscan"].into_iter().filter(|name| installed(name)).collect();
    let elapsed = started.elapsed().as_secs();
    let header = vec![
        format!("Date: {}", utc_now()),
        format!("Machine: {}, {} cores, Linux {}; {}", cpu_model(), core_count(), kernel(), limits()),
        format!(
            "Binary: `{}`{}",
            sv.display(),
            if bench.no_cgroups { ", every daemon but the 10,000-instance ones with `--no-cgroups`" } else { "" }
        ),
        format!(
            "Load average (1, 5, 15 min) at the start {load_before}, at the end {}: other work on the machine \
             makes the time figures noisier",
            load_average()
        ),
        format!(
            "Run time of the measurements: {}:{:02}; log runs of {mib} MiB (`BENCH_LOG_MIB` sets it) written to {}",
            elapsed / 60,
            elapsed % 60,
            fs_name(&log_dir)
        ),
        if others.is_empty() {
            "supervisord, runit and s6 are not installed: no side-by-side rows".to_string()
        } else {
            format!("installed but not yet benchmarked side by side: {}", others.join(", "))
        },
    ];
    let block = render(&rows, &header, &bench.notes);
    println!("{block}");
    if let Some(only) = only {
        progress(&format!("only {}: docs/BENCHMARKS.md left as it was", only.join(",")));
        return Ok(());
    }
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BENCHMARKS.md");
    update_doc(&doc, &block)?;
    progress(&format!("wrote {}", doc.display()));
    Ok(())
}

fn main() -> ExitCode {
    let usage = "usage: bench PATH_TO_SV_LITE [SECTION] (make bench passes the static release binary)";
    let mut args = std::env::args_os().skip(1);
    let Some(sv) = args.next() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let only = args.next().map(|section| section.to_string_lossy().into_owned());
    if let Some(section) = &only {
        if !SECTIONS.contains(&section.as_str()) || args.next().is_some() {
            eprintln!("{usage}; SECTION is one of {}", SECTIONS.join(", "));
            return ExitCode::from(2);
        }
    }
    match run(PathBuf::from(sv), only.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::from(1)
        }
    }
}
