//! `ctl events`: the last transitions, and the clients following new ones.
//!
//! Fed only from the core's `Action::Transition` records; nothing here reads a log line. The
//! ring is bounded (`RING`); a follower is a control connection marked as following, so the
//! control server drops it when it falls behind (as `tail -f` followers), and the loop never
//! waits for it.

use std::collections::VecDeque;

use crate::core::{ConnId, Transition};

/// Transitions kept for `ctl events` without `-f`.
pub const RING: usize = 1000;

#[derive(Debug, Default)]
pub struct EventRing {
    recent: VecDeque<Transition>,
    /// Following connections and the targets each asked for (empty: all).
    followers: Vec<(ConnId, Vec<String>)>,
}

impl EventRing {
    /// Keeps `event`, dropping the oldest past `RING`; returns the followers it is for.
    pub fn push(&mut self, event: Transition) -> Vec<ConnId> {
        let to: Vec<ConnId> =
            self.followers.iter().filter(|(_, targets)| matches(&event, targets)).map(|(conn, _)| *conn).collect();
        if self.recent.len() == RING {
            self.recent.pop_front();
        }
        self.recent.push_back(event);
        to
    }

    /// The latest event, as kept.
    #[must_use]
    pub fn last(&self) -> Option<&Transition> {
        self.recent.back()
    }

    /// The kept events of `targets` (all when empty), oldest first.
    pub fn recent<'a>(&'a self, targets: &'a [String]) -> impl Iterator<Item = &'a Transition> + 'a {
        self.recent.iter().filter(move |event| matches(event, targets))
    }

    pub fn follow(&mut self, conn: ConnId, targets: Vec<String>) {
        self.followers.push((conn, targets));
    }

    /// A connection closed: it follows nothing any more.
    pub fn closed(&mut self, conn: ConnId) {
        self.followers.retain(|(follower, _)| *follower != conn);
    }
}

/// Whether `event` is one of `targets`: a program name, `name:N`, or `all` (empty: all).
fn matches(event: &Transition, targets: &[String]) -> bool {
    targets.is_empty()
        || targets.iter().any(|target| target == "all" || *target == event.program || *target == event.instance)
}
