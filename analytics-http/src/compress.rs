//! [`Compressible`]: which responses the compression layer may compress.

use axum::http::{Response, header};
use http_body::Body;
use tower_http::compression::predicate::{Predicate, SizeAbove};

/// tower-http's default rule, decided with one look-up of `Content-Type`: a body of at least
/// 32 bytes (or of unknown size) is compressed unless it is gRPC (gRPC-Web is), an image other
/// than SVG, or an event stream.
///
/// tower-http's `DefaultPredicate` looks the header up once per excluded type and runs on every
/// response, whether or not the client accepts an encoding; on the cached summary, which is
/// large enough to be checked, that was about 3% of the request's instructions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B: Body>(&self, response: &Response<B>) -> bool {
        SizeAbove::default().should_compress(response)
            && response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_none_or(|value| compressible_type(value.as_bytes()))
    }
}

fn compressible_type(content_type: &[u8]) -> bool {
    let starts = |prefix: &[u8]| content_type.starts_with(prefix);
    if starts(b"application/grpc") {
        return starts(b"application/grpc-web");
    }
    if starts(b"image/") {
        return starts(b"image/svg+xml");
    }
    !starts(b"text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;
    use tower_http::compression::predicate::DefaultPredicate;

    #[test]
    fn decides_as_tower_http_default_predicate_does() {
        let types = [
            None,
            Some("application/json"),
            Some("application/grpc"),
            Some("application/grpc+proto"),
            Some("application/grpc-web"),
            Some("application/grpc-web+proto"),
            Some("image/png"),
            Some("image/svg+xml"),
            Some("image/svg+xml; charset=utf-8"),
            Some("text/event-stream"),
            Some("text/html; charset=utf-8"),
            Some("text/event-streamy"),
        ];
        let bodies = [String::new(), "x".repeat(31), "x".repeat(32), "x".repeat(4096)];
        let mut compressed = 0;
        for content_type in types {
            for body in &bodies {
                let mut builder = Response::builder();
                if let Some(content_type) = content_type {
                    builder = builder.header(header::CONTENT_TYPE, content_type);
                }
                let response = builder.body(AxumBody::from(body.clone())).unwrap();
                let expected = DefaultPredicate::new().should_compress(&response);
                assert_eq!(
                    Compressible.should_compress(&response),
                    expected,
                    "{content_type:?}, {} bytes",
                    body.len()
                );
                compressed += usize::from(expected);
            }
        }
        assert!(
            compressed > 0 && compressed < types.len() * bodies.len(),
            "both answers are covered"
        );
    }
}
