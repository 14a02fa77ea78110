//! Scenario 5: an ingest invalidates the cache, the next read shows it, another tenant sees
//! nothing of it, and a live stream is pushed the change.

use std::time::{Duration, Instant};

use serde_json::json;

use futures_util::StreamExt;
use serde_json::Value;

use super::api::{Api, Reply, last_days, run_id};
use super::key_of;
use super::{ScenarioReport, millis, ms};

pub(super) async fn integration(api: &Api) -> ScenarioReport {
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
