//! Tron services and Proc::tored flags (issue 5): pid-file daemons, Tron's format, service
//! states, persistent stop and pause, zap.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::*;

/// A classic daemon: the command forks, the child calls setsid and forks again, the grandchild
/// writes its pid and serves; a worker shares its process group. The command exits 0 at once.
const DAEMON: &str = r#"#!/bin/sh
# usage: daemon PIDFILE [WORKERFILE]
pidfile=$1
workerfile=${2:-/dev/null}
( setsid sh -c '
    sleep 1000 & echo $! > "$1"
    echo $$ > "$0.tmp" && mv "$0.tmp" "$0"
    exec sleep 1000' "$pidfile" "$workerfile" & )
exit 0
"#;

fn install_daemon(dir: &TestDir) -> String {
    let path = dir.write("daemon", DAEMON);
    let status = Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
    assert!(status.success());
    path.to_string_lossy().into_owned()
}

fn pid_in(path: &std::path::Path) -> i32 {
    read(path).trim().parse().unwrap_or_else(|_| panic!("{} holds no pid", path.display()))
}

#[test]
fn a_double_forking_daemon_is_watched_killed_and_restarted_after_restart_delay() {
    let dir = TestDir::new();
    let daemon_bin = install_daemon(&dir);
    let yaml = format!(
        r#"
programs:
  mailer:
    cmd: ["{daemon_bin}", "{{dir}}/mailer.pid", "{{dir}}/worker.pid"]
    pid_file: "{{dir}}/mailer.pid"
    monitor_interval: 1
    autorestart: always
    restart_delay: 1
    starttime: 1
"#
    );
    let daemon = Daemon::start_in(dir, &yaml);
    let first = daemon.wait_running("mailer:0");
    assert_eq!(first, pid_in(&daemon.path("mailer.pid")), "status shows the pid from the file");
    let worker = pid_in(&daemon.path("worker.pid"));
    assert!(alive(worker));

    assert!(send_signal(first, "KILL"));
    daemon.wait_event("mailer:0: exited with signal SIGKILL (unexpected); BACKOFF, restarting in 1s");
    // The dead daemon's worker is stopped before the restart, so it cannot hold the port.
    daemon.wait_for("the leftover worker to be killed", WAIT, || !alive(worker));
    daemon.wait_for("a new daemon", WAIT, || daemon.pid_of("mailer:0").is_some_and(|pid| pid != first));
    let second = daemon.wait_running("mailer:0");
    assert_eq!(second, pid_in(&daemon.path("mailer.pid")));
    let spawned = daemon.event_lines(&["mailer:0: spawned with pid"]);
    assert_eq!(spawned.len(), 2, "{spawned:?}");

    // ctl stop reaches the daemon through its pid file.
    daemon.ctl_ok(&["stop", "mailer"]);
    assert!(!alive(second));
    daemon.shutdown();
}

#[test]
fn pid_reuse_and_strangers_in_the_pid_file_do_not_fool_the_monitor() {
    let mut stranger = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().expect("spawn a stranger");
    let stranger_pid = stranger.id();
    let dir = TestDir::new();
    let daemon_bin = install_daemon(&dir);
    let yaml = format!(
        r#"
programs:
  liar:
    cmd: ["/bin/sh", "-c", "echo {stranger_pid} > {{dir}}/liar.pid"]
    pid_file: "{{dir}}/liar.pid"
    starttime: 1
    startretries: 0
  honest:
    cmd: ["{daemon_bin}", "{{dir}}/honest.pid"]
    pid_file: "{{dir}}/honest.pid"
    monitor_interval: 1
    autorestart: always
"#
    );
    let daemon = Daemon::start_in(dir, &yaml);
    // A live pid sv-lite did not start never counts as the service.
    let row = daemon.wait_state("liar:0", "FATAL");
    let detail = row["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(&format!("names pid {stranger_pid}, which sv-lite did not start")), "{detail}");

    // A running daemon whose file is overwritten with a stranger's pid is treated as gone.
    let first = daemon.wait_running("honest:0");
    fs::write(daemon.path("honest.pid"), format!("{stranger_pid}\n")).expect("overwrite pid file");
    daemon.wait_event("which sv-lite did not start) (unexpected)");
    daemon.wait_for("the old daemon to be stopped", WAIT, || !alive(first));
    daemon.wait_for("a new daemon", WAIT, || daemon.pid_of("honest:0").is_some_and(|pid| pid != first));
    daemon.wait_running("honest:0");
    assert!(alive(stranger_pid as i32), "the stranger is never signalled");
    daemon.shutdown();
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn the_tron_example_runs_with_count_four_and_a_pid_file_each() {
    let dir = TestDir::new();
    let daemon_bin = install_daemon(&dir);
    // start_email_worker from the example: takes --pid_file=PATH and daemonizes.
    dir.write("start_email_worker", &format!("#!/bin/sh\nexec {daemon_bin} \"${{1#--pid_file=}}\"\n"));
    let status = Command::new("chmod").arg("+x").arg(dir.join("start_email_worker")).status().expect("chmod");
    assert!(status.success());
    // The reference example as written, with its paths swapped, plus Tron's node definitions.
    let yaml = r#"
nodes:
  - name: local
    hostname: localhost
node_pools:
  - name: service_pool
    nodes: [local]
services:
    -   name: "email_worker"
        node: service_pool
        count: 4
        monitor_interval: 60
        restart_delay: 120
        pid_file: "{dir}/%(name)s-%(instance_number)s.pid"
        command: "{dir}/start_email_worker --pid_file=%(pid_file)s"
"#;
    let daemon = Daemon::start_in(dir, yaml);
    let pids = daemon.wait_all_running(&["email_worker:0", "email_worker:1", "email_worker:2", "email_worker:3"]);
    for (index, pid) in pids.iter().enumerate() {
        assert_eq!(*pid, pid_in(&daemon.path(&format!("email_worker-{index}.pid"))), "instance {index}");
    }
    let mut unique = pids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4);
    assert_eq!(daemon.names(), ["email_worker:0", "email_worker:1", "email_worker:2", "email_worker:3"]);
    daemon.shutdown();
}

fn service_of(daemon: &Daemon, instance: &str) -> String {
    daemon.row(instance).and_then(|row| row["service"].as_str().map(String::from)).unwrap_or_default()
}

#[test]
fn the_five_service_states_are_reached_and_shown() {
    let dir = TestDir::new();
    let daemon_bin = install_daemon(&dir);
    let yaml = format!(
        r#"
programs:
  watched:
    cmd: ["{daemon_bin}", "{{dir}}/watched.pid"]
    pid_file: "{{dir}}/watched.pid"
    monitor_interval: 3
    starttime: 0
  pair:
    cmd: sleep 1000
    numprocs: 2
    starttime: 0
    autorestart: always
    restart_delay: 600
"#
    );
    let daemon = Daemon::start_in(dir, &yaml);
    // STARTING: up, but Tron's first monitor check has not run yet.
    daemon.wait_running("watched:0");
    assert_eq!(service_of(&daemon, "watched:0"), "STARTING");
    daemon.wait_for("the first monitor check (UP)", WAIT, || service_of(&daemon, "watched:0") == "UP");
    let pids = daemon.wait_all_running(&["pair:0", "pair:1"]);
    assert_eq!(service_of(&daemon, "pair:0"), "UP");
    assert!(send_signal(pids[0], "KILL"));
    daemon.wait_for("DEGRADED", WAIT, || service_of(&daemon, "pair:1") == "DEGRADED");
    assert!(send_signal(pids[1], "KILL"));
    daemon.wait_for("FAILED", WAIT, || service_of(&daemon, "pair:1") == "FAILED");
    daemon.ctl_ok(&["stop", "pair"]);
    assert_eq!(service_of(&daemon, "pair:0"), "DOWN");
    let table = daemon.ctl_ok(&["status"]).stdout;
    assert!(table.contains("SERVICE"), "{table}");
    assert!(table.lines().any(|line| line.starts_with("pair:0") && line.contains("DOWN")), "{table}");
    assert!(table.lines().any(|line| line.starts_with("watched:0") && line.contains("UP")), "{table}");
    daemon.shutdown();
}

#[test]
fn a_stopped_program_stays_down_across_a_daemon_restart_and_a_reload_until_started() {
    let state = TestDir::new();
    let state_dir = state.join("flags");
    let yaml = format!(
        r#"
state_dir: {}
programs:
  web:
    cmd: sleep 1000
    starttime: 0
  other:
    cmd: sleep 1000
    starttime: 0
"#,
        state_dir.display()
    );
    let daemon = Daemon::start(&yaml);
    daemon.wait_all_running(&["web:0", "other:0"]);
    daemon.ctl_ok(&["stop", "web"]);
    daemon.ctl_ok(&["pause", "other"]);
    assert!(state_dir.join("web:0.stopped").exists());
    assert!(state_dir.join("other:0.paused").exists());
    assert_eq!(daemon.shutdown().code(), Some(0));

    // A new daemon on the same state directory: web held down, other paused at once.
    let daemon = Daemon::start(&yaml);
    let other = daemon.wait_state("other:0", "PAUSED");
    let other_pid = other["pid"].as_i64().expect("paused pid") as i32;
    daemon.wait_for("the process to be stopped (T)", WAIT, || {
        proc_stat(other_pid).is_some_and(|(state, _)| state == 'T')
    });
    let web = daemon.row("web:0").expect("web:0 row");
    assert_eq!(web["state"], "STOPPED");
    assert_eq!(web["held"], "stopped");
    assert!(daemon.events().contains("web:0: held down by a stop flag"));
    let table = daemon.ctl_ok(&["status", "web"]).stdout;
    assert!(table.contains("held down"), "{table}");

    // A reload that changes web leaves it down.
    daemon.write_config(
        &yaml.replace("cmd: sleep 1000\n    starttime: 0\n  other", "cmd: sleep 999\n    starttime: 0\n  other"),
    );
    let reload = daemon.ctl_ok(&["reload"]).stdout;
    assert!(reload.contains("changed web"), "{reload}");
    assert_eq!(daemon.state_of("web:0"), "STOPPED");

    daemon.ctl_ok(&["start", "web"]);
    daemon.ctl_ok(&["resume", "other"]);
    assert!(!state_dir.join("web:0.stopped").exists());
    assert!(!state_dir.join("other:0.paused").exists());
    assert_eq!(daemon.state_of("other:0"), "RUNNING");
    daemon.shutdown();
}

#[test]
fn zap_exits_zero_when_stopped_and_one_when_the_process_outlives_the_timeout() {
    let daemon = Daemon::start(
        r#"
programs:
  polite:
    cmd: sleep 1000
    starttime: 0
  stubborn:
    cmd: ["/bin/sh", "-c", "trap '' TERM; touch {dir}/ready; while :; do sleep 1; done"]
    starttime: 0
    stoptime: 30
"#,
    );
    daemon.wait_all_running(&["polite:0", "stubborn:0"]);
    daemon.wait_file("ready", "");
    let polite = daemon.ctl(&["zap", "polite", "--timeout", "10"]);
    assert_eq!(polite.code, Some(0), "{}", polite.all());
    assert!(polite.stdout.contains("polite:0: stopped"), "{}", polite.all());
    let stubborn = daemon.ctl(&["zap", "stubborn", "--timeout", "1"]);
    assert_eq!(stubborn.code, Some(1), "{}", stubborn.all());
    assert!(stubborn.stderr.contains("stubborn:0: ERROR timed out; still STOPPING"), "{}", stubborn.all());
    let unknown = daemon.ctl(&["zap", "nope"]);
    assert_eq!(unknown.code, Some(1), "{}", unknown.all());
    daemon.shutdown();
}

#[test]
fn stock_nginx_is_watched_through_its_pid_file() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|path| std::path::Path::new(path).exists());
    let Some(nginx) = nginx else {
        assert!(std::env::var("CI").is_err(), "nginx is missing; .ci/run installs it");
        eprintln!("skipping: nginx is not installed");
        return;
    };
    let dir = TestDir::new();
    let port = 20000 + (std::process::id() % 20000);
    dir.write(
        "nginx.conf",
        &dir.expand(&format!(
            "pid {{dir}}/nginx.pid;\nerror_log {{dir}}/error.log;\nworker_processes 2;\nevents {{}}\n\
             http {{ access_log off; client_body_temp_path {{dir}}; proxy_temp_path {{dir}}; fastcgi_temp_path {{dir}}; \
             uwsgi_temp_path {{dir}}; scgi_temp_path {{dir}}; server {{ listen 127.0.0.1:{port}; }} }}\n"
        )),
    );
    let yaml = format!(
        r#"
programs:
  nginx:
    cmd: ["{nginx}", "-c", "{{dir}}/nginx.conf", "-p", "{{dir}}"]
    pid_file: "{{dir}}/nginx.pid"
    monitor_interval: 1
    starttime: 1
    autorestart: always
    restart_delay: 1
"#
    );
    let daemon = Daemon::start_in(dir, &yaml);
    let first = daemon.wait_running("nginx:0");
    assert!(send_signal(first, "KILL"));
    daemon.wait_for("a new nginx master", WAIT, || daemon.pid_of("nginx:0").is_some_and(|pid| pid != first));
    let second = daemon.wait_running("nginx:0");
    assert_eq!(second, pid_in(&daemon.path("nginx.pid")));
    daemon.ctl_ok(&["stop", "nginx"]);
    assert!(!alive(second));
    daemon.shutdown();
}

