//! The control socket and the commands behind it (issue 4): tail, pause/resume, wait, pid,
//! who may connect, and a socket that bad clients cannot stall.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn tail_shows_recent_lines_whatever_the_sink_and_follows_a_live_program() {
    let daemon = Daemon::start(
        r#"
programs:
  counter:
    cmd: ["/bin/sh", "-c", "i=0; while :; do echo \"count $i\"; echo \"err $i\" >&2; i=$((i+1)); sleep 0.05; done"]
    starttime: 0
  filed:
    cmd: ["/bin/sh", "-c", "echo to-file-1; echo to-file-2; exec sleep 1000"]
    stdout: "{dir}/filed.out"
    starttime: 0
  silent:
    cmd: ["/bin/sh", "-c", "echo discarded; exec sleep 1000"]
    stdout: discard
    starttime: 0
"#,
    );
    daemon.wait_all_running(&["counter:0", "filed:0", "silent:0"]);
    daemon.wait_for("some counter output", WAIT, || {
        daemon.ctl(&["tail", "-n", "5", "counter"]).stdout.lines().count() == 5
    });
    let lines: Vec<String> =
        daemon.ctl_ok(&["tail", "-n", "3", "counter", "stderr"]).stdout.lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|line| line.starts_with("err ")), "{lines:?}");
    daemon.wait_file("filed.out", "to-file-2");
    assert_eq!(daemon.ctl_ok(&["tail", "filed"]).stdout, "to-file-1\nto-file-2\n");
    // A discarded stream goes to /dev/null: nothing is kept, and tail says why.
    let silent = daemon.ctl(&["tail", "silent"]);
    assert_eq!(silent.code, Some(1), "{}", silent.all());
    assert!(silent.stderr.contains("silent: its stdout is discarded (`stdout: discard`)"), "{}", silent.all());
    assert_eq!(daemon.ctl_ok(&["tail", "silent", "stderr"]).stdout, "", "stderr is still kept");
    let ambiguous = daemon.ctl(&["tail", "nope"]);
    assert_eq!(ambiguous.code, Some(1), "{}", ambiguous.all());

    // tail -f: new lines keep arriving on one connection.
    let mut follower = Command::new(&*BIN)
        .args(["ctl", "-s"])
        .arg(daemon.path("sock"))
        .args(["tail", "-f", "-n", "1", "counter"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail -f");
    let stdout = follower.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut counts = Vec::new();
    while counts.len() < 20 {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read tail -f") > 0, "tail -f ended early");
        if let Some(n) = line.trim().strip_prefix("count ").and_then(|n| n.parse::<u64>().ok()) {
            counts.push(n);
        }
    }
    assert!(counts.windows(2).all(|pair| pair[1] == pair[0] + 1), "consecutive, live lines: {counts:?}");
    let _ = follower.kill();
    let _ = follower.wait();
    daemon.shutdown();
}

#[test]
fn pause_and_resume_show_in_status_and_in_proc() {
    let daemon = Daemon::start(
        r#"
programs:
  web:
    cmd: ["/bin/sh", "-c", "sleep 1000 & wait"]
    starttime: 0
"#,
    );
    let pid = daemon.wait_running("web:0");
    let paused = daemon.ctl_ok(&["pause", "web"]);
    assert!(paused.stdout.contains("web:0: paused"), "{}", paused.all());
    assert_eq!(daemon.state_of("web:0"), "PAUSED");
    daemon.wait_for("state T in /proc", WAIT, || proc_stat(pid).is_some_and(|(state, _)| state == 'T'));
    // Not treated as dead: still PAUSED, same pid, no restart.
    assert_eq!(daemon.pid_of("web:0"), Some(pid));
    assert_eq!(daemon.event_lines(&["web:0: spawned"]).len(), 1);
    let again = daemon.ctl(&["pause", "nope"]);
    assert_eq!(again.code, Some(1));
    daemon.ctl_ok(&["resume", "web"]);
    assert_eq!(daemon.state_of("web:0"), "RUNNING");
    daemon.wait_for("state S in /proc", WAIT, || proc_stat(pid).is_some_and(|(state, _)| state != 'T'));
    // A paused instance still stops cleanly.
    daemon.ctl_ok(&["pause", "web"]);
    daemon.ctl_ok(&["stop", "web"]);
    assert!(!alive(pid));
    daemon.shutdown();
}

#[test]
fn wait_blocks_until_the_state_or_times_out_and_pid_prints_pids() {
    let daemon = Daemon::start(
        r#"
programs:
  slow:
    cmd: sleep 1000
    starttime: 2
  idle:
    cmd: sleep 1000
    autostart: false
"#,
    );
    let waited = daemon.ctl(&["wait", "slow", "--state", "RUNNING", "--timeout", "30"]);
    assert_eq!(waited.code, Some(0), "{}", waited.all());
    assert_eq!(daemon.state_of("slow:0"), "RUNNING", "wait returned only once RUNNING");
    let timed_out = daemon.ctl(&["wait", "idle", "--state", "RUNNING", "--timeout", "0.3"]);
    assert_eq!(timed_out.code, Some(1), "{}", timed_out.all());
    assert!(timed_out.stderr.contains("timed out; still STOPPED"), "{}", timed_out.all());
    let bad = daemon.ctl(&["wait", "slow", "--state", "ASLEEP"]);
    assert_eq!(bad.code, Some(1), "{}", bad.all());
    assert!(bad.stderr.contains("unknown state"), "{}", bad.all());

    let daemon_pid = daemon.ctl_ok(&["pid"]).stdout.trim().parse::<i32>().expect("daemon pid");
    assert_eq!(daemon_pid, daemon.pid);
    let slow_pid = daemon.ctl_ok(&["pid", "slow"]).stdout.trim().parse::<i32>().expect("instance pid");
    assert_eq!(Some(slow_pid), daemon.pid_of("slow:0"));
    daemon.shutdown();
}

fn ensure_user(name: &str, group: Option<&str>) -> u32 {
    if let Some(group) = group {
        let _ = Command::new("groupadd").arg("-f").arg(group).status();
    }
    let exists = Command::new("id").arg("-u").arg(name).output().expect("id").status.success();
    if !exists {
        let mut add = Command::new("useradd");
        add.args(["--no-create-home", "--shell", "/usr/sbin/nologin"]);
        if let Some(group) = group {
            add.args(["-G", group]);
        }
        let status = add.arg(name).status().expect("useradd");
        assert!(status.success(), "useradd {name}");
    }
    let uid = Command::new("id").arg("-u").arg(name).output().expect("id").stdout;
    String::from_utf8_lossy(&uid).trim().parse().expect("uid")
}

fn ctl_as(user: &str, socket: &std::path::Path, args: &[&str]) -> Output {
    let mut command = Command::new("runuser");
    command.args(["-u", user, "--"]).arg(&*BIN).args(["ctl", "-s"]).arg(socket).args(args);
    run_with_deadline(&mut command, CTL_DEADLINE)
}

#[test]
fn only_root_the_daemons_uid_and_socket_group_members_may_connect() {
    if Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() != "0")
        .unwrap_or(true)
    {
        assert!(std::env::var("CI").is_err(), "this test creates users and needs root");
        eprintln!("skipping: needs root to create test users");
        return;
    }
    let outsider_uid = ensure_user("svlite-outsider", None);
    ensure_user("svlite-member", Some("svlite-ops"));
    let daemon = Daemon::start(
        r#"
socket_group: svlite-ops
programs:
  web:
    cmd: sleep 1000
    starttime: 0
"#,
    );
    daemon.wait_running("web:0");
    let socket = daemon.path("sock");
    let mode = std::fs::metadata(&socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "group-accessible socket");
    // Let other users reach the socket's directory (the test dir is private to root otherwise).
    std::fs::set_permissions(daemon.path(""), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");

    let member = ctl_as("svlite-member", &socket, &["status"]);
    assert_eq!(member.code, Some(0), "a socket_group member may connect: {}", member.all());

    // The outsider cannot even open the socket file...
    let outsider = ctl_as("svlite-outsider", &socket, &["status"]);
    assert_eq!(outsider.code, Some(2), "{}", outsider.all());
    // ...and if the file mode is loosened by mistake, SO_PEERCRED still refuses and logs it.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    let refused = ctl_as("svlite-outsider", &socket, &["status"]);
    assert_eq!(refused.code, Some(1), "{}", refused.all());
    assert!(refused.stderr.contains(&format!("permission denied: uid {outsider_uid}")), "{}", refused.all());
    daemon.wait_for("the refusal in the log", WAIT, || {
        daemon.stderr().contains(&format!("control connection refused: permission denied: uid {outsider_uid}"))
    });
    daemon.shutdown();
}

/// Sends one raw request line and reads one reply line.
fn raw_request(socket: &std::path::Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.set_read_timeout(Some(CTL_DEADLINE)).expect("timeout");
    stream.write_all(bytes).expect("write");
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).expect("read reply");
    reply
}

