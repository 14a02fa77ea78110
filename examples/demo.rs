//! The embedded default in action: generates a realistic multi-tenant dataset ending now,
//! prints a dashboard report (a cold query and a cached one, read-your-writes), then serves the
//! API and the dashboard on 127.0.0.1 until Ctrl-C, in demo mode: the high-load scenarios can
//! be run from the dashboard's High load view or with `--example high_load -- --url URL`.
//!
//! `cargo run --release --example demo [-- EVENTS] [--port PORT] [--no-serve]` (default 250,000
//! events over 90 days; port 3001, or a free one when it is taken; `--no-serve` stops after the
//! report).

use std::time::Instant;

use analytics::Analytics;
use analytics::model::{ExperimentInput, TenantId};
use analytics::query::{Granularity, Summary, SummaryRequest};
use analytics_core::generator::{EXPERIMENT_ID, EventGenerator, GeneratorConfig};
use analytics_http::HttpConfig;
use analytics_http::demo::{self, DemoServer, SwitchedOff};
use chrono::{DateTime, Days, Utc};

const BATCH: usize = 5_000;
/// The demo tenant's API key, printed for the dashboard and curl.
const DEMO_KEY: &str = "demo-key-acme";

struct Args {
    events: usize,
    port: u16,
    serve: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        events: 250_000,
        port: 3001,
        serve: true,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--no-serve" => args.serve = false,
            "--port" => {
                args.port = words
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--port wants a port number")?
            }
            n => {
                args.events = n
                    .parse()
                    .map_err(|_| format!("unknown argument {n:?}: EVENTS, --port PORT or --no-serve"))?
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Args { events, port, serve } = parse_args()?;
    let now: DateTime<Utc> = Utc::now();
    let (analytics, faults) = demo::analytics(SwitchedOff::default())?;
    let acme = TenantId::parse("acme")?;
    create_experiment(&analytics, &acme).await?;

    println!("Generating {events} events over 90 days for 3 tenants (seed 42)…");
    let started = Instant::now();
    let mut generator = EventGenerator::new(GeneratorConfig::new(42, events, now, 90)).peekable();
    let progress = progress_bar(events);
    while generator.peek().is_some() {
        let chunk: Vec<_> = generator.by_ref().take(BATCH).collect();
        progress.inc(chunk.len() as u64);
        for tenant in ["acme", "globex", "initech"] {
            let tenant = TenantId::parse(tenant)?;
            let mine: Vec<_> = chunk.iter().filter(|e| e.tenant_id == tenant).cloned().collect();
            if !mine.is_empty() {
                analytics.ingest_events(&tenant, mine).await?;
            }
        }
    }
    progress.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Ingested {events} events in {secs:.2} s ({:.0} events/s)\n",
        events as f64 / secs
    );

    let today = now.date_naive();
    let month_ago = today.checked_sub_days(Days::new(29)).expect("a valid date");
    let request = SummaryRequest::new(month_ago.to_string(), today.to_string()).group_by(Granularity::Day);
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
    let yesterday = now - chrono::TimeDelta::days(1);
    let event = analytics::model::EventInput {
        user_id: Some("demo-user".into()),
        event_type: Some("signup".into()),
        page: Some("/pricing".into()),
        timestamp: Some(yesterday.to_rfc3339()),
        ..Default::default()
    };
    analytics.ingest(&acme, vec![event]).await?;
    let after = analytics.summary(&acme, &request).await?;
    println!(
        "\nIngested one event from yesterday: total {before} → {} (cached: {}, the write invalidated it)",
        after.body.total_events, after.metadata.cached
    );
    let stats = analytics.cache_stats().await?;
    println!(
        "Cache: {} hits, {} misses, hit rate {:.1}%, {} entries",
        stats.hits, stats.misses, stats.hit_rate, stats.entries
    );
    if serve {
        serve_until_stopped(analytics, faults, port, &month_ago.to_string(), &today.to_string()).await?;
    }
    Ok(())
}

/// Serves the API and the dashboard in demo mode until Ctrl-C.
async fn serve_until_stopped(
    analytics: Analytics,
    faults: std::sync::Arc<demo::FaultSwitch>,
    port: u16,
    start: &str,
    end: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    analytics_http::server::bootstrap_tenant(&analytics, &format!("acme:{DEMO_KEY}")).await?;
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            println!("\nPort {port} is not available ({error}); using a free one.");
            tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?
        }
    };
    let server = DemoServer::serve(listener, analytics, faults, HttpConfig::default()).await?;
    let url = &server.base_url;
    println!("\nServing the API and the dashboard (demo mode) on {url}");
    println!("  Dashboard       {url}/dashboard");
    println!("  API key (acme)  {DEMO_KEY}");
    println!(
        "  Try             curl -H 'X-API-Key: {DEMO_KEY}' '{url}/api/analytics/summary?startDate={start}&endDate={end}'"
    );
    println!(
        "  High load       the dashboard's High load view, or: cargo run --release --example high_load -- --url {url}"
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    println!("Stopped.");
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

/// A progress bar on stderr that draws only on a terminal (no `\r` frames in logs or CI).
fn progress_bar(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  [{bar:40}] {pos:>9}/{len} {per_sec}")
            .expect("a valid template")
            .progress_chars("#>-"),
    );
    bar
}

fn report(summary: &Summary) {
    let body = &summary.body;
    println!("acme, the last 30 days (UTC, by day)");
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
