//! The daemon's life: the control socket (a live one is not stolen, a stale one is replaced),
//! `ctl` against nothing and against unknown targets, start/stop/restart that wait, and
//! shutdown by SIGTERM, SIGINT and `ctl shutdown`.

mod common;

use std::os::unix::net::UnixListener;
use std::process::Command;

use common::{ctl_at, run_with_deadline, Daemon, Launch, TestDir, CTL_DEADLINE, WAIT};

#[test]
fn a_second_daemon_on_a_live_socket_refuses_to_start() {
    let first = Daemon::start(
        r#"
programs:
  web:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
    );
    let pid = first.wait_running("web:0");

    let second = TestDir::new();
    let config = second.write(
        "sv-lite.yaml",
        r#"logfile: {dir}/events.log
programs:
  intruder:
    cmd: ["/bin/sh", "-c", "touch {dir}/marker; exec sleep 1000"]
    starttime: 0
"#,
    );
    let (code, stderr) = Daemon::run_expecting_failure(&second, &config, &first.socket);
    assert_eq!(code, Some(2), "the second daemon must exit 2:\n{stderr}");
    assert!(stderr.contains("another sv-lite is running"), "{stderr}");
    assert!(stderr.contains(&first.socket.display().to_string()), "the message names the socket:\n{stderr}");
    assert!(!second.join("marker").exists(), "the second daemon started a program");
    assert!(common::tagged_pids(&second.tag).is_empty(), "the second daemon left processes");

    // The first daemon is untouched and still reachable on its socket.
    assert!(first.socket.exists(), "the live socket was removed");
    assert_eq!(first.pid_of("web:0"), Some(pid));
    assert_eq!(first.shutdown().code(), Some(0));
}

#[test]
fn a_stale_socket_file_from_a_dead_daemon_is_replaced() {
    let dir = TestDir::new();
    let socket = dir.join("sock");
    // Bound and closed: the file stays, nobody listens.
    drop(UnixListener::bind(&socket).expect("bind a socket"));
    assert!(socket.exists());
    let refused = ctl_at(&socket, &["status"]);
    assert_eq!(refused.code, Some(2), "nobody listens on the stale socket:\n{refused}");

    let d = Daemon::start_in(
        dir,
        r#"
programs:
  web:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
    );
    d.wait_running("web:0");
    assert!(d.stderr().contains("stale"), "the daemon says it replaced a stale socket:\n{}", d.stderr());
    assert_eq!(d.shutdown().code(), Some(0));
}

#[test]
fn ctl_says_which_socket_is_unreachable_and_fails_on_unknown_targets() {
    let dir = TestDir::new();
    for socket in [dir.join("never-created.sock"), dir.join("stale.sock")] {
        if socket.ends_with("stale.sock") {
            drop(UnixListener::bind(&socket).expect("bind a socket"));
        }
        for args in [&["status"][..], &["stop", "all"], &["reload"], &["shutdown"]] {
            let output = ctl_at(&socket, args);
            assert_eq!(output.code, Some(2), "ctl {} on {}:\n{output}", args.join(" "), socket.display());
            assert!(output.stderr.contains(&socket.display().to_string()), "the message names the socket:\n{output}");
            assert!(
                output.stderr.contains("sv-lite running"),
                "the message hints sv-lite may not be running:\n{output}"
            );
        }
    }

    let d = Daemon::start_in(
        dir,
        r#"
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0.2
"#,
    );
    let pids = d.wait_all_running(&["web:0", "web:1"]);
    for args in
        [&["status", "nope"][..], &["start", "nope"], &["stop", "web:7"], &["restart", "nope:0"], &["stop", "web:x"]]
    {
        let output = d.ctl(args);
        assert_eq!(output.code, Some(1), "ctl {}:\n{output}", args.join(" "));
        assert!(output.all().contains(args[1]), "the message names the target {}:\n{output}", args[1]);
    }
    // A mix of known and unknown targets fails but acts on the known ones.
    let output = d.ctl(&["stop", "web:1", "nope"]);
    assert_eq!(output.code, Some(1), "{output}");
    assert_eq!(d.state_of("web:1"), "STOPPED");
    assert_eq!(d.pid_of("web:0"), Some(pids[0]));
}

