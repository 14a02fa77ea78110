//! Scenario 4: overload raises the load level; answers are degraded and labelled, low
//! priorities shed first; the level comes back down when the load stops.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::api::{Api, Reply, last_days, run_id};
use super::{ScenarioReport, millis, ms};
use crate::demo::FaultMode;

const LOAD_TENANTS: usize = 8;

pub(super) async fn graceful_degradation(api: &Api) -> ScenarioReport {
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
