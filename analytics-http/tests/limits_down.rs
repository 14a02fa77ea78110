//! With the rate-limit store unavailable, a rule that fails open admits the request and says so:
//! the `X-RateLimit-Unchecked` header on the response and the `analytics_rate_limit_unchecked`
//! metric; a rule that fails closed refuses with 503 and `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::resilience::{
    EndpointClass, FailMode, LimitRule, LimiterKey, RateLimitDecision, RateLimitPolicy, RateLimitStore, RateLimits,
};
use analytics_http::{AppState, AuthMode, HttpConfig, UNCHECKED_HEADER, router};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A limit store that is down.
#[derive(Debug)]
struct DownLimits;

#[async_trait]
impl RateLimitStore for DownLimits {
    async fn check(
        &self,
        _: &LimiterKey,
        _: &RateLimitPolicy,
        _: DateTime<Utc>,
    ) -> analytics_core::Result<RateLimitDecision> {
        Err(analytics_core::Error::unavailable("the limit store is down"))
    }
}

fn app(limits: RateLimits) -> axum::Router {
    let analytics = Analytics::builder()
        .rate_limit_store(Arc::new(DownLimits))
        .rate_limits(limits)
        .build()
        .unwrap();
    let config = HttpConfig {
        auth: AuthMode::Header,
        ..HttpConfig::default()
    };
    router(AppState::new(analytics, config))
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::get(uri)
        .header("x-tenant-id", "acme")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

const SUMMARY: &str = "/api/analytics/summary?startDate=2024-05-01&endDate=2024-05-31";

#[tokio::test]
async fn fail_open_admits_and_says_it_did_not_check() {
    let app = app(RateLimits::default());
    for _ in 0..2 {
        let (status, headers, body) = get(&app, SUMMARY).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers.get(UNCHECKED_HEADER).unwrap(), "true");
    }
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "analytics_rate_limit_unchecked 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn fail_closed_refuses_with_retry_after() {
    let closed = LimitRule {
        policy: RateLimitPolicy::gcra(100, Duration::from_secs(60)),
        fail: FailMode::Closed,
    };
    let app = app(RateLimits::default().set(EndpointClass::Analytics, closed).unwrap());
    let (status, headers, body) = get(&app, SUMMARY).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.get("retry-after").is_some());
    assert!(headers.get(UNCHECKED_HEADER).is_none());
}
