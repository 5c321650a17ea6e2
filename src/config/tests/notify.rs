//! `notify:` (email digests and exec hooks) and size rotation of the log files (issue 13).

use std::net::SocketAddr;

use super::*;
use crate::config::notify::{address_problem, mail_via};
use crate::core::EventKind;
use crate::spec::{defaults, EmailSpec, ExecSpec, MailVia, NotifySink, NotifySpec, Rotate};

/// The one `notify:` entry of `entry`, written as the first list item (line 3 onwards).
fn notify(entry: &str) -> NotifySpec {
    let config = load_ok(&format!("programs: {{web: {{cmd: web}}, db: {{cmd: db}}}}\nnotify:\n{entry}"));
    assert_eq!(config.notify.len(), 1, "{:#?}", config.notify);
    config.notify.into_iter().next().unwrap()
}

/// The one error for `entry`, as `path`, line and message.
fn notify_error(entry: &str) -> (String, Option<usize>, String) {
    let error = one_error(&format!("programs: {{web: {{cmd: web}}, db: {{cmd: db}}}}\nnotify:\n{entry}"));
    (error.path, error.line, error.message)
}

fn email(entry: &str) -> EmailSpec {
    match notify(entry).sink {
        NotifySink::Email(email) => email,
        other => panic!("expected email, got {other:?}"),
    }
}

fn smtp(addr: &str, auth: Option<(&str, &str)>) -> MailVia {
    let addr: SocketAddr = addr.parse().unwrap();
    MailVia::Smtp { addr, auth: auth.map(|(user, password)| (user.to_string(), password.to_string())) }
}

/// An email entry with `to`, `from` and `via` set, and `extra` (one line) added.
fn mail_with(extra: &str) -> String {
    format!("  - email:\n      to: ops@example.com\n      from: sv@example.com\n      via: sendmail\n      {extra}\n")
}

const ISSUE_EXAMPLE: &str = "\
logfile: /var/log/sv-lite.log
logfile_maxbytes: 50MB
logfile_backups: 10
programs:
  web:
    cmd: /usr/bin/web
    stdout: /var/log/web.out
    stdout_maxbytes: 50MB
    stdout_backups: 5
    stderr: /var/log/web.err
    stderr_maxbytes: 50MB
    stderr_backups: 5
  db:
    cmd: /usr/bin/db
