//! The facade under faults and load, on a virtual clock: stale serving, the breaker,
//! stale-while-revalidate, degradation and shedding.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::clock::ManualClock;
use analytics_core::model::{Event, EventInput, TenantId};
use analytics_core::query::{Granularity, LoadLevel, Query, SummaryRequest};
use analytics_core::resilience::{BreakerConfig, BreakerState, LoadConfig, LoadGuard, Priority, SlidingWindow};
use analytics_core::store::{EventStore, MemoryStore};
use analytics_core::testkit::InstrumentedStore;
use analytics_core::{Analytics, Error, HealthStatus, Result, ServingPolicy, SummaryOptions};
use serde_json::json;

type FlakyStore = InstrumentedStore<MemoryStore>;

struct Fixture {
    analytics: Analytics,
    store: Arc<FlakyStore>,
    clock: ManualClock,
    tenant: TenantId,
}

fn fixture(serving: ServingPolicy, breaker: Option<BreakerConfig>, load: LoadConfig) -> Fixture {
    let clock = ManualClock::new("2024-03-01T12:00:00Z".parse().unwrap());
    let store = Arc::new(InstrumentedStore::new(MemoryStore::new()));
    let analytics = Analytics::builder()
        .store(store.clone())
        .clock(Arc::new(clock.clone()))
        .serving(serving)
        .breaker(breaker)
        .load(load)
        .build()
        .unwrap();
    Fixture {
        analytics,
        store,
        clock,
        tenant: TenantId::parse("acme").unwrap(),
    }
}

fn no_swr() -> ServingPolicy {
    ServingPolicy {
        stale_while_revalidate: false,
        ..ServingPolicy::default()
    }
}

fn fixed_load(limit: u32) -> LoadConfig {
    LoadConfig {
        initial_limit: limit,
        min_limit: limit,
        max_limit: limit,
        ..LoadConfig::default()
    }
}

async fn ingest(f: &Fixture, timestamp: &str) {
    let event: EventInput =
        serde_json::from_value(json!({"userId": "u", "eventType": "click", "page": "/", "timestamp": timestamp}))
            .unwrap();
    f.analytics.ingest(&f.tenant, vec![event]).await.unwrap();
}

fn january() -> SummaryRequest {
    SummaryRequest::new("2024-01-01", "2024-01-31")
}

async fn total(f: &Fixture, request: &SummaryRequest) -> Result<(u64, bool, bool)> {
    let s = f.analytics.summary(&f.tenant, request).await?;
    Ok((s.body.total_events, s.metadata.cached, s.metadata.stale))
}

