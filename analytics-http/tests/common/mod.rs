//! An in-process app over a memory store with a manual clock, and request helpers.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::clock::ManualClock;
use analytics_core::resilience::RateLimits;
use analytics_core::store::MemoryStore;
use analytics_core::testkit::InstrumentedStore;
use analytics_http::server::bootstrap_tenant;
use analytics_http::{AppState, HttpConfig, StreamConfig, router};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const KEY_ACME: &str = "key-acme-0001";
pub const KEY_BETA: &str = "key-beta-0001";
pub const NOW: &str = "2024-06-01T12:00:00Z";

pub struct App {
    pub router: Router,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub store: Arc<InstrumentedStore<MemoryStore>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error body's field, if any.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Stream pushes without a coalescing delay, so tests wait on events, not on time.
pub fn test_config() -> HttpConfig {
    HttpConfig {
        stream: StreamConfig {
            coalesce: Duration::ZERO,
            heartbeat: Duration::from_secs(3600),
        },
        ..HttpConfig::default()
    }
}

pub async fn app() -> App {
    app_with(test_config(), RateLimits::default()).await
}

pub async fn app_with(config: HttpConfig, limits: RateLimits) -> App {
    let clock = Arc::new(ManualClock::new(NOW.parse().unwrap()));
    let store = Arc::new(InstrumentedStore::new(MemoryStore::new()));
    let analytics = Analytics::builder()
        .store(store.clone())
        .clock(clock.clone())
        .rate_limits(limits)
        .build()
        .unwrap();
    bootstrap_tenant(&analytics, &format!("acme:{KEY_ACME}")).await.unwrap();
    bootstrap_tenant(&analytics, &format!("beta:{KEY_BETA}")).await.unwrap();
    let state = AppState::new(analytics, config);
    App {
        router: router(state.clone()),
        state,
        clock,
        store,
    }
}

pub fn request(method: Method, uri: &str, key: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    match body {
        Some(json) => builder
            .header("content-type", "application/json")
            .body(Body::from(json.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

impl App {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(request(Method::GET, uri, Some(KEY_ACME), None)).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Reply {
        self.send(request(Method::POST, uri, Some(KEY_ACME), Some(body))).await
    }

    pub async fn patch(&self, uri: &str, body: Value) -> Reply {
        self.send(request(Method::PATCH, uri, Some(KEY_ACME), Some(body))).await
    }

    /// Ingests `events` for acme through the batch route.
    pub async fn ingest(&self, events: Value) -> Reply {
        let reply = self.post("/api/events/batch", serde_json::json!({ "events": events })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply
    }
}

/// An acme event.
pub fn event(id: &str, user: &str, event_type: &str, timestamp: &str) -> Value {
    serde_json::json!({
        "id": id,
        "userId": user,
        "eventType": event_type,
        "page": "/home",
        "device": "desktop",
        "timestamp": timestamp,
    })
}
