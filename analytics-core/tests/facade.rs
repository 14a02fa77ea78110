//! The facade end to end on the embedded defaults, driven by a virtual clock.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::cache::{CacheBackend, CacheEntry, CacheKey, CacheLookup, CacheStats, MokaCache, Tag};
use analytics_core::clock::ManualClock;
use analytics_core::model::{
    ApiKey, Event, EventId, EventInput, EventType, ExperimentId, ExperimentInput, ExperimentPatch, TenantId,
};
use analytics_core::query::{Granularity, Query, SummaryRequest};
use analytics_core::store::{EventListQuery, EventStore, MemoryStore, Pagination};
use analytics_core::testkit::InstrumentedStore;
use analytics_core::{Analytics, Error, Result, SummaryOptions};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn input(value: serde_json::Value) -> EventInput {
    serde_json::from_value(value).unwrap()
}

/// A cache whose every call fails, as a Redis outage would.
#[derive(Debug, Default)]
struct BrokenCache;

#[async_trait]
impl CacheBackend for BrokenCache {
    async fn get(&self, _: &TenantId, _: &CacheKey, _: &[Tag], _: DateTime<Utc>) -> Result<CacheLookup> {
        Err(Error::unavailable("cache down"))
    }
    async fn set(&self, _: &TenantId, _: &CacheKey, _: CacheEntry, _: DateTime<Utc>) -> Result<()> {
        Err(Error::unavailable("cache down"))
    }
    async fn invalidate(&self, _: &TenantId, _: &[Tag]) -> Result<()> {
        Err(Error::unavailable("cache down"))
    }
    async fn stats(&self) -> Result<CacheStats> {
        Err(Error::unavailable("cache down"))
    }
}

type CountingStore = InstrumentedStore<MemoryStore>;

struct Fixture {
    analytics: Analytics,
    store: Arc<CountingStore>,
    clock: ManualClock,
}

fn counting() -> CountingStore {
    InstrumentedStore::new(MemoryStore::new())
}

fn fixture(store: CountingStore) -> Fixture {
    let clock = ManualClock::new(at("2024-02-10T12:00:00Z"));
    let store = Arc::new(store);
    let analytics = Analytics::builder()
        .store(store.clone())
        .cache(Arc::new(MokaCache::default()))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    Fixture {
        analytics,
        store,
        clock,
    }
}

async fn seed(f: &Fixture, t: &TenantId) {
    let events = vec![
        input(
            json!({"id": "1", "userId": "u1", "eventType": "click", "page": "/", "device": "desktop", "timestamp": "2024-01-05T10:00:00Z"}),
        ),
        input(
            json!({"id": "2", "userId": "u2", "eventType": "view", "page": "/a", "device": "mobile", "timestamp": "2024-01-06T10:00:00Z"}),
        ),
        input(
            json!({"id": "3", "eventType": "view", "page": "/a", "device": "mobile", "timestamp": "2024-01-06T11:00:00Z"}),
        ),
    ];
    f.analytics.ingest(t, events).await.unwrap();
}

fn january() -> SummaryRequest {
    SummaryRequest::new("2024-01-01", "2024-01-31")
}

