//! Notifications: email digests, delivery retries, exec hooks and their bounds.

use super::*;
use crate::spec::{EmailSpec, ExecSpec, MailVia, NotifySink, NotifySpec};

fn email(on: &[EventKind], digest: Duration) -> NotifySpec {
    let addr = "127.0.0.1:25".parse().expect("address");
    NotifySpec {
        sink: NotifySink::Email(EmailSpec {
            to: vec!["ops@example.com".into()],
            from: "sv-lite@%(host)s".into(),
            via: MailVia::Smtp { addr, auth: None },
            digest,
        }),
        on: on.to_vec(),
        programs: Vec::new(),
    }
}

fn hook(on: &[EventKind], timeout: Duration) -> NotifySpec {
    NotifySpec {
        sink: NotifySink::Exec(ExecSpec { argv: vec!["/bin/page".into()], timeout }),
        on: on.to_vec(),
        programs: Vec::new(),
    }
}

fn crashing() -> ProgramSpec {
    program("web", |p| {
        p.autorestart = AutoRestart::Always;
        p.starttime = Duration::ZERO;
        p.stability_window = Duration::ZERO;
    })
}

/// Per instance and kind, how many events a mail counts.
type Counts = Vec<(String, String, u32)>;

struct Notified {
    h: Harness,
    /// (sink, id, counts) of each Mail action.
    mails: Vec<(usize, u64, Counts)>,
    hooks: Vec<(usize, String)>,
    other: Vec<String>,
}

impl Notified {
    fn new(programs: Vec<ProgramSpec>, notify: Vec<NotifySpec>) -> Notified {
        // The harness's fake clock, with a supervisor of this config on it.
        let mut h = Harness::new(Vec::new());
        let config = Config { programs, notify, ..Config::default() };
        h.supervisor = Supervisor::new(&config, h.now, 7);
        Notified { h, mails: Vec::new(), hooks: Vec::new(), other: Vec::new() }
    }

    /// Drains actions, keeping mails and hooks apart; spawns are answered with `pid`.
    fn pump(&mut self) {
        while let Some(action) = self.h.supervisor.poll_action() {
            match action {
                Action::Mail { sink, id, mail } => self.mails.push((sink, id, mail.counts)),
                Action::RunHook { sink, event, .. } => {
                    self.hooks.push((sink, format!("{} {}", event.instance, event.kind.as_str())))
                }
                Action::Spawn { id, name, .. } => {
                    self.h.spawn_ids.insert(name, id);
                }
                Action::Kill { pid, signal, .. } => self.other.push(format!("kill {pid} {}", signal.name())),
                Action::CancelMail { id } => self.other.push(format!("cancel mail {id}")),
                Action::Log { message, .. } => self.h.log.push(message),
                _ => {}
            }
        }
    }

    /// One crash of web:0 (spawned as `pid`, exiting 1 at once).
    fn crash(&mut self, pid: Pid) {
        self.pump();
        self.h.spawned("web:0", pid);
        self.h.exited(pid, ExitStatus::Exited(1));
        self.pump();
    }
}

#[test]
fn a_crash_loop_of_200_restarts_sends_the_first_at_once_then_one_digest_with_counts() {
    let mut n = Notified::new(vec![crashing()], vec![email(&EventKind::DEFAULT_ON, secs(60))]);
    n.crash(100);
    assert_eq!(n.mails.len(), 1, "the first event goes out at once");
    assert_eq!(n.mails[0].2, [("web:0".to_string(), "unexpected_exit".to_string(), 1)]);
    let (sink, id) = (n.mails[0].0, n.mails[0].1);
    n.h.input(Input::MailResult { sink, id, result: Ok(()) });
    for pid in 101..300 {
        n.crash(pid);
        n.h.advance(ms(100));
        n.pump();
    }
    // 199 more crashes within 20 s: gathered, not sent.
    assert_eq!(n.mails.len(), 1);
    n.h.advance(secs(39));
    n.pump();
    assert_eq!(n.mails.len(), 1, "not before the window closes, 60 s after the first mail");
    n.h.advance(secs(2));
    n.pump();
    assert_eq!(n.mails.len(), 2, "the window's end sends one digest");
    assert_eq!(n.mails[1].2, [("web:0".to_string(), "unexpected_exit".to_string(), 199)]);
    assert!(n.h.logged("notify: mail to ops@example.com sent (1 events)"));
}

