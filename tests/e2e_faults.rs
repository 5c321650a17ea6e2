//! Faults around the daemon (issue 15, "Faults"): a full event log disk, a read-only state
//! directory, the daemon itself stopped with SIGSTOP, and control clients that send one byte a
//! second. Each time supervision must go on, and the failure must be said once and clearly.
//! docs/RELIABILITY.md lists them.
//!
//! The mount tests need root (tmpfs mounts); elsewhere they are skipped, but never in CI. Every
//! mount is undone by a guard, declared before the daemon so that it is dropped after it.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{line_count, poll_until, proc_stat, Daemon, Launch, TestDir, WAIT};

/// A tmpfs mounted for one test, unmounted (and its mount point removed) on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (`size=64k`, `ro`...). `None` when mounting is refused here
    /// (not root) outside CI; in CI that fails the test.
    fn mount(label: &str, options: &str) -> Option<Tmpfs> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("sv-lite-fault-{}-{label}-{nanos:x}", std::process::id()));
        fs::create_dir_all(&path).unwrap_or_else(|error| panic!("mkdir {}: {error}", path.display()));
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "sv-lite-fault"])
            .arg(&path)
            .output()
            .expect("run mount");
        if output.status.success() {
            return Some(Tmpfs { path });
        }
        let _ = fs::remove_dir(&path);
        let why = String::from_utf8_lossy(&output.stderr);
        assert!(std::env::var("CI").is_err(), "cannot mount a tmpfs ({why}), and CI must run these tests");
        eprintln!("skipping: cannot mount a tmpfs here (needs root): {why}");
        None
    }

    fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status().is_ok_and(|status| status.success());
        if !unmounted {
            // Still busy (a process we could not kill holds a file): detach it now, the kernel
            // frees it when the last user goes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// Fills the file system under `path` with one file: writes until the disk is full.
fn fill(path: &Path) {
    let mut file = fs::File::create(path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
    let block = [0u8; 4096];
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(libc_enospc()) => break,
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
}

/// ENOSPC, without a libc dependency in the tests.
fn libc_enospc() -> i32 {
    28
}

/// Whether every line of an event log is one whole event: it starts with a timestamp and holds
/// no second one (a torn line glued to the next).
fn whole_lines(text: &str) -> Result<(), String> {
    for line in text.lines() {
        let stamped = line.len() > 24 && line.as_bytes()[4] == b'-' && line.as_bytes()[10] == b'T';
        let stamps =
            line.matches("Z INFO ").count() + line.matches("Z WARN ").count() + line.matches("Z ERROR ").count();
        if !stamped || stamps != 1 {
            return Err(format!("not one whole event: {line:?}"));
        }
    }
    Ok(())
}

// See: issue 15, "the event log's disk fills".
#[test]
fn a_full_event_log_disk_is_reported_once_then_on_recovery_and_supervision_goes_on() {
    let Some(disk) = Tmpfs::mount("logfs", "size=64k") else { return };
    let log = disk.join("events.log");
    let daemon = Daemon::start(&format!(
        r#"
logfile: {}
programs:
  crasher:
    cmd: ["/bin/sh", "-c", "echo run >> {{dir}}/spawns; sleep 0.2; exit 3"]
    starttime: 0
    stability_window: 0
    autorestart: always
"#,
        log.display()
    ));
    let failed = format!("event log {}: write failed: No space left on device", log.display());
    let resumed = format!("event log {}: writing again;", log.display());
    daemon.wait_lines("spawns", 2);

    fill(&disk.join("filler"));
    daemon.wait_for("the event log's write failure on stderr", WAIT, || daemon.stderr().contains(&failed));
    // Supervision goes on: the crasher keeps being restarted (each restart is an event the full
    // disk refuses), and the control socket answers.
    let spawns = line_count(&daemon.path("spawns"));
    daemon.wait_lines("spawns", spawns + 5);
    daemon.ctl_ok(&["status"]);
    assert_eq!(
        daemon.stderr().matches(&failed).count(),
        1,
        "reported once, not once per event\n{}",
        daemon.diagnostics()
    );
    assert!(!daemon.stderr().contains(&resumed), "{}", daemon.diagnostics());

    fs::remove_file(disk.join("filler")).expect("free the disk");
    daemon.wait_for("the recovery line on stderr", WAIT, || daemon.stderr().contains(&resumed));
    // The note of the gap is in the file too, and events follow it.
    let mut text = String::new();
    daemon.wait_for("events written after the recovery", WAIT, || {
        text = common::read(&log);
        text.split_once(&resumed).is_some_and(|(_, after)| after.matches("crasher:0").count() >= 2)
    });
    let stderr = daemon.stderr();
    assert_eq!(stderr.matches(&failed).count(), 1, "{stderr}");
    assert_eq!(stderr.matches(&resumed).count(), 1, "{stderr}");
    whole_lines(&text).unwrap_or_else(|error| panic!("{error}\n--- event log ---\n{text}"));
    daemon.shutdown();
}

// See: issue 15, "state_dir is read-only".
#[test]
fn a_read_only_state_dir_fails_the_stop_loudly_and_supervision_goes_on() {
    let Some(state) = Tmpfs::mount("state", "ro,size=64k") else { return };
    let daemon = Daemon::start(&format!(
        r#"
state_dir: {}
programs:
  victim:
    cmd: ["/bin/sleep", "1000"]
    starttime: 0
  other:
    cmd: ["/bin/sleep", "1000"]
    starttime: 0
  crasher:
    cmd: ["/bin/sh", "-c", "echo run >> {{dir}}/spawns; sleep 0.2; exit 3"]
    starttime: 0
    stability_window: 0
    autorestart: always
"#,
        state.path.display()
    ));
    let pids = daemon.wait_all_running(&["victim:0", "other:0"]);

    let stop = daemon.ctl(&["stop", "victim"]);
    let why = format!("the stopped flag was not saved in {}: Read-only file system", state.path.display());
    assert_eq!(stop.code, Some(1), "the client hears of it\n{stop}");
    assert!(stop.all().contains("victim:0") && stop.all().contains(&why), "{stop}");
    daemon.wait_for("the daemon's log of it", WAIT, || daemon.events().contains(&format!("victim:0: {why}")));
    assert!(daemon.stderr().contains(&format!("victim:0: {why}")), "{}", daemon.diagnostics());

    // The stop itself went ahead (README: held down until `ctl start`, for this daemon's life).
    assert_eq!(daemon.state_of("victim:0"), "STOPPED");
    assert!(!common::alive(pids[0]), "victim's process {} outlived the stop", pids[0]);
    // Supervision goes on: the other program keeps its process, the crasher keeps restarting.
    let spawns = line_count(&daemon.path("spawns"));
    daemon.wait_lines("spawns", spawns + 3);
    assert_eq!(daemon.pid_of("other:0"), Some(pids[1]));
    assert_eq!(daemon.state_of("other:0"), "RUNNING");

    // Clearing a flag that was never written needs no write: start works on a read-only dir.
    let start = daemon.ctl(&["start", "victim"]);
    assert_eq!(start.code, Some(0), "{start}");
    daemon.wait_running("victim:0");
    assert!(fs::read_dir(&state.path).expect("read state_dir").next().is_none());
    daemon.shutdown();
}

/// `sv_lite_instance_restarts_total` of each instance, from `/metrics` on a Unix socket.
fn restarts(http: &Path) -> HashMap<String, u64> {
    let mut stream = UnixStream::connect(http).unwrap_or_else(|error| panic!("connect {}: {error}", http.display()));
    stream.set_read_timeout(Some(common::CTL_DEADLINE)).expect("timeout");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("GET /metrics");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read /metrics");
    text.lines()
        .filter_map(|line| line.strip_prefix("sv_lite_instance_restarts_total{"))
        .filter_map(|rest| {
            let instance = rest.split("instance=\"").nth(1)?.split('"').next()?;
            let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
            Some((instance.to_string(), value as u64))
        })
        .collect()
}

/// The children of `pid`, each with its state letter (Z for a zombie).
fn children(pid: i32) -> Vec<(i32, char)> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|child| {
            let stat = common::read(format!("/proc/{child}/stat"));
            let after = &stat[stat.rfind(')')? + 1..];
            let mut fields = after.split_whitespace();
            let state = fields.next()?.chars().next()?;
            (fields.next()? == pid.to_string()).then_some((child, state))
        })
        .collect()
}