#[tokio::test]
async fn second_read_is_cached_until_its_ttl_on_the_virtual_clock() {
    let f = fixture(counting());
    let t = tenant("acme");
    seed(&f, &t).await;
    let first = f.analytics.summary(&t, &january()).await.unwrap();
    assert!(!first.metadata.cached);
    assert_eq!(first.body.total_events, 3);
    assert_eq!(first.body.unique_users, 2);
    assert_eq!(first.body.device_stats[0].device, "mobile");
    assert_eq!(first.body.device_stats[0].percentage, 66.67);
    let second = f.analytics.summary(&t, &january()).await.unwrap();
    assert!(second.metadata.cached);
    assert_eq!(second.body, first.body);
    assert_eq!(f.store.summaries(), 1);
    // January is historical at 2024-02-10: one hour of freshness.
    f.clock.advance(Duration::from_secs(3599));
    let still_fresh = f.analytics.summary(&t, &january()).await.unwrap();
    assert!(still_fresh.metadata.cached && !still_fresh.metadata.stale);
    f.clock.advance(Duration::from_secs(1));
    let expired = f.analytics.summary(&t, &january()).await.unwrap();
    assert!(
        expired.metadata.cached && expired.metadata.stale,
        "past its TTL: served stale while it refreshes"
    );
    for _ in 0..1_000 {
        if f.store.summaries() == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(f.store.summaries(), 2, "one background refresh");
    let refreshed = f.analytics.summary(&t, &january()).await.unwrap();
    assert!(refreshed.metadata.cached && !refreshed.metadata.stale);
}

#[tokio::test]
async fn a_read_after_an_acknowledged_write_sees_it() {
    let f = fixture(counting());
    let t = tenant("acme");
    seed(&f, &t).await;
    assert_eq!(f.analytics.summary(&t, &january()).await.unwrap().body.total_events, 3);
    f.analytics
        .ingest(
            &t,
            vec![input(
                json!({"eventType": "click", "timestamp": "2024-01-20T08:00:00Z"}),
            )],
        )
        .await
        .unwrap();
    let after = f.analytics.summary(&t, &january()).await.unwrap();
    assert!(!after.metadata.cached, "the ingest invalidated the cached answer");
    assert_eq!(after.body.total_events, 4);
    // A write to another month leaves January's answer cached.
    f.analytics
        .ingest(
            &t,
            vec![input(
                json!({"eventType": "click", "timestamp": "2024-02-01T08:00:00Z"}),
            )],
        )
        .await
        .unwrap();
    assert!(f.analytics.summary(&t, &january()).await.unwrap().metadata.cached);
}

#[tokio::test]
async fn tenants_do_not_share_cached_answers() {
    let f = fixture(counting());
    let (a, b) = (tenant("a"), tenant("b"));
    seed(&f, &a).await;
    assert_eq!(f.analytics.summary(&a, &january()).await.unwrap().body.total_events, 3);
    let other = f.analytics.summary(&b, &january()).await.unwrap();
    assert!(!other.metadata.cached);
    assert_eq!(other.body.total_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_the_store_once() {
    let (store, gate) = InstrumentedStore::gated(MemoryStore::new());
    let f = fixture(store);
    let t = tenant("acme");
    seed(&f, &t).await;
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (analytics, t) = (f.analytics.clone(), t.clone());
            tokio::spawn(async move { analytics.summary(&t, &january()).await })
        })
        .collect();
    while f.store.summaries() == 0 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(100);
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().body.total_events, 3);
    }
    assert_eq!(f.store.summaries(), 1);
}

#[tokio::test]
async fn skip_cache_recomputes_and_refreshes_the_entry() {
    let f = fixture(counting());
    let t = tenant("acme");
    seed(&f, &t).await;
    f.analytics.summary(&t, &january()).await.unwrap();
    let fresh = f
        .analytics
        .summary(
            &t,
            &SummaryRequest {
                skip_cache: true,
                ..january()
            },
        )
        .await
        .unwrap();
    assert!(!fresh.metadata.cached);
    assert_eq!(f.store.summaries(), 2);
    assert!(f.analytics.summary(&t, &january()).await.unwrap().metadata.cached);
}

#[tokio::test]
async fn a_cache_outage_fails_neither_queries_nor_writes() {
    let store = Arc::new(MemoryStore::new());
    let analytics = Analytics::builder()
        .store(store.clone())
        .cache(Arc::new(BrokenCache))
        .build()
        .unwrap();
    let t = tenant("acme");
    let outcome = analytics
        .ingest(
            &t,
            vec![input(
                json!({"id": "e1", "eventType": "click", "timestamp": "2024-01-05T10:00:00Z"}),
            )],
        )
        .await
        .unwrap();
    assert_eq!(outcome.accepted.len(), 1, "acknowledged: the events are committed");
    // The invalidation the cache could not take is owed, durably, in the store.
    let owed = store.owed_invalidations().await.unwrap();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].tenant, t);
    assert!(!owed[0].tags.is_empty());
    let summary = analytics.summary(&t, &january()).await.unwrap();
    assert_eq!(summary.body.total_events, 1);
    assert!(!summary.metadata.cached);
    let same = Event::new(
        t.clone(),
        EventId::parse("e1").unwrap(),
        EventType::parse("click").unwrap(),
        at("2024-01-05T10:00:00Z"),
    );
    let retry = store.append(&t, &[same]).await;
    assert_eq!(retry.unwrap().duplicates.len(), 1);
}

