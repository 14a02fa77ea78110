#![allow(missing_docs)] // criterion_group! generates undocumented public items.

//! The PostgreSQL store's figures, each side by side with its baseline in one run:
//!
//! - ingest: the batch API vs its physical limit, a bare binary `COPY` of the same rows in the
//!   same batches into the same (empty) partitioned table with no ledger and no derived rows;
//! - ingest: the batch API (10,000-event batches; `ORDER=time`, the default, sends the events in
//!   time order as a live service receives them, `ORDER=generator` in the generator's order,
//!   which spreads every batch over all 90 days: the worst case for every per-period write and
//!   for the time index) vs row-by-row `INSERT` of the same events into the seeds' table (one
//!   autocommitted statement per event, as the seeds do; timed on `ROW_SAMPLE` events, default
//!   20,000, because the full set would take hours). Both from one caller (the first half of the
//!   events) and from `STREAMS` concurrent callers (default 2; the second half);
//! - a cold (uncached) 31-day summary: `PostgresStore::summary` (rollups + sketches; the same
//!   with no decoded period rows kept, as after a start; and with exact unique users) vs the
//!   seeds' raw SQL over the same rows (total, COUNT(DISTINCT user), by type, daily series, top
//!   10 pages, devices — run concurrently, as seed 003 does);
//! - the sketch's unique-user error against the exact count for 1-, 7-, 31- and 90-day ranges.
//!
//! `DATABASE_URL=postgres://… EVENTS=1000000 cargo bench -p analytics-postgres --bench postgres`
//! then `scripts/bench-report`. The dataset is the seeded generator's real-site shape
//! ([`GeneratorConfig::site`]: 500 full-URL pages, 50,000 users, 8 event types), one tenant, 90 days.
//! It is loaded into schema `bench_<EVENTS>` (dropped and reloaded every run, so the ingest
//! figure is always measured on an empty schema; `REUSE=1` keeps a complete earlier load and
//! measures only the summaries). `INGEST_ONLY=1` stops after the ingest figures.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use analytics_core::generator::{EventGenerator, GeneratorConfig};
use analytics_core::model::{Event, TenantId};
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

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: PostgresStore,
    seed_pool: PgPool,
    tenant: TenantId,
    events: usize,
}

fn setup(url: &str) -> Fixture {
    let events_wanted = env_usize("EVENTS", 1_000_000);
    let end: DateTime<Utc> = "2024-06-30T00:00:00Z".parse().expect("valid");
    let mut config = GeneratorConfig::site(42, events_wanted, end);
    config.tenants.truncate(1);
    let tenant = config.tenants[0].clone();
    let mut events: Vec<Event> = EventGenerator::new(config).collect();
    let order = std::env::var("ORDER").unwrap_or_else(|_| "time".into());
    match order.as_str() {
        // As a live service receives them: batches of consecutive minutes.
        "time" => events.sort_by_key(|e| e.timestamp),
        // Each batch spread over all 90 days: the worst case for every per-period write.
        "generator" => {}
        other => panic!("ORDER must be `time` or `generator`, not {other:?}"),
    }
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

    // Ingest through the batch API: the first half of the events from one caller, the rest
    // from `STREAMS` concurrent callers (a service ingests several requests at once).
    let streams = env_usize("STREAMS", 2).max(1);
    let (first_half, second_half) = events.split_at(events.len() / 2);
    let one_caller = ingest_rate(&runtime, &store, &tenant, first_half, 1, Write::BatchApi);
    let many_callers = ingest_rate(&runtime, &store, &tenant, second_half, streams, Write::BatchApi);

    // The physical limit: the same rows, batches and callers as bare binary COPY into the same
    // (empty) partitioned table in a schema of its own — no ledger, no derived rows.
    let copy_schema = format!("{schema}_copy");
    let copy_store = runtime.block_on(async {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .expect("connect");
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {copy_schema} CASCADE"))
            .execute(&admin)
            .await
            .expect("drop schema");
        let config = PostgresConfig::new(url).schema(copy_schema.clone());
        PostgresStore::connect(&config).await.expect("connect copy store")
    });
    let copy_one = ingest_rate(&runtime, &copy_store, &tenant, first_half, 1, Write::BareCopy);
    let copy_many = ingest_rate(&runtime, &copy_store, &tenant, second_half, streams, Write::BareCopy);
    runtime.block_on(async {
        sqlx::query(&format!("DROP SCHEMA {copy_schema} CASCADE"))
            .execute(copy_store.pool())
            .await
            .expect("drop copy schema");
    });
    println!(
        "ingest of {} events vs the physical limit (bare binary COPY of the same rows and batches): \
         1 caller: batch API {one_caller:.0} events/s vs bare COPY {copy_one:.0} events/s ({:.1}%); \
         {streams} callers: batch API {many_callers:.0} events/s vs bare COPY {copy_many:.0} events/s ({:.1}%)",
        events.len(),
        100.0 * one_caller / copy_one,
        100.0 * many_callers / copy_many,
    );

    // The seeds' table and row-by-row INSERT of the same events, from one connection and from
    // `STREAMS` concurrent ones (like-for-like with the batch API figures).
    let sample = env_usize("ROW_SAMPLE", 20_000).min(events.len() / 2);
    runtime.block_on(async {
        sqlx::raw_sql(SEED_SCHEMA)
            .execute(&seed_pool)
            .await
            .expect("seed schema");
    });
    let row_one = row_by_row_rate(&runtime, &seed_pool, &events[..sample], 1);
    let row_many = row_by_row_rate(&runtime, &seed_pool, &events[sample..2 * sample], streams);
    runtime.block_on(async {
        // The rest of the seeds' table, untimed, so both summaries read the same rows.
        sqlx::raw_sql(
            "INSERT INTO seed_events SELECT id, tenant_id, user_id, event_type, page, device, browser, country, ts, properties \
             FROM events ON CONFLICT DO NOTHING; ANALYZE seed_events; ANALYZE;",
        )
        .execute(&seed_pool)
        .await
        .expect("fill seed table");
    });
    println!(
        "ingest of {} events ({order} order, 10,000-event batches): \
         1 caller: batch API {one_caller:.0} events/s vs row-by-row INSERT {row_one:.0} events/s ({:.1}x); \
         {streams} callers: batch API {many_callers:.0} events/s vs row-by-row INSERT {row_many:.0} events/s ({:.1}x); \
         row-by-row timed on {sample} events each",
        events.len(),
        one_caller / row_one,
        many_callers / row_many,
    );
    Fixture {
        runtime,
        store,
        seed_pool,
        tenant,
        events: events.len(),
    }
}

