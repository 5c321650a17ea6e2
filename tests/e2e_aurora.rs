//! Aurora-style services end to end, against real servers: named ports, HTTP, shell and TCP
//! health checks with Aurora's thresholds, snooze, and the HTTP lifecycle on stop.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/health_server.py");

fn busybox() -> &'static str {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("busybox (Debian package busybox-static) is needed; .ci/run installs it")
}

fn health_of(d: &Daemon, instance: &str) -> String {
    d.row(instance).and_then(|row| row["health"].as_str().map(str::to_string)).unwrap_or_default()
}

/// Starts the Python test server as program `api` with a `health` port (named in its command
/// line with `template`, e.g. `ports[health]`) and `options` (more YAML lines of the program);
/// returns the daemon and the server's state directory.
fn start_api(template: &str, options: &str) -> (Daemon, std::path::PathBuf) {
    let dir = TestDir::new();
    let state = dir.join("state");
    fs::create_dir_all(&state).expect("mkdir state");
    let yaml = format!(
        "programs:\n  api:\n    cmd: [\"python3\", \"{SERVER}\", \"{{{{{template}}}}}\", \"{{dir}}/state\"]\n    ports: [health]\n{options}"
    );
    (Daemon::start_in(dir, &yaml), state)
}

fn port_of(d: &Daemon, instance: &str, name: &str) -> u16 {
    let output = d.ctl_ok(&["port", instance, name]);
    output.stdout.trim().parse().unwrap_or_else(|_| panic!("`ctl port {instance} {name}` printed {output}"))
}

#[test]
fn busybox_httpd_is_healthy_while_its_file_exists_and_restarted_when_it_goes() {
    let dir = TestDir::new();
    fs::create_dir_all(dir.join("www")).expect("mkdir www");
    fs::write(dir.join("www/health"), "ok\n").expect("health file");
    let d = Daemon::start_in(
        dir,
        &format!(
            r#"
programs:
  web:
    cmd: "{busybox} httpd -f -p 127.0.0.1:{{{{thermos.ports[http]}}}} -h {{dir}}/www"
    ports: [http]
    health_check:
      http: {{port: http, endpoint: /health, expected_response: ok}}
      initial_interval_secs: 0
      interval_secs: 0.2
      timeout_secs: 1
      max_consecutive_failures: 1
      min_consecutive_successes: 2
    startretries: 100
"#,
            busybox = busybox()
        ),
    );
    let first = d.wait_running("web:0");
    assert_eq!(health_of(&d, "web:0"), "HEALTHY");
    let port = port_of(&d, "web:0", "http");
    d.wait_event("web:0: RUNNING");

    // The health file goes: two failures in a row (> max 1) make it unhealthy; it is stopped
    // and restarted, and cannot be ready again until the file is back.
    fs::remove_file(d.path("www/health")).expect("remove health file");
    d.wait_event("web:0: unhealthy: 2 health checks failed in a row");
    d.wait_for("web:0 to be restarted", WAIT, || d.pid_of("web:0").is_some_and(|pid| pid != first));
    fs::write(d.path("www/health"), "ok\n").expect("restore health file");
    let second = d.wait_running("web:0");
    assert_ne!(first, second);
    assert_eq!(port_of(&d, "web:0", "http"), port, "the instance keeps its port across restarts");
    let events = d.events();
    assert!(events.contains("health check failed: HTTP 404"), "{events}");
    d.shutdown();
}

#[test]
fn the_python_server_answers_ok_other_500_and_nothing_and_each_is_judged() {
    let (d, state) = start_api(
        "ports[health]",
        r#"    health_check:
      http: {endpoint: /health, expected_response: ok}
      initial_interval_secs: 0
      interval_secs: 0.2
      timeout_secs: 0.5
      max_consecutive_failures: 1000
"#,
    );
    d.wait_running("api:0");
    d.wait_for("HEALTHY", WAIT, || health_of(&d, "api:0") == "HEALTHY");
    let last = |d: &Daemon| d.row("api:0").and_then(|row| row["health_last"].as_str().map(str::to_string));
    for (mode, expected) in
        [("other", "body \"not ok\", expected \"ok\""), ("500", "HTTP 500"), ("hang", "timed out after 500ms")]
    {
        fs::write(state.join("mode"), mode).expect("mode");
        d.wait_for(&format!("mode {mode} to be judged {expected:?}"), WAIT, || {
            last(&d).is_some_and(|text| text.contains(expected))
        });
        let row = d.row("api:0").unwrap_or_default();
        assert!(row["health_failures"].as_u64().unwrap_or(0) >= 1, "{row}");
        assert_eq!(row["state"], "RUNNING", "max_consecutive_failures is high: it stays up");
    }
    fs::write(state.join("mode"), "ok").expect("mode");
    d.wait_for("HEALTHY again", WAIT, || health_of(&d, "api:0") == "HEALTHY");
    d.shutdown();
}