#[test]
fn stopping_two_hundred_instances_syncs_the_state_directory_once_not_per_flag() {
    let strace = ["/usr/bin/strace", "/bin/strace"].into_iter().find(|path| std::path::Path::new(path).exists());
    let Some(strace) = strace else {
        panic!("strace (Debian package strace) is needed; .ci/run installs it");
    };
    let d = Daemon::start(
        r#"
programs:
  web:
    cmd: sleep 100000
    numprocs: 200
    starttime: 0
"#,
    );
    d.wait_for("200 instances RUNNING", WAIT, || d.ctl_ok(&["status"]).stdout.matches("RUNNING").count() == 200);
    let trace = d.path("fsync.trace");
    let mut tracer = Command::new(strace)
        .args(["-f", "-e", "trace=fsync,fdatasync,syncfs,sync", "-o"])
        .arg(&trace)
        .args(["-p", &d.pid.to_string()])
        .env(TAG_VAR, &d.dir.tag)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strace");
    // strace says when it is attached; read its stderr until then.
    let mut stderr = std::io::BufReader::new(tracer.stderr.take().expect("strace stderr"));
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        let read = std::io::BufRead::read_line(&mut stderr, &mut line).expect("read strace stderr");
        assert!(read > 0, "strace exited before attaching");
    }
    d.ctl_ok(&["stop", "all"]);
    d.wait_for("200 instances STOPPED", WAIT, || d.ctl_ok(&["status"]).stdout.matches("STOPPED").count() == 200);
    // The state directory also holds the ledger of live instances (instances.journal).
    let flags = fs::read_dir(d.path("sock.state"))
        .expect("state dir")
        .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".stopped")))
        .count();
    assert_eq!(flags, 200, "one stopped flag per instance");
    send_signal(tracer.id() as i32, "INT");
    let _ = tracer.wait();
    let syncs = read(&trace).lines().filter(|line| line.contains("sync(")).count();
    // One batch (one directory fsync) per turn that set flags; 200 flags used to cost 400.
    assert!((1..=4).contains(&syncs), "{syncs} sync calls for 200 flags:\n{}", read(&trace));
}
