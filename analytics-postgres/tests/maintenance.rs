//! Maintenance when several instances share one database: a compaction sweep leaves a tenant
//! another instance is compacting alone (it does not wait on it, nor merge the same periods),
//! and instances creating the same month's partition at once take turns.

mod support;

use std::sync::Arc;

use analytics_core::model::{Event, EventId, EventType, TenantId};
use analytics_core::store::EventStore;
use analytics_postgres::PostgresStore;
use chrono::{DateTime, Duration, Utc};

fn events(tenant: &TenantId, prefix: &str, start: &str, n: usize) -> Vec<Event> {
    let start: DateTime<Utc> = start.parse().unwrap();
    (0..n)
        .map(|i| {
            Event::new(
                tenant.clone(),
                EventId::parse(format!("{prefix}-{i}")).unwrap(),
                EventType::parse("click").unwrap(),
                start + Duration::minutes(i as i64),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_leaves_a_tenant_another_instance_is_compacting() {
    let Some(config) = support::config("sweep_lock") else {
        return;
    };
    // No compaction while ingesting: rows pile up per period.
    let store = PostgresStore::connect(&config.compact_after(1000)).await.unwrap();
    let tenant = TenantId::parse("swept").unwrap();
    for batch in 0..3 {
        store
            .append(
                &tenant,
                &events(&tenant, &format!("b{batch}"), "2024-05-01T09:00:00Z", 30),
            )
            .await
            .unwrap();
    }
    assert_eq!(support::max_rows_per_period(&store, &tenant).await, 3);

    // Another instance holds the tenant's compaction lock (same schema, same key).
    let mut other = store.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.compact'), hashtext($1))")
        .bind(tenant.as_str())
        .execute(&mut *other)
        .await
        .unwrap();
    assert_eq!(
        store.compact().await.unwrap(),
        0,
        "the sweep skips the tenant, without waiting"
    );
    assert_eq!(support::max_rows_per_period(&store, &tenant).await, 3);

    other.rollback().await.unwrap();
    assert!(store.compact().await.unwrap() > 0, "and compacts it once it is free");
    assert_eq!(support::max_rows_per_period(&store, &tenant).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_creating_the_same_partitions_at_once_all_succeed() {
    let Some(config) = support::config("partition_race") else {
        return;
    };
    let first = Arc::new(PostgresStore::connect(&config).await.unwrap());
    let second = Arc::new(PostgresStore::connect(&config).await.unwrap());
    let tenant = TenantId::parse("racing").unwrap();
    // Eight writers over two instances, each the first of its instance to see these months.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = if w % 2 == 0 { first.clone() } else { second.clone() };
            let tenant = tenant.clone();
            tokio::spawn(async move {
                let month = ["2031-01", "2031-02", "2031-03", "2031-04"][w % 4];
                let batch = events(&tenant, &format!("w{w}"), &format!("{month}-15T00:00:00Z"), 10);
                store.append(&tenant, &batch).await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().expect("every writer's batch is stored");
    }
    let partitions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'events_p2031%'",
    )
    .fetch_one(first.pool())
    .await
    .unwrap();
    assert_eq!(
        partitions, 5,
        "January to May 2031: each month written and the one after"
    );
}
