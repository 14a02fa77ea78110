#![allow(missing_docs)] // criterion_group! generates undocumented public items.

//! The PostgreSQL store's figures, each side by side with its baseline in one run:
//!
//! - ingest: the batch API (COPY, 10,000-event batches) vs row-by-row `INSERT` of the same
//!   events into the seeds' table (one autocommitted statement per event, as the seeds do; timed
//!   on the first `ROW_SAMPLE` events, default 20,000, because the full set would take hours);
//! - a cold (uncached) 31-day summary: `PostgresStore::summary` (rollups + sketches, and with
//!   exact unique users) vs the seeds' raw SQL over the same rows (total, COUNT(DISTINCT user),
//!   by type, daily series, top 10 pages, devices — run concurrently, as seed 003 does);
//! - the sketch's unique-user error against the exact count for 1-, 7-, 31- and 90-day ranges.
//!
//! `DATABASE_URL=postgres://… EVENTS=1000000 cargo bench -p analytics-postgres --bench postgres`
//! then `scripts/bench-report`. The dataset is the demo's seeded generator: one tenant, 90 days.
//! It is loaded into schema `bench_<EVENTS>` (dropped and reloaded every run, so the ingest
//! figure is always measured on an empty schema; `REUSE=1` keeps a complete earlier load and
//! measures only the summaries).

use std::hint::black_box;
use std::time::{Duration, Instant};

use analytics_core::generator::{EventGenerator, GeneratorConfig};
use analytics_core::model::Event;
use analytics_core::query::{Granularity, Query, QueryPlan, SummaryRequest};
use analytics_core::store::EventStore;
use analytics_core::testkit;
use analytics_postgres::{PostgresConfig, PostgresStore};
use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

const BATCH: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: PostgresStore,
    seed_pool: PgPool,
    tenant: analytics_core::model::TenantId,
    events: usize,
}

fn setup(url: &str) -> Fixture {
    let events_wanted = env_usize("EVENTS", 1_000_000);
    let end: DateTime<Utc> = "2024-06-30T00:00:00Z".parse().expect("valid");
    let mut config = GeneratorConfig::new(42, events_wanted, end, 90);
    config.tenants.truncate(1);
    let tenant = config.tenants[0].clone();
    let events: Vec<Event> = EventGenerator::new(config).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let schema = format!("bench_{}", events.len());
    let reuse = std::env::var("REUSE").as_deref() == Ok("1");
    let (store, seed_pool, reused) = runtime.block_on(async {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .expect("connect");
        let loaded: Option<i64> = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.seed_events"))
            .fetch_one(&admin)
            .await
            .ok();
        let reused = reuse && loaded == Some(events.len() as i64);
        if !reused {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&admin)
                .await
                .expect("drop schema");
        }
        admin.close().await;
        let config = PostgresConfig::new(url)
            .schema(schema.clone())
            .statement_timeout(Duration::from_secs(600));
        let store = PostgresStore::connect(&config).await.expect("connect store");
        let seed_pool = PgPoolOptions::new()
            .max_connections(8)
            .after_connect({
                let schema = schema.clone();
                move |conn, _| {
                    let set = format!("SET search_path = {schema}");
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, set.as_str()).await?;
                        Ok(())
                    })
                }
            })
            .connect(url)
            .await
            .expect("connect seed pool");
        (store, seed_pool, reused)
    });
    if reused {
        println!(
            "reusing the {} events loaded in schema {schema} (ingest not measured)",
            events.len()
        );
        return Fixture {
            runtime,
            store,
            seed_pool,
            tenant,
            events: events.len(),
        };
    }

    // Ingest through the batch API.
    let mut per_batch = Vec::new();
    let started = Instant::now();
    for chunk in events.chunks(BATCH) {
        let t = Instant::now();
        let outcome = runtime.block_on(store.append(&tenant, chunk)).expect("append");
        assert_eq!(outcome.accepted.len(), chunk.len());
        per_batch.push(chunk.len() as f64 / t.elapsed().as_secs_f64());
    }
    let batch_rate = events.len() as f64 / started.elapsed().as_secs_f64();

    // The seeds' table and row-by-row INSERT of the same events.
    let sample = env_usize("ROW_SAMPLE", 20_000).min(events.len());
    let row_rate = runtime.block_on(async {
        sqlx::raw_sql(SEED_SCHEMA).execute(&seed_pool).await.expect("seed schema");
        let started = Instant::now();
        for e in &events[..sample] {
            sqlx::query(
                "INSERT INTO seed_events (id, tenant_id, user_id, event_type, page, device, browser, country, created_at, properties) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(e.id.as_str())
            .bind(e.tenant_id.as_str())
            .bind(e.user_id.as_ref().map(|u| u.as_str()))
            .bind(e.event_type.as_str())
            .bind(e.page.as_ref().map(|v| v.as_str()))
            .bind(e.device.as_ref().map(|v| v.as_str()))
            .bind(e.browser.as_ref().map(|v| v.as_str()))
            .bind(e.country.as_ref().map(|v| v.as_str()))
            .bind(e.timestamp)
            .bind(sqlx::types::Json(&*e.properties))
            .execute(&seed_pool)
            .await
            .expect("row insert");
        }
        let rate = sample as f64 / started.elapsed().as_secs_f64();
        // The rest of the seeds' table, untimed, so both summaries read the same rows.
        sqlx::raw_sql(
            "INSERT INTO seed_events SELECT id, tenant_id, user_id, event_type, page, device, browser, country, ts, properties \
             FROM events ON CONFLICT DO NOTHING; ANALYZE seed_events; ANALYZE;",
        )
        .execute(&seed_pool)
        .await
        .expect("fill seed table");
        rate
    });
    println!(
        "ingest of {} events: batch API {:.0} events/s overall (median batch {:.0} events/s); \
         row-by-row INSERT {:.0} events/s over {sample} events; ratio {:.1}x",
        events.len(),
        batch_rate,
        median(per_batch),
        row_rate,
        batch_rate / row_rate
    );
    Fixture {
        runtime,
        store,
        seed_pool,
        tenant,
        events: events.len(),
    }
}

