//! Notifications: which transitions go where, and when (`notify:`).
//!
//! Pure policy, fed every `Transition` the supervisor emits. The driver only carries out its
//! actions (compose and deliver a mail, spawn a hook, kill one) and reports results.
//!
//! - **Email**: the first matching event goes out at once; events in the `digest` window after
//!   a mail are gathered into the next one, sent when the window closes, with a count per
//!   instance and kind ("web:0 unexpected_exit 37 times"). So a crash loop of 1000 restarts
//!   sends a handful of mails. A failed delivery is retried with backoff (1 min, doubling, at
//!   most 15 min) for up to `MAIL_GIVE_UP` after its first attempt, then dropped with an error;
//!   events meanwhile are gathered for the next mail. A delivery still going after
//!   `MAIL_TIMEOUT` is cancelled and counts as failed.
//! - **Exec hooks**: one run per matching event, at most `MAX_HOOKS` at once; more wait in a
//!   queue of `HOOK_QUEUE`, beyond which events are counted and logged as dropped. A hook past
//!   its `timeout` is killed (its process group).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::types::{Action, ExitStatus, Pid, Transition};
use crate::spec::{EmailSpec, ExecSpec, NotifySink, NotifySpec, Signal};

/// Hooks running at once.
pub const MAX_HOOKS: usize = 4;
/// Events waiting for a hook slot.
pub const HOOK_QUEUE: usize = 256;
/// Events kept in full in one mail (the rest are only counted).
pub const MAIL_EVENTS: usize = 50;
/// A delivery attempt still going after this long is given up.
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(60);
/// A mail not delivered this long after its first attempt is dropped.
pub const MAIL_GIVE_UP: Duration = Duration::from_secs(3600);
const RETRY_BASE: Duration = Duration::from_secs(60);
const RETRY_CAP: Duration = Duration::from_secs(15 * 60);

/// One mail for the driver to compose and deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub spec: EmailSpec,
    /// The events in full, oldest first (at most `MAIL_EVENTS`).
    pub events: Vec<Transition>,
    /// Every event of the mail counted by (instance, kind), including those not kept in full.
    pub counts: Vec<(String, String, u32)>,
    /// Instances the mail is about, for the output tails.
    pub instances: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Notifier {
    sinks: Vec<Sink>,
    next_id: u64,
    /// In the order they started (at most `MAX_HOOKS`): time-outs found together are handled
    /// in the same order every run, as a hash map's order would not be.
    hooks: Vec<(Pid, RunningHook)>,
    /// Hooks asked for but not spawned yet (id → deadline is set on spawn).
    hooks_starting: usize,
    hook_queue: VecDeque<(usize, Transition)>,
    hooks_dropped: u64,
    /// The id the next new sink gets. Actions and inputs name sinks by id, not by position,
    /// so a reload that adds, removes or reorders `notify:` entries cannot misdirect them.
    next_sink: usize,
    /// Mail deliveries through sendmail children, by pid: (sink id, delivery id).
    mail_pids: HashMap<Pid, (usize, u64)>,
}

#[derive(Debug)]
struct Sink {
    id: usize,
    spec: NotifySpec,
    /// Email: gathered events for the next mail.
    gathered: Vec<Transition>,
    counts: BTreeMap<(String, String), u32>,
    /// Email: when the window after the last mail closes.
    window_ends: Option<Instant>,
    /// Email: the mail being delivered or waiting for a retry.
    delivery: Option<Delivery>,
}

#[derive(Debug)]
struct Delivery {
    id: u64,
    mail: Mail,
    first_attempt: Instant,
    attempts: u32,
    /// In flight until this time; `None` while waiting for `retry_at`.
    in_flight_until: Option<Instant>,
    retry_at: Option<Instant>,
}

#[derive(Debug)]
struct RunningHook {
    kill_at: Option<Instant>,
    name: String,
}

impl Notifier {
    pub(crate) fn new(specs: &[NotifySpec]) -> Notifier {
        let mut notifier = Notifier::default();
        notifier.configure(specs);
        notifier
    }