#[tokio::test]
async fn ingest_rejects_a_bad_batch_whole_naming_the_element() {
    let f = fixture(counting());
    let t = tenant("acme");
    let err = f
        .analytics
        .ingest(
            &t,
            vec![
                input(json!({"eventType": "click"})),
                input(json!({"eventType": "click", "timestamp": "2024-03-01T00:00:00Z"})),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "events[1].timestamp"),
        "{err}"
    );
    assert_eq!(
        f.analytics
            .summary(&t, &SummaryRequest::new("2024-02-01", "2024-02-29"))
            .await
            .unwrap()
            .body
            .total_events,
        0
    );
    let err = f.analytics.ingest(&t, vec![]).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { field, .. } if field == "events"));
    let too_many = vec![input(json!({"eventType": "x"})); analytics_core::analytics::MAX_BATCH + 1];
    assert!(matches!(
        f.analytics.ingest(&t, too_many).await,
        Err(Error::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn retried_ingest_reports_duplicates_and_counts_once() {
    let f = fixture(counting());
    let t = tenant("acme");
    let batch = vec![input(
        json!({"id": "a", "eventType": "click", "timestamp": "2024-01-05T10:00:00Z"}),
    )];
    assert_eq!(f.analytics.ingest(&t, batch.clone()).await.unwrap().accepted.len(), 1);
    let retry = f.analytics.ingest(&t, batch).await.unwrap();
    assert_eq!(retry.duplicates.len(), 1);
    assert_eq!(f.analytics.summary(&t, &january()).await.unwrap().body.total_events, 1);
}

#[tokio::test]
async fn experiment_queries_use_the_registered_conversion_type() {
    let f = fixture(counting());
    let t = tenant("acme");
    let experiment: ExperimentInput = serde_json::from_value(json!({
        "id": "exp_1", "name": "Checkout", "conversionEventType": "purchase",
        "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]
    }))
    .unwrap();
    f.analytics.create_experiment(&t, experiment).await.unwrap();
    let events = vec![
        input(
            json!({"userId": "u1", "eventType": "view", "properties": {"experimentId": "exp_1", "variant": "A"}, "timestamp": "2024-01-05T10:00:00Z"}),
        ),
        input(
            json!({"userId": "u1", "eventType": "purchase", "properties": {"experimentId": "exp_1", "variant": "A"}, "timestamp": "2024-01-05T11:00:00Z"}),
        ),
        input(
            json!({"userId": "u2", "eventType": "CONVERSION", "properties": {"experimentId": "exp_1", "variant": "B"}, "timestamp": "2024-01-05T11:00:00Z"}),
        ),
    ];
    f.analytics.ingest(&t, events).await.unwrap();
    let summary = f.analytics.summary(&t, &january().experiment("exp_1")).await.unwrap();
    let variants = summary.body.variants.unwrap();
    assert_eq!(variants["A"].conversions, 1);
    assert_eq!(variants["A"].conversion_rate, 1.0);
    assert_eq!(
        variants["B"].conversions, 0,
        "CONVERSION is not this experiment's conversion type"
    );
    let json = serde_json::to_value(f.analytics.summary(&t, &january().experiment("exp_1")).await.unwrap()).unwrap();
    assert_eq!(json["variants"]["A"]["conversionRate"], json!(1.0));
    assert_eq!(json["_metadata"]["cached"], json!(true));

    let id = ExperimentId::parse("exp_1").unwrap();
    let patch = ExperimentPatch {
        conversion_event_type: Some("CONVERSION".into()),
        ..Default::default()
    };
    f.analytics.update_experiment(&t, &id, patch).await.unwrap();
    let summary = f.analytics.summary(&t, &january().experiment("exp_1")).await.unwrap();
    assert!(
        !summary.metadata.cached,
        "a changed conversion type is a different query"
    );
    assert_eq!(summary.body.variants.unwrap()["B"].conversions, 1);
    let missing = f.analytics.get_experiment(&tenant("other"), &id).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }));
}

