//! Request bodies: [`JsonBody`] (JSON whose failures are API errors naming the field, read
//! within a time limit) and the check of a declared `Content-Length` before anything is read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::HttpConfig;

/// A JSON body. A body that is not JSON is 400 (or 415 when sent as another media type), one
/// whose content does not fit the schema is 422 naming the field, one over the size limit is
/// 413, and one that does not arrive within [`HttpConfig::body_timeout`] is 408.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    Arc<HttpConfig>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let timeout = Arc::<HttpConfig>::from_ref(state).body_timeout;
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if !is_json(content_type) {
            return Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE).with_field("Content-Type"));
        }
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(request, state))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    "the request body did not arrive in time",
                )
                .with_field("body")
            })?
            .map_err(|rejection| ApiError::for_status(rejection.status()))?;
        parse(&bytes).map(JsonBody)
    }
}

/// The body limit in bytes, as the state of [`refuse_declared_oversize`] (a `Copy` state: the
/// middleware clones its state on every request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// Middleware: a request whose declared `Content-Length` exceeds the body limit is refused with
/// 413 at once, before any of its body is read (a client that declares 22 MB and stalls does
/// not hold the connection).
pub(crate) async fn refuse_declared_oversize(
    State(BodyLimit(limit)): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        let mut response = ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
            .with_field("Content-Length")
            .into_response();
        // The body is not read: the connection cannot be reused.
        response
            .headers_mut()
            .insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json") || essence.to_ascii_lowercase().ends_with("+json")
}

/// Deserializes `bytes`, naming the path of the first field that does not fit.
///
/// A body is parsed by plain `serde_json` first and again with `serde_path_to_error` only when
/// that fails: tracking the path wraps every value's deserialization, which cost about a tenth
/// of the server's CPU time on a 5,000-event batch (profiled), while a body that fails fails
/// the same way both times.
///
/// # Errors
/// 400 for malformed JSON; 422 naming the field for content that does not fit `T`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(error) => Err(explain::<T>(bytes, &error)),
    }
}

/// The error of a body that `serde_json` refused with `error`, naming where it fails.
fn explain<T: DeserializeOwned>(bytes: &[u8], error: &serde_json::Error) -> ApiError {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let Err(error) = serde_path_to_error::deserialize::<_, T>(&mut deserializer) else {
        // The value fits; what follows it does not (trailing characters).
        return ApiError::bad_request("body", format!("the body is not valid JSON: {error}"));
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::bad_request("body", format!("the body is not valid JSON: {inner}"));
    }
    let message = inner.to_string();
    let field = match unknown_field(&message) {
        Some(name) if path == "." => name.to_owned(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ if path == "." => "body".to_owned(),
        _ => path,
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message).with_field(field)
}

/// The name in serde's "unknown field `name`, expected …".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::EventInput;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        events: Vec<EventInput>,
    }

    #[test]
    fn failures_name_the_field() {
        let syntax = parse::<Batch>(b"{\"events\": [").unwrap_err();
        assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
        let unknown = parse::<Batch>(br#"{"events": [{"eventType": "x", "colour": "red"}]}"#).unwrap_err();
        assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(unknown.field.as_deref(), Some("events[0].colour"));
        let wrong_type = parse::<Batch>(br#"{"events": [{"eventType": 7}]}"#).unwrap_err();
        assert_eq!(wrong_type.field.as_deref(), Some("events[0].eventType"));
        let top = parse::<Batch>(br#"{"evnts": []}"#).unwrap_err();
        assert_eq!(top.field.as_deref(), Some("evnts"));
        let trailing = parse::<Batch>(br#"{"events": []} x"#).unwrap_err();
        assert_eq!(trailing.status, StatusCode::BAD_REQUEST);
        assert!(trailing.message.contains("trailing"), "{}", trailing.message);
        let good = parse::<Batch>(br#"{"events": [{"eventType": "x"}]}"#).expect("a valid body parses");
        assert_eq!(good.events.len(), 1);
        assert!(is_json("application/json; charset=utf-8"));
        assert!(!is_json("text/plain"));
    }
}