notify:
  - email:
      to: [ops@example.com]
      from: sv-lite@%(host)s
      via: smtp://127.0.0.1:25
      on: [fatal, unexpected_exit, unhealthy, backoff]
      programs: [web, db]
      digest: 60s
  - exec:
      cmd: [\"/usr/local/bin/page-oncall\"]
      on: [fatal]
      programs: [web]
      timeout: 30s
";

#[test]
fn the_issue_example_parses_to_the_exact_spec() {
    let config = load_ok(ISSUE_EXAMPLE);
    let fifty_megabytes = 50 << 20;
    assert_eq!(config.logfile_rotate, Rotate { maxbytes: fifty_megabytes, backups: 10 });
    let web = config.programs.iter().find(|spec| spec.name == "web").unwrap();
    assert_eq!(web.stdout_rotate, Rotate { maxbytes: fifty_megabytes, backups: 5 });
    assert_eq!(web.stderr_rotate, Rotate { maxbytes: fifty_megabytes, backups: 5 });
    let db = config.programs.iter().find(|spec| spec.name == "db").unwrap();
    assert_eq!((db.stdout_rotate, db.stderr_rotate), (Rotate::default(), Rotate::default()));
    assert_eq!(
        config.notify,
        [
            NotifySpec {
                sink: NotifySink::Email(EmailSpec {
                    to: strings(&["ops@example.com"]),
                    from: "sv-lite@%(host)s".to_string(),
                    via: smtp("127.0.0.1:25", None),
                    digest: secs(60),
                }),
                on: vec![EventKind::UnexpectedExit, EventKind::Backoff, EventKind::Fatal, EventKind::Unhealthy],
                programs: strings(&["db", "web"]),
            },
            NotifySpec {
                sink: NotifySink::Exec(ExecSpec { argv: strings(&["/usr/local/bin/page-oncall"]), timeout: secs(30) }),
                on: vec![EventKind::Fatal],
                programs: strings(&["web"]),
            },
        ]
    );
}

#[test]
fn without_the_new_keys_nothing_rotates_and_nothing_is_notified() {
    let config = load_ok("logfile: /var/log/sv.log\nprograms:\n  web: {cmd: web, stdout: /tmp/web.out}\n");
    assert_eq!(config.logfile_rotate, Rotate { maxbytes: 0, backups: defaults::BACKUPS });
    assert_eq!(config.programs[0].stdout_rotate, Rotate::default());
    assert!(config.notify.is_empty());
    assert!(load_ok("notify: []\n").notify.is_empty());
    assert!(load_ok("notify:\n").notify.is_empty());
}

#[test]
fn rotation_sizes_are_read_as_tail_buffer_reads_them() {
    for (written, bytes) in [("0", 0), ("4096", 4096), ("64k", 64 << 10), ("\"1MiB\"", 1 << 20), ("2G", 2 << 30)] {
        let settings = format!(
            "stdout: /tmp/o\n    stdout_maxbytes: {written}\n    stderr: /tmp/e\n    stderr_maxbytes: {written}"
        );
        let spec = web(&settings);
        assert_eq!(spec.stdout_rotate.maxbytes, bytes, "{written}");
        assert_eq!(spec.stderr_rotate.maxbytes, bytes, "{written}");
    }
    assert_eq!(
        web_error("stdout_maxbytes: 5x"),
        (
            "programs.web.stdout_maxbytes".to_string(),
            Some(4),
            "invalid size \"5x\" (expected bytes, or e.g. \"64k\", \"1MiB\")".to_string()
        )
    );
    let error = one_error("logfile: /l\nlogfile_maxbytes: -1\n");
    assert_eq!((error.path.as_str(), error.line), ("logfile_maxbytes", Some(2)));
}

#[test]
fn backups_are_0_to_1000() {
    let spec = web("stdout: /tmp/o\n    stdout_backups: 0\n    stderr_backups: 1000");
    assert_eq!((spec.stdout_rotate.backups, spec.stderr_rotate.backups), (0, 1000));
    assert_eq!(load_ok("logfile_backups: 3\n").logfile_rotate.backups, 3);
    assert_eq!(web_error("stderr_backups: 1001").2, "must be 0 to 1000, found 1001");
    assert_eq!(web_error("stdout_backups: -1").2, "must be 0 to 1000, found -1");
    assert_eq!(web_error("stdout_backups: five").2, "expected an integer, found a string \"five\"");
    let error = one_error("logfile_backups: 5000\n");
    assert_eq!(error.to_string(), "test.yaml:1:18: logfile_backups: must be 0 to 1000, found 5000");
}

#[test]
fn rotation_needs_a_file() {
    assert_eq!(
        web_error("stdout_maxbytes: 1MB"),
        (
            "programs.web.stdout_maxbytes".to_string(),
            Some(4),
            "rotation needs a `stdout:` file path (stdout is forwarded to sv-lite's own stdout)".to_string()
        )
    );
    let error = one_error("programs:\n  web:\n    cmd: web\n    stderr: discard\n    stderr_maxbytes: 10k\n");
    assert_eq!(
        error.to_string(),
        "test.yaml:5:5: programs.web.stderr_maxbytes: rotation needs a `stderr:` file path (stderr is discarded)"
    );
    assert_eq!(web_error("stdout: /dev/null\n    stdout_maxbytes: 1k").2, error.message.replace("stderr", "stdout"));
    // 0 never rotates, and backups alone rotate nothing: neither needs a file.
    let spec = web("stdout_maxbytes: 0\n    stdout_backups: 3");
    assert_eq!(spec.stdout_rotate, Rotate { maxbytes: 0, backups: 3 });
    let error = one_error("logfile_maxbytes: 50MB\n");
    assert_eq!(
        error.to_string(),
        "test.yaml:1:1: logfile_maxbytes: rotation needs a `logfile:` path (there is no log file to rotate)"
    );
    assert_eq!(load_ok("logfile_maxbytes: 0\nlogfile_backups: 2\n").logfile_rotate, Rotate { maxbytes: 0, backups: 2 });
}

#[test]
fn rotation_keys_work_in_yaml_service_files_and_supervisord_names_get_a_hint() {
    let text = "cmd: web\nstdout: /var/log/web.out\nstdout_maxbytes: 1MB\nstdout_backups: 2\n";
    let spec = service_file::parse(std::path::Path::new("/etc/sv.d/web.yaml"), text).unwrap();
    assert_eq!(spec.stdout_rotate, Rotate { maxbytes: 1 << 20, backups: 2 });
    assert_eq!(
        web_error("stdout_logfile_maxbytes: 1MB").2,
        "unknown key `stdout_logfile_maxbytes`; did you mean `stdout_maxbytes`?"
    );
    assert_eq!(
        web_error("stderr_logfile_backups: 1").2,
        "unknown key `stderr_logfile_backups`; did you mean `stderr_backups`?"
    );
    assert_eq!(
        one_error("logfile_backup: 1\n").message,
        "unknown key `logfile_backup`; did you mean `logfile_backups`?"
    );
}

#[test]
fn email_defaults_and_one_address_for_to() {
    let entry = "  - email:\n      to: ops@example.com\n      from: sv@example.com\n      via: sendmail\n";
    let spec = notify(entry);
    assert_eq!(spec.on, EventKind::DEFAULT_ON.to_vec());
    assert!(spec.programs.is_empty());
    assert_eq!(
        spec.sink,
        NotifySink::Email(EmailSpec {
            to: strings(&["ops@example.com"]),
            from: "sv@example.com".to_string(),
            via: MailVia::Sendmail { path: PathBuf::from("/usr/sbin/sendmail") },
            digest: defaults::DIGEST,
        })
    );
    // Repeats go, the order stays.
    let to = email(&mail_with("").replace("to: ops@example.com", "to: [b@x.org, a@x.org, b@x.org]")).to;
    assert_eq!(to, strings(&["b@x.org", "a@x.org"]));
    assert_eq!(email(&mail_with("digest: 5m")).digest, secs(300));
}

#[test]
fn email_needs_to_from_and_via() {
    let errors = errors("notify:\n  - email:\n      digest: 1s\n");
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "test.yaml:2:5: notify[0].email: missing required key `to` (the recipients)",
            "test.yaml:2:5: notify[0].email: missing required key `from` (the sender address, such as sv-lite@%(host)s)",
            "test.yaml:2:5: notify[0].email: missing required key `via` (smtp://HOST[:PORT] of a relay, or sendmail)",
        ]
    );
    assert_eq!(
        notify_error(&mail_with("").replace("to: ops@example.com", "to: []")).2,
        "the list is empty: give at least one recipient address"
    );
}

