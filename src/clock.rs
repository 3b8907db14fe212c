//! Injected time. The core never reads the system clock except through [`SystemClock`].

use chrono::{DateTime, Duration, Utc};
use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time. Inject a [`ManualClock`] in tests to drive time by hand.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; safe to share between threads.
///
/// ```
/// use touchpoint::clock::{Clock, ManualClock};
/// use chrono::{Duration, TimeZone, Utc};
/// let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap());
/// clock.advance(Duration::hours(25));
/// assert_eq!(clock.now(), Utc.with_ymd_and_hms(2026, 1, 2, 10, 0, 0).unwrap());
/// ```
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock showing `start` (truncated to microseconds).
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock { micros: AtomicI64::new(start.timestamp_micros()) }
    }

    /// Sets the time.
    pub fn set(&self, to: DateTime<Utc>) {
        self.micros.store(to.timestamp_micros(), Ordering::SeqCst);
    }

    /// Moves the time by `by` (which may be negative).
    pub fn advance(&self, by: Duration) {
        let delta = by.num_microseconds().unwrap_or(i64::MAX);
        self.micros.fetch_add(delta, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst)).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}
