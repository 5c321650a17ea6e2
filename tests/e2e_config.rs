//! Bad input: `sv-lite check` and the daemon reject every kind of bad config with the file,
//! line and key path, and the daemon exits 2 before spawning anything. Valid configs, the
//! taskmaster reference example (as written, with a warning), examples/aurora.yaml,
//! examples/readiness.yaml and examples/demo.yaml pass.

mod common;

use common::{sv_lite, Daemon, TestDir};

/// Lines 1-6 of every bad config: a valid program that would leave a marker file and keep
/// running if it were ever started. The body of program `web` starts on line 7.
const HEAD: &str = r#"logfile: {dir}/events.log
programs:
  marker:
    cmd: ["/bin/sh", "-c", "touch {dir}/marker; exec sleep 1000"]
    starttime: 0
  web:
"#;

struct Case {
    what: &'static str,
    /// The lines of `web`'s body, from line 7.
    body: &'static [&'static str],
    line: usize,
    path: &'static str,
    /// Fragments the message must contain.
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        what: "unknown key",
        body: &["cmd: \"sleep 1000\"", "numproc: 2"],
        line: 8,
        path: "programs.web.numproc",
        says: &["unknown key", "did you mean `numprocs`?"],
    },
    Case {
        what: "wrong type (integer)",
        body: &["cmd: \"sleep 1000\"", "numprocs: two"],
        line: 8,
        path: "programs.web.numprocs",
        says: &["expected an integer", "\"two\""],
    },
    Case {
        what: "wrong type (boolean)",
        body: &["cmd: \"sleep 1000\"", "autostart: maybe"],
        line: 8,
        path: "programs.web.autostart",
        says: &["expected true or false", "\"maybe\""],
    },
    Case {
        what: "wrong value (autorestart)",
        body: &["cmd: \"sleep 1000\"", "autorestart: sometimes"],
        line: 8,
        path: "programs.web.autorestart",
        says: &["always, never or unexpected", "\"sometimes\""],
    },
    Case { what: "empty cmd string", body: &["cmd: \"\""], line: 7, path: "programs.web.cmd", says: &["empty"] },
    Case { what: "empty cmd list", body: &["cmd: []"], line: 7, path: "programs.web.cmd", says: &["empty"] },
    Case {
        what: "missing cmd",
        body: &["numprocs: 2"],
        line: 6,
        path: "programs.web",
        says: &["missing required key `cmd`"],
    },
    Case {
        what: "numprocs 0",
        body: &["cmd: \"sleep 1000\"", "numprocs: 0"],
        line: 8,
        path: "programs.web.numprocs",
        says: &["at least 1", "0"],
    },
    Case {
        what: "negative time (number)",
        body: &["cmd: \"sleep 1000\"", "stoptime: -1"],
        line: 8,
        path: "programs.web.stoptime",
        says: &["negative"],
    },
    Case {
        what: "negative time (string)",
        body: &["cmd: \"sleep 1000\"", "starttime: \"-5s\""],
        line: 8,
        path: "programs.web.starttime",
        says: &["negative"],
    },
    Case {
        what: "unknown signal",
        body: &["cmd: \"sleep 1000\"", "stopsignal: TERMINATE"],
        line: 8,
        path: "programs.web.stopsignal",
        says: &["TERMINATE", "HUP", "INT", "KILL", "USR1", "USR2", "TERM"],
    },
    Case {
        what: "invalid umask",
        body: &["cmd: \"sleep 1000\"", "umask: 089"],
        line: 8,
        path: "programs.web.umask",
        says: &["089", "octal"],
    },
    Case {
        what: "unknown port in a template",
        body: &["cmd: \"sleep {{thermos.ports[http]}}\"", "ports: [admin]"],
        line: 7,
        path: "programs.web.cmd",
        says: &["unknown port `http`", "declared ports: admin"],
    },
    Case {
        what: "health check on an undeclared port",
        body: &["cmd: \"sleep 1000\"", "ports: [http]", "health_check:", "  tcp: helth"],
        line: 10,
        path: "programs.web.health_check.tcp",
        says: &["unknown port `helth`", "declared ports: http"],
    },
    Case {
        what: "dependency on an unknown program",
        body: &["cmd: \"sleep 1000\"", "depends_on:", "  markr: ready"],
        line: 9,
        path: "programs.web.depends_on.markr",
        says: &["unknown program `markr`", "did you mean `marker`?"],
    },
    Case {
        what: "socket address with a host name",
        body: &["cmd: \"sleep 1000\"", "sockets:", "  http: \"localhost:8080\""],
        line: 9,
        path: "programs.web.sockets.http",
        says: &["\"localhost:8080\"", "an IP address and port, or unix:/path"],
    },
];

