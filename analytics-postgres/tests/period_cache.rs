//! Decoded `period_stats` rows kept between summaries never go stale: rows another instance
//! writes into periods this one has read, a compaction by another instance, and summaries that
//! alternate exact and estimated unique users all answer as the reference does.

mod support;

use analytics_core::model::{Event, EventId, EventType, Page, TenantId, UserId};
use analytics_core::query::{Granularity, Query, SummaryRequest};
use analytics_core::store::EventStore;
use analytics_postgres::PostgresStore;
use chrono::{DateTime, Duration, Utc};

/// `n` events seven minutes apart from `start`, over 40 users and 6 pages.
fn events(tenant: &TenantId, prefix: &str, start: &str, n: usize) -> Vec<Event> {
    let start: DateTime<Utc> = start.parse().unwrap();
    (0..n)
        .map(|i| {
            let mut e = Event::new(
                tenant.clone(),
                EventId::parse(format!("{prefix}-{i}")).unwrap(),
                EventType::parse(if i % 3 == 0 { "click" } else { "view" }).unwrap(),
                start + Duration::minutes(7 * i as i64),
            );
            e.user_id = Some(UserId::parse(format!("{prefix}-user-{}", i % 40)).unwrap());
            e.page = Some(Page::parse(format!("https://shop.example/{}", i % 6)).unwrap());
            e
        })
        .collect()
}

/// Twelve whole days by day: read from day and week rows.
fn query(tenant: &TenantId, exact: bool) -> Query {
    let request = SummaryRequest::new("2024-05-01", "2024-05-12").group_by(Granularity::Day);
    Query::parse(tenant, &request).unwrap().with_exact_unique_users(exact)
}

/// Asserts `store` answers as the reference does over `events`, unique users exactly when the
/// query asks so and otherwise within 2% (a handful of sparse sketches: nearly exact).
async fn assert_answers(store: &PostgresStore, events: &[Event], exact: bool) {
    support::assert_matches_reference(store, events, query(&events[0].tenant_id, exact), 0.02).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_rows_never_hide_other_instances_writes_or_compactions() {
    let Some(config) = support::config("period_cache") else {
        return;
    };
    // No compaction on ingest: each batch adds rows to the periods it touches.
    let config = config.compact_after(0);
    let here = PostgresStore::connect(&config).await.unwrap();
    let there = PostgresStore::connect(&config).await.unwrap();
    let tenant = TenantId::parse("shop").unwrap();

    let mut all = events(&tenant, "first", "2024-05-01T00:00:00Z", 2_000);
    here.append(&tenant, &all).await.unwrap();
    for exact in [false, true, false] {
        assert_answers(&here, &all, exact).await;
    }

    // Another instance writes into the periods this one holds rows of.
    let more = events(&tenant, "second", "2024-05-02T03:30:00Z", 1_500);
    there.append(&tenant, &more).await.unwrap();
    all.extend(more);
    // Exact first: rows it reads without their sketches must not stand in for the estimate's.
    for exact in [true, false] {
        assert_answers(&here, &all, exact).await;
    }

    // The other instance merges every period's rows into new ones.
    assert!(there.compact().await.unwrap() > 0);
    for exact in [false, true] {
        assert_answers(&here, &all, exact).await;
    }

    // And another tenant's rows in the same periods stay out of this tenant's answers.
    let other = TenantId::parse("other").unwrap();
    there
        .append(&other, &events(&other, "third", "2024-05-01T00:00:00Z", 500))
        .await
        .unwrap();
    assert_answers(&here, &all, false).await;
}