/// How [`ingest_rate`] writes.
#[derive(Clone, Copy)]
enum Write {
    /// `EventStore::append`: ledger, rows, period rows, experiment state, in one transaction.
    BatchApi,
    /// `PostgresStore::copy_events_bare`: the rows only.
    BareCopy,
}

/// Events per second writing `events` in `BATCH`-event batches from `streams` concurrent callers.
fn ingest_rate(
    runtime: &tokio::runtime::Runtime,
    store: &PostgresStore,
    tenant: &TenantId,
    events: &[Event],
    streams: usize,
    write: Write,
) -> f64 {
    let chunks: Vec<&[Event]> = events.chunks(BATCH).collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..streams {
            scope.spawn(|| {
                while let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match write {
                        Write::BatchApi => {
                            let outcome = runtime.block_on(store.append(tenant, chunk)).expect("append");
                            assert_eq!(outcome.accepted.len(), chunk.len());
                        }
                        Write::BareCopy => runtime
                            .block_on(store.copy_events_bare(tenant, chunk))
                            .expect("bare copy"),
                    }
                }
            });
        }
    });
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// Events per second inserting `events` one autocommitted `INSERT` each (as the seeds do) from
/// `streams` concurrent connections.
fn row_by_row_rate(runtime: &tokio::runtime::Runtime, pool: &PgPool, events: &[Event], streams: usize) -> f64 {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..streams {
            scope.spawn(|| {
                while let Some(e) = events.get(next.fetch_add(1, Ordering::Relaxed)) {
                    runtime
                        .block_on(
                            sqlx::query(
                                "INSERT INTO seed_events (id, tenant_id, user_id, event_type, page, device, browser, \
                                 country, created_at, properties) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                            .execute(pool),
                        )
                        .expect("row insert");
                }
            });
        }
    });
    events.len() as f64 / started.elapsed().as_secs_f64()
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
    if std::env::var("INGEST_ONLY").as_deref() == Ok("1") {
        return;
    }
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
    // The same store with no decoded period rows kept: every summary transfers and decodes its
    // rows' counts and sketches, as the first summary of a range after a start does.
    let keeping_nothing = f.runtime.block_on(async {
        let config = PostgresConfig::new(&url)
            .schema(format!("bench_{}", f.events))
            .period_cache_bytes(0);
        PostgresStore::connect(&config).await.expect("connect store")
    });
    group.bench_function("postgres_store_no_rows_kept", |b| {
        b.iter(|| {
            f.runtime
                .block_on(keeping_nothing.summary(black_box(&plan)))
                .expect("summary")
        })
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