#[test]
fn email_settings_are_checked() {
    assert_eq!(notify_error(&mail_with("digest: 0s")).2, "must be greater than zero");
    assert_eq!(
        notify_error(&mail_with("recipients: [a@b.c]")),
        (
            "notify[0].email.recipients".to_string(),
            Some(7),
            "unknown key `recipients` (expected one of: to, from, via, on, programs, digest)".to_string()
        )
    );
    assert_eq!(notify_error(&mail_with("digets: 1m")).2, "unknown key `digets`; did you mean `digest`?");
    assert_eq!(
        notify_error("  - email: ops@example.com\n").2,
        "expected a mapping of email settings (to, from, via, on, programs, digest), found a string \"ops@example.com\""
    );
    assert_eq!(
        notify_error(&mail_with("").replace("via: sendmail", "via: 25")).2,
        "expected a mail route such as smtp://127.0.0.1:25 or sendmail, found an integer 25"
    );
}

#[test]
fn every_error_of_an_entry_is_reported() {
    let text = "notify:\n  - email:\n      to: [ops]\n      from: me\n      via: smtp://mail.example.com\n      on: [fatl]\n      programs: [web]\n";
    let errors: Vec<(String, Option<usize>)> = errors(text).into_iter().map(|error| (error.path, error.line)).collect();
    assert_eq!(
        errors,
        [
            ("notify[0].email.to[0]".to_string(), Some(3)),
            ("notify[0].email.from".to_string(), Some(4)),
            ("notify[0].email.via".to_string(), Some(5)),
            ("notify[0].email.on[0]".to_string(), Some(6)),
            ("notify[0].email.programs[0]".to_string(), Some(7)),
        ]
    );
}