/// Seed 003's events table and indexes.
const SEED_SCHEMA: &str = "
CREATE TABLE seed_events (
    id text PRIMARY KEY, tenant_id text NOT NULL, user_id text, event_type text NOT NULL, page text,
    device text, browser text, country text, created_at timestamptz NOT NULL, properties jsonb
);
CREATE INDEX idx_events_created_at ON seed_events (created_at);
CREATE INDEX idx_events_created_at_event_type ON seed_events (created_at, event_type);";

/// The seeds' dashboard summary: six raw-SQL queries over the range, run concurrently.
async fn seed_summary(pool: &PgPool, start: DateTime<Utc>, end: DateTime<Utc>) -> usize {
    let q = |sql: &'static str| sqlx::query(sql).bind(start).bind(end).fetch_all(pool);
    let (a, b, c, d, e, f) = tokio::try_join!(
        q("SELECT COUNT(*) FROM seed_events WHERE created_at >= $1 AND created_at < $2"),
        q("SELECT COUNT(DISTINCT user_id) FROM seed_events WHERE created_at >= $1 AND created_at < $2"),
        q("SELECT event_type, COUNT(*) FROM seed_events WHERE created_at >= $1 AND created_at < $2 GROUP BY event_type ORDER BY 2 DESC"),
        q("SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, COUNT(*) FROM seed_events WHERE created_at >= $1 AND created_at < $2 GROUP BY 1 ORDER BY 1"),
        q("SELECT page, COUNT(*) FROM seed_events WHERE created_at >= $1 AND created_at < $2 AND page IS NOT NULL GROUP BY page ORDER BY 2 DESC LIMIT 10"),
        q("SELECT device, COUNT(*) FROM seed_events WHERE created_at >= $1 AND created_at < $2 AND device IS NOT NULL GROUP BY device ORDER BY 2 DESC"),
    )
    .expect("seed summary");
    a.len() + b.len() + c.len() + d.len() + e.len() + f.len()
}

fn query(f: &Fixture, start: &str, end: &str, exact: bool) -> Query {
    let request = SummaryRequest::new(start, end).group_by(Granularity::Day);
    Query::parse(&f.tenant, &request)
        .expect("valid query")
        .with_exact_unique_users(exact)
}

fn report_sketch_error(f: &Fixture) {
    for (label, start) in [
        ("1 day", "2024-06-29"),
        ("7 days", "2024-06-23"),
        ("31 days", "2024-05-30"),
        ("90 days", "2024-04-01"),
    ] {
        let estimate = |exact| {
            let plan = QueryPlan::new(query(f, start, "2024-06-29", exact));
            f.runtime
                .block_on(f.store.summary(&plan))
                .expect("summary")
                .unique_users
        };
        let (sketch, exact) = (estimate(false), estimate(true));
        println!(
            "unique users over {label}: sketch {sketch}, exact {exact}, relative error {:.3}%",
            (sketch as f64 - exact as f64).abs() / exact.max(1) as f64 * 100.0
        );
    }
}

fn summary(c: &mut Criterion) {
    let Some(url) = testkit::server_url("DATABASE_URL", "postgres bench") else {
        return;
    };
    let f = setup(&url);
    report_sketch_error(&f);
    let (start, end) = ("2024-05-30", "2024-06-29");
    let plan = QueryPlan::new(query(&f, start, end, false));
    let exact_plan = QueryPlan::new(query(&f, start, end, true));
    let range = plan.query.range();
    // Both sides count the same rows.
    let ours = f.runtime.block_on(f.store.summary(&exact_plan)).expect("summary");
    let total: i64 = f.runtime.block_on(async {
        sqlx::query_scalar("SELECT COUNT(*) FROM seed_events WHERE created_at >= $1 AND created_at < $2")
            .bind(range.start())
            .bind(range.end())
            .fetch_one(&f.seed_pool)
            .await
            .expect("count")
    });
    assert_eq!(ours.total_events, total as u64);

    let mut group = c.benchmark_group(format!("postgres_summary_31_days_of_{}_events", f.events));
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("seed_raw_sql", |b| {
        b.iter(|| {
            f.runtime
                .block_on(seed_summary(&f.seed_pool, range.start(), range.end()))
        })
    });
    group.bench_function("postgres_store", |b| {
        b.iter(|| f.runtime.block_on(f.store.summary(black_box(&plan))).expect("summary"))
    });
    group.bench_function("postgres_store_exact_users", |b| {
        b.iter(|| {
            f.runtime
                .block_on(f.store.summary(black_box(&exact_plan)))
                .expect("summary")
        })
    });
    group.finish();
}

criterion_group!(benches, summary);
criterion_main!(benches);