fn config_for(case: &Case) -> String {
    let mut text = HEAD.to_string();
    for line in case.body {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The message line for `case` in `output`: `FILE:LINE:COLUMN: PATH: MESSAGE`.
fn find_error<'o>(case: &Case, file: &str, output: &'o str) -> &'o str {
    let prefix = format!("{file}:{}:", case.line);
    let line = output
        .lines()
        .find(|line| line.starts_with(&prefix) && line.contains(&format!(": {}: ", case.path)))
        .unwrap_or_else(|| panic!("{}: no line `{prefix}COLUMN: {}: ...` in:\n{output}", case.what, case.path));
    for fragment in case.says {
        assert!(line.contains(fragment), "{}: the message lacks {fragment:?}: {line}", case.what);
    }
    line
}

#[test]
fn each_kind_of_bad_config_is_rejected_with_line_and_key_path_and_nothing_starts() {
    for case in CASES {
        let dir = TestDir::new();
        let text = dir.expand(&config_for(case));
        let file = dir.write("bad.yaml", &text);
        let file_name = file.display().to_string();

        let check = sv_lite(&["check", &file_name]);
        assert_eq!(check.code, Some(2), "{}: sv-lite check must exit 2:\n{check}\nconfig:\n{text}", case.what);
        find_error(case, &file_name, &check.stderr);

        let (code, stderr) = Daemon::run_expecting_failure(&dir, &file, &dir.join("sock"));
        assert_eq!(code, Some(2), "{}: the daemon must exit 2:\n{stderr}", case.what);
        let line = find_error(case, &file_name, &stderr).to_string();
        assert!(stderr.contains("nothing started"), "{}: {stderr}", case.what);
        assert!(
            !dir.join("marker").exists(),
            "{}: the daemon started a program although the config is bad ({line})",
            case.what
        );
        let leftovers = common::tagged_pids(&dir.tag);
        assert!(leftovers.is_empty(), "{}: processes left running: {leftovers:?}", case.what);
        assert!(!common::read(dir.join("events.log")).contains("spawned"), "{}: something was spawned", case.what);
        assert!(!dir.join("sock").exists(), "{}: the daemon left a socket behind", case.what);
    }
}

#[test]
fn check_reports_every_error_at_once_and_accepts_a_valid_config() {
    let dir = TestDir::new();
    let bad = dir.write(
        "bad.yaml",
        "programs:\n  a:\n    cmd: \"sleep 1\"\n    numprocs: 0\n  b:\n    cmd: \"sleep 1\"\n    stopsignal: NOPE\n    umask: 999\n",
    );
    let output = sv_lite(&["check", &bad.display().to_string()]);
    assert_eq!(output.code, Some(2), "{output}");
    let errors: Vec<&str> = output.stderr.lines().filter(|line| line.contains(": programs.")).collect();
    assert_eq!(errors.len(), 3, "three errors, one per line:\n{output}");
    assert!(errors[0].contains(":4:") && errors[0].contains("programs.a.numprocs"), "{output}");
    assert!(errors[1].contains(":7:") && errors[1].contains("programs.b.stopsignal"), "{output}");
    assert!(errors[2].contains(":8:") && errors[2].contains("programs.b.umask"), "{output}");

    let good = dir.write(
        "good.yaml",
        r#"socket: {dir}/sock
logfile: {dir}/events.log
programs:
  web:
    cmd: "sleep 1000"
    numprocs: 3
    autostart: false
    autorestart: always
    exitcodes: [0, 2]
    startretries: 5
    starttime: 2
    restart_delay: 1
    stability_window: 30
    stopsignal: SIGUSR1
    stoptime: 5
    stdout: {dir}/web.out
    stderr: discard
    env: {A: 1, B: true}
    workingdir: /tmp
    umask: 022
    critical: false
    prefix: false
  other:
    cmd: ["/bin/echo", "hello world"]
"#,
    );
    let output = sv_lite(&["check", &good.display().to_string()]);
    assert_eq!(output.code, Some(0), "{output}");
    assert!(output.stdout.contains("ok"), "{output}");
    assert!(output.stdout.contains("2 programs, 4 instances"), "{output}");
    // check starts nothing.
    assert!(!dir.join("events.log").exists() && !dir.join("sock").exists());

    // Without FILE, check reads ./sv-lite.yaml.
    std::fs::copy(&good, dir.join("sv-lite.yaml")).expect("copy the config");
    let mut command = std::process::Command::new(&*common::BIN);
    command.arg("check").current_dir(&dir.path);
    let output = common::run_with_deadline(&mut command, common::CTL_DEADLINE);
    assert_eq!(output.code, Some(0), "{output}");
    assert!(output.stdout.contains("sv-lite.yaml: ok"), "{output}");

    let missing = sv_lite(&["check", &dir.join("missing.yaml").display().to_string()]);
    assert_eq!(missing.code, Some(2), "{missing}");
    assert!(missing.stderr.contains("missing.yaml"), "{missing}");
}

/// What `sv-lite check examples/taskmaster.yaml` and the daemon say about its exitcodes.
const TASKMASTER_WARNING: &str = "programs.nginx.exitcodes: read \"-0 -2\" as the list [0, 2]; \
                                  YAML took those lines as one string; write it as exitcodes: [0, 2]";

