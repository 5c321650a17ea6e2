//! Every per-program option reaches the real child: umask, env, workingdir, numprocs,
//! autostart, and where stdout/stderr go (files, discard, forwarded with or without prefix).

mod common;

use common::{Daemon, TestDir};

#[test]
fn umask_env_and_workingdir_reach_the_child() {
    let dir = TestDir::new();
    std::fs::create_dir(dir.join("work")).expect("create workingdir");
    let d = Daemon::start_in(
        dir,
        r#"
programs:
  umask_bare:
    cmd: ["/bin/sh", "-c", "grep Umask /proc/self/status > {dir}/umask_bare; exec sleep 1000"]
    umask: 077
  umask_quoted:
    cmd: ["/bin/sh", "-c", "grep Umask /proc/self/status > {dir}/umask_quoted; exec sleep 1000"]
    umask: "027"
  umask_digits:
    cmd: ["/bin/sh", "-c", "grep Umask /proc/self/status > {dir}/umask_digits; exec sleep 1000"]
    umask: 22
  env:
    cmd: ["/bin/sh", "-c", "env > {dir}/env.out; exec sleep 1000"]
    env:
      GREETING: hello world
      ANSWER: 42
      RATIO: 1.5
      ENABLED: true
      DISABLED: false
      QUOTED: "007"
  wd:
    cmd: ["/bin/sh", "-c", "pwd > {dir}/wd.out; exec sleep 1000"]
    workingdir: {dir}/work
  wd_default:
    cmd: ["/bin/sh", "-c", "pwd > {dir}/wd_default.out; exec sleep 1000"]
"#,
    );
    d.wait_all_running(&["umask_bare:0", "umask_quoted:0", "umask_digits:0", "env:0", "wd:0", "wd_default:0"]);

    // A bare 077 is octal 077, and so is the string "027" (027) and the digits 22 (022).
    let umask = |name: &str| d.wait_file(name, "\n").trim().to_string();
    assert_eq!(umask("umask_bare"), "Umask:\t0077");
    assert_eq!(umask("umask_quoted"), "Umask:\t0027");
    assert_eq!(umask("umask_digits"), "Umask:\t0022");

    // Env values are added to the inherited environment; numbers and booleans become strings.
    let env = d.wait_file("env.out", "GREETING=");
    let vars: Vec<&str> = env.lines().collect();
    for expected in ["GREETING=hello world", "ANSWER=42", "RATIO=1.5", "ENABLED=true", "DISABLED=false", "QUOTED=007"] {
        assert!(vars.contains(&expected), "child env lacks {expected:?}:\n{env}");
    }
    let inherited = format!("{}={}", common::TAG_VAR, d.dir.tag);
    assert!(vars.contains(&inherited.as_str()), "child env lacks the inherited {inherited:?}:\n{env}");
    assert!(vars.iter().any(|var| var.starts_with("PATH=")), "child env lacks the inherited PATH:\n{env}");

    // workingdir, and the daemon's own cwd when absent.
    assert_eq!(d.wait_file("wd.out", "\n").trim(), d.path("work").display().to_string());
    assert_eq!(d.wait_file("wd_default.out", "\n").trim(), d.dir.path.display().to_string());
}

#[test]
fn numprocs_names_instances_and_autostart_false_waits_for_ctl_start() {
    let d = Daemon::start(
        r#"
programs:
  many:
    cmd: "sleep 1000"
    numprocs: 3
    starttime: 0.2
  lazy:
    cmd: ["/bin/sh", "-c", "echo started >> {dir}/lazy.runs; exec sleep 1000"]
    autostart: false
    starttime: 0.2
"#,
    );
    let pids = d.wait_all_running(&["many:0", "many:1", "many:2"]);
    assert_eq!(d.names(), ["lazy:0", "many:0", "many:1", "many:2"]);
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "each instance is its own process: {pids:?}");
    for pid in &pids {
        assert!(common::alive(*pid), "pid {pid} of a RUNNING instance is not alive");
    }

    // The human table lists the same rows.
    let table = d.ctl_ok(&["status"]).stdout;
    assert!(table.starts_with("NAME"), "status table has a header:\n{table}");
    for name in ["many:0", "many:1", "many:2"] {
        assert!(table.lines().any(|line| line.starts_with(name) && line.contains("RUNNING")), "{name} in:\n{table}");
    }

    // autostart: false stays STOPPED, never spawned, until `ctl start`.
    assert_eq!(d.state_of("lazy:0"), "STOPPED");
    assert!(!d.path("lazy.runs").exists(), "lazy was started although autostart is false");
    let started = d.ctl_ok(&["start", "lazy"]);
    assert!(started.stdout.contains("lazy:0: started"), "ctl start output:\n{started}");
    // `ctl start` waits for RUNNING: no polling needed here.
    assert_eq!(d.state_of("lazy:0"), "RUNNING");
    assert_eq!(d.wait_lines("lazy.runs", 1), 1);

    // A single instance can be addressed as name:N.
    let stopped = d.ctl_ok(&["stop", "many:1"]);
    assert!(stopped.stdout.contains("many:1: stopped"), "ctl stop output:\n{stopped}");
    assert_eq!(d.state_of("many:1"), "STOPPED");
    assert_eq!(d.state_of("many:0"), "RUNNING");
    assert_eq!(d.state_of("many:2"), "RUNNING");
}

