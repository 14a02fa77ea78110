//! The live summary stream, in process: pushes on ingest, tenant isolation, `Last-Event-ID`,
//! shared topics, shutdown.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

const RANGE: &str = "startDate=2024-05-01&endDate=2024-05-31";

#[tokio::test]
async fn an_ingest_is_pushed_to_the_stream_and_other_tenants_are_not() {
    let app = app().await;
    app.ingest(json!([event("s1", "u1", "click", "2024-05-10T10:00:00Z")]))
        .await;
    let mut stream = app.stream(RANGE, None).await;
    let first = stream.next().await.unwrap();
    assert_eq!(first.event, "message", "unnamed, so a browser's onmessage fires");
    assert_eq!(first.data["totalEvents"], 1);
    assert!(first.id.is_some());

    app.ingest(json!([event("s2", "u2", "view", "2024-05-11T10:00:00Z")]))
        .await;
    let second = stream.next().await.unwrap();
    assert_eq!(second.data["totalEvents"], 2);
    assert_eq!(second.data["uniqueUsers"], 2);
    assert_ne!(second.id, first.id);

    // Another tenant's ingest pushes nothing: the next event is acme's next change.
    let beta = app
        .send(request(
            Method::POST,
            "/api/events/batch",
            Some(KEY_BETA),
            Some(json!({"events": [event("b1", "u9", "click", "2024-05-12T10:00:00Z")]})),
        ))
        .await;
    assert_eq!(beta.status, StatusCode::OK);
    // A retry changes nothing either: no push.
    app.ingest(json!([event("s2", "u2", "view", "2024-05-11T10:00:00Z")]))
        .await;
    app.ingest(json!([event("s3", "u3", "view", "2024-05-12T10:00:00Z")]))
        .await;
    let third = stream.next().await.unwrap();
    assert_eq!(third.data["totalEvents"], 3);
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_skips_the_summary_it_has() {
    let app = app().await;
    app.ingest(json!([event("s1", "u1", "click", "2024-05-10T10:00:00Z")]))
        .await;
    let mut first_connection = app.stream(RANGE, None).await;
    let seen = first_connection.next().await.unwrap();
    drop(first_connection);

    let mut reconnected = app.stream(RANGE, seen.id.as_deref()).await;
    app.ingest(json!([event("s2", "u1", "view", "2024-05-10T11:00:00Z")]))
        .await;
    let next = reconnected.next().await.unwrap();
    assert_eq!(next.data["totalEvents"], 2, "the summary already seen was not resent");

    // Without the header the current summary comes first.
    let mut fresh = app.stream(RANGE, None).await;
    assert_eq!(fresh.next().await.unwrap().data["totalEvents"], 2);
}

#[tokio::test]
async fn streams_of_one_query_share_a_topic_that_ends_with_them() {
    let app = app().await;
    let mut a = app.stream(RANGE, None).await;
    let mut b = app.stream(RANGE, None).await;
    let mut other = app
        .stream("startDate=2024-05-01&endDate=2024-05-31&groupBy=week", None)
        .await;
    assert_eq!(app.state.stream_topics(), 2);
    for s in [&mut a, &mut b, &mut other] {
        assert_eq!(s.next().await.unwrap().data["totalEvents"], 0);
    }
    let computed = app.store.summaries();
    app.ingest(json!([event("s1", "u1", "click", "2024-05-10T10:00:00Z")]))
        .await;
    assert_eq!(a.next().await.unwrap().data["totalEvents"], 1);
    assert_eq!(b.next().await.unwrap().data["totalEvents"], 1);
    assert_eq!(other.next().await.unwrap().data["totalEvents"], 1);
    assert_eq!(
        app.store.summaries() - computed,
        2,
        "one computation per topic, not per stream"
    );

    // The topic ends once its streams are gone and its task sees a notice.
    drop((a, b));
    app.ingest(json!([event("s2", "u1", "click", "2024-05-10T10:00:01Z")]))
        .await;
    assert_eq!(other.next().await.unwrap().data["totalEvents"], 2);
    assert_eq!(app.state.stream_topics(), 1);
}

#[tokio::test]
async fn closing_ends_every_stream() {
    let app = app().await;
    let mut stream = app.stream(RANGE, None).await;
    assert!(stream.next().await.is_some());
    app.state.close_streams();
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn bad_stream_parameters_are_400_before_streaming() {
    let app = app().await;
    for (query, field) in [
        ("startDate=2024-05-01", "endDate"),
        (&format!("{RANGE}&compare=previous"), "compare"),
        (&format!("{RANGE}&x=1"), "x"),
    ] {
        let reply = app.get(&format!("/api/analytics/summary/stream?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.field(), Some(field));
    }
}
