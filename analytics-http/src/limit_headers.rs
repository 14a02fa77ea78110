//! The rate-limit headers of a response, from core's decision
//! ([`RateLimitHeaderFields`]): the limit and policy values of each endpoint class made once,
//! the rest written from integers.

use analytics_core::resilience::rate_limit::ceil_secs;
use analytics_core::resilience::{EndpointClass, RateLimitHeaderFields, RateLimits};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// The rate-limit headers of a decision (core's numbers), the limit and policy values taken
/// from `constant` when they match. Writing these five headers was a tenth of a trivial
/// tenant-scoped route's cost; integers are written without strings, and the two values that
/// are the same for every response of an endpoint class are made once.
pub(crate) fn write(headers: &mut HeaderMap, fields: &RateLimitHeaderFields, constant: &ClassHeaderValues) {
    headers.reserve(6);
    let (limit, policy) = if (constant.limit, constant.window) == (fields.limit, fields.window) {
        (constant.limit_value.clone(), constant.policy_value.clone())
    } else {
        let policy = HeaderValue::try_from(fields.rate_limit_policy()).unwrap_or_else(|_| HeaderValue::from_static(""));
        (HeaderValue::from(fields.limit), policy)
    };
    headers.insert(X_RATELIMIT_LIMIT, limit);
    headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(fields.remaining));
    headers.insert(X_RATELIMIT_RESET, HeaderValue::from(fields.reset_at));
    headers.insert(RATELIMIT, rate_limit_value(fields));
    headers.insert(RATELIMIT_POLICY, policy);
    if let Some(wait) = fields.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
}

/// The draft `RateLimit` field (`limit=…, remaining=…, reset=…`, as core's
/// [`RateLimitHeaderFields::rate_limit`] writes it), from integers rather than `format!`.
fn rate_limit_value(fields: &RateLimitHeaderFields) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let mut text = Vec::with_capacity(64);
    text.extend_from_slice(b"limit=");
    text.extend_from_slice(digits.format(fields.limit).as_bytes());
    text.extend_from_slice(b", remaining=");
    text.extend_from_slice(digits.format(fields.remaining).as_bytes());
    text.extend_from_slice(b", reset=");
    text.extend_from_slice(digits.format(fields.reset_in).as_bytes());
    HeaderValue::try_from(text).expect("digits and ASCII punctuation are a valid header value")
}

/// The `X-RateLimit-Limit` and `RateLimit-Policy` values of each endpoint class's rule, made
/// when the state is built.
#[derive(Debug)]
pub(crate) struct LimitHeaderValues {
    by_class: [ClassHeaderValues; 4],
}

#[derive(Debug)]
pub(crate) struct ClassHeaderValues {
    limit: u32,
    window: u64,
    limit_value: HeaderValue,
    policy_value: HeaderValue,
}

const CLASSES: [EndpointClass; 4] = [
    EndpointClass::Analytics,
    EndpointClass::EventsWrite,
    EndpointClass::EventsRead,
    EndpointClass::General,
];

impl LimitHeaderValues {
    /// The values of `limits`' rules.
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            by_class: CLASSES.map(|class| {
                let policy = limits.rule(class).policy;
                let fields = RateLimitHeaderFields {
                    limit: policy.header_limit(),
                    remaining: 0,
                    reset_at: 0,
                    reset_in: 0,
                    window: ceil_secs(policy.window()),
                    retry_after: None,
                };
                ClassHeaderValues {
                    limit: fields.limit,
                    window: fields.window,
                    limit_value: HeaderValue::from(fields.limit),
                    policy_value: HeaderValue::try_from(fields.rate_limit_policy())
                        .unwrap_or_else(|_| HeaderValue::from_static("")),
                }
            }),
        }
    }

    pub(crate) fn of(&self, class: EndpointClass) -> &ClassHeaderValues {
        let index = CLASSES.iter().position(|c| *c == class).unwrap_or(CLASSES.len() - 1);
        &self.by_class[index]
    }
}

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use analytics_core::resilience::RateLimitDecision;

    fn written(decision: &RateLimitDecision, limits: &RateLimits, class: EndpointClass) -> Vec<(String, String)> {
        let mut headers = HeaderMap::new();
        let now = "2024-06-01T00:00:00Z".parse().unwrap();
        write(
            &mut headers,
            &decision.header_fields(now),
            LimitHeaderValues::new(limits).of(class),
        );
        let mut pairs: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        pairs.sort();
        pairs
    }

    /// Core's own header list of `decision`, sorted, names in lower case.
    fn cores(decision: &RateLimitDecision) -> Vec<(String, String)> {
        let now = "2024-06-01T00:00:00Z".parse().unwrap();
        let mut pairs: Vec<_> = decision
            .headers(now)
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn the_headers_are_cores_whether_or_not_the_rule_matches() {
        let limits = RateLimits::default();
        let policy = limits.rule(EndpointClass::Analytics).policy;
        let decision = RateLimitDecision {
            allowed: false,
            limit: policy.header_limit(),
            remaining: 0,
            reset_after: Duration::from_millis(1500),
            retry_after: Some(Duration::from_millis(400)),
            window: policy.window(),
            unchecked: false,
        };
        assert_eq!(written(&decision, &limits, EndpointClass::Analytics), cores(&decision));
        // A decision of another rule (the values made for this class do not apply) still
        // carries its own numbers.
        let other = RateLimitDecision {
            limit: 7,
            window: Duration::from_secs(9),
            ..decision
        };
        assert_eq!(written(&other, &limits, EndpointClass::Analytics), cores(&other));
    }
}