#[test]
fn plain_addresses_only() {
    for good in ["ops@example.com", "a.b+tag@mail.example.co.uk", "x@localhost", "o'neil@x.org"] {
        assert_eq!(address_problem(good), None, "{good}");
    }
    for (bad, problem) in [
        ("", "it is empty"),
        ("opś@example.com", "only ASCII is allowed"),
        ("ops\t@example.com", "it contains a control character"),
        ("a@x.org, b@x.org", "write several addresses as a list, such as [ops@example.com, dev@example.com]"),
        ("a@x.org b@x.org", "write several addresses as a list, such as [ops@example.com, dev@example.com]"),
        ("Ops <ops@example.com>", "write the address alone, without a name or `<>`, such as ops@example.com"),
        ("<ops@example.com>", "write the address alone, without a name or `<>`, such as ops@example.com"),
        ("ops @example.com", "it contains a space"),
        ("ops(x)@example.com", "`(` has no place in a plain address"),
        ("root@[127.0.0.1]", "`[` has no place in a plain address"),
        ("ops", "it has no `@` (expected local@domain)"),
        ("a@b@example.com", "it has more than one `@`"),
        ("@example.com", "nothing before the `@`"),
        ("ops@", "no domain after the `@`"),
        ("ops@.example.com", "the domain \".example.com\" has an empty part (a leading, trailing or doubled dot)"),
        ("ops@example.com.", "the domain \"example.com.\" has an empty part (a leading, trailing or doubled dot)"),
        ("ops@example..com", "the domain \"example..com\" has an empty part (a leading, trailing or doubled dot)"),
    ] {
        assert_eq!(address_problem(bad).as_deref(), Some(problem), "{bad:?}");
    }
    let (path, line, message) = notify_error(&mail_with("").replace("to: ops@example.com", "to: [a@x.org, ops]"));
    assert_eq!((path.as_str(), line), ("notify[0].email.to[1]", Some(4)));
    assert_eq!(message, "invalid address \"ops\": it has no `@` (expected local@domain)");
    assert_eq!(
        notify_error(&mail_with("").replace("to: ops@example.com", "to: {ops: x}")).2,
        "expected an email address or a list of them, found a mapping"
    );
}

#[test]
fn from_may_use_host_and_nothing_else() {
    assert_eq!(email(&mail_with("").replace("sv@example.com", "sv-lite@%(host)s")).from, "sv-lite@%(host)s");
    assert_eq!(
        email(&mail_with("").replace("sv@example.com", "\"%(host)s@example.com\"")).from,
        "%(host)s@example.com"
    );
    assert_eq!(
        notify_error(&mail_with("").replace("sv@example.com", "sv@%(name)s")).2,
        "\"sv@%(name)s\" uses a template other than `%(host)s`, the only one `from` may use (the host name)"
    );
    assert_eq!(
        notify_error(&mail_with("").replace("sv@example.com", "sv-lite")).2,
        "invalid address \"sv-lite\": it has no `@` (expected local@domain)"
    );
    // Checked as `sv@localhost.`: the template does not hide a bad domain.
    assert_eq!(
        notify_error(&mail_with("").replace("sv@example.com", "sv@%(host)s.")).2,
        "invalid address \"sv@%(host)s.\": the domain \"localhost.\" has an empty part (a leading, trailing or doubled dot)"
    );
}

