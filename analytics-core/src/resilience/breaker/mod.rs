//! A circuit breaker with resilience4j's semantics, minus its known wedges.
//!
//! - Count-based (last N calls) or time-based (last N seconds) sliding window; failure-rate and
//!   slow-call-rate thresholds; a minimum number of calls before rates count.
//! - Open for `wait_in_open`, then half-open with a bounded number of permits; the permitted
//!   calls' rates decide, once they have all completed, whether to close or re-open.
//! - Disabled, forced-open and metrics-only states for operators.
//!
//! Improvements on resilience4j: a permit is a guard — a caller that is cancelled or panics
//! gives its half-open permit back on drop, so the breaker can never wedge half-open; at most
//! `half_open_permits` calls run at once in half-open; `max_wait_in_half_open` re-opens a
//! half-open breaker whose trial calls never finish; outcomes are stamped with the phase they
//! started in, so a slow call from a previous phase cannot skew the current one.
//!
//! While closed and the window holds no failed or slow call — a healthy dependency — a call that
//! succeeds quickly is counted with one atomic compare-and-swap on a per-second pending counter,
//! not under the lock: with nothing bad in the window no success can open the breaker, so it only
//! has to be in the window before the next outcome that could. Every other outcome, each first
//! success of a new second and every reading of the metrics takes the lock and folds the pending
//! successes into the window first (as calls of the second they were counted in), so the window
//! is exactly what recording every call under the lock would give. A pending success that races
//! a transition counts in no window, like an outcome from an earlier phase.
//!
//! Time comes from the [`Clock`]'s recent reading ([`Clock::recent_micros`]): exact with most
//! clocks, a millisecond-fresh atomic load with [`SystemClock::ticking`](crate::clock::SystemClock::ticking),
//! which takes the two time-stamp counter reads (10–15 ns each on a VM) off every call. Tests
//! drive the clock virtually.

mod config;
mod permit;
mod state;
mod window;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use config::{BreakerConfig, FailurePolicy, SlidingWindow};
pub use permit::BreakerPermit;
pub use state::{BreakerMetrics, BreakerState, Transition};
use window::{Tally, Window};

use crate::clock::{Clock, RecentReading, delta, elapsed};
use crate::error::{Error, Result};

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    since: DateTime<Utc>,
    /// Incremented on every transition; a permit only counts in the phase it was issued in.
    phase: u64,
    window: Window,
    trial_admitted: u32,
    trial: Tally,
    /// Failed calls in a row while closed (any success resets it).
    consecutive_failures: u32,
    successes_total: u64,
    failures_total: u64,
    rejected_total: u64,
    last_transition: Option<Transition>,
}

#[derive(Debug)]
struct Shared {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    /// The clock's shared recent reading, read without a virtual call when it keeps one.
    recent: Option<RecentReading>,
    /// The slow-call duration in microseconds (compared on every recorded call).
    slow_call_micros: i64,
    /// `phase << 8 | state`, mirrored from `Inner` so the closed path admits without the lock.
    status: AtomicU64,
    /// Successes counted without the lock and not yet in the window: the second they were
    /// counted in (epoch seconds, low 32 bits) `<< 32 | count`.
    pending: AtomicU64,
    /// The window held no failed or slow call when last looked at under the lock (so quick
    /// successes may be counted without it; failures only leave a window).
    clean: AtomicBool,
    inner: Mutex<Inner>,
}

/// The count half of [`Shared::pending`].
const PENDING_COUNT: u64 = 0xFFFF_FFFF;

/// The second half of [`Shared::pending`] for epoch second `secs`.
#[inline]
fn pending_stamp(secs: i64) -> u64 {
    (secs as u64) & PENDING_COUNT
}

