//! Ingestion on a real PostgreSQL: concurrency, retries, partitions, experiment state.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use analytics_core::generator::{EXPERIMENT_ID, EventGenerator, GeneratorConfig};
use analytics_core::model::{Event, EventId, EventType, ExperimentId, TenantId, UserId};
use analytics_core::query::{Granularity, Query, SummaryRequest};
use analytics_core::reference;
use analytics_core::store::EventStore;
use analytics_postgres::{PostgresConfig, PostgresStore};
use chrono::{DateTime, TimeDelta, Utc};

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn event(tenant: &TenantId, id: &str, at: DateTime<Utc>, user: Option<&str>) -> Event {
    let mut e = Event::new(
        tenant.clone(),
        EventId::parse(id).unwrap(),
        EventType::parse("view").unwrap(),
        at,
    );
    e.user_id = user.map(|u| UserId::parse(u).unwrap());
    e
}

fn query(tenant: &TenantId, start: &str, end: &str, exact: bool) -> Query {
    let request = SummaryRequest::new(start, end).group_by(Granularity::Hour);
    Query::parse(tenant, &request).unwrap().with_exact_unique_users(exact)
}

/// Asserts the store answers `query` as the reference does over `events`, unique users exactly
/// when `exact` and otherwise within 1%.
async fn assert_matches_reference(store: &PostgresStore, events: &[Event], query: Query) {
    support::assert_matches_reference(store, events, query, 0.01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_for_one_hour_stay_exact() {
    let Some(store) = support::store("concurrent").await else {
        return;
    };
    let store = Arc::new(store);
    let t = tenant("busy");
    let hour: DateTime<Utc> = "2024-05-01T10:00:00Z".parse().unwrap();
    // 8 tasks × 6 batches of 250 events in one hour; every task also resends ids of task 0, so
    // batches race on the same ledger keys, rollup rows and sketches.
    let batch = |task: usize, b: usize| -> Vec<Event> {
        (0..250)
            .map(|i| {
                let owner = if i % 5 == 0 { 0 } else { task };
                let n = owner * 10_000 + b * 250 + i;
                let at = hour + TimeDelta::milliseconds((n * 1_000 % 3_600_000) as i64);
                event(&t, &format!("e{n}"), at, Some(&format!("u{}", n % 700)))
            })
            .collect()
    };
    let per_task: Vec<Vec<Vec<Event>>> = (0..8).map(|task| (0..6).map(|b| batch(task, b)).collect()).collect();
    let tasks: Vec<_> = per_task
        .iter()
        .cloned()
        .map(|batches| {
            let store = store.clone();
            let t = t.clone();
            tokio::spawn(async move {
                let mut accepted = 0;
                for batch in &batches {
                    accepted += store.append(&t, batch).await.unwrap().accepted.len();
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    let mut unique: BTreeMap<String, Event> = BTreeMap::new();
    for e in per_task.into_iter().flatten().flatten() {
        unique.entry(e.id.as_str().to_string()).or_insert(e);
    }
    let events: Vec<Event> = unique.into_values().collect();
    assert_eq!(accepted, events.len(), "every distinct id accepted exactly once");
    for exact in [true, false] {
        assert_matches_reference(&store, &events, query(&t, "2024-05-01", "2024-05-01", exact)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batches_are_reported_and_never_counted_twice() {
    let Some(store) = support::store("retries").await else {
        return;
    };
    let store = Arc::new(store);
    let t = tenant("retry");
    let at: DateTime<Utc> = "2024-06-03T08:30:00Z".parse().unwrap();
    let batch: Vec<Event> = (0..400)
        .map(|i| {
            event(
                &t,
                &format!("r{i}"),
                at + TimeDelta::seconds(i),
                Some(&format!("u{}", i % 37)),
            )
        })
        .collect();
    let first = store.append(&t, &batch).await.unwrap();
    assert_eq!(first.accepted.len(), 400);
    // The client did not hear back and retries three times at once.
    let retries: Vec<_> = (0..3)
        .map(|_| {
            let (store, t, batch) = (store.clone(), t.clone(), batch.clone());
            tokio::spawn(async move { store.append(&t, &batch).await.unwrap() })
        })
        .collect();
    for retry in retries {
        let outcome = retry.await.unwrap();
        assert!(outcome.accepted.is_empty());
        assert_eq!(outcome.duplicates.len(), 400);
    }
    // A retry mixed with new events accepts only the new ones.
    let mut mixed = batch[..10].to_vec();
    mixed.push(event(&t, "r-new", at, Some("u-new")));
    let outcome = store.append(&t, &mixed).await.unwrap();
    assert_eq!(outcome.accepted, [EventId::parse("r-new").unwrap()]);
    let mut all = batch;
    all.push(mixed.pop().unwrap());
    for exact in [true, false] {
        assert_matches_reference(&store, &all, query(&t, "2024-06-03", "2024-06-03", exact)).await;
    }
}

async fn partition_of(store: &PostgresStore, id: &str) -> String {
    sqlx::query_scalar("SELECT tableoid::regclass::text FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_a_month_without_a_partition_are_stored_and_counted() {
    let Some(store) = support::store("partitions").await else {
        return;
    };
    let t = tenant("old");
    // A month no event has touched: its partition is created on the way in.
    let march: DateTime<Utc> = "1999-03-15T12:00:00Z".parse().unwrap();
    let e = event(&t, "m1", march, Some("u1"));
    assert_eq!(
        store.append(&t, std::slice::from_ref(&e)).await.unwrap().accepted.len(),
        1
    );
    assert_eq!(partition_of(&store, "m1").await, "events_p199903");

    // A month whose partition cannot be created because the default partition already holds
    // rows of it (written while it was missing): the event is still stored, in the default.
    sqlx::query(
        "INSERT INTO events (tenant_id, id, ts, event_type, properties) \
         VALUES ('someone-else', 'x', '2001-05-02T00:00:00Z', 'view', '{}')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let may: DateTime<Utc> = "2001-05-20T06:00:00Z".parse().unwrap();
    let late = event(&t, "m2", may, Some("u2"));
    assert_eq!(
        store
            .append(&t, std::slice::from_ref(&late))
            .await
            .unwrap()
            .accepted
            .len(),
        1
    );
    assert_eq!(partition_of(&store, "m2").await, "events_default");

    for (e, day) in [(e, "1999-03-15"), (late, "2001-05-20")] {
        for exact in [true, false] {
            assert_matches_reference(&store, std::slice::from_ref(&e), query(&t, day, day, exact)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_state_matches_the_reference_over_the_whole_experiment() {
    let Some(store) = support::store("experiment_state").await else {
        return;
    };
    let end: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
    let events: Vec<Event> = EventGenerator::new(GeneratorConfig::new(11, 20_000, end, 10)).collect();
    let t = events[0].tenant_id.clone();
    let mine: Vec<Event> = events.into_iter().filter(|e| e.tenant_id == t).collect();
    for batch in mine.chunks(3_000) {
        store.append(&t, batch).await.unwrap();
    }
    let experiment = ExperimentId::parse(EXPERIMENT_ID).unwrap();
    for conversion in ["CONVERSION", "signup"] {
        let conversion = EventType::parse(conversion).unwrap();
        let request = SummaryRequest::new("2024-02-20", "2024-02-29").experiment(EXPERIMENT_ID);
        let query = Query::parse(&t, &request)
            .unwrap()
            .with_conversion_event_type(conversion.clone());
        let want = reference::aggregate(&mine, &query).variants.unwrap();
        let got = store.experiment_state(&t, &experiment, &conversion).await.unwrap();
        assert!(want.len() >= 2, "the generator runs a two-variant experiment");
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    // Port 1 on loopback refuses connections: no server needed for this test.
    let config = PostgresConfig::new("postgres://postgres@127.0.0.1:1/postgres")
        .acquire_timeout(std::time::Duration::from_secs(2));
    let error = PostgresStore::connect(&config).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}

/// The most `period_stats` rows any (level, period) of `tenant` has.
/// 20 batches of 50 events, every batch spread over the same three hours of 2024-05-01.
fn three_hour_batches(t: &TenantId) -> Vec<Vec<Event>> {
    let start: DateTime<Utc> = "2024-05-01T09:00:00Z".parse().unwrap();
    (0..20)
        .map(|b| {
            (0..50)
                .map(|i| {
                    let n = b * 50 + i;
                    let at = start + TimeDelta::seconds((n * 617 % 10_800) as i64);
                    event(t, &format!("c{n}"), at, Some(&format!("u{}", n % 90)))
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_bounds_rows_per_period_and_changes_no_answer() {
    let Some(config) = support::config("compaction") else {
        return;
    };
    let store = Arc::new(PostgresStore::connect(&config.compact_after(3)).await.unwrap());
    let t = tenant("compacted");
    let batches = three_hour_batches(&t);
    // Four tasks append concurrently while a fifth compacts everything again and again: every
    // row must be merged exactly once, whatever interleaving happens.
    let appenders: Vec<_> = (0..4)
        .map(|task| {
            let (store, t, batches) = (store.clone(), t.clone(), batches.clone());
            tokio::spawn(async move {
                for batch in batches.iter().skip(task).step_by(4) {
                    store.append(&t, batch).await.unwrap();
                }
            })
        })
        .collect();
    let compactor = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                store.compact().await.unwrap();
            }
        })
    };
    for task in appenders {
        task.await.unwrap();
    }
    compactor.await.unwrap();
    // Each period was compacted after at most three of this store's rows.
    assert!(support::max_rows_per_period(&store, &t).await <= 3);
    let events: Vec<Event> = batches.into_iter().flatten().collect();
    for exact in [true, false] {
        assert_matches_reference(&store, &events, query(&t, "2024-05-01", "2024-05-01", exact)).await;
    }
    store.compact().await.unwrap();
    assert_eq!(
        support::max_rows_per_period(&store, &t).await,
        1,
        "compact() leaves one row per period"
    );
    for exact in [true, false] {
        assert_matches_reference(&store, &events, query(&t, "2024-05-01", "2024-05-01", exact)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_rows_are_rebuilt_from_events_when_a_migration_asks() {
    let Some(config) = support::config("rebuild") else {
        return;
    };
    let store = PostgresStore::connect(&config).await.unwrap();
    let (a, b) = (tenant("rebuilt-a"), tenant("rebuilt-b"));
    let mut batches = three_hour_batches(&a);
    let other: Vec<Event> = three_hour_batches(&b).into_iter().flatten().take(300).collect();
    let late = batches.pop().unwrap();
    for batch in &batches {
        store.append(&a, batch).await.unwrap();
    }
    store.append(&b, &other).await.unwrap();
    // What migration 0002 leaves for a database that held events: no derived rows, and the
    // marker. Then a batch ingested before any store rebuilt: its rows must not count twice.
    sqlx::raw_sql("DELETE FROM period_stats; INSERT INTO period_stats_rebuild VALUES (true);")
        .execute(store.pool())
        .await
        .unwrap();
    store.append(&a, &late).await.unwrap();
    store.close().await;

    let reconnected = PostgresStore::connect(&config).await.unwrap();
    let marker: i64 = sqlx::query_scalar("SELECT count(*) FROM period_stats_rebuild")
        .fetch_one(reconnected.pool())
        .await
        .unwrap();
    assert_eq!(marker, 0, "the rebuild removes its marker");
    batches.push(late);
    let all_a: Vec<Event> = batches.into_iter().flatten().collect();
    for exact in [true, false] {
        assert_matches_reference(&reconnected, &all_a, query(&a, "2024-05-01", "2024-05-01", exact)).await;
        assert_matches_reference(&reconnected, &other, query(&b, "2024-05-01", "2024-05-01", exact)).await;
    }
}