#[test]
fn line_breaks_in_mail_values_are_header_injection() {
    const INJECTION: &str =
        "contains a line break, refused as header injection (it would add lines to the mail's headers)";
    let to = mail_with("").replace("to: ops@example.com", "to: \"ops@example.com\\nBcc: all@example.com\"");
    assert_eq!(notify_error(&to).2, format!("a recipient address {INJECTION}"));
    let to = mail_with("").replace("to: ops@example.com", "to: [\"ops@example.com\\r\"]");
    assert_eq!(
        notify_error(&to),
        ("notify[0].email.to[0]".to_string(), Some(4), format!("a recipient address {INJECTION}"))
    );
    let from = mail_with("").replace("from: sv@example.com", "from: \"sv@example.com\\r\\nSubject: hi\"");
    assert_eq!(notify_error(&from).2, format!("the sender address {INJECTION}"));
    let from = mail_with("").replace("from: sv@example.com", "from: |\n        sv@example.com\n");
    assert_eq!(notify_error(&from).2, format!("the sender address {INJECTION}"));
    assert_eq!(mail_via("smtp://u:p%0A@127.0.0.1"), Err(format!("the password {INJECTION}")));
    assert_eq!(mail_via("smtp://u%0d:p@127.0.0.1"), Err(format!("the user name {INJECTION}")));
    assert_eq!(mail_via("smtp://u:p\n@127.0.0.1"), Err(format!("the mail route {INJECTION}")));
    let via = mail_with("").replace("via: sendmail", "via: \"smtp://u:p\\n@127.0.0.1\"");
    assert_eq!(notify_error(&via).2, format!("the mail route {INJECTION}"));
}

#[test]
fn via_smtp_takes_an_ip_address_or_localhost() {
    assert_eq!(mail_via("smtp://127.0.0.1:25"), Ok(smtp("127.0.0.1:25", None)));
    assert_eq!(mail_via("smtp://127.0.0.1"), Ok(smtp("127.0.0.1:25", None)));
    assert_eq!(mail_via("smtp://10.0.0.2:2525/"), Ok(smtp("10.0.0.2:2525", None)));
    assert_eq!(mail_via("smtp://localhost:587"), Ok(smtp("127.0.0.1:587", None)));
    assert_eq!(mail_via("smtp://LOCALHOST"), Ok(smtp("127.0.0.1:25", None)));
    assert_eq!(mail_via("smtp://[::1]"), Ok(smtp("[::1]:25", None)));
    assert_eq!(mail_via("smtp://[2001:db8::1]:2525"), Ok(smtp("[2001:db8::1]:2525", None)));
    assert_eq!(
        mail_via("smtp://mail.example.com:25"),
        Err("\"mail.example.com\" is a host name, and sv-lite does not resolve names (its loop never waits on DNS): \
             give an IP address, such as a local relay at smtp://127.0.0.1:25"
            .to_string())
    );
    for (bad, message) in [
        ("smtp://", "the smtp:// route has no host, such as smtp://127.0.0.1:25"),
        ("smtp://:25", "the smtp:// route has no host, such as smtp://127.0.0.1:25"),
        ("smtp://127.0.0.300", "invalid IPv4 address \"127.0.0.300\""),
        ("smtp://::1", "write an IPv6 address in brackets, such as smtp://[::1]:25"),
        ("smtp://[::1", "`[` without `]` around the IPv6 address"),
        ("smtp://[::g]:25", "invalid IPv6 address \"::g\""),
        ("smtp://[::1]25", "expected `:PORT` after `]`, found \"25\""),
        ("smtp://127.0.0.1:0", "invalid port \"0\" (expected 1 to 65535)"),
        ("smtp://127.0.0.1:65536", "invalid port \"65536\" (expected 1 to 65535)"),
        ("smtp://127.0.0.1:", "invalid port \"\" (expected 1 to 65535)"),
        ("smtp://127.0.0.1:smtp", "invalid port \"smtp\" (expected 1 to 65535)"),
    ] {
        assert_eq!(mail_via(bad), Err(message.to_string()), "{bad}");
    }
    assert!(mail_via("smtp://127.0.0.1:25/mail").unwrap_err().starts_with("an smtp:// route has no path or query"));
    let (path, line, message) = notify_error(&mail_with("").replace("via: sendmail", "via: smtp://relay.local"));
    assert_eq!((path.as_str(), line), ("notify[0].email.via", Some(6)));
    assert!(message.starts_with("\"relay.local\" is a host name"), "{message}");
}

