//! A real Redis killed under the server binary and started again: the server keeps answering
//! reads from the store, acknowledges writes, lets requests through its fail-open limits and
//! says so, reports the cache's breaker open, and after Redis returns uses the cache again
//! without having counted anything twice. The test starts its own `redis-server` (never the shared one other tests
//! use) and ends only the processes it started.

mod common;

use std::time::{Duration, Instant};

use analytics_core::testkit::process::{free_port, redis_server};

use common::binary::Server;
use serde_json::{Value, json};

struct Reply {
    status: u16,
    unchecked: bool,
    body: Value,
    took: Duration,
}

async fn call(request: reqwest::RequestBuilder) -> Reply {
    let started = Instant::now();
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let unchecked = response.headers().contains_key("x-ratelimit-unchecked");
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        unchecked,
        body,
        took: started.elapsed(),
    }
}

fn cache_breaker(health: &Value) -> &str {
    health["metrics"]["dependencies"]["cache"]["state"]
        .as_str()
        .unwrap_or("?")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    let port = free_port();
    let Some(redis) = redis_server("redis_faults", port) else {
        return;
    };
    let cache = format!("redis://127.0.0.1:{port}");
    let server = Server::start(&["--cache", &cache, "--auth", "header", "--default-tenant", "acme"]);
    let http = reqwest::Client::new();
    let summary = |range: &str| http.get(server.url(&format!("/api/analytics/summary?{range}")));
    let january = "startDate=2024-01-01&endDate=2024-01-31";
    let event = |id: &str| json!({"id": id, "eventType": "click", "userId": "u1", "timestamp": "2024-01-10T10:00:00Z"});

    assert_eq!(
        call(http.post(server.url("/api/events")).json(&event("before")))
            .await
            .status,
        201
    );
    assert_eq!(call(summary(january)).await.body["totalEvents"], 1);
    let cached = call(summary(january)).await;
    assert_eq!(cached.body["_metadata"]["cached"], true);

    redis.kill();
    let mut slowest = Duration::ZERO;
    let mut unchecked = 0;
    for day in 1..=12 {
        let reply = call(summary(&format!("startDate=2024-01-{day:02}&endDate=2024-01-31"))).await;
        assert_eq!(reply.status, 200, "reads are answered from the store: {}", reply.body);
        slowest = slowest.max(reply.took);
        unchecked += usize::from(reply.unchecked);
    }
    assert!(unchecked > 0, "fail-open limits say they did not check");
    let health = call(http.get(server.url("/api/analytics/health"))).await;
    assert_eq!(health.body["status"], "degraded", "{}", health.body);
    assert_eq!(cache_breaker(&health.body), "OPEN", "{}", health.body);
    // The write is acknowledged; the invalidation it owes is recorded and settled later.
    let during = call(http.post(server.url("/api/events")).json(&event("during"))).await;
    assert_eq!(during.status, 201, "{}", during.body);
    eprintln!("Redis dead: 12 reads, slowest {slowest:?}; health {:?}", health.took);

    // Redis is back on the same port (empty). The server says when its breaker has closed and
    // when the invalidation owed for the write made meanwhile has been applied (the cache is
    // fenced until then, up to a second after the breaker closes).
    let _redis = redis_server("redis_faults", port).expect("redis-server starts again");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = call(http.get(server.url("/api/analytics/health"))).await;
        if cache_breaker(&health.body) == "CLOSED" && health.body["metrics"]["cacheTrusted"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never came back into use: {}",
            health.body
        );
        // Another process's breaker on its own clock: asked again shortly, until it says so.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retried = call(http.post(server.url("/api/events")).json(&event("during"))).await;
    assert_eq!(
        retried.status, 200,
        "a retry is acknowledged as a duplicate: {}",
        retried.body
    );
    let after = call(summary(january)).await;
    assert_eq!(after.body["totalEvents"], 2, "each event counted once: {}", after.body);
    let again = call(summary(january)).await;
    assert_eq!(again.body["_metadata"]["cached"], true, "the cache is used again");
    assert!(!again.unchecked, "limits are enforced again");
    server.terminate();
}
