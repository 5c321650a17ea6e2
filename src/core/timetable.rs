//! One timetable per instance of a scheduled program: its next fire time, the timeout of the run
//! in progress, and the record of the last run.
//!
//! Fire times come from the wall clock (UTC), never from adding intervals, so nothing drifts: the
//! schedule (`crate::schedule`) gives the next wall-clock time, and the timetable turns it into a
//! monotonic deadline from the clocks of the moment (`Now`). When the wall clock is stepped, the
//! supervisor asks every timetable to re-time itself from the new wall-clock time ([`Timetable::retime`]).
//! Missed fire times (the daemon was down, or the clock jumped forward over them) are not caught
//! up, as with cron.
//!
//! The timetable's one deadline (the next fire time or the run's timeout, whichever is first) is
//! armed as `TimerKey::Schedule`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::schedule::UnixSecs;
use crate::spec::ScheduleSpec;

/// How far back a step of the wall clock may go and still not repeat fire times already run.
pub(crate) const REPEAT_GUARD: Duration = Duration::from_secs(3 * 3600);

/// An instance's timetable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timetable {
    /// The next fire time; `None` while the schedule is off (stopped, or not scheduled).
    pub next: Option<Fire>,
    /// The last fire time acted on: the next one is after it, even if the monotonic deadline
    /// came a moment before the wall clock got there.
    last_fire: Option<UnixSecs>,
    /// When the run in progress must end (`timeout`).
    pub run_deadline: Option<Instant>,
    /// The run in progress: when it began, on both clocks.
    pub run: Option<(SystemTime, Instant)>,
    /// How the last run went.
    pub last: Option<RunRecord>,
}

/// A fire time on both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fire {
    pub wall: UnixSecs,
    pub at: Instant,
}

/// The end of a run, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunRecord {
    pub started: SystemTime,
    pub duration: Duration,
    /// `exited with 0`, `timed out after 2h; stopped (SIGTERM)`, `cannot start: ...`.
    pub result: String,
}

impl Timetable {
    /// The one deadline the timetable waits for, if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [self.next.map(|fire| fire.at), self.run_deadline].into_iter().flatten().min()
    }

    /// Whether the next fire time has come.
    pub(crate) fn fire_due(&self, now: Instant) -> bool {
        self.next.is_some_and(|fire| fire.at <= now)
    }

    /// Sets the next fire time from the wall-clock time `wall` (at monotonic `now`), unless one
    /// is set already.
    pub(crate) fn arm(&mut self, spec: &ScheduleSpec, now: Instant, wall: SystemTime) {
        if self.next.is_none() {
            self.next = next_fire(spec, self.last_fire, now, wall);
        }
    }

    /// The fire time came: remember it, and set the one after it.
    pub(crate) fn advance(&mut self, spec: &ScheduleSpec, now: Instant, wall: SystemTime) {
        if let Some(fire) = self.next.take() {
            self.last_fire = Some(fire.wall);
        }
        self.next = next_fire(spec, self.last_fire, now, wall);
    }

    /// The wall clock was stepped: fire times are computed again from the new time. Times
    /// skipped over are not caught up; after a step back of more than `REPEAT_GUARD`, times
    /// already run come again.
    /// A step back of at most `REPEAT_GUARD` keeps the last fire time as a floor, so a time
    /// just run is not run again (as Vixie cron does for small steps).
    pub(crate) fn retime(&mut self, spec: &ScheduleSpec, now: Instant, wall: SystemTime, back_by: Option<Duration>) {
        if back_by.is_none_or(|back| back > REPEAT_GUARD) {
            self.last_fire = None;
        }
        if self.next.is_some() {
            self.next = next_fire(spec, self.last_fire, now, wall);
        }
    }

    /// The schedule is off (`ctl stop`): no fire time until it is on again.
    pub(crate) fn disarm(&mut self) {
        self.next = None;
    }

    /// A run began (its process was spawned).
    pub(crate) fn begin_run(&mut self, spec: &ScheduleSpec, now: Instant, wall: SystemTime) {
        self.run = Some((wall, now));
        self.run_deadline = spec.timeout.map(|timeout| now + timeout);
    }

    /// The run ended as `result` (a run that never began counts as beginning and ending at
    /// `now`); returns how long it took.
    pub(crate) fn end_run(&mut self, now: Instant, wall: SystemTime, result: String) -> Duration {
        self.run_deadline = None;
        let (started, duration) = match self.run.take() {
            Some((started, mono)) => (started, now.saturating_duration_since(mono)),
            None => (wall, Duration::ZERO),
        };
        self.last = Some(RunRecord { started, duration, result });
        duration
    }
}

/// Whole seconds since the epoch, rounded down (0 before it).
pub(crate) fn unix_secs(wall: SystemTime) -> UnixSecs {
    wall.duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

/// The wall-clock time of `secs`.
pub(crate) fn system_time(secs: UnixSecs) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// The first fire time after both the wall-clock time and the last fire time acted on, with its
/// monotonic deadline.
fn next_fire(spec: &ScheduleSpec, last_fire: Option<UnixSecs>, now: Instant, wall: SystemTime) -> Option<Fire> {
    let after = unix_secs(wall).max(last_fire.unwrap_or(UnixSecs::MIN));
    let fire = spec.when.next_after(after)?;
    // `wall` may be mid-second: the deadline is the exact start of the fire time's second.
    let until = system_time(fire).duration_since(wall).unwrap_or(Duration::ZERO);
    Some(Fire { wall: fire, at: now + until })
}
