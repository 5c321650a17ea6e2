//! The wall clock in the daemon's `Poll`: wakes the loop at the next wall-clock (UTC) fire time,
//! and at once when the wall clock is set (NTP stepping it, `date -s`, a resume from suspend).
//!
//! Scheduled programs fire at wall-clock times, which the core turns into monotonic deadlines;
//! when the wall clock jumps those deadlines are wrong, and the core must be told. One
//! `CLOCK_REALTIME` timerfd does both jobs: armed with `TFD_TIMER_ABSTIME |
//! TFD_TIMER_CANCEL_ON_SET` for the next fire time, it expires at that wall time (across a
//! suspend too), and a read fails with `ECANCELED` ([`WallEvent::ClockSet`]) once the clock has
//! been set discontinuously. A slewed clock (NTP's gradual corrections) is not a set.
//!
//! The timer watches for sets from [`WallClock::new`] on, whether or not a time is armed (`None`
//! arms it for year 9999). A set is kept by the kernel until it is read or seen by the next
//! arming, so the driver misses none if it reads the clock after acting on an event: drain with
//! [`WallClock::handle_readable`], read the clock, let the core recompute, [`WallClock::arm`] the
//! next time. Arming can itself find that the clock was set (`timerfd_settime` fails with
//! `ECANCELED` then, and the set no longer shows in a read), so `arm` returns a [`WallEvent`] too,
//! to be handled like one from `handle_readable`.
//!
//! I/O plumbing only: what a set or an expiry means is the core's business.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::SystemTime;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::sys::{self, TimerArm, TimerRead};

/// Times `arm` tries again when it keeps finding the clock set (only a clock set over and over
/// gets that far; the timer is armed anyway).
const MAX_ARM_TRIES: usize = 3;

/// A `CLOCK_REALTIME` timerfd armed at absolute wall times, cancelled when the clock is set.
#[derive(Debug)]
pub struct WallClock {
    fd: OwnedFd,
    /// The wall time last asked for (`None`: none).
    at: Option<SystemTime>,
}

/// What woke the loop, or what arming found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WallEvent {
    /// The armed wall time has come. The timer is idle until armed again (still watching for
    /// clock sets).
    Expired,
    /// The wall clock was set: every wall-clock deadline must be computed again. Takes precedence
    /// over an expiry seen in the same drain.
    ClockSet,
    /// Nothing (a spurious wake-up, or an arming that found nothing).
    Nothing,
}

impl WallClock {
    /// Creates the timer, watching for clock sets from now on.
    pub fn new() -> io::Result<WallClock> {
        let fd = sys::timerfd_realtime().map_err(|error| context("timerfd_create CLOCK_REALTIME", error))?;
        let mut clock = WallClock { fd, at: None };
        // A set before anything is scheduled needs no report.
        let _ = clock.arm(None)?;
        Ok(clock)
    }