#[test]
fn output_goes_to_appended_files_is_discarded_or_is_forwarded_with_or_without_prefix() {
    let dir = TestDir::new();
    std::fs::write(dir.join("out.log"), "previous run\n").expect("seed out.log");
    std::fs::write(dir.join("err.log"), "previous run\n").expect("seed err.log");
    let d = Daemon::start_in(
        dir,
        r#"
programs:
  tofile:
    cmd: ["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 1000"]
    stdout: {dir}/out.log
    stderr: {dir}/err.log
    starttime: 0.2
  dropped:
    cmd: ["/bin/sh", "-c", "echo dropped-stdout-line; echo dropped-stderr-line >&2; echo done > {dir}/dropped.done; exec sleep 1000"]
    stdout: discard
    stderr: null
    starttime: 0.2
  fwd:
    cmd: ["/bin/sh", "-c", "echo fwd-stdout-line; echo fwd-stderr-line >&2; exec sleep 1000"]
    starttime: 0.2
  bare:
    cmd: ["/bin/sh", "-c", "echo bare-stdout-line; echo bare-stderr-line >&2; exec sleep 1000"]
    prefix: false
    starttime: 0.2
"#,
    );
    d.wait_all_running(&["tofile:0", "dropped:0", "fwd:0", "bare:0"]);

    // Files are appended to, across restarts too.
    assert_eq!(d.wait_file("out.log", "to-stdout"), "previous run\nto-stdout\n");
    assert_eq!(d.wait_file("err.log", "to-stderr"), "previous run\nto-stderr\n");
    d.ctl_ok(&["restart", "tofile"]);
    d.wait_for("a second to-stdout line after restart", common::WAIT, || {
        common::read(d.path("out.log")).matches("to-stdout").count() == 2
    });
    assert_eq!(common::read(d.path("out.log")), "previous run\nto-stdout\nto-stdout\n");
    assert_eq!(d.wait_file("err.log", "to-stderr\nto-stderr"), "previous run\nto-stderr\nto-stderr\n");

    // Forwarded output: one whole line each, prefixed `name:N | ` on the matching stream.
    d.wait_for("fwd:0 stdout line on the daemon's stdout", common::WAIT, || {
        d.stdout().lines().any(|line| line == "fwd:0 | fwd-stdout-line")
    });
    d.wait_for("fwd:0 stderr line on the daemon's stderr", common::WAIT, || {
        d.stderr().lines().any(|line| line == "fwd:0 | fwd-stderr-line")
    });
    // prefix: false forwards the bare line.
    d.wait_for("bare stdout line on the daemon's stdout", common::WAIT, || {
        d.stdout().lines().any(|line| line == "bare-stdout-line")
    });
    d.wait_for("bare stderr line on the daemon's stderr", common::WAIT, || {
        d.stderr().lines().any(|line| line == "bare-stderr-line")
    });

    // Discarded output appears nowhere. The child wrote it before dropped.done; two status
    // round trips make sure the daemon has handled whatever was readable before them.
    d.wait_file("dropped.done", "done");
    d.ctl_ok(&["status"]);
    d.ctl_ok(&["status"]);
    let everything = format!("{}{}{}", d.stdout(), d.stderr(), d.events());
    assert!(!everything.contains("dropped-stdout-line"), "discarded stdout was forwarded:\n{everything}");
    assert!(!everything.contains("dropped-stderr-line"), "discarded stderr was forwarded:\n{everything}");
    // Output sent to files is not forwarded either.
    assert!(
        !everything.contains("to-stdout") && !everything.contains("to-stderr"),
        "file output was forwarded:\n{everything}"
    );
}

#[test]
fn forwarded_lines_of_different_children_never_interleave() {
    // Three children write 2000 long lines each as fast as they can, and a last line without
    // a newline; every line must reach the daemon's stdout whole, with its own prefix.
    let d = Daemon::start(
        r#"
programs:
  chatty:
    cmd: ["/bin/sh", "-c", "line=$(printf '%0300d' 0 | tr 0 $MARK); i=0; while [ $i -lt 2000 ]; do echo \"$MARK $i $line\"; i=$((i+1)); done; printf 'last-without-newline'; exec sleep 1000"]
    numprocs: 3
    env:
      MARK: x
    starttime: 0.1
"#,
    );
    d.wait_all_running(&["chatty:0", "chatty:1", "chatty:2"]);
    d.wait_for("2000 lines and the unterminated last line from each child", common::WAIT, || {
        let out = d.stdout();
        (0..3).all(|n| out.contains(&format!("chatty:{n} | x 1999 ")))
    });
    // The unterminated line is flushed when its pipe closes.
    d.ctl_ok(&["stop", "all"]);
    d.wait_for("the unterminated last lines", common::WAIT, || d.stdout().matches("last-without-newline").count() == 3);
    let body = "x".repeat(300);
    let out = d.stdout();
    let mut counts = [0usize; 3];
    for line in out.lines() {
        if line.ends_with("| last-without-newline") {
            continue;
        }
        let (prefix, rest) = line.split_once(" | ").unwrap_or_else(|| panic!("line without prefix: {line:?}"));
        let n: usize = prefix
            .strip_prefix("chatty:")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad prefix: {line:?}"));
        let mut words = rest.split(' ');
        assert_eq!(words.next(), Some("x"), "{line:?}");
        assert_eq!(
            words.next(),
            Some(counts[n].to_string().as_str()),
            "chatty:{n}'s lines are whole and in order: {line:?}"
        );
        assert_eq!(words.next(), Some(body.as_str()), "{line:?}");
        assert_eq!(words.next(), None, "{line:?}");
        counts[n] += 1;
    }
    assert_eq!(counts, [2000, 2000, 2000]);
}
