//! One timer structure for every kind of deadline.
//!
//! A min-heap of `(deadline, key)`. Owners never cancel: an entry is a hint that `key` may have
//! something due at `deadline`, and the owner re-checks its own state when the entry pops. The
//! supervisor drops stale entries from the top after every change
//! (`Supervisor::prune_timers`), so the earliest entry is always a live deadline and an idle
//! daemon never wakes for one that no longer matters. Cost is O(log n) per armed deadline and
//! nothing at all for idle instances, which arm none.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::types::{ConnId, InstanceId};

/// Who owns a deadline. New kinds of deadline (health checks, schedules, monitor intervals) are
/// new variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKey {
    /// An instance's state deadline (starttime, stoptime, backoff).
    Instance(InstanceId),
    /// A `ctl wait` request's timeout.
    Waiter(ConnId),
    /// An instance's probe: pid-file read, health check or its timeout, end of a snooze.
    Probe(InstanceId),
    /// A scheduled instance's timetable: the next fire time, or the run's timeout.
    Schedule(InstanceId),
    /// The notifier: a digest window's end, a mail retry or timeout, a hook's timeout.
    Notifier,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
}

impl Timers {
    /// Arms `key` at `deadline`. Arming the same key twice is harmless.
    pub fn arm(&mut self, deadline: Instant, key: TimerKey) {
        self.heap.push(Reverse((deadline, key)));
    }

    /// The earliest armed deadline, possibly stale.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// The earliest entry, possibly stale.
    #[must_use]
    pub fn peek(&self) -> Option<(Instant, TimerKey)> {
        self.heap.peek().map(|Reverse(entry)| *entry)
    }

    /// Drops the earliest entry.
    pub fn pop(&mut self) {
        self.heap.pop();
    }

    /// Removes and returns the keys whose deadline is at or before `now`, earliest first,
    /// without duplicates.
    pub fn pop_due(&mut self, now: Instant) -> Vec<TimerKey> {
        let mut due = Vec::new();
        while let Some(Reverse((deadline, key))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if !due.contains(&key) {
                due.push(key);
            }
        }
        due
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
