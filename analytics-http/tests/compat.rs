//! Clients of the original dashboards and monitoring systems, in process: no tenant header with
//! a default tenant, unnamed stream messages on `/api/analytics/stream`, health and metrics
//! without a tenant and without tenant data, 5xx bodies without internal text, and bodies that
//! are too large or never arrive.

mod common;

use std::time::Duration;

use analytics_core::model::TenantId;
use analytics_core::resilience::RateLimits;
use analytics_http::{AuthMode, HttpConfig};
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const RANGE: &str = "startDate=2024-05-01&endDate=2024-05-31";

fn default_tenant_config() -> HttpConfig {
    HttpConfig {
        auth: AuthMode::Header,
        default_tenant: Some(TenantId::parse("acme").unwrap()),
        ..test_config()
    }
}

#[tokio::test]
async fn a_client_that_sends_no_tenant_gets_the_default_tenants_data() {
    let app = app_with(default_tenant_config(), RateLimits::default()).await;
    // The original dashboard's event body, with no tenant header and no key.
    let created = app
        .send(request(
            Method::POST,
            "/api/events",
            None,
            Some(json!({"userId": "user-1", "eventType": "page_view", "page": "/home",
                        "timestamp": "2024-05-10T10:00:00Z"})),
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["tenantId"], "acme");

    let summary = app
        .send(request(
            Method::GET,
            &format!("/api/analytics/summary?{RANGE}"),
            None,
            None,
        ))
        .await;
    assert_eq!(summary.status, StatusCode::OK, "{}", summary.body);
    assert_eq!(summary.body["totalEvents"], 1);
    // A caller that names a tenant still gets that tenant: the default fills only a gap.
    let mut other = request(Method::GET, &format!("/api/analytics/summary?{RANGE}"), None, None);
    other.headers_mut().insert("x-tenant-id", "beta".parse().unwrap());
    assert_eq!(app.send(other).await.body["totalEvents"], 0);
}

#[tokio::test]
async fn the_stream_alias_sends_unnamed_messages_an_event_source_receives() {
    let app = app_with(default_tenant_config(), RateLimits::default()).await;
    let open = |last: Option<&str>| {
        let mut request = request(Method::GET, &format!("/api/analytics/stream?{RANGE}"), None, None);
        if let Some(id) = last {
            request.headers_mut().insert("last-event-id", id.parse().unwrap());
        }
        app.router.clone().oneshot(request)
    };
    let response = open(None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = SseReader::new(response.into_body());
    let first = stream.next().await.unwrap();
    // `event: message` is what a block without an `event:` line dispatches as.
    assert_eq!(first.event, "message");
    assert_eq!(first.data["totalEvents"], 0);
    let id = first.id.clone().expect("every summary has an id");

    let batch = json!({"events": [event("e1", "u1", "click", "2024-05-10T10:00:00Z")]});
    let ingested = app
        .send(request(Method::POST, "/api/events/batch", None, Some(batch)))
        .await;
    assert_eq!(ingested.status, StatusCode::OK);
    let pushed = stream.next().await.unwrap();
    assert_eq!(pushed.event, "message");
    assert_eq!(pushed.data["totalEvents"], 1);
    drop(stream);

    // A reconnect with the id it had skips nothing new: it gets the newer summary only.
    let mut again = SseReader::new(open(Some(&id)).await.unwrap().into_body());
    assert_eq!(again.next().await.unwrap().data["totalEvents"], 1);
}

#[tokio::test]
async fn health_and_metrics_answer_without_a_tenant_and_without_tenant_data() {
    let app = app().await;
    app.ingest(json!([event("h1", "u1", "click", "2024-05-10T10:00:00Z")]))
        .await;
    for uri in ["/api/analytics/health", "/api/v1/analytics/health"] {
        let health = app.send(request(Method::GET, uri, None, None)).await;
        assert_eq!(health.status, StatusCode::OK, "{uri}: {}", health.body);
        assert_eq!(health.body["status"], "healthy");
        assert_eq!(
            health.body["metrics"]["store"],
            json!({"healthy": true, "backend": "memory"})
        );
        let text = health.body.to_string();
        for private in ["acme", "beta", "tenants with events"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
        assert!(
            health.header("x-ratelimit-limit").is_none(),
            "no tenant, no tenant limit"
        );
    }
    let metrics = app.send(request(Method::GET, "/metrics", None, None)).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(!metrics.body.as_str().unwrap().contains("acme"));

    let doc = app.send(request(Method::GET, "/openapi.json", None, None)).await;
    for path in ["/api/analytics/health", "/metrics", "/health"] {
        let security = &doc.body["paths"][path]["get"]["security"];
        assert_eq!(security, &json!([{}]), "{path} is documented as needing no credentials");
    }
    assert!(doc.body["paths"]["/api/analytics/summary"]["get"]["security"].is_null());
}

#[tokio::test]
async fn server_errors_carry_no_internal_text() {
    let app = app().await;
    app.store.set_down(true);
    let reply = app.get(&format!("/api/analytics/summary?{RANGE}")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), Some("unavailable"));
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("taken down by the test"), "{message}");
    assert!(reply.header("retry-after").is_some());
}

fn stalled_body(declared: u64) -> Request<Body> {
    let never = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
    Request::builder()
        .method(Method::POST)
        .uri("/api/events/batch")
        .header("x-api-key", KEY_ACME)
        .header("content-type", "application/json")
        .header("content-length", declared)
        .body(Body::from_stream(never))
        .unwrap()
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = app().await;
    // 22 MB declared, nothing sent: the answer cannot wait for the body. The timeout only
    // guards against a hang; it is not a timing assertion.
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        app.router.clone().oneshot(stalled_body(22_000_000)),
    )
    .await
    .expect("the 413 did not wait for the body")
    .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()["connection"], "close");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_arriving_is_408() {
    let app = app().await;
    // Virtual time: the runtime advances its clock to the body timeout once nothing else runs.
    let response = app.router.clone().oneshot(stalled_body(1_000)).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "timeout");
}

