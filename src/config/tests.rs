//! Executable spec for the config format: every option, every error and where it points.

#![allow(clippy::unwrap_used)] // STYLE.md rule 18: allowed in tests

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::spec::{
    AutoRestart, CheckKind, Condition, Dependency, HealthCheck, HttpLifecycle, PortRef, PortSpec, Readiness, Signal,
    SocketSpec,
};

fn load_ok(text: &str) -> Config {
    from_yaml_str(text, "test.yaml").unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}"))
}

fn errors(text: &str) -> Vec<ConfigError> {
    match from_yaml_str(text, "test.yaml") {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors.errors,
    }
}

fn one_error(text: &str) -> ConfigError {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

/// A program `web` with one extra setting on line 4.
fn with(setting: &str) -> String {
    format!("programs:\n  web:\n    cmd: /bin/true\n    {setting}\n")
}

fn web(setting: &str) -> ProgramSpec {
    let config = load_ok(&with(setting));
    assert_eq!(config.programs.len(), 1);
    config.programs.into_iter().next().unwrap()
}

/// The one error for a bad `setting` on line 4: its path, line and message.
fn web_error(setting: &str) -> (String, Option<usize>, String) {
    let error = one_error(&with(setting));
    (error.path, error.line, error.message)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_string()).collect()
}

#[test]
fn empty_files_and_files_without_programs_are_valid() {
    for text in
        ["", "# nothing yet\n", "---\n", "programs:\n", "programs: {}\n", "services: []\n", "socket: /run/sv.sock\n"]
    {
        assert!(load_ok(text).programs.is_empty(), "{text:?}");
    }
}

#[test]
fn top_level_settings() {
    let config =
        load_ok("socket: /run/sv.sock\nlogfile: /var/log/sv.log\nsocket_group: wheel\nstate_dir: /var/lib/sv\n");
    assert_eq!(config.socket, Some(PathBuf::from("/run/sv.sock")));
    assert_eq!(config.logfile, Some(PathBuf::from("/var/log/sv.log")));
    assert_eq!(config.socket_group.as_deref(), Some("wheel"));
    assert_eq!(config.state_dir, Some(PathBuf::from("/var/lib/sv")));
}

#[test]
fn a_minimal_program_gets_every_default() {
    let spec = web("");
    let mut expected = ProgramSpec::with_defaults("web");
    expected.argv = strings(&["/bin/true"]);
    assert_eq!(spec, expected);
    assert_eq!(spec.numprocs, 1);
    assert!(spec.autostart);
    assert_eq!(spec.autorestart, AutoRestart::Unexpected);
    assert_eq!(spec.exitcodes, [0]);
    assert_eq!(spec.startretries, 3);
    assert_eq!((spec.starttime, spec.stoptime), (secs(1), secs(10)));
    assert_eq!((spec.restart_delay, spec.stability_window, spec.monitor_interval), (Duration::ZERO, secs(10), secs(5)));
    assert_eq!(spec.stopsignal, Signal::TERM);
    assert_eq!((spec.stdout.clone(), spec.stderr.clone()), (Sink::Forward, Sink::Forward));
    assert!(spec.env.is_empty() && spec.workingdir.is_none() && spec.umask.is_none() && spec.pid_file.is_none());
    assert!(!spec.critical && spec.prefix);
    assert_eq!(spec.tail_buffer, 64 * 1024);
}

#[test]
fn every_option_is_read() {
    let config = load_ok(
        r#"
programs:
  api:
    cmd: ["/usr/bin/api", "--port", 8080, true]
    numprocs: 2
    autostart: false
    autorestart: always
    exitcodes: [0, 3, 3]
    startretries: 0
    starttime: 1.5
    restart_delay: 250ms
    stoptime: "2m"
    stability_window: 1h
    monitor_interval: "10"
    stopsignal: sigint
    stdout: /var/log/%(name)s-%(instance_number)s.out
    stderr: discard
    env:
      ZED: last
      ANSWER: 42
      FLAG: true
      RATIO: 0.5
    workingdir: /srv/api
    umask: 027
    critical: true
    prefix: false
    tail_buffer: 1MiB
    pid_file: /run/%(name)s.pid
"#,
    );
    let spec = &config.programs[0];
    let expected = ProgramSpec {
        name: "api".to_string(),
        argv: strings(&["/usr/bin/api", "--port", "8080", "true"]),
        numprocs: 2,
        autostart: false,
        autorestart: AutoRestart::Always,
        exitcodes: vec![0, 3],
        startretries: 0,
        starttime: Duration::from_millis(1500),
        restart_delay: Duration::from_millis(250),
        stoptime: secs(120),
        stability_window: secs(3600),
        monitor_interval: secs(10),
        stopsignal: Signal(libc::SIGINT),
        stdout: Sink::File(PathBuf::from("/var/log/%(name)s-%(instance_number)s.out")),
        stderr: Sink::Discard,
        env: vec![
            ("ANSWER".to_string(), "42".to_string()),
            ("FLAG".to_string(), "true".to_string()),
            ("RATIO".to_string(), "0.5".to_string()),
            ("ZED".to_string(), "last".to_string()),
        ],
        workingdir: Some(PathBuf::from("/srv/api")),
        umask: Some(0o27),
        critical: true,
        prefix: false,
        tail_buffer: 1 << 20,
        pid_file: Some("/run/%(name)s.pid".to_string()),
        ports: Vec::new(),
        health_check: None,
        lifecycle: None,
        // With a pid file, the pid file is the readiness.
        readiness: Readiness::PidFile,
        ready_timeout: crate::spec::defaults::READY_TIMEOUT,
        watchdog: None,
        depends_on: Vec::new(),
        sockets: Vec::new(),
        schedule: None,
        stdout_rotate: crate::spec::Rotate::default(),
        stderr_rotate: crate::spec::Rotate::default(),
    };
    assert_eq!(spec, &expected);
    assert_eq!(spec.launch(1, &[]).stdout, Sink::File(PathBuf::from("/var/log/api-1.out")));
}

#[test]
fn programs_are_sorted_by_name() {
    let config = load_ok("programs:\n  zeta: {cmd: z}\n  alpha: {cmd: a}\n  mid.v2-x_1: {cmd: m}\n");
    let names: Vec<&str> = config.programs.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid.v2-x_1", "zeta"]);
}

