#![allow(missing_docs)] // criterion_group! generates undocumented public items.

//! A cold 31-day summary over 1M events: `MemoryStore` (rollups) vs the reference fold over the
//! same events (the generator's real-site shape: 500 full-URL pages, 50,000 users), side by side
//! in one criterion group.
//!
//! `cargo bench --bench memory_summary` (set `EVENTS` to change the dataset size).

use std::hint::black_box;

use analytics::query::{Granularity, Query, QueryPlan, SummaryRequest};
use analytics::reference;
use analytics::store::{EventStore, MemoryStore};
use analytics_core::generator::{EventGenerator, GeneratorConfig};
use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

fn summary(c: &mut Criterion) {
    let events_wanted: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let end: DateTime<Utc> = "2024-06-30T00:00:00Z".parse().expect("valid");
    let mut config = GeneratorConfig::site(42, events_wanted, end);
    config.tenants.truncate(1);
    let events: Vec<_> = EventGenerator::new(config.clone()).collect();
    let tenant = config.tenants[0].clone();

    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let store = MemoryStore::new();
    for chunk in events.chunks(10_000) {
        runtime.block_on(store.append(&tenant, chunk)).expect("append");
    }
    let request = SummaryRequest::new("2024-05-01", "2024-05-31").group_by(Granularity::Day);
    let query = Query::parse(&tenant, &request).expect("valid query");
    let plan = QueryPlan::new(query.clone());
    // Same answer on both sides, or the comparison means nothing.
    assert_eq!(
        runtime.block_on(store.summary(&plan)).expect("summary"),
        reference::aggregate(&events, &query)
    );

    let mut group = c.benchmark_group(format!("summary_31_days_of_{}_events", events.len()));
    group.sample_size(20);
    group.bench_function("memory_store", |b| {
        b.iter(|| runtime.block_on(store.summary(black_box(&plan))).expect("summary"))
    });
    group.bench_function("reference_fold", |b| {
        b.iter(|| reference::aggregate(black_box(&events), black_box(&query)))
    });
    group.finish();
}

criterion_group!(benches, summary);
criterion_main!(benches);
