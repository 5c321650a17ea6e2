//! Start and stop order: `depends_on`.
//!
//! - A start (autostart, `ctl start`) goes through [`Supervisor::start_gated`]: with its
//!   program's dependencies met the instance starts; otherwise it waits in `Waiting` with the
//!   reason, and [`Supervisor::release_waiting`] starts it once they are. A dependency that
//!   failed (FATAL, or a `completed` one that exited unexpectedly) leaves it `Waiting`,
//!   blocked, with that reason.
//! - `ctl start web` also starts what `web` needs and is not up (`start_dependencies`).
//! - Stops that must be ordered (shutdown, a stop of several programs, a restart with
//!   `restart: true` dependents) go through a queue: an instance is stopped once no dependent
//!   that is being stopped is still up ([`Supervisor::release_stops`]). Each level waits for
//!   the one above to be down; stoptime still bounds each instance.
//! - Crash restarts are not gated: a program that ran keeps running whatever its dependencies
//!   do, as under systemd's `After=` without `BindsTo=`.
//!
//! Programs with no `depends_on` and no dependents take none of these paths' extra work.

use std::collections::HashSet;
use std::time::Instant;

use super::instance::{Event, State};
use super::{InstanceId, Supervisor};
use crate::spec::{Condition, Dependency};

/// How far a program's dependencies are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DepCheck {
    Met,
    /// Not yet: what is missing.
    Waiting(String),
    /// A dependency failed and will not get there by itself.
    Blocked(String),
}

impl Supervisor {
    /// Whether one dependency has reached its condition.
    fn check_dependency(&self, dependency: &Dependency) -> DepCheck {
        let Some(program) = self.programs.get(&dependency.program) else {
            return DepCheck::Blocked(format!("{} is not in the config", dependency.program));
        };
        let condition = dependency.condition;
        let mut met = true;
        for id in &program.instances {
            let Some(instance) = self.instances.get(id) else { continue };
            let state = &instance.state;
            if let State::Fatal { reason } = state {
                return DepCheck::Blocked(format!("{} is FATAL ({reason})", instance.name));
            }
            if instance.held_stopped && matches!(state, State::Stopped) {
                return DepCheck::Blocked(format!("{} is held down by `ctl stop`", instance.name));
            }
            if condition != Condition::Completed && matches!(state, State::Exited { .. }) {
                return DepCheck::Blocked(format!("{} exited and will not be restarted", instance.name));
            }
            let reached = match condition {
                // A scheduled program between runs is where it should be: started and ready.
                Condition::Started => matches!(
                    state,
                    State::Starting { .. }
                        | State::WaitingPidFile { .. }
                        | State::Running { .. }
                        | State::Paused { .. }
                        | State::Scheduled
                ),
                Condition::Ready => matches!(state, State::Running { .. } | State::Scheduled),
                // `healthy` of a program without a health check means ready.
                Condition::Healthy => {
                    matches!(state, State::Running { .. } | State::Scheduled)
                        && instance
                            .probe
                            .health
                            .as_ref()
                            .is_none_or(|health| health.state == crate::core::HealthState::Healthy)
                }
                Condition::Completed => match state {
                    State::Exited { expected: true, .. } => true,
                    // Its last run ended with an expected exit code.
                    State::Scheduled => {
                        instance.timetable.last.is_some()
                            && matches!(instance.last_exit, Some(crate::core::ExitStatus::Exited(code)) if instance.spec.exitcodes.contains(&code))
                    }
                    State::Exited { expected: false, status } => {
                        return DepCheck::Blocked(format!(
                            "{} did not complete: it exited with {status}",
                            instance.name
                        ));
                    }
                    _ => false,
                },
            };
            met &= reached;
        }
        if met {
            DepCheck::Met
        } else {
            DepCheck::Waiting(format!("waiting for {}: {}", dependency.program, condition.as_str()))
        }
    }

    /// Whether `program`'s dependencies are all met, and if not, why.
    pub(crate) fn dependencies_of(&self, program: &str) -> DepCheck {
        let Some(spec) = self.programs.get(program).map(|program| program.spec.clone()) else {
            return DepCheck::Met;
        };
        let mut waiting = Vec::new();
        let mut blocked = Vec::new();
        for dependency in &spec.depends_on {
            match self.check_dependency(dependency) {
                DepCheck::Met => {}
                DepCheck::Waiting(reason) => waiting.push(reason),
                DepCheck::Blocked(reason) => blocked.push(reason),
            }
        }
        if !blocked.is_empty() {
            DepCheck::Blocked(blocked.join("; "))
        } else if !waiting.is_empty() {
            DepCheck::Waiting(waiting.join("; "))
        } else {
            DepCheck::Met
        }
    }

    /// Starts an instance if its program's dependencies are met, or makes it wait for them.
    pub(crate) fn start_gated(&mut self, now: Instant, id: InstanceId) {
        let Some(program) = self.instances.get(&id).map(|instance| instance.spec.name.clone()) else { return };
        let event = match self.dependencies_of(&program) {
            DepCheck::Met => Event::Start,
            DepCheck::Waiting(reason) => Event::Wait { reason, blocked: false },
            DepCheck::Blocked(reason) => Event::Wait { reason, blocked: true },
        };
        if matches!(event, Event::Wait { .. }) {
            self.waiting.insert(id);
        }
        self.apply(now, id, event);
    }

