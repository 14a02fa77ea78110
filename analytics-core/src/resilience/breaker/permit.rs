//! A permit to make one call through the breaker: a guard that records the call's outcome, or
//! gives a half-open slot back when dropped unreported.

use super::{BreakerState, FailurePolicy, Shared};
use crate::error::{Error, ErrorKind};

/// Permission to make one call. Report its outcome with [`success`](Self::success),
/// [`failure`](Self::failure) or [`record`](Self::record); dropping it unreported (a cancelled
/// or panicking caller) records nothing and gives a half-open permit back.
#[derive(Debug)]
#[must_use = "a permit that is dropped records nothing"]
pub struct BreakerPermit<'a> {
    pub(super) shared: &'a Shared,
    /// The phase it was issued in: its outcome counts only in that phase.
    pub(super) phase: u64,
    pub(super) state: BreakerState,
    /// Epoch microseconds when the call started.
    pub(super) started: i64,
}

impl BreakerPermit<'_> {
    /// Records a success.
    #[inline(always)]
    pub fn success(self) {
        self.finish(false);
    }

    /// Records a failure if `error` counts as one under the breaker's [`FailurePolicy`], else a
    /// success.
    pub fn failure(self, error: &Error) {
        self.record(Some(error));
    }

    /// Records the outcome of a call that returned `error` (or none).
    pub fn record(self, error: Option<&Error>) {
        let failed = match (error, self.shared.config.failures) {
            (None, _) => false,
            (Some(e), FailurePolicy::TransientOnly) => e.kind() == ErrorKind::Transient,
            (Some(_), FailurePolicy::AllErrors) => true,
        };
        self.finish(failed);
    }

    // Always inlined, with the lock-free success path, so a closed breaker's permit stays in
    // registers: passed through memory it cost a store-forwarding stall per call.
    #[inline(always)]
    fn finish(self, failed: bool) {
        self.shared.record(&self, failed);
        // Recorded: nothing to give back (the permit holds a reference and plain values).
        std::mem::forget(self);
    }
}

impl Drop for BreakerPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.shared.release(self);
    }
}
