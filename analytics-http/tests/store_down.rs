//! With the whole store down (key look-ups and experiments included), an API-key caller gets the
//! cached or stale answer a header-mode caller gets, and cached paths never call the store.

mod common;

use std::time::Duration;

use analytics_core::resilience::RateLimits;
use axum::http::StatusCode;
use common::*;
use serde_json::json;

const RANGE: &str = "startDate=2024-05-01&endDate=2024-05-31";

async fn seeded() -> App {
    let app = app().await;
    app.ingest(json!([
        event("d1", "u1", "click", "2024-05-10T10:00:00Z"),
        event("d2", "u2", "CONVERSION", "2024-05-11T10:00:00Z"),
    ]))
    .await;
    let created = app
        .post(
            "/api/experiments",
            json!({"id": "exp-1", "name": "Checkout", "variants": [{"key": "A", "weight": 50}, {"key": "B", "weight": 50}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    app
}

#[tokio::test]
async fn a_cached_answer_needs_no_store_call() {
    let app = seeded().await;
    let plain = format!("/api/analytics/summary?{RANGE}");
    let experiment = format!("/api/analytics/summary?{RANGE}&experimentId=exp-1");
    for uri in [&plain, &experiment] {
        assert_eq!(app.get(uri).await.body["_metadata"]["cached"], false);
    }
    let calls = app.store.calls();
    for uri in [&plain, &experiment] {
        let reply = app.get(uri).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["_metadata"]["cached"], true);
    }
    assert_eq!(app.store.calls(), calls, "cache hits called the store");
}

#[tokio::test]
async fn with_the_whole_store_down_an_api_key_caller_gets_the_stale_answer() {
    let app = seeded().await;
    let plain = format!("/api/analytics/summary?{RANGE}");
    let experiment = format!("/api/analytics/summary?{RANGE}&experimentId=exp-1");
    let mut before = Vec::new();
    for uri in [&plain, &experiment] {
        let reply = app.get(uri).await;
        assert_eq!(reply.status, StatusCode::OK);
        before.push(reply.body);
    }
    assert_eq!(before[0]["totalEvents"], 2);
    app.store.set_all_down(true);
    // Past the key memo's TTL and the answers' freshness: the key and the experiment must be
    // looked up again, and the store cannot answer.
    app.clock.advance(Duration::from_secs(10 * 60));
    for (uri, before) in [&plain, &experiment].into_iter().zip(&before) {
        let reply = app.get(uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert_eq!(reply.body["_metadata"]["stale"], true, "{uri}");
        assert_eq!(reply.body["totalEvents"], before["totalEvents"], "{uri}");
        assert_eq!(reply.body["variants"], before["variants"], "{uri}");
    }
    // The failed look-ups are not repeated on every request: the last known answers are used
    // for another TTL (each would otherwise wait for the store to fail again).
    let calls = app.store.calls();
    for uri in [&plain, &experiment] {
        assert_eq!(app.get(uri).await.status, StatusCode::OK);
    }
    assert_eq!(app.store.calls(), calls, "the store was asked again within the TTL");
    // A key never seen cannot be vouched for while the store is down.
    let unknown = app
        .send(request(
            axum::http::Method::GET,
            &plain,
            Some("key-never-seen-0001"),
            None,
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::SERVICE_UNAVAILABLE, "{}", unknown.body);

    app.store.set_all_down(false);
    app.clock.advance(Duration::from_secs(60));
    let recovered = app.get(&format!("{plain}&skipCache=true")).await;
    assert_eq!(recovered.status, StatusCode::OK);
    assert_eq!(recovered.body["_metadata"]["stale"], false);
}

#[tokio::test]
async fn unknown_keys_are_remembered_and_their_look_ups_limited() {
    let app = app_with(test_config(), RateLimits::default()).await;
    let uri = format!("/api/analytics/summary?{RANGE}");
    let calls = app.store.calls();
    let guess = |n: usize| format!("key-guess-{n:06}");
    let mut refused = 0;
    for n in 0..100 {
        let reply = app
            .send(request(axum::http::Method::GET, &uri, Some(&guess(n)), None))
            .await;
        match reply.status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{other}: {}", reply.body),
        }
    }
    let looked_up = app.store.calls() - calls;
    assert!(looked_up <= 20, "{looked_up} look-ups for 100 guesses in one instant");
    assert_eq!(refused, 100 - looked_up);
    // The same unknown key again costs no look-up either.
    let before = app.store.calls();
    let again = app
        .send(request(axum::http::Method::GET, &uri, Some(&guess(0)), None))
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.store.calls(), before);
}
