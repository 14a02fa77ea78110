//! Scenario 3: cold vs cached latency, the hit rate of a dashboard mix, read-after-write.

use std::time::Instant;

use serde_json::json;

use super::api::{Api, Reply, last_days, run_id};
use super::{ScenarioReport, millis, ms};

pub(super) async fn cache_performance(api: &Api) -> ScenarioReport {
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
