//! End to end: the `analytics-server` binary on a free port, driven over real HTTP — ingest,
//! read-your-writes, the SSE stream, graceful shutdown on SIGTERM; on the embedded default and,
//! when the test script provides them, on PostgreSQL and Redis.

mod common;

use std::process::Command;

use analytics_core::testkit::server_url;
use serde_json::{Value, json};

use common::binary::{Server, unique};
use common::sse::Events;

/// Drives one running server: read-your-writes, the stream, the event log, then SIGTERM.
async fn exercise(server: Server, key: &str) {
    let client = reqwest::Client::new();
    let summary_url = server.url("/api/analytics/summary?startDate=2024-05-01&endDate=2024-05-31");
    let summary = |client: &reqwest::Client| client.get(&summary_url).header("x-api-key", key).send();
    let before = summary(&client).await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(before.headers().contains_key("x-ratelimit-remaining"));
    assert_eq!(before.json::<Value>().await.unwrap()["totalEvents"], 0);

    let stream = client
        .get(server.url("/api/analytics/summary/stream?startDate=2024-05-01&endDate=2024-05-31"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = Events::new(stream);
    assert_eq!(events.next_summary().await.unwrap()["totalEvents"], 0);

    let id = unique("evt");
    let event =
        json!({"id": id, "userId": "u1", "eventType": "click", "page": "/home", "timestamp": "2024-05-10T10:00:00Z"});
    let created = client
        .post(server.url("/api/events"))
        .header("x-api-key", key)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // Read your writes: the cached zero is invalidated by the acknowledged ingest.
    let after: Value = summary(&client).await.unwrap().json().await.unwrap();
    assert_eq!(after["totalEvents"], 1, "{after}");
    // The ingest shows up in the stream.
    assert_eq!(events.next_summary().await.unwrap()["totalEvents"], 1);

    let retried = client
        .post(server.url("/api/v1/events"))
        .header("x-api-key", key)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200, "a retry is acknowledged, not counted");
    let log: Value = client
        .get(server.url("/api/events?limit=10"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["total"], 1);

    let unauthenticated = client.get(&summary_url).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("analytics_http_requests_total"));

    server.terminate();
    // Shutdown ends the stream instead of hanging on it.
    assert!(events.next_summary().await.is_none());
}

#[tokio::test]
async fn the_embedded_default_serves_over_http() {
    let server = Server::start(&["--bootstrap-tenant", "acme:key-acme-0001"]);
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    exercise(server, "key-acme-0001").await;
}

#[tokio::test]
async fn header_auth_mode_trusts_the_gateway() {
    let server = Server::start(&["--auth", "header"]);
    let reply = reqwest::Client::new()
        .get(server.url("/api/events"))
        .header("x-tenant-id", "gateway-tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    server.terminate();
}

/// A client written for a tenant-less API: no tenant header, no key, `/api/analytics/stream`,
/// unnamed messages; readiness without a tenant; `--default-tenant` refused with API keys.
#[tokio::test]
async fn a_client_that_sends_no_tenant_works_with_a_default_tenant() {
    let server = Server::start(&["--auth", "header", "--default-tenant", "demo"]);
    let client = reqwest::Client::new();
    let created = client
        .post(server.url("/api/events"))
        .json(&json!({"userId": "u1", "eventType": "click", "page": "/home", "timestamp": "2024-05-10T10:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let stream = client
        .get(server.url("/api/analytics/stream?startDate=2024-05-01&endDate=2024-05-31"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = Events::new(stream);
    assert_eq!(events.next_summary().await.unwrap()["totalEvents"], 1);
    let health = client.get(server.url("/api/analytics/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    drop(events);
    server.terminate();

    let refused = Command::new(env!("CARGO_BIN_EXE_analytics-server"))
        .args(["--listen", "127.0.0.1:0", "--default-tenant", "demo"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--default-tenant needs --auth header"));
}

#[tokio::test]
async fn postgres_and_redis_serve_over_http() {
    let (Some(database), Some(redis)) = (
        server_url("DATABASE_URL", "postgres_and_redis_serve_over_http"),
        server_url("REDIS_URL", "postgres_and_redis_serve_over_http"),
    ) else {
        return;
    };
    let tenant = unique("e2e");
    // `tenant create` provisions a tenant in the persistent store and prints its key.
    let created = Command::new(env!("CARGO_BIN_EXE_analytics-server"))
        .args(["tenant", "create", &tenant, "--store", &database])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let printed = String::from_utf8(created.stdout).unwrap();
    let key = printed.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(key.starts_with("ak_"), "{printed}");

    let server = Server::start(&["--store", &database, "--cache", &redis]);
    exercise(server, &key).await;
}

/// Two server processes sharing PostgreSQL (change notices over `LISTEN/NOTIFY`), then sharing
/// PostgreSQL and Redis (over Redis pub/sub): a stream open on B is pushed by an ingest on A,
/// and a plain read on B sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_instance_is_pushed_by_an_ingest_on_another() {
    let Some(database) = server_url("DATABASE_URL", "two_instances") else {
        return;
    };
    let Some(redis) = server_url("REDIS_URL", "two_instances") else {
        return;
    };
    let shared_store = ["--store", database.as_str()];
    let shared_both = ["--store", database.as_str(), "--cache", redis.as_str()];
    for shared in [&shared_store[..], &shared_both[..]] {
        let args: Vec<&str> = ["--auth", "header"].iter().chain(shared).copied().collect();
        let (a, b) = (Server::start(&args), Server::start(&args));
        let tenant = unique("two");
        let client = reqwest::Client::new();
        let range = "startDate=2024-05-01&endDate=2024-05-31";
        let stream = client
            .get(b.url(&format!("/api/analytics/summary/stream?{range}")))
            .header("x-tenant-id", &tenant)
            .send()
            .await
            .unwrap();
        let mut on_b = Events::new(stream);
        assert_eq!(on_b.next_summary().await.unwrap()["totalEvents"], 0);

        let event = json!({"eventType": "click", "timestamp": "2024-05-10T10:00:00Z"});
        let created = client
            .post(a.url("/api/events"))
            .header("x-tenant-id", &tenant)
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(
            on_b.next_summary().await.unwrap()["totalEvents"],
            1,
            "B's stream heard A's ingest ({shared:?})"
        );
        let read: Value = client
            .get(b.url(&format!("/api/analytics/summary?{range}")))
            .header("x-tenant-id", &tenant)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(read["totalEvents"], 1, "{read}");
    }
}

/// The server reading a streaming replica that lags (2 s in the test script): each event is
/// counted by the summary read right after its ingest, and the answer cached afterwards is the
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_a_lagging_replica_see_each_acknowledged_write() {
    let Some(database) = server_url("DATABASE_URL", "replica_reads") else {
        return;
    };
    let Some(replica) = server_url("DATABASE_REPLICA_URL", "replica_reads") else {
        return;
    };
    let server = Server::start(&["--auth", "header", "--store", &database, "--read-url", &replica]);
    let tenant = unique("lag");
    let client = reqwest::Client::new();
    let summary_url = server.url("/api/analytics/summary?startDate=2024-05-01&endDate=2024-05-31");
    for n in 1..=5 {
        let event = json!({"eventType": "click", "timestamp": "2024-05-10T10:00:00Z"});
        let created = client
            .post(server.url("/api/events"))
            .header("x-tenant-id", &tenant)
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        for read in ["computed", "cached"] {
            let body: Value = client
                .get(&summary_url)
                .header("x-tenant-id", &tenant)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(body["totalEvents"], n, "{read} read after ingest {n}: {body}");
            assert_eq!(body["_metadata"]["cached"], read == "cached", "{body}");
        }
    }
}

/// Two server processes sharing PostgreSQL and Redis: together they admit no more than a rate
/// limit allows, and killing one (SIGKILL) loses none of the events it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_limits_and_a_killed_one_loses_nothing() {
    let Some(database) = server_url("DATABASE_URL", "two_instances_limits") else {
        return;
    };
    let Some(redis) = server_url("REDIS_URL", "two_instances_limits") else {
        return;
    };
    let args = [
        "--auth",
        "header",
        "--store",
        &database,
        "--cache",
        &redis,
        "--rate-limit",
        "analytics=10/3600",
    ];
    let (a, b) = (Server::start(&args), Server::start(&args));
    let tenant = unique("shared");
    let client = reqwest::Client::new();
    let summary = "/api/analytics/summary?startDate=2024-05-01&endDate=2024-05-31";
    let mut admitted = 0;
    for i in 0..16 {
        let server = if i % 2 == 0 { &a } else { &b };
        let reply = client
            .get(server.url(summary))
            .header("x-tenant-id", &tenant)
            .send()
            .await
            .unwrap();
        match reply.status().as_u16() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 10, "the two instances admitted the limit together, not each");

    let mut acknowledged = 0;
    for i in 0..20 {
        let event = json!({"id": format!("k{i}"), "eventType": "click", "timestamp": "2024-05-10T10:00:00Z"});
        let reply = client
            .post(a.url("/api/events"))
            .header("x-tenant-id", &tenant)
            .json(&event)
            .send()
            .await
            .unwrap();
        if reply.status() == 201 {
            acknowledged += 1;
        }
    }
    a.kill();
    let log: Value = client
        .get(b.url("/api/events?limit=100"))
        .header("x-tenant-id", &tenant)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acknowledged, 20);
    assert_eq!(
        log["total"], acknowledged,
        "every acknowledged event is there after A died: {log}"
    );
}