#[tokio::test]
async fn tenants_authenticate_by_api_key() {
    let f = fixture(counting());
    let (created, key) = f.analytics.create_tenant(tenant("acme"), "Acme Inc").await.unwrap();
    assert_eq!(f.analytics.authenticate(&key).await.unwrap(), created.id);
    let stranger = ApiKey::generate().unwrap();
    assert!(matches!(
        f.analytics.authenticate(&stranger).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        f.analytics.create_tenant(tenant("acme"), "Again").await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test]
async fn acknowledged_ingests_are_announced() {
    let f = fixture(counting());
    let mut changes = f.analytics.subscribe();
    let t = tenant("acme");
    seed(&f, &t).await;
    let notice = changes.recv().await.unwrap();
    assert_eq!((notice.tenant, notice.accepted), (t, 3));
}

#[tokio::test]
async fn summary_json_has_the_seed_shape() {
    let f = fixture(counting());
    let t = tenant("acme");
    seed(&f, &t).await;
    let request = SummaryRequest::new("2024-01-05", "2024-01-06")
        .group_by(Granularity::Hour)
        .timezone("America/New_York");
    let json = serde_json::to_value(f.analytics.summary(&t, &request).await.unwrap()).unwrap();
    for field in [
        "totalEvents",
        "uniqueUsers",
        "eventsByType",
        "timeSeriesData",
        "topPages",
        "deviceStats",
        "browserStats",
        "countryStats",
        "_metadata",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    assert_eq!(json["timeSeriesData"].as_array().unwrap().len(), 48);
    assert_eq!(
        json["timeSeriesData"][0]["timestamp"],
        json!("2024-01-05T00:00:00-05:00")
    );
    assert_eq!(json["eventsByType"][0], json!({"eventType": "view", "count": 2}));
    assert_eq!(json["topPages"][0], json!({"page": "/a", "views": 2}));
    assert_eq!(json["_metadata"]["granularity"], json!("hour"));
    assert_eq!(json["_metadata"]["timezone"], json!("America/New_York"));
    assert_eq!(json["_metadata"]["loadLevel"], json!("NORMAL"));
    assert!(json.get("variants").is_none());
}

#[tokio::test]
async fn summary_json_is_the_typed_summary_serialized() {
    let f = fixture(counting());
    let t = tenant("acme");
    seed(&f, &t).await;
    let experiment: ExperimentInput = serde_json::from_value(json!({
        "id": "exp_1", "name": "Checkout",
        "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]
    }))
    .unwrap();
    f.analytics.create_experiment(&t, experiment).await.unwrap();
    let exposure = json!({"userId": "u1", "eventType": "view", "timestamp": "2024-01-05T10:00:00Z",
        "properties": {"experimentId": "exp_1", "variant": "A"}});
    f.analytics.ingest(&t, vec![input(exposure)]).await.unwrap();
    let requests = [
        january(),
        january().experiment("exp_1"),
        SummaryRequest::new("2024-01-05", "2024-01-06")
            .group_by(Granularity::Hour)
            .timezone("Asia/Kolkata"),
    ];
    for request in &requests {
        let query = Query::parse(&t, request).unwrap();
        for skip_cache in [true, false, false] {
            // Computed (skip_cache), then a miss that fills the cache, then a hit.
            let options = SummaryOptions {
                skip_cache,
                ..SummaryOptions::default()
            };
            let typed = f.analytics.summary_with(query.clone(), options).await.unwrap();
            let json = f.analytics.summary_json_with(query.clone(), options).await.unwrap();
            assert_eq!(json.len(), json.head().len() + json.tail().len());
            assert_eq!(
                String::from_utf8(json.to_vec()).unwrap(),
                serde_json::to_string(&typed).unwrap(),
                "{request:?}, skip_cache {skip_cache}"
            );
        }
    }
}

#[tokio::test]
async fn event_log_pages_through_the_facade() {
    let f = fixture(counting());
    let t = tenant("acme");
    seed(&f, &t).await;
    let query = EventListQuery {
        range: None,
        event_type: None,
        user_id: None,
        pagination: Pagination::Offset { page: 1, limit: 2 },
    };
    let page = f.analytics.list_events(&t, &query).await.unwrap();
    assert_eq!(page.total, Some(3));
    assert_eq!(page.events[0].id.as_str(), "3", "newest first");
    let bad = EventListQuery {
        pagination: Pagination::Offset { page: 1, limit: 5000 },
        ..query
    };
    assert!(
        matches!(f.analytics.list_events(&t, &bad).await, Err(Error::InvalidInput { field, .. }) if field == "limit")
    );
}
