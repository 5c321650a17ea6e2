//! Readiness the programs announce and start order, end to end with real programs:
//! redis-server and systemd-notify over sd_notify, an s6-style notification fd, a dependency
//! chain with a one-shot, a FATAL dependency, a cycle error and shutdown order.

mod common;

use std::path::Path;

use common::*;

fn tool(names: &[&str], package: &str) -> String {
    names
        .iter()
        .find(|path| Path::new(path).exists())
        .map(|path| path.to_string())
        .unwrap_or_else(|| panic!("{} (Debian package {package}) is needed; .ci/run installs it", names[0]))
}

fn notify_text(d: &Daemon, instance: &str) -> String {
    d.row(instance).and_then(|row| row["notify"].as_str().map(str::to_string)).unwrap_or_default()
}

#[test]
fn redis_server_supervised_systemd_is_running_only_after_ready_and_its_status_shows() {
    let redis = tool(&["/usr/bin/redis-server"], "redis-server");
    let d = Daemon::start(&format!(
        r#"
programs:
  cache:
    cmd: "{redis} --port 0 --unixsocket {{dir}}/redis.sock --save '' --appendonly no --supervised systemd"
    readiness: notify
    ready_timeout: 30
"#
    ));
    d.wait_running("cache:0");
    let events = d.events();
    assert!(events.contains("cache:0: ready (the program said so)"), "{events}");
    d.wait_for("redis's STATUS text", WAIT, || notify_text(&d, "cache:0").contains("Ready to accept connections"));
    let table = d.ctl_ok(&["status", "cache"]).stdout;
    assert!(table.contains("Ready to accept connections"), "{table}");
    d.shutdown();
}

#[test]
fn systemd_notify_ready_status_and_barrier_then_a_watchdog_that_stops_pinging() {
    let notify = tool(&["/usr/bin/systemd-notify", "/bin/systemd-notify"], "systemd");
    let d = Daemon::start(&format!(
        r#"
programs:
  svc:
    # Starts slowly, says so, becomes ready (systemd-notify waits for the BARRIER to be
    # answered), pings the watchdog three times, then stops pinging.
    cmd: ["/bin/sh", "-c", "echo $WATCHDOG_PID $$ $WATCHDOG_USEC > {{dir}}/watchdog-env; {notify} --status='warming up'; sleep 0.5; {notify} --ready --status='serving'; for i in 1 2 3; do sleep 0.2; {notify} WATCHDOG=1; done; echo stopped-pinging; exec sleep 100000"]
    readiness: notify
    watchdog: 1s
    ready_timeout: 30
    startretries: 100
"#
    ));
    d.wait_running("svc:0");
    let first = d.pid_of("svc:0").expect("pid");
    // WATCHDOG_PID is the program's own pid; WATCHDOG_USEC the interval.
    assert_eq!(read(d.path("watchdog-env")).trim(), format!("{first} {first} 1000000"));
    assert_eq!(notify_text(&d, "svc:0"), "serving");
    d.wait_event("svc:0: watchdog: no WATCHDOG=1 for 1s; stopping it to restart");
    d.wait_for("a new svc:0 after the watchdog fired", WAIT, || d.pid_of("svc:0").is_some_and(|pid| pid != first));
    let stderr = d.stderr();
    assert!(!stderr.contains("Failed to invoke barrier"), "systemd-notify's BARRIER was answered:\n{stderr}");
    d.shutdown();
}

#[test]
fn an_s6_notification_fd_program_is_running_after_its_newline_and_a_silent_one_times_out() {
    let d = Daemon::start(
        r#"
programs:
  s6:
    cmd: ["/bin/sh", "-c", "sleep 0.3; echo >&3; exec sleep 100000"]
    readiness: fd:3
  silent:
    cmd: sleep 100000
    readiness: fd:3
    ready_timeout: 1
    startretries: 0
"#,
    );
    d.wait_running("s6:0");
    d.wait_event("s6:0: ready (the program said so)");
    let row = d.wait_state("silent:0", "FATAL");
    assert!(row["detail"].as_str().unwrap_or_default().contains("not ready within ready_timeout (1s)"), "{row}");
    d.shutdown();
}