#[test]
fn bad_requests_get_error_replies_and_the_daemon_carries_on() {
    let daemon = Daemon::start("programs:\n  web:\n    cmd: sleep 1000\n    starttime: 0\n");
    daemon.wait_running("web:0");
    let socket = daemon.path("sock");
    assert!(raw_request(&socket, b"this is not json\n").contains("malformed request"));
    assert!(raw_request(&socket, b"{\"op\":\"explode\"}\n").contains("unknown request op"));
    assert!(raw_request(&socket, b"{\"op\":\"status\",\"extra\":1}\n").contains("unknown field"));
    assert!(raw_request(&socket, b"{\"op\":\"signal\",\"targets\":[\"web\"],\"signal\":\"NOPE\"}\n")
        .contains("unknown signal"));
    let mut oversize = vec![b'x'; 70 * 1024];
    oversize.push(b'\n');
    assert!(raw_request(&socket, &oversize).contains("request longer than 65536 bytes"));
    assert!(raw_request(&socket, b"{\"op\":\"status\"}\n").contains("\"ok\":true"));
    assert_eq!(daemon.state_of("web:0"), "RUNNING");
    daemon.shutdown();
}

#[test]
fn idle_connections_stalled_followers_and_garbage_do_not_delay_supervision() {
    let daemon = Daemon::start(
        r#"
programs:
  crasher:
    cmd: ["/bin/sh", "-c", "echo started >> {dir}/spawns; sleep 0.3; exit 1"]
    starttime: 0
    autorestart: always
    stability_window: 0.1
  chatty:
    cmd: ["/bin/sh", "-c", "while :; do echo 'chatty line with some padding to fill buffers quickly 0123456789'; done"]
    stdout: "{dir}/chatty.out"
    stdout_maxbytes: 1MB
    stdout_backups: 1
    starttime: 0
"#,
    );
    daemon.wait_all_running(&["chatty:0"]);
    let socket = daemon.path("sock");
    daemon.wait_lines("spawns", 1);

    // 200 idle connections that never send anything.
    let idle: Vec<UnixStream> = (0..200).map(|_| UnixStream::connect(&socket).expect("idle connect")).collect();
    // 20 `tail -f` clients that never read.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut stream = UnixStream::connect(&socket).expect("follower connect");
        stream.write_all(b"{\"op\":\"tail\",\"targets\":[\"chatty:0\"],\"follow\":true}\n").expect("tail request");
        stalled.push(stream);
    }
    // A stream of garbage from another thread for the whole test.
    let garbage_socket = socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_garbage = stop.clone();
    let garbage = std::thread::spawn(move || {
        let mut sent = 0u32;
        while !stop_garbage.load(std::sync::atomic::Ordering::Relaxed) && sent < 5000 {
            if let Ok(mut stream) = UnixStream::connect(&garbage_socket) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let payload: &[u8] = match sent % 4 {
                    0 => b"\x00\x01\x02 garbage\n",
                    1 => b"{\"op\":\n",
                    2 => b"{\"op\":\"start\",\"targets\":[\"ghost\"]}\n",
                    _ => b"{\"op\":\"tail\",\"targets\":[\"nope\"],\"follow\":true}\n",
                };
                let _ = stream.write_all(payload);
                let mut reply = [0u8; 256];
                let _ = stream.read(&mut reply);
            }
            sent += 1;
        }
        sent
    });

    // While all that goes on, the crashing program keeps being restarted, and status answers.
    let spawns_before = line_count(&daemon.path("spawns"));
    let started = Instant::now();
    let mut status_answers = 0;
    while line_count(&daemon.path("spawns")) < spawns_before + 8 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the crashing program stopped being restarted\n{}",
            daemon.diagnostics()
        );
        let status = daemon.ctl(&["status", "crasher"]);
        assert_eq!(status.code, Some(0), "{}", status.all());
        status_answers += 1;
    }
    assert!(status_answers > 0);
    // Stalled followers are dropped with a note instead of buffering without limit.
    daemon.wait_for("stalled followers dropped", WAIT, || daemon.stderr().matches("fell").count() >= 20);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = garbage.join().expect("garbage thread");
    assert!(sent > 0);
    drop(idle);
    drop(stalled);
    assert_eq!(daemon.state_of("chatty:0"), "RUNNING");
    let events = daemon.events();
    assert!(!events.contains("panicked"), "{events}");
    daemon.shutdown();
}

