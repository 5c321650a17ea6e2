//! Harness for the end-to-end tests: starts the real `sv-lite` binary on a real config in a
//! fresh temporary directory, drives it with `sv-lite ctl`, and cleans up so that no process
//! can leak, even when a test fails.
//!
//! Rules the tests follow:
//! - every wait is for something observable (a state, a log line, a file), through
//!   [`wait_until`] or [`Daemon::wait_for`], with a generous deadline: CI has two noisy cores;
//! - no timing is asserted;
//! - every process started for a test (the daemon, its children, their children) carries the
//!   environment variable `SV_LITE_TEST_TAG=<unique tag>`, and dropping the [`TestDir`] kills
//!   every process that still has it.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test: the shipped static build when `SV_LITE_STATIC_BIN` names it (as
/// `make test`, and so CI, does), else the debug build cargo made for the tests.
pub static BIN: std::sync::LazyLock<PathBuf> =
    std::sync::LazyLock::new(|| match std::env::var_os("SV_LITE_STATIC_BIN") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(path.exists(), "SV_LITE_STATIC_BIN={} does not exist; run `make static`", path.display());
            path
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_sv-lite")),
    });

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(20);

/// Deadline for the daemon to answer `ctl status` after it was started.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// A `ctl` command that has not answered after this long is a hung daemon: the test fails.
pub const CTL_DEADLINE: Duration = Duration::from_secs(60);

/// Generous default deadline for waits on supervision events.
pub const WAIT: Duration = Duration::from_secs(20);

/// Name of the environment variable that marks every process of one test.
pub const TAG_VAR: &str = "SV_LITE_TEST_TAG";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Polls `condition` every [`POLL`] until it holds; panics with `description` after `deadline`.
pub fn wait_until(description: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    if !poll_until(deadline, &mut condition) {
        panic!("timed out after {deadline:?} waiting for: {description}");
    }
}

/// Polls `condition` until it holds or `deadline` passes; returns whether it held.
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The text of a file, or "" when it does not exist (yet).
pub fn read(path: impl AsRef<Path>) -> String {
    fs::read(path.as_ref()).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}

