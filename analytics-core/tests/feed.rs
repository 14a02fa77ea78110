//! Two instances over one store, one cache and one change feed (what two server processes share
//! through PostgreSQL and Redis): a live summary on one is pushed by an ingest on the other, and
//! recomputed when the feed says notices may have been missed.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::cache::MokaCache;
use analytics_core::clock::ManualClock;
use analytics_core::feed::MemoryChangeFeed;
use analytics_core::model::{Event, EventId, EventInput, EventType, TenantId};
use analytics_core::query::{Query, SummaryRequest};
use analytics_core::store::{EventStore, MemoryStore};
use analytics_core::{Analytics, LiveConfig, LiveSummary, LiveUpdate, SummaryOptions};
use serde_json::Value;

struct Deployment {
    store: Arc<MemoryStore>,
    feed: MemoryChangeFeed,
    a: Analytics,
    b: Analytics,
}

/// Two instances over one store and feed; with `shared_cache`, one cache too (as Redis is),
/// else each its own in-process cache.
fn deployment_with(shared_cache: bool) -> Deployment {
    let store = Arc::new(MemoryStore::new());
    let cache = Arc::new(MokaCache::default());
    let feed = MemoryChangeFeed::default();
    let instance = || {
        let cache = if shared_cache {
            cache.clone()
        } else {
            Arc::new(MokaCache::default())
        };
        Analytics::builder()
            .store(store.clone())
            .cache(cache)
            .clock(Arc::new(ManualClock::new("2024-06-01T00:00:00Z".parse().unwrap())))
            .live(LiveConfig {
                coalesce: Duration::ZERO,
            })
            .change_feed(Arc::new(feed.clone()))
            .build()
            .unwrap()
    };
    let (a, b) = (instance(), instance());
    Deployment { store, feed, a, b }
}

fn deployment() -> Deployment {
    deployment_with(true)
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn may() -> Query {
    Query::parse(&acme(), &SummaryRequest::new("2024-05-01", "2024-05-31")).unwrap()
}

fn click(id: &str) -> EventInput {
    serde_json::from_value(serde_json::json!({"id": id, "eventType": "click", "timestamp": "2024-05-10T10:00:00Z"}))
        .unwrap()
}

/// The next summary's total; a hang guard, not a timing assertion.
async fn next_total(live: &mut LiveSummary) -> u64 {
    let update = tokio::time::timeout(Duration::from_secs(30), live.next())
        .await
        .expect("no update within 30 s")
        .expect("the subscription ended");
    match update {
        LiveUpdate::Summary { json, .. } => serde_json::from_str::<Value>(&json).unwrap()["totalEvents"]
            .as_u64()
            .unwrap(),
        LiveUpdate::Failed(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn an_ingest_on_one_instance_pushes_the_live_summaries_of_another() {
    let d = deployment();
    let mut on_b = d.b.live_summary(may(), SummaryOptions::default(), None);
    assert_eq!(next_total(&mut on_b).await, 0);

    d.a.ingest(&acme(), vec![click("e1")]).await.unwrap();
    assert_eq!(next_total(&mut on_b).await, 1, "B heard A's ingest");
    d.a.ingest(&acme(), vec![click("e2"), click("e3")]).await.unwrap();
    assert_eq!(next_total(&mut on_b).await, 3);

    // The writer's own streams hear it once, from its own notice (its feed echo is skipped).
    let mut on_a = d.a.live_summary(may(), SummaryOptions::default(), None);
    assert_eq!(next_total(&mut on_a).await, 3);
    d.b.ingest(&acme(), vec![click("e4")]).await.unwrap();
    assert_eq!(next_total(&mut on_a).await, 4, "and A hears B's");
    assert_eq!(next_total(&mut on_b).await, 4);
}

#[tokio::test]
async fn a_resubscribed_feed_recomputes_every_live_summary() {
    let d = deployment();
    let mut on_b = d.b.live_summary(may(), SummaryOptions::default(), None);
    assert_eq!(next_total(&mut on_b).await, 0);
    // A change whose notice never arrives (written behind every facade's back, as a notice lost
    // with a dropped subscription would leave it)…
    let event = Event::new(
        acme(),
        EventId::parse("lost").unwrap(),
        EventType::parse("click").unwrap(),
        "2024-05-10T10:00:00Z".parse().unwrap(),
    );
    d.store.append(&acme(), &[event]).await.unwrap();
    // …is caught up with when the feed says notices may have been missed. The summary is
    // computed with skip-cache semantics of a fresh read: the store changed under the cache,
    // so the cache is invalidated as the lost ingest would have done.
    d.a.clear_cache(&acme()).await.unwrap();
    d.feed.resubscribe_all();
    assert_eq!(next_total(&mut on_b).await, 1);
}

#[tokio::test]
async fn an_instance_with_its_own_cache_invalidates_it_on_another_instances_notice() {
    let d = deployment_with(false);
    let summary = |analytics: &Analytics| {
        let analytics = analytics.clone();
        async move {
            analytics
                .summary(&acme(), &SummaryRequest::new("2024-05-01", "2024-05-31"))
                .await
                .unwrap()
        }
    };
    // B's stream and B's cache both hold the empty May.
    let mut on_b = d.b.live_summary(may(), SummaryOptions::default(), None);
    assert_eq!(next_total(&mut on_b).await, 0);
    summary(&d.b).await;
    assert!(summary(&d.b).await.metadata.cached);

    d.a.ingest(&acme(), vec![click("e1")]).await.unwrap();
    assert_eq!(next_total(&mut on_b).await, 1, "B's push read past its own cache");
    let read = summary(&d.b).await;
    assert_eq!(read.body.total_events, 1, "and so does a plain read on B");
}