#[test]
fn via_smtp_takes_a_user_and_password() {
    assert_eq!(mail_via("smtp://user:secret@127.0.0.1:2525"), Ok(smtp("127.0.0.1:2525", Some(("user", "secret")))));
    // `%40` and friends are decoded; a password may hold `:`.
    assert_eq!(
        mail_via("smtp://ops%40example.com:p%25ss:word@[::1]"),
        Ok(smtp("[::1]:25", Some(("ops@example.com", "p%ss:word"))))
    );
    for (bad, message) in [
        (
            "smtp://ops@example.com:pw@127.0.0.1",
            "more than one `@` in the smtp:// route: write an `@` in the user name or password as `%40`",
        ),
        ("smtp://user@127.0.0.1", "the smtp:// route names a user but no password: write smtp://USER:PASSWORD@HOST"),
        ("smtp://:pw@127.0.0.1", "the user name in the smtp:// route is empty"),
        ("smtp://user:@127.0.0.1", "the password in the smtp:// route is empty"),
        ("smtp://user:100%@127.0.0.1", "the password has a bad `%` escape (write `%` itself as `%25`)"),
        ("smtp://us%zzer:pw@127.0.0.1", "the user name has a bad `%` escape (write `%` itself as `%25`)"),
        ("smtp://user:%ff@127.0.0.1", "the password has a bad `%` escape (write `%` itself as `%25`)"),
        ("smtp://user:p%00w@127.0.0.1", "the password must not contain a NUL byte"),
    ] {
        assert_eq!(mail_via(bad), Err(message.to_string()), "{bad}");
    }
    // No message repeats the password.
    for bad in ["smtp://u:hunter2@mail.example.com", "smpt://u:hunter2@127.0.0.1", "smtp://u:hunter2@127.0.0.1:0"] {
        assert!(!mail_via(bad).unwrap_err().contains("hunter2"), "{bad}");
    }
}

#[test]
fn via_sendmail_and_other_routes() {
    let sendmail = |path: &str| Ok(MailVia::Sendmail { path: PathBuf::from(path) });
    assert_eq!(mail_via("sendmail"), sendmail("/usr/sbin/sendmail"));
    assert_eq!(mail_via("sendmail:/opt/bin/msmtp"), sendmail("/opt/bin/msmtp"));
    assert_eq!(
        mail_via("sendmail:msmtp"),
        Err("the sendmail path \"msmtp\" must be absolute, as in sendmail:/usr/sbin/sendmail".to_string())
    );
    assert_eq!(
        mail_via("sendmail:"),
        Err("the sendmail path \"\" must be absolute, as in sendmail:/usr/sbin/sendmail".to_string())
    );
    assert!(mail_via("smtps://127.0.0.1:465").unwrap_err().starts_with("smtps (TLS) is not supported"));
    assert_eq!(
        mail_via("127.0.0.1:25"),
        Err("invalid mail route \"127.0.0.1:25\" (expected smtp://HOST[:PORT], smtp://USER:PASSWORD@HOST[:PORT], \
             sendmail, or sendmail:/path/to/sendmail)"
            .to_string())
    );
}