#[test]
fn stop_posts_quitquitquit_then_abortabortabort_then_signals() {
    let (d, state) = start_api(
        "thermos.ports[health]",
        r#"    starttime: 0.5
    lifecycle:
      http: {graceful_shutdown_wait_secs: 0.5, shutdown_wait_secs: 0.5}
"#,
    );
    d.wait_running("api:0");
    d.wait_for("the server to listen", WAIT, || read(state.join("requests.log")).contains("listening"));
    // A server that ignores both POSTs: both are sent, then SIGTERM ends it.
    d.ctl_ok(&["stop", "api"]);
    let requests = read(state.join("requests.log"));
    let quit = requests.find("POST /quitquitquit").unwrap_or_else(|| panic!("no /quitquitquit:\n{requests}"));
    let abort = requests.find("POST /abortabortabort").unwrap_or_else(|| panic!("no /abortabortabort:\n{requests}"));
    assert!(quit < abort, "{requests}");
    d.wait_event("api:0: still running; sending SIGTERM");

    // A server that obeys: it exits on /quitquitquit, and the sequence ends there.
    fs::write(state.join("obey"), "").expect("obey");
    fs::remove_file(state.join("requests.log")).expect("reset log");
    d.ctl_ok(&["start", "api"]);
    d.wait_for("the server to listen again", WAIT, || read(state.join("requests.log")).contains("listening"));
    d.ctl_ok(&["stop", "api"]);
    let requests = read(state.join("requests.log"));
    assert!(requests.contains("POST /quitquitquit"), "{requests}");
    assert!(!requests.contains("POST /abortabortabort"), "it exited at the first step:\n{requests}");
    let row = d.row("api:0").unwrap_or_default();
    assert_eq!(row["exit_code"], 0, "{row}");
    d.shutdown();
}