// See: issue 15, "the daemon is stopped with SIGSTOP for 10 s while programs exit".
#[test]
fn after_sigstop_and_sigcont_every_exit_is_reaped_and_every_instance_restarted() {
    let daemon = Daemon::start(
        r#"
http: unix:{dir}/http.sock
programs:
  quick:
    cmd: ["/bin/sleep", "1"]
    numprocs: 10
    starttime: 0
    stability_window: 0
    autorestart: always
  slow:
    cmd: ["/bin/sleep", "2.5"]
    numprocs: 10
    starttime: 0
    stability_window: 0
    autorestart: always
"#,
    );
    let names: Vec<String> =
        ["quick", "slow"].iter().flat_map(|program| (0..10).map(move |n| format!("{program}:{n}"))).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    daemon.wait_all_running(&name_refs);
    let http = daemon.path("http.sock");
    let before = restarts(&http);
    assert_eq!(before.len(), 20, "{before:?}");

    daemon.signal("STOP");
    // The only fixed wait: the daemon stays stopped for 10 s while every program exits (none
    // runs longer than 2.5 s, and a stopped daemon starts nothing new).
    std::thread::sleep(Duration::from_secs(10));
    let stopped_children = children(daemon.pid);
    daemon.signal("CONT");
    let zombies: Vec<i32> = stopped_children.iter().filter(|(_, state)| *state == 'Z').map(|&(pid, _)| pid).collect();
    assert_eq!(zombies.len(), 20, "every instance exited while the daemon was stopped: {stopped_children:?}");

    // Every exit of the stop is reaped...
    daemon.wait_for("the exits of the stop reaped", WAIT, || zombies.iter().all(|&pid| proc_stat(pid).is_none()));
    daemon.wait_for("no zombie child of the daemon", WAIT, || {
        children(daemon.pid).iter().all(|(_, state)| *state != 'Z')
    });
    // ...and every instance restarted.
    let mut after = HashMap::new();
    daemon.wait_for("every instance's restart counter to grow", WAIT, || {
        after = restarts(&http);
        names.iter().all(|name| after.get(name).copied().unwrap_or(0) > before[name])
    });
    let running = daemon.wait_all_running(&name_refs);
    assert!(running.iter().all(|pid| !zombies.contains(pid)), "{running:?} {zombies:?}");
    daemon.shutdown();
}

