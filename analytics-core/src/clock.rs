//! Time, injected.
//!
//! Logic never reads the wall clock directly: it asks a [`Clock`]. Production code uses
//! [`SystemClock`]; tests drive a [`ManualClock`] so TTLs, windows and breakers can be
//! exercised without sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
///
/// # Behavior
/// `now` must never go backwards for a given clock instance: durations are computed as
/// differences between two readings and are clamped at zero, but TTL and breaker logic assumes
/// monotonic progress.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, made monotonic: a reading never precedes an earlier one even if the system
/// clock is stepped back.
#[derive(Debug, Default)]
pub struct SystemClock {
    last_micros: AtomicI64,
}

impl SystemClock {
    /// A new system clock.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let wall = Utc::now().timestamp_micros();
        let previous = self.last_micros.fetch_max(wall, Ordering::Relaxed);
        DateTime::from_timestamp_micros(wall.max(previous)).unwrap_or_else(Utc::now)
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start` (truncated to microseconds).
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Sets the clock to `to`. Moving backwards is allowed for tests that need it, but breaks
    /// the [`Clock`] contract for anything already holding readings.
    pub fn set(&self, to: DateTime<Utc>) {
        self.micros.store(to.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst))
            .expect("ManualClock holds a representable instant")
    }
}

/// The non-negative duration from `earlier` to `later`; zero if `later` precedes `earlier`.
pub fn elapsed(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}

/// `Duration` → chrono's `TimeDelta`, saturating instead of failing for absurd durations.
pub fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));
        let shared = clock.clone();
        shared.advance(Duration::from_millis(500));
        assert_eq!(clock.now(), start + TimeDelta::milliseconds(90_500));
    }

    #[test]
    fn system_clock_never_goes_backwards() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }

    #[test]
    fn elapsed_clamps_at_zero() {
        let t = DateTime::from_timestamp(10, 0).unwrap();
        assert_eq!(elapsed(t, t - TimeDelta::seconds(5)), Duration::ZERO);
        assert_eq!(elapsed(t, t + TimeDelta::seconds(5)), Duration::from_secs(5));
    }
}