#[test]
fn shell_and_tcp_checks_and_a_failed_start_counting_against_startretries() {
    let dir = TestDir::new();
    // Debug logging shows how every reaped pid was attributed.
    let launch = Launch { env: vec![("RUST_LOG", "debug")], ..Launch::default() };
    let d = Daemon::start_with(
        dir,
        &format!(
            r#"
programs:
  shelly:
    cmd: sleep 100000
    workingdir: "{{dir}}"
    env: {{READY_FILE: ready}}
    health_check:
      shell: "test -f $READY_FILE"
      initial_interval_secs: 0
      interval_secs: 0.2
      max_consecutive_failures: 2
      min_consecutive_successes: 1
    startretries: 1
  tcpish:
    cmd: "{busybox} nc -ll -p {{{{ports[main]}}}} -e /bin/true"
    ports: [main]
    health_check:
      tcp: main
      initial_interval_secs: 0
      interval_secs: 0.2
"#,
            busybox = busybox()
        ),
        launch,
    );
    d.wait_running("tcpish:0");
    assert_eq!(health_of(&d, "tcpish:0"), "HEALTHY");
    // No ready file: n = 0 + 2 + 1 = 3 checks fail, twice (startretries: 1), then FATAL.
    let row = d.wait_state("shelly:0", "FATAL");
    let detail = row["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("3 health checks without 1 passing in a row"), "{row}");
    assert!(detail.contains("(last: exit status 1 in "), "{row}");
    // The check's exits are the check's: never taken for the instance's own, never orphans.
    let stderr = d.stderr();
    assert!(stderr.contains("health check failed (1 in a row): exit status 1"), "{stderr}");
    assert!(!stderr.contains("an adopted orphan"), "{stderr}");
    fs::write(d.path("ready"), "").expect("ready file");
    d.ctl_ok(&["start", "shelly"]);
    assert_eq!(d.state_of("shelly:0"), "RUNNING");
    d.shutdown();
}

#[test]
fn two_instances_get_different_ports_and_keep_them_across_restarts() {
    let d = Daemon::start(&format!(
        r#"
programs:
  web:
    cmd: ["python3", "{SERVER}", "{{{{thermos.ports[http]}}}}", "{{dir}}"]
    numprocs: 2
    ports: {{http: 0, admin: http}}
    health_check:
      tcp: http
      initial_interval_secs: 1
      interval_secs: 0.2
"#
    ));
    let pids = d.wait_all_running(&["web:0", "web:1"]);
    let (zero, one) = (port_of(&d, "web:0", "http"), port_of(&d, "web:1", "http"));
    assert_ne!(zero, one);
    assert_eq!(port_of(&d, "web:0", "admin"), zero, "an alias has its target's number");
    let rows = d.status_json();
    assert_eq!(rows[0]["ports"]["http"], zero, "{rows}");
    // The child sees its port in its environment too.
    let environ = read(format!("/proc/{}/environ", pids[0]));
    assert!(environ.contains(&format!("PORT_HTTP={zero}")), "{environ}");
    // Killed and restarted: same port.
    send_signal(pids[0], "KILL");
    d.wait_for("web:0 to come back", WAIT, || {
        d.row("web:0").is_some_and(|row| row["state"] == "RUNNING" && row["pid"].as_i64() != Some(pids[0].into()))
    });
    assert_eq!(port_of(&d, "web:0", "http"), zero);
    assert!(d.ctl(&["port", "web:0", "nope"]).stderr.contains("no port named \"nope\""));
    d.shutdown();
}

#[test]
fn snooze_skips_checks_until_unsnoozed_or_until_its_time_is_up() {
    let dir = TestDir::new();
    let d = Daemon::start_in(
        dir,
        r#"
programs:
  svc:
    cmd: sleep 100000
    workingdir: "{dir}"
    health_check:
      shell: "test -f healthy"
      initial_interval_secs: 0
      interval_secs: 0.2
      max_consecutive_failures: 2
    startretries: 100
"#,
    );
    fs::write(d.path("healthy"), "").expect("healthy");
    let pid = d.wait_running("svc:0");
    let snooze = d.path(".healthchecksnooze");
    d.ctl_ok(&["snooze", "svc"]);
    assert!(snooze.exists());
    d.wait_for("SNOOZED", WAIT, || health_of(&d, "svc:0") == "SNOOZED");
    // Checks would fail now, but they are not run: the instance is left alone.
    fs::remove_file(d.path("healthy")).expect("unhealthy");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    d.wait_for("two seconds of snoozed checks", WAIT, || std::time::Instant::now() >= until);
    assert_eq!(d.pid_of("svc:0"), Some(pid), "a snoozed instance is not restarted");
    fs::write(d.path("healthy"), "").expect("healthy");
    d.ctl_ok(&["unsnooze", "svc"]);
    assert!(!snooze.exists());
    d.wait_for("HEALTHY", WAIT, || health_of(&d, "svc:0") == "HEALTHY");
    // --for: the file goes away by itself.
    d.ctl_ok(&["snooze", "--for", "1s", "svc"]);
    assert!(snooze.exists());
    d.wait_for("the timed snooze to end", WAIT, || !snooze.exists());
    d.wait_event("svc:0: snooze time is up; removing the snooze file");
    d.shutdown();
}

#[test]
fn the_aurora_hello_world_service_runs_and_is_restarted() {
    let example = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/aurora.yaml")).expect("example");
    // Only the `hello` service: the rest of the example needs nginx's scripts.
    let hello = example.split("\n  web:").next().expect("hello part");
    let d = Daemon::start(hello);
    let pid = d.wait_running("hello:0");
    d.wait_for("hello world in its output", WAIT, || d.ctl_ok(&["tail", "hello"]).stdout.contains("hello world"));
    send_signal(pid, "KILL");
    d.wait_for("hello to be restarted", WAIT, || d.pid_of("hello:0").is_some_and(|new| new != pid));
    d.shutdown();
}