    /// Starts what `program` needs, transitively, that is not up or done: `ctl start web`
    /// starts `db` too. Dependencies held down by `ctl stop` stay down (and `web` waits).
    pub(crate) fn start_dependencies(&mut self, now: Instant, program: &str, visited: &mut HashSet<String>) {
        if !visited.insert(program.to_string()) {
            return;
        }
        let Some(spec) = self.programs.get(program).map(|program| program.spec.clone()) else { return };
        for dependency in &spec.depends_on {
            self.start_dependencies(now, &dependency.program, visited);
            if self.check_dependency(dependency) == DepCheck::Met {
                continue;
            }
            let ids = self.programs.get(&dependency.program).map(|p| p.instances.clone()).unwrap_or_default();
            for id in ids {
                let Some(instance) = self.instances.get(&id) else { continue };
                let idle = matches!(instance.state, State::Stopped | State::Exited { .. } | State::Fatal { .. });
                if idle && !instance.held_stopped {
                    let name = instance.name.clone();
                    self.log(log::Level::Info, format!("{name}: starting it, {program} needs it"));
                    self.start_gated(now, id);
                }
            }
        }
    }

    /// Starts the waiting instances whose dependencies are now met, and updates the reason of
    /// the others. Repeats while starts happen (a chain of `started` conditions).
    pub(crate) fn release_waiting(&mut self, now: Instant) {
        if self.waiting.is_empty() || self.shutdown.is_some() {
            return;
        }
        for _ in 0..64 {
            let mut started = false;
            let mut ids: Vec<InstanceId> = self.waiting.iter().copied().collect();
            ids.sort();
            for id in ids {
                let Some(instance) = self.instances.get(&id) else {
                    self.waiting.remove(&id);
                    continue;
                };
                if !matches!(instance.state, State::Waiting { .. }) {
                    self.waiting.remove(&id);
                    continue;
                }
                let program = instance.spec.name.clone();
                let event = match self.dependencies_of(&program) {
                    DepCheck::Met => {
                        self.waiting.remove(&id);
                        started = true;
                        Event::Start
                    }
                    DepCheck::Waiting(reason) => Event::Wait { reason, blocked: false },
                    DepCheck::Blocked(reason) => Event::Wait { reason, blocked: true },
                };
                self.apply(now, id, event);
            }
            if !started {
                return;
            }
        }
    }

    /// Queues `event` (a stop, restart or removal) for `id`, to be applied once every
    /// dependent that is being stopped too is down.
    pub(crate) fn queue_stop(&mut self, id: InstanceId, event: Event) {
        if self.stop_queued.insert(id) {
            self.stop_queue.push((id, event));
        }
    }

    /// Whether some instance of a program that depends on `program` is being stopped (queued,
    /// or stopping) and not down yet.
    fn dependent_being_stopped(&self, program: &str) -> bool {
        let Some(dependents) = self.dependents.get(program) else { return false };
        dependents.iter().any(|dependent| {
            self.programs.get(dependent).is_some_and(|dependent| {
                dependent.instances.iter().any(|id| {
                    let queued = self.stop_queued.contains(id);
                    let stopping =
                        self.instances.get(id).is_some_and(|instance| matches!(instance.state, State::Stopping { .. }));
                    (queued && self.instances.get(id).is_some_and(|instance| instance.is_live())) || stopping
                })
            })
        })
    }

    /// Applies the queued stops whose dependents are down, level by level.
    pub(crate) fn release_stops(&mut self, now: Instant) {
        for _ in 0..64 {
            let ready: Vec<(InstanceId, Event)> = self
                .stop_queue
                .iter()
                .filter(|(id, _)| {
                    self.instances.get(id).is_none_or(|instance| !self.dependent_being_stopped(&instance.spec.name))
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                return;
            }
            for (id, _) in &ready {
                self.stop_queued.remove(id);
            }
            let stop_queued = &self.stop_queued;
            self.stop_queue.retain(|(id, _)| stop_queued.contains(id));
            for (id, event) in ready {
                self.apply(now, id, event);
            }
        }
    }

    /// Instances stopped for a `restart: true` dependency, started again (through the gate)
    /// once they are down.
    pub(crate) fn restart_dependents_when_down(&mut self, now: Instant) {
        if self.restart_after.is_empty() {
            return;
        }
        let down: Vec<InstanceId> = self
            .restart_after
            .iter()
            .copied()
            .filter(|id| {
                self.instances.get(id).is_none_or(|instance| {
                    matches!(instance.state, State::Stopped | State::Exited { .. } | State::Fatal { .. })
                })
            })
            .collect();
        for id in down {
            self.restart_after.remove(&id);
            let held = self.instances.get(&id).is_some_and(|instance| instance.held_stopped);
            if self.shutdown.is_none() && !held {
                self.start_gated(now, id);
            }
        }
    }

    /// The programs with a `restart: true` dependency on `program`, transitively.
    pub(crate) fn restart_dependents(&self, program: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let mut todo = vec![program.to_string()];
        while let Some(current) = todo.pop() {
            for (name, candidate) in &self.programs {
                let bound = candidate
                    .spec
                    .depends_on
                    .iter()
                    .any(|dependency| dependency.program == current && dependency.restart);
                if bound && !found.contains(name) {
                    found.push(name.clone());
                    todo.push(name.clone());
                }
            }
        }
        found
    }

    /// Rebuilds the reverse dependency map (program → programs that depend on it).
    pub(crate) fn index_dependents(&mut self) {
        self.dependents.clear();
        for (name, program) in &self.programs {
            for dependency in &program.spec.depends_on {
                self.dependents.entry(dependency.program.clone()).or_default().push(name.clone());
            }
        }
    }
}
