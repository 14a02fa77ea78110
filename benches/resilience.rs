#![allow(missing_docs)] // criterion_group! generates undocumented public items.

//! Resilience overheads, each side by side with its baseline in one criterion group:
//! - `breaker_closed`: a call through a closed circuit breaker vs the same call made directly,
//!   with a ticking clock and with the exact one the server uses (and one exact reading);
//! - `keyed_limiter`: the in-process limiter store vs `governor`'s keyed limiter (dashmap store,
//!   quanta clock) on the same 1,000 keys, with quotas that always admit.
//!
//! `cargo bench --bench resilience`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use analytics::clock::{Clock, SystemClock};
use analytics::model::TenantId;
use analytics::resilience::{
    BreakerConfig, CircuitBreaker, EndpointClass, InProcessRateLimitStore, LimiterKey, RateLimitPolicy,
};
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};

fn work(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn breaker_closed(c: &mut Criterion) {
    // With a ticking clock: a 1 ms-fresh reading, one atomic load.
    let ticking: Arc<dyn Clock> = Arc::new(SystemClock::ticking(Duration::from_millis(1)));
    let breaker = CircuitBreaker::new(BreakerConfig::default(), ticking).expect("valid config");
    // With an exact clock every call reads the time-stamp counter twice.
    let exact: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let exact_breaker = CircuitBreaker::new(BreakerConfig::default(), exact.clone()).expect("valid config");
    let mut group = c.benchmark_group("breaker_closed");
    group.bench_function("direct_call", |b| b.iter(|| work(7)));
    group.bench_function("through_breaker", |b| {
        b.iter(|| {
            let permit = breaker.try_acquire().expect("closed");
            let out = work(7);
            permit.success();
            out
        })
    });
    group.bench_function("through_breaker_exact_clock", |b| {
        b.iter(|| {
            let permit = exact_breaker.try_acquire().expect("closed");
            let out = work(7);
            permit.success();
            out
        })
    });
    group.bench_function("exact_clock_read", |b| b.iter(|| exact.now_micros()));
    group.finish();
}

fn keyed_limiter(c: &mut Criterion) {
    let keys: Vec<LimiterKey> = (0..1000)
        .map(|i| LimiterKey {
            tenant: TenantId::parse(format!("tenant-{i}")).expect("valid"),
            class: EndpointClass::Analytics,
        })
        .collect();
    let per_second = 1_000_000_000u32;
    let clock = SystemClock::new();
    let ours = InProcessRateLimitStore::new();
    let policy = RateLimitPolicy::gcra(per_second, Duration::from_secs(1));
    let governor = RateLimiter::keyed(Quota::per_second(NonZeroU32::new(per_second).expect("non-zero")));
    // Warm both key sets so the comparison is of checks, not inserts.
    for key in &keys {
        assert!(ours.check_now(key, &policy, clock.now()).allowed);
        assert!(governor.check_key(key).is_ok());
    }
    let mut group = c.benchmark_group("keyed_limiter");
    let mut i = 0usize;
    group.bench_function("governor", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            governor.check_key(&keys[i]).is_ok()
        })
    });
    group.bench_function("in_process_store", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            ours.check_micros(&keys[i], &policy, clock.now_micros()).allowed
        })
    });
    group.finish();
}

criterion_group!(benches, breaker_closed, keyed_limiter);
criterion_main!(benches);
