//! Time, injected.
//!
//! Logic never reads the wall clock directly: it asks a [`Clock`]. Production code uses
//! [`SystemClock`]; tests drive a [`ManualClock`] so TTLs, windows and breakers can be
//! exercised without sleeping.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
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

    /// The current instant in microseconds since the Unix epoch: the same reading as
    /// [`now`](Self::now), for hot paths that only compare and subtract.
    fn now_micros(&self) -> i64 {
        self.now().timestamp_micros()
    }

    /// A reading that may differ from [`now_micros`](Self::now_micros) by up to the clock's
    /// tick, for hot paths that time things at millisecond scale (the circuit breaker's slow
    /// calls and windows), so a caller takes all of its readings from here. The same as
    /// `now_micros` unless the clock keeps a cheaper reading ([`SystemClock::ticking`]). Never
    /// goes backwards.
    fn recent_micros(&self) -> i64 {
        self.now_micros()
    }

    /// The shared reading behind [`recent_micros`](Self::recent_micros), when the clock keeps
    /// one: a hot path that holds it reads the time with one atomic load and no virtual call.
    fn recent_reading(&self) -> Option<RecentReading> {
        None
    }
}

/// A reading of the time that a clock keeps fresh (see [`SystemClock::ticking`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RecentReading(Arc<AtomicI64>);

impl RecentReading {
    /// The reading, in microseconds since the Unix epoch.
    #[inline]
    pub fn micros(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }
}

/// The wall clock, read cheaply and never backwards.
///
/// Reading the OS clock costs 30–40 ns on a typical VM; hot paths (the circuit breaker reads
/// the clock twice per call, the rate limiter once per check) need less. `SystemClock` reads the
/// CPU's time-stamp counter through `quanta` (a few ns) and adds it to an anchor taken from the
/// OS clock. It re-anchors at most once a second so it follows NTP adjustments, and a re-anchor
/// never moves the reading backwards: if the OS clock is behind, the anchor waits for it.
#[derive(Debug)]
pub struct SystemClock {
    ticks: quanta::Clock,
    /// Two anchors, so readers never see one being written; `current` says which is live.
    anchors: [Anchor; 2],
    current: AtomicUsize,
    /// Raw ticks after which the next reader re-anchors.
    reanchor_after: AtomicU64,
    /// [`REANCHOR_EVERY`] in raw ticks (computed once: it takes a division).
    reanchor_ticks: u64,
    /// The reading a ticker thread refreshes, for [`Clock::recent_micros`]; none without one.
    recent: Option<Arc<AtomicI64>>,
}

#[derive(Debug, Default)]
struct Anchor {
    utc_micros: AtomicI64,
    raw: AtomicU64,
}

/// How often the OS clock is consulted again.
const REANCHOR_EVERY: Duration = Duration::from_secs(1);

impl SystemClock {
    /// A new system clock.
    pub fn new() -> Self {
        let ticks = quanta::Clock::new();
        let clock = Self {
            anchors: [Anchor::default(), Anchor::default()],
            current: AtomicUsize::new(0),
            reanchor_after: AtomicU64::new(0),
            reanchor_ticks: 0,
            recent: None,
            ticks,
        };
        let clock = Self {
            reanchor_ticks: clock.ticks_for(REANCHOR_EVERY),
            ..clock
        };
        let raw = clock.ticks.raw();
        clock.anchors[0]
            .utc_micros
            .store(Utc::now().timestamp_micros(), Ordering::Relaxed);
        clock.anchors[0].raw.store(raw, Ordering::Relaxed);
        clock
            .reanchor_after
            .store(raw.saturating_add(clock.reanchor_ticks), Ordering::Release);
        clock
    }

