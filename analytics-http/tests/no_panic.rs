//! Arbitrary input never panics the server or yields a 5xx: every refusal is a JSON error.

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use common::*;
use proptest::prelude::*;

fn check(reply: &Reply) {
    assert!(!reply.status.is_server_error(), "{} {}", reply.status, reply.body);
    if reply.status.is_client_error() {
        assert!(reply.code().is_some(), "an error without a JSON body: {}", reply.body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_query_strings_and_bodies_get_answers_not_panics(
        query in "[a-zA-Z=&%0-9:.+_ -]{0,80}",
        path in prop::sample::select(vec![
            "/api/analytics/summary", "/api/analytics/summary/paginated", "/api/events",
            "/api/analytics/realtime", "/api/experiments/x/results", "/api/v1/analytics/summary",
        ]),
        body in prop_oneof![
            "\\PC{0,200}",
            Just(r#"{"events": [{"eventType": "x", "timestamp": "9999-99-99"}]}"#.to_owned()),
            Just(r#"{"eventType": "click", "properties": [1, 2]}"#.to_owned()),
            Just(r#"{"events": null}"#.to_owned()),
        ],
        post_path in prop::sample::select(vec![
            "/api/events", "/api/events/batch", "/api/experiments", "/api/analytics/cache/warm",
            "/api/experiments/x/assignments",
        ]),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = app().await;
            let uri = format!("{path}?{}", query.replace(' ', "%20"));
            if let Ok(request) = Request::get(uri.as_str()).header("x-api-key", KEY_ACME).body(Body::empty()) {
                check(&app.send(request).await);
            }
            let post = request(Method::POST, post_path, Some(KEY_ACME), None);
            let (mut parts, _) = post.into_parts();
            parts.headers.insert("content-type", "application/json".parse().unwrap());
            check(&app.send(Request::from_parts(parts, Body::from(body.clone()))).await);
        });
    }
}
