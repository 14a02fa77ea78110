//! Rate limiting: exact counts on a virtual clock, exact retry hints, contention, eviction,
//! failure modes, headers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use analytics_core::Error;
use analytics_core::clock::{Clock, ManualClock};
use analytics_core::model::TenantId;
use analytics_core::resilience::rate_limit::{gcra_decide, window_decide};
use analytics_core::resilience::{
    EndpointClass, FailMode, InProcessRateLimitStore, LimitRule, LimiterKey, RateLimitDecision, RateLimitPolicy,
    RateLimitStore, RateLimiter, RateLimits,
};
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    "2024-01-01T00:00:00Z".parse().unwrap()
}

fn key(tenant: &str) -> LimiterKey {
    LimiterKey {
        tenant: TenantId::parse(tenant).unwrap(),
        class: EndpointClass::Analytics,
    }
}

fn admitted(
    store: &InProcessRateLimitStore,
    key: &LimiterKey,
    policy: &RateLimitPolicy,
    at: DateTime<Utc>,
    n: usize,
) -> usize {
    (0..n).filter(|_| store.check_now(key, policy, at).allowed).count()
}

#[test]
fn gcra_admits_the_burst_then_one_per_interval() {
    let store = InProcessRateLimitStore::new();
    let policy = RateLimitPolicy::gcra(10, Duration::from_secs(60));
    let k = key("a");
    assert_eq!(admitted(&store, &k, &policy, t0(), 12), 10);
    assert_eq!(
        admitted(&store, &k, &policy, t0() + TimeDelta::seconds(5), 5),
        0,
        "one cell every 6 s"
    );
    let just_before = t0() + TimeDelta::seconds(6) - TimeDelta::microseconds(1);
    assert_eq!(
        admitted(&store, &k, &policy, just_before, 1),
        0,
        "not a microsecond early"
    );
    assert_eq!(admitted(&store, &k, &policy, t0() + TimeDelta::seconds(6), 5), 1);
    assert_eq!(
        admitted(&store, &k, &policy, t0() + TimeDelta::seconds(66), 20),
        10,
        "fully replenished"
    );
    let first = store.check_now(&key("fresh"), &policy, t0());
    assert_eq!((first.allowed, first.limit, first.remaining), (true, 10, 9));
}

#[test]
fn sliding_window_weights_the_previous_window() {
    let store = InProcessRateLimitStore::new();
    let policy = RateLimitPolicy::sliding_window(10, Duration::from_secs(60));
    let k = key("a");
    assert_eq!(admitted(&store, &k, &policy, t0(), 15), 10);
    let refused = store.check_now(&k, &policy, t0());
    // Next window, 10 × (60 − e)/60 + 1 ≤ 10 ⇔ e ≥ 6 s: 66 s from now.
    assert_eq!(refused.retry_after, Some(Duration::from_secs(66)));
    assert_eq!(admitted(&store, &k, &policy, t0() + TimeDelta::seconds(65), 1), 0);
    assert_eq!(admitted(&store, &k, &policy, t0() + TimeDelta::seconds(66), 5), 1);
    // Half way through the next window the previous one counts half: 5 + 1 admitted = 6 + …
    assert_eq!(admitted(&store, &k, &policy, t0() + TimeDelta::seconds(90), 10), 4);
    assert_eq!(admitted(&store, &k, &policy, t0() + TimeDelta::seconds(240), 20), 10);
}

fn policy() -> impl Strategy<Value = RateLimitPolicy> {
    prop_oneof![
        (1u32..20, 1u64..120, 1u32..20).prop_map(|(limit, secs, burst)| RateLimitPolicy::Gcra {
            limit,
            period: Duration::from_secs(secs),
            burst
        }),
        (1u32..20, 1u64..120)
            .prop_map(|(limit, secs)| RateLimitPolicy::sliding_window(limit, Duration::from_secs(secs))),
    ]
}