#[test]
fn a_three_level_chain_with_a_one_shot_starts_in_order_and_stops_in_reverse() {
    let d = Daemon::start(
        r#"
programs:
  migrate:
    cmd: ["/bin/sh", "-c", "sleep 0.3; echo migrated > {dir}/migrated"]
    autorestart: never
    starttime: 0
  db:
    cmd: ["/bin/sh", "-c", "test -f {dir}/migrated && exec sleep 100000"]
    starttime: 0.3
    depends_on: {migrate: completed}
  web:
    cmd: sleep 100000
    starttime: 0
    depends_on: {db: ready}
"#,
    );
    // web waits for db, which waits for migrate.
    d.wait_running("web:0");
    let events = d.events();
    let position = |needle: &str| events.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{events}"));
    assert!(position("web:0: WAITING: waiting for db: ready") < position("migrate:0: exited"));
    assert!(position("migrate:0: exited") < position("db:0: dependencies met; starting"));
    assert!(position("db:0: RUNNING") < position("web:0: dependencies met; starting"));
    // Shutdown: web first, then db, then nothing left of migrate.
    d.signal("TERM");
    let mut d = d;
    d.wait_exit(WAIT);
    let events = d.events();
    let stop_web = events.find("web:0: stopping").unwrap_or_else(|| panic!("{events}"));
    let stop_db = events.find("db:0: stopping").unwrap_or_else(|| panic!("{events}"));
    let web_down = events.find("web:0: stopped").unwrap_or_else(|| panic!("{events}"));
    assert!(stop_web < web_down && web_down < stop_db, "dependents stop first:\n{events}");
}

#[test]
fn a_fatal_dependency_leaves_its_dependent_waiting_and_ctl_start_says_why() {
    let d = Daemon::start(
        r#"
programs:
  db:
    cmd: ["/bin/sh", "-c", "exit 1"]
    startretries: 0
  web:
    cmd: sleep 100000
    depends_on: {db: ready}
"#,
    );
    d.wait_state("db:0", "FATAL");
    let row = d.wait_state("web:0", "WAITING");
    assert!(row["detail"].as_str().unwrap_or_default().starts_with("db:0 is FATAL"), "{row}");
    let start = d.ctl(&["start", "web"]);
    assert_eq!(start.code, Some(1), "{start}");
    assert!(start.stderr.contains("WAITING: db:0 is FATAL"), "{start}");
    d.shutdown();
}

#[test]
fn a_dependency_cycle_is_a_config_error_naming_the_cycle() {
    let (code, stderr) = Daemon::start_expecting_failure(
        r#"
programs:
  web: {cmd: sleep 1, depends_on: {db: ready}}
  db: {cmd: sleep 1, depends_on: {cache: started}}
  cache: {cmd: sleep 1, depends_on: {web: ready}}
"#,
    );
    assert_eq!(code, Some(2), "{stderr}");
    // Named from the member first in the file, in dependency order.
    assert!(stderr.contains("programs.web.depends_on: dependency cycle: web -> db -> cache -> web"), "{stderr}");
}

#[test]
fn a_socket_activated_server_killed_twenty_times_never_refuses_a_connection() {
    const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/activated_server.py");
    let d = Daemon::start(&format!(
        r#"
programs:
  web:
    cmd: ["python3", "{SERVER}"]
    sockets: {{http: "127.0.0.1:0"}}
    autorestart: always
    starttime: 0
    stability_window: 0
    # The port it got, by name, like any port.
    env: {{MY_PORT: "{{{{ports[http]}}}}"}}
"#
    ));
    let first = d.wait_running("web:0");
    let port: u16 = d.ctl_ok(&["port", "web:0", "http"]).stdout.trim().parse().expect("a port number");
    assert_ne!(port, 0);
    let environ = read(format!("/proc/{first}/environ"));
    assert!(environ.contains(&format!("MY_PORT={port}")), "{environ}");

    // A client connects in a loop while the server is killed and restarted 20 times; each
    // server is killed only after it has answered, so 21 different servers answer in all.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::<i32>::new()));
    let client = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let (mut answered, mut refused) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(mut stream) => {
                        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).expect("timeout");
                        let mut answer = String::new();
                        let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
                        if let Ok(pid) = answer.trim().parse::<i32>() {
                            answered += 1;
                            seen.lock().expect("lock").insert(pid);
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                    Err(error) => panic!("connect: {error}"),
                }
            }
            (answered, refused)
        })
    };
    let mut pid = first;
    for _ in 0..20 {
        d.wait_for("the server to answer the client", WAIT, || seen.lock().expect("lock").contains(&pid));
        assert!(send_signal(pid, "KILL"));
        d.wait_for("the server to be restarted", WAIT, || {
            d.row("web:0").is_some_and(|row| row["state"] == "RUNNING" && row["pid"].as_i64() != Some(pid.into()))
        });
        pid = d.pid_of("web:0").expect("a pid");
    }
    d.wait_for("the last server to answer", WAIT, || seen.lock().expect("lock").contains(&pid));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, refused) = client.join().expect("client thread");
    let servers = seen.lock().expect("lock").len();
    eprintln!("{answered} connections answered by {servers} servers, {refused} refused");
    assert_eq!(refused, 0, "connections wait in the backlog while the server restarts");
    assert_eq!(servers, 21, "every server answered");
    d.shutdown();
}