/// The OpenAPI document states what the server enforces, so generated clients and fuzzers send
/// what validation accepts: required fields, text patterns and lengths, and the error statuses
/// every route of a kind can answer.
#[tokio::test]
async fn the_openapi_document_states_the_rules() {
    let app = app().await;
    let doc = app.send(request(Method::GET, "/openapi.json", None, None)).await.body;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["EventInput"]["required"], json!(["eventType"]));
    assert_eq!(schemas["SummaryRequest"]["required"], json!(["startDate", "endDate"]));
    let event_type = &schemas["EventType"];
    assert_eq!(event_type["pattern"], "^[A-Za-z0-9_.:-]+$");
    assert_eq!(
        (event_type["minLength"].as_u64(), event_type["maxLength"].as_u64()),
        (Some(1), Some(64))
    );
    let variants = &schemas["ExperimentInput"]["properties"]["variants"];
    assert_eq!(
        (variants["minItems"].as_u64(), variants["maxItems"].as_u64()),
        (Some(2), Some(20))
    );
    let weight = &schemas["VariantSpec"]["properties"]["weight"];
    assert_eq!(
        (weight["minimum"].as_f64(), weight["maximum"].as_f64()),
        (Some(1e-6), Some(1e6))
    );
    // A range bound is a date or an instant from 1970 on; a timezone one the server knows.
    let formats: Vec<&str> = schemas["DateBound"]["anyOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["date", "date-time"]);
    let zones = schemas["TimezoneName"]["enum"].as_array().unwrap();
    assert!(zones.contains(&json!("Europe/Berlin")) && zones.contains(&json!("UTC")));
    // API-key mode: the key is the one credential.
    assert_eq!(doc["security"], json!([{"apiKey": []}]));
    assert!(doc["components"]["securitySchemes"].get("tenantHeader").is_none());
    let responses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    for status in ["400", "401", "403", "413", "415", "422", "429", "503"] {
        assert!(
            responses("/api/events", "post").contains(&status.to_owned()),
            "POST /api/events lacks {status}"
        );
    }
    let health = responses("/health", "get");
    assert!(
        health.contains(&"400".to_owned()) && !health.contains(&"401".to_owned()),
        "{health:?}"
    );
}

/// With `--auth header` the document has no credential: the tenant header is a parameter of
/// every tenant-scoped route, required unless a default tenant is configured.
#[tokio::test]
async fn the_openapi_document_of_header_mode_names_the_tenant_header() {
    for (default_tenant, required) in [(None, true), (Some("acme"), false)] {
        let config = HttpConfig {
            auth: AuthMode::Header,
            default_tenant: default_tenant.map(|t| TenantId::parse(t).unwrap()),
            ..test_config()
        };
        let app = app_with(config, RateLimits::default()).await;
        let doc = app.send(request(Method::GET, "/openapi.json", None, None)).await.body;
        assert!(doc.get("security").is_none_or(Value::is_null), "{}", doc["security"]);
        let tenant_header = |path: &str, method: &str| {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == "X-Tenant-Id" && p["in"] == "header")
                .cloned()
        };
        let summary = tenant_header("/api/analytics/summary", "get").expect("summary takes the header");
        assert_eq!(summary["required"], json!(required));
        assert!(
            tenant_header("/api/analytics/health", "get").is_none(),
            "health needs no tenant"
        );
    }
}
