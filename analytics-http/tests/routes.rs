//! Every route in process (tower `oneshot`), with every error status the API documents.

mod common;

use std::time::Duration;

use analytics_core::resilience::{EndpointClass, FailMode, LimitRule, RateLimitPolicy, RateLimits};
use analytics_http::HttpConfig;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{Value, json};

const RANGE: &str = "startDate=2024-05-01&endDate=2024-05-31";

async fn seeded() -> App {
    let app = app().await;
    app.ingest(json!([
        event("e1", "u1", "click", "2024-05-10T10:00:00Z"),
        event("e2", "u2", "view", "2024-05-10T11:00:00Z"),
        event("e3", "u1", "view", "2024-05-20T09:00:00Z"),
        event("e0", "u3", "view", "2024-04-20T09:00:00Z"),
    ]))
    .await;
    app
}

#[tokio::test]
async fn summary_answers_in_seed_000_shape_under_api_and_v1() {
    let app = seeded().await;
    for prefix in ["/api", "/api/v1"] {
        let reply = app.get(&format!("{prefix}/analytics/summary?{RANGE}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let body = &reply.body;
        assert_eq!(body["totalEvents"], 3);
        assert_eq!(body["uniqueUsers"], 2);
        assert_eq!(body["eventsByType"][0], json!({"eventType": "view", "count": 2}));
        assert_eq!(body["timeSeriesData"].as_array().unwrap().len(), 31);
        assert_eq!(body["topPages"][0], json!({"page": "/home", "views": 3}));
        assert_eq!(body["deviceStats"][0]["device"], "desktop");
        for key in [
            "loadLevel",
            "cached",
            "stale",
            "responseTime",
            "granularity",
            "degraded",
            "uniqueUsersApproximate",
        ] {
            assert!(body["_metadata"].get(key).is_some(), "_metadata.{key} missing: {body}");
        }
        assert!(reply.header("x-ratelimit-limit").is_some());
        assert!(reply.header("x-ratelimit-remaining").is_some());
        assert!(reply.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn a_summary_declares_its_exact_length_on_a_miss_and_on_a_hit() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = seeded().await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        // The first computes and caches, the second is served from the cached answer's JSON.
        let uri = format!("/api/analytics/summary?{RANGE}");
        let response = app
            .router
            .clone()
            .oneshot(request(Method::GET, &uri, Some(KEY_ACME), None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        let declared = axum::body::HttpBody::size_hint(response.body()).exact();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            declared,
            Some(bytes.len() as u64),
            "the length hyper writes as Content-Length"
        );
        let mut json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["_metadata"]["cached"], bodies.len() == 1);
        json.as_object_mut().unwrap().remove("_metadata");
        bodies.push(json);
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn summary_accepts_aliases_filters_and_compare_previous() {
    let app = seeded().await;
    let aliased = app
        .get("/api/analytics/summary?from=2024-05-01&to=2024-05-31&eventType=view&groupBy=week")
        .await;
    assert_eq!(aliased.status, StatusCode::OK, "{}", aliased.body);
    assert_eq!(aliased.body["totalEvents"], 2);
    assert_eq!(aliased.body["_metadata"]["granularity"], "week");

    let user = app
        .get(&format!(
            "/api/analytics/summary?{RANGE}&userId=u1&exact=true&timezone=Europe/Paris"
        ))
        .await;
    assert_eq!(user.body["totalEvents"], 2);
    assert_eq!(user.body["_metadata"]["timezone"], "Europe/Paris");

    let compared = app
        .get(&format!("/api/analytics/summary?{RANGE}&compare=previous"))
        .await;
    assert_eq!(compared.status, StatusCode::OK, "{}", compared.body);
    let comparison = &compared.body["comparison"];
    assert_eq!(comparison["totalEvents"], 1, "{comparison}");
    assert_eq!(comparison["startDate"], "2024-03-31T00:00:00Z", "31 days before May 1");
    assert_eq!(comparison["endDate"], "2024-05-01T00:00:00Z");
    assert_eq!(comparison["change"]["totalEvents"], 2.0);
    assert_eq!(comparison["change"]["uniqueUsers"], 1.0);
}

#[tokio::test]
async fn summary_rejects_bad_parameters_naming_them() {
    let app = seeded().await;
    let cases = [
        ("/api/analytics/summary?endDate=2024-05-31", "startDate"),
        (
            "/api/analytics/summary?startDate=2024-13-01&endDate=2024-05-31",
            "startDate",
        ),
        (&format!("/api/analytics/summary?{RANGE}&grupBy=day"), "grupBy"),
        (&format!("/api/analytics/summary?{RANGE}&groupBy=year"), "groupBy"),
        (
            &format!("/api/analytics/summary?{RANGE}&timezone=Mars/Base"),
            "timezone",
        ),
        (
            &format!("/api/analytics/summary?{RANGE}&skipCache=perhaps"),
            "skipCache",
        ),
        (&format!("/api/analytics/summary?{RANGE}&compare=next"), "compare"),
        // `from` is another name for `startDate`: both is one parameter given twice.
        (&format!("/api/analytics/summary?{RANGE}&from=2024-05-01"), "startDate"),
        (
            "/api/analytics/summary?startDate=2024-05-31&endDate=2024-05-01",
            "endDate",
        ),
    ];
    for (uri, field) in cases {
        let reply = app.get(uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}: {}", reply.body);
        assert_eq!(reply.field(), Some(field), "{uri}: {}", reply.body);
        assert_eq!(reply.code(), Some("invalid_input"));
    }
}

#[tokio::test]
async fn authentication_failures_are_401_and_403() {
    let app = seeded().await;
    let uri = format!("/api/analytics/summary?{RANGE}");
    let missing = app.send(request(Method::GET, &uri, None, None)).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.field(), Some("X-API-Key"));
    let unknown = app.send(request(Method::GET, &uri, Some("not-a-real-key"), None)).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let malformed = app.send(request(Method::GET, &uri, Some("short"), None)).await;
    assert_eq!(malformed.status, StatusCode::UNAUTHORIZED);

    let mut other = request(Method::GET, &uri, Some(KEY_ACME), None);
    other.headers_mut().insert("x-tenant-id", "beta".parse().unwrap());
    let forbidden = app.send(other).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.field(), Some("X-Tenant-Id"));

    let mut bad_priority = request(Method::GET, &uri, Some(KEY_ACME), None);
    bad_priority.headers_mut().insert("x-priority", "11".parse().unwrap());
    let reply = app.send(bad_priority).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), Some("X-Priority"));
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = seeded().await;
    let beta = app
        .send(request(
            Method::GET,
            &format!("/api/analytics/summary?{RANGE}"),
            Some(KEY_BETA),
            None,
        ))
        .await;
    assert_eq!(beta.status, StatusCode::OK);
    assert_eq!(beta.body["totalEvents"], 0);
    let events = app
        .send(request(Method::GET, "/api/events", Some(KEY_BETA), None))
        .await;
    assert_eq!(events.body["total"], 0);
    let cross = app.get("/api/events?tenantId=beta").await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(cross.field(), Some("tenantId"));
}

#[tokio::test]
async fn header_auth_trusts_x_tenant_id() {
    let config = HttpConfig {
        auth: analytics_http::AuthMode::Header,
        ..test_config()
    };
    let app = app_with(config, RateLimits::default()).await;
    let uri = format!("/api/analytics/summary?{RANGE}");
    let missing = app.send(request(Method::GET, &uri, None, None)).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.field(), Some("X-Tenant-Id"));
    let mut named = request(Method::GET, &uri, None, None);
    named.headers_mut().insert("x-tenant-id", "gamma".parse().unwrap());
    assert_eq!(app.send(named).await.status, StatusCode::OK);
    let mut invalid = request(Method::GET, &uri, None, None);
    invalid
        .headers_mut()
        .insert("x-tenant-id", "no spaces".parse().unwrap());
    let reply = app.send(invalid).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.field(), Some("X-Tenant-Id"));
}

