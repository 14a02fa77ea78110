//! The Redis rate-limit store on real servers: core's rate-limit suite (decisions identical to
//! the in-process store's, on injected time), on the server's clock, on a cluster, and two
//! stores sharing Redis.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use analytics_core::Error;
use analytics_core::model::TenantId;
use analytics_core::resilience::{EndpointClass, LimiterKey, RateLimitPolicy, RateLimitStore};
use analytics_core::testkit::SuiteOptions;
use analytics_core::testkit::rate_limit::{self, StoreTime};
use analytics_redis::{RedisConfig, RedisRateLimitStore, TimeSource};

/// Runs core's rate-limit suite on a store connected with `config`, deciding on `time`.
async fn conforms(config: RedisConfig, time: StoreTime) {
    let mut store = RedisRateLimitStore::connect(&config).await.unwrap();
    if time == StoreTime::Caller {
        store = store.time_source(TimeSource::Caller);
    }
    rate_limit::run_all(Arc::new(store), time, SuiteOptions::exact()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decides_as_the_in_process_store_on_injected_time() {
    if let Some(config) = support::standalone("limiter") {
        conforms(config, StoreTime::Caller).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_on_the_server_clock() {
    if let Some(config) = support::standalone("limiter-server-time") {
        conforms(config, StoreTime::Own).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_on_a_cluster() {
    if let Some(config) = support::cluster("limiter-cluster") {
        conforms(config, StoreTime::Caller).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_sharing_redis_never_admit_more_than_the_policy_together() {
    let Some(config) = support::standalone("two-limiters") else {
        return;
    };
    let stores = [
        Arc::new(RedisRateLimitStore::connect(&config).await.unwrap()),
        Arc::new(RedisRateLimitStore::connect(&config).await.unwrap()),
    ];
    let key = LimiterKey {
        tenant: TenantId::parse("shared").unwrap(),
        class: EndpointClass::EventsWrite,
    };
    for policy in [
        RateLimitPolicy::gcra(300, Duration::from_secs(24 * 60 * 60)),
        RateLimitPolicy::sliding_window(300, Duration::from_secs(24 * 60 * 60)),
    ] {
        let key = LimiterKey {
            class: if matches!(policy, RateLimitPolicy::Gcra { .. }) {
                EndpointClass::EventsWrite
            } else {
                EndpointClass::EventsRead
            },
            ..key.clone()
        };
        let admitted = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, admitted, key) = (stores[i % 2].clone(), admitted.clone(), key.clone());
                tokio::spawn(async move {
                    for _ in 0..100 {
                        if store.check(&key, &policy, chrono::Utc::now()).await.unwrap().allowed {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 300, "{policy:?}");
    }
}

#[tokio::test]
async fn windows_beyond_exact_lua_arithmetic_are_refused() {
    let Some(config) = support::standalone("limiter-range") else {
        return;
    };
    let store = RedisRateLimitStore::connect(&config).await.unwrap();
    let key = LimiterKey {
        tenant: TenantId::parse("t").unwrap(),
        class: EndpointClass::General,
    };
    let year = Duration::from_secs(365 * 24 * 60 * 60);
    let err = store
        .check(
            &key,
            &RateLimitPolicy::sliding_window(1_000_000, year),
            chrono::Utc::now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { ref field, .. } if field == "window"),
        "{err:?}"
    );
    let fine = RateLimitPolicy::sliding_window(1_000, Duration::from_secs(15 * 60));
    assert!(store.check(&key, &fine, chrono::Utc::now()).await.unwrap().allowed);
}
