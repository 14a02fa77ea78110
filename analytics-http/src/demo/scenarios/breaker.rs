//! Scenario 2: a slow, then failing store opens the breaker; stale answers are served and
//! uncached ones refused at once; healed, the breaker closes by itself.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use super::api::{Api, last_days, run_id};
use super::{ScenarioReport, millis, ms, percentile};
use crate::demo::FaultMode;

pub(super) async fn circuit_breaker(api: &Api) -> ScenarioReport {
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
