//! The [`RateLimitStore`] conformance suite.
//!
//! Its central property is differential: replaying the same requests at the same (injected)
//! times, a store must decide exactly as the in-process store — the arithmetic every store
//! shares ([`gcra_decide`](crate::resilience::rate_limit::gcra_decide),
//! [`window_decide`](crate::resilience::rate_limit::window_decide)).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::data::CaseNames;
use super::{SuiteOptions, run_property};
use crate::resilience::{EndpointClass, InProcessRateLimitStore, LimiterKey, RateLimitPolicy, RateLimitStore};

/// Which clock a store decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreTime {
    /// The `now` passed to [`RateLimitStore::check`] (the in-process store; Redis in its
    /// caller-time mode). The differential property runs.
    Caller,
    /// Its own clock (Redis's server time by default). Only the checks that do not depend on the
    /// exact instant run.
    Own,
}

/// Runs every rate-limit check.
pub async fn run_all(store: Arc<dyn RateLimitStore>, time: StoreTime, options: SuiteOptions) {
    if time == StoreTime::Caller {
        decides_as_the_in_process_store(store.clone(), options).await;
    }
    concurrent_checks_admit_exactly_the_limit(store.clone()).await;
    limits_are_kept_per_tenant_and_class(&*store).await;
}

fn start() -> DateTime<Utc> {
    "2024-05-01T00:00:00Z".parse().expect("valid")
}

/// Policies whose GCRA interval and window are whole milliseconds, so that the millisecond
/// gaps of [`gap`] land exactly on (and one microsecond around) their boundaries.
fn policy() -> impl Strategy<Value = RateLimitPolicy> {
    // Mostly a few milliseconds, so the gaps below keep landing on boundaries; sometimes long.
    let millis = || prop_oneof![4 => 1u64..8, 1 => 8u64..120_000];
    prop_oneof![
        (1u32..20, millis(), 1u32..20).prop_map(|(limit, interval_ms, burst)| RateLimitPolicy::Gcra {
            limit,
            period: Duration::from_millis(u64::from(limit) * interval_ms),
            burst
        }),
        (1u32..20, millis())
            .prop_map(|(limit, millis)| RateLimitPolicy::sliding_window(limit, Duration::from_millis(millis))),
    ]
}

/// Microseconds between requests: often none (requests sharing an instant), often a few whole
/// milliseconds or one microsecond either side (the policies' boundaries), sometimes anything
/// up to 5 s.
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        2 => (1i64..10).prop_map(|ms| ms * 1_000),
        3 => (1i64..10).prop_map(|ms| ms * 1_000 - 1),
        1 => (1i64..10).prop_map(|ms| ms * 1_000 + 1),
        1 => 0i64..5_000_000,
    ]
}

/// Property: for random policies and request sequences over four keys (two tenants × two
/// endpoint classes), with gaps aimed at the policies' boundaries ([`gap`]), every decision
/// equals the in-process store's for the same request at the same instant.
pub async fn decides_as_the_in_process_store(store: Arc<dyn RateLimitStore>, options: SuiteOptions) {
    let requests = prop::collection::vec((0usize..4, gap()), 1..80);
    let strategy = (prop::collection::vec(policy(), 4), requests);
    run_property(
        "decides_as_the_in_process_store",
        options.cases,
        strategy,
        move |(policies, requests)| {
            let store = store.clone();
            async move {
                let names = CaseNames::fresh();
                let keys: Vec<LimiterKey> = (0..4)
                    .map(|i| LimiterKey {
                        tenant: names.tenants[i / 2].clone(),
                        class: [EndpointClass::Analytics, EndpointClass::EventsWrite][i % 2],
                    })
                    .collect();
                let reference = InProcessRateLimitStore::new();
                let mut now = start();
                for (step, (key, gap)) in requests.iter().enumerate() {
                    now += TimeDelta::microseconds(*gap);
                    let (key, policy) = (&keys[*key], &policies[*key]);
                    let want = reference.check_now(key, policy, now);
                    let got = store
                        .check(key, policy, now)
                        .await
                        .map_err(|e| format!("step {step}: check failed: {e}"))?;
                    if got != want {
                        return Err(format!(
                            "step {step} ({key} under {policy:?} at {now}): got {got:?}, in-process store {want:?}"
                        ));
                    }
                }
                Ok(())
            }
        },
    )
    .await;
}

/// Eight tasks checking one key at once are admitted exactly as often as the policy allows —
/// never more (a lost update would admit more), never less.
pub async fn concurrent_checks_admit_exactly_the_limit(store: Arc<dyn RateLimitStore>) {
    // A day per 500 requests: no replenishment while the test runs, on any clock.
    let day = Duration::from_secs(24 * 60 * 60);
    for policy in [
        RateLimitPolicy::gcra(500, day),
        RateLimitPolicy::sliding_window(500, day),
    ] {
        let key = LimiterKey {
            tenant: CaseNames::fresh().tenants[0].clone(),
            class: EndpointClass::Analytics,
        };
        let admitted = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, admitted, key) = (store.clone(), admitted.clone(), key.clone());
                tokio::spawn(async move {
                    for _ in 0..100 {
                        if store.check(&key, &policy, start()).await.expect("check").allowed {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 500, "{policy:?}: exactly the limit");
    }
}

/// Exhausting one tenant's limit for one class leaves other classes and other tenants untouched.
pub async fn limits_are_kept_per_tenant_and_class(store: &dyn RateLimitStore) {
    let names = CaseNames::fresh();
    let policy = RateLimitPolicy::gcra(3, Duration::from_secs(24 * 60 * 60));
    let key = |tenant: usize, class| LimiterKey {
        tenant: names.tenants[tenant].clone(),
        class,
    };
    let exhausted = key(0, EndpointClass::Analytics);
    for _ in 0..3 {
        assert!(store.check(&exhausted, &policy, start()).await.expect("check").allowed);
    }
    let refused = store.check(&exhausted, &policy, start()).await.expect("check");
    assert!(!refused.allowed && refused.retry_after.is_some(), "{refused:?}");
    for other in [key(0, EndpointClass::EventsRead), key(1, EndpointClass::Analytics)] {
        let decision = store.check(&other, &policy, start()).await.expect("check");
        assert!(decision.allowed, "{other} shares no state with {exhausted}");
        assert_eq!(decision.remaining, 2);
    }
}