#[test]
fn ctl_start_stop_and_restart_wait_for_the_outcome_unless_told_not_to() {
    let d = Daemon::start(
        r#"
socket: {dir}/sock
programs:
  web:
    cmd: "sleep 1000"
    starttime: 1
  slow:
    cmd: "sleep 1000"
    starttime: 600
    autostart: false
"#,
    );
    let first = d.wait_running("web:0");

    // stop waits until the process is down.
    d.ctl_ok(&["stop", "web"]);
    assert_eq!(d.state_of("web:0"), "STOPPED");
    assert!(!common::alive(first), "the stopped process still runs");
    // Stopping what is stopped succeeds.
    d.ctl_ok(&["stop", "web"]);

    // start waits until RUNNING (starttime elapsed).
    let output = d.ctl_ok(&["start", "web"]);
    assert!(output.stdout.contains("web:0: started (pid"), "{output}");
    let second = d.pid_of("web:0").expect("a pid after start");
    assert_eq!(d.state_of("web:0"), "RUNNING");
    assert_ne!(second, first);

    // restart: a new process, RUNNING when ctl returns.
    d.ctl_ok(&["restart", "web:0"]);
    assert_eq!(d.state_of("web:0"), "RUNNING");
    let third = d.pid_of("web:0").expect("a pid after restart");
    assert_ne!(third, second);
    assert!(!common::alive(second), "the old process survived the restart");
    assert!(d.events().contains("web:0: restarting: sending SIGTERM"), "{}", d.events());

    // --no-wait returns before a starttime of ten minutes has passed.
    d.ctl_ok(&["start", "--no-wait", "slow"]);
    assert_eq!(d.state_of("slow:0"), "STARTING");
    d.ctl_ok(&["stop", "--no-wait", "slow"]);
    d.wait_state("slow:0", "STOPPED");

    // The socket can also come from the config (-c) or from SV_LITE_SOCKET.
    let by_config = run_with_deadline(
        Command::new(&*common::BIN).args(["ctl", "-c"]).arg(&d.config).arg("status").env_remove("SV_LITE_SOCKET"),
        CTL_DEADLINE,
    );
    assert_eq!(by_config.code, Some(0), "ctl -c CONFIG status:\n{by_config}");
    assert!(by_config.stdout.contains("web:0"), "{by_config}");
    let by_env = run_with_deadline(
        Command::new(&*common::BIN)
            .args(["ctl", "status", "web"])
            .env("SV_LITE_SOCKET", &d.socket)
            .current_dir(&d.dir.path),
        CTL_DEADLINE,
    );
    assert_eq!(by_env.code, Some(0), "SV_LITE_SOCKET=... ctl status:\n{by_env}");
    assert!(by_env.stdout.contains("web:0"), "{by_env}");
}

const SHUTDOWN_CONFIG: &str = r#"
programs:
  plain:
    cmd: "sleep 1000"
    numprocs: 2
    starttime: 0.2
  stubborn:
    cmd: ["/bin/sh", "-c", "trap '' TERM; echo ready > {dir}/ready; while :; do sleep 1; done"]
    stoptime: 1
    starttime: 0.2
  family:
    cmd: ["/bin/sh", "-c", "sleep 1000 & echo $! > {dir}/grandchild; wait"]
    starttime: 0.2
  idle:
    cmd: "sleep 1000"
    autostart: false
"#;