#[tokio::test]
async fn rate_limits_refuse_with_429_retry_after_and_headers() {
    let limits = RateLimits::default()
        .set(
            EndpointClass::Analytics,
            LimitRule {
                policy: RateLimitPolicy::gcra(2, Duration::from_secs(60)),
                fail: FailMode::Open,
            },
        )
        .unwrap();
    let app = app_with(test_config(), limits).await;
    let uri = format!("/api/analytics/summary?{RANGE}");
    let first = app.get(&uri).await;
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(app.get(&uri).await.status, StatusCode::OK);
    let refused = app.get(&uri).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), Some("rate_limited"));
    assert_eq!(refused.header("retry-after"), Some("30"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    // Another class and another tenant are untouched.
    assert_eq!(app.get("/api/events").await.status, StatusCode::OK);
    let beta = app.send(request(Method::GET, &uri, Some(KEY_BETA), None)).await;
    assert_eq!(beta.status, StatusCode::OK);
    // The virtual clock, not a sleep, brings the limit back.
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(app.get(&uri).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after_or_a_stale_answer() {
    let app = seeded().await;
    let uri = format!("/api/analytics/summary?{RANGE}");
    assert_eq!(app.get(&uri).await.body["_metadata"]["cached"], false);
    app.store.set_down(true);
    // Cached answers are still served while the store is down.
    let cached = app.get(&uri).await;
    assert_eq!(cached.status, StatusCode::OK);
    assert_eq!(cached.body["_metadata"]["cached"], true);
    // An answer never computed cannot be served.
    let uncached = app
        .get("/api/analytics/summary?startDate=2024-01-01&endDate=2024-01-31")
        .await;
    assert_eq!(uncached.status, StatusCode::SERVICE_UNAVAILABLE, "{}", uncached.body);
    assert_eq!(uncached.code(), Some("unavailable"));
    assert!(uncached.header("retry-after").is_some());
    let events = app.get("/api/events").await;
    assert_eq!(events.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn paginated_summary_pages_through_the_series() {
    let app = seeded().await;
    let base = format!("/api/analytics/summary/paginated?{RANGE}");
    let first = app.get(&format!("{base}&limit=10")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let pagination = &first.body["pagination"];
    assert_eq!(pagination["total"], 31);
    assert_eq!(pagination["hasMore"], true);
    assert_eq!(pagination["cursor"], Value::Null);
    assert_eq!(pagination["nextCursor"], "2024-05-11T00:00:00Z");
    assert_eq!(first.body["data"]["timeSeriesData"].as_array().unwrap().len(), 10);
    assert_eq!(first.body["data"]["totalEvents"], 3);

    let mut cursor = pagination["nextCursor"].as_str().unwrap().to_owned();
    let mut seen = 10;
    loop {
        let page = app.get(&format!("{base}&limit=10&cursor={cursor}")).await;
        seen += page.body["data"]["timeSeriesData"].as_array().unwrap().len();
        match page.body["pagination"]["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 31);

    for (query, field) in [
        ("&limit=0", "limit"),
        ("&limit=1001", "limit"),
        ("&cursor=yesterday", "cursor"),
    ] {
        let reply = app.get(&format!("{base}{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.field(), Some(field));
    }
}

#[tokio::test]
async fn realtime_counts_the_last_five_minutes() {
    let app = app().await;
    app.ingest(json!([
        event("r1", "u1", "click", "2024-06-01T11:56:00Z"),
        event("r2", "u2", "click", "2024-06-01T11:59:00Z"),
        event("r3", "u2", "view", "2024-06-01T11:50:00Z"),
    ]))
    .await;
    let reply = app.get("/api/analytics/realtime").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["events"], 2);
    assert_eq!(reply.body["activeUsers"], 2);
    assert_eq!(reply.body["windowSeconds"], 300);
    app.clock.advance(Duration::from_secs(200));
    let later = app.get("/api/analytics/realtime").await;
    assert_eq!(later.body["events"], 1);
    assert_eq!(
        app.get("/api/analytics/realtime?window=1").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn health_and_cache_routes_have_seed_000_shapes() {
    let app = seeded().await;
    let uri = format!("/api/analytics/summary?{RANGE}");
    app.get(&uri).await;
    app.get(&uri).await;

    let health = app.get("/api/analytics/health").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(health.body["status"], "healthy");
    let metrics = &health.body["metrics"];
    assert_eq!(metrics["circuitBreaker"]["state"], "CLOSED");
    assert!(metrics["circuitBreaker"]["successCount"].as_u64().unwrap() >= 1);
    assert_eq!(metrics["load"]["level"], "NORMAL");
    assert!(metrics["load"].get("requestsPerSecond").is_some());
    assert!(metrics["load"].get("avgResponseTime").is_some());
    assert!(metrics["cache"]["hitRate"].as_f64().unwrap() > 0.0);
    assert!(metrics["cache"]["size"].as_u64().unwrap() > 0);

    // Another tenant's traffic shows in neither the counts nor the hit rate of this one.
    for _ in 0..3 {
        let reply = app.send(request(Method::GET, &uri, Some(KEY_BETA), None)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let stats = app.get("/api/analytics/cache/stats").await;
    assert_eq!(
        stats.body["cache"],
        json!({"hits": 1, "staleHits": 0, "misses": 1, "hitRate": 50.0})
    );
    assert_eq!(stats.body["circuitBreaker"], json!({"state": "CLOSED"}));
    assert_eq!(stats.body["load"], json!({"level": "NORMAL"}));
    let beta = app
        .send(request(Method::GET, "/api/analytics/cache/stats", Some(KEY_BETA), None))
        .await;
    assert_eq!(beta.body["cache"]["hits"], 2);
    assert_eq!(beta.body["cache"]["misses"], 1);

    let cleared = app.post("/api/analytics/cache/clear", Value::Null).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(
        cleared.body,
        json!({"message": "Cache cleared successfully", "tenantId": "acme"})
    );
    assert_eq!(app.get(&uri).await.body["_metadata"]["cached"], false);

    app.store.set_down(true);
    let unhealthy = app.get("/api/analytics/health").await;
    assert_eq!(unhealthy.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unhealthy.body["status"], "unhealthy");
}

#[tokio::test]
async fn cache_warm_precomputes_ranges() {
    let app = seeded().await;
    let ranges = json!({"ranges": [
        {"startDate": "2024-05-01", "endDate": "2024-05-31"},
        {"startDate": "2024-05-01", "endDate": "2024-05-07", "groupBy": "hour"},
    ]});
    let warmed = app.post("/api/analytics/cache/warm", ranges.clone()).await;
    assert_eq!(warmed.status, StatusCode::OK, "{}", warmed.body);
    assert_eq!(warmed.body["warmed"][0]["wasCached"], false);
    assert_eq!(warmed.body["warmed"][1]["granularity"], "hour");
    let again = app.post("/api/analytics/cache/warm", ranges).await;
    assert_eq!(again.body["warmed"][0]["wasCached"], true);
    assert_eq!(
        app.get(&format!("/api/analytics/summary?{RANGE}")).await.body["_metadata"]["cached"],
        true
    );

    let empty = app.post("/api/analytics/cache/warm", json!({"ranges": []})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.field(), Some("ranges"));
    let bad = app
        .post(
            "/api/analytics/cache/warm",
            json!({"ranges": [{"startDate": "2024-05-01"}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.field(), Some("ranges[0].endDate"));
    let unknown = app
        .post(
            "/api/analytics/cache/warm",
            json!({"ranges": [{"start": "2024-05-01"}]}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.field(), Some("ranges[0].start"));
}

#[tokio::test]
async fn posting_an_event_is_idempotent_and_checks_its_tenant() {
    let app = app().await;
    let body = json!({
        "id": "evt-1", "tenantId": "acme", "userId": "user-456", "eventType": "click", "sessionId": "s-1",
        "page": "/home", "browser": "Chrome", "device": "desktop", "country": "USA",
        "timestamp": "2024-05-24T10:30:00Z", "metadata": {"customField": "value"}
    });
    let created = app.post("/api/events", body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["id"], "evt-1");
    assert_eq!(created.body["tenantId"], "acme");
    assert_eq!(created.body["duplicate"], false);
    let retried = app.post("/api/events", body.clone()).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(retried.body["duplicate"], true);
    let summary = app
        .get("/api/analytics/summary?startDate=2024-05-01&endDate=2024-05-31")
        .await;
    assert_eq!(summary.body["totalEvents"], 1, "a retried event is counted once");

    let mut other = body.clone();
    other["tenantId"] = json!("beta");
    let forbidden = app.post("/api/events", other).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.field(), Some("tenantId"));

    for (patch, field) in [
        (json!({"timestamp": "yesterday"}), "timestamp"),
        (json!({"eventType": null}), "eventType"),
        (json!({"colour": "red"}), "colour"),
        (json!({"userId": 7}), "userId"),
    ] {
        let mut bad = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let reply = app.post("/api/events", bad).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            reply.body
        );
        assert_eq!(reply.field(), Some(field), "{}", reply.body);
    }
    let malformed = app
        .send(
            Request::post("/api/events")
                .header("x-api-key", KEY_ACME)
                .header("content-type", "application/json")
                .body(Body::from("{\"eventType\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    let text = app
        .send(
            Request::post("/api/events")
                .header("x-api-key", KEY_ACME)
                .header("content-type", "text/plain")
                .body(Body::from("click"))
                .unwrap(),
        )
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.code(), Some("unsupported_media_type"));
}

#[tokio::test]
async fn batches_report_accepted_and_duplicate_ids_and_validate_everything_first() {
    let app = app().await;
    let first = app
        .ingest(json!([
            event("b1", "u1", "click", "2024-05-01T00:00:00Z"),
            event("b2", "u1", "click", "2024-05-01T00:00:01Z")
        ]))
        .await;
    assert_eq!(first.body, json!({"accepted": ["b1", "b2"], "duplicates": []}));
    let second = app
        .ingest(json!([
            event("b2", "u1", "click", "2024-05-01T00:00:01Z"),
            event("b3", "u2", "view", "2024-05-02T00:00:00Z")
        ]))
        .await;
    assert_eq!(second.body, json!({"accepted": ["b3"], "duplicates": ["b2"]}));

    let invalid = app
        .post(
            "/api/events/batch",
            json!({"events": [event("b4", "u1", "click", "2024-05-01T00:00:00Z"), {"userId": "u1"}]}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", invalid.body);
    assert_eq!(invalid.field(), Some("events[1].eventType"));
    let empty = app.post("/api/events/batch", json!({"events": []})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.field(), Some("events"));
    let mut foreign = event("b5", "u1", "click", "2024-05-01T00:00:00Z");
    foreign["tenantId"] = json!("beta");
    let forbidden = app.post("/api/events/batch", json!({"events": [foreign]})).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.field(), Some("events[0].tenantId"));
    // Nothing of the refused batches was stored.
    assert_eq!(app.get("/api/events").await.body["total"], 3);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let config = HttpConfig {
        body_limit: 1024,
        ..test_config()
    };
    let app = app_with(config, RateLimits::default()).await;
    let events: Vec<Value> = (0..50)
        .map(|i| event(&format!("x{i}"), "u", "click", "2024-05-01T00:00:00Z"))
        .collect();
    let reply = app.post("/api/events/batch", json!({ "events": events })).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.body);
    assert_eq!(reply.code(), Some("payload_too_large"));
}

#[tokio::test]
async fn the_event_log_pages_by_offset_and_by_cursor() {
    let app = app().await;
    let events: Vec<Value> = (0..7)
        .map(|i| {
            event(
                &format!("l{i}"),
                "u1",
                if i % 2 == 0 { "click" } else { "view" },
                &format!("2024-05-0{}T00:00:00Z", i + 1),
            )
        })
        .collect();
    app.ingest(Value::Array(events)).await;

    let page = app.get("/api/events?page=2&limit=3").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["total"], 7);
    assert_eq!(page.body["totalPages"], 3);
    assert_eq!(page.body["page"], 2);
    let ids: Vec<&str> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l3", "l2", "l1"], "newest first");

    let mut cursor = String::new();
    let mut all = Vec::new();
    loop {
        let reply = app.get(&format!("/api/events?limit=3&cursor={cursor}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        all.extend(
            reply.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match reply.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(all, ["l6", "l5", "l4", "l3", "l2", "l1", "l0"]);

    let filtered = app
        .get("/api/events?eventType=click&startDate=2024-05-02&endDate=2024-05-05")
        .await;
    assert_eq!(filtered.body["total"], 2, "{}", filtered.body);

    for (query, field) in [
        ("page=0", "page"),
        ("limit=1001", "limit"),
        ("cursor=nonsense", "cursor"),
        ("cursor=&page=1", "cursor"),
        ("startDate=someday", "startDate"),
        ("sort=asc", "sort"),
    ] {
        let reply = app.get(&format!("/api/events?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.body);
        assert_eq!(reply.field(), Some(field), "{query}");
    }
}

#[tokio::test]
async fn experiments_are_created_listed_read_updated_and_analysed() {
    let app = app().await;
    let definition = json!({
        "id": "exp_1", "name": "Checkout button", "status": "running",
        "variants": [{"key": "A", "weight": 0.5}, {"key": "B", "weight": 0.5}],
        "conversionEventType": "purchase"
    });
    let created = app.post("/api/experiments", definition.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["id"], "exp_1");
    let conflict = app.post("/api/experiments", definition).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    let invalid = app
        .post(
            "/api/experiments",
            json!({"id": "exp_2", "name": "x", "variants": [{"key": "A", "weight": 1.0}]}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", invalid.body);
    assert!(invalid.field().unwrap().starts_with("variants"), "{}", invalid.body);

    let listed = app.get("/api/experiments").await;
    assert_eq!(listed.body["experiments"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/experiments/exp_1").await.body["name"], "Checkout button");
    let missing = app.get("/api/experiments/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), Some("not_found"));
    let bad_id = app.get("/api/experiments/bad%20id").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.field(), Some("id"));

    let assigned = app
        .post("/api/experiments/exp_1/assignments", json!({"userId": "u1"}))
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    let variant = assigned.body["variant"].as_str().unwrap().to_owned();
    let exposed = app
        .post("/api/experiments/exp_1/exposures", json!({"userId": "u1"}))
        .await;
    assert_eq!(exposed.body["variant"], variant.as_str());
    app.ingest(json!([{
        "id": "p1", "userId": "u1", "eventType": "purchase", "timestamp": "2024-06-01T11:00:00Z",
        "experimentId": "exp_1", "variant": variant
    }]))
    .await;

    let results = app.get("/api/experiments/exp_1/results?confidenceLevel=0.9").await;
    assert_eq!(results.status, StatusCode::OK, "{}", results.body);
    let row = results.body["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == variant.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["users"], 1);
    assert_eq!(row["conversions"], 1);
    let bad_level = app.get("/api/experiments/exp_1/results?confidenceLevel=2").await;
    assert_eq!(bad_level.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_level.field(), Some("confidenceLevel"));

    let summary = app
        .get("/api/analytics/summary?startDate=2024-06-01&endDate=2024-06-01&experimentId=exp_1")
        .await;
    assert_eq!(
        summary.body["variants"][variant.as_str()]["conversions"],
        1,
        "{}",
        summary.body
    );

    let paused = app.patch("/api/experiments/exp_1", json!({"status": "paused"})).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["status"], "paused");
    let not_running = app
        .post("/api/experiments/exp_1/exposures", json!({"userId": "u2"}))
        .await;
    assert_eq!(not_running.status, StatusCode::CONFLICT);
    let bad_patch = app.patch("/api/experiments/exp_1", json!({"status": "exploded"})).await;
    assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_patch.field(), Some("status"));
    assert_eq!(
        app.patch("/api/experiments/nope", json!({"status": "paused"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = app().await;
    let missing = app.get("/api/nothing-here").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), Some("not_found"));
    let method = app
        .send(request(Method::DELETE, "/api/events", Some(KEY_ACME), None))
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.code(), Some("method_not_allowed"));
}

#[tokio::test]
async fn operator_routes_need_no_tenant() {
    let app = seeded().await;
    app.get(&format!("/api/analytics/summary?{RANGE}")).await;
    for uri in ["/health", "/api/health", "/api/v1/health"] {
        let reply = app.send(request(Method::GET, uri, None, None)).await;
        assert_eq!(reply.body, json!({"status": "ok"}), "{uri}");
    }
    let metrics = app.send(request(Method::GET, "/metrics", None, None)).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(r#"analytics_http_requests_total{route="/api/analytics/summary",method="GET",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("analytics_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"analytics_breaker_state{state="Closed"} 1"#));
    assert!(text.contains("analytics_cache_misses 1"));

    let doc = app.send(request(Method::GET, "/openapi.json", None, None)).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/analytics/summary",
        "/api/analytics/summary/paginated",
        "/api/analytics/summary/stream",
        "/api/analytics/realtime",
        "/api/analytics/health",
        "/api/analytics/cache/stats",
        "/api/analytics/cache/clear",
        "/api/analytics/cache/warm",
        "/api/events",
        "/api/events/batch",
        "/api/experiments",
        "/api/experiments/{id}",
        "/api/experiments/{id}/results",
        "/health",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    let documented: Vec<&str> = paths["/api/analytics/summary"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "startDate",
        "endDate",
        "groupBy",
        "timezone",
        "eventType",
        "userId",
        "experimentId",
        "skipCache",
        "exact",
        "compare",
    ] {
        assert!(documented.contains(&name), "{name} undocumented: {documented:?}");
    }
    assert!(doc.body["components"]["schemas"].get("Summary").is_some());
}

#[tokio::test]
async fn responses_are_compressed_and_request_ids_kept() {
    let app = seeded().await;
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::get(format!("/api/analytics/summary?{RANGE}&groupBy=hour"))
            .header("x-api-key", KEY_ACME)
            .header("accept-encoding", "gzip")
            .header("x-request-id", "req-42")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["x-request-id"], "req-42");
}