/// Sends a signal (`TERM`, `KILL`, `HUP`...) to one pid with the `kill` utility (the crate
/// denies `unsafe`, so no libc here). Returns whether `kill` succeeded.
pub fn send_signal(pid: i32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// `/proc/PID/stat`'s state letter (R, S, Z...) and start time, or `None` when there is no
/// such process.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat is the start time; `fields` starts at field 3.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` names a live process (not a zombie).
pub fn alive(pid: i32) -> bool {
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Whether the process that had `pid` and `start` time is gone for good: no such pid, or the
/// pid was reused by another process. A zombie still counts as present (nobody reaped it).
pub fn gone(pid: i32, start: u64) -> bool {
    match proc_stat(pid) {
        None => true,
        Some((_, other_start)) => other_start != start,
    }
}

/// Pids of every process whose environment holds `SV_LITE_TEST_TAG=tag` (zombies have no
/// readable environment and are not listed).
pub fn tagged_pids(tag: &str) -> Vec<i32> {
    let needle = format!("{TAG_VAR}={tag}");
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(environ) = fs::read(entry.path().join("environ")) else { continue };
        if environ.split(|&byte| byte == 0).any(|variable| variable == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Sum of a counter (`voluntary_ctxt_switches`...) over every thread of `pid`.
pub fn thread_counter(pid: i32, key: &str) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    let mut total = 0;
    for task in tasks.flatten() {
        let status = read(task.path().join("status"));
        for line in status.lines() {
            if let Some(value) = line.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')) {
                total += value.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    total
}

/// The value of one `Key:` line of `/proc/PID/status`.
pub fn proc_status_field(pid: i32, key: &str) -> Option<String> {
    read(format!("/proc/{pid}/status")).lines().find_map(|line| {
        line.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')).map(|value| value.trim().to_string())
    })
}

/// The output of a command run for a test.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for messages and searches.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {:?}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs a command to completion with a deadline (a hung daemon must fail the test, not hang
/// it), capturing its output.
pub fn run_with_deadline(command: &mut Command, deadline: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let pid = child.id() as i32;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(deadline) {
        Ok(Ok(output)) => Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Ok(Err(error)) => panic!("waiting for {command:?}: {error}"),
        Err(_) => {
            send_signal(pid, "KILL");
            panic!("{command:?} did not finish within {deadline:?}");
        }
    }
}

/// `sv-lite ARGS...` (check, --version...), with a deadline.
pub fn sv_lite(args: &[&str]) -> Output {
    let mut command = Command::new(&*BIN);
    command.args(args).env_remove("SV_LITE_SOCKET").env("RUST_LOG", "info");
    run_with_deadline(&mut command, CTL_DEADLINE)
}

/// `sv-lite ctl -s SOCKET ARGS...` against any socket.
pub fn ctl_at(socket: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(&*BIN);
    command.arg("ctl").arg("-s").arg(socket).args(args).env_remove("SV_LITE_SOCKET").env("NO_COLOR", "1");
    run_with_deadline(&mut command, CTL_DEADLINE)
}

/// A fresh directory for one test, and the tag that marks its processes. Dropping it kills
/// every process that still carries the tag, then removes the directory (kept when
/// `SV_LITE_TEST_KEEP` is set, for debugging).
pub struct TestDir {
    pub path: PathBuf,
    pub tag: String,
}

impl TestDir {
    pub fn new() -> TestDir {
        let count = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.subsec_nanos()).unwrap_or(0);
        let tag = format!("sv-lite-e2e-{}-{count}-{nanos:x}", std::process::id());
        let path = std::env::temp_dir().join(&tag);
        fs::create_dir_all(&path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        TestDir { path, tag }
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `text` with every `{dir}` replaced by this directory.
    pub fn expand(&self, text: &str) -> String {
        text.replace("{dir}", &self.path.display().to_string())
    }

    /// Writes `text` (with `{dir}` expanded) to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, self.expand(text)).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        path
    }

    /// Kills every process that carries this directory's tag; returns how many there were.
    pub fn kill_tagged(&self) -> usize {
        let mut killed = 0;
        // A dying shell may fork once more: sweep until nothing is left (bounded).
        for _ in 0..50 {
            let pids = tagged_pids(&self.tag);
            if pids.is_empty() {
                break;
            }
            for pid in &pids {
                send_signal(*pid, "KILL");
            }
            killed += pids.len();
            std::thread::sleep(POLL);
        }
        killed
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        self.kill_tagged();
        if std::env::var_os("SV_LITE_TEST_KEEP").is_some() {
            eprintln!("keeping test directory {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The harness names the event log `{dir}/events.log` unless the config sets a logfile.
fn with_logfile(yaml: &str) -> String {
    let sets_logfile = yaml.lines().any(|line| line.starts_with("logfile:"));
    if sets_logfile {
        yaml.to_string()
    } else {
        format!("logfile: {{dir}}/events.log\n{yaml}")
    }
}

/// How [`Daemon::start_with`] launches the daemon.
pub struct Launch<'a> {
    /// Shell commands run by `sh` before it execs the daemon.
    pub shell_prelude: Option<&'a str>,
    /// Pass `-s SOCKET`.
    pub socket_flag: bool,
    /// Where the daemon listens (default `{dir}/sock`).
    pub socket: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(&'a str, &'a str)>,
    /// The daemon's stdout is a pipe left in `Daemon::child.stdout` for the test to read (or
    /// not), instead of a file.
    pub stdout_pipe: bool,
    /// Run this binary instead of [`BIN`] (the dynamic build, for LD_PRELOAD tools such as
    /// libfaketime, which cannot reach into the static binary).
    pub binary: Option<&'a Path>,
    /// More arguments for the daemon (`--no-cgroups`).
    pub args: Vec<&'a str>,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch {
            shell_prelude: None,
            socket_flag: true,
            socket: None,
            env: Vec::new(),
            stdout_pipe: false,
            binary: None,
            args: Vec::new(),
        }
    }
}

/// A running daemon under test.
pub struct Daemon {
    pub child: Child,
    pub pid: i32,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub events_path: PathBuf,
    exit: Option<ExitStatus>,
    /// Dropped last (after the daemon is stopped): kills leftovers, removes the directory.
    pub dir: TestDir,
}

impl Daemon {
    /// Writes `yaml` (with `{dir}` expanded, and `logfile: {dir}/events.log` added when the
    /// config has no logfile) to a fresh directory, starts the daemon on `{dir}/sock`, and
    /// waits until `ctl status` answers.
    pub fn start(yaml: &str) -> Daemon {
        Daemon::start_in(TestDir::new(), yaml)
    }

    /// Like [`Daemon::start`], in a directory the test prepared.
    pub fn start_in(dir: TestDir, yaml: &str) -> Daemon {
        Daemon::launch(dir, yaml, Launch::default())
    }

    /// Like [`Daemon::start`], but the daemon is exec'd by `sh` after `shell_prelude` (for
    /// example `trap '' USR2` to start it with a signal ignored). The pid stays the same.
    pub fn start_via_shell(yaml: &str, shell_prelude: &str) -> Daemon {
        Daemon::launch(TestDir::new(), yaml, Launch { shell_prelude: Some(shell_prelude), ..Launch::default() })
    }

    /// Like [`Daemon::start_in`], with control over how the socket is chosen: `launch.socket`
    /// is where the daemon is expected to listen, passed as `-s` only with `launch.socket_flag`,
    /// and `launch.env` is added to its environment.
    pub fn start_with(dir: TestDir, yaml: &str, launch: Launch<'_>) -> Daemon {
        Daemon::launch(dir, yaml, launch)
    }

    fn launch(dir: TestDir, yaml: &str, launch: Launch<'_>) -> Daemon {
        let config = dir.write("sv-lite.yaml", &with_logfile(yaml));
        let socket = launch.socket.clone().unwrap_or_else(|| dir.join("sock"));
        let stdout_path = dir.join("daemon.stdout");
        let stderr_path = dir.join("daemon.stderr");
        let binary: &Path = launch.binary.unwrap_or(&BIN);
        let mut command = match launch.shell_prelude {
            None => Command::new(binary),
            Some(prelude) => {
                // `sh` by name with PATH set explicitly makes std fork and exec instead of using
                // posix_spawn, whose glibc version hands the child the internal signals 32 and
                // 33 ignored: the shell, then the daemon, start with exactly what the prelude
                // sets.
                let mut shell = Command::new("sh");
                shell.env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
                shell.arg("-c").arg(format!("{prelude}\nexec \"$0\" \"$@\"")).arg(binary);
                shell
            }
        };
        command.args(&launch.args).arg("-c").arg(&config);
        if launch.socket_flag {
            command.arg("-s").arg(&socket);
        }
        command
            .current_dir(&dir.path)
            .env(TAG_VAR, &dir.tag)
            .env("RUST_LOG", "info")
            .env_remove("SV_LITE_SOCKET")
            .envs(launch.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(if launch.stdout_pipe { Stdio::piped() } else { file_for(&stdout_path) })
            .stderr(file_for(&stderr_path));
        let child = command.spawn().unwrap_or_else(|error| panic!("cannot start {}: {error}", BIN.display()));
        let pid = child.id() as i32;
        let mut daemon = Daemon {
            child,
            pid,
            config,
            socket,
            stdout_path,
            stderr_path,
            events_path: dir.join("events.log"),
            exit: None,
            dir,
        };
        let end = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = daemon.try_exit() {
                panic!("the daemon exited with {status} before answering\n{}", daemon.diagnostics());
            }
            if daemon.socket.exists() && daemon.ctl(&["status"]).code == Some(0) {
                return daemon;
            }
            if Instant::now() >= end {
                panic!("the daemon did not answer `ctl status` within {START_DEADLINE:?}\n{}", daemon.diagnostics());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Starts the daemon on a config that must be refused; returns its exit code and stderr.
    /// Every process it may have started is killed when the directory is dropped.
    pub fn start_expecting_failure(yaml: &str) -> (Option<i32>, String) {
        let dir = TestDir::new();
        Daemon::start_expecting_failure_in(&dir, &dir.expand(yaml))
    }

    /// Runs the daemon on `yaml` (written as is, with `{dir}` expanded, so line numbers are the
    /// test's own) in `dir`, on `{dir}/sock`, and waits for it to exit.
    pub fn start_expecting_failure_in(dir: &TestDir, yaml: &str) -> (Option<i32>, String) {
        let config = dir.write("sv-lite.yaml", yaml);
        Daemon::run_expecting_failure(dir, &config, &dir.join("sock"))
    }

    /// Runs the daemon on an existing config and socket path; waits for it to exit.
    pub fn run_expecting_failure(dir: &TestDir, config: &Path, socket: &Path) -> (Option<i32>, String) {
        let mut command = Command::new(&*BIN);
        command
            .arg("-c")
            .arg(config)
            .arg("-s")
            .arg(socket)
            .current_dir(&dir.path)
            .env(TAG_VAR, &dir.tag)
            .env("RUST_LOG", "info")
            .env_remove("SV_LITE_SOCKET");
        let output = run_with_deadline(&mut command, START_DEADLINE);
        (output.code, output.stderr)
    }

    /// `sv-lite ctl -s {dir}/sock ARGS...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl_at(&self.socket, args)
    }

    /// `ctl ARGS...`, which must exit 0.
    pub fn ctl_ok(&self, args: &[&str]) -> Output {
        let output = self.ctl(args);
        assert_eq!(output.code, Some(0), "`sv-lite ctl {}` failed:\n{output}\n{}", args.join(" "), self.diagnostics());
        output
    }

    /// `ctl status --json`, parsed: an array of rows.
    pub fn status_json(&self) -> Value {
        let output = self.ctl(&["status", "--json"]);
        assert_eq!(output.code, Some(0), "`ctl status --json` failed:\n{output}\n{}", self.diagnostics());
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("`ctl status --json` printed no JSON ({error}):\n{output}"))
    }

    /// The status row of one instance (`web:0`), if listed.
    pub fn row(&self, instance: &str) -> Option<Value> {
        self.status_json().as_array()?.iter().find(|row| row["name"] == instance).cloned()
    }

    /// The names of every listed instance, in order.
    pub fn names(&self) -> Vec<String> {
        let status = self.status_json();
        status
            .as_array()
            .map(|rows| rows.iter().filter_map(|row| row["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// The state of one instance (`RUNNING`...), or `ABSENT` when it is not listed.
    pub fn state_of(&self, instance: &str) -> String {
        self.row(instance)
            .and_then(|row| row["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| "ABSENT".to_string())
    }

    /// The pid of one instance, when it has a process.
    pub fn pid_of(&self, instance: &str) -> Option<i32> {
        self.row(instance).and_then(|row| row["pid"].as_i64()).map(|pid| pid as i32)
    }

    /// Waits until `instance` is in `state`; returns its row.
    pub fn wait_state(&self, instance: &str, state: &str) -> Value {
        self.wait_for(&format!("{instance} to be {state}"), WAIT, || self.state_of(instance) == state);
        self.row(instance).unwrap_or_default()
    }

    /// Waits until `instance` is in one of `states`; returns its row.
    pub fn wait_state_any(&self, instance: &str, states: &[&str]) -> Value {
        let mut row = Value::Null;
        self.wait_for(&format!("{instance} to be one of {states:?}"), WAIT, || {
            row = self.row(instance).unwrap_or_default();
            states.iter().any(|state| row["state"] == *state)
        });
        row
    }

    /// The pid of an instance's process found through /proc while the daemon cannot answer
    /// (paused with SIGSTOP): its only child process running under this test's tag.
    pub fn pid_of_paused(&self, instance: &str) -> i32 {
        let children: Vec<i32> = tagged_pids(&self.dir.tag)
            .into_iter()
            .filter(|pid| {
                let stat = read(format!("/proc/{pid}/stat"));
                stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)) == Some(&self.pid.to_string())
            })
            .collect();
        match children[..] {
            [pid] => pid,
            _ => panic!("expected one child of the daemon for {instance}, found {children:?}"),
        }
    }

    /// Waits until `instance` is RUNNING; returns its pid.
    pub fn wait_running(&self, instance: &str) -> i32 {
        let row = self.wait_state(instance, "RUNNING");
        row["pid"].as_i64().unwrap_or_else(|| panic!("{instance} is RUNNING without a pid: {row}")) as i32
    }

    /// Waits until every instance in `instances` is RUNNING; returns their pids in order.
    pub fn wait_all_running(&self, instances: &[&str]) -> Vec<i32> {
        let mut pids = Vec::new();
        self.wait_for(&format!("{} to be RUNNING", instances.join(", ")), WAIT, || {
            let status = self.status_json();
            let rows = status.as_array().cloned().unwrap_or_default();
            pids = instances
                .iter()
                .filter_map(|name| rows.iter().find(|row| row["name"] == *name))
                .filter(|row| row["state"] == "RUNNING")
                .filter_map(|row| row["pid"].as_i64().map(|pid| pid as i32))
                .collect();
            pids.len() == instances.len()
        });
        pids
    }

    /// Polls `condition` until it holds; on timeout panics with `description` and the daemon's
    /// stderr, stdout, event log and status.
    pub fn wait_for(&self, description: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
        if !poll_until(deadline, &mut condition) {
            panic!("timed out after {deadline:?} waiting for: {description}\n{}", self.diagnostics());
        }
    }

    /// Waits until the event log holds a line containing `needle`.
    pub fn wait_event(&self, needle: &str) {
        self.wait_for(&format!("event log line containing {needle:?}"), WAIT, || self.events().contains(needle));
    }

    /// The event log.
    pub fn events(&self) -> String {
        read(&self.events_path)
    }

    /// Event log lines containing every one of `needles`.
    pub fn event_lines(&self, needles: &[&str]) -> Vec<String> {
        self.events()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_string)
            .collect()
    }

    /// What the daemon printed on stdout (forwarded child output).
    pub fn stdout(&self) -> String {
        read(&self.stdout_path)
    }

    /// What the daemon printed on stderr (its log, forwarded child stderr).
    pub fn stderr(&self) -> String {
        read(&self.stderr_path)
    }

    /// `{dir}/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Waits until `{dir}/name` contains `needle`; returns the file's text.
    pub fn wait_file(&self, name: &str, needle: &str) -> String {
        let path = self.path(name);
        let mut text = String::new();
        self.wait_for(&format!("{} to contain {needle:?}", path.display()), WAIT, || {
            text = read(&path);
            text.contains(needle)
        });
        text
    }

    /// Waits until `{dir}/name` has at least `lines` lines; returns the count.
    pub fn wait_lines(&self, name: &str, lines: usize) -> usize {
        let path = self.path(name);
        self.wait_for(&format!("{} to have {lines} lines", path.display()), WAIT, || line_count(&path) >= lines);
        line_count(&path)
    }

    /// Replaces the config file (same rules as [`Daemon::start`]), for reload tests.
    pub fn write_config(&self, yaml: &str) {
        self.dir.write("sv-lite.yaml", &with_logfile(yaml));
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: &str) {
        assert!(send_signal(self.pid, signal), "cannot send SIG{signal} to the daemon (pid {})", self.pid);
    }

    /// The daemon's exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits for the daemon to exit; panics with diagnostics after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            if Instant::now() >= end {
                panic!("the daemon did not exit within {deadline:?}\n{}", self.diagnostics());
            }
            std::thread::sleep(POLL);
        }
    }

    /// `ctl shutdown`, then waits for the daemon to exit; returns its exit status.
    pub fn shutdown(mut self) -> ExitStatus {
        let output = self.ctl(&["shutdown"]);
        assert_eq!(output.code, Some(0), "`ctl shutdown` failed:\n{output}\n{}", self.diagnostics());
        self.wait_exit(WAIT)
    }

    /// Everything that helps to understand a failure.
    pub fn diagnostics(&self) -> String {
        let status = ctl_at(&self.socket, &["status"]);
        format!(
            "--- daemon stderr ({}) ---\n{}--- daemon stdout ---\n{}--- event log ---\n{}--- ctl status ---\n{}",
            self.stderr_path.display(),
            tail(&self.stderr(), 80),
            tail(&self.stdout(), 40),
            tail(&self.events(), 80),
            status.all()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            send_signal(self.pid, "TERM");
            if !poll_until(Duration::from_secs(10), || self.try_exit().is_some()) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // `self.dir` is dropped next: it kills every leftover tagged process.
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn file_for(path: &Path) -> Stdio {
    let file = fs::File::create(path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
    Stdio::from(file)
}

/// Reads a whole file that another process may still be writing: waits until it holds `needle`.
pub fn wait_file_contains(path: &Path, needle: &str) -> String {
    let mut text = String::new();
    wait_until(&format!("{} to contain {needle:?}", path.display()), WAIT, || {
        text = read(path);
        text.contains(needle)
    });
    text
}

/// Number of lines in a file (0 when absent).
pub fn line_count(path: &Path) -> usize {
    read(path).lines().count()
}

/// Whether a daemon started by this test process can give each instance a cgroup: cgroup v2
/// holds our cgroup, and a directory made in it has `cgroup.kill`. Found here independently of
/// sv-lite's own detection, which tests compare with it.
pub fn cgroups_usable() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("0::").map(str::to_string))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        (after.starts_with("cgroup2 ") && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).map(|point| point.to_string()))?
    })?;
    // Unique per call: tests of one binary run at once in one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(format!("{mount}{own}")).join(format!("oracle.{}.{call}", std::process::id()));
    std::fs::create_dir(&dir).ok()?;
    let usable = dir.join("cgroup.kill").exists();
    let _ = std::fs::remove_dir(&dir);
    usable.then(|| dir.parent().map(Path::to_path_buf)).flatten()
}

/// [`cgroups_usable`], for a test that needs cgroups: off CI it may skip (None, said on
/// stderr); in CI (the machines have cgroup v2 with `cgroup.kill`) it fails instead.
pub fn cgroups_required() -> Option<PathBuf> {
    let usable = cgroups_usable();
    if usable.is_none() {
        assert!(std::env::var("CI").is_err(), "cgroup v2 is not usable here, and CI must run the cgroup tests");
        eprintln!("note: cgroup v2 is not usable on this machine; skipping");
    }
    usable
}
