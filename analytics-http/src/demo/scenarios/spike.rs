//! Scenario 1: a traffic spike from one tenant meets its rate limit.

use futures_util::future::join_all;

use super::api::{Api, Reply, last_days, run_id};
use super::{ScenarioReport, millis, ms, percentile};
use crate::demo::DEMO_ANALYTICS_LIMIT;

pub(super) async fn traffic_spike(api: &Api, spike: usize) -> ScenarioReport {
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
