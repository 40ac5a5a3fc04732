//! The one clock. Everything that asks "what time is it?" (policy input,
//! grant and token expiry, consents, the monitor's minutes, audit
//! timestamps) asks a [`Clock`] it was handed, never the system directly,
//! so tests can pin the date: a test that reads the wall clock passes or
//! fails depending on the day it runs (a policy that denies Fridays once
//! turned CI red every Friday).
//!
//! [`SystemClock`] is the real one; [`ManualClock`] is set and moved by
//! hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const NANOS: i64 = 1_000_000_000;

/// Wall-clock time, as the daemon sees it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> i64 {
        self.now_ns().div_euclid(NANOS)
    }
}

/// A clock shared by every part of the daemon.
pub type SharedClock = Arc<dyn Clock>;

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The real clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `secs` since the epoch.
    pub fn at(secs: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(secs.saturating_mul(NANOS))))
    }

    /// Moves the clock forward (or back, with a negative step).
    pub fn advance(&self, secs: i64) {
        self.0
            .fetch_add(secs.saturating_mul(NANOS), Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, secs: i64) {
        self.0.store(secs.saturating_mul(NANOS), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Fixed instants for tests: every test that needs a date takes it from
/// here, so none depends on the day, hour or time zone it runs in.
pub mod fixed {
    /// Monday 2026-03-02 09:00:00 UTC.
    pub const MONDAY_MORNING: i64 = 1_772_442_000;
    /// Friday 2026-11-27 23:59:00 UTC: the end of a Friday, a minute
    /// before the weekend.
    pub const FRIDAY_NIGHT: i64 = 1_795_823_940;

    /// A manual clock showing [`MONDAY_MORNING`].
    pub fn clock() -> std::sync::Arc<super::ManualClock> {
        super::ManualClock::at(MONDAY_MORNING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::at(fixed::MONDAY_MORNING);
        assert_eq!(c.now(), fixed::MONDAY_MORNING);
        c.advance(61);
        assert_eq!(c.now(), fixed::MONDAY_MORNING + 61);
        c.set(0);
        assert_eq!((c.now(), c.now_ns()), (0, 0));
        c.set(-1);
        assert_eq!(c.now(), -1, "before the epoch rounds down");
    }
}