#[test]
fn a_failed_delivery_is_retried_with_backoff_and_dropped_after_an_hour() {
    let mut n = Notified::new(vec![crashing()], vec![email(&[EventKind::UnexpectedExit], secs(60))]);
    n.crash(100);
    let (sink, id) = (n.mails[0].0, n.mails[0].1);
    n.h.input(Input::MailResult { sink, id, result: Err("connect: Connection refused".into()) });
    n.pump();
    assert!(n.h.logged("notify: mail to ops@example.com failed: connect: Connection refused; retrying in 60s"));
    n.h.advance(secs(60));
    n.pump();
    assert_eq!(n.mails.len(), 2, "retried after a minute");
    assert_eq!(n.mails[1].1, id, "the same mail");
    // No answer at all: the attempt times out, is cancelled and retried later.
    n.h.advance(secs(60));
    n.pump();
    assert!(n.other.contains(&format!("cancel mail {id}")), "{:?}", n.other);
    // Keep failing until the hour is over.
    for _ in 0..20 {
        if let Some(&(sink, id, _)) = n.mails.last() {
            n.h.input(Input::MailResult { sink, id, result: Err("451 try later".into()) });
        }
        n.h.advance(secs(15 * 60));
        n.pump();
    }
    assert!(n.h.logged("notify: mail to ops@example.com dropped after"), "{:?}", n.h.log);
}

#[test]
fn hooks_run_once_per_event_at_most_four_at_once_and_are_killed_after_their_timeout() {
    let mut n = Notified::new(vec![crashing()], vec![hook(&[EventKind::UnexpectedExit], secs(30))]);
    for pid in 100..106 {
        n.crash(pid);
    }
    assert_eq!(n.hooks.len(), 4, "four at once: {:?}", n.hooks);
    for pid in 0..4 {
        n.h.input(Input::HookSpawned { sink: 0, result: Ok(900 + pid) });
    }
    n.h.exited(900, ExitStatus::Exited(0));
    n.pump();
    assert_eq!(n.hooks.len(), 5, "a finished hook makes room for a queued event");
    n.h.input(Input::HookSpawned { sink: 0, result: Ok(904) });
    n.h.exited(901, ExitStatus::Exited(2));
    n.pump();
    assert!(n.h.logged("notify hook /bin/page (pid 901) failed: exit status 2"));
    assert_eq!(n.hooks.len(), 6);
    n.h.input(Input::HookSpawned { sink: 0, result: Ok(905) });
    n.h.advance(secs(30));
    n.pump();
    assert!(n.other.contains(&"kill 902 KILL".to_string()), "{:?}", n.other);
    assert!(n.h.logged("notify hook /bin/page (pid 902) ran past its timeout; killing it"));
    // A hook's exit is not an orphan's and not an instance's.
    n.h.exited(902, ExitStatus::Signaled { signal: 9, core_dumped: false });
    assert!(!n.h.logged("adopted orphan"));
}

#[test]
fn a_full_hook_queue_counts_and_logs_dropped_events() {
    let mut n = Notified::new(vec![crashing()], vec![hook(&[EventKind::UnexpectedExit], secs(30))]);
    for pid in 100..(100 + 4 + HOOK_QUEUE as i32 + 3) {
        n.crash(pid);
    }
    assert_eq!(n.hooks.len(), 4);
    assert!(n.h.logged("dropped (3 dropped so far)"), "{:?}", n.h.log.last());
}

#[test]
fn on_and_programs_select_what_is_reported() {
    let mut spec = email(&[EventKind::Fatal], secs(60));
    spec.programs = vec!["db".into()];
    let mut n = Notified::new(vec![crashing()], vec![spec, email(&[EventKind::Running], secs(60))]);
    n.crash(100);
    assert!(n.mails.iter().all(|(sink, _, _)| *sink == 1), "web's crash is not db's fatal: {:?}", n.mails);
    assert_eq!(n.mails.len(), 1, "RUNNING reported by the second entry");
}

#[test]
fn a_reload_that_removes_an_entry_while_hooks_queue_does_not_misdirect_or_crash() {
    let specs = vec![email(&[EventKind::UnexpectedExit], secs(60)), hook(&[EventKind::UnexpectedExit], secs(30))];
    let mut n = Notified::new(vec![crashing()], specs);
    for pid in 100..107 {
        n.crash(pid);
    }
    assert_eq!(n.hooks.len(), 4);
    let hook_sink = n.hooks[0].0;
    for pid in 0..4 {
        n.h.input(Input::HookSpawned { sink: hook_sink, result: Ok(900 + pid) });
    }
    // The email entry goes: the hook entry moves to position 0, but keeps its id.
    let config = Config {
        programs: vec![crashing()],
        notify: vec![hook(&[EventKind::UnexpectedExit], secs(30))],
        ..Config::default()
    };
    n.h.input(Input::Reload { conn: None, result: Ok(config) });
    n.pump();
    n.h.exited(900, ExitStatus::Exited(0));
    n.pump();
    assert_eq!(n.hooks.len(), 5, "a queued event runs on the same hook");
    assert_eq!(n.hooks[4].0, hook_sink);
    // A late answer for the removed mail entry is ignored.
    let (sink, id) = (n.mails[0].0, n.mails[0].1);
    n.h.input(Input::MailResult { sink, id, result: Ok(()) });
    n.pump();
}