// See: issue 15, "a control client sends one byte a second". tests/e2e_control.rs covers idle
// connections that send nothing, stalled followers and garbage; this is the trickle.
#[test]
fn clients_sending_one_byte_a_second_are_closed_as_idle_and_others_are_answered_meanwhile() {
    const SLOW_CLIENTS: usize = 20;
    let daemon = Daemon::start_with(
        TestDir::new(),
        r#"
programs:
  crasher:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/spawns; sleep 0.2; exit 3"]
    starttime: 0
    stability_window: 0
    autorestart: always
"#,
        // The idle close is logged at debug level.
        Launch { env: vec![("RUST_LOG", "debug")], ..Launch::default() },
    );
    let socket = daemon.socket.clone();
    let slow: Vec<UnixStream> =
        (0..SLOW_CLIENTS).map(|_| UnixStream::connect(&socket).expect("slow client connects")).collect();
    let sent = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let (sent, closed, stop) = (sent.clone(), closed.clone(), stop.clone());
        std::thread::spawn(move || {
            // A request that never ends: one byte a second on each connection, no newline.
            let request = b"{\"op\":\"status\",\"targets\":[\"";
            let mut open: Vec<Option<UnixStream>> = slow.into_iter().map(Some).collect();
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) && open.iter().any(Option::is_some) {
                let byte = [request.get(round).copied().unwrap_or(b'x')];
                for slot in &mut open {
                    let Some(stream) = slot else { continue };
                    match stream.write(&byte) {
                        Ok(_) => {}
                        Err(error) if matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                            *slot = None;
                            closed.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(error) => panic!("slow client write: {error}"),
                    }
                }
                sent.store(round + 1, Ordering::SeqCst);
                round += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // Mid-request (a few bytes in, none closed), other clients are answered and supervision
    // goes on.
    daemon.wait_for("the slow clients to be a few bytes in", WAIT, || sent.load(Ordering::SeqCst) >= 3);
    let spawns = line_count(&daemon.path("spawns"));
    for _ in 0..5 {
        let status = daemon.ctl_ok(&["status"]);
        assert!(status.stdout.contains("crasher:0"), "{status}");
    }
    daemon.wait_lines("spawns", spawns + 3);
    assert_eq!(closed.load(Ordering::SeqCst), 0, "the slow clients were still mid-request meanwhile");

    // Trickling is not activity: each is closed once idle (60 s with no complete request).
    let freed = poll_until(Duration::from_secs(150), || closed.load(Ordering::SeqCst) == SLOW_CLIENTS);
    stop.store(true, Ordering::Relaxed);
    trickler.join().expect("trickler thread");
    assert!(freed, "{} of {SLOW_CLIENTS} slow clients closed\n{}", closed.load(Ordering::SeqCst), daemon.diagnostics());
    let idle_closes = daemon.stderr().matches("idle for 60s; closing it").count();
    assert!(idle_closes >= SLOW_CLIENTS, "{idle_closes} idle closes logged\n{}", daemon.diagnostics());
    daemon.ctl_ok(&["status"]);
    daemon.shutdown();
}

// Found by the soak (docs/RELIABILITY.md): two clients asking `status` back to back, one
// connection per request, kept the daemon's accept loop going; closed connections piled up
// unnoticed until the 512-connection limit refused every client.
#[test]
fn clients_connecting_back_to_back_are_all_answered_and_supervision_goes_on() {
    let daemon = Daemon::start(
        r#"
programs:
  crasher:
    cmd: ["/bin/sh", "-c", "echo run >> {dir}/spawns; sleep 0.2; exit 3"]
    starttime: 0
    stability_window: 0
    autorestart: always
"#,
    );
    daemon.wait_lines("spawns", 1);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (socket, stop, answered) = (daemon.socket.clone(), stop.clone(), answered.clone());
            std::thread::spawn(move || -> Result<(), String> {
                while !stop.load(Ordering::Relaxed) {
                    let mut stream = UnixStream::connect(&socket).map_err(|error| format!("connect: {error}"))?;
                    stream.set_read_timeout(Some(common::CTL_DEADLINE)).map_err(|error| error.to_string())?;
                    stream.write_all(b"{\"op\":\"status\"}\n").map_err(|error| format!("write: {error}"))?;
                    let mut reply = String::new();
                    std::io::BufReader::new(stream).read_line(&mut reply).map_err(|error| format!("read: {error}"))?;
                    if !reply.contains("\"status\"") {
                        return Err(format!("after {} answers: {reply}", answered.load(Ordering::SeqCst)));
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    // Past the 512-connection limit twice, while the crasher keeps restarting.
    let spawns = line_count(&daemon.path("spawns"));
    let done = poll_until(Duration::from_secs(120), || {
        clients.iter().any(|client| client.is_finished())
            || (answered.load(Ordering::SeqCst) > 1100 && line_count(&daemon.path("spawns")) >= spawns + 20)
    });
    stop.store(true, Ordering::Relaxed);
    let results: Vec<Result<(), String>> = clients.into_iter().map(|client| client.join().expect("client")).collect();
    let answered = answered.load(Ordering::SeqCst);
    assert!(results.iter().all(Result::is_ok), "{answered} answers, then {results:?}\n{}", daemon.diagnostics());
    assert!(
        done,
        "{answered} answers; spawns {spawns} then {}\n{}",
        line_count(&daemon.path("spawns")),
        daemon.diagnostics()
    );
    daemon.shutdown();
}
