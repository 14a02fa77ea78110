//! An in-process app over a memory store with a manual clock, and request helpers.

#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use analytics_core::clock::ManualClock;
use analytics_core::resilience::RateLimits;
use analytics_core::store::MemoryStore;
use analytics_core::testkit::InstrumentedStore;
use analytics_core::{Analytics, LiveConfig};
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

/// No heartbeats in the way of the events a test waits for.
pub fn test_config() -> HttpConfig {
    HttpConfig {
        stream: StreamConfig {
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
        // Stream pushes without a coalescing delay, so tests wait on events, not on time.
        .live(LiveConfig {
            coalesce: Duration::ZERO,
        })
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
        let reply = self
            .post("/api/events/batch", serde_json::json!({ "events": events }))
            .await;
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

/// A Server-Sent Events reader over a response body.
pub struct SseReader {
    body: Body,
    buffer: String,
}

/// One SSE event (comments are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

impl SseReader {
    pub fn new(body: Body) -> Self {
        Self {
            body,
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the stream ends. A hang guard of 30 s fails the test instead
    /// of blocking it forever (it is never the expected path).
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(Duration::from_secs(30), self.next_inner())
            .await
            .expect("no SSE event within 30 s")
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (heartbeat)
                }
                event.data = serde_json::from_str(&data).unwrap();
                return Some(event);
            }
            let frame = self.body.frame().await?.unwrap();
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}

impl App {
    /// Opens the summary stream of acme.
    pub async fn stream(&self, query: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = request(
            Method::GET,
            &format!("/api/analytics/summary/stream?{query}"),
            Some(KEY_ACME),
            None,
        );
        if let Some(id) = last_event_id {
            request.headers_mut().insert("last-event-id", id.parse().unwrap());
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseReader::new(response.into_body())
    }
}
