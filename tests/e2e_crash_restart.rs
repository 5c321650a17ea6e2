//! The daemon survives its own crash (issue 15): killed with SIGKILL and started again on the
//! same config and state directory, it stops the programs the first run left behind (found
//! through `STATE_DIR/instances.journal`, checked by start time) before it starts them again,
//! so no instance runs twice. A pid the ledger names that now belongs to an unrelated process
//! is left alone, and a program that ignores its stop signal gets SIGKILL after its stop time.
//!
//! The daemons here are plain daemons (not PID 1), started by the test itself, because the
//! test needs two of them on one directory. When the first is killed its programs are
//! re-parented to init (which here may never reap them: a zombie counts as gone).

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{alive, ctl_at, poll_until, proc_stat, read, send_signal, wait_until, TestDir, BIN, TAG_VAR, WAIT};
use serde_json::Value;

/// One daemon run on `{dir}/sv-lite.yaml` and `{dir}/sock`. Dropping it stops it (TERM, then
/// KILL); whatever it leaves is killed by the [`TestDir`] (every process carries its tag).
struct Run {
    child: Child,
    pid: i32,
    socket: PathBuf,
    stderr: PathBuf,
    events: PathBuf,
    exited: bool,
}

impl Run {
    /// Starts run number `n` and waits until it answers `ctl status`.
    fn start(dir: &TestDir, n: u32) -> Run {
        let stderr = dir.join(&format!("daemon.{n}.stderr"));
        let file = fs::File::create(&stderr).unwrap_or_else(|error| panic!("{}: {error}", stderr.display()));
        let child = Command::new(&*BIN)
            .arg("-c")
            .arg(dir.join("sv-lite.yaml"))
            .arg("-s")
            .arg(dir.join("sock"))
            .current_dir(&dir.path)
            .env(TAG_VAR, &dir.tag)
            .env("RUST_LOG", "info")
            .env_remove("SV_LITE_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", BIN.display()));
        let pid = child.id() as i32;
        let mut run =
            Run { child, pid, socket: dir.join("sock"), stderr, events: dir.join("events.log"), exited: false };
        let answering = poll_until(WAIT, || {
            if run.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            run.socket.exists() && ctl_at(&run.socket, &["status"]).code == Some(0)
        });
        assert!(
            answering && run.child.try_wait().ok().flatten().is_none(),
            "run {n} of the daemon did not come up\n{}",
            run.diagnostics()
        );
        run
    }

    /// `ctl status --json` rows.
    fn rows(&self) -> Vec<Value> {
        let output = ctl_at(&self.socket, &["status", "--json"]);
        assert_eq!(output.code, Some(0), "`ctl status --json` failed:\n{output}\n{}", self.diagnostics());
        let rows: Value = serde_json::from_str(&output.stdout).unwrap_or_else(|error| panic!("{error}: {output}"));
        rows.as_array().cloned().unwrap_or_default()
    }

    /// Waits until `count` instances are RUNNING; returns their pids by name.
    fn wait_running(&self, count: usize) -> HashMap<String, i32> {
        let mut running = HashMap::new();
        let ok = poll_until(WAIT, || {
            running = self
                .rows()
                .iter()
                .filter(|row| row["state"] == "RUNNING")
                .filter_map(|row| Some((row["name"].as_str()?.to_string(), row["pid"].as_i64()? as i32)))
                .collect();
            running.len() == count
        });
        assert!(ok, "expected {count} instances RUNNING, found {running:?}\n{}", self.diagnostics());
        running
    }

    /// The daemon's stderr and event log.
    fn log(&self) -> String {
        format!("{}{}", read(&self.stderr), read(&self.events))
    }

    /// SIGKILL, and the exit reaped.
    fn crash(&mut self) {
        assert!(send_signal(self.pid, "KILL"), "cannot kill the daemon (pid {})", self.pid);
        let status = self.child.wait().expect("wait for the killed daemon");
        self.exited = true;
        assert!(!status.success(), "{status}");
    }

    /// `ctl shutdown`, and the exit reaped.
    fn shutdown(&mut self) {
        let output = ctl_at(&self.socket, &["shutdown"]);
        assert_eq!(output.code, Some(0), "`ctl shutdown` failed:\n{output}");
        let exited = poll_until(WAIT, || self.child.try_wait().ok().flatten().is_some());
        assert!(exited, "the daemon did not exit after `ctl shutdown`\n{}", self.diagnostics());
        self.exited = true;
    }

    fn diagnostics(&self) -> String {
        format!(
            "--- daemon stderr ({}) ---\n{}--- ctl status ---\n{}",
            self.stderr.display(),
            common::tail(&self.log(), 80),
            ctl_at(&self.socket, &["status"]).all()
        )
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.exited {
            return;
        }
        send_signal(self.pid, "TERM");
        if !poll_until(Duration::from_secs(10), || self.child.try_wait().ok().flatten().is_some()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process started by the test itself, killed when dropped.
struct Stranger(Child);

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A live process of this test's programs: its pid, start time and `SV_LITE_INSTANCE`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Program {
    pid: i32,
    start: u64,
    instance: String,
}

/// Every live process of this test that carries `SV_LITE_INSTANCE` (which sv-lite sets for
/// each program it launches; their children inherit it). Zombies have no environment.
fn program_processes(tag: &str) -> Vec<Program> {
    let marker = format!("{TAG_VAR}={tag}");
    let mut found = Vec::new();
    for pid in common::tagged_pids(tag) {
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else { continue };
        let variables: Vec<&[u8]> = environ.split(|&byte| byte == 0).collect();
        if !variables.contains(&marker.as_bytes()) {
            continue;
        }
        let instance = variables.iter().find_map(|variable| variable.strip_prefix(b"SV_LITE_INSTANCE="));
        let (Some(instance), Some((_, start))) = (instance, proc_stat(pid)) else { continue };
        found.push(Program { pid, start, instance: String::from_utf8_lossy(instance).into_owned() });
    }
    found
}

/// Whether the process is still the one seen (alive, not a zombie, same start time).
fn still_there(program: &Program) -> bool {
    alive(program.pid) && proc_stat(program.pid).is_some_and(|(_, start)| start == program.start)
}

/// Processes per instance.
fn per_instance(programs: &[Program]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for program in programs {
        *counts.entry(program.instance.clone()).or_insert(0) += 1;
    }
    counts
}

fn write_config(dir: &TestDir, programs: &str) {
    dir.write("sv-lite.yaml", &format!("logfile: {{dir}}/events.log\nstate_dir: {{dir}}/state\n{programs}"));
}

#[test]
fn after_a_kill_9_the_orphans_are_stopped_before_the_programs_start_again() {
    let dir = TestDir::new();
    // 15 plain processes and 5 shells with a child in their process group: 20 instances, 25
    // processes. The stop must reach the children too, or they would be left beside the new
    // run.
    write_config(
        &dir,
        r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 15
    starttime: 0.1
    stoptime: 5
  worker:
    cmd: ["/bin/sh", "-c", "sleep 1000 & wait"]
    numprocs: 5
    starttime: 0.1
    stoptime: 5
"#,
    );
    let mut first = Run::start(&dir, 1);
    let first_pids = first.wait_running(20);
    let mut old = Vec::new();
    wait_until("25 processes of the first run", WAIT, || {
        old = program_processes(&dir.tag);
        old.len() == 25
    });
    let journal = dir.join("state/instances.journal");
    wait_until("20 entries in the ledger", WAIT, || {
        sv_lite::ledger::parse(&read(&journal)).map(|parsed| parsed.entries.len()).unwrap_or(0) == 20
    });

    first.crash();
    // Orphans now: every process of the first run is still there.
    let orphans: Vec<&Program> = old.iter().filter(|program| still_there(program)).collect();
    assert_eq!(orphans.len(), 25, "the programs must outlive the killed daemon: {old:?}");

    let second = Run::start(&dir, 2);
    let second_pids = second.wait_running(20);
    // Each main process of the first run was gone before its instance started again; their
    // children got the signal with them.
    for (name, pid) in &first_pids {
        let program = old.iter().find(|program| program.pid == *pid).expect("a main pid among the processes");
        assert!(!still_there(program), "{name} (pid {pid}) of the first run is still alive\n{}", second.diagnostics());
        assert_ne!(second_pids.get(name), Some(pid));
    }
    wait_until("no process of the first run left", WAIT, || old.iter().all(|program| !still_there(program)));
    // Exactly one of each: 20 instances, 25 processes, none doubled.
    let now = program_processes(&dir.tag);
    let counts = per_instance(&now);
    assert_eq!(counts.len(), 20, "{now:?}");
    for (instance, count) in &counts {
        let expected = if instance.starts_with("worker:") { 2 } else { 1 };
        assert_eq!(*count, expected, "{instance} runs {count} processes: {now:?}");
    }
    assert!(now.iter().all(|program| !old.contains(program)), "{now:?}");
    let log = second.log();
    for (name, pid) in &first_pids {
        let found = format!("found {name} (pid {pid}) of a previous run still alive; stopping it");
        assert!(log.contains(&found), "no {found:?} in the log:\n{log}");
    }
    assert!(log.contains("stopped 20 of 20 processes left by a previous run"), "{log}");
    // The fresh ledger names the second run's processes.
    let parsed = sv_lite::ledger::parse(&read(&journal)).expect("a ledger");
    let mut recorded: Vec<i32> = parsed.entries.iter().map(|entry| entry.pid).collect();
    let mut running: Vec<i32> = second_pids.values().copied().collect();
    recorded.sort_unstable();
    running.sort_unstable();
    assert_eq!(recorded, running);
    drop(second);
}

#[test]
fn a_pid_the_ledger_names_that_now_belongs_to_another_process_is_left_alone() {
    let dir = TestDir::new();
    write_config(&dir, "programs:\n  web:\n    cmd: \"sleep 1000\"\n    starttime: 0.1\n");
    // An unrelated process, leader of its own process group, under a pid the ledger names
    // with another start time: as if web:0's pid had been reused since.
    let stranger = Stranger(
        Command::new("sleep")
            .arg("1000")
            .env(TAG_VAR, &dir.tag)
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sleep"),
    );
    let pid = stranger.0.id() as i32;
    let (_, start) = proc_stat(pid).expect("the stranger's stat");
    fs::create_dir_all(dir.join("state")).unwrap();
    // A torn last line, as a crash in the middle of a write leaves, is skipped.
    let ledger = format!("sv-lite instances 1\n+ web:0 {pid} {} TERM 1000 group\n+ web:1 4", start + 1);
    fs::write(dir.join("state/instances.journal"), ledger).unwrap();

    let mut run = Run::start(&dir, 1);
    run.wait_running(1);
    let log = run.log();
    assert!(log.contains(&format!("pid {pid} of web:0 (a previous run) now belongs to another process")), "{log}");
    assert!(!log.contains("found web:0"), "{log}");
    assert!(still_there(&Program { pid, start, instance: String::new() }), "the stranger was stopped\n{log}");
    run.shutdown();
    assert!(alive(pid), "the stranger did not survive the daemon's shutdown");
}

#[test]
fn an_orphan_that_ignores_its_stop_signal_gets_sigkill_after_its_stoptime() {
    let dir = TestDir::new();
    write_config(
        &dir,
        r#"
programs:
  stubborn:
    cmd: ["/bin/sh", "-c", "trap '' TERM; exec sleep 1000"]
    starttime: 0.1
    stoptime: 1
"#,
    );
    let mut first = Run::start(&dir, 1);
    let pid = first.wait_running(1)["stubborn:0"];
    let (_, start) = proc_stat(pid).expect("stat of stubborn:0");
    let program = Program { pid, start, instance: "stubborn:0".to_string() };
    wait_until("stubborn:0 in the ledger", WAIT, || {
        read(dir.join("state/instances.journal")).contains(&pid.to_string())
    });
    first.crash();
    assert!(still_there(&program));

    let second = Run::start(&dir, 2);
    let new_pid = second.wait_running(1)["stubborn:0"];
    assert_ne!(new_pid, pid);
    assert!(!still_there(&program), "the orphan outlived SIGKILL\n{}", second.diagnostics());
    let log = second.log();
    for needle in [
        format!("found stubborn:0 (pid {pid}) of a previous run still alive; stopping it: SIGTERM to its process group, SIGKILL after 1s"),
        format!("stubborn:0 (pid {pid}) of a previous run still running 1s after SIGTERM; sending SIGKILL"),
        format!("stubborn:0 (pid {pid}) of a previous run exited after SIGKILL"),
    ] {
        assert!(log.contains(&needle), "no {needle:?} in the log:\n{log}");
    }
}

#[test]
fn a_pid_file_daemon_of_the_first_run_is_stopped_too() {
    let dir = TestDir::new();
    // The launcher forks the daemon and exits: the daemon is in the launcher's process group,
    // which it does not lead, so the ledger records its pid alone (from the pid file).
    write_config(
        &dir,
        r#"
programs:
  forking:
    cmd: ["/bin/sh", "-c", "sleep 1000 & echo $! > {dir}/forking.pid"]
    pid_file: "{dir}/forking.pid"
    monitor_interval: 0.2
    starttime: 0.1
"#,
    );
    let mut first = Run::start(&dir, 1);
    let pid = first.wait_running(1)["forking:0"];
    let (_, start) = proc_stat(pid).expect("stat of the daemon");
    let program = Program { pid, start, instance: "forking:0".to_string() };
    let journal = dir.join("state/instances.journal");
    wait_until("the daemon's pid in the ledger", WAIT, || {
        sv_lite::ledger::parse(&read(&journal))
            .is_ok_and(|parsed| parsed.entries.iter().any(|entry| entry.pid == pid && !entry.group))
    });
    first.crash();
    assert!(still_there(&program));

    let second = Run::start(&dir, 2);
    let new_pid = second.wait_running(1)["forking:0"];
    assert_ne!(new_pid, pid);
    assert!(!still_there(&program), "the first run's daemon is still alive\n{}", second.diagnostics());
    let log = second.log();
    let found = format!("found forking:0 (pid {pid}) of a previous run still alive; stopping it: SIGTERM to its pid");
    assert!(log.contains(&found), "no {found:?} in the log:\n{log}");
}