#[test]
fn on_names_events() {
    let with_on = |on: &str| notify(&mail_with(&format!("on: {on}"))).on;
    assert_eq!(with_on("fatal"), [EventKind::Fatal]);
    assert_eq!(with_on("[backoff, fatal, backoff]"), [EventKind::Backoff, EventKind::Fatal]);
    let all: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(with_on(&format!("[{}]", all.join(", "))), EventKind::ALL);
    assert_eq!(
        notify_error(&mail_with("on: [fatal, crashed]")),
        (
            "notify[0].email.on[1]".to_string(),
            Some(7),
            "unknown event \"crashed\" (expected one of: starting, running, exited, unexpected_exit, backoff, \
             fatal, unhealthy, stopping, stopped, paused, waiting, scheduled)"
                .to_string()
        )
    );
    assert_eq!(
        notify_error(&mail_with("on: unexpected-exit")).2,
        "unknown event `unexpected-exit`; did you mean `unexpected_exit`?"
    );
    let empty =
        "the list is empty: name at least one event, or leave the key out for fatal, unexpected_exit, unhealthy";
    assert_eq!(notify_error(&mail_with("on: []")).2, empty);
    assert_eq!(notify_error(&mail_with("on:")).2, empty);
    assert_eq!(
        notify_error(&mail_with("on: [{fatal: 1}]")).2,
        "expected an event name or a list of them, found a mapping"
    );
}

#[test]
fn programs_must_exist_unless_service_files_may_define_them() {
    let with_programs = |programs: &str| notify(&mail_with(&format!("programs: {programs}"))).programs;
    assert_eq!(with_programs("web"), strings(&["web"]));
    assert_eq!(with_programs("[web, db, web]"), strings(&["db", "web"]));
    assert_eq!(
        notify_error(&mail_with("programs: [web, webb]")),
        ("notify[0].email.programs[1]".to_string(), Some(7), "unknown program `webb`; did you mean `web`?".to_string())
    );
    assert_eq!(
        notify_error(&mail_with("programs: cache")).2,
        "unknown program `cache` (no program or service has that name)"
    );
    assert_eq!(
        notify_error(&mail_with("programs: [\"web:0\"]")).2,
        "invalid program name \"web:0\": `:` is reserved for addressing one instance (as in `web:0`); \
         use only letters, digits, `_`, `.` and `-`"
    );
    assert_eq!(
        notify_error(&mail_with("programs: []")).2,
        "the list is empty: name at least one program, or leave the key out for every program"
    );
    // Tron services count as programs.
    let text = "services:\n  - name: batch\n    node: localhost\n    command: batch\n    pid_file: /run/b.pid\n    monitor_interval: 5\nnotify:\n  - exec: {cmd: hook, programs: [batch]}\n";
    assert_eq!(load_ok(text).notify[0].programs, strings(&["batch"]));
    // With `include:`, a service file may define the program; names are still checked for syntax.
    let text = format!(
        "include: /etc/sv.d\n{}",
        mail_with("programs: [cache, web]").replacen("  - email", "notify:\n  - email", 1)
    );
    assert_eq!(load_ok(&text).notify[0].programs, strings(&["cache", "web"]));
    let text = "include: /etc/sv.d\nnotify:\n  - exec: {cmd: hook, programs: [-x]}\n";
    assert_eq!(one_error(text).message, "invalid program name \"-x\": it must not start with `-` or be `.` or `..`");
}

