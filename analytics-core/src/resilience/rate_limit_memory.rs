//! [`InProcessRateLimitStore`]: limiter state in process memory.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rate_limit::{
    LimiterKey, RateLimitDecision, RateLimitPolicy, RateLimitStore, Step, gcra_decide, window_decide,
};
use crate::error::Result;

/// How often (on the callers' clock) forgettable keys are swept, in microseconds.
const SWEEP_EVERY_MICROS: i64 = 10_000_000;
/// The state of a slot a sweep has retired; no policy produces it.
const RETIRED: u64 = u64::MAX;

/// Limiter state in process memory: for one instance, or as the embedded default.
///
/// Lock-free on the hot path: keys live in a `papaya` concurrent map (lock-free reads) and each
/// decision is one compare-and-swap loop on the key's packed `u64` state, so concurrent checks
/// of one key never admit more than the policy. Memory is bounded by the keys in use: keys
/// (also on [`sweep`](Self::sweep)) whose state has become equivalent to a
/// fresh one — per the decision's `forget_at`, on the caller's clock — are removed, at most
/// every 10 seconds of that clock, by whichever check first notices a sweep is due.
///
/// A sweep never loses an admission: a checker raises the key's `forget_at` *before* its state
/// CAS, and a sweep retires a slot only by CAS-ing its state to a reserved value after seeing
/// an expired `forget_at` (all sequentially consistent). A checker that meets a retired slot
/// moves to a fresh one.
///
/// Keys are hashed with `foldhash` (randomly seeded) rather than SipHash: they are
/// authenticated tenants and a fixed set of endpoint classes, not attacker-chosen strings, and
/// hashing is a large share of a check.
#[derive(Debug, Default)]
pub struct InProcessRateLimitStore {
    keys: papaya::HashMap<LimiterKey, KeyState, foldhash::fast::RandomState>,
    /// Epoch microseconds of the next sweep (0: none yet scheduled).
    next_sweep: AtomicI64,
}

#[derive(Debug, Default)]
struct KeyState {
    state: AtomicU64,
    forget_at: AtomicI64,
}

impl InProcessRateLimitStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides synchronously (the trait method wraps this).
    pub fn check_now(&self, key: &LimiterKey, policy: &RateLimitPolicy, now: DateTime<Utc>) -> RateLimitDecision {
        let now_micros = now.timestamp_micros();
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now_micros >= due
            && self
                .next_sweep
                .compare_exchange(
                    due,
                    now_micros + SWEEP_EVERY_MICROS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            && due != 0
        {
            self.sweep(now);
        }
        let keys = self.keys.pin();
        'slot: loop {
            let slot = match keys.get(key) {
                Some(slot) => slot,
                None => keys.get_or_insert_with(key.clone(), KeyState::default),
            };
            let mut current = slot.state.load(Ordering::SeqCst);
            loop {
                if current == RETIRED {
                    keys.remove_if(key, |_, v| std::ptr::eq(v, slot)).ok();
                    continue 'slot;
                }
                let step = decide(current, now_micros, policy);
                if !step.decision.allowed {
                    return step.decision;
                }
                // Raised before the state CAS, so a sweep that sees the new state sees it too.
                if slot.forget_at.load(Ordering::SeqCst) < step.forget_at {
                    slot.forget_at.fetch_max(step.forget_at, Ordering::SeqCst);
                }
                match slot
                    .state
                    .compare_exchange_weak(current, step.state, Ordering::SeqCst, Ordering::SeqCst)
                {
                    Ok(_) => return step.decision,
                    Err(actual) => current = actual,
                }
            }
        }
    }

    /// Removes keys whose state is as good as fresh at `now`.
    pub fn sweep(&self, now: DateTime<Utc>) {
        let now_micros = now.timestamp_micros();
        let keys = self.keys.pin();
        for (key, slot) in keys.iter() {
            let state = slot.state.load(Ordering::SeqCst);
            if state != RETIRED
                && slot.forget_at.load(Ordering::SeqCst) <= now_micros
                && slot
                    .state
                    .compare_exchange(state, RETIRED, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                keys.remove_if(key, |_, v| std::ptr::eq(v, slot)).ok();
            }
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn decide(state: u64, now_micros: i64, policy: &RateLimitPolicy) -> Step {
    match *policy {
        RateLimitPolicy::Gcra { limit, period, burst } => gcra_decide(state, now_micros, limit, period, burst),
        RateLimitPolicy::SlidingWindow { limit, window } => window_decide(state, now_micros, limit, window),
    }
}

#[async_trait]
impl RateLimitStore for InProcessRateLimitStore {
    async fn check(&self, key: &LimiterKey, policy: &RateLimitPolicy, now: DateTime<Utc>) -> Result<RateLimitDecision> {
        Ok(self.check_now(key, policy, now))
    }
}
