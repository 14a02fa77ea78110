//! The response body of a summary rendered by core ([`SummaryJson`]): the cached answer's JSON,
//! shared rather than copied, then this response's `_metadata`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use analytics_core::SummaryJson;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// A body of two chunks with an exact length (so `Content-Length` is set): the head is the
/// cached answer's bytes behind a reference count. Copying the 3.4 KB head into a fresh buffer
/// per request was the largest difference in CPU time between the cached summary and `/health`
/// (`perf`, server pinned to one core under wrk): the allocation and the copy miss the cache,
/// which instruction counts do not show.
#[derive(Debug)]
pub(crate) struct SummaryBody {
    head: Option<Bytes>,
    tail: Option<Bytes>,
}

impl SummaryBody {
    /// A 200 response of `json`, its header map sized for the headers the tenant layer and the
    /// middleware add (so adding them does not grow it).
    pub(crate) fn response(json: SummaryJson) -> Response {
        let (head, tail) = json.into_parts();
        let body = Body::new(Self {
            head: Some(Bytes::from_owner(head)),
            tail: Some(Bytes::from(tail)),
        });
        let mut response = Response::new(body);
        let mut headers = HeaderMap::with_capacity(RESPONSE_HEADERS);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        *response.headers_mut() = headers;
        response
    }
}

/// The content type, five rate-limit headers, the request id, and room for a few more.
const RESPONSE_HEADERS: usize = 12;

impl http_body::Body for SummaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        Poll::Ready(
            this.head
                .take()
                .or_else(|| this.tail.take())
                .map(|chunk| Ok(Frame::data(chunk))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let len = |chunk: &Option<Bytes>| chunk.as_ref().map_or(0, Bytes::len) as u64;
        SizeHint::with_exact(len(&self.head) + len(&self.tail))
    }
}