#[tokio::test]
async fn the_store_failing_serves_the_stale_entry_with_its_age() {
    let f = fixture(no_swr(), None, LoadConfig::default());
    ingest(&f, "2024-01-10T10:00:00Z").await;
    assert_eq!(total(&f, &january()).await.unwrap(), (1, false, false));
    f.clock.advance(Duration::from_secs(90 * 60)); // past the 1 h historical TTL, inside the stale hour
    f.store.set_down(true);
    let summary = f.analytics.summary(&f.tenant, &january()).await.unwrap();
    assert!(summary.metadata.stale && summary.metadata.cached);
    assert_eq!(summary.metadata.age_ms, Some(90 * 60 * 1000));
    assert_eq!(summary.metadata.degraded, ["store-unavailable"]);
    assert_eq!(summary.body.total_events, 1);
    let nothing_cached = f
        .analytics
        .summary(&f.tenant, &SummaryRequest::new("2024-02-01", "2024-02-10"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            nothing_cached,
            Error::Unavailable {
                retry_after: Some(_),
                ..
            }
        ),
        "{nothing_cached}"
    );
    f.clock.advance(Duration::from_secs(31 * 60)); // past the stale window too
    assert!(matches!(
        f.analytics.summary(&f.tenant, &january()).await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test]
async fn an_answer_invalidated_by_a_write_is_the_labelled_fallback_during_an_outage() {
    let f = fixture(no_swr(), None, LoadConfig::default());
    ingest(&f, "2024-01-10T10:00:00Z").await;
    total(&f, &january()).await.unwrap();
    ingest(&f, "2024-01-11T10:00:00Z").await;
    f.store.set_down(true);
    assert_eq!(
        total(&f, &january()).await.unwrap(),
        (1, true, true),
        "the pre-write answer, marked stale"
    );
    f.store.set_down(false);
    assert_eq!(
        total(&f, &january()).await.unwrap(),
        (2, false, false),
        "never served as fresh"
    );
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers() {
    let breaker = BreakerConfig {
        window: SlidingWindow::Count(4),
        minimum_calls: 2,
        wait_in_open: Duration::from_secs(30),
        half_open_permits: 1,
        ..BreakerConfig::default()
    };
    let f = fixture(ServingPolicy::default(), Some(breaker), LoadConfig::default());
    f.store.set_down(true);
    for day in ["2024-02-01", "2024-02-02"] {
        assert!(
            f.analytics
                .summary(&f.tenant, &SummaryRequest::new(day, day))
                .await
                .is_err()
        );
    }
    assert_eq!(f.analytics.breaker().unwrap().state(), BreakerState::Open);
    let calls = f.store.summaries();
    let refused = f
        .analytics
        .summary(&f.tenant, &SummaryRequest::new("2024-02-03", "2024-02-03"))
        .await
        .unwrap_err();
    assert_eq!(f.store.summaries(), calls, "an open breaker does not touch the store");
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
    let health = f.analytics.health().await;
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert_eq!(health.circuit_breaker.unwrap().state, BreakerState::Open);
    f.store.set_down(false);
    f.clock.advance(Duration::from_secs(30));
    assert!(
        f.analytics.summary(&f.tenant, &january()).await.is_ok(),
        "the half-open trial succeeds"
    );
    assert_eq!(f.analytics.breaker().unwrap().state(), BreakerState::Closed);
    assert_eq!(f.analytics.health().await.status, HealthStatus::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let f = fixture(ServingPolicy::default(), None, LoadConfig::default());
    ingest(&f, "2024-01-10T10:00:00Z").await;
    total(&f, &january()).await.unwrap();
    // Data changes without invalidation (another writer), then freshness runs out.
    let later = Event::new(
        f.tenant.clone(),
        analytics_core::model::EventId::parse("late").unwrap(),
        analytics_core::model::EventType::parse("click").unwrap(),
        "2024-01-12T00:00:00Z".parse().unwrap(),
    );
    f.store.inner().append(&f.tenant, &[later]).await.unwrap();
    f.clock.advance(Duration::from_secs(3601));
    let before = f.store.summaries();
    assert_eq!(total(&f, &january()).await.unwrap(), (1, true, true), "stale, at once");
    for _ in 0..5 {
        // Stale or already refreshed, depending on how quickly the refresh ran.
        assert!(total(&f, &january()).await.unwrap().0 >= 1);
    }
    let mut fresh = None;
    for _ in 0..10_000 {
        let (n, cached, stale) = total(&f, &january()).await.unwrap();
        if !stale {
            fresh = Some((n, cached));
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(fresh, Some((2, true)), "the background refresh replaced the entry");
    assert_eq!(f.store.summaries() - before, 1, "one refresh for all the stale reads");
}

fn hold(f: &Fixture, n: usize) -> Vec<LoadGuard> {
    (0..n)
        .map(|_| f.analytics.load().admit(Priority::HIGHEST).unwrap())
        .collect()
}

async fn summary_at(f: &Fixture, request: &SummaryRequest, priority: u8) -> Result<analytics_core::query::Summary> {
    let query = Query::parse(&f.tenant, request)?;
    f.analytics
        .summary_with(
            query,
            SummaryOptions {
                skip_cache: false,
                priority: Priority::new(priority)?,
            },
        )
        .await
}

#[tokio::test]
async fn high_load_coarsens_and_drops_breakdowns_for_low_priorities() {
    let f = fixture(ServingPolicy::default(), None, fixed_load(10));
    ingest(&f, "2024-01-10T10:00:00Z").await;
    let _busy = hold(&f, 8);
    let hourly = SummaryRequest::new("2024-01-10", "2024-01-10").group_by(Granularity::Hour);
    let low = summary_at(&f, &hourly, 5).await.unwrap();
    assert_eq!(low.metadata.load_level, LoadLevel::High);
    assert_eq!(low.metadata.granularity, Granularity::Day);
    assert_eq!(low.metadata.degraded, ["granularity:hour->day", "breakdowns"]);
    assert!(low.body.top_pages.is_empty() && low.body.device_stats.is_empty());
    assert_eq!(low.body.total_events, 1);
    let important = summary_at(&f, &hourly, 9).await.unwrap();
    assert_eq!(important.metadata.granularity, Granularity::Hour);
    assert_eq!(important.body.top_pages.len(), 1);
    assert!(
        matches!(summary_at(&f, &hourly, 2).await, Err(Error::Overloaded { .. })),
        "priorities below 3 are shed at HIGH"
    );
}

#[tokio::test]
async fn critical_load_answers_from_cache_or_for_the_highest_priorities() {
    let f = fixture(ServingPolicy::default(), None, fixed_load(10));
    ingest(&f, "2024-01-10T10:00:00Z").await;
    total(&f, &january()).await.unwrap();
    let _busy = hold(&f, 10);
    let cached = summary_at(&f, &january(), 6).await.unwrap();
    assert_eq!(cached.metadata.load_level, LoadLevel::Critical);
    assert!(cached.metadata.cached);
    let uncached = SummaryRequest::new("2024-02-01", "2024-02-10");
    let calls = f.store.summaries();
    assert!(matches!(
        summary_at(&f, &uncached, 7).await,
        Err(Error::Overloaded { .. })
    ));
    assert!(
        matches!(summary_at(&f, &january(), 5).await, Err(Error::Overloaded { .. })),
        "shed below 6"
    );
    assert_eq!(f.store.summaries(), calls, "nothing below priority 9 reached the store");
    assert!(
        summary_at(&f, &uncached, 9).await.is_ok(),
        "the highest priorities still compute"
    );
}

#[tokio::test]
async fn elevated_load_prefers_the_stale_entry_without_refreshing() {
    let f = fixture(ServingPolicy::default(), None, fixed_load(10));
    ingest(&f, "2024-01-10T10:00:00Z").await;
    total(&f, &january()).await.unwrap();
    f.clock.advance(Duration::from_secs(3601));
    let _busy = hold(&f, 6);
    let calls = f.store.summaries();
    let summary = summary_at(&f, &january(), 5).await.unwrap();
    assert!(summary.metadata.stale);
    assert_eq!(summary.metadata.degraded, ["cache-preferred"]);
    tokio::task::yield_now().await;
    assert_eq!(f.store.summaries(), calls, "no refresh at ELEVATED");
}
