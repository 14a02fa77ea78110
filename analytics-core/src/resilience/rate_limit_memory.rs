//! [`InProcessRateLimitStore`]: limiter state in process memory.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rate_limit::{
    LimiterKey, RateLimitDecision, RateLimitPolicy, RateLimitStore, Step, forgettable, gcra_decide, window_decide,
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
/// of one key never admit more than the policy. Memory is bounded by the keys in use: at most
/// every 10 seconds of the callers' clock (and on [`sweep`](Self::sweep)), keys whose state has
/// become equivalent to a fresh one ([`forgettable`]) are removed.
///
/// A sweep never loses an admission: it retires a slot only by a CAS from the very state it
/// judged forgettable to a reserved value, so it either precedes a checker's CAS (which then
/// fails, and the checker moves to a fresh slot) or follows it (and sees the new state). A
/// key's policy is fixed when the key is first seen.
///
/// Keys are hashed with `foldhash` (randomly seeded) rather than SipHash: they are
/// authenticated tenants and a fixed set of endpoint classes, not attacker-chosen strings, and
/// hashing is a large share of a check.
///
/// The map resizes in one go (`papaya`'s blocking mode), not incrementally: an incremental
/// resize advances only on writes, and a limiter's keys are stable, so a resize started by the
/// last new key could stay half done and make every later check search both tables. Whether
/// one starts depends on probe lengths, so on the random hash seed: the likely cause of a
/// benchmark run, one in four, in which a check cost 2.3× `governor`'s.
#[derive(Debug)]
pub struct InProcessRateLimitStore {
    keys: papaya::HashMap<LimiterKey, KeyState, foldhash::fast::RandomState>,
    /// Epoch microseconds of the next sweep (0: none yet scheduled).
    next_sweep: AtomicI64,
}

#[derive(Debug)]
struct KeyState {
    state: AtomicU64,
    policy: RateLimitPolicy,
}

impl Default for InProcessRateLimitStore {
    fn default() -> Self {
        Self {
            keys: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            next_sweep: AtomicI64::new(0),
        }
    }
}

impl InProcessRateLimitStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides synchronously (the trait method wraps this).
    pub fn check_now(&self, key: &LimiterKey, policy: &RateLimitPolicy, now: DateTime<Utc>) -> RateLimitDecision {
        self.check_micros(key, policy, now.timestamp_micros())
    }

    /// Decides synchronously at `now_micros` (epoch microseconds).
    pub fn check_micros(&self, key: &LimiterKey, policy: &RateLimitPolicy, now_micros: i64) -> RateLimitDecision {
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
            self.sweep_micros(now_micros);
        }
        let keys = self.keys.pin();
        'slot: loop {
            let slot = match keys.get(key) {
                Some(slot) => slot,
                None => keys.get_or_insert_with(key.clone(), || KeyState {
                    state: AtomicU64::new(0),
                    policy: *policy,
                }),
            };
            let mut current = slot.state.load(Ordering::Acquire);
            loop {
                if current == RETIRED {
                    keys.remove_if(key, |_, v| std::ptr::eq(v, slot)).ok();
                    continue 'slot;
                }
                let step = decide(current, now_micros, policy);
                if !step.decision.allowed {
                    return step.decision;
                }
                match slot
                    .state
                    .compare_exchange_weak(current, step.state, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return step.decision,
                    Err(actual) => current = actual,
                }
            }
        }
    }

    /// Removes keys whose state is as good as fresh at `now`.
    pub fn sweep(&self, now: DateTime<Utc>) {
        self.sweep_micros(now.timestamp_micros());
    }

    fn sweep_micros(&self, now_micros: i64) {
        let keys = self.keys.pin();
        for (key, slot) in keys.iter() {
            let state = slot.state.load(Ordering::Acquire);
            if state != RETIRED
                && forgettable(state, now_micros, &slot.policy)
                && slot
                    .state
                    .compare_exchange(state, RETIRED, Ordering::AcqRel, Ordering::Acquire)
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
