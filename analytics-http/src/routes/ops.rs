//! Unauthenticated operator routes: liveness, Prometheus metrics, the OpenAPI document.

use std::sync::Arc;

use analytics_core::Analytics;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics::Metrics;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Alive {
    /// Always `ok`: the process answers.
    status: &'static str,
}

/// Liveness: the process answers. Readiness and dependencies are
/// `/api/analytics/health`.
#[utoipa::path(get, path = "/health", tag = "operations", security(()), responses((status = 200, body = Alive)))]
pub(crate) async fn liveness() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// Prometheus text exposition: requests and latencies per route, load, breaker and cache.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(
    State(analytics): State<Analytics>,
    State(metrics): State<Arc<Metrics>>,
) -> impl IntoResponse {
    let text = metrics.render(&analytics).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// This API's OpenAPI 3 document, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi(State(config): State<Arc<crate::HttpConfig>>) -> impl IntoResponse {
    Json(crate::ApiDoc::for_config(&config))
}
