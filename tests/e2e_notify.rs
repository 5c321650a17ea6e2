//! Notifications end to end: mail to a real SMTP server (aiosmtpd, tests/support/smtp_server.py),
//! a digest for a crash loop, a retry after a refused delivery, the sendmail path, and exec
//! hooks with their environment, stdin and timeout.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// An aiosmtpd server storing messages in `dir` as N.eml (+ N.env once complete); killed on drop.
struct Smtp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path, port: Option<u16>) -> Smtp {
        fs::create_dir_all(dir).expect("mkdir mail dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let mut child = Command::new(python)
            .arg(script)
            .arg(dir)
            .env("SMTP_PORT", port.unwrap_or(0).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start smtp_server.py (Debian's python3-aiosmtpd; .ci/run installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("smtp_server.py printed {line:?}"));
        Smtp { child, port, dir: dir.to_path_buf() }
    }

    /// The stored messages, in order of arrival (only complete ones).
    fn messages(&self) -> Vec<String> {
        (1..)
            .map_while(|n| self.dir.join(format!("{n}.env")).exists().then(|| read(self.dir.join(format!("{n}.eml")))))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host() -> String {
    read("/proc/sys/kernel/hostname").trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// `name exited unexpectedly N times` (or `once`) summed over every mail.
fn counted(messages: &[String], what: &str) -> u32 {
    messages
        .iter()
        .flat_map(|message| message.lines())
        .filter_map(|line| line.strip_prefix(what))
        .map(|rest| match rest.trim() {
            "once" => 1,
            times => times.trim_end_matches(" times").parse().unwrap_or(0),
        })
        .sum()
}

const CRASHY: &str = "
programs:
  crashy:
    cmd: [sh, -c, 'echo boom-on-stderr >&2; echo a-line-on-stdout; sleep 0.3; exit 3']
    startretries: 0
";

#[test]
fn a_fatal_instance_is_mailed_with_its_recent_output() {
    let dir = TestDir::new();
    let smtp = Smtp::start(&dir.join("mail"), None);
    let yaml = format!(
        "notify:\n  - email:\n      to: [ops@example.com]\n      from: sv-lite@%(host)s\n      via: smtp://127.0.0.1:{}\n      on: [fatal]\n{CRASHY}",
        smtp.port
    );
    let d = Daemon::start_in(dir, &yaml);
    d.wait_state("crashy:0", "FATAL");
    d.wait_for("the mail", WAIT, || !smtp.messages().is_empty());
    let mail = smtp.messages().remove(0);
    let host = host();
    assert!(mail.contains(&format!("Subject: [sv-lite {host}] crashy:0 is FATAL\r\n")), "{mail}");
    assert!(mail.contains(&format!("From: sv-lite@{host}\r\n")), "{mail}");
    assert!(mail.contains("To: ops@example.com\r\n"), "{mail}");
    assert!(mail.contains("crashy:0 is FATAL once"), "{mail}");
    assert!(mail.contains("crashy:0 STARTING -> FATAL fatal (exit status 3)"), "{mail}");
    assert!(mail.contains("Last 50 lines of crashy:0 stderr:\r\n  boom-on-stderr"), "{mail}");
    assert!(mail.contains("Last 50 lines of crashy:0 stdout:\r\n  a-line-on-stdout"), "{mail}");
    d.wait_event("notify: mail to ops@example.com sent (1 events)");
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn a_crash_loop_of_200_restarts_sends_a_handful_of_digests_counting_every_crash() {
    let dir = TestDir::new();
    let smtp = Smtp::start(&dir.join("mail"), None);
    let yaml = format!(
        "notify:
  - email:
      to: [ops@example.com]
      from: sv-lite@%(host)s
      via: smtp://127.0.0.1:{}
      on: [unexpected_exit]
      digest: 2s
programs:
  flappy:
    cmd: [sh, -c, 'exit 1']
    starttime: 0
    autorestart: always
    stability_window: 0
",
        smtp.port
    );
    let started = std::time::Instant::now();
    let d = Daemon::start_in(dir, &yaml);
    let crashes = || d.event_lines(&["flappy:0: exited with exit status 1 (unexpected)"]).len();
    d.wait_for("200 crashes", Duration::from_secs(60), || crashes() >= 200);
    d.ctl_ok(&["stop", "flappy"]);
    let total = crashes() as u32;
    // Every crash is counted in some mail once the last window has closed.
    d.wait_for("every crash counted", WAIT, || counted(&smtp.messages(), "flappy:0 exited unexpectedly ") == total);
    let mails = smtp.messages().len();
    // At most one mail per 2 s digest window, however long the loop took on this machine: the
    // first at once, then one per window while crashes came, and the last after the stop.
    let windows = started.elapsed().as_secs() as usize / 2 + 2;
    assert!((2..=10.max(windows)).contains(&mails), "{total} crashes in {mails} mails over {windows} windows");
    assert!(mails <= windows, "more than one mail per digest window: {mails} in {windows}");
    assert!(smtp.messages()[1].contains("flappy:0 exited unexpectedly"), "a digest's subject names what happened");
}

#[test]
fn a_refused_delivery_is_retried_until_the_server_accepts() {
    let dir = TestDir::new();
    let port = free_port();
    let yaml = format!(
        "notify:\n  - email:\n      to: [ops@example.com]\n      from: sv@localhost\n      via: smtp://127.0.0.1:{port}\n      on: [fatal]\n{CRASHY}"
    );
    let mail_dir = dir.join("mail");
    let d = Daemon::start_in(dir, &yaml);
    d.wait_event("notify: mail to ops@example.com failed: ");
    assert!(d.events().contains("retrying in 60s"), "{}", d.events());
    // The server comes up; the retry (a minute after the failure) gets through.
    let smtp = Smtp::start(&mail_dir, Some(port));
    d.wait_for("the retried mail", Duration::from_secs(120), || !smtp.messages().is_empty());
    assert!(smtp.messages()[0].contains("crashy:0 is FATAL"));
}

#[test]
fn sendmail_gets_the_message_on_stdin_with_t_and_i() {
    let dir = TestDir::new();
    let fake = dir.write("sendmail", "#!/bin/sh\necho \"$@\" > {dir}/sendmail.argv\ncat > {dir}/sendmail.stdin.tmp\nmv {dir}/sendmail.stdin.tmp {dir}/sendmail.stdin\n");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    let yaml = format!(
        "notify:\n  - email:\n      to: [ops@example.com, dev@example.com]\n      from: sv@localhost\n      via: sendmail:{}\n      on: [fatal]\n{CRASHY}",
        fake.display()
    );
    let d = Daemon::start_in(dir, &yaml);
    let stdin = wait_file_contains(&d.path("sendmail.stdin"), "crashy:0 is FATAL");
    assert_eq!(read(d.path("sendmail.argv")), "-t -i\n");
    assert!(stdin.contains("To: ops@example.com, dev@example.com\r\n"), "{stdin}");
    d.wait_event("notify: mail to ops@example.com, dev@example.com sent (1 events)");
}

#[test]
fn a_hook_gets_the_event_in_its_environment_and_on_stdin_and_is_killed_past_its_timeout() {
    let dir = TestDir::new();
    let yaml = format!(
        "notify:
  - exec:
      cmd: [sh, -c, 'env | grep ^SV_ | sort > {{dir}}/hook.env.tmp; cat > {{dir}}/hook.json; mv {{dir}}/hook.env.tmp {{dir}}/hook.env']
      on: [fatal]
  - exec:
      cmd: [sleep, '300']
      on: [fatal]
      timeout: 1s
{CRASHY}"
    );
    let d = Daemon::start_in(dir, &yaml);
    let env = wait_file_contains(&d.path("hook.env"), "SV_TO=");
    for expected in
        ["SV_EVENT=fatal", "SV_INSTANCE=crashy:0", "SV_PROGRAM=crashy", "SV_FROM=STARTING", "SV_TO=FATAL", "SV_EXIT=3"]
    {
        assert!(env.lines().any(|line| line == expected), "{expected} in:\n{env}");
    }
    assert!(
        env.contains("SV_PID=") && env.contains("SV_TIME=20") && env.contains("SV_REASON=exited with exit status 3"),
        "{env}"
    );
    let event: serde_json::Value = serde_json::from_str(read(d.path("hook.json")).trim()).expect("JSON on stdin");
    assert_eq!(event["kind"], "fatal");
    assert_eq!(event["instance"], "crashy:0");
    assert_eq!(event["exit_code"], 3);
    d.wait_event("notify hook sleep (pid ");
    d.wait_event("ran past its timeout; killing it");
    // A hook is not an instance.
    assert_eq!(d.names(), ["crashy:0"]);
}

#[test]
fn hooks_beyond_four_running_and_256_waiting_are_counted_as_dropped() {
    let d = Daemon::start(
        "notify:
  - exec:
      cmd: [sleep, '300']
      on: [unexpected_exit]
      timeout: 300s
programs:
  flappy:
    cmd: [sh, -c, 'exit 1']
    starttime: 0
    autorestart: always
    stability_window: 0
",
    );
    d.wait_for("dropped hook events", Duration::from_secs(60), || d.events().contains("dropped so far)"));
    d.ctl_ok(&["stop", "flappy"]);
    let line = d.event_lines(&["notify hook sleep: 4 hooks running and 256 waiting"]);
    assert!(!line.is_empty(), "{}", tail(&d.events(), 5));
    // Four hooks run: the daemon's own children, not instances.
    assert_eq!(d.names(), ["flappy:0"]);
}
