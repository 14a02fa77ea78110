//! Load tools for a running `analytics-server` (see `scripts/bench-http`, which drives them):
//!
//! - `http_load seed BASE EVENTS`: posts EVENTS generated events (seed 42, 90 days before
//!   2024-06-30, three tenants, shaped like a real site: 500 full-URL pages, 50,000 users)
//!   through `/api/events/batch` in batches of 5,000 (`CONCURRENCY` at once, default 1; bodies
//!   encoded before the clock starts), and prints the tenants and events/s. With
//!   `API_KEY_PREFIX` set, each tenant's batches carry `X-API-Key: <prefix><tenant>` (a server
//!   in API-key mode, bootstrapped with those keys); otherwise `X-Tenant-Id` (a server in
//!   `--auth header` mode).
//! - `http_load sse BASES TENANT SUBSCRIBERS INGESTS`: opens SUBSCRIBERS summary streams of
//!   TENANT spread over BASES (comma-separated instances), then posts INGESTS events one at a
//!   time to the first (each after the previous push reached every stream) and reports, per
//!   instance, the latency from just before each POST to each stream's receipt of the summary
//!   that includes it: p50, p99, max.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics_core::generator::{EventGenerator, GeneratorConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["seed", base, events] => seed(base, events.parse()?).await,
        ["sse", base, tenant, subscribers, ingests] => sse(base, tenant, subscribers.parse()?, ingests.parse()?).await,
        _ => Err("usage: http_load seed BASE EVENTS | http_load sse BASES TENANT SUBSCRIBERS INGESTS".into()),
    }
}