    /// A system clock whose [`Clock::recent_micros`] costs one atomic load: a background thread
    /// (`analytics-clock`) refreshes that reading every `tick`, and ends once the clock is
    /// dropped. Even a time-stamp counter read costs 10–15 ns on a VM, and a circuit breaker
    /// reads the time twice per call; with a 1 ms tick the breaker's slow-call timing is exact
    /// to a millisecond. The thread's wake-ups cost about 1.6% of a core at a 1 ms tick
    /// (measured on an idle server), so this pays only where breakers guard calls of a few
    /// microseconds. If the thread cannot be started, `recent_micros` reads the clock.
    pub fn ticking(tick: Duration) -> Self {
        let clock = Self::new();
        let recent = Arc::new(AtomicI64::new(clock.now_micros()));
        let (weak, source) = (Arc::downgrade(&recent), Self::new());
        let started = std::thread::Builder::new()
            .name("analytics-clock".into())
            .spawn(move || {
                while let Some(recent) = weak.upgrade() {
                    recent.fetch_max(source.now_micros(), Ordering::Release);
                    drop(recent);
                    std::thread::sleep(tick);
                }
            });
        Self {
            recent: started.is_ok().then_some(recent),
            ..clock
        }
    }

    fn ticks_for(&self, duration: Duration) -> u64 {
        // delta_as_nanos(0, n) is n ticks in ns; scale one second of nanoseconds back to ticks.
        let per_second = self.ticks.delta_as_nanos(0, 1_000_000_000).max(1);
        (duration.as_nanos() as u64).saturating_mul(1_000_000_000) / per_second
    }

    fn read(&self, raw: u64) -> i64 {
        let anchor = &self.anchors[self.current.load(Ordering::Acquire)];
        let (base, at) = (
            anchor.utc_micros.load(Ordering::Acquire),
            anchor.raw.load(Ordering::Acquire),
        );
        base + (self.ticks.delta_as_nanos(at, raw.max(at)) / 1000) as i64
    }

    fn reanchor(&self, raw: u64) {
        let due = self.reanchor_after.load(Ordering::Acquire);
        if raw < due {
            return;
        }
        let next = raw.saturating_add(self.reanchor_ticks);
        if self
            .reanchor_after
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        // Never backwards: the new anchor is at least what the old one reads now.
        let utc = Utc::now().timestamp_micros().max(self.read(raw));
        let spare = 1 - self.current.load(Ordering::Acquire);
        self.anchors[spare].utc_micros.store(utc, Ordering::Release);
        self.anchors[spare].raw.store(raw, Ordering::Release);
        self.current.store(spare, Ordering::Release);
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.now_micros()).unwrap_or_else(Utc::now)
    }

    fn now_micros(&self) -> i64 {
        let raw = self.ticks.raw();
        self.reanchor(raw);
        self.read(raw)
    }

    fn recent_micros(&self) -> i64 {
        match &self.recent {
            Some(recent) => recent.load(Ordering::Acquire),
            None => self.now_micros(),
        }
    }

    fn recent_reading(&self) -> Option<RecentReading> {
        self.recent.clone().map(RecentReading)
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

    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
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
    fn system_clock_follows_the_os_clock_and_never_goes_backwards() {
        let clock = SystemClock::new();
        let mut last = clock.now();
        for _ in 0..100_000 {
            let next = clock.now();
            assert!(next >= last);
            last = next;
        }
        let drift = (Utc::now() - clock.now()).num_milliseconds().abs();
        assert!(drift < 1000, "within a second of the OS clock: {drift} ms");
    }

    #[test]
    fn a_ticking_clock_keeps_a_recent_reading_that_follows_the_clock() {
        let clock = SystemClock::ticking(Duration::from_millis(1));
        let first = clock.recent_micros();
        assert!((clock.now_micros() - first).abs() < 1_000_000, "near the clock");
        // The ticker moves it on; bounded, so a stalled ticker fails instead of hanging.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while clock.recent_micros() == first {
            assert!(
                std::time::Instant::now() < deadline,
                "the ticker never refreshed the reading"
            );
            std::thread::yield_now();
        }
        assert!(clock.recent_micros() > first);
        let plain = SystemClock::new();
        let (before, reading) = (plain.now_micros(), plain.recent_micros());
        assert!(reading >= before, "without a ticker, recent is now");
    }

    #[test]
    fn elapsed_clamps_at_zero() {
        let t = DateTime::from_timestamp(10, 0).unwrap();
        assert_eq!(elapsed(t, t - TimeDelta::seconds(5)), Duration::ZERO);
        assert_eq!(elapsed(t, t + TimeDelta::seconds(5)), Duration::from_secs(5));
    }
}
