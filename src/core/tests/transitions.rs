//! Transitions as records: one `Action::Transition` per change of state (or of process), with
//! its kind, states, pid, exit and reason; the event log line is rendered from it.

use super::*;

impl Harness {
    /// `FROM>TO kind pid exit` for each transition since the last call.
    fn records(&mut self) -> Vec<String> {
        self.drain();
        std::mem::take(&mut self.transitions)
            .into_iter()
            .map(|event| {
                let pid = event.pid.map_or("-".to_string(), |pid| pid.to_string());
                let exit = event.exit.map_or("-".to_string(), |exit| exit.to_string());
                format!("{} {}>{} {} {pid} {exit}", event.instance, event.from, event.to, event.kind.as_str())
            })
            .collect()
    }
}

#[test]
fn a_start_a_crash_and_a_restart_are_records_in_order_with_kinds() {
    let mut h = Harness::new(vec![program("web", |p| p.autorestart = AutoRestart::Always)]);
    assert_eq!(h.records(), ["web:0 STOPPED>STARTING starting - -"]);
    h.spawned("web:0", 10);
    assert_eq!(h.records(), Vec::<String>::new(), "a pid within STARTING is no transition");
    h.advance(secs(1));
    assert_eq!(h.records(), ["web:0 STARTING>RUNNING running 10 -"]);
    h.advance(secs(20));
    h.exited(10, ExitStatus::Exited(3));
    assert_eq!(h.records(), ["web:0 RUNNING>STARTING unexpected_exit 10 exit status 3"]);
    h.spawned("web:0", 11);
    h.advance(secs(1));
    h.request(1, Request::Stop { targets: vec!["web".into()], wait: false, timeout: None });
    h.exited(11, ExitStatus::Signaled { signal: 15, core_dumped: false });
    assert_eq!(
        h.records(),
        [
            "web:0 STARTING>RUNNING running 11 -",
            "web:0 RUNNING>STOPPING stopping 11 -",
            "web:0 STOPPING>STOPPED stopped 11 signal SIGTERM",
        ]
    );
}

#[test]
fn failed_starts_are_backoff_records_then_fatal_and_sequence_numbers_increase() {
    let mut h = Harness::new(vec![program("web", |p| p.startretries = 1)]);
    h.expect("spawn web:0");
    h.spawned("web:0", 10);
    h.exited(10, ExitStatus::Exited(1));
    h.step();
    h.expect("spawn web:0");
    h.spawned("web:0", 11);
    h.exited(11, ExitStatus::Exited(1));
    h.drain();
    let events = h.transitions.clone();
    let kinds: Vec<(StateName, EventKind)> = events.iter().map(|event| (event.to, event.kind)).collect();
    assert_eq!(
        kinds,
        [
            (StateName::Starting, EventKind::Starting),
            (StateName::Backoff, EventKind::UnexpectedExit),
            (StateName::Starting, EventKind::Starting),
            (StateName::Fatal, EventKind::Fatal),
        ]
    );
    // A crash into BACKOFF is reported to `on: [backoff]` too, FATAL to `on: [fatal]`.
    assert!(events[1].matches(&[EventKind::Backoff]));
    assert!(events[3].matches(&[EventKind::Fatal]));
    assert!(!events[0].matches(&EventKind::DEFAULT_ON));
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(events[3].level, log::Level::Error);
    assert!(events[3].reason.contains("2 failed starts in a row; FATAL"), "{}", events[3].reason);
    assert_eq!(events[3].time, h.now.wall);
}

#[test]
fn an_expected_exit_is_exited_not_unexpected() {
    let mut h = Harness::new(vec![program("once", |p| {
        p.autorestart = AutoRestart::Unexpected;
        p.starttime = Duration::ZERO;
    })]);
    h.expect("spawn once:0");
    h.spawned("once:0", 10);
    h.exited(10, ExitStatus::Exited(0));
    let records = h.records();
    assert_eq!(records.last().map(String::as_str), Some("once:0 RUNNING>EXITED exited 10 exit status 0"));
}

#[test]
fn ready_means_every_autostart_instance_running_completed_or_scheduled() {
    let once = program("once", |p| {
        p.autorestart = AutoRestart::Never;
        p.starttime = Duration::ZERO;
    });
    let manual = program("manual", |p| p.autostart = false);
    let mut h = Harness::new(vec![program("web", |_| {}), once, manual]);
    h.expect("spawn web:0\nspawn once:0");
    assert_eq!(h.supervisor.not_ready(), ["once:0 STARTING", "web:0 STARTING"]);
    h.spawned("once:0", 10);
    h.spawned("web:0", 11);
    h.exited(10, ExitStatus::Exited(0));
    assert_eq!(h.supervisor.not_ready(), ["web:0 STARTING"]);
    h.advance(secs(1));
    assert!(h.supervisor.not_ready().is_empty(), "ready: web RUNNING, once completed, manual not autostart");
    h.request(1, Request::Stop { targets: vec!["web".into()], wait: false, timeout: None });
    h.exited(11, ExitStatus::Signaled { signal: 15, core_dumped: false });
    assert!(h.supervisor.not_ready().is_empty(), "held down by ctl stop: on purpose");
}