fn step(state: u64, now: i64, policy: &RateLimitPolicy) -> analytics_core::resilience::rate_limit::Step {
    match *policy {
        RateLimitPolicy::Gcra { limit, period, burst } => gcra_decide(state, now, limit, period, burst),
        RateLimitPolicy::SlidingWindow { limit, window } => window_decide(state, now, limit, window),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every refusal's retry hint is exact: refused one microsecond before it, admitted at it.
    /// Its header is never zero. Remaining never exceeds the limit.
    #[test]
    fn retry_after_is_exact_and_never_zero(policy in policy(), gaps in prop::collection::vec(0i64..5_000_000, 1..200)) {
        let mut state = 0u64;
        let mut now = t0().timestamp_micros();
        for gap in gaps {
            now += gap;
            let s = step(state, now, &policy);
            let decision = s.decision;
            prop_assert!(decision.remaining <= decision.limit);
            if decision.allowed {
                state = s.state;
                continue;
            }
            let wait = decision.retry_after.expect("a refusal carries a retry hint");
            prop_assert!(wait > Duration::ZERO);
            let wait_micros = wait.as_micros() as i64;
            prop_assert!(step(state, now + wait_micros, &policy).decision.allowed, "admitted at the hint");
            if wait_micros > 1 {
                prop_assert!(!step(state, now + wait_micros - 1, &policy).decision.allowed, "refused just before it");
            }
            let at = DateTime::from_timestamp_micros(now).unwrap();
            let headers = decision.headers(at);
            let retry = headers.iter().find(|(name, _)| *name == "Retry-After").expect("Retry-After on refusal");
            prop_assert!(retry.1.parse::<u64>().unwrap() >= 1);
        }
    }

    /// Over any run of requests, a GCRA key admits at most burst + elapsed / interval.
    #[test]
    fn gcra_never_admits_more_than_its_rate(limit in 1u32..20, secs in 1u64..60, burst in 1u32..20, gaps in prop::collection::vec(0i64..3_000_000, 1..300)) {
        let period = Duration::from_secs(secs);
        let interval = (period.as_micros() as i64 / i64::from(limit)).max(1);
        let (mut state, start) = (0u64, t0().timestamp_micros());
        let (mut now, mut admitted) = (start, 0i64);
        for gap in gaps {
            now += gap;
            let s = gcra_decide(state, now, limit, period, burst);
            if s.decision.allowed {
                state = s.state;
                admitted += 1;
            }
            prop_assert!(admitted <= i64::from(burst) + (now - start) / interval);
        }
    }
}

#[test]
fn headers_round_up_and_follow_the_draft() {
    let decision = RateLimitDecision {
        allowed: false,
        limit: 100,
        remaining: 0,
        reset_after: Duration::from_millis(1500),
        retry_after: Some(Duration::from_millis(1)),
        window: Duration::from_secs(60),
        unchecked: false,
    };
    let headers: std::collections::HashMap<_, _> = decision.headers(t0()).into_iter().collect();
    assert_eq!(headers["X-RateLimit-Limit"], "100");
    assert_eq!(headers["X-RateLimit-Remaining"], "0");
    assert_eq!(headers["X-RateLimit-Reset"], (t0().timestamp() + 2).to_string());
    assert_eq!(
        headers["Retry-After"], "1",
        "a millisecond wait is one second, not zero"
    );
    assert_eq!(headers["RateLimit"], "limit=100, remaining=0, reset=2");
    assert_eq!(headers["RateLimit-Policy"], "100;w=60");
    // 10.5 s past the minute plus 1.5 s resets at exactly 12 s: rounded once, not twice.
    let half_past = t0() + TimeDelta::milliseconds(10_500);
    let at_half_past: std::collections::HashMap<_, _> = decision.headers(half_past).into_iter().collect();
    assert_eq!(at_half_past["X-RateLimit-Reset"], (t0().timestamp() + 12).to_string());
    let allowed = RateLimitDecision {
        allowed: true,
        retry_after: None,
        ..decision
    };
    assert!(allowed.headers(t0()).iter().all(|(name, _)| *name != "Retry-After"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn eight_tasks_on_one_key_never_exceed_the_policy() {
    let store = Arc::new(InProcessRateLimitStore::new());
    for policy in [
        RateLimitPolicy::gcra(500, Duration::from_secs(60)),
        RateLimitPolicy::sliding_window(500, Duration::from_secs(60)),
    ] {
        let count = Arc::new(AtomicUsize::new(0));
        let k = key(if matches!(policy, RateLimitPolicy::Gcra { .. }) {
            "gcra"
        } else {
            "window"
        });
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, count, k) = (store.clone(), count.clone(), k.clone());
                tokio::spawn(async move {
                    for _ in 0..1_000 {
                        if store.check(&k, &policy, t0()).await.unwrap().allowed {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            500,
            "{policy:?}: exactly the limit, never more"
        );
    }
}

#[test]
fn idle_keys_are_forgotten_and_busy_ones_kept() {
    let store = InProcessRateLimitStore::new();
    let policy = RateLimitPolicy::gcra(10, Duration::from_secs(60));
    for i in 0..1000 {
        store.check_now(&key(&format!("t{i}")), &policy, t0());
    }
    assert_eq!(store.len(), 1000);
    store.sweep(t0() + TimeDelta::seconds(5));
    assert_eq!(store.len(), 1000, "their state still matters");
    let busy = key("busy");
    assert_eq!(admitted(&store, &busy, &policy, t0() + TimeDelta::seconds(10), 10), 10);
    store.sweep(t0() + TimeDelta::seconds(7));
    assert_eq!(
        store.len(),
        1,
        "one cell each, replenished after 6 s: forgotten; the drained busy key is kept"
    );
    assert_eq!(
        admitted(&store, &busy, &policy, t0() + TimeDelta::seconds(11), 10),
        0,
        "its state survived the sweep"
    );
}

#[test]
fn a_sweep_racing_an_admission_never_loses_it() {
    let store = Arc::new(InProcessRateLimitStore::new());
    let policy = RateLimitPolicy::gcra(1, Duration::from_secs(60));
    for round in 0..2_000i64 {
        let k = key(&format!("race{}", round % 7));
        // Each round starts long after the last: the key is forgettable when the round begins.
        let at = t0() + TimeDelta::hours(round);
        let barrier = Arc::new(Barrier::new(2));
        let checker = {
            let (store, k, barrier) = (store.clone(), k.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.check_now(&k, &policy, at).allowed
            })
        };
        let sweeper = {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.sweep(at);
            })
        };
        assert!(checker.join().unwrap(), "round {round}: the key was fresh");
        sweeper.join().unwrap();
        assert!(
            !store.check_now(&k, &policy, at).allowed,
            "round {round}: the admission was lost to the sweep"
        );
    }
}

#[derive(Debug)]
struct DownStore;

#[async_trait]
impl RateLimitStore for DownStore {
    async fn check(
        &self,
        _: &LimiterKey,
        _: &RateLimitPolicy,
        _: DateTime<Utc>,
    ) -> analytics_core::Result<RateLimitDecision> {
        Err(Error::unavailable("redis down"))
    }
}

#[tokio::test]
async fn each_rule_fails_open_or_closed() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(t0()));
    let limits = RateLimits::default()
        .set(
            EndpointClass::EventsWrite,
            LimitRule {
                policy: RateLimitPolicy::gcra(5, Duration::from_secs(1)),
                fail: FailMode::Closed,
            },
        )
        .unwrap();
    let limiter = RateLimiter::new(Arc::new(DownStore), limits, clock);
    let tenant = TenantId::parse("t").unwrap();
    let open = limiter.check(&tenant, EndpointClass::Analytics).await.unwrap();
    assert!(open.allowed && open.unchecked);
    assert_eq!(open.limit, 100);
    let closed = limiter.check(&tenant, EndpointClass::EventsWrite).await.unwrap_err();
    assert!(matches!(
        closed,
        Error::Unavailable {
            retry_after: Some(_),
            ..
        }
    ));
}

#[tokio::test]
async fn limiter_keys_by_tenant_and_class_with_seed_defaults() {
    let clock = ManualClock::new(t0());
    let limiter = RateLimiter::new(
        Arc::new(InProcessRateLimitStore::new()),
        RateLimits::default(),
        Arc::new(clock.clone()),
    );
    let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
    let mut admitted_a = 0;
    for _ in 0..150 {
        admitted_a += usize::from(limiter.check(&a, EndpointClass::Analytics).await.unwrap().allowed);
    }
    assert_eq!(admitted_a, 100, "analytics: 100 per minute");
    assert!(
        limiter.check(&b, EndpointClass::Analytics).await.unwrap().allowed,
        "another tenant has its own limit"
    );
    assert!(
        limiter.check(&a, EndpointClass::EventsWrite).await.unwrap().allowed,
        "another class has its own limit"
    );
    assert_eq!(
        limiter.limits().rule(EndpointClass::General).policy,
        RateLimitPolicy::sliding_window(1000, Duration::from_secs(900))
    );
    let bad = RateLimits::default().set(
        EndpointClass::General,
        LimitRule {
            policy: RateLimitPolicy::sliding_window(0, Duration::from_secs(1)),
            fail: FailMode::Open,
        },
    );
    assert!(matches!(bad, Err(Error::InvalidInput { field, .. }) if field == "limit"));
}