#[test]
fn cmd_strings_split_like_a_shell_without_expansion() {
    let cases: &[(&str, &[&str])] = &[
        (r#"cmd: "/bin/echo  a   b""#, &["/bin/echo", "a", "b"]),
        (r#"cmd: "sh -c 'echo $HOME; exit 1'""#, &["sh", "-c", "echo $HOME; exit 1"]),
        (r#"cmd: 'printf "%s \"q\" \$x \n" '''''"#, &["printf", r#"%s "q" $x \n"#, ""]),
        (r#"cmd: 'a\ b c\"d'"#, &["a b", "c\"d"]),
        (r#"cmd: 'say "it''s" x"y"z'"#, &["say", "it's", "xyz"]),
        ("cmd: [echo, 1, 2.5, false, '']", &["echo", "1", "2.5", "false", ""]),
    ];
    for (setting, argv) in cases {
        let config = load_ok(&format!("programs:\n  web:\n    {setting}\n"));
        assert_eq!(config.programs[0].argv, strings(argv), "{setting}");
    }
}

#[test]
fn bad_commands_are_rejected() {
    let cases = [
        ("cmd: ''", "the command is empty"),
        ("cmd: '   '", "the command is empty"),
        ("cmd: []", "the command is empty"),
        ("cmd: \"''\"", "the program to run (the first word) is empty"),
        ("cmd: \"echo 'oops\"", "unterminated single quote"),
        ("cmd: 'echo \"oops'", "unterminated double quote"),
        ("cmd: 'echo \\'", "lone backslash"),
        ("cmd: 'echo hi > /tmp/x'", "`>` is a shell operator"),
        ("cmd: 'a | b'", "`|` is a shell operator"),
        ("cmd: {a: 1}", "expected a command string or a list of words, found a mapping"),
    ];
    for (setting, words) in cases {
        let error = one_error(&format!("programs:\n  web:\n    {setting}\n"));
        assert_eq!((error.path.as_str(), error.line), ("programs.web.cmd", Some(3)), "{setting}");
        assert!(error.message.contains(words), "{setting}: {}", error.message);
    }
    let error = one_error("programs:\n  web:\n    cmd:\n      - echo\n      - [nested]\n");
    assert_eq!((error.path.as_str(), error.line), ("programs.web.cmd[1]", Some(5)));
    assert_eq!(error.message, "expected a string, found a list");
    let error = one_error("programs:\n  web:\n    numprocs: 2\n");
    assert_eq!((error.path.as_str(), error.line, error.column), ("programs.web", Some(2), Some(3)));
    assert_eq!(error.message, "missing required key `cmd` (the command to run)");
}

#[test]
fn a_list_written_without_spaces_after_dashes_gets_a_hint() {
    let error = one_error("programs:\n  web:\n    cmd:\n      -/bin/sleep\n      -10\n");
    assert_eq!(error.line, Some(4));
    assert!(error.message.contains("put a space after each dash (`- /bin/sleep`)"), "{}", error.message);
}

#[test]
fn integers_booleans_and_their_type_errors() {
    assert_eq!(web("numprocs: 4").numprocs, 4);
    assert_eq!(web("startretries: 0").startretries, 0);
    assert!(!web("autostart: false").autostart);
    assert_eq!(
        web_error("numprocs: five"),
        ("programs.web.numprocs".to_string(), Some(4), "expected an integer, found a string \"five\"".to_string())
    );
    assert_eq!(web_error("numprocs: 0").2, "must be at least 1, found 0");
    assert_eq!(web_error("numprocs: 1.5").2, "expected an integer, found a number 1.5");
    assert_eq!(web_error("numprocs: 99999999999").2, "99999999999 is too large (at most 4294967295)");
    assert_eq!(web_error("startretries: -1").2, "must be zero or more, found -1");
    assert_eq!(web_error("autostart: yes").2, "expected true or false, found a string \"yes\"");
    assert_eq!(web_error("critical: 1").2, "expected true or false, found an integer 1");
    assert_eq!(web_error("prefix:").2, "expected true or false, found null");
}

#[test]
fn autorestart_accepts_names_and_booleans() {
    assert_eq!(web("autorestart: never").autorestart, AutoRestart::Never);
    assert_eq!(web("autorestart: unexpected").autorestart, AutoRestart::Unexpected);
    assert_eq!(web("autorestart: true").autorestart, AutoRestart::Always);
    assert_eq!(web("autorestart: false").autorestart, AutoRestart::Never);
    let (path, line, message) = web_error("autorestart: unexpcted");
    assert_eq!((path.as_str(), line), ("programs.web.autorestart", Some(4)));
    assert_eq!(message, "expected always, never or unexpected, found \"unexpcted\"; did you mean `unexpected`?");
}

#[test]
fn exitcodes_take_one_code_or_a_list() {
    assert_eq!(web("exitcodes: 2").exitcodes, [2]);
    assert_eq!(web("exitcodes: [2, 0, 255]").exitcodes, [0, 2, 255]);
    assert_eq!(web("exitcodes: []").exitcodes, Vec::<u8>::new());
    assert_eq!(web_error("exitcodes: 256").2, "exit code 256 is out of range (0 to 255)");
    let (path, line, message) = web_error("exitcodes:\n      -2");
    assert_eq!((path.as_str(), line), ("programs.web.exitcodes", Some(5)));
    assert_eq!(
        message,
        "exit code -2 is out of range (0 to 255); if you meant a YAML list, put a space after the dash (`- 2`)"
    );
    assert_eq!(web_error("exitcodes: zero").2, "expected an integer or a list of integers, found a string \"zero\"");
    let error = one_error(&with("exitcodes:\n      - 0\n      - x\n"));
    assert_eq!((error.path.as_str(), error.line), ("programs.web.exitcodes[1]", Some(6)));
}

#[test]
fn durations_in_seconds_or_with_units() {
    let cases = [
        ("5", secs(5)),
        ("0", Duration::ZERO),
        ("2.5", Duration::from_millis(2500)),
        ("\"5s\"", secs(5)),
        ("250ms", Duration::from_millis(250)),
        ("1.5s", Duration::from_millis(1500)),
        ("2m", secs(120)),
        ("1h", secs(3600)),
        ("\"10\"", secs(10)),
        ("0.1", Duration::from_millis(100)),
    ];
    for (text, expected) in cases {
        assert_eq!(web(&format!("stoptime: {text}")).stoptime, expected, "{text}");
    }
    assert_eq!(web("starttime: 3").starttime, secs(3));
    assert_eq!(web("restart_delay: 3").restart_delay, secs(3));
    assert_eq!(web("stability_window: 3").stability_window, secs(3));
    assert_eq!(web("monitor_interval: 3").monitor_interval, secs(3));
    assert_eq!(
        web_error("stoptime: 5x"),
        (
            "programs.web.stoptime".to_string(),
            Some(4),
            "invalid duration \"5x\" (expected e.g. \"5s\", \"250ms\")".to_string()
        )
    );
    assert_eq!(web_error("starttime: -1").2, "negative duration -1 (expected zero or more seconds)");
    assert_eq!(web_error("starttime: -1s").2, "negative duration \"-1s\" (expected zero or more seconds)");
    assert_eq!(web_error("monitor_interval: 0").2, "must be greater than zero");
    assert!(web_error("stoptime: [1]").2.starts_with("expected a duration"));
    assert!(web_error("stoptime: .inf").2.starts_with("invalid duration"));
}

#[test]
fn stopsignal_by_name_or_number() {
    assert_eq!(web("stopsignal: USR1").stopsignal, Signal(libc::SIGUSR1));
    assert_eq!(web("stopsignal: SIGHUP").stopsignal, Signal(libc::SIGHUP));
    assert_eq!(web("stopsignal: 9").stopsignal, Signal::KILL);
    let error = one_error(&with("stopsignal: TERMINATE"));
    assert_eq!((error.path.as_str(), error.line, error.column), ("programs.web.stopsignal", Some(4), Some(17)));
    assert!(error.message.starts_with("unknown signal \"TERMINATE\""), "{}", error.message);
    assert!(error.message.contains("USR1"));
    assert_eq!(web_error("stopsignal: 0").2, "signal number 0 is out of range (1 to 64)");
}

#[test]
fn output_sinks() {
    assert_eq!(web("stdout: /tmp/out.log").stdout, Sink::File(PathBuf::from("/tmp/out.log")));
    for discard in ["stdout:", "stdout: null", "stdout: ~", "stdout: 'null'", "stdout: discard", "stdout: /dev/null"] {
        assert_eq!(web(discard).stdout, Sink::Discard, "{discard}");
    }
    assert_eq!(web("stderr: relative.log").stderr, Sink::File(PathBuf::from("relative.log")));
    assert_eq!(web_error("stderr: ''").2, "a file path must not be empty");
    assert!(web_error("stderr: 5").2.starts_with("expected a file path, or null or `discard`"));
}

#[test]
fn env_values_become_strings_sorted_by_name() {
    let spec = web("env: {B: 2, A: x, C: false}");
    assert_eq!(spec.env, [("A".into(), "x".into()), ("B".into(), "2".into()), ("C".into(), "false".into())]);
    let found = errors(&with("env:\n      OK: 1\n      EMPTY:\n      LIST: [1]\n"));
    let found: Vec<(&str, Option<usize>, &str)> =
        found.iter().map(|error| (error.path.as_str(), error.line, error.message.as_str())).collect();
    assert_eq!(
        found,
        [
            ("programs.web.env.EMPTY", Some(6), "expected a string, number or boolean, found null"),
            ("programs.web.env.LIST", Some(7), "expected a string, number or boolean, found a list"),
        ]
    );
    assert!(web_error("env: [A=1]").2.starts_with("expected a mapping of variable names to values"));
    assert!(web_error("env: {'A=B': 1}").2.starts_with("invalid variable name \"A=B\""));
}

#[test]
fn umask_is_octal_whether_yaml_reads_a_string_or_an_integer() {
    // serde_yaml reads `022` as the string "022", `22` and `0o22` as integers.
    for (text, mask) in [
        ("022", 0o22),
        ("077", 0o77),
        ("22", 0o22),
        ("0", 0),
        ("777", 0o777),
        ("\"022\"", 0o22),
        ("'0o022'", 0o22),
        ("0o22", 0o22),
        ("\"77\"", 0o77),
        ("027  # group", 0o27),
    ] {
        assert_eq!(web(&format!("umask: {text}")).umask, Some(mask), "{text}");
    }
    // In flow style the written digits cannot be found; the integer's decimal digits are used.
    let config = load_ok("programs: {web: {cmd: x, umask: 22}}");
    assert_eq!(config.programs[0].umask, Some(0o22));
    let (path, line, message) = web_error("umask: 089");
    assert_eq!((path.as_str(), line), ("programs.web.umask", Some(4)));
    assert_eq!(message, "umask \"089\" is not octal (the digits 8 and 9 are not allowed)");
    assert_eq!(web_error("umask: 18").2, "umask \"18\" is not octal (the digits 8 and 9 are not allowed)");
    assert_eq!(web_error("umask: 1000").2, "umask \"1000\" is out of range (at most 777)");
    assert_eq!(web_error("umask: rwx").2, "invalid umask \"rwx\" (expected octal digits, e.g. 022)");
    assert!(web_error("umask: 0x12").2.contains("hexadecimal"));
    assert_eq!(web_error("umask: -2").2, "expected an octal umask such as 022, found an integer -2");
}

#[test]
fn tail_buffer_in_bytes_or_with_a_unit() {
    for (text, bytes) in
        [("4096", 4096), ("64k", 65536), ("64KiB", 65536), ("1M", 1 << 20), ("1MiB", 1 << 20), ("0", 0)]
    {
        assert_eq!(web(&format!("tail_buffer: {text}")).tail_buffer, bytes, "{text}");
    }
    assert_eq!(web_error("tail_buffer: 64x").2, "invalid size \"64x\" (expected bytes, or e.g. \"64k\", \"1MiB\")");
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let error = one_error("programm:\n  web:\n    cmd: x\n");
    assert_eq!((error.path.as_str(), error.line, error.column), ("programm", Some(1), Some(1)));
    assert_eq!(error.message, "unknown key `programm`; did you mean `programs`?");
    assert_eq!(web_error("stdout_logfile: /tmp/x").2, "unknown key `stdout_logfile`; did you mean `stdout`?");
    assert_eq!(web_error("stop_signal: TERM").2, "unknown key `stop_signal`; did you mean `stopsignal`?");
    assert_eq!(web_error("directory: /tmp").2, "unknown key `directory`; did you mean `workingdir`?");
    let (path, line, message) = web_error("colour: blue");
    assert_eq!((path.as_str(), line), ("programs.web.colour", Some(4)));
    assert!(message.starts_with("unknown key `colour` (expected one of: cmd, numprocs,"), "{message}");
}

#[test]
fn program_names_are_checked() {
    let error = one_error("programs:\n  web:1:\n    cmd: x\n");
    assert_eq!((error.path.as_str(), error.line), ("programs.web:1", Some(2)));
    assert!(error.message.contains("`:` is reserved for addressing one instance (as in `web:0`)"), "{}", error.message);
    assert!(one_error("programs:\n  'a b':\n    cmd: x\n").message.contains("use only letters, digits"));
    assert!(one_error("programs:\n  '':\n    cmd: x\n").message.contains("must not be empty"));
    assert!(one_error("programs:\n  '..':\n    cmd: x\n").message.contains("must not start with `-`"));
    assert_eq!(load_ok("programs:\n  42:\n    cmd: x\n").programs[0].name, "42");
    assert!(one_error("programs:\n  web: /bin/true\n").message.starts_with("expected a mapping of program settings"));
    assert!(one_error("programs: [web]\n").message.starts_with("expected a mapping of program names"));
}

#[test]
fn every_error_in_the_file_is_reported_in_file_order() {
    let text = "\
programs:
  web:
    cmd: ''
    numprocs: 0
    stopsignal: NOPE
  db:
    cmd: postgres
    umask: 999
    stoptime: soon
services:
  - name: web
    node: localhost
    pid_file: /tmp/web.pid
    command: web
    monitor_interval: 5
colour: red
";
    let found = errors(text);
    let summary: Vec<(&str, Option<usize>)> = found.iter().map(|error| (error.path.as_str(), error.line)).collect();
    assert_eq!(
        summary,
        [
            ("programs.web.cmd", Some(3)),
            ("programs.web.numprocs", Some(4)),
            ("programs.web.stopsignal", Some(5)),
            ("programs.db.umask", Some(8)),
            ("programs.db.stoptime", Some(9)),
            ("services[0].name", Some(11)),
            ("colour", Some(16)),
        ]
    );
    assert_eq!(found[5].message, "duplicate program name \"web\" (already defined by programs.web)");
    let shown = ConfigErrors { errors: found }.to_string();
    assert_eq!(shown.lines().count(), 7);
    assert!(shown.starts_with("test.yaml:3:10: programs.web.cmd: the command is empty\n"), "{shown}");
}

#[test]
fn messages_show_origin_position_and_path() {
    let mut error = ConfigError {
        origin: "sv.yaml".to_string(),
        line: Some(3),
        column: Some(7),
        path: "programs.web".to_string(),
        message: "broken".to_string(),
    };
    assert_eq!(error.to_string(), "sv.yaml:3:7: programs.web: broken");
    error.line = None;
    error.column = None;
    assert_eq!(error.to_string(), "sv.yaml: programs.web: broken");
    error.path.clear();
    assert_eq!(error.to_string(), "sv.yaml: broken");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let error = one_error("programs:\n  web:\n    cmd: [a, b\n");
    assert_eq!((error.line, error.path.as_str()), (Some(4), ""));
    assert!(error.message.starts_with("invalid yaml: "), "{}", error.message);
    assert!(!error.message.contains(" at line 4"), "{}", error.message);
    let error = one_error("programs:\n  web:\n    cmd: a\n    cmd: b\n");
    assert!(error.message.contains("duplicate entry"), "{}", error.message);
    assert!(one_error("- just\n- a list\n")
        .message
        .starts_with("expected a mapping of settings at the top level, found a list"));
}

#[test]
fn load_reads_the_file_and_names_it() {
    let directory = std::env::temp_dir().join(format!("sv-lite-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("sv.yaml");
    std::fs::write(&path, "programs:\n  web:\n    cmd: x\n    numprocs: 0\n").unwrap();
    let shown = load(&path).unwrap_err().to_string();
    assert_eq!(shown, format!("{}:4:15: programs.web.numprocs: must be at least 1, found 0", path.display()));
    std::fs::write(&path, "programs:\n  web:\n    cmd: x\n").unwrap();
    assert_eq!(load(&path).unwrap().programs.len(), 1);
    let missing = directory.join("missing.yaml");
    let shown = load(&missing).unwrap_err().to_string();
    assert!(shown.starts_with(&format!("{}: cannot read: ", missing.display())), "{shown}");
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn templates_are_checked_at_their_key() {
    let error = one_error("programs:\n  web:\n    cmd: run --name=%(nmae)s\n");
    assert_eq!((error.path.as_str(), error.line), ("programs.web.cmd", Some(3)));
    assert_eq!(error.message, "unknown template variable `%(nmae)s` (known: name, instance_number)");
    let error = one_error("programs:\n  web:\n    cmd: [run, '--pid=%(pid_file)s']\n");
    assert_eq!(error.path, "programs.web.cmd[1]");
    assert_eq!(error.message, "`%(pid_file)s` is used, but the program has no `pid_file`");
    let found = errors(&with("pid_file: /run/%(pid_file)s\n    stdout: /log/%(bad)s\n    env: {X: '%(name'}"));
    let paths: Vec<&str> = found.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(paths, ["programs.web.pid_file", "programs.web.stdout", "programs.web.env.X"]);
    assert!(found[0].message.contains("`%(pid_file)s` (known: name, instance_number)"));
    let error = one_error(&with("workingdir: /srv/%(name)x"));
    assert_eq!(error.path, "programs.web.workingdir");
}

#[test]
fn validated_templates_expand_at_launch() {
    let config = load_ok(
        "programs:\n  web:\n    cmd: serve --id=%(name)s-%(instance_number)d --pid=%(pid_file)s --rate=50%% +%s\n    pid_file: /run/%(name)s.%(instance_number)s.pid\n    numprocs: 3\n",
    );
    let launch = config.programs[0].launch(2, &[]);
    assert_eq!(launch.argv, ["serve", "--id=web-2", "--pid=/run/web.2.pid", "--rate=50%", "+%s"]);
    assert_eq!(launch.pid_file, Some(PathBuf::from("/run/web.2.pid")));
}

/// The example config of the taskmaster reference, exactly as written there: its exitcodes
/// list has no space after the dashes, so YAML reads the string "-0 -2".
const TASKMASTER: &str = include_str!("../../examples/taskmaster.yaml");

const TASKMASTER_WARNING: &str = "examples/taskmaster.yaml:10:11: programs.nginx.exitcodes: read \"-0 -2\" as \
                                  the list [0, 2]; YAML took those lines as one string; write it as exitcodes: [0, 2]";

/// The config and its warnings, or a panic listing the errors.
fn load_warned(text: &str, origin: &str) -> (Config, Vec<String>) {
    let mut config =
        from_yaml_str(text, origin).unwrap_or_else(|errors| panic!("unexpected errors:\n{errors}\nin:\n{text}"));
    let warnings = std::mem::take(&mut config.warnings);
    (config, warnings)
}

#[test]
fn taskmaster_example_loads_as_written_with_a_warning_for_its_exitcodes() {
    let (config, warnings) = load_warned(TASKMASTER, "examples/taskmaster.yaml");
    assert_eq!(warnings, [TASKMASTER_WARNING]);
    let [nginx, vogsphere] = config.programs.as_slice() else { panic!("{config:#?}") };
    assert_eq!(nginx.argv, ["/usr/local/bin/nginx", "-c", "/etc/nginx/test.conf"]);
    assert_eq!((nginx.numprocs, nginx.umask, nginx.exitcodes.as_slice()), (1, Some(0o22), &[0, 2][..]));
    assert_eq!(nginx.workingdir, Some(PathBuf::from("/tmp")));
    assert!(nginx.autostart);
    assert_eq!(nginx.autorestart, AutoRestart::Unexpected);
    assert_eq!((nginx.startretries, nginx.starttime, nginx.stoptime), (3, secs(5), secs(10)));
    assert_eq!(nginx.stopsignal, Signal::TERM);
    assert_eq!(nginx.stdout, Sink::File(PathBuf::from("/tmp/nginx.stdout")));
    assert_eq!(nginx.stderr, Sink::File(PathBuf::from("/tmp/nginx.stderr")));
    assert_eq!(nginx.env, [("ANSWER".into(), "42".into()), ("STARTED_BY".into(), "taskmaster".into())]);
    assert_eq!(vogsphere.argv, ["/usr/local/bin/vogsphere-worker", "--no-prefork"]);
    assert_eq!((vogsphere.numprocs, vogsphere.umask, vogsphere.exitcodes.as_slice()), (8, Some(0o77), &[0][..]));
    assert_eq!(vogsphere.stopsignal, Signal(libc::SIGUSR1));
}

#[test]
fn taskmaster_example_with_a_real_list_loads_the_same_without_warnings() {
    let fixed = TASKMASTER.replace("          -0\n          -2\n", "          - 0\n          - 2\n");
    assert_ne!(fixed, TASKMASTER);
    let (config, warnings) = load_warned(&fixed, "fixed.yaml");
    assert_eq!(warnings, Vec::<String>::new());
    let (as_written, _) = load_warned(TASKMASTER, "examples/taskmaster.yaml");
    assert_eq!(config, as_written);
}

#[test]
fn exitcodes_as_one_string_of_dashed_integers_are_read_as_a_list_with_a_warning() {
    let (config, warnings) = load_warned(&with("exitcodes:\n      -2\n      -0\n      -2\n      -255"), "test.yaml");
    assert_eq!(config.programs[0].exitcodes, [0, 2, 255]);
    assert_eq!(
        warnings,
        ["test.yaml:5:7: programs.web.exitcodes: read \"-2 -0 -2 -255\" as the list [2, 0, 2, 255]; \
          YAML took those lines as one string; write it as exitcodes: [2, 0, 2, 255]"]
    );
    // The same string on the key's line.
    let (config, warnings) = load_warned(&with("exitcodes: -0 -2"), "test.yaml");
    assert_eq!(config.programs[0].exitcodes, [0, 2]);
    assert_eq!(
        warnings,
        ["test.yaml:4:16: programs.web.exitcodes: read \"-0 -2\" as the list [0, 2]; \
          YAML took it as one string; write it as exitcodes: [0, 2]"]
    );
    // One warning per program, in file order; other settings warn about nothing.
    let text = "programs:\n  b:\n    cmd: /bin/true\n    exitcodes:\n      -1\n      -3\n  \
                a:\n    cmd: /bin/true\n    exitcodes: [1]\n  c:\n    cmd: /bin/true\n    exitcodes:\n      -4\n      -5\n";
    let (config, warnings) = load_warned(text, "test.yaml");
    let codes: Vec<&[u8]> = config.programs.iter().map(|program| program.exitcodes.as_slice()).collect();
    assert_eq!(codes, [&[1][..], &[1, 3], &[4, 5]]);
    let lines: Vec<&str> = warnings.iter().map(|warning| warning.split(": ").next().unwrap()).collect();
    assert_eq!(lines, ["test.yaml:5:7", "test.yaml:13:7"]);
}

#[test]
fn exitcodes_strings_of_anything_but_dashed_integers_stay_errors() {
    const EXPECTED: &str = "expected an integer or a list of integers, found a string";
    for (setting, found) in [
        ("exitcodes: \"abc\"", "\"abc\""),
        ("exitcodes:\n      -0\n      x", "\"-0 x\""),
        ("exitcodes:\n      -0\n      -x", "\"-0 -x\""),
        ("exitcodes: \"0 2\"", "\"0 2\""),
        ("exitcodes: \"-0 2\"", "\"-0 2\""),
        ("exitcodes: \"- 0\"", "\"- 0\""),
        ("exitcodes: \"--2\"", "\"--2\""),
        ("exitcodes: \"-+2\"", "\"-+2\""),
        ("exitcodes: \"-1.5\"", "\"-1.5\""),
        ("exitcodes: \"\"", "\"\""),
    ] {
        let (path, line, message) = web_error(setting);
        assert_eq!(path, "programs.web.exitcodes", "{setting}");
        assert!(line.is_some(), "{setting}");
        assert_eq!(message, format!("{EXPECTED} {found}"), "{setting}");
    }
    let (path, line, message) = web_error("exitcodes:\n      -0\n      -256");
    assert_eq!((path.as_str(), line), ("programs.web.exitcodes", Some(5)));
    assert_eq!(message, "exit code 256 is out of range (0 to 255)");
    assert_eq!(
        web_error("exitcodes: -0 -99999999999999999999").2,
        "exit code 99999999999999999999 is out of range (0 to 255)"
    );
    // A lone `-2` is the number -2: still an error, with the hint.
    assert!(web_error("exitcodes:\n      -2").2.contains("put a space after the dash (`- 2`)"));
    // Errors elsewhere are reported alone: the accepted dash list is no error.
    let error = one_error(&with("exitcodes:\n      -0\n      -2\n    numproc: 2"));
    assert_eq!(error.path, "programs.web.numproc");
}

/// Tron's services example, with local paths and the node pool it refers to.
const TRON: &str = r#"nodes:
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
        pid_file: "/tmp/x/%(name)s-%(instance_number)s.pid"
        command: "/usr/local/bin/start_email_worker --pid_file=%(pid_file)s"
"#;

#[test]
fn tron_example_loads() {
    let config = load_ok(TRON);
    let spec = &config.programs[0];
    assert_eq!((spec.name.as_str(), spec.numprocs), ("email_worker", 4));
    assert_eq!(
        (spec.monitor_interval, spec.restart_delay, spec.autorestart),
        (secs(60), secs(120), AutoRestart::Always)
    );
    assert!(spec.autostart);
    let launch = spec.launch(2, &[]);
    assert_eq!(launch.pid_file, Some(PathBuf::from("/tmp/x/email_worker-2.pid")));
    assert_eq!(launch.argv, ["/usr/local/bin/start_email_worker", "--pid_file=/tmp/x/email_worker-2.pid"]);
}

#[test]
fn tron_services_without_restart_delay_are_never_restarted() {
    let config = load_ok("services:\n- name: svc\n  node: localhost\n  pid_file: /tmp/svc.pid\n  command: [svc, --daemon]\n  monitor_interval: 2.5\n");
    let spec = &config.programs[0];
    let mut expected = ProgramSpec::with_defaults("svc");
    expected.argv = strings(&["svc", "--daemon"]);
    expected.pid_file = Some("/tmp/svc.pid".to_string());
    expected.monitor_interval = Duration::from_millis(2500);
    expected.autorestart = AutoRestart::Never;
    expected.readiness = Readiness::PidFile;
    assert_eq!(spec, &expected);
}

#[test]
fn tron_service_errors() {
    let remote = TRON
        .replace("hostname: localhost", "hostname: web1.example.com")
        .replace("service_pool\n        count", "local\n        count");
    let error = one_error(&remote);
    assert_eq!((error.path.as_str(), error.line), ("services[0].node", Some(9)));
    assert_eq!(
        error.message,
        "node \"local\" resolves to host \"web1.example.com\"; remote nodes are not supported yet (sv-lite runs services on this machine only)"
    );
    let error = one_error(&TRON.replace("hostname: localhost", "hostname: web1.example.com"));
    assert!(error
        .message
        .starts_with("node pool \"service_pool\" includes node \"local\" on host \"web1.example.com\""));
    let error = one_error(&TRON.replace("node: service_pool", "node: elsewhere"));
    assert!(error.message.starts_with("unknown node \"elsewhere\""), "{}", error.message);

    let found = errors("services:\n  - name: svc\n    command: svc\n    nod: localhost\n  - name: svc\n");
    let summary: Vec<(&str, Option<usize>, &str)> =
        found.iter().map(|error| (error.path.as_str(), error.line, error.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("services[0]", Some(2), "missing required key `node`"),
            ("services[0]", Some(2), "missing required key `pid_file`"),
            ("services[0]", Some(2), "missing required key `monitor_interval`"),
            ("services[0].nod", Some(4), "unknown key `nod`; did you mean `node`?"),
            ("services[1]", Some(5), "missing required key `node`"),
            ("services[1]", Some(5), "missing required key `pid_file`"),
            ("services[1]", Some(5), "missing required key `command`"),
            ("services[1]", Some(5), "missing required key `monitor_interval`"),
            ("services[1].name", Some(5), "duplicate program name \"svc\" (already defined by services[0].name)"),
        ]
    );
    let error = one_error(&TRON.replace("count: 4", "count: 0"));
    assert_eq!((error.path.as_str(), error.line), ("services[0].count", Some(10)));
    let error = one_error(&TRON.replace("nodes: [local]", "nodes: [local, ghost]"));
    assert_eq!((error.path.as_str(), error.line), ("node_pools[0].nodes[1]", Some(6)));
}

#[test]
fn locator_finds_keys_list_items_and_values() {
    let text = "\
# comment
services:
  - name: a
    command: one
  -   name: b

      command: two
  -
    name: c
    command: three   # trailing
programs:
  web: {cmd: x, numprocs: 0}
";
    let path = |text: &str| -> Vec<Segment> {
        text.split('.')
            .map(|part| match part.parse::<usize>() {
                Ok(index) => Segment::Index(index),
                Err(_) => Segment::Key(part.to_string()),
            })
            .collect()
    };
    assert_eq!(locate::locate(text, &path("services.2.command"), Target::Key), Some((10, 5)));
    assert_eq!(locate::locate(text, &path("services.2.command"), Target::Value), Some((10, 14)));
    assert_eq!(locate::locate(text, &path("services.1.command"), Target::Value), Some((7, 16)));
    assert_eq!(locate::locate(text, &path("services.1"), Target::Key), Some((5, 3)));
    assert_eq!(locate::locate(text, &path("services.0.name"), Target::Key), Some((3, 5)));
    assert_eq!(locate::locate(text, &path("services.3"), Target::Key), None);
    // Flow style: the enclosing value's line.
    assert_eq!(locate::locate(text, &path("programs.web.numprocs"), Target::Value), Some((12, 8)));
    assert_eq!(locate::locate(text, &path("nothing"), Target::Key), None);
    assert_eq!(locate::inline_value(text, &path("services.2.command")).as_deref(), Some("three"));
    let error = one_error("programs:\n  web: {cmd: x, numprocs: 0}\n");
    assert_eq!((error.line, error.path.as_str()), (Some(2), "programs.web.numprocs"));
}

#[test]
fn merge_keys_share_settings() {
    let config = load_ok("programs:\n  web: &base\n    cmd: x\n    stoptime: 3\n  api:\n    <<: *base\n    cmd: y\n");
    let [api, web] = config.programs.as_slice() else { panic!("{config:#?}") };
    assert_eq!((api.argv.as_slice(), api.stoptime), (&["y".to_string()][..], secs(3)));
    assert_eq!(web.stoptime, secs(3));
}

// Aurora-style services: ports, health checks, the HTTP lifecycle, port templates.

fn named(name: &str) -> PortRef {
    PortRef::Named(name.to_string())
}

fn port_list(spec: &ProgramSpec) -> Vec<(&str, PortSpec)> {
    spec.ports.iter().map(|(name, port)| (name.as_str(), port.clone())).collect()
}

#[test]
fn ports_as_a_list_are_each_allocated_in_config_order() {
    let spec = web("ports: [http, admin-ui, health_2]");
    assert_eq!(
        port_list(&spec),
        [("http", PortSpec::Allocate), ("admin-ui", PortSpec::Allocate), ("health_2", PortSpec::Allocate)]
    );
    let spec = web("ports:\n      - http\n      - '8080'");
    assert_eq!(port_list(&spec), [("http", PortSpec::Allocate), ("8080", PortSpec::Allocate)]);
    assert!(web("ports: []").ports.is_empty());
    assert!(web("ports:").ports.is_empty());
}

#[test]
fn ports_as_a_map_allocate_fix_and_alias() {
    let spec = web("ports: {http: 0, admin: 9000, aurora: http, 8443: 0}");
    assert_eq!(
        port_list(&spec),
        [
            ("http", PortSpec::Allocate),
            ("admin", PortSpec::Fixed(9000)),
            ("aurora", PortSpec::Alias("http".to_string())),
            ("8443", PortSpec::Allocate),
        ]
    );
    // An alias may name a fixed port, and resolves through the assigned numbers.
    let spec = web("ports:\n      admin: 9000\n      http: 0\n      web: admin\n      aurora: http");
    let resolved = spec.resolve_ports(&[("http".to_string(), 31000)]);
    let resolved: Vec<(&str, u16)> = resolved.iter().map(|(name, port)| (name.as_str(), *port)).collect();
    assert_eq!(resolved, [("admin", 9000), ("http", 31000), ("web", 9000), ("aurora", 31000)]);
    assert_eq!(web("ports: {max: 65535}").ports, [("max".to_string(), PortSpec::Fixed(65535))]);
}

#[test]
fn port_names_and_values_are_checked() {
    let (path, line, message) = web_error("ports: [http, 'a b']");
    assert_eq!((path.as_str(), line), ("programs.web.ports[1]", Some(4)));
    assert_eq!(message, "invalid port name \"a b\": use only letters, digits, `_` and `-`");
    assert_eq!(web_error("ports: [http.x]").2, "invalid port name \"http.x\": use only letters, digits, `_` and `-`");
    assert_eq!(web_error("ports: ['']").2, "port names must not be empty");
    let (path, _, message) = web_error("ports:\n      - http\n      - health\n      - http");
    assert_eq!(path, "programs.web.ports[2]");
    assert_eq!(message, "duplicate port `http`");
    assert_eq!(
        web_error("ports: [8080]").2,
        "expected a port name, found an integer 8080; for a fixed port, name it in a mapping: `ports: {http: 8080}`"
    );
    assert_eq!(web_error("ports: [{http: 0}]").2, "expected a port name, found a mapping");
    let (path, line, message) = web_error("ports:\n      'x/y': 0");
    assert_eq!((path.as_str(), line), ("programs.web.ports.x/y", Some(5)));
    assert!(message.starts_with("invalid port name \"x/y\""), "{message}");
    for (value, message) in [
        ("65536", "port 65536 is out of range (0 for any free port, or 1 to 65535)"),
        ("-1", "port -1 is out of range (0 for any free port, or 1 to 65535)"),
        ("80.5", "expected an integer, found a number 80.5"),
        ("true", "expected 0 (any free port), a port number or another port's name, found a boolean true"),
        ("", "expected 0 (any free port), a port number or another port's name, found null"),
    ] {
        let (path, line, found) = web_error(&format!("ports:\n      http: {value}"));
        assert_eq!((path.as_str(), line, found.as_str()), ("programs.web.ports.http", Some(5), message), "{value}");
    }
    assert!(web_error("ports: http").2.starts_with("expected a list of port names, or a mapping of port names"));
    // Two names, one environment variable.
    let (path, _, message) = web_error("ports: [admin-ui, admin_ui]");
    assert_eq!(path, "programs.web.ports[1]");
    assert_eq!(message, "ports `admin-ui` and `admin_ui` would both set PORT_ADMIN_UI; rename one");
    assert_eq!(web_error("ports: {http: 0, HTTP: 80}").0, "programs.web.ports.HTTP");
}

#[test]
fn aliases_must_name_a_port_of_the_map_that_is_no_alias() {
    let (path, line, message) = web_error("ports:\n      http: 0\n      aurora: htp");
    assert_eq!((path.as_str(), line), ("programs.web.ports.aurora", Some(6)));
    assert_eq!(message, "`aurora` names an unknown port `htp`; did you mean `http`? (declared ports: http, aurora)");
    assert_eq!(
        web_error("ports: {http: '8080'}").2,
        "`http` names an unknown port `8080`; for the fixed port 8080, write the number without quotes \
         (declared ports: http)"
    );
    let (path, _, message) = web_error("ports: {http: 0, web: http, aurora: web}");
    assert_eq!(path, "programs.web.ports.aurora");
    assert_eq!(
        message,
        "`aurora` names `web`, which is itself an alias (of `http`); name the port itself: `aurora: http`"
    );
    assert_eq!(web_error("ports: {a: a}").2, "`a` is an alias of itself; give it 0 (any free port) or a number");
    let found = errors(&with("ports:\n      a: b\n      b: c\n      c: a"));
    let summary: Vec<(&str, &str)> = found.iter().map(|error| (error.path.as_str(), error.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            (
                "programs.web.ports.a",
                "`a` names `b`, which is itself an alias (of `c`); the aliases `a` -> `b` -> `c` -> `a` form a cycle"
            ),
            (
                "programs.web.ports.b",
                "`b` names `c`, which is itself an alias (of `a`); the aliases `b` -> `c` -> `a` -> `b` form a cycle"
            ),
            (
                "programs.web.ports.c",
                "`c` names `a`, which is itself an alias (of `b`); the aliases `c` -> `a` -> `b` -> `c` form a cycle"
            ),
        ]
    );
    // An alias of a port that is itself invalid: only the invalid port is reported.
    assert_eq!(web_error("ports: {http: 70000, aurora: http}").0, "programs.web.ports.http");
}

#[test]
fn http_health_check_with_aurora_defaults() {
    let spec = web("ports: [http, health]\n    health_check:\n      http: {}");
    let check = spec.health_check.unwrap();
    let expected = HealthCheck::with_defaults(CheckKind::Http {
        port: named("health"),
        endpoint: "/health".to_string(),
        expected_response: String::new(),
        expected_response_code: 0,
    });
    assert_eq!(check, expected);
    assert_eq!(
        (
            check.initial_interval,
            check.interval,
            check.timeout,
            check.max_consecutive_failures,
            check.min_consecutive_successes
        ),
        (secs(15), secs(10), secs(1), 0, 1)
    );
    // `http:` alone reads the same.
    assert_eq!(web("ports: [health]\n    health_check:\n      http:").health_check.unwrap().kind, expected.kind);
}

#[test]
fn http_health_check_with_every_setting() {
    let spec = web("ports: {http: 0, health: 0}
    health_check:
      http:
        port: http
        endpoint: /ready?full=1
        expected_response: ok
        expected_response_code: 204
      initial_interval_secs: 2.5
      interval_secs: 250ms
      timeout_secs: \"2s\"
      max_consecutive_failures: 3
      min_consecutive_successes: 2");
    let check = spec.health_check.unwrap();
    assert_eq!(
        check,
        HealthCheck {
            kind: CheckKind::Http {
                port: named("http"),
                endpoint: "/ready?full=1".to_string(),
                expected_response: "ok".to_string(),
                expected_response_code: 204,
            },
            initial_interval: Duration::from_millis(2500),
            interval: Duration::from_millis(250),
            timeout: secs(2),
            max_consecutive_failures: 3,
            min_consecutive_successes: 2,
        }
    );
    let check = web("health_check:\n      http: {port: 8080}").health_check.unwrap();
    assert!(matches!(check.kind, CheckKind::Http { port: PortRef::Number(8080), .. }), "{check:?}");
    let check = web("health_check:\n      http: {port: 8080, expected_response: 42}").health_check.unwrap();
    assert!(matches!(check.kind, CheckKind::Http { ref expected_response, .. } if expected_response == "42"));
}

#[test]
fn shell_and_tcp_health_checks() {
    let spec = web("health_check:\n      shell: test -f /tmp/ready\n      interval_secs: 5");
    let check = spec.health_check.unwrap();
    assert_eq!(check.kind, CheckKind::Shell { command: "test -f /tmp/ready".to_string() });
    assert_eq!((check.interval, check.initial_interval), (secs(5), secs(15)));
    assert_eq!(
        web("ports: [http]\n    health_check: {tcp: http}").health_check.unwrap().kind,
        CheckKind::Tcp { port: named("http") }
    );
    assert_eq!(
        web("health_check: {tcp: 5432}").health_check.unwrap().kind,
        CheckKind::Tcp { port: PortRef::Number(5432) }
    );
    // A health check alone turns no lifecycle on.
    assert_eq!(web("health_check: {tcp: 5432}").lifecycle, None);
}

#[test]
fn a_health_check_has_exactly_one_kind() {
    let (path, line, message) = web_error("health_check:\n      interval_secs: 5");
    assert_eq!((path.as_str(), line), ("programs.web.health_check", Some(4)));
    assert_eq!(message, "missing the kind of check: set one of `http`, `shell` or `tcp`");
    let found = errors(&with("health_check:\n      tcp: 80\n      shell: 'true'\n      http: {port: 80}"));
    let summary: Vec<(&str, Option<usize>, &str)> =
        found.iter().map(|error| (error.path.as_str(), error.line, error.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("programs.web.health_check.shell", Some(6), "one kind of check per program, but `tcp` is set too"),
            ("programs.web.health_check.http", Some(7), "one kind of check per program, but `tcp` is set too"),
        ]
    );
    assert_eq!(
        web_error("health_check: http").2,
        "expected a mapping with one of `http`, `shell` or `tcp`, found a string \"http\""
    );
    assert_eq!(web_error("health_check: {shell: ''}").2, "a shell command must not be empty");
    assert_eq!(web_error("health_check: {tcp: 0}").2, "port 0 is out of range (1 to 65535)");
    assert_eq!(web_error("health_check: {tcp: [80]}").2, "expected a port name or number, found a list");
    assert_eq!(web_error("health_check: {http: [80]}").2, "expected a mapping of HTTP check settings, found a list");
}

#[test]
fn health_check_settings_are_checked() {
    for (setting, path, message) in [
        ("interval_secs: 0", "interval_secs", "must be greater than zero"),
        ("timeout_secs: 0ms", "timeout_secs", "must be greater than zero"),
        ("initial_interval_secs: -1", "initial_interval_secs", "negative duration -1 (expected zero or more seconds)"),
        ("min_consecutive_successes: 0", "min_consecutive_successes", "must be at least 1, found 0"),
        ("max_consecutive_failures: -1", "max_consecutive_failures", "must be zero or more, found -1"),
        (
            "http: {port: 80, expected_response_code: 99}",
            "http.expected_response_code",
            "expected 0 (any 2xx) or an HTTP status code from 100 to 599, found 99",
        ),
        (
            "http: {port: 80, endpoint: health}",
            "http.endpoint",
            "endpoint \"health\" must start with `/`, as in \"/health\"",
        ),
        (
            "http: {port: 80, endpoint: '/a b'}",
            "http.endpoint",
            "endpoint \"/a b\" must not contain spaces or control characters (write a space as %20)",
        ),
        (
            "http: {port: 80, expected_response: [ok]}",
            "http.expected_response",
            "expected the response text, found a list",
        ),
    ] {
        let text = with(
            &format!("health_check:\n      shell: 'true'\n      {setting}")
                .replace("shell: 'true'\n      http", "http"),
        );
        let error = one_error(&text);
        assert_eq!(error.path, format!("programs.web.health_check.{path}"), "{setting}");
        assert_eq!(error.message, message, "{setting}");
        assert!(error.line.is_some(), "{setting}");
    }
    // The initial interval may be zero: no grace period.
    assert_eq!(
        web("health_check: {shell: 'true', initial_interval_secs: 0}").health_check.unwrap().initial_interval,
        Duration::ZERO
    );
}

#[test]
fn unknown_keys_in_checks_and_lifecycles_get_a_suggestion() {
    for (setting, path, message) in [
        (
            "health_check: {shell: x, interval: 5}",
            "health_check.interval",
            "unknown key `interval`; did you mean `interval_secs`?",
        ),
        ("health_check: {command: x}", "health_check.command", "unknown key `command`; did you mean `shell`?"),
        (
            "health_check: {tcp: 80, timeout_sec: 5}",
            "health_check.timeout_sec",
            "unknown key `timeout_sec`; did you mean `timeout_secs`?",
        ),
        (
            "health_check: {http: {port: 80, path: /x}}",
            "health_check.http.path",
            "unknown key `path`; did you mean `endpoint`?",
        ),
        (
            "health_check: {http: {port: 80, expected_status: 200}}",
            "health_check.http.expected_status",
            "unknown key `expected_status`; did you mean `expected_response_code`?",
        ),
        ("lifecycle: {htp: {}}", "lifecycle.htp", "unknown key `htp`; did you mean `http`?"),
        (
            "lifecycle: {http: {port: 80, shutdown_wait: 3}}",
            "lifecycle.http.shutdown_wait",
            "unknown key `shutdown_wait`; did you mean `shutdown_wait_secs`?",
        ),
        ("portmap: {http: 0}", "portmap", "unknown key `portmap`; did you mean `ports`?"),
        ("healthcheck: {tcp: 80}", "healthcheck", "unknown key `healthcheck`; did you mean `health_check`?"),
    ] {
        let (found_path, line, found) = web_error(setting);
        assert_eq!((found_path, line), (format!("programs.web.{path}"), Some(4)), "{setting}");
        assert_eq!(found, message, "{setting}");
    }
    let (_, _, message) = web_error("health_check: {tcp: 80, colour: blue}");
    assert!(
        message.starts_with("unknown key `colour` (expected one of: http, shell, tcp, initial_interval_secs"),
        "{message}"
    );
}

#[test]
fn unknown_port_names_are_errors_that_list_the_declared_ports() {
    let text = with(
        "ports: [http, admin]
    health_check:
      http: {port: helth}
    lifecycle:
      http: {port: web}",
    );
    let found = errors(&text);
    let summary: Vec<(&str, Option<usize>, &str)> =
        found.iter().map(|error| (error.path.as_str(), error.line, error.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("programs.web.health_check.http.port", Some(6), "unknown port `helth` (declared ports: http, admin)"),
            ("programs.web.lifecycle.http.port", Some(8), "unknown port `web` (declared ports: http, admin)"),
        ]
    );
    assert_eq!(
        web_error("ports: [http, health]\n    health_check: {tcp: htp}").2,
        "unknown port `htp`; did you mean `http`? (declared ports: http, health)"
    );
    assert_eq!(
        web_error("health_check: {tcp: http}").2,
        "unknown port `http`: the program declares no ports (add `ports: [http]`, or give a number)"
    );
    // A port that is declared but invalid is reported once, where it is declared.
    let error = one_error(&with("ports: {health: 0.5}\n    health_check: {tcp: health}"));
    assert_eq!(error.path, "programs.web.ports.health");
}

#[test]
fn http_check_and_lifecycle_default_to_the_health_port_or_say_to_set_one() {
    let (path, line, message) = web_error("ports: [http]\n    health_check:\n      http: {endpoint: /ok}");
    assert_eq!((path.as_str(), line), ("programs.web.health_check.http", Some(6)));
    assert_eq!(
        message,
        "no `port` given, and the program has no port named `health` to use by default; \
         set `port` to one of its ports (http) or a number"
    );
    assert_eq!(
        web_error("lifecycle: {http: {}}").2,
        "no `port` given, and the program has no port named `health` to use by default; \
         set `port` to a number, or declare `ports: [health]`"
    );
}

#[test]
fn a_health_port_turns_the_default_lifecycle_on_and_none_turns_it_off() {
    let default = Some(HttpLifecycle::with_defaults(named("health")));
    assert_eq!(web("ports: [http, health]").lifecycle, default);
    assert_eq!(web("ports: {health: 8081}").lifecycle, default);
    assert_eq!(web("ports: [http, health]\n    lifecycle: none").lifecycle, None);
    assert_eq!(web("ports: [http]").lifecycle, None);
    assert_eq!(web("").lifecycle, None);
    assert_eq!(web("lifecycle: none").lifecycle, None);
    // The defaults are Aurora's.
    let lifecycle = web("ports: [health]").lifecycle.unwrap();
    assert_eq!(
        (lifecycle.graceful_shutdown_endpoint.as_str(), lifecycle.graceful_shutdown_wait),
        ("/quitquitquit", secs(5))
    );
    assert_eq!((lifecycle.shutdown_endpoint.as_str(), lifecycle.shutdown_wait), ("/abortabortabort", secs(5)));
}

#[test]
fn lifecycle_settings_override_the_defaults() {
    let spec = web("ports: [http, health]
    lifecycle:
      http:
        port: http
        graceful_shutdown_endpoint: /drain
        graceful_shutdown_wait_secs: 1.5
        shutdown_endpoint: /die
        shutdown_wait_secs: 0");
    assert_eq!(
        spec.lifecycle,
        Some(HttpLifecycle {
            port: named("http"),
            graceful_shutdown_endpoint: "/drain".to_string(),
            graceful_shutdown_wait: Duration::from_millis(1500),
            shutdown_endpoint: "/die".to_string(),
            shutdown_wait: Duration::ZERO,
        })
    );
    assert_eq!(
        web("ports: [health]\n    lifecycle: {http: }").lifecycle,
        Some(HttpLifecycle::with_defaults(named("health")))
    );
    assert_eq!(web("lifecycle: {http: {port: 9000}}").lifecycle.unwrap().port, PortRef::Number(9000));
    let (path, _, message) = web_error("lifecycle: off");
    assert_eq!(
        (path.as_str(), message.as_str()),
        ("programs.web.lifecycle", "expected `none` or a mapping with `http`, found a string \"off\"")
    );
    assert!(web_error("lifecycle: {}").2.starts_with("missing key `http`"));
    assert_eq!(
        web_error("lifecycle: {http: {port: 80, shutdown_endpoint: quit}}").0,
        "programs.web.lifecycle.http.shutdown_endpoint"
    );
    assert_eq!(
        web_error("lifecycle: {http: {port: 80, shutdown_wait_secs: soon}}").0,
        "programs.web.lifecycle.http.shutdown_wait_secs"
    );
}

#[test]
fn port_templates_are_checked_at_their_key() {
    let found = errors(&with(
        "ports: [http]
    stdout: /log/{{ports[htp]}}.out
    env: {LISTEN: ':{{thermos.ports[admin]}}'}
    health_check: {shell: 'curl -f localhost:{{ports[health]}}'}",
    ));
    let summary: Vec<(&str, &str)> = found.iter().map(|error| (error.path.as_str(), error.message.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("programs.web.stdout", "unknown port `htp` in `{{ports[htp]}}` (declared ports: http)"),
            ("programs.web.env.LISTEN", "unknown port `admin` in `{{thermos.ports[admin]}}` (declared ports: http)"),
            ("programs.web.health_check.shell", "unknown port `health` in `{{ports[health]}}` (declared ports: http)"),
        ]
    );
    let error = one_error("programs:\n  web:\n    cmd: ./run_nginx.sh -port {{thermos.ports[http]}}\n");
    assert_eq!((error.path.as_str(), error.line), ("programs.web.cmd", Some(3)));
    assert_eq!(
        error.message,
        "unknown port `http` in `{{thermos.ports[http]}}`: the program declares no ports (add `ports: [http]`)"
    );
    let error = one_error("programs:\n  web:\n    cmd: [run, '--id={{mesos.instance}}']\n");
    assert_eq!(error.path, "programs.web.cmd[1]");
    assert!(error.message.starts_with("unsupported template `{{mesos.instance}}`"), "{}", error.message);
    for setting in [
        "health_check: {http: {port: 80, endpoint: '/{{ports[x]}}'}}",
        "lifecycle: {http: {port: 80, shutdown_endpoint: '/{{ports[x]}}'}}",
        "pid_file: /run/{{ports[x]}}.pid",
        "workingdir: /srv/{{ports[x]}}",
    ] {
        assert!(web_error(setting).2.starts_with("unknown port `x`"), "{setting}");
    }
    // Tron services declare no ports.
    let error = one_error("services:\n- name: svc\n  node: localhost\n  pid_file: /tmp/svc.pid\n  command: svc -p {{ports[http]}}\n  monitor_interval: 2\n");
    assert_eq!(error.path, "services[0].command");
}

#[test]
fn port_templates_and_variables_expand_at_launch_with_the_given_numbers() {
    let config = load_ok(
        "programs:
  web:
    cmd: \"./run_nginx.sh -port {{thermos.ports[http]}} -admin {{ports[admin-ui]}} -name %(name)s-%(instance_number)s\"
    numprocs: 3
    ports: {http: 0, admin-ui: 9000, aurora: http, health: 0}
    env: {ADDR: '127.0.0.1:{{ports[aurora]}}'}
    stdout: /log/%(name)s.{{ports[http]}}.out
    health_check:
      shell: curl -f localhost:{{thermos.ports[health]}}/%(instance_number)s
",
    );
    let spec = &config.programs[0];
    let ports = spec.resolve_ports(&[("http".to_string(), 31000), ("health".to_string(), 31001)]);
    let launch = spec.launch(2, &ports);
    assert_eq!(launch.argv, ["./run_nginx.sh", "-port", "31000", "-admin", "9000", "-name", "web-2"]);
    assert_eq!(launch.stdout, Sink::File(PathBuf::from("/log/web.31000.out")));
    let env: Vec<(&str, &str)> = launch.env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    assert_eq!(
        env,
        [
            ("ADDR", "127.0.0.1:31000"),
            ("PORT_ADMIN_UI", "9000"),
            ("PORT_AURORA", "31000"),
            ("PORT_HEALTH", "31001"),
            ("PORT_HTTP", "31000"),
        ]
    );
    let Some(CheckKind::Shell { command }) = spec.health_check.as_ref().map(|check| &check.kind) else {
        panic!("{spec:#?}")
    };
    assert_eq!(spec.expand(command, 2, &ports), "curl -f localhost:31001/2");
    // Instances differ only in their numbers, so a reload that changes numprocs keeps them.
    let mut more = spec.clone();
    more.numprocs = 5;
    assert!(spec.same_except_numprocs(&more));
    more.ports.push(("extra".to_string(), PortSpec::Allocate));
    assert!(!spec.same_except_numprocs(&more));
}

#[test]
fn aurora_example_loads() {
    let config = load_ok(include_str!("../../examples/aurora.yaml"));
    let [hello, web] = config.programs.as_slice() else { panic!("{config:#?}") };
    assert_eq!(hello.argv, ["/bin/sh", "-c", "while true; do echo hello world; sleep 10; done"]);
    assert_eq!(hello.autorestart, AutoRestart::Always);
    assert!(hello.ports.is_empty() && hello.health_check.is_none() && hello.lifecycle.is_none());
    assert_eq!(port_list(web), [("http", PortSpec::Allocate), ("health", PortSpec::Allocate)]);
    let check = web.health_check.clone().unwrap();
    assert!(matches!(&check.kind, CheckKind::Http { port, expected_response, .. }
        if *port == named("health") && expected_response == "ok"));
    assert_eq!(web.lifecycle, Some(HttpLifecycle::with_defaults(named("health"))));
    let ports = web.resolve_ports(&[("http".to_string(), 42816), ("health".to_string(), 42817)]);
    assert_eq!(web.launch(0, &ports).argv, ["./run_nginx.sh", "-port", "42816", "-health-port", "42817"]);
}

// Issue 11: readiness protocols, dependencies and socket activation.

#[test]
fn readiness_defaults_to_the_pid_file_then_the_health_check_then_starttime() {
    let plain = web("");
    assert_eq!((plain.readiness, plain.ready_timeout, plain.watchdog), (Readiness::Starttime, secs(60), None));
    assert_eq!(web("pid_file: /run/web.pid").readiness, Readiness::PidFile);
    assert_eq!(web("health_check: {shell: 'true'}").readiness, Readiness::Health);
    let both = web("pid_file: /run/web.pid\n    health_check: {shell: 'true'}");
    assert_eq!(both.readiness, Readiness::PidFile);
}

#[test]
fn each_readiness_is_read_as_written() {
    let notify = web("readiness: notify\n    ready_timeout: 90\n    watchdog: 30s");
    assert_eq!(
        (notify.readiness, notify.ready_timeout, notify.watchdog),
        (Readiness::Notify, secs(90), Some(secs(30)))
    );
    assert_eq!(web("readiness: starttime").readiness, Readiness::Starttime);
    assert_eq!(web("readiness: fd:3").readiness, Readiness::Fd(3));
    assert_eq!(web("readiness: 'fd: 1023'").readiness, Readiness::Fd(1023));
    let health = web("readiness: health\n    health_check: {shell: 'true'}");
    assert_eq!(health.readiness, Readiness::Health);
    let pid_file = web("readiness: pid_file\n    pid_file: /run/web.pid");
    assert_eq!(pid_file.readiness, Readiness::PidFile);
    // A program with a health check may still say it is ready by itself.
    let notified = web("readiness: notify\n    health_check: {shell: 'true'}");
    assert_eq!(notified.readiness, Readiness::Notify);
    assert_eq!(web("ready_timeout: 250ms").ready_timeout, Duration::from_millis(250));
}

#[test]
fn readiness_errors_say_why() {
    let at = |path: &str| (format!("programs.web.{path}"), Some(4));
    let cases = [
        (
            "readiness: fd:2",
            at("readiness"),
            "fd 2 is the program's stderr; the notification fd must be one of 3 to 1023, as in fd:3",
        ),
        (
            "readiness: fd:0",
            at("readiness"),
            "fd 0 is the program's stdin; the notification fd must be one of 3 to 1023, as in fd:3",
        ),
        ("readiness: fd:1024", at("readiness"), "fd 1024 is out of range (3 to 1023)"),
        ("readiness: fd:x", at("readiness"), "invalid fd in \"fd:x\" (expected fd:N, with N from 3 to 1023)"),
        ("readiness: fd", at("readiness"), "`fd` needs the fd the program writes its newline to, as in fd:3"),
        (
            "readiness: notfy",
            at("readiness"),
            "expected starttime, notify, fd:N, health or pid_file, found \"notfy\"; did you mean `notify`?",
        ),
        (
            "readiness: pidfile",
            at("readiness"),
            "expected starttime, notify, fd:N, health or pid_file, found \"pidfile\"; did you mean `pid_file`?",
        ),
        ("readiness: 3", at("readiness"), "expected starttime, notify, fd:N, health or pid_file, found an integer 3"),
        (
            "readiness: health",
            at("readiness"),
            "`readiness: health` needs a `health_check` (the instance is ready once it passes)",
        ),
        (
            "readiness: pid_file",
            at("readiness"),
            "`readiness: pid_file` needs a `pid_file` (where the daemon writes its pid)",
        ),
        (
            "watchdog: 30s",
            at("watchdog"),
            "`watchdog` needs `readiness: notify` (the program sends WATCHDOG=1 with sd_notify), but readiness is \
             `starttime`",
        ),
        ("ready_timeout: 0", at("ready_timeout"), "must be greater than zero"),
        ("ready_timeout: soon", at("ready_timeout"), "invalid duration \"soon\" (expected e.g. \"5s\", \"250ms\")"),
    ];
    for (setting, (path, line), message) in cases {
        assert_eq!(web_error(setting), (path, line, message.to_string()), "{setting}");
    }
    let error = one_error(&with("readiness: notify\n    pid_file: /run/web.pid"));
    assert_eq!((error.path.as_str(), error.line), ("programs.web.readiness", Some(4)));
    assert_eq!(
        error.message,
        "readiness `notify` cannot be used with `pid_file`: the command starts a daemon that writes its pid there, \
         and the instance is ready once that daemon lives; remove `readiness`, or `pid_file` if the program stays \
         in the foreground"
    );
    let error = one_error(&with("readiness: health\n    pid_file: /run/web.pid\n    health_check: {shell: 'true'}"));
    assert!(error.message.starts_with("readiness `health` cannot be used with `pid_file`"), "{}", error.message);
    // The watchdog is for notify only, whatever the readiness.
    let error = one_error(&with("readiness: fd:3\n    watchdog: 10"));
    assert_eq!((error.path.as_str(), error.line), ("programs.web.watchdog", Some(5)));
    assert!(error.message.ends_with("but readiness is `fd:3`"), "{}", error.message);
    let error = one_error(&with("readiness: notify\n    watchdog: 0"));
    assert_eq!((error.path.as_str(), error.message.as_str()), ("programs.web.watchdog", "must be greater than zero"));
    // A bad readiness is reported once, not again by the watchdog.
    let error = one_error(&with("readiness: notfy\n    watchdog: 10"));
    assert_eq!(error.path, "programs.web.readiness");
}

#[test]
fn other_tools_names_for_readiness_order_and_sockets_get_a_suggestion() {
    for (setting, message) in [
        ("type: notify", "unknown key `type`; did you mean `readiness`?"),
        ("WatchdogSec: 30", "unknown key `WatchdogSec`; did you mean `watchdog`?"),
        ("requires: {db: ready}", "unknown key `requires`; did you mean `depends_on`?"),
        ("depends: {db: ready}", "unknown key `depends`; did you mean `depends_on`?"),
        ("ListenStream: {http: '0.0.0.0:80'}", "unknown key `ListenStream`; did you mean `sockets`?"),
        ("readyness: notify", "unknown key `readyness`; did you mean `readiness`?"),
    ] {
        assert_eq!(web_error(setting).2, message, "{setting}");
    }
    let (_, _, message) = web_error("readiness: sd_notify");
    assert!(message.ends_with("found \"sd_notify\"; did you mean `notify`?"), "{message}");
    let error = one_error("programs:\n  web: {cmd: web, depends_on: {db: service_healthy}}\n  db: {cmd: db}\n");
    assert!(error.message.ends_with("; did you mean `healthy`?"), "{}", error.message);
}

#[test]
fn the_notification_fd_must_not_be_a_sockets_fd() {
    let sockets = "sockets: {http: '0.0.0.0:8080', admin: 'unix:/run/web.sock'}";
    let error = one_error(&with(&format!("{sockets}\n    readiness: fd:4")));
    assert_eq!((error.path.as_str(), error.line), ("programs.web.readiness", Some(5)));
    assert_eq!(
        error.message,
        "fd 4 is socket `admin`'s (sockets take fds 3 to 4, in config order); use fd:5 or higher"
    );
    assert!(one_error(&with(&format!("{sockets}\n    readiness: fd:3")))
        .message
        .starts_with("fd 3 is socket `http`'s"));
    assert_eq!(web(&format!("{sockets}\n    readiness: fd:5")).readiness, Readiness::Fd(5));
}

fn dependency(program: &str, condition: Condition, restart: bool) -> Dependency {
    Dependency { program: program.to_string(), condition, restart }
}

#[test]
fn depends_on_takes_conditions_or_settings_in_config_order() {
    let config = load_ok(
        "programs:
  web:
    cmd: ./web
    depends_on:
      db: ready
      migrate: completed
      cache: {condition: started, restart: true}
      queue: {restart: true}
      search: {}
      logs: HEALTHY
  db: {cmd: db}
  migrate: {cmd: migrate}
  cache: {cmd: cache}
  queue: {cmd: queue}
  search: {cmd: search}
  logs: {cmd: logs}
",
    );
    let web = config.programs.iter().find(|spec| spec.name == "web").unwrap();
    assert_eq!(
        web.depends_on,
        [
            dependency("db", Condition::Ready, false),
            dependency("migrate", Condition::Completed, false),
            dependency("cache", Condition::Started, true),
            dependency("queue", Condition::Ready, true),
            dependency("search", Condition::Ready, false),
            // `healthy` on a program without a health check: accepted, and as good as ready.
            dependency("logs", Condition::Healthy, false),
        ]
    );
    assert!(config.programs.iter().filter(|spec| spec.name != "web").all(|spec| spec.depends_on.is_empty()));
    // Tron services can be depended on, by name.
    let config = load_ok(
        "programs:\n  web: {cmd: web, depends_on: {svc: started}}\nservices:\n- name: svc\n  node: localhost\n  pid_file: /tmp/svc.pid\n  command: svc\n  monitor_interval: 2\n",
    );
    assert_eq!(config.programs[1].depends_on, [dependency("svc", Condition::Started, false)]);
    assert!(load_ok("programs:\n  web: {cmd: web, depends_on: }\n").programs[0].depends_on.is_empty());
}

/// `text`'s errors as (path, line, message).
fn summary(text: &str) -> Vec<(String, Option<usize>, String)> {
    errors(text).into_iter().map(|error| (error.path, error.line, error.message)).collect()
}

fn triple(path: &str, line: usize, message: &str) -> (String, Option<usize>, String) {
    (path.to_string(), Some(line), message.to_string())
}

#[test]
fn depends_on_names_conditions_and_settings_are_checked() {
    let found = summary(
        "programs:
  web:
    cmd: ./web
    depends_on:
      dbb: ready
      nothing_like_it: ready
      web: started
      db: finished
      cache: {condition: redy, restrt: true}
      queue: {restart: yes please}
  db: {cmd: db}
  cache: {cmd: cache}
  queue: {cmd: queue}
",
    );
    assert_eq!(
        found,
        [
            triple("programs.web.depends_on.dbb", 5, "unknown program `dbb`; did you mean `db`?"),
            triple(
                "programs.web.depends_on.nothing_like_it",
                6,
                "unknown program `nothing_like_it` (no program or service has that name)"
            ),
            triple("programs.web.depends_on.web", 7, "a program cannot depend on itself"),
            triple(
                "programs.web.depends_on.db",
                8,
                "expected started, ready, healthy or completed, found \"finished\""
            ),
            // Flow style: both at the enclosing value.
            triple("programs.web.depends_on.cache.restrt", 9, "unknown key `restrt`; did you mean `restart`?"),
            triple(
                "programs.web.depends_on.cache.condition",
                9,
                "expected started, ready, healthy or completed, found \"redy\"; did you mean `ready`?"
            ),
            triple(
                "programs.web.depends_on.queue.restart",
                10,
                "expected true or false, found a string \"yes please\""
            ),
        ]
    );
    let (path, line, message) = web_error("depends_on: [db]");
    assert_eq!((path.as_str(), line), ("programs.web.depends_on", Some(4)));
    assert_eq!(
        message,
        "expected a mapping of program names to conditions, found a list; write each as `NAME: ready` (or started, \
         healthy, completed)"
    );
    let error = one_error("programs:\n  web: {cmd: web, depends_on: {db: 3}}\n  db: {cmd: db}\n");
    assert_eq!(
        error.message,
        "expected started, ready, healthy or completed, or a mapping with `condition` and `restart`, found an integer 3"
    );
    // A program with errors still counts as defined, so depending on it is no second error.
    let error = one_error("programs:\n  web: {cmd: web, depends_on: {db: ready}}\n  db: {cmd: db, numprocs: 0}\n");
    assert_eq!(error.path, "programs.db.numprocs");
}

#[test]
fn dependency_cycles_are_errors_that_name_the_cycle_in_order() {
    let found =
        summary("programs:\n  web: {cmd: web, depends_on: {db: ready}}\n  db: {cmd: db, depends_on: {web: started}}\n");
    assert_eq!(found, [triple("programs.web.depends_on", 2, "dependency cycle: web -> db -> web")]);

    // Found from `x`, reported once, starting at the member first in the file.
    let found = summary(
        "programs:
  x:
    cmd: x
    depends_on: {b: ready}
  a:
    cmd: a
    depends_on: {b: ready}
  b:
    cmd: b
    depends_on: {c: ready}
  c:
    cmd: c
    depends_on:
      a: completed
",
    );
    assert_eq!(found, [triple("programs.a.depends_on", 7, "dependency cycle: a -> b -> c -> a")]);

    // Two cycles through one program: each reported once. A diamond is no cycle.
    let found = summary(
        "programs:
  a: {cmd: a, depends_on: {b: ready, c: ready}}
  b: {cmd: b, depends_on: {a: ready}}
  c: {cmd: c, depends_on: {a: ready, d: ready}}
  d: {cmd: d}
  e: {cmd: e, depends_on: {f: ready, g: ready}}
  f: {cmd: f, depends_on: {h: ready}}
  g: {cmd: g, depends_on: {h: ready}}
  h: {cmd: h}
",
    );
    assert_eq!(
        found,
        [
            triple("programs.a.depends_on", 2, "dependency cycle: a -> b -> a"),
            triple("programs.a.depends_on", 2, "dependency cycle: a -> c -> a"),
        ]
    );
    assert_eq!(
        errors("programs:\n  a: {cmd: a, depends_on: {b: ready}}\n  b: {cmd: b, depends_on: {a: ready}}\n")[0]
            .to_string(),
        // In flow style, the position is the program's value.
        "test.yaml:2:6: programs.a.depends_on: dependency cycle: a -> b -> a"
    );
}

fn tcp(address: &str) -> SocketSpec {
    SocketSpec::Tcp(address.parse().unwrap())
}

#[test]
fn sockets_are_tcp_addresses_or_unix_paths_in_config_order() {
    let spec = web("numprocs: 4
    sockets:
      http: \"0.0.0.0:8080\"
      v6: \"[::]:8443\"
      control: unix:/run/web.sock
      any: 127.0.0.1:0");
    let sockets: Vec<(&str, SocketSpec)> =
        spec.sockets.iter().map(|(name, socket)| (name.as_str(), socket.clone())).collect();
    assert_eq!(
        sockets,
        [
            ("http", tcp("0.0.0.0:8080")),
            ("v6", tcp("[::]:8443")),
            ("control", SocketSpec::Unix(PathBuf::from("/run/web.sock"))),
            ("any", tcp("127.0.0.1:0")),
        ]
    );
    // All four instances share the listeners.
    assert_eq!(spec.numprocs, 4);
    assert!(web("sockets:").sockets.is_empty());
}

#[test]
fn bad_socket_addresses_and_names_are_errors() {
    let at = |name: &str| format!("programs.web.sockets.{name}");
    let cases = [
        (
            "{http: localhost:8080}",
            "http",
            "invalid socket address \"localhost:8080\": expected an IP address and port, or unix:/path (such as \
             \"0.0.0.0:8080\", \"[::]:8080\" or \"unix:/run/web.sock\"; host names are not looked up)",
        ),
        ("{http: 8080}", "http", "expected an IP address and port, or unix:/path, found an integer 8080; for port 8080 on every interface, write \"0.0.0.0:8080\" (or \"[::]:8080\" for IPv6 too)"),
        (
            "{http: 0.0.0.0}",
            "http",
            "invalid socket address \"0.0.0.0\": expected an IP address and port, or unix:/path; add the port, as in \"0.0.0.0:8080\"",
        ),
        (
            "{http: '::1'}",
            "http",
            "invalid socket address \"::1\": expected an IP address and port, or unix:/path; add the port, with the \
             address in brackets, as in \"[::1]:8080\"",
        ),
        (
            "{http: ':8080'}",
            "http",
            "invalid socket address \":8080\": expected an IP address and port, or unix:/path; add the address, as \
             in \"0.0.0.0:8080\" (every interface)",
        ),
        ("{http: '0.0.0.0:70000'}", "http", "invalid socket address \"0.0.0.0:70000\": expected an IP address and port, or unix:/path (such as \"0.0.0.0:8080\", \"[::]:8080\" or \"unix:/run/web.sock\"; host names are not looked up)"),
        ("{ctl: 'unix:run/web.sock'}", "ctl", "unix socket path \"run/web.sock\" must be absolute, as in unix:/run/web.sock"),
        ("{ctl: [a]}", "ctl", "expected an IP address and port, or unix:/path, found a list"),
        ("{web.http: '0.0.0.0:80'}", "web.http", "invalid socket name \"web.http\": use only letters, digits, `_` and `-`"),
        ("{a: '0.0.0.0:80', b: '0.0.0.0:80'}", "b", "socket `b` has the same address as `a`"),
    ];
    for (sockets, name, message) in cases {
        let error = one_error(&with(&format!("sockets: {sockets}")));
        assert_eq!((error.path, error.message), (at(name), message.to_string()), "{sockets}");
    }
    let long = format!("unix:/{}", "x".repeat(107));
    let (_, _, message) = web_error(&format!("sockets: {{ctl: '{long}'}}"));
    assert_eq!(message, "unix socket path is 108 bytes long; the limit is 107");
    let (path, _, message) = web_error("sockets: [http]");
    assert_eq!(path, "programs.web.sockets");
    assert!(message.starts_with("expected a mapping of socket names to addresses"), "{message}");
    // Port 0 may repeat: each is its own free port.
    assert_eq!(web("sockets: {a: '127.0.0.1:0', b: '127.0.0.1:0'}").sockets.len(), 2);
}

#[test]
fn socket_names_must_not_clash_with_port_names() {
    let found = summary(&with(
        "ports: [http, admin-ui]
    sockets:
      http: 0.0.0.0:8080
      admin_ui: 0.0.0.0:9000
      ctl_a: unix:/run/a.sock
      ctl-a: unix:/run/b.sock
      metrics-x: 0.0.0.0:9100
      metrics_x: 0.0.0.0:9101",
    ));
    assert_eq!(
        found,
        [
            triple(
                "programs.web.sockets.http",
                6,
                "socket `http` has the name of a port in `ports`; rename one (a TCP socket is a port name itself: \
                 {{ports[http]}} gives its port)"
            ),
            triple(
                "programs.web.sockets.admin_ui",
                7,
                "port `admin-ui` and socket `admin_ui` would both set PORT_ADMIN_UI; rename one"
            ),
            triple(
                "programs.web.sockets.metrics_x",
                11,
                "sockets `metrics-x` and `metrics_x` would both set PORT_METRICS_X; rename one"
            ),
        ]
    );
}

#[test]
fn tcp_sockets_are_port_names_in_templates_and_unix_sockets_are_not() {
    let spec = web("sockets: {http: '0.0.0.0:0', admin: '127.0.0.1:9000'}
    env: {URL: 'http://127.0.0.1:{{ports[http]}}/', ADMIN: '{{thermos.ports[admin]}}'}");
    assert_eq!(spec.sockets.len(), 2);
    let error = one_error(&with("sockets: {ctl: 'unix:/run/web.sock'}\n    env: {X: '{{ports[ctl]}}'}"));
    assert_eq!(error.path, "programs.web.env.X");
    assert_eq!(
        error.message,
        "unknown port `ctl` in `{{ports[ctl]}}`: the program declares no ports (add `ports: [ctl]`)"
    );
    // A socket with a bad address still counts as declared: one error, at the socket.
    let error = one_error(&with("sockets: {http: 'localhost:80'}\n    env: {X: '{{ports[http]}}'}"));
    assert_eq!(error.path, "programs.web.sockets.http");
}

#[test]
fn sockets_expand_and_set_port_variables_at_launch_with_the_given_numbers() {
    let config = load_ok(
        "programs:
  web:
    cmd: ./web --listen-fd 3 --public-port {{ports[http]}} --admin {{thermos.ports[admin]}} --metrics {{ports[metrics]}}
    ports: [metrics]
    sockets:
      http: 0.0.0.0:0
      admin: 127.0.0.1:9000
      ctl: unix:/run/web.sock
",
    );
    let spec = &config.programs[0];
    // The daemon passes the number it bound for `http` under the socket's name.
    let ports = spec.resolve_ports(&[("metrics".to_string(), 31000), ("http".to_string(), 31001)]);
    let launch = spec.launch(0, &ports);
    assert_eq!(
        launch.argv,
        ["./web", "--listen-fd", "3", "--public-port", "31001", "--admin", "9000", "--metrics", "31000"]
    );
    let env: Vec<(&str, &str)> = launch.env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    assert_eq!(env, [("PORT_ADMIN", "9000"), ("PORT_HTTP", "31001"), ("PORT_METRICS", "31000")]);
}

#[test]
fn readiness_example_loads() {
    let config = load_ok(include_str!("../../examples/readiness.yaml"));
    let [cache, db, indexer, migrate, web] = config.programs.as_slice() else { panic!("{config:#?}") };
    assert_eq!((cache.readiness, cache.ready_timeout, cache.watchdog), (Readiness::Notify, secs(60), None));
    assert_eq!(indexer.readiness, Readiness::Fd(3));
    assert_eq!(db.readiness, Readiness::Health);
    assert_eq!(migrate.depends_on, [dependency("db", Condition::Ready, false)]);
    assert_eq!(
        web.depends_on,
        [dependency("migrate", Condition::Completed, false), dependency("db", Condition::Ready, true)]
    );
    assert_eq!(web.sockets, [("http".to_string(), tcp("0.0.0.0:8080"))]);
    let ports = web.resolve_ports(&[]);
    assert!(web.launch(1, &ports).env.contains(&("PUBLIC_URL".to_string(), "http://localhost:8080/".to_string())));
}

// The keys of issue 12, service files and their merge.
mod includes;
mod notify;
mod scheduled;
mod service_files;

#[test]
fn http_is_an_ip_address_and_port_or_a_unix_path() {
    assert_eq!(load_ok("").http, None);
    let http = load_ok("http: 127.0.0.1:9110\n").http;
    assert_eq!(http, Some(Box::new(spec::HttpListen::Tcp("127.0.0.1:9110".parse().unwrap()))));
    let http = load_ok("http: \"[::1]:0\"\n").http;
    assert_eq!(http, Some(Box::new(spec::HttpListen::Tcp("[::1]:0".parse().unwrap()))));
    let http = load_ok("http: \"unix:/run/sv-lite.http\"\n").http;
    assert_eq!(http, Some(Box::new(spec::HttpListen::Unix(PathBuf::from("/run/sv-lite.http")))));
}

#[test]
fn bad_http_addresses_are_errors_at_their_value() {
    let cases = [
        (
            "http: localhost:9110\n",
            "\"localhost\" is a host name, and sv-lite does not resolve names (its loop never waits on DNS): \
             give an IP address, such as 127.0.0.1:9110",
        ),
        ("http: 127.0.0.1:70000\n", "invalid port \"70000\" (expected 0 to 65535)"),
        ("http: \"unix:run/x\"\n", "unix socket path \"run/x\" must be absolute, as in unix:/run/web.sock"),
        (
            "http: 9110\n",
            "expected an IP address and port, or unix:/path, found an integer 9110; for port 9110 on every \
             interface, write \"0.0.0.0:9110\" (or \"[::]:9110\" for IPv6 too)",
        ),
    ];
    for (text, message) in cases {
        let error = one_error(&format!("# sv-lite\n{text}"));
        assert_eq!((error.path.as_str(), error.line, error.message.as_str()), ("http", Some(2), message), "{text}");
        assert_eq!(error.column, Some(7), "{text}");
    }
}