#[test]
fn exec_hooks() {
    let hook = |entry: &str| match notify(entry).sink {
        NotifySink::Exec(exec) => exec,
        other => panic!("expected exec, got {other:?}"),
    };
    assert_eq!(
        hook("  - exec:\n      cmd: /usr/local/bin/page-oncall --team 'ops west'\n"),
        ExecSpec {
            argv: strings(&["/usr/local/bin/page-oncall", "--team", "ops west"]),
            timeout: defaults::HOOK_TIMEOUT
        }
    );
    let spec = notify("  - exec: {cmd: [hook, 1], timeout: 500ms, on: unhealthy}\n");
    assert_eq!(
        spec.sink,
        NotifySink::Exec(ExecSpec { argv: strings(&["hook", "1"]), timeout: Duration::from_millis(500) })
    );
    assert_eq!((spec.on, spec.programs), (vec![EventKind::Unhealthy], Vec::new()));
    assert_eq!(
        notify_error("  - exec:\n      timeout: 1s\n"),
        ("notify[0].exec".to_string(), Some(3), "missing required key `cmd` (the command to run)".to_string())
    );
    // The same argv checks as a program's `cmd`.
    assert_eq!(notify_error("  - exec:\n      cmd: \"\"\n").2, "the command is empty");
    assert_eq!(notify_error("  - exec:\n      cmd: []\n").2, "the command is empty");
    assert_eq!(notify_error("  - exec:\n      cmd: \"hook 'x\"\n").2, "unterminated single quote in the command");
    assert_eq!(
        notify_error("  - exec:\n      cmd: -hook\n").2,
        "the command starts with \"-hook\"; if you meant a YAML list, put a space after each dash (`- hook`)"
    );
    assert_eq!(notify_error("  - exec:\n      cmd: [hook, {a: 1}]\n").0, "notify[0].exec.cmd[1]");
    assert_eq!(notify_error("  - exec:\n      cmd: hook\n      timeout: 0\n").2, "must be greater than zero");
    let messages: Vec<String> =
        errors("notify:\n  - exec:\n      command: hook\n").into_iter().map(|error| error.message).collect();
    assert_eq!(
        messages,
        ["missing required key `cmd` (the command to run)", "unknown key `command`; did you mean `cmd`?"]
    );
}

#[test]
fn each_entry_is_exactly_one_email_or_exec() {
    assert_eq!(
        notify_error("  - exec: {cmd: hook}\n    email: {to: a@b.c, from: a@b.c, via: sendmail}\n"),
        (
            "notify[0].email".to_string(),
            Some(4),
            "a notify entry has exactly one of `email:` or `exec:`; start another entry (`- email:`) for this one"
                .to_string()
        )
    );
    assert_eq!(
        notify_error("  - {}\n"),
        ("notify[0]".to_string(), Some(3), "a notify entry needs `email:` or `exec:`".to_string())
    );
    assert_eq!(notify_error("  - mail: {}\n").2, "unknown key `mail`; did you mean `email`?");
    assert_eq!(notify_error("  - slack: {}\n").2, "unknown key `slack` (expected one of: email, exec)");
    assert_eq!(notify_error("  - exec\n").2, "expected an `email:` or `exec:` entry, found a string \"exec\"");
    assert_eq!(
        one_error("notify: {email: {}}\n").message,
        "expected a list of `email:` and `exec:` entries, found a mapping"
    );
    // Settings written beside `email:` instead of under it.
    let errors = errors("notify:\n  - email:\n    to: ops@example.com\n    via: sendmail\n");
    let messages: Vec<(String, Option<usize>, String)> =
        errors.into_iter().map(|error| (error.path, error.line, error.message)).collect();
    assert_eq!(
        messages,
        [
            (
                "notify[0].email".to_string(),
                Some(2),
                "expected a mapping of email settings (to, from, via, on, programs, digest), found null".to_string()
            ),
            (
                "notify[0].to".to_string(),
                Some(3),
                "`to` belongs inside `email:` or `exec:`; indent it under that key".to_string()
            ),
            (
                "notify[0].via".to_string(),
                Some(4),
                "`via` belongs inside `email:` or `exec:`; indent it under that key".to_string()
            ),
        ]
    );
}

#[test]
fn several_entries_and_the_errors_of_each() {
    let text = "programs: {web: {cmd: web}}\nnotify:\n  - exec: {cmd: a}\n  - exec: {cmd: b, on: [nope]}\n  - email:\n      to: x@y.z\n      from: x@y.z\n      via: sendmail\n";
    let error = one_error(text);
    assert_eq!((error.path.as_str(), error.line), ("notify[1].exec.on[0]", Some(4)));
    let config = load_ok(&text.replace("nope", "fatal"));
    assert_eq!(config.notify.len(), 3);
    assert!(matches!(&config.notify[2].sink, NotifySink::Email(email) if email.to == ["x@y.z"]));
}
