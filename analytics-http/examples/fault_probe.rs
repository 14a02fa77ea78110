//! Latency probes for a running `analytics-server` while its dependencies fail (see
//! `scripts/bench-faults`, which kills, freezes and restarts them between probes):
//!
//! - `fault_probe load BASE TENANT KIND SECONDS CONCURRENCY FIRST`: CONCURRENCY clients send
//!   requests of KIND back to back for SECONDS and print one line of `key=value` figures: the
//!   count, the statuses, how many were admitted without a rate-limit check
//!   (`X-RateLimit-Unchecked`) and how many 503s lacked `Retry-After`, p50/p99/max of every
//!   request, and separately of the FIRST requests
//!   sent (those that meet a dependency not yet known to be down) and of the rest.
//!   KIND is `read` (a summary with `skipCache=true`: the store answers, the cache is written),
//!   `cached` (the same 7-day summary each time, answered from the cache when it can be) or
//!   `write` (`POST /api/events`, one event).
//! - `fault_probe recover BASE TENANT CHECK TIMEOUT_SECONDS`: polls every 10 ms until CHECK
//!   holds and prints `recovered_ms=…`, the time from the probe's start: `store` (a fresh
//!   summary is answered, not stale, and the store's breaker is closed) or `cached` (the cached
//!   kind's summary is answered from the cache again: its breaker closed and any invalidations
//!   owed from the outage applied).
//!
//! Requests carry `X-Tenant-Id` (a server in `--auth header` mode).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["load", base, tenant, kind, seconds, concurrency, first] => {
            let kind = Kind::parse(kind)?;
            let duration = Duration::from_secs_f64(seconds.parse()?);
            load(base, tenant, kind, duration, concurrency.parse()?, first.parse()?).await
        }
        ["recover", base, tenant, check, timeout] => {
            recover(base, tenant, check, Duration::from_secs_f64(timeout.parse()?)).await
        }
        _ => Err(
            "usage: fault_probe load BASE TENANT read|cached|write SECONDS CONCURRENCY FIRST \
                  | fault_probe recover BASE TENANT store|cached TIMEOUT_SECONDS"
                .into(),
        ),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Read,
    Cached,
    Write,
}

impl Kind {
    fn parse(raw: &str) -> Result<Self, Failure> {
        match raw {
            "read" => Ok(Self::Read),
            "cached" => Ok(Self::Cached),
            "write" => Ok(Self::Write),
            other => Err(format!("KIND must be read, cached or write, not {other:?}").into()),
        }
    }

    /// Sends request number `n`; returns what came back and how long it took.
    async fn send(self, client: &reqwest::Client, base: &str, tenant: &str, n: u64) -> (Outcome, Duration) {
        let request = match self {
            // A different 7-day window each time, within the seeded 90 days.
            Self::Read => {
                let day = 1 + n % 23;
                client.get(format!(
                    "{base}/api/analytics/summary?startDate=2024-06-{day:02}&endDate=2024-06-{:02}&skipCache=true",
                    day + 6
                ))
            }
            Self::Cached => client.get(format!(
                "{base}/api/analytics/summary?startDate=2024-06-01&endDate=2024-06-07"
            )),
            Self::Write => client.post(format!("{base}/api/events")).json(&json!({
                "userId": format!("probe-user-{}", n % 500),
                "eventType": "page_view",
                "page": "/probe",
                "timestamp": "2024-06-15T12:00:00Z",
            })),
        };
        let started = Instant::now();
        let outcome = match request.header("x-tenant-id", tenant).send().await {
            // The body is read: a request is done when its answer has arrived.
            Ok(reply) => {
                let header = |name| reply.headers().contains_key(name);
                let outcome = Outcome {
                    status: reply.status().as_u16(),
                    retry_after: header("retry-after"),
                    unchecked: header("x-ratelimit-unchecked"),
                };
                let _ = reply.bytes().await;
                outcome
            }
            Err(_) => Outcome::default(),
        };
        (outcome, started.elapsed())
    }
}

/// What a request came back with (status 0: no answer).
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    status: u16,
    /// A `Retry-After` header.
    retry_after: bool,
    /// An `X-RateLimit-Unchecked` header: admitted without a rate-limit check.
    unchecked: bool,
}