    /// A reload's `notify:` list: sinks whose spec is unchanged keep their state.
    pub(crate) fn configure(&mut self, specs: &[NotifySpec]) {
        let mut old = std::mem::take(&mut self.sinks);
        for spec in specs {
            let kept = old.iter().position(|sink| sink.spec == *spec).map(|index| old.remove(index));
            let id = self.next_sink;
            if kept.is_none() {
                self.next_sink += 1;
            }
            self.sinks.push(kept.unwrap_or_else(|| Sink {
                id,
                spec: spec.clone(),
                gathered: Vec::new(),
                counts: BTreeMap::new(),
                window_ends: None,
                delivery: None,
            }));
        }
        // Events waiting for a hook that is no longer configured are dropped.
        let ids: Vec<usize> = self.sinks.iter().map(|sink| sink.id).collect();
        self.hook_queue.retain(|(sink, _)| ids.contains(sink));
    }

    /// The position of sink `id`, if it is still configured.
    fn index_of(&self, id: usize) -> Option<usize> {
        self.sinks.iter().position(|sink| sink.id == id)
    }

    /// The earliest time something is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let sinks = self.sinks.iter().flat_map(|sink| {
            let delivery = sink.delivery.as_ref().and_then(|delivery| delivery.in_flight_until.or(delivery.retry_at));
            let window = sink.window_ends.filter(|_| !sink.gathered.is_empty() && sink.delivery.is_none());
            [delivery, window]
        });
        sinks.chain(self.hooks.iter().map(|(_, hook)| hook.kill_at)).flatten().min()
    }

    /// A transition happened: report it where `notify:` says.
    pub(crate) fn observe(&mut self, now: Instant, event: &Transition, actions: &mut VecDeque<Action>) {
        for index in 0..self.sinks.len() {
            let sink = &self.sinks[index];
            let wanted = event.matches(&sink.spec.on)
                && (sink.spec.programs.is_empty() || sink.spec.programs.contains(&event.program));
            if !wanted {
                continue;
            }
            match &sink.spec.sink {
                NotifySink::Email(_) => self.gather(now, index, event.clone(), actions),
                NotifySink::Exec(_) => self.hook(index, event.clone(), actions),
            }
        }
    }

    /// Fires what is due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant, actions: &mut VecDeque<Action>) {
        for index in 0..self.sinks.len() {
            let sink = &self.sinks[index];
            match &sink.delivery {
                Some(delivery) if delivery.in_flight_until.is_some_and(|until| until <= now) => {
                    let id = delivery.id;
                    // A sendmail child is killed; an SMTP connection is closed.
                    let sink_id = sink.id;
                    let child = self.mail_pids.iter().find(|(_, owner)| **owner == (sink_id, id)).map(|(pid, _)| *pid);
                    match child {
                        Some(pid) => {
                            self.mail_pids.remove(&pid);
                            actions.push_back(Action::Kill { pid, signal: Signal::KILL, group: true });
                        }
                        None => actions.push_back(Action::CancelMail { id }),
                    }
                    let error = format!("no answer within {}s", MAIL_TIMEOUT.as_secs());
                    self.mail_done(now, sink_id, id, Err(error), actions);
                }
                Some(delivery) if delivery.retry_at.is_some_and(|at| at <= now) => self.attempt(now, index, actions),
                Some(_) => {}
                None if sink.window_ends.is_some_and(|ends| ends <= now) && !sink.gathered.is_empty() => {
                    self.send_gathered(now, index, actions);
                }
                None => {}
            }
        }
        for (pid, hook) in self.hooks.iter_mut() {
            if hook.kill_at.is_some_and(|at| at <= now) {
                hook.kill_at = None;
                actions.push_back(Action::Log {
                    level: log::Level::Warn,
                    message: format!("notify hook {} (pid {pid}) ran past its timeout; killing it", hook.name),
                });
                actions.push_back(Action::Kill { pid: *pid, signal: Signal::KILL, group: true });
            }
        }
    }

    /// The driver's report on a mail delivery (`Input::MailResult`).
    pub(crate) fn mail_done(
        &mut self,
        now: Instant,
        sink: usize,
        id: u64,
        result: Result<(), String>,
        actions: &mut VecDeque<Action>,
    ) {
        let Some(index) = self.index_of(sink) else { return };
        let state = &mut self.sinks[index];
        let Some(delivery) = state.delivery.as_mut().filter(|delivery| delivery.id == id) else { return };
        let to = mail_to(&delivery.mail);
        match result {
            Ok(()) => {
                actions.push_back(Action::Log {
                    level: log::Level::Info,
                    message: format!("notify: mail to {to} sent ({} events)", count(&delivery.mail)),
                });
                state.delivery = None;
                state.window_ends = Some(now + digest(&state.spec));
            }
            Err(error) if now.saturating_duration_since(delivery.first_attempt) >= MAIL_GIVE_UP => {
                actions.push_back(Action::Log {
                    level: log::Level::Error,
                    message: format!(
                        "notify: mail to {to} dropped after {} attempts in an hour; last error: {error}",
                        delivery.attempts
                    ),
                });
                state.delivery = None;
                state.window_ends = Some(now + digest(&state.spec));
            }
            Err(error) => {
                let shift = delivery.attempts.saturating_sub(1).min(8);
                let wait = RETRY_BASE.saturating_mul(1 << shift).min(RETRY_CAP);
                actions.push_back(Action::Log {
                    level: log::Level::Warn,
                    message: format!("notify: mail to {to} failed: {error}; retrying in {}s", wait.as_secs()),
                });
                delivery.in_flight_until = None;
                delivery.retry_at = Some(now + wait);
            }
        }
    }

    /// A sendmail child for delivery `id` runs as `pid`.
    pub(crate) fn mail_spawned(&mut self, sink: usize, id: u64, pid: Pid) {
        self.mail_pids.insert(pid, (sink, id));
    }

    /// A hook asked for with `Action::RunHook` runs as `pid` (or could not be started).
    pub(crate) fn hook_spawned(
        &mut self,
        now: Instant,
        sink: usize,
        result: Result<Pid, String>,
        actions: &mut VecDeque<Action>,
    ) {
        self.hooks_starting = self.hooks_starting.saturating_sub(1);
        let name = self.hook_name(sink);
        match result {
            Ok(pid) => {
                let timeout = match self.index_of(sink).map(|index| &self.sinks[index].spec.sink) {
                    Some(NotifySink::Exec(exec)) => exec.timeout,
                    _ => crate::spec::defaults::HOOK_TIMEOUT,
                };
                self.hooks.push((pid, RunningHook { kill_at: Some(now + timeout), name }));
            }
            Err(error) => {
                actions.push_back(Action::Log {
                    level: log::Level::Error,
                    message: format!("notify hook {name}: cannot start: {error}"),
                });
                self.next_hook(actions);
            }
        }
    }

    /// A process exited: if it was a hook or a sendmail child, this is its result. Returns
    /// whether it was one.
    pub(crate) fn exited(
        &mut self,
        now: Instant,
        pid: Pid,
        status: ExitStatus,
        actions: &mut VecDeque<Action>,
    ) -> bool {
        if let Some(index) = self.hooks.iter().position(|(running, _)| *running == pid) {
            let (_, hook) = self.hooks.remove(index);
            if status != ExitStatus::Exited(0) {
                actions.push_back(Action::Log {
                    level: log::Level::Warn,
                    message: format!("notify hook {} (pid {pid}) failed: {status}", hook.name),
                });
            }
            self.next_hook(actions);
            return true;
        }
        if let Some((sink, id)) = self.mail_pids.remove(&pid) {
            let result = if status == ExitStatus::Exited(0) { Ok(()) } else { Err(format!("sendmail: {status}")) };
            self.mail_done(now, sink, id, result, actions);
            return true;
        }
        false
    }

    /// The hook's program, for messages (`sink` is an id).
    fn hook_name(&self, sink: usize) -> String {
        match self.index_of(sink).map(|index| &self.sinks[index].spec.sink) {
            Some(NotifySink::Exec(ExecSpec { argv, .. })) => argv.first().cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    fn gather(&mut self, now: Instant, index: usize, event: Transition, actions: &mut VecDeque<Action>) {
        let sink = &mut self.sinks[index];
        *sink.counts.entry((event.instance.clone(), event.kind.as_str().to_string())).or_insert(0) += 1;
        if sink.gathered.len() < MAIL_EVENTS {
            sink.gathered.push(event);
        }
        let window_open = sink.window_ends.is_some_and(|ends| ends > now);
        if sink.delivery.is_none() && !window_open {
            self.send_gathered(now, index, actions);
        }
    }

    fn send_gathered(&mut self, now: Instant, index: usize, actions: &mut VecDeque<Action>) {
        let sink = &mut self.sinks[index];
        let NotifySink::Email(spec) = &sink.spec.sink else { return };
        let events = std::mem::take(&mut sink.gathered);
        let counts: Vec<(String, String, u32)> =
            std::mem::take(&mut sink.counts).into_iter().map(|((instance, kind), n)| (instance, kind, n)).collect();
        let mut instances: Vec<String> = counts.iter().map(|(instance, _, _)| instance.clone()).collect();
        instances.dedup();
        let mail = Mail { spec: spec.clone(), events, counts, instances };
        self.next_id += 1;
        sink.delivery = Some(Delivery {
            id: self.next_id,
            mail,
            first_attempt: now,
            attempts: 0,
            in_flight_until: None,
            retry_at: None,
        });
        self.attempt(now, index, actions);
    }

    fn attempt(&mut self, now: Instant, index: usize, actions: &mut VecDeque<Action>) {
        let Some(delivery) = self.sinks[index].delivery.as_mut() else { return };
        delivery.attempts += 1;
        delivery.retry_at = None;
        delivery.in_flight_until = Some(now + MAIL_TIMEOUT);
        let sink = self.sinks[index].id;
        let Some(delivery) = self.sinks[index].delivery.as_ref() else { return };
        actions.push_back(Action::Mail { sink, id: delivery.id, mail: delivery.mail.clone() });
    }

    fn hook(&mut self, index: usize, event: Transition, actions: &mut VecDeque<Action>) {
        if self.hooks.len() + self.hooks_starting < MAX_HOOKS {
            self.run_hook(index, event, actions);
        } else if self.hook_queue.len() < HOOK_QUEUE {
            self.hook_queue.push_back((self.sinks[index].id, event));
        } else {
            self.hooks_dropped += 1;
            actions.push_back(Action::Log {
                level: log::Level::Warn,
                message: format!(
                    "notify hook {}: {} hooks running and {HOOK_QUEUE} waiting; event {} of {} dropped ({} dropped so far)",
                    self.hook_name(self.sinks[index].id),
                    MAX_HOOKS,
                    event.seq,
                    event.instance,
                    self.hooks_dropped
                ),
            });
        }
    }

    fn next_hook(&mut self, actions: &mut VecDeque<Action>) {
        while self.hooks.len() + self.hooks_starting < MAX_HOOKS {
            let Some((sink, event)) = self.hook_queue.pop_front() else { return };
            if let Some(index) = self.index_of(sink) {
                self.run_hook(index, event, actions);
            }
        }
    }

    fn run_hook(&mut self, index: usize, event: Transition, actions: &mut VecDeque<Action>) {
        let Some(sink) = self.sinks.get(index) else { return };
        let NotifySink::Exec(exec) = &sink.spec.sink else { return };
        self.hooks_starting += 1;
        actions.push_back(Action::RunHook { sink: sink.id, argv: exec.argv.clone(), event });
    }
}

fn digest(spec: &NotifySpec) -> Duration {
    match &spec.sink {
        NotifySink::Email(email) => email.digest,
        NotifySink::Exec(_) => Duration::ZERO,
    }
}

fn mail_to(mail: &Mail) -> String {
    mail.spec.to.join(", ")
}

fn count(mail: &Mail) -> u32 {
    mail.counts.iter().map(|(_, _, n)| n).sum()
}
