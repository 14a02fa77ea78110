//! The embedded default in action: generates a realistic multi-tenant dataset, then prints a
//! dashboard report, shows a cold query and a cached one, and shows read-your-writes.
//!
//! `cargo run --release --example demo [-- EVENTS]` (default 250,000 events over 90 days).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use analytics::Analytics;
use analytics::clock::ManualClock;
use analytics::model::{ExperimentInput, TenantId};
use analytics::query::{Granularity, Summary, SummaryRequest};
use analytics_core::generator::{EXPERIMENT_ID, EventGenerator, GeneratorConfig};
use chrono::{DateTime, Utc};

const BATCH: usize = 5_000;

#[tokio::main]
async fn main() -> analytics::Result<()> {
    let events: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(250_000);
    // A fixed "now" keeps the report reproducible; the facade reads it through its Clock.
    let now: DateTime<Utc> = "2024-06-30T18:00:00Z".parse().expect("valid instant");
    let analytics = Analytics::builder().clock(Arc::new(ManualClock::new(now))).build()?;
    let acme = TenantId::parse("acme")?;
    create_experiment(&analytics, &acme).await?;

    println!("Generating {events} events over 90 days for 3 tenants (seed 42)…");
    let started = Instant::now();
    let mut generator = EventGenerator::new(GeneratorConfig::new(42, events, now, 90)).peekable();
    let mut done = 0;
    while generator.peek().is_some() {
        let chunk: Vec<_> = generator.by_ref().take(BATCH).collect();
        done += chunk.len();
        for tenant in ["acme", "globex", "initech"] {
            let tenant = TenantId::parse(tenant)?;
            let mine: Vec<_> = chunk.iter().filter(|e| e.tenant_id == tenant).cloned().collect();
            if !mine.is_empty() {
                analytics.ingest_events(&tenant, mine).await?;
            }
        }
        progress(done, events);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\nIngested {events} events in {secs:.2} s ({:.0} events/s)\n",
        events as f64 / secs
    );

    let request = SummaryRequest::new("2024-06-01", "2024-06-30").group_by(Granularity::Day);
    let cold = timed(&analytics, &acme, &request).await?;
    report(&cold.0);
    let warm = timed(&analytics, &acme, &request).await?;
    println!("\nCold query: {:>8.3} ms (cached: {})", cold.1, cold.0.metadata.cached);
    println!("Warm query: {:>8.3} ms (cached: {})", warm.1, warm.0.metadata.cached);

    let experiment = analytics
        .summary(&acme, &request.clone().experiment(EXPERIMENT_ID))
        .await?;
    println!("\nExperiment {EXPERIMENT_ID} (conversion = distinct users with a CONVERSION event):");
    for (variant, stats) in experiment.body.variants.iter().flatten() {
        println!(
            "  {variant:<10} {:>8} events {:>7} users {:>6} conversions  rate {:>6.2}%",
            stats.events,
            stats.users,
            stats.conversions,
            stats.conversion_rate * 100.0
        );
    }

    let before = warm.0.body.total_events;
    let event = analytics::model::EventInput {
        user_id: Some("demo-user".into()),
        event_type: Some("signup".into()),
        page: Some("/pricing".into()),
        timestamp: Some("2024-06-15T12:00:00Z".into()),
        ..Default::default()
    };
    analytics.ingest(&acme, vec![event]).await?;
    let after = analytics.summary(&acme, &request).await?;
    println!(
        "\nIngested one event on 2024-06-15: total {before} → {} (cached: {}, the write invalidated it)",
        after.body.total_events, after.metadata.cached
    );
    let stats = analytics.cache_stats().await?;
    println!(
        "Cache: {} hits, {} misses, hit rate {:.1}%, {} entries",
        stats.hits, stats.misses, stats.hit_rate, stats.entries
    );
    Ok(())
}

async fn create_experiment(analytics: &Analytics, tenant: &TenantId) -> analytics::Result<()> {
    let input: ExperimentInput = serde_json::from_value(serde_json::json!({
        "id": EXPERIMENT_ID, "name": "Checkout redesign", "status": "running",
        "variants": [{"key": "control", "weight": 1}, {"key": "treatment", "weight": 1}]
    }))
    .expect("valid experiment");
    analytics.create_experiment(tenant, input).await.map(|_| ())
}

async fn timed(
    analytics: &Analytics,
    tenant: &TenantId,
    request: &SummaryRequest,
) -> analytics::Result<(Summary, f64)> {
    let started = Instant::now();
    let summary = analytics.summary(tenant, request).await?;
    Ok((summary, started.elapsed().as_secs_f64() * 1000.0))
}

fn progress(done: usize, total: usize) {
    let width = 40;
    let filled = done * width / total.max(1);
    print!(
        "\r  [{}{}] {done:>9}/{total}",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    std::io::stdout().flush().ok();
}

fn report(summary: &Summary) {
    let body = &summary.body;
    println!("acme, June 2024 (UTC, by day)");
    println!("  Total events  {:>10}", body.total_events);
    println!("  Unique users  {:>10}", body.unique_users);
    println!("\n  Events by type");
    for t in &body.events_by_type {
        println!("    {:<14} {:>9}", t.event_type, t.count);
    }
    println!("\n  Daily events");
    let max = body.time_series_data.iter().map(|p| p.count).max().unwrap_or(1).max(1);
    for point in &body.time_series_data {
        let bar = "█".repeat((point.count * 50 / max) as usize);
        println!("    {} {:>7} {bar}", &point.timestamp[..10], point.count);
    }
    println!("\n  Top pages");
    for p in &body.top_pages {
        println!("    {:<22} {:>9}", p.page, p.views);
    }
    println!("\n  Devices");
    for d in &body.device_stats {
        println!("    {:<10} {:>9} {:>6.2}%", d.device, d.count, d.percentage);
    }
}