async fn load(
    base: &str,
    tenant: &str,
    kind: Kind,
    duration: Duration,
    concurrency: usize,
    first: u64,
) -> Result<(), Failure> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, base, tenant) = (client.clone(), next.clone(), base.to_owned(), tenant.to_owned());
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (outcome, took) = kind.send(&client, &base, &tenant, n).await;
                done.push((n, outcome, took));
            }
            done
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await?);
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, outcome, _) in &all {
        *statuses.entry(outcome.status).or_default() += 1;
    }
    let unavailable_without_retry_after = all.iter().filter(|(_, o, _)| o.status == 503 && !o.retry_after).count();
    let unchecked = all.iter().filter(|(_, o, _)| o.unchecked).count();
    let (early, rest): (Vec<&(u64, Outcome, Duration)>, Vec<_>) = all.iter().partition(|(n, _, _)| *n < first);
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
    println!(
        "kind={kind:?} n={} statuses={} unchecked={unchecked} no_retry_after={unavailable_without_retry_after} {} {} {}",
        all.len(),
        statuses.join(","),
        figures("all", all.iter().map(|r| r.2)),
        figures("first", early.iter().map(|r| r.2)),
        figures("rest", rest.iter().map(|r| r.2)),
    );
    Ok(())
}

/// `LABEL_p50_ms=… LABEL_p99_ms=… LABEL_max_ms=…` (nearest rank), or `-` when there is none.
fn figures(label: &str, latencies: impl Iterator<Item = Duration>) -> String {
    let mut sorted: Vec<Duration> = latencies.collect();
    sorted.sort();
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let pick = |q: f64| match sorted.len() {
        0 => "-".to_owned(),
        len => ms(sorted[((len as f64 * q).ceil() as usize).clamp(1, len) - 1]),
    };
    format!(
        "{label}_p50_ms={} {label}_p99_ms={} {label}_max_ms={}",
        pick(0.5),
        pick(0.99),
        pick(1.0)
    )
}

async fn recover(base: &str, tenant: &str, check: &str, timeout: Duration) -> Result<(), Failure> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        let holds = match check {
            "store" => fresh_summary(&client, base, tenant).await? && store_breaker_closed(&client, base).await,
            "cached" => cached_summary(&client, base, tenant).await?,
            other => return Err(format!("CHECK must be store or cached, not {other:?}").into()),
        };
        if holds {
            println!("recovered_ms={}", started.elapsed().as_millis());
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("{check} did not recover within {timeout:?}").into())
}

/// Whether a summary computed now (`skipCache`) is answered, not stale.
async fn fresh_summary(client: &reqwest::Client, base: &str, tenant: &str) -> Result<bool, Failure> {
    let url = format!("{base}/api/analytics/summary?startDate=2024-06-01&endDate=2024-06-30&skipCache=true");
    match client.get(url).header("x-tenant-id", tenant).send().await {
        Ok(reply) if reply.status() == 200 => {
            let body: Value = reply.json().await?;
            Ok(body["_metadata"]["stale"] != json!(true))
        }
        _ => Ok(false),
    }
}

/// Whether the store's breaker is closed again (no request is refused for a trial's sake).
async fn store_breaker_closed(client: &reqwest::Client, base: &str) -> bool {
    match client.get(format!("{base}/api/analytics/health")).send().await {
        Ok(reply) => reply
            .json::<Value>()
            .await
            .is_ok_and(|b| b["metrics"]["circuitBreaker"]["state"] == "CLOSED"),
        Err(_) => false,
    }
}

/// Whether the cached kind's summary is answered from the cache (the first call may fill it).
async fn cached_summary(client: &reqwest::Client, base: &str, tenant: &str) -> Result<bool, Failure> {
    let url = format!("{base}/api/analytics/summary?startDate=2024-06-01&endDate=2024-06-07");
    match client.get(url).header("x-tenant-id", tenant).send().await {
        Ok(reply) if reply.status() == 200 => {
            let body: Value = reply.json().await?;
            Ok(body["_metadata"]["cached"] == json!(true))
        }
        _ => Ok(false),
    }
}