/// A circuit breaker. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl CircuitBreaker {
    /// A closed breaker.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for invalid settings.
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        let now = micros_to_instant(clock.recent_micros());
        let inner = Inner {
            state: BreakerState::Closed,
            since: now,
            phase: 0,
            window: Window::new(config.window),
            trial_admitted: 0,
            trial: Tally::default(),
            consecutive_failures: 0,
            successes_total: 0,
            failures_total: 0,
            rejected_total: 0,
            last_transition: None,
        };
        let status = AtomicU64::new(u64::from(BreakerState::Closed.code()));
        let slow_call_micros = i64::try_from(config.slow_call_duration.as_micros()).unwrap_or(i64::MAX);
        let shared = Shared {
            slow_call_micros,
            config,
            pending: AtomicU64::new(pending_stamp(now.timestamp()) << 32),
            clean: AtomicBool::new(true),
            recent: clock.recent_reading(),
            clock,
            status,
            inner: Mutex::new(inner),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Asks to make a call.
    ///
    /// # Errors
    /// [`Error::Unavailable`] with a retry hint when the breaker refuses.
    // Inlined so a closed breaker's permit stays in registers (returned through memory, the
    // large `Result` cost a store-forwarding stall per call); the rest is out of line.
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_>> {
        let now_micros = self.shared.recent_micros();
        let status = self.shared.status.load(Ordering::Acquire);
        let fast = BreakerState::from_code((status & 0xff) as u8);
        if matches!(
            fast,
            BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly
        ) {
            return Ok(self.permit(status >> 8, fast, now_micros));
        }
        let (phase, state) = self.admit_locked(now_micros)?;
        Ok(self.permit(phase, state, now_micros))
    }

    /// [`try_acquire`](Self::try_acquire) when the breaker is not closed, under the lock: the
    /// phase and state of the permit, or the refusal. (It returns no permit, so the closed
    /// path's permit is not forced into memory shared with this call's return value.)
    #[inline(never)]
    fn admit_locked(&self, now_micros: i64) -> Result<(u64, BreakerState)> {
        let now = micros_to_instant(now_micros);
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        let refuse = |inner: &mut Inner, retry_after: Option<Duration>, why: &str| {
            inner.rejected_total += 1;
            Err(Error::Unavailable {
                message: format!("circuit breaker {why}"),
                retry_after,
            })
        };
        match inner.state {
            BreakerState::Open => {
                let wait =
                    elapsed(now, inner.since + delta(self.shared.config.wait_in_open)).max(Duration::from_millis(1));
                refuse(&mut inner, Some(wait), "open")
            }
            BreakerState::ForcedOpen => refuse(&mut inner, None, "forced open"),
            BreakerState::HalfOpen if inner.trial_admitted >= self.shared.config.half_open_permits => refuse(
                &mut inner,
                Some(Duration::from_secs(1)),
                "half-open and all trial permits are taken",
            ),
            BreakerState::HalfOpen => {
                inner.trial_admitted += 1;
                let phase = inner.phase;
                Ok((phase, BreakerState::HalfOpen))
            }
            state => {
                let phase = inner.phase;
                Ok((phase, state))
            }
        }
    }

    #[inline]
    fn permit(&self, phase: u64, state: BreakerState, started: i64) -> BreakerPermit<'_> {
        BreakerPermit {
            shared: &self.shared,
            phase,
            state,
            started,
        }
    }

    /// Runs `call` through the breaker, recording its outcome.
    ///
    /// # Errors
    /// The breaker's refusal, or the call's own error.
    pub async fn call<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        permit.record(result.as_ref().err());
        result
    }

    /// The current state (after applying any time-based transition that is due).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.advance(&mut inner, self.shared.now());
        inner.state
    }

    /// Counts, rates and the last transition.
    pub fn metrics(&self) -> BreakerMetrics {
        let now = self.shared.now();
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        self.shared.fold_pending(&mut inner, now.timestamp());
        let tally = if inner.state == BreakerState::HalfOpen {
            inner.trial
        } else {
            inner.window.tally(now.timestamp())
        };
        let minimum = match inner.state {
            BreakerState::HalfOpen => self.shared.config.half_open_permits,
            _ => self.shared.config.minimum_calls,
        };
        let (failure_rate, slow_rate) = tally.rates();
        let enough = tally.calls >= minimum;
        BreakerMetrics {
            state: inner.state,
            calls: tally.calls,
            failed_calls: tally.failed,
            slow_calls: tally.slow,
            failure_rate: enough.then_some(failure_rate),
            slow_call_rate: enough.then_some(slow_rate),
            successes_total: inner.successes_total,
            failures_total: inner.failures_total,
            rejected_total: inner.rejected_total,
            last_transition: inner.last_transition,
        }
    }

    /// Operator control: refuse every call until another state is set.
    pub fn force_open(&self) {
        self.set_state(BreakerState::ForcedOpen);
    }

    /// Operator control: let every call through and record nothing.
    pub fn disable(&self) {
        self.set_state(BreakerState::Disabled);
    }

    /// Operator control: let every call through, record outcomes, never change state.
    pub fn metrics_only(&self) {
        self.set_state(BreakerState::MetricsOnly);
    }

    /// Operator control: back to closed with an empty window.
    pub fn reset(&self) {
        self.set_state(BreakerState::Closed);
    }

    fn set_state(&self, to: BreakerState) {
        let now = self.shared.now();
        let mut inner = self.lock();
        self.transition(&mut inner, to, now);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    /// Applies time-driven transitions: open → half-open after the wait, half-open → open after
    /// the maximum half-open wait.
    fn advance(&self, inner: &mut Inner, now: DateTime<Utc>) {
        self.shared.advance(inner, now);
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: DateTime<Utc>) {
        self.shared.transition(inner, to, now);
    }
}