async fn seed(base: &str, events: usize) -> Result<(), Failure> {
    let end = "2024-06-30T00:00:00Z".parse()?;
    // Bodies are encoded before the clock starts: the figure is the server's, not the encoder's.
    // Each tenant's batch is encoded as soon as it is full, so only the encoded bodies are held
    // (10M events as JSON values at once did not fit in 24 GB).
    let key_prefix = std::env::var("API_KEY_PREFIX").ok();
    let mut pending: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut bodies: Vec<(&'static str, String, Vec<u8>, usize)> = Vec::new();
    let mut encode = |tenant: &str, batch: &[Value]| -> Result<(), Failure> {
        let (header, value) = match &key_prefix {
            Some(prefix) => ("x-api-key", format!("{prefix}{tenant}")),
            None => ("x-tenant-id", tenant.to_owned()),
        };
        bodies.push((
            header,
            value,
            serde_json::to_vec(&json!({ "events": batch }))?,
            batch.len(),
        ));
        Ok(())
    };
    for event in EventGenerator::new(GeneratorConfig::site(42, events, end)) {
        let mut json = serde_json::to_value(&event)?;
        let tenant = json["tenantId"].as_str().unwrap_or_default().to_owned();
        if let Some(object) = json.as_object_mut() {
            object.retain(|_, v| !v.is_null());
        }
        *counts.entry(tenant.clone()).or_default() += 1;
        let batch = pending.entry(tenant.clone()).or_default();
        batch.push(json);
        if batch.len() == 5000 {
            encode(&tenant, batch)?;
            batch.clear();
        }
    }
    for (tenant, batch) in &pending {
        if !batch.is_empty() {
            encode(tenant, batch)?;
        }
    }
    for (tenant, n) in &counts {
        println!("tenant {tenant}: {n} events");
    }
    let concurrency: usize = std::env::var("CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let client = reqwest::Client::new();
    let bodies = Arc::new(Mutex::new(bodies.into_iter()));
    let started = Instant::now();
    let senders = (0..concurrency.max(1)).map(|_| {
        let (client, bodies, url) = (client.clone(), bodies.clone(), format!("{base}/api/events/batch"));
        tokio::spawn(async move {
            loop {
                let Some((header, value, body, _)) = bodies.lock().await.next() else {
                    return Ok::<(), Failure>(());
                };
                let reply = client
                    .post(&url)
                    .header(header, value)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if !reply.status().is_success() {
                    return Err(format!("seeding failed: {} {}", reply.status(), reply.text().await?).into());
                }
            }
        })
    });
    for sender in futures_util::future::join_all(senders).await {
        sender??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {events} events in {secs:.1} s ({:.0} events/s, {concurrency} concurrent batches of 5,000)",
        events as f64 / secs
    );
    Ok(())
}

/// What every stream has received: per stream, the receipt time of each `totalEvents` value.
#[derive(Default)]
struct Receipts {
    seen: Vec<BTreeMap<u64, Instant>>,
}

async fn sse(bases: &str, tenant: &str, subscribers: usize, ingests: u64) -> Result<(), Failure> {
    // Streams spread over every instance; ingests go to the first.
    let bases: Vec<&str> = bases.split(',').collect();
    let base = bases[0];
    let receipts = Arc::new(Mutex::new(Receipts {
        seen: vec![BTreeMap::new(); subscribers],
    }));
    let progress = Arc::new(Notify::new());
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    for index in 0..subscribers {
        let url = format!(
            "{}/api/analytics/summary/stream?startDate=2024-06-01&endDate=2024-06-30",
            bases[index % bases.len()]
        );
        let response = client.get(&url).header("x-tenant-id", tenant).send().await?;
        if !response.status().is_success() {
            return Err(format!("stream {index}: {}", response.status()).into());
        }
        let (receipts, progress) = (receipts.clone(), progress.clone());
        tokio::spawn(async move {
            let mut bytes = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = bytes.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                        continue;
                    };
                    let Ok(summary) = serde_json::from_str::<Value>(data.trim_start()) else {
                        continue;
                    };
                    if let Some(total) = summary["totalEvents"].as_u64() {
                        let now = Instant::now();
                        receipts.lock().await.seen[index].entry(total).or_insert(now);
                        progress.notify_waiters();
                    }
                }
            }
        });
    }
    let baseline = wait_all(&receipts, &progress, None, Duration::from_secs(60)).await?;
    println!("{subscribers} streams connected; totalEvents = {baseline}");

    let mut sent: Vec<(u64, Instant)> = Vec::new();
    for i in 1..=ingests {
        let event = json!({
            "userId": format!("sse-user-{i}"), "eventType": "click", "page": "/live",
            "timestamp": format!("2024-06-15T12:00:{:02}Z", i % 60),
        });
        let before = Instant::now();
        let reply = client
            .post(format!("{base}/api/events"))
            .header("x-tenant-id", tenant)
            .json(&event)
            .send()
            .await?;
        if reply.status() != 201 {
            return Err(format!("ingest {i}: {}", reply.status()).into());
        }
        sent.push((baseline + i, before));
        wait_all(&receipts, &progress, Some(baseline + i), Duration::from_secs(30)).await?;
    }

    let seen = receipts.lock().await;
    // By instance: the one ingested on (index 0) and each other.
    for (instance, instance_base) in bases.iter().enumerate() {
        let mut latencies: Vec<Duration> = Vec::new();
        for (total, before) in &sent {
            for stream in seen.seen.iter().skip(instance).step_by(bases.len()) {
                if let Some(at) = stream.get(total) {
                    latencies.push(at.duration_since(*before));
                }
            }
        }
        report(
            &latencies,
            instance_base,
            instance == 0,
            subscribers / bases.len(),
            ingests,
        );
    }
    Ok(())
}

fn report(latencies: &[Duration], base: &str, local: bool, streams: usize, ingests: u64) {
    let mut latencies = latencies.to_vec();
    latencies.sort();
    if latencies.is_empty() {
        println!("{base}: no deliveries");
        return;
    }
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let what = if local {
        "ingested here"
    } else {
        "ingested on another instance"
    };
    println!(
        "ingest→push on {base} ({what}) over {} deliveries ({streams} streams × {ingests} ingests): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pick(0.5).as_secs_f64() * 1000.0,
        pick(0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

/// Waits until every stream has seen `total` (or, with `None`, any summary); returns the
/// smallest latest total.
async fn wait_all(
    receipts: &Mutex<Receipts>,
    progress: &Notify,
    total: Option<u64>,
    limit: Duration,
) -> Result<u64, Failure> {
    let deadline = Instant::now() + limit;
    loop {
        let notified = progress.notified();
        {
            let seen = receipts.lock().await;
            let done = seen.seen.iter().all(|s| match total {
                None => !s.is_empty(),
                Some(t) => s.keys().any(|k| *k >= t),
            });
            if done {
                return Ok(seen
                    .seen
                    .iter()
                    .filter_map(|s| s.keys().last().copied())
                    .min()
                    .unwrap_or(0));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
            return Err(format!("streams did not all receive total {total:?} in {limit:?}").into());
        }
    }
}
