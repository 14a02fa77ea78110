//! Any query string on every GET route that takes one, through the real router on the embedded
//! store: never a panic, never a 5xx, and every 400 names the parameter it refuses.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::model::TenantId;
use analytics_core::resilience::{EndpointClass, FailMode, LimitRule, RateLimitPolicy, RateLimits};
use analytics_core::store::MemoryStore;
use analytics_http::{AppState, AuthMode, HttpConfig, router};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// The routes whose query strings are parsed (the stream's parameters are a summary's).
const ROUTES: [&str; 7] = [
    "/api/analytics/summary",
    "/api/analytics/summary/paginated",
    "/api/analytics/realtime",
    "/api/events",
    "/api/experiments",
    "/api/experiments/exp_1/results",
    "/api/analytics/health",
];

struct Target {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

static TARGET: LazyLock<Target> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Limits so high the fuzzer is never refused: it measures parsing, not admission.
    let unlimited = LimitRule {
        policy: RateLimitPolicy::gcra(1_000_000, Duration::from_secs(1)),
        fail: FailMode::Open,
    };
    let mut limits = RateLimits::default();
    for class in [
        EndpointClass::Analytics,
        EndpointClass::EventsRead,
        EndpointClass::EventsWrite,
        EndpointClass::General,
    ] {
        limits = limits.set(class, unlimited).unwrap();
    }
    let analytics = runtime.block_on(async {
        Analytics::builder()
            .store(std::sync::Arc::new(MemoryStore::new()))
            .rate_limits(limits)
            .build()
            .unwrap()
    });
    let config = HttpConfig {
        auth: AuthMode::Header,
        default_tenant: Some(TenantId::parse("acme").unwrap()),
        ..HttpConfig::default()
    };
    Target {
        router: router(AppState::new(analytics, config)),
        runtime,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&route, query)) = data.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let path = ROUTES[usize::from(route) % ROUTES.len()];
    let Ok(uri) = format!("{path}?{query}").parse::<Uri>() else {
        return;
    };
    let target = &*TARGET;
    let (status, body) = target.runtime.block_on(async {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = target.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (status, to_bytes(response.into_body(), usize::MAX).await.unwrap())
    });
    assert!(!status.is_server_error(), "{status} for {path}?{query}: {body:?}");
    if status == StatusCode::BAD_REQUEST {
        let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
        let field = body["error"]["field"].as_str();
        assert!(
            field.is_some_and(|f| !f.is_empty()),
            "no field named for {path}?{query}: {body}"
        );
    }
});