#[test]
fn sigusr1_reopens_the_event_log_and_output_files_after_logrotate() {
    let daemon = Daemon::start(
        r#"
programs:
  ticker:
    cmd: ["/bin/sh", "-c", "i=0; while :; do echo \"tick $i\"; i=$((i+1)); sleep 0.05; done"]
    stdout: "{dir}/ticker.log"
    starttime: 0
"#,
    );
    daemon.wait_running("ticker:0");
    daemon.wait_file("ticker.log", "tick 3");
    // logrotate's default: rename, then tell the daemon.
    std::fs::rename(daemon.path("ticker.log"), daemon.path("ticker.log.1")).expect("rotate output");
    std::fs::rename(daemon.path("events.log"), daemon.path("events.log.1")).expect("rotate event log");
    daemon.signal("USR1");
    daemon.wait_file("ticker.log", "tick");
    daemon.wait_file("events.log", "received SIGUSR1: reopened log files");
    assert_eq!(daemon.state_of("ticker:0"), "RUNNING");
    daemon.shutdown();
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0").unwrap_or(false)
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_sticky_world_writable_directory_is_accepted_and_a_plain_one_refused() {
    let dir = TestDir::new();
    let config = dir.write("sv-lite.yaml", "programs:\n  web:\n    cmd: sleep 1000\n");
    for (mode, accepted) in [(0o1777, true), (0o777, false)] {
        let shared = dir.join(&format!("shared-{mode:o}"));
        std::fs::create_dir(&shared).expect("mkdir");
        chmod(&shared, mode);
        let socket = shared.join("sv.sock");
        let mut command = Command::new(&*BIN);
        command.arg("-c").arg(&config).arg("-s").arg(&socket).env(common::TAG_VAR, &dir.tag);
        if accepted {
            command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            let mut child = command.spawn().expect("start the daemon");
            common::wait_until("the daemon to answer in a sticky directory", common::WAIT, || {
                common::ctl_at(&socket, &["status"]).code == Some(0)
            });
            assert_eq!(common::ctl_at(&socket, &["shutdown"]).code, Some(0));
            common::wait_until("the daemon to exit", common::WAIT, || matches!(child.try_wait(), Ok(Some(_))));
        } else {
            let output = run_with_deadline(&mut command, CTL_DEADLINE);
            assert_eq!(output.code, Some(2), "{output}");
            assert!(output.stderr.contains("world-writable without the sticky bit"), "{output}");
        }
    }
}

#[test]
fn a_socket_another_user_created_first_is_refused_by_the_daemon_and_by_ctl() {
    if !is_root() {
        eprintln!("skipping: needs root to create users");
        return;
    }
    let squatter = ensure_user("svlite-squat", None);
    ensure_user("svlite-victim", None);
    let dir = TestDir::new();
    chmod(&dir.path, 0o755);
    let config = dir.write("sv-lite.yaml", "programs:\n  web:\n    cmd: sleep 1000\n");
    chmod(&config, 0o644);
    // A shared directory like /tmp: world-writable, sticky.
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    chmod(&shared, 0o1777);
    let socket = shared.join("sv.sock");

    // The squatter runs a server on the path first.
    let mut squat = Command::new("runuser")
        .args(["-u", "svlite-squat", "--"])
        .arg(&*BIN)
        .arg("-c")
        .arg(&config)
        .arg("-s")
        .arg(&socket)
        .env(common::TAG_VAR, &dir.tag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the squatter's daemon");
    common::wait_until("the squatter's socket", common::WAIT, || socket.exists());
    // A squatter opens its socket to everyone, to catch other users' requests.
    chmod(&socket, 0o666);

    // Neither another user's ctl nor root's talks to it.
    for output in [ctl_as("svlite-victim", &socket, &["status"]), common::ctl_at(&socket, &["status"])] {
        assert_eq!(output.code, Some(2), "{output}");
        assert!(output.stderr.contains("refusing to talk to"), "{output}");
        assert!(output.stderr.contains(&format!("uid {squatter}")), "{output}");
    }

    // Its socket file, even stale, is not replaced by our daemon.
    let squatter_pids = common::tagged_pids(&dir.tag);
    for pid in squatter_pids {
        common::send_signal(pid, "KILL");
    }
    let _ = squat.wait();
    assert!(socket.exists(), "the killed squatter leaves its socket file");
    let mut ours = Command::new(&*BIN);
    ours.arg("-c").arg(&config).arg("-s").arg(&socket).env(common::TAG_VAR, &dir.tag);
    let output = run_with_deadline(&mut ours, CTL_DEADLINE);
    assert_eq!(output.code, Some(2), "{output}");
    assert!(output.stderr.contains(&format!("belongs to uid {squatter}")), "{output}");
    assert!(socket.exists(), "someone else's socket file is left alone");
}
