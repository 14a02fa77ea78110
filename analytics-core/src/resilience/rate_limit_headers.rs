//! The rate-limit response headers, derived from a [`RateLimitDecision`]: the one definition
//! every adapter writes.

use chrono::{DateTime, Utc};

use super::rate_limit::{RateLimitDecision, ceil_secs, micros};

impl RateLimitDecision {
    /// The numbers every rate-limit header is made of, at `now` (seconds rounded up, so a wait
    /// never reads as zero).
    pub fn header_fields(&self, now: DateTime<Utc>) -> RateLimitHeaderFields {
        self.header_fields_at_micros(now.timestamp_micros())
    }

    /// [`header_fields`](Self::header_fields) at `now_micros` (microseconds since the Unix
    /// epoch, as [`Clock::now_micros`](crate::clock::Clock::now_micros) reads it), for a hot path
    /// that need not build a calendar date.
    pub fn header_fields_at_micros(&self, now_micros: i64) -> RateLimitHeaderFields {
        // The instant of the reset, rounded up once (rounding both terms would add a second).
        let reset_at_micros = now_micros.saturating_add(micros(self.reset_after));
        let reset_at = reset_at_micros.div_euclid(1_000_000) + i64::from(reset_at_micros.rem_euclid(1_000_000) != 0);
        RateLimitHeaderFields {
            limit: self.limit,
            remaining: self.remaining,
            reset_at,
            reset_in: ceil_secs(self.reset_after),
            window: ceil_secs(self.window),
            retry_after: self
                .retry_after
                .filter(|_| !self.allowed)
                .map(|wait| ceil_secs(wait).max(1)),
        }
    }

    /// The response headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
    /// (epoch seconds), the IETF draft fields `RateLimit` and `RateLimit-Policy`
    /// (draft-ietf-httpapi-ratelimit-headers-07 syntax), and `Retry-After` on refusal. Seconds
    /// are rounded up, so a wait never reads as zero.
    pub fn headers(&self, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let f = self.header_fields(now);
        let mut headers = vec![
            ("X-RateLimit-Limit", f.limit.to_string()),
            ("X-RateLimit-Remaining", f.remaining.to_string()),
            ("X-RateLimit-Reset", f.reset_at.to_string()),
            ("RateLimit", f.rate_limit()),
            ("RateLimit-Policy", f.rate_limit_policy()),
        ];
        if let Some(wait) = f.retry_after {
            headers.push(("Retry-After", wait.to_string()));
        }
        headers
    }
}

/// The numbers of the rate-limit headers ([`RateLimitDecision::header_fields`]), for adapters
/// that write headers without building strings for the numeric ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaderFields {
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: epoch seconds.
    pub reset_at: i64,
    /// The draft `RateLimit` field's `reset`: seconds from now.
    pub reset_in: u64,
    /// The draft `RateLimit-Policy` field's `w`: the window in seconds.
    pub window: u64,
    /// `Retry-After` in seconds, on a refusal only.
    pub retry_after: Option<u64>,
}

impl RateLimitHeaderFields {
    /// The draft `RateLimit` field.
    pub fn rate_limit(&self) -> String {
        format!(
            "limit={}, remaining={}, reset={}",
            self.limit, self.remaining, self.reset_in
        )
    }

    /// The draft `RateLimit-Policy` field.
    pub fn rate_limit_policy(&self) -> String {
        format!("{};w={}", self.limit, self.window)
    }
}
