//! The five high-load scenarios, run over HTTP against a demo-mode server: a traffic spike, a
//! failing store and its circuit breaker, cache performance, graceful degradation under
//! overload, and end-to-end integration. Each reports its figures, a log, and pass or fail;
//! each check fails when the mechanism it shows is switched off ([`SwitchedOff`](super::SwitchedOff)).
//!
//! The scenarios run one after another, each on its own tenants, so one's rate limits or cached
//! answers do not decide another's outcome. Bounded: every wait has a deadline, and the whole
//! run takes well under a minute on a 2-core machine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Days, SecondsFormat, Utc};
use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{Value, json};

use super::{DEMO_ANALYTICS_LIMIT, FaultMode};

/// The scenario tenants, provisioned by the demo server with [`key_of`] keys.
pub const TENANTS: [&str; 13] = [
    "hl-spike",
    "hl-breaker",
    "hl-cache",
    "hl-load-0",
    "hl-load-1",
    "hl-load-2",
    "hl-load-3",
    "hl-load-4",
    "hl-load-5",
    "hl-load-6",
    "hl-load-7",
    "hl-int-a",
    "hl-int-b",
];

const LOAD_TENANTS: usize = 8;

/// The API key of a scenario tenant (demo mode only: the keys are public by design).
pub fn key_of(tenant: &str) -> String {
    format!("demo-key-{tenant}")
}

/// How to run the scenarios.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    /// The demo server, `http://HOST:PORT`.
    pub base_url: String,
    /// Concurrent requests of the traffic spike (default 100).
    pub spike: usize,
}

impl ScenarioOptions {
    /// The defaults against `base_url`.
    pub fn new(base_url: String) -> Self {
        Self { base_url, spike: 100 }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every scenario passed.
    pub passed: bool,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// One entry per scenario, in order.
    pub scenarios: Vec<ScenarioReport>,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    /// Its name.
    pub name: &'static str,
    /// Every check held.
    pub passed: bool,
    /// Its figures, by name.
    pub figures: BTreeMap<&'static str, String>,
    /// The checks that failed, in words.
    pub failures: Vec<String>,
    /// What happened, step by step.
    pub log: Vec<String>,
}

impl ScenarioReport {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            passed: true,
            figures: BTreeMap::new(),
            failures: Vec::new(),
            log: Vec::new(),
        }
    }

    fn figure(&mut self, name: &'static str, value: impl ToString) {
        self.figures.insert(name, value.to_string());
    }

    fn log(&mut self, line: impl Into<String>) {
        self.log.push(line.into());
    }

    fn check(&mut self, holds: bool, failure: impl Into<String>) {
        if !holds {
            self.passed = false;
            self.failures.push(failure.into());
        }
    }
}

/// Runs the five scenarios in order.
pub async fn run(options: &ScenarioOptions) -> Report {
    let started = Instant::now();
    let api = Api::new(&options.base_url);
    let mut scenarios = Vec::new();
    scenarios.push(traffic_spike(&api, options.spike).await);
    scenarios.push(circuit_breaker(&api).await);
    scenarios.push(cache_performance(&api).await);
    scenarios.push(graceful_degradation(&api).await);
    scenarios.push(integration(&api).await);
    // Whatever happened, leave the store healthy.
    let _ = api.set_faults(FaultMode::Healthy).await;
    Report {
        passed: scenarios.iter().all(|s| s.passed),
        seconds: started.elapsed().as_secs_f64(),
        scenarios,
    }
}

// ---- HTTP -----------------------------------------------------------------------------------

struct Api {
    http: reqwest::Client,
    base: String,
}

/// A response, or the transport error in words (status 0).
struct Reply {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
    elapsed: Duration,
}

impl Reply {
    fn metadata(&self, field: &str) -> &Value {
        &self.body["_metadata"][field]
    }
}