/// Starts SHUTDOWN_CONFIG, stops it with `stop`, and checks that everything is down, the
/// socket is gone and the exit code is 0.
fn shutdown_stops_everything(stop: impl FnOnce(&mut Daemon)) {
    let mut d = Daemon::start(SHUTDOWN_CONFIG);
    let pids = d.wait_all_running(&["plain:0", "plain:1", "stubborn:0", "family:0"]);
    d.wait_file("ready", "ready");
    let grandchild: i32 = d.wait_file("grandchild", "\n").trim().parse().expect("grandchild pid");
    let mut watched: Vec<(i32, u64)> =
        pids.iter().map(|pid| (*pid, common::proc_stat(*pid).expect("running").1)).collect();
    watched.push((grandchild, common::proc_stat(grandchild).expect("grandchild runs").1));
    assert!(!common::tagged_pids(&d.dir.tag).is_empty());

    stop(&mut d);
    let status = d.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "exit status {status}\n{}", d.diagnostics());
    assert!(!d.socket.exists(), "the socket file is left behind");
    for (pid, start) in watched {
        d.wait_for(&format!("process {pid} to be gone"), WAIT, || common::gone(pid, start));
    }
    d.wait_for("no process of this test to be left", WAIT, || common::tagged_pids(&d.dir.tag).is_empty());
    let events = d.events();
    assert!(
        events.contains("stubborn:0") && events.contains("sending SIGKILL"),
        "the stubborn child needed SIGKILL:\n{events}"
    );
    assert!(events.contains("exiting with code 0"), "{events}");
}

#[test]
fn sigterm_stops_every_instance_removes_the_socket_and_exits_0() {
    shutdown_stops_everything(|d| d.signal("TERM"));
}

#[test]
fn sigint_stops_every_instance_removes_the_socket_and_exits_0() {
    shutdown_stops_everything(|d| d.signal("INT"));
}

#[test]
fn ctl_shutdown_stops_every_instance_removes_the_socket_and_exits_0() {
    shutdown_stops_everything(|d| {
        let output = d.ctl(&["shutdown"]);
        assert_eq!(output.code, Some(0), "ctl shutdown:\n{output}");
        assert!(output.stdout.contains("shut down"), "{output}");
    });
}

#[test]
fn a_second_sigterm_during_a_slow_shutdown_kills_what_is_left() {
    let mut d = Daemon::start(
        r#"
programs:
  stubborn:
    cmd: ["/bin/sh", "-c", "trap '' TERM; echo ready > {dir}/ready; while :; do sleep 1; done"]
    stoptime: 600
    starttime: 0.2
  web:
    cmd: "sleep 1000"
    starttime: 0.2
"#,
    );
    let pid = d.wait_running("stubborn:0");
    d.wait_running("web:0");
    d.wait_file("ready", "ready");

    d.signal("TERM");
    d.wait_state("stubborn:0", "STOPPING");
    d.wait_state("web:0", "STOPPED");
    // While shutting down, status answers and other requests are refused.
    let output = d.ctl(&["start", "web"]);
    assert_eq!(output.code, Some(1), "{output}");
    assert!(output.stderr.contains("shutting down"), "{output}");
    assert!(common::alive(pid), "stubborn ignores SIGTERM and has 10 minutes left");

    d.signal("TERM");
    let status = d.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", d.diagnostics());
    assert!(!d.socket.exists(), "the socket file is left behind");
    assert!(d.events().contains("shutdown requested again"), "{}", d.events());
    d.wait_for("no process of this test to be left", WAIT, || common::tagged_pids(&d.dir.tag).is_empty());
}

#[test]
fn the_daemon_socket_is_the_flag_else_sv_lite_socket_else_the_config() {
    const CONFIG: &str = r#"
socket: {dir}/from-config.sock
programs:
  web:
    cmd: "sleep 1000"
    starttime: 0.2
"#;
    // (pass -s, set SV_LITE_SOCKET, where the daemon must listen)
    for (flag, env, expected) in
        [(false, false, "from-config.sock"), (false, true, "from-env.sock"), (true, true, "from-flag.sock")]
    {
        let dir = TestDir::new();
        let socket = dir.join(expected);
        let env_socket = dir.join("from-env.sock").display().to_string();
        let launch = Launch {
            socket_flag: flag,
            socket: Some(socket.clone()),
            env: if env { vec![("SV_LITE_SOCKET", env_socket.as_str())] } else { Vec::new() },
            ..Launch::default()
        };
        let d = Daemon::start_with(dir, CONFIG, launch);
        d.wait_running("web:0");
        for other in ["from-config.sock", "from-env.sock", "from-flag.sock"] {
            assert_eq!(d.path(other).exists(), other == expected, "-s: {flag}, SV_LITE_SOCKET: {env}: {other}");
        }
        assert_eq!(d.shutdown().code(), Some(0));
    }
}
