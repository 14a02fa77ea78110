//! The breaker's settings.

use std::time::Duration;

use crate::error::{Error, Result};

/// Which calls the failure rate is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` completed calls.
    Count(u32),
    /// The calls completed in the last `n` whole seconds (the current second included).
    Time(u32),
}

/// Which errors count as failures. Errors that do not count are recorded as successes: the
/// backend answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Only transient errors (unavailable, timeout, overload) — the default: an invalid query or
    /// a missing experiment says nothing about the backend's health.
    TransientOnly,
    /// Every error.
    AllErrors,
}

/// Breaker settings. Defaults: count window of 20 calls, at least 10 calls before rates count,
/// 50% failure rate, 100% slow-call rate with calls slower than 5 s being slow, or 5 failures in
/// a row, 30 s open, 5 half-open permits, at most 60 s half-open, transient errors only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// The sliding window.
    pub window: SlidingWindow,
    /// Open when at least this percentage of calls in the window failed (0–100].
    pub failure_rate_threshold: f64,
    /// Open when at least this percentage of calls in the window were slow (0–100].
    pub slow_call_rate_threshold: f64,
    /// A call taking at least this long is slow.
    pub slow_call_duration: Duration,
    /// Rates are not evaluated before the window holds this many calls.
    pub minimum_calls: u32,
    /// Open after this many failed calls in a row, however few calls the window holds, so a
    /// service with little traffic stops waiting on a dead dependency after a few requests
    /// rather than after `minimum_calls` (`None`: rates only).
    pub consecutive_failures: Option<u32>,
    /// How long to stay open before trying half-open.
    pub wait_in_open: Duration,
    /// Trial calls admitted in half-open; their outcome decides.
    pub half_open_permits: u32,
    /// Re-open if half-open lasts longer than this (`None`: wait for the trial calls).
    pub max_wait_in_half_open: Option<Duration>,
    /// Which errors count as failures.
    pub failures: FailurePolicy,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: SlidingWindow::Count(20),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(5),
            minimum_calls: 10,
            consecutive_failures: Some(5),
            wait_in_open: Duration::from_secs(30),
            half_open_permits: 5,
            max_wait_in_half_open: Some(Duration::from_secs(60)),
            failures: FailurePolicy::TransientOnly,
        }
    }
}

impl BreakerConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let rate_ok = |r: f64| r > 0.0 && r <= 100.0;
        if !rate_ok(self.failure_rate_threshold) {
            return Err(Error::invalid("failureRateThreshold", "must be in (0, 100]"));
        }
        if !rate_ok(self.slow_call_rate_threshold) {
            return Err(Error::invalid("slowCallRateThreshold", "must be in (0, 100]"));
        }
        match self.window {
            SlidingWindow::Count(0) | SlidingWindow::Time(0) => {
                return Err(Error::invalid("window", "must hold at least one call or second"));
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err(Error::invalid("minimumCalls", "must be at least 1"));
        }
        if self.consecutive_failures == Some(0) {
            return Err(Error::invalid("consecutiveFailures", "must be at least 1"));
        }
        if self.half_open_permits == 0 {
            return Err(Error::invalid("halfOpenPermits", "must be at least 1"));
        }
        Ok(())
    }
}