#[test]
fn the_taskmaster_example_passes_check_as_written_with_a_warning_on_stderr() {
    let mut command = std::process::Command::new(&*common::BIN);
    command.args(["check", "examples/taskmaster.yaml"]).current_dir(env!("CARGO_MANIFEST_DIR"));
    let output = common::run_with_deadline(&mut command, common::CTL_DEADLINE);
    assert_eq!(output.code, Some(0), "{output}");
    let warning = format!("examples/taskmaster.yaml:10:11: {TASKMASTER_WARNING}");
    assert_eq!(output.stderr.lines().collect::<Vec<_>>(), [warning.as_str()], "{output}");
    assert!(output.stdout.contains("examples/taskmaster.yaml: ok, 2 programs, 9 instances"), "{output}");
}

#[test]
fn the_aurora_example_passes_check() {
    let mut command = std::process::Command::new(&*common::BIN);
    command.args(["check", "examples/aurora.yaml"]).current_dir(env!("CARGO_MANIFEST_DIR"));
    let output = common::run_with_deadline(&mut command, common::CTL_DEADLINE);
    assert_eq!(output.code, Some(0), "{output}");
    assert_eq!(output.stderr, "", "no warnings: {output}");
    assert!(output.stdout.contains("examples/aurora.yaml: ok, 2 programs, 2 instances"), "{output}");
}

#[test]
fn the_readiness_example_passes_check() {
    let mut command = std::process::Command::new(&*common::BIN);
    command.args(["check", "examples/readiness.yaml"]).current_dir(env!("CARGO_MANIFEST_DIR"));
    let output = common::run_with_deadline(&mut command, common::CTL_DEADLINE);
    assert_eq!(output.code, Some(0), "{output}");
    assert_eq!(output.stderr, "", "no warnings: {output}");
    assert!(output.stdout.contains("examples/readiness.yaml: ok, 5 programs, 6 instances"), "{output}");
}

#[test]
fn the_daemon_logs_the_exitcodes_warning_at_start_and_at_each_reload() {
    let config =
        "logfile: {dir}/events.log\nprograms:\n  web:\n    cmd: \"sleep 1000\"\n    exitcodes:\n      -0\n      -2\n";
    let d = Daemon::start(config);
    let warning = format!("sv-lite.yaml:6:7: {}", TASKMASTER_WARNING.replace("nginx", "web"));
    let warnings = || {
        common::read(&d.stderr_path).lines().filter(|line| line.contains(" WARN ") && line.contains(&warning)).count()
    };
    d.wait_for("the warning at start", common::WAIT, || warnings() == 1);
    d.ctl_ok(&["reload"]);
    d.wait_for("the warning at `ctl reload`", common::WAIT, || warnings() == 2);
    assert!(common::send_signal(d.pid, "HUP"));
    d.wait_for("the warning at SIGHUP", common::WAIT, || warnings() == 3);
    d.wait_running("web:0");
    assert_eq!(d.shutdown().code(), Some(0));
}

#[test]
fn the_demo_config_passes_check_and_runs_with_its_crashing_program_restarted() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.yaml");
    let output = sv_lite(&["check", demo]);
    assert_eq!(output.code, Some(0), "examples/demo.yaml must pass check:\n{output}");

    // Run it, with the event log moved into the test directory.
    let text = std::fs::read_to_string(demo).expect("read examples/demo.yaml");
    let text: String = text
        .lines()
        .map(|line| if line.starts_with("logfile:") { "logfile: {dir}/events.log" } else { line })
        .collect::<Vec<_>>()
        .join("\n");
    let d = Daemon::start(&text);
    d.wait_for("a demo program to crash and be restarted", std::time::Duration::from_secs(30), || {
        let events = d.events();
        events.contains("(unexpected); restarting") || events.contains("(unexpected); BACKOFF, restarting")
    });
    let status = d.status_json();
    let rows = status.as_array().cloned().unwrap_or_default();
    assert!(rows.iter().any(|row| row["state"] == "RUNNING"), "{status}");
    assert!(!rows.iter().any(|row| row["state"] == "FATAL"), "no demo program is FATAL: {status}");
    let code = d.shutdown();
    assert_eq!(code.code(), Some(0));
}

#[test]
fn version_and_help_answer_on_every_subcommand() {
    let version = sv_lite(&["--version"]);
    assert_eq!(version.code, Some(0), "{version}");
    assert!(version.stdout.starts_with("sv-lite "), "{version}");
    for args in
        [&["--help"][..], &["check", "--help"], &["ctl", "--help"], &["ctl", "status", "--help"], &["ctl", "--version"]]
    {
        let output = sv_lite(args);
        assert_eq!(output.code, Some(0), "sv-lite {}:\n{output}", args.join(" "));
        assert!(
            output.stdout.contains("usage") || output.stdout.starts_with("sv-lite "),
            "sv-lite {}:\n{output}",
            args.join(" ")
        );
    }
    let output = sv_lite(&["ctl", "frobnicate"]);
    assert_eq!(output.code, Some(2), "an unknown ctl command is a usage error:\n{output}");
    let output = sv_lite(&["--no-such-flag"]);
    assert_eq!(output.code, Some(2), "an unknown option is a usage error:\n{output}");
}
