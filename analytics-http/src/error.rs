//! [`ApiError`]: every failure as `{ "error": { "code", "message", "field" } }` with its status.
//!
//! A 5xx body never carries the text of the error behind it (driver messages, SQL, addresses):
//! it says what kind of failure it was, and the full error goes to the log, inside the
//! request's span (which carries its request id), and stays reachable as the
//! [`source`](std::error::Error::source) of the [`ApiError`].

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use analytics_core::Error;
use analytics_core::resilience::rate_limit::ceil_secs;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::log_throttle::{LogThrottle, Verdict};

/// An error response. Built from core's [`Error`] (the status follows its variant) or directly
/// for failures only HTTP has (unknown parameters, bodies too large, forbidden tenants).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`invalid_input`, `rate_limited`, …).
    pub code: &'static str,
    /// What went wrong, in plain words.
    pub message: String,
    /// The offending field or parameter, as the API spells it.
    pub field: Option<String>,
    /// For 429 and 503: when it is worth trying again (sent as `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The core error behind it, if any (logged for 5xx, never sent).
    pub source: Option<Arc<Error>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The JSON body of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The fields of an error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field or parameter, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with no field and no retry hint.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            source: None,
        }
    }

    /// 400: a request parameter or header could not be accepted.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message).with_field(field)
    }

    /// 403: the authenticated tenant may not act for the tenant the request names.
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message).with_field(field)
    }

    /// Names the field to blame.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A validation failure of a JSON body: 422 instead of the 400 used for parameters.
    pub fn unprocessable(error: Error) -> Self {
        let mut api = Self::from(error);
        if api.status == StatusCode::BAD_REQUEST {
            api.status = StatusCode::UNPROCESSABLE_ENTITY;
        }
        api
    }

    /// The error body for `status` when a framework layer (timeout, router, body limit) answered
    /// without one.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "the route does not accept this method"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body exceeds the limit"),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ("timeout", "the request took too long"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send a JSON body (application/json)"),
            s if s.is_server_error() => ("internal", "the server failed to answer"),
            _ => ("error", "the request failed"),
        };
        Self::new(status, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let retry_after = error.retry_after();
        let field = error.field().map(str::to_owned);
        let (status, code) = match &error {
            Error::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Error::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &error {
            // Core's own words: no dependency's text in them.
            Error::Overloaded { message, .. } => message.clone(),
            Error::Unavailable { .. } => "a backend is unavailable; retry later".to_owned(),
            Error::Timeout(_) => "the operation timed out; retry later".to_owned(),
            _ if status.is_server_error() => "the server failed to answer".to_owned(),
            other => other.to_string(),
        };
        // A 503 always tells the client when to come back.
        let retry_after = retry_after.or((status == StatusCode::SERVICE_UNAVAILABLE).then(|| Duration::from_secs(1)));
        Self {
            status,
            code,
            message,
            field,
            retry_after,
            source: Some(Arc::new(error)),
        }
    }
}

impl From<ApiError> for ErrorBody {
    fn from(error: ApiError) -> Self {
        Self {
            error: ErrorDetail {
                code: error.code,
                message: error.message,
                field: error.field,
            },
        }
    }
}

/// 5xx failures by status and code, logged once per window each (see [`LogThrottle`]).
static FAILURES: LazyLock<LogThrottle<(u16, &'static str)>> = LazyLock::new(LogThrottle::default);

impl ApiError {
    /// Logs a server-side failure with its underlying error, unless one like it was logged
    /// within the window; the next line of its kind says how many were left out.
    fn log(&self) {
        let status = self.status.as_u16();
        let Verdict::Log { suppressed } = FAILURES.check((status, self.code), Instant::now()) else {
            return;
        };
        match &self.source {
            Some(error) => tracing::warn!(status, code = self.code, suppressed, %error, "request failed"),
            None => tracing::warn!(status, code = self.code, suppressed, message = %self.message, "request failed"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            self.log();
        }
        let (status, retry_after) = (self.status, self.retry_after);
        let mut response = (status, axum::Json(ErrorBody::from(self))).into_response();
        if let Some(wait) = retry_after {
            let seconds = ceil_secs(wait).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_core_error() {
        let cases = [
            (Error::invalid("startDate", "bad"), StatusCode::BAD_REQUEST),
            (Error::not_found("experiment \"x\""), StatusCode::NOT_FOUND),
            (Error::Conflict("taken".into()), StatusCode::CONFLICT),
            (Error::Unauthenticated("no key".into()), StatusCode::UNAUTHORIZED),
            (Error::unavailable("down"), StatusCode::SERVICE_UNAVAILABLE),
            (Error::Timeout("slow".into()), StatusCode::SERVICE_UNAVAILABLE),
            (Error::Backend("broken".into()), StatusCode::INTERNAL_SERVER_ERROR),
            (Error::forbidden("tenantId", "other"), StatusCode::FORBIDDEN),
        ];
        for (error, status) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status, status, "{}", api.message);
            assert_eq!(api.retry_after.is_some(), status == StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(
            ApiError::from(Error::invalid("startDate", "bad")).field.as_deref(),
            Some("startDate")
        );
        assert_eq!(
            ApiError::unprocessable(Error::invalid("name", "empty")).status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn server_errors_keep_their_text_out_of_the_body_but_in_the_source() {
        let driver = "error returned from database: relation \"events\" does not exist";
        for error in [
            Error::Backend(driver.into()),
            Error::unavailable(driver),
            Error::Internal(driver.into()),
            Error::Timeout(driver.into()),
        ] {
            let api = ApiError::from(error.clone());
            assert!(api.status.is_server_error());
            assert!(!api.message.contains("database"), "{}", api.message);
            let body = serde_json::to_string(&ErrorBody::from(api.clone())).unwrap();
            assert!(!body.contains("database"), "{body}");
            let source = std::error::Error::source(&api).unwrap().to_string();
            assert_eq!(source, error.to_string());
        }
        let client = ApiError::from(Error::invalid("startDate", "is required"));
        assert_eq!(client.message, "invalid startDate: is required");
    }
}
