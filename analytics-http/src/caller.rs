//! Who is calling: authentication into a tenant, `X-Priority`, and the per-tenant rate limit
//! whose headers go on every response.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use analytics_core::model::{ApiKey, TenantId};
use analytics_core::resilience::{EndpointClass, Priority};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::state::{AppState, AuthMode};

/// The API-key header.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The tenant header (`--auth header`, or a cross-check in API-key mode).
pub const TENANT_HEADER: &str = "x-tenant-id";
/// The priority header (1–10) that feeds load shedding.
pub const PRIORITY_HEADER: &str = "x-priority";

/// The authenticated caller of a tenant-scoped route. Handlers take it as an extractor, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant every read and write of the request is scoped to.
    pub tenant: TenantId,
    /// The request's priority for load shedding.
    pub priority: Priority,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Taken, not cloned: a handler takes its caller once, and a clone is a reference count
        // on the tenant shared by every request of the tenant (a contended cache line).
        parts.extensions.remove::<Caller>().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "route is missing the tenant layer",
            )
        })
    }
}

/// The layer of every tenant-scoped route: authenticates, reads the priority, applies the
/// tenant's rate limit for the route's endpoint class, and puts the limit's headers on the
/// response, whatever it is.
///
/// A tower layer written out rather than `axum::middleware::from_fn`: that wraps the inner
/// route in a new boxed service and boxes a second future on every request, which showed in
/// the cached summary's profile.
#[derive(Debug, Clone)]
pub(crate) struct TenantLayer(pub(crate) AppState);

impl<S> Layer<S> for TenantLayer {
    type Service = TenantScoped<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantScoped {
            state: self.0.clone(),
            inner,
        }
    }
}

/// A route behind [`TenantLayer`].
#[derive(Debug, Clone)]
pub(crate) struct TenantScoped<S> {
    state: AppState,
    inner: S,
}

impl<S> Service<Request> for TenantScoped<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Tower's contract: the service that was polled ready serves this call; a clone stays
        // for the next one.
        let spare = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, spare);
        let state = self.state.clone();
        Box::pin(async move { Ok(scoped(&state, ready, request).await) })
    }
}

async fn scoped<S>(state: &AppState, mut inner: S, mut request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let caller = match identify(state, request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    let class = endpoint_class(request.method(), request.uri().path());
    let analytics = state.analytics();
    let decision = match analytics.rate_limiter().check(&caller.tenant, class).await {
        Ok(decision) => decision,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut response = if decision.allowed {
        request.extensions_mut().insert(caller);
        match inner.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    } else {
        let mut refusal = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("rate limit of the {} endpoints exceeded", class.as_str()),
        );
        refusal.retry_after = decision.retry_after;
        refusal.into_response()
    };
    if decision.unchecked {
        response
            .headers_mut()
            .insert(UNCHECKED_HEADER, axum::http::HeaderValue::from_static("true"));
    }
    log_limit_enforcement(decision.unchecked);
    let constant = state.limit_headers().of(class);
    crate::limit_headers::write(
        response.headers_mut(),
        &decision.header_fields_at_micros(analytics.clock().now_micros()),
        constant,
    );
    response
}

/// Set (`true`) on responses admitted without a rate-limit check: the limit store was
/// unavailable and the rule fails open.
pub const UNCHECKED_HEADER: &str = "x-ratelimit-unchecked";

/// Whether the last decision was unchecked, to log each change once rather than per request.
static LIMITS_UNCHECKED: AtomicBool = AtomicBool::new(false);

fn log_limit_enforcement(unchecked: bool) {
    // A plain load on every request; the shared line is written only at a change.
    if LIMITS_UNCHECKED.load(Ordering::Relaxed) != unchecked
        && LIMITS_UNCHECKED.swap(unchecked, Ordering::Relaxed) != unchecked
    {
        if unchecked {
            tracing::warn!("rate limits not enforced: the limit store is unavailable and the rules fail open");
        } else {
            tracing::info!("rate limits enforced again: the limit store answers");
        }
    }
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let claimed = header_text(headers, &TENANT)?
        .map(|raw| TenantId::parse(raw).map_err(|e| ApiError::from(e).with_field("X-Tenant-Id")))
        .transpose()?;
    let config = state.config();
    let tenant = match config.auth {
        AuthMode::Header => claimed
            .or_else(|| config.default_tenant.clone())
            .ok_or_else(|| unauthenticated("X-Tenant-Id", "send the X-Tenant-Id header"))?,
        AuthMode::ApiKey => {
            let raw = header_text(headers, &API_KEY)?
                .ok_or_else(|| unauthenticated("X-API-Key", "send an API key in the X-API-Key header"))?;
            let key = ApiKey::parse(raw).map_err(|_| unauthenticated("X-API-Key", "unknown API key"))?;
            let tenant = state.analytics().authenticate(&key).await.map_err(|e| match e {
                analytics_core::Error::Unauthenticated(_) => unauthenticated("X-API-Key", "unknown API key"),
                other => ApiError::from(other),
            })?;
            if let Some(claimed) = claimed
                && claimed != tenant
            {
                return Err(ApiError::forbidden(
                    "X-Tenant-Id",
                    "the API key belongs to another tenant",
                ));
            }
            tenant
        }
    };
    let priority = match header_text(headers, &PRIORITY)? {
        None => Priority::DEFAULT,
        Some(raw) => Priority::parse(raw).map_err(|e| ApiError::from(e).with_field("X-Priority"))?,
    };
    Ok(Caller { tenant, priority })
}

/// The header names as values: looking up by `&str` parses the name on every request.
const API_KEY: HeaderName = HeaderName::from_static(API_KEY_HEADER);
const TENANT: HeaderName = HeaderName::from_static(TENANT_HEADER);
const PRIORITY: HeaderName = HeaderName::from_static(PRIORITY_HEADER);

fn header_text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request(name.as_str(), "header is not visible ASCII"))
        })
        .transpose()
}

fn unauthenticated(field: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).with_field(field)
}

/// The rate-limit class of a route: analytics queries, event writes, event
/// reads, and everything else.
pub fn endpoint_class(method: &Method, path: &str) -> EndpointClass {
    let route = path
        .strip_prefix("/api/v1")
        .or_else(|| path.strip_prefix("/api"))
        .unwrap_or(path);
    if route.starts_with("/analytics/") {
        EndpointClass::Analytics
    } else if route == "/events" || route.starts_with("/events/") {
        if method == Method::GET {
            EndpointClass::EventsRead
        } else {
            EndpointClass::EventsWrite
        }
    } else {
        EndpointClass::General
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_classes() {
        assert_eq!(
            endpoint_class(&Method::GET, "/api/analytics/summary"),
            EndpointClass::Analytics
        );
        assert_eq!(
            endpoint_class(&Method::POST, "/api/v1/analytics/cache/clear"),
            EndpointClass::Analytics
        );
        assert_eq!(
            endpoint_class(&Method::POST, "/api/events/batch"),
            EndpointClass::EventsWrite
        );
        assert_eq!(
            endpoint_class(&Method::GET, "/api/v1/events"),
            EndpointClass::EventsRead
        );
        assert_eq!(endpoint_class(&Method::GET, "/api/experiments"), EndpointClass::General);
        assert_eq!(endpoint_class(&Method::GET, "/api/eventsx"), EndpointClass::General);
    }
}
