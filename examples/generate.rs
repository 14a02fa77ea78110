//! Generates realistic events (the seeded generator the demo and benches use) and sends them to
//! stdout as JSON lines, to a running server through the batch API, or straight into
//! PostgreSQL through the store.
//!
//! ```text
//! cargo run --release --example generate -- --events 10000 > events.jsonl
//! cargo run --release --example generate -- --days 30 --events-per-day 20000 \
//!     --url http://127.0.0.1:3001 --key acme:KEY --key globex:KEY2 --experiment
//! cargo run --release --example generate -- --events 1000000 --postgres postgres://… --experiment
//! ```
//!
//! Options:
//! - `--events N` in all (default 1,000), or `--events-per-day N` × `--days D` (default 90 days)
//! - `--shape compact|site`: `compact` (the default) has 60 short paths, 6 event types and 3
//!   device classes; `site` is shaped like a real site's traffic: 500 pages as full URLs, 8 event
//!   types, 4 device classes and 50,000 users per tenant
//! - `--tenants a,b,c` (default `acme,globex,initech`; the first gets the most events),
//!   `--users N` distinct users per tenant (default 20,000, or 50,000 with `--shape site`),
//!   `--seed S` (default 42), `--end RFC3339` the last instant (default now)
//! - `--experiment`: also create the experiment the events carry (`exp_checkout`) per tenant
//! - `--url URL`: POST batches of 5,000 to `URL/api/events/batch`, with `--key TENANT:KEY` per
//!   tenant (API-key servers) or else `X-Tenant-Id` (header mode). A failed batch is retried with
//!   the same ids (never counted twice); progress and events/s are printed to stderr.
//! - `--postgres URL`: append through the PostgreSQL store (migrations applied).
//!
//! The same seed and settings give the same events, so a run can be repeated or resumed.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::Analytics;
use analytics::model::{Event, ExperimentInput, TenantId};
use analytics_core::generator::{EXPERIMENT_ID, EventGenerator, GeneratorConfig};
use analytics_postgres::{PostgresConfig, PostgresStore};
use chrono::{DateTime, Utc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const BATCH: usize = 5_000;

enum Sink {
    Stdout,
    Http { url: String, keys: HashMap<String, String> },
    Postgres(String),
}

struct Args {
    config: GeneratorConfig,
    experiment: bool,
    sink: Sink,
}

fn parse_args() -> Result<Args, BoxError> {
    let (mut events, mut per_day, mut days, mut seed, mut users) = (None, None, 90u32, 42u64, None);
    let mut site = false;
    let mut tenants = vec!["acme".to_owned(), "globex".to_owned(), "initech".to_owned()];
    let mut end: DateTime<Utc> = Utc::now();
    let (mut experiment, mut url, mut postgres, mut keys) = (false, None, None, HashMap::new());
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or_else(|| format!("{word} needs a value"));
        match word.as_str() {
            "--events" => events = Some(value()?.parse::<usize>()?),
            "--events-per-day" => per_day = Some(value()?.parse::<usize>()?),
            "--days" => days = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--users" => users = Some(value()?.parse()?),
            "--shape" => {
                site = match value()?.as_str() {
                    "compact" => false,
                    "site" => true,
                    other => return Err(format!("--shape is compact or site, not {other:?}").into()),
                }
            }
            "--tenants" => tenants = value()?.split(',').map(str::to_owned).collect(),
            "--end" => end = value()?.parse()?,
            "--experiment" => experiment = true,
            "--url" => url = Some(value()?),
            "--postgres" => postgres = Some(value()?),
            "--key" => {
                let spec = value()?;
                let (tenant, key) = spec.split_once(':').ok_or("--key wants TENANT:KEY")?;
                keys.insert(tenant.to_owned(), key.to_owned());
            }
            "-h" | "--help" => return Err("see the options at the top of examples/generate.rs".into()),
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let events = match (events, per_day) {
        (Some(_), Some(_)) => return Err("give --events or --events-per-day, not both".into()),
        (Some(n), None) => n,
        (None, Some(n)) => n * days as usize,
        (None, None) => 1_000,
    };
    let mut config = if site {
        GeneratorConfig {
            days,
            start: end - chrono::TimeDelta::days(i64::from(days)),
            ..GeneratorConfig::site(seed, events, end)
        }
    } else {
        GeneratorConfig::new(seed, events, end, days)
    };
    config.tenants = tenants.iter().map(TenantId::parse).collect::<Result<_, _>>()?;
    config.users_per_tenant = users.unwrap_or(config.users_per_tenant);
    let sink = match (url, postgres) {
        (Some(_), Some(_)) => return Err("give --url or --postgres, not both".into()),
        (Some(url), None) => Sink::Http { url, keys },
        (None, Some(url)) => Sink::Postgres(url),
        (None, None) => Sink::Stdout,
    };
    Ok(Args {
        config,
        experiment,
        sink,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let Args {
        config,
        experiment,
        sink,
    } = parse_args()?;
    let total = config.events;
    let tenants = config.tenants.clone();
    let mut events = EventGenerator::new(config).peekable();
    match sink {
        Sink::Stdout => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            for event in events {
                serde_json::to_writer(&mut out, &event)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Sink::Http { url, keys } => {
            let client = HttpSink::new(url, keys);
            if experiment {
                for tenant in &tenants {
                    client.create_experiment(tenant).await?;
                }
            }
            let mut progress = Progress::new(total);
            while events.peek().is_some() {
                let chunk: Vec<Event> = events.by_ref().take(BATCH).collect();
                for (tenant, mine) in by_tenant(chunk) {
                    client.send_batch(&tenant, &mine).await?;
                    progress.advance(mine.len());
                }
            }
            progress.finish();
        }
        Sink::Postgres(url) => {
            let store = PostgresStore::connect(&PostgresConfig::new(url)).await?;
            let analytics = Analytics::builder().store(Arc::new(store)).build()?;
            if experiment {
                for tenant in &tenants {
                    create_experiment(&analytics, tenant).await?;
                }
            }
            let mut progress = Progress::new(total);
            while events.peek().is_some() {
                let chunk: Vec<Event> = events.by_ref().take(BATCH).collect();
                for (tenant, mine) in by_tenant(chunk) {
                    let count = mine.len();
                    analytics.ingest_events(&tenant, mine).await?;
                    progress.advance(count);
                }
            }
            progress.finish();
        }
    }
    Ok(())
}

/// A chunk's events grouped by tenant, in first-seen order (batches are per tenant).
fn by_tenant(chunk: Vec<Event>) -> Vec<(TenantId, Vec<Event>)> {
    let mut groups: Vec<(TenantId, Vec<Event>)> = Vec::new();
    for event in chunk {
        match groups.iter_mut().find(|(t, _)| *t == event.tenant_id) {
            Some((_, mine)) => mine.push(event),
            None => groups.push((event.tenant_id.clone(), vec![event])),
        }
    }
    groups
}

fn experiment_input() -> ExperimentInput {
    serde_json::from_value(serde_json::json!({
        "id": EXPERIMENT_ID, "name": "Checkout redesign", "status": "running",
        "variants": [{"key": "control", "weight": 1}, {"key": "treatment", "weight": 1}]
    }))
    .expect("a valid experiment")
}

async fn create_experiment(analytics: &Analytics, tenant: &TenantId) -> Result<(), BoxError> {
    match analytics.create_experiment(tenant, experiment_input()).await {
        Ok(_) | Err(analytics::Error::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

struct HttpSink {
    http: reqwest::Client,
    url: String,
    keys: HashMap<String, String>,
}

impl HttpSink {
    fn new(url: String, keys: HashMap<String, String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
            keys,
        }
    }

    fn post(&self, tenant: &TenantId, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}{path}", self.url));
        match self.keys.get(tenant.as_str()) {
            Some(key) => request.header("x-api-key", key),
            None => request.header("x-tenant-id", tenant.as_str()),
        }
    }

    async fn create_experiment(&self, tenant: &TenantId) -> Result<(), BoxError> {
        let response = self
            .post(tenant, "/api/experiments")
            .json(&experiment_input())
            .send()
            .await?;
        match response.status().as_u16() {
            200..=299 | 409 => Ok(()),
            status => Err(format!(
                "creating the experiment for {tenant}: HTTP {status} {}",
                response.text().await?
            )
            .into()),
        }
    }

    /// Sends one batch, retrying transport errors, 429 and 5xx with the same ids: the server
    /// acknowledges a retried id as a duplicate and never counts it twice.
    async fn send_batch(&self, tenant: &TenantId, events: &[Event]) -> Result<(), BoxError> {
        let body = serde_json::json!({ "events": events });
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=8 {
            let outcome = self.post(tenant, "/api/events/batch").json(&body).send().await;
            let retry_after = match outcome {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if response.status().as_u16() == 429 || response.status().is_server_error() => response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map(Duration::from_secs),
                Ok(response) => {
                    let status = response.status();
                    return Err(format!("batch for {tenant}: HTTP {status} {}", response.text().await?).into());
                }
                Err(error) if attempt == 8 => return Err(error.into()),
                Err(_) => None,
            };
            eprintln!("batch for {tenant} not acknowledged (attempt {attempt}); retrying with the same ids");
            tokio::time::sleep(retry_after.unwrap_or(wait)).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
        Err(format!("batch for {tenant}: not acknowledged after 8 attempts").into())
    }
}

/// Progress on stderr: a bar with events/s on a terminal, nothing in between when stderr is a
/// file or a pipe (no `\r` frames in logs), and the total at the end either way.
struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{bar:40}] {pos:>10}/{len} {per_sec}")
                .expect("a valid template")
                .progress_chars("#>-"),
        );
        Self {
            bar,
            started: Instant::now(),
        }
    }

    fn advance(&mut self, by: usize) {
        self.bar.inc(by as u64);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        let secs = self.started.elapsed().as_secs_f64();
        let done = self.bar.position();
        eprintln!(
            "{done} events in {secs:.1} s ({:.0} events/s)",
            done as f64 / secs.max(1e-9)
        );
    }
}