impl Api {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, tenant: &str) -> Reply {
        let started = Instant::now();
        let request = request
            .header("x-api-key", key_of(tenant))
            .header("x-tenant-id", tenant);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let body = response.json().await.unwrap_or(Value::Null);
                Reply {
                    status,
                    retry_after,
                    body,
                    elapsed: started.elapsed(),
                }
            }
            Err(error) => Reply {
                status: 0,
                retry_after: None,
                body: json!({ "error": { "message": error.to_string() } }),
                elapsed: started.elapsed(),
            },
        }
    }

    async fn get(&self, tenant: &str, path_and_query: &str, priority: Option<u8>) -> Reply {
        let mut request = self.http.get(format!("{}{path_and_query}", self.base));
        if let Some(priority) = priority {
            request = request.header("x-priority", priority.to_string());
        }
        self.send(request, tenant).await
    }

    async fn post(&self, tenant: &str, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), tenant)
            .await
    }

    async fn set_faults(&self, mode: FaultMode) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}/api/demo/faults", self.base))
            .json(&mode)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "{} from /api/demo/faults: the server is not in demo mode",
                response.status()
            ))
        }
    }

    async fn health(&self) -> Value {
        match self
            .http
            .get(format!("{}/api/analytics/health", self.base))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    async fn breaker_state(&self) -> String {
        self.health().await["metrics"]["circuitBreaker"]["state"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned()
    }

    async fn load_level(&self) -> String {
        self.health().await["metrics"]["load"]["level"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned()
    }

    /// Ingests `count` events for `tenant`, spread over the last `days` days (0: the last
    /// minute); returns how many were accepted.
    async fn seed(&self, tenant: &str, run: &str, count: usize, days: u64) -> Result<usize, String> {
        let now = Utc::now();
        let events: Vec<Value> = (0..count)
            .map(|i| {
                let back = if days == 0 {
                    Duration::from_millis((i as u64 * 997) % 60_000)
                } else {
                    Duration::from_secs((i as u64 * 7_919) % (days * 86_400))
                };
                let at = now - chrono::TimeDelta::from_std(back).unwrap_or_default();
                let event_type = ["page_view", "click", "add_to_cart", "CONVERSION"][i % 4];
                let device = ["desktop", "mobile", "tablet"][i % 3];
                let browser = ["Chrome", "Firefox", "Safari"][i % 3];
                let country = ["US", "DE", "JP", "BR"][i % 4];
                json!({
                    "id": format!("{run}-{tenant}-{i}"),
                    "userId": format!("user-{}", i % 97),
                    "eventType": event_type,
                    "page": format!("/page/{}", i % 23),
                    "device": device,
                    "browser": browser,
                    "country": country,
                    "timestamp": at.to_rfc3339_opts(SecondsFormat::Micros, true),
                })
            })
            .collect();
        let mut accepted = 0;
        for chunk in events.chunks(1_000) {
            let reply = self
                .post(tenant, "/api/events/batch", &json!({ "events": chunk }))
                .await;
            if reply.status != 200 {
                return Err(format!("seeding {tenant}: HTTP {} {}", reply.status, reply.body));
            }
            accepted += reply.body["accepted"].as_array().map_or(0, Vec::len);
        }
        Ok(accepted)
    }
}

/// A run id, so events of repeated runs against one server are new events.
fn run_id() -> String {
    format!("hl{}", Utc::now().timestamp_micros())
}

/// `startDate=…&endDate=…` for the last `days` days (UTC), ending today.
fn last_days(days: u64) -> String {
    let today = Utc::now().date_naive();
    let start = today
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(today);
    format!("startDate={start}&endDate={today}")
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_ms.len() - 1) as f64).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms(x: f64) -> String {
    format!("{x:.1} ms")
}

// ---- 1. Traffic spike -----------------------------------------------------------------------

async fn traffic_spike(api: &Api, spike: usize) -> ScenarioReport {
    let mut s = ScenarioReport::new("traffic spike");
    let tenant = "hl-spike";
    if let Err(e) = api.seed(tenant, &run_id(), 200, 7).await {
        s.check(false, e);
        return s;
    }
    let path = format!("/api/analytics/summary?{}&groupBy=day", last_days(7));
    s.log(format!("{spike} concurrent summary requests from one tenant"));
    let replies = join_all((0..spike).map(|_| api.get(tenant, &path, None))).await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    let server_errors = replies.iter().filter(|r| r.status >= 500 || r.status == 0).count();
    let mut latencies: Vec<f64> = replies.iter().map(|r| millis(r.elapsed)).collect();
    latencies.sort_by(f64::total_cmp);
    let min_retry = limited.iter().filter_map(|r| r.retry_after).min();
    s.figure("requests", spike);
    s.figure("admitted", admitted);
    s.figure("429", limited.len());
    s.figure("5xx", server_errors);
    s.figure("p50", ms(percentile(&latencies, 50.0)));
    s.figure("p99", ms(percentile(&latencies, 99.0)));
    if let Some(retry) = min_retry {
        s.figure("min Retry-After", format!("{retry} s"));
    }
    s.log(format!("{admitted} admitted, {} refused with 429", limited.len()));
    s.check(
        server_errors == 0,
        format!("{server_errors} requests failed with 5xx or no answer"),
    );
    s.check(
        admitted + limited.len() == spike,
        "some answers were neither 200 nor 429",
    );
    s.check(admitted >= 1, "no request was admitted");
    s.check(
        admitted <= DEMO_ANALYTICS_LIMIT as usize,
        format!("{admitted} admitted: more than the tenant's limit of {DEMO_ANALYTICS_LIMIT} per minute"),
    );
    s.check(
        limited.iter().all(|r| r.retry_after.is_some_and(|secs| secs >= 1)),
        "a 429 came without Retry-After ≥ 1",
    );
    s
}

// ---- 2. Circuit breaker ---------------------------------------------------------------------

async fn circuit_breaker(api: &Api) -> ScenarioReport {
    let mut s = ScenarioReport::new("circuit breaker");
    let tenant = "hl-breaker";
    let run = run_id();
    if let Err(e) = api.seed(tenant, &run, 300, 7).await {
        s.check(false, e);
        return s;
    }
    // A dashboard's query is cached; then an ingest makes that answer out of date, so during
    // the outage it can only be served as stale.
    let cached_path = format!("/api/analytics/summary?{}&groupBy=day", last_days(7));
    let warm = api.get(tenant, &cached_path, None).await;
    s.check(warm.status == 200, format!("warming the cache: HTTP {}", warm.status));
    if let Err(e) = api.seed(tenant, &format!("{run}-late"), 1, 0).await {
        s.check(false, e);
    }

    if let Err(e) = api.set_faults(FaultMode::Slow { delay_ms: 800 }).await {
        s.check(false, e);
        return s;
    }
    s.log("store made slow (800 ms per call)");
    let faulted = Instant::now();
    let mut opened = None;
    let mut calls = 0;
    for wave in 0..6 {
        // Uncached queries (distinct ranges, cache skipped) must reach the store.
        let replies = join_all((0..5).map(|i| {
            let path = format!(
                "/api/analytics/summary?{}&groupBy=hour&skipCache=true",
                last_days(1 + (wave * 5 + i) % 20)
            );
            async move { api.get(tenant, &path, None).await }
        }))
        .await;
        calls += replies.len();
        if wave == 1 {
            api.set_faults(FaultMode::Failing).await.ok();
            s.log("store now failing");
        }
        if api.breaker_state().await == "OPEN" {
            opened = Some(faulted.elapsed());
            break;
        }
    }
    api.set_faults(FaultMode::Failing).await.ok();
    s.figure("store calls until open", calls);
    match opened {
        Some(t) => {
            s.figure("time to open", ms(millis(t)));
            s.log(format!("breaker OPEN after {calls} calls"));
        }
        None => s.check(
            false,
            format!("the breaker did not open after {calls} slow and failing calls"),
        ),
    }

    // Open: the out-of-date cached answer is served stale and labelled; an uncached one is
    // refused at once with Retry-After.
    let stale = join_all((0..10).map(|_| api.get(tenant, &cached_path, None))).await;
    let stale_served = stale
        .iter()
        .filter(|r| r.status == 200 && r.metadata("stale") == &json!(true))
        .count();
    s.figure("stale answers served", format!("{stale_served}/10"));
    s.check(
        stale_served == 10,
        format!("{stale_served} of 10 cached requests got a stale answer"),
    );
    let labelled = stale.iter().any(|r| {
        r.metadata("degraded")
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "store-unavailable"))
    });
    s.check(labelled, "stale answers were not labelled store-unavailable");
    let refused = join_all((0..5).map(|i| {
        let path = format!(
            "/api/analytics/summary?{}&groupBy=hour&skipCache=true",
            last_days(30 + i)
        );
        async move { api.get(tenant, &path, None).await }
    }))
    .await;
    let mut refusal_ms: Vec<f64> = refused.iter().map(|r| millis(r.elapsed)).collect();
    refusal_ms.sort_by(f64::total_cmp);
    s.figure("uncached refusal p50", ms(percentile(&refusal_ms, 50.0)));
    s.check(
        refused.iter().all(|r| r.status == 503 && r.retry_after.is_some()),
        "an uncached request during the outage did not get 503 with Retry-After",
    );
    s.check(
        opened.is_none() || percentile(&refusal_ms, 50.0) < 400.0,
        "uncached requests waited on the failing store instead of failing fast",
    );

    // Healed: the breaker closes by itself once trial calls succeed.
    api.set_faults(FaultMode::Healthy).await.ok();
    s.log("store healed");
    let healed = Instant::now();
    let mut closed = None;
    while healed.elapsed() < Duration::from_secs(15) {
        let path = format!("/api/analytics/summary?{}&groupBy=day&skipCache=true", last_days(3));
        api.get(tenant, &path, None).await;
        if api.breaker_state().await == "CLOSED" {
            closed = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match closed {
        Some(t) => s.figure("time to recover", ms(millis(t))),
        None => s.check(false, "the breaker did not close within 15 s of the store healing"),
    }
    s
}

// ---- 3. Cache performance -------------------------------------------------------------------

async fn cache_performance(api: &Api) -> ScenarioReport {
    let mut s = ScenarioReport::new("cache performance");
    let tenant = "hl-cache";
    if let Err(e) = api.seed(tenant, &run_id(), 3_000, 30).await {
        s.check(false, e);
        return s;
    }
    // Cold, then the same query cached.
    let path = format!("/api/analytics/summary?{}&groupBy=day&timezone=UTC", last_days(30));
    let cold = api.get(tenant, &path, None).await;
    let warm = api.get(tenant, &path, None).await;
    let server_ms = |r: &Reply| r.metadata("responseTime").as_f64().unwrap_or(f64::NAN);
    s.figure("cold (server)", ms(server_ms(&cold)));
    s.figure("cached (server)", ms(server_ms(&warm)));
    s.figure("cold (client)", ms(millis(cold.elapsed)));
    s.figure("cached (client)", ms(millis(warm.elapsed)));
    s.check(cold.status == 200 && warm.status == 200, "a summary failed");
    s.check(
        warm.metadata("cached") == &json!(true),
        "the repeated query was not served from the cache",
    );

    // A realistic mix: a few dashboards' ranges, each asked several times.
    let mix: Vec<String> = [
        (1, "hour"),
        (7, "day"),
        (14, "day"),
        (30, "week"),
        (30, "day"),
        (7, "hour"),
    ]
    .iter()
    .map(|(days, by)| format!("/api/analytics/summary?{}&groupBy={by}", last_days(*days)))
    .collect();
    let mut hits = 0;
    let mut asked = 0;
    for round in 0..4 {
        for path in mix.iter().cycle().skip(round).take(mix.len()) {
            let reply = api.get(tenant, path, None).await;
            asked += 1;
            hits += usize::from(reply.metadata("cached") == &json!(true));
        }
    }
    let hit_rate = hits as f64 * 100.0 / asked as f64;
    s.figure("hit rate", format!("{hit_rate:.0}% of {asked}"));
    s.check(hit_rate >= 70.0, format!("hit rate {hit_rate:.0}% is below 70%"));

    // Read-after-write: an ingest invalidates the tenant's recent answers by tag.
    let before = api.get(tenant, &mix[1], None).await.body["totalEvents"]
        .as_u64()
        .unwrap_or(0);
    let ingest_started = Instant::now();
    let seeded = api.seed(tenant, &format!("{}-raw", run_id()), 1, 0).await;
    let invalidation = ingest_started.elapsed();
    let after = api.get(tenant, &mix[1], None).await;
    s.figure("ingest + tag invalidation", ms(millis(invalidation)));
    s.figure("next read", ms(millis(after.elapsed)));
    s.check(seeded == Ok(1), "the ingest was not accepted");
    s.check(
        after.body["totalEvents"].as_u64() == Some(before + 1),
        format!(
            "the next read shows {} events, not {} (read-after-write)",
            after.body["totalEvents"],
            before + 1
        ),
    );
    s
}

// ---- 4. Graceful degradation ----------------------------------------------------------------

async fn graceful_degradation(api: &Api) -> ScenarioReport {
    let mut s = ScenarioReport::new("graceful degradation");
    let run = run_id();
    for i in 0..LOAD_TENANTS {
        if let Err(e) = api.seed(&format!("hl-load-{i}"), &run, 200, 7).await {
            s.check(false, e);
            return s;
        }
    }
    // A store slower than the shedder's target latency (but not slow enough for the breaker),
    // and more concurrent uncached requests than the concurrency limit.
    if let Err(e) = api.set_faults(FaultMode::Slow { delay_ms: 300 }).await {
        s.check(false, e);
        return s;
    }
    s.log("store made slower than the target latency (300 ms); 96 concurrent requests, priorities 1–10");
    let requests = (0..96).map(|i| {
        let tenant = format!("hl-load-{}", i % LOAD_TENANTS);
        let priority = (i % 10) as u8 + 1;
        let path = format!(
            "/api/analytics/summary?{}&groupBy=hour&skipCache=true",
            last_days(2 + (i as u64 % 5))
        );
        async move { (priority, api.get(&tenant, &path, Some(priority)).await) }
    });
    let load = join_all(requests);
    let highest = async {
        let mut highest = String::from("NORMAL");
        let rank = |l: &str| ["NORMAL", "ELEVATED", "HIGH", "CRITICAL"].iter().position(|x| *x == l);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && highest != "CRITICAL" {
            let level = api.load_level().await;
            if rank(&level) > rank(&highest) {
                highest = level;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        highest
    };
    let (replies, highest) = tokio::join!(load, highest);
    api.set_faults(FaultMode::Healthy).await.ok();
    s.figure("highest level", &highest);
    s.check(
        highest == "HIGH" || highest == "CRITICAL",
        format!("the load level only reached {highest}"),
    );

    let mut refused = [0u32; 11];
    let mut asked = [0u32; 11];
    let mut degraded = 0;
    let mut server_errors = 0;
    for (priority, reply) in &replies {
        asked[usize::from(*priority)] += 1;
        match reply.status {
            200 => degraded += usize::from(is_degraded(reply)),
            503 | 429 => refused[usize::from(*priority)] += 1,
            _ => server_errors += 1,
        }
    }
    let share = |range: std::ops::RangeInclusive<usize>| {
        let (r, a): (u32, u32) = range
            .map(|p| (refused[p], asked[p]))
            .fold((0, 0), |x, y| (x.0 + y.0, x.1 + y.1));
        f64::from(r) / f64::from(a.max(1))
    };
    let (low, high) = (share(1..=3), share(8..=10));
    s.figure("refused, priority 1–3", format!("{:.0}%", low * 100.0));
    s.figure("refused, priority 8–10", format!("{:.0}%", high * 100.0));
    s.figure("refused, priority 10", format!("{}/{}", refused[10], asked[10]));
    s.check(
        server_errors == 0,
        format!("{server_errors} answers were errors other than 503"),
    );
    s.check(low > 0.0, "no low-priority request was shed");
    s.check(low > high, "low priorities were not shed before high ones");
    s.check(refused[10] == 0, "a priority-10 request was shed");

    // The load is gone: the level steps back down by itself, one level per cooldown. While it
    // passes HIGH, mid-priority requests are answered, coarser and without breakdowns.
    let calm = Instant::now();
    let mut normal = None;
    let mut probed = false;
    while calm.elapsed() < Duration::from_secs(15) {
        let level = api.load_level().await;
        if level == "NORMAL" {
            normal = Some(calm.elapsed());
            break;
        }
        if level == "HIGH" && !probed {
            probed = true;
            let probes = join_all((0..4).map(|i| {
                let path = format!(
                    "/api/analytics/summary?{}&groupBy=hour&skipCache=true",
                    last_days(10 + i)
                );
                async move { api.get("hl-load-0", &path, Some(5)).await }
            }))
            .await;
            degraded += probes.iter().filter(|r| is_degraded(r)).count();
            s.log(format!(
                "at HIGH, priority 5: {} of 4 answers degraded",
                probes.iter().filter(|r| is_degraded(r)).count()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match normal {
        Some(t) => s.figure("back to NORMAL after", ms(millis(t))),
        None => s.check(false, "the load level did not return to NORMAL within 15 s"),
    }
    s.figure("degraded answers", degraded);
    s.check(
        degraded > 0,
        "no answer was labelled as degraded (coarser granularity, no breakdowns)",
    );
    s
}

/// Whether an answer says it was coarsened or lost its breakdowns under load.
fn is_degraded(reply: &Reply) -> bool {
    reply.status == 200
        && reply.metadata("degraded").as_array().is_some_and(|labels| {
            labels.iter().any(|l| {
                l.as_str()
                    .is_some_and(|l| l.starts_with("granularity:") || l == "breakdowns")
            })
        })
}

// ---- 5. Integration -------------------------------------------------------------------------

async fn integration(api: &Api) -> ScenarioReport {
    let mut s = ScenarioReport::new("integration");
    let (a, b) = ("hl-int-a", "hl-int-b");
    let run = run_id();
    for tenant in [a, b] {
        if let Err(e) = api.seed(tenant, &format!("{run}-base"), 50, 3).await {
            s.check(false, e);
            return s;
        }
    }
    let path = format!("/api/analytics/summary?{}&groupBy=hour", last_days(1));
    let total = |r: &Reply| r.body["totalEvents"].as_u64();
    let before_a = total(&api.get(a, &path, None).await).unwrap_or(0);
    let before_b = total(&api.get(b, &path, None).await).unwrap_or(0);

    // A live stream of tenant A's day.
    let stream_url = format!("{}/api/analytics/stream?{}&groupBy=hour", api.base, last_days(1));
    let stream = api
        .http
        .get(stream_url)
        .header("x-api-key", key_of(a))
        .header("x-tenant-id", a)
        .header("accept", "text/event-stream")
        .send()
        .await;
    let mut messages = match stream {
        Ok(response) if response.status().is_success() => Some(SseTotals::new(response)),
        Ok(response) => {
            s.check(false, format!("the stream answered HTTP {}", response.status()));
            None
        }
        Err(e) => {
            s.check(false, format!("the stream did not open: {e}"));
            None
        }
    };
    if let Some(stream) = messages.as_mut() {
        let first = stream.next_total(Duration::from_secs(5)).await;
        s.check(
            first == Some(before_a),
            format!("the stream's first total was {first:?}, not {before_a}"),
        );
    }

    let ingest = Instant::now();
    let added = api.seed(a, &format!("{run}-new"), 5, 0).await;
    s.check(added == Ok(5), format!("ingest: {added:?}"));
    let after_a = api.get(a, &path, None).await;
    let after_b = api.get(b, &path, None).await;
    s.check(
        total(&after_a) == Some(before_a + 5),
        format!("tenant A's summary shows {:?}, not {}", total(&after_a), before_a + 5),
    );
    s.check(
        after_a.metadata("cached") != &json!(true),
        "tenant A's next summary came from the cache",
    );
    s.check(
        total(&after_b) == Some(before_b),
        "tenant B's summary changed when tenant A ingested",
    );
    let log_b = api.get(b, "/api/events?limit=1000", None).await;
    let leaked = log_b.body["events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["tenantId"] != json!(b)));
    s.check(
        log_b.status == 200 && !leaked,
        "tenant B's event log shows another tenant's events",
    );
    s.figure("tenant A", format!("{before_a} → {:?}", total(&after_a).unwrap_or(0)));
    s.figure("tenant B", format!("{before_b} → {}", total(&after_b).unwrap_or(0)));

    if let Some(stream) = messages.as_mut() {
        let mut pushed = None;
        while let Some(total) = stream.next_total(Duration::from_secs(5)).await {
            if total == before_a + 5 {
                pushed = Some(ingest.elapsed());
                break;
            }
        }
        match pushed {
            Some(t) => s.figure("stream pushed after", ms(millis(t))),
            None => s.check(false, "the live stream did not receive the change within 5 s"),
        }
    }
    s
}

/// The `totalEvents` of a stream's summaries, message by message.
struct SseTotals {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

impl SseTotals {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next summary's total, or `None` when `wait` passes or the stream ends.
    async fn next_total(&mut self, wait: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let named = block.lines().any(|l| l.starts_with("event:"));
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if named || data.is_empty() {
                    continue;
                }
                return serde_json::from_str::<Value>(&data).ok()?["totalEvents"].as_u64();
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.ok()?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
}