    /// Registers the timer with `registry` under `token` (readable; [`WallClock::handle_readable`]
    /// reads until `EAGAIN`, as mio is edge-triggered).
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut SourceFd(&self.fd.as_raw_fd()), token, Interest::READABLE)
    }

    /// Arms the timer for the absolute wall time `at` (`None`: no time, still watching for clock
    /// sets), replacing the previous time. A time already passed expires at once. Returns
    /// [`WallEvent::ClockSet`] when the clock turned out to have been set since the last arming
    /// or read, else [`WallEvent::Nothing`].
    #[must_use = "a clock set found while arming is reported only here"]
    pub fn arm(&mut self, at: Option<SystemTime>) -> io::Result<WallEvent> {
        self.at = at;
        let mut found = WallEvent::Nothing;
        for _ in 0..MAX_ARM_TRIES {
            match sys::timerfd_arm_abs_cancel_on_set(self.fd.as_fd(), at) {
                Ok(TimerArm::Armed) => return Ok(found),
                // Armed, but arm again so that the arming that sticks is a clean one.
                Ok(TimerArm::ClockSet) => found = WallEvent::ClockSet,
                Err(error) => return Err(context("timerfd_settime", error)),
            }
        }
        Ok(found)
    }

    /// Reads the timer until `EAGAIN`. After a clock set it is armed again for the same wall time
    /// (the driver then arms whatever the core computes).
    pub fn handle_readable(&mut self) -> WallEvent {
        let mut expired = false;
        let mut clock_set = false;
        loop {
            match sys::timerfd_read(self.fd.as_fd()) {
                Ok(TimerRead::Expired(_)) => expired = true,
                Ok(TimerRead::ClockSet) => clock_set = true,
                Ok(TimerRead::Empty) => break,
                Err(error) => {
                    log::warn!("wall clock timer: read: {error}; carrying on");
                    break;
                }
            }
        }
        if clock_set {
            if let Err(error) = self.arm(self.at) {
                log::warn!("wall clock timer: arming again after a clock set: {error}; carrying on");
            }
            WallEvent::ClockSet
        } else if expired {
            WallEvent::Expired
        } else {
            WallEvent::Nothing
        }
    }
}

fn context(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use mio::{Events, Poll};

    use super::*;

    const WALL: Token = Token(7);

    /// Polls until the timer's token is readable or `limit` passes; returns the event read, or
    /// `None` when nothing came.
    fn wait(poll: &mut Poll, clock: &mut WallClock, limit: Duration) -> Option<WallEvent> {
        let give_up = Instant::now() + limit;
        let mut events = Events::with_capacity(4);
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            poll.poll(&mut events, Some(left)).unwrap();
            if events.iter().any(|event| event.token() == WALL) {
                return Some(clock.handle_readable());
            }
        }
    }

    fn registered() -> (Poll, WallClock) {
        let poll = Poll::new().unwrap();
        let mut clock = WallClock::new().unwrap();
        clock.register(poll.registry(), WALL).unwrap();
        (poll, clock)
    }

    #[test]
    fn an_armed_wall_time_expires_then_and_not_before() {
        let (mut poll, mut clock) = registered();
        let at = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(clock.arm(Some(at)).unwrap(), WallEvent::Nothing);
        assert_eq!(wait(&mut poll, &mut clock, Duration::from_secs(10)), Some(WallEvent::Expired));
        assert!(SystemTime::now() >= at, "woke before the armed time");
        // Drained: nothing more until armed again.
        assert_eq!(clock.handle_readable(), WallEvent::Nothing);
        assert_eq!(wait(&mut poll, &mut clock, Duration::from_millis(300)), None);
    }

    #[test]
    fn times_already_passed_expire_at_once_even_the_epoch() {
        let (mut poll, mut clock) = registered();
        // An all-zero itimerspec would disarm the timer instead of expiring it.
        for at in [UNIX_EPOCH, UNIX_EPOCH - Duration::from_secs(5), SystemTime::now() - Duration::from_secs(60)] {
            assert_eq!(clock.arm(Some(at)).unwrap(), WallEvent::Nothing);
            assert_eq!(wait(&mut poll, &mut clock, Duration::from_secs(10)), Some(WallEvent::Expired), "{at:?}");
        }
    }

    #[test]
    fn arming_again_replaces_the_time_and_none_never_expires() {
        let (mut poll, mut clock) = registered();
        assert_eq!(clock.arm(Some(SystemTime::now() + Duration::from_millis(100))).unwrap(), WallEvent::Nothing);
        assert_eq!(clock.arm(None).unwrap(), WallEvent::Nothing);
        assert_eq!(wait(&mut poll, &mut clock, Duration::from_millis(600)), None);
        // Far past the year 2262 (where nanoseconds since the epoch overflow an i64): no time.
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(clock.arm(Some(far)).unwrap(), WallEvent::Nothing);
        assert_eq!(wait(&mut poll, &mut clock, Duration::from_millis(300)), None);
    }
}