impl Shared {
    /// The breaker's time: the clock's recent reading (see [`Clock::recent_micros`]).
    #[inline(always)]
    fn recent_micros(&self) -> i64 {
        match &self.recent {
            Some(reading) => reading.micros(),
            None => self.clock.recent_micros(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        micros_to_instant(self.recent_micros())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn advance(&self, inner: &mut Inner, now: DateTime<Utc>) {
        let config = &self.config;
        if inner.state == BreakerState::Open && now >= inner.since + delta(config.wait_in_open) {
            self.transition(inner, BreakerState::HalfOpen, now);
        }
        if inner.state == BreakerState::HalfOpen
            && let Some(max) = config.max_wait_in_half_open
            && now >= inner.since + delta(max)
        {
            self.transition(inner, BreakerState::Open, now);
        }
    }

    /// Adds a quick success of a closed (or metrics-only) breaker to the pending count without
    /// the lock; false when the lock is needed (another phase, a new second, a lost race).
    #[inline(always)]
    fn count_success_lock_free(&self, phase: u64, now_micros: i64) -> bool {
        if self.status.load(Ordering::Acquire) >> 8 != phase || !self.clean.load(Ordering::Acquire) {
            return false;
        }
        let pending = self.pending.load(Ordering::Relaxed);
        pending >> 32 == pending_stamp(now_micros.div_euclid(1_000_000))
            && pending & PENDING_COUNT < PENDING_COUNT
            && self
                .pending
                .compare_exchange(pending, pending + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Moves the pending successes into the window, as calls of the second they were counted
    /// in, and restarts the count at `now_secs`.
    fn fold_pending(&self, inner: &mut Inner, now_secs: i64) {
        let pending = self.pending.swap(pending_stamp(now_secs) << 32, Ordering::AcqRel);
        let count = u32::try_from(pending & PENDING_COUNT).expect("a 32-bit count");
        if count == 0 {
            return;
        }
        let behind = pending_stamp(now_secs).wrapping_sub(pending >> 32) & PENDING_COUNT;
        inner.successes_total += u64::from(count);
        inner.consecutive_failures = 0;
        inner.window.record_successes(count, now_secs - behind as i64);
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: DateTime<Utc>) {
        // Pending successes belong to the phase that ends: totals only.
        let pending = self
            .pending
            .swap(pending_stamp(now.timestamp()) << 32, Ordering::AcqRel);
        inner.successes_total += pending & PENDING_COUNT;
        let from = inner.state;
        inner.state = to;
        inner.since = now;
        inner.phase += 1;
        inner.trial_admitted = 0;
        inner.trial = Tally::default();
        inner.consecutive_failures = 0;
        if to == BreakerState::Closed || to == BreakerState::MetricsOnly {
            inner.window = Window::new(self.config.window);
        }
        self.clean.store(true, Ordering::Release);
        inner.last_transition = Some(Transition { from, to, at: now });
        self.status
            .store(inner.phase << 8 | u64::from(to.code()), Ordering::Release);
    }

    /// Whether the failure or slow-call rate reaches its threshold, compared as
    /// `failed × 100 ≥ threshold × calls` (no division on the hot path).
    fn exceeds(&self, tally: Tally) -> bool {
        let calls = f64::from(tally.calls);
        f64::from(tally.failed) * 100.0 >= self.config.failure_rate_threshold * calls
            || f64::from(tally.slow) * 100.0 >= self.config.slow_call_rate_threshold * calls
    }

    #[inline(always)]
    fn record(&self, permit: &BreakerPermit, failed: bool) {
        if permit.state == BreakerState::Disabled {
            return;
        }
        let now_micros = self.recent_micros();
        let slow = now_micros - permit.started >= self.slow_call_micros;
        if !failed
            && !slow
            && matches!(permit.state, BreakerState::Closed | BreakerState::MetricsOnly)
            && self.count_success_lock_free(permit.phase, now_micros)
        {
            return;
        }
        self.record_locked(permit, failed, slow, now_micros);
    }

    /// [`record`](Self::record) for every outcome the lock-free count cannot take.
    #[inline(never)]
    fn record_locked(&self, permit: &BreakerPermit, failed: bool, slow: bool, now_micros: i64) {
        // Built only for (rare) transitions.
        let now = || micros_to_instant(now_micros);
        let now_secs = now_micros.div_euclid(1_000_000);
        let mut inner = self.lock();
        // Time-driven transitions first: a trial call finishing after the half-open deadline
        // lands in the next phase and is ignored.
        if matches!(inner.state, BreakerState::Open | BreakerState::HalfOpen) {
            self.advance(&mut inner, now());
        }
        self.fold_pending(&mut inner, now_secs);
        if failed {
            inner.failures_total += 1;
        } else {
            inner.successes_total += 1;
        }
        if permit.phase != inner.phase {
            // Issued in an earlier phase: its outcome says nothing about the current one.
            return;
        }
        match permit.state {
            BreakerState::Disabled | BreakerState::Open | BreakerState::ForcedOpen => {}
            BreakerState::HalfOpen => {
                inner.trial.add(failed, slow);
                if inner.trial.calls >= self.config.half_open_permits {
                    let to = if self.exceeds(inner.trial) {
                        BreakerState::Open
                    } else {
                        BreakerState::Closed
                    };
                    self.transition(&mut inner, to, now());
                }
            }
            state @ (BreakerState::Closed | BreakerState::MetricsOnly) => {
                inner.window.record(failed, slow, now_secs);
                inner.consecutive_failures = if failed { inner.consecutive_failures + 1 } else { 0 };
                let tally = inner.window.tally(now_secs);
                let rates = tally.calls >= self.config.minimum_calls && self.exceeds(tally);
                let in_a_row = self
                    .config
                    .consecutive_failures
                    .is_some_and(|n| inner.consecutive_failures >= n);
                if state == BreakerState::Closed && (rates || in_a_row) {
                    self.transition(&mut inner, BreakerState::Open, now());
                } else {
                    self.clean
                        .store(tally.failed == 0 && tally.slow == 0, Ordering::Release);
                }
            }
        }
    }

    #[inline]
    fn release(&self, permit: &BreakerPermit) {
        if permit.state == BreakerState::HalfOpen {
            self.release_trial(permit.phase);
        }
    }

    #[inline(never)]
    fn release_trial(&self, phase: u64) {
        let mut inner = self.lock();
        if inner.phase == phase {
            inner.trial_admitted -= 1;
        }
    }
}

/// Only for readings of a [`Clock`], which are always representable.
fn micros_to_instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("clock readings are representable instants")
}
