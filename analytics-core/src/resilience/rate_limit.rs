//! Rate limiting: policies, the decision every header is derived from, the state-store contract,
//! and the [`RateLimiter`] that applies a policy per (tenant, endpoint class).
//!
//! The arithmetic lives here, in integer microseconds, as pure functions
//! ([`gcra_decide`], [`window_decide`]) over a packed `u64` state, so every store — in-process
//! or Redis Lua — decides identically.

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::TenantId;

/// The largest limit a sliding-window policy supports (its counters are 20 bits wide, and an
/// all-ones state is reserved for stores).
pub const MAX_WINDOW_LIMIT: u32 = (1 << 20) - 2;

/// A group of endpoints sharing a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointClass {
    /// Analytics queries.
    Analytics,
    /// Event ingestion.
    EventsWrite,
    /// Event log reads.
    EventsRead,
    /// Everything else.
    General,
}

impl EndpointClass {
    /// The class's name in keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analytics => "analytics",
            Self::EventsWrite => "events-write",
            Self::EventsRead => "events-read",
            Self::General => "general",
        }
    }
}

/// What a limit is kept per: a tenant and an endpoint class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimiterKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The endpoint class.
    pub class: EndpointClass,
}

impl fmt::Display for LimiterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.tenant, self.class.as_str())
    }
}

/// How requests are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitPolicy {
    /// Generic cell rate algorithm: `limit` requests per `period`, replenished smoothly, at most
    /// `burst` at once. State: one timestamp.
    Gcra {
        /// Requests per period.
        limit: u32,
        /// The period.
        period: Duration,
        /// The most requests admitted at once (the bucket size).
        burst: u32,
    },
    /// Sliding-window counter: at most `limit` requests in any `window`, estimated from the
    /// current and previous fixed windows. State: two counters.
    SlidingWindow {
        /// Requests per window, at most [`MAX_WINDOW_LIMIT`].
        limit: u32,
        /// The window.
        window: Duration,
    },
}

impl RateLimitPolicy {
    /// `limit` per `period` with a burst of `limit`.
    pub fn gcra(limit: u32, period: Duration) -> Self {
        Self::Gcra {
            limit,
            period,
            burst: limit,
        }
    }

    /// `limit` per sliding `window`.
    pub fn sliding_window(limit: u32, window: Duration) -> Self {
        Self::SlidingWindow { limit, window }
    }

    /// The limit headers report: the burst for GCRA (what can be sent at once), the window
    /// limit for sliding windows.
    pub fn header_limit(&self) -> u32 {
        match *self {
            Self::Gcra { burst, .. } => burst,
            Self::SlidingWindow { limit, .. } => limit,
        }
    }

    /// The period or window.
    pub fn window(&self) -> Duration {
        match *self {
            Self::Gcra { period, .. } => period,
            Self::SlidingWindow { window, .. } => window,
        }
    }

    /// Checks the policy.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Gcra { limit, period, burst } => {
                if limit == 0 || burst == 0 {
                    return Err(Error::invalid("limit", "limit and burst must be at least 1"));
                }
                if period.as_micros() < u128::from(limit) {
                    return Err(Error::invalid(
                        "period",
                        "must allow at least one microsecond per request",
                    ));
                }
            }
            Self::SlidingWindow { limit, window } => {
                if limit == 0 || limit > MAX_WINDOW_LIMIT {
                    return Err(Error::invalid(
                        "limit",
                        format!("must be 1–{MAX_WINDOW_LIMIT} for a sliding window"),
                    ));
                }
                if window.as_micros() < 1000 {
                    return Err(Error::invalid("window", "must be at least 1 ms"));
                }
            }
        }
        Ok(())
    }
}

/// The outcome of one check. Every rate-limit header is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDecision {
    /// Whether the request may proceed (and was counted).
    pub allowed: bool,
    /// The limit reported to clients ([`RateLimitPolicy::header_limit`]).
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the limit is fully available again (GCRA) or the current window ends (sliding
    /// window).
    pub reset_after: Duration,
    /// For a refusal: the exact wait after which the same request would be admitted (if nothing
    /// else is admitted meanwhile). Never zero.
    pub retry_after: Option<Duration>,
    /// The policy's period or window, for the policy header.
    pub window: Duration,
    /// True when the state store was unavailable and the policy failed open.
    pub unchecked: bool,
}

/// Whole seconds, rounded up.
pub fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

pub(super) fn micros(duration: Duration) -> i64 {
    // Avoids `as_micros` (u128 arithmetic) on the hot path.
    let secs = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2_000_000);
    secs * 1_000_000 + i64::from(duration.subsec_micros())
}

fn duration(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// A decision plus the state to store and when the state becomes equivalent to a fresh one
/// (after which a store may forget the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The decision.
    pub decision: RateLimitDecision,
    /// The new state (equal to the old one for a refusal).
    pub state: u64,
    /// Epoch microseconds from which the state is as good as fresh.
    pub forget_at: i64,
}

/// GCRA: `state` is the theoretical arrival time in epoch microseconds (0 when fresh).
pub fn gcra_decide(state: u64, now_micros: i64, limit: u32, period: Duration, burst: u32) -> Step {
    let interval = (micros(period) / i64::from(limit)).max(1);
    let capacity = interval * i64::from(burst);
    let tat = i64::try_from(state).unwrap_or(i64::MAX).max(now_micros);
    let next_tat = tat + interval;
    let allow_at = next_tat - capacity;
    let header_limit = burst;
    if now_micros < allow_at {
        let decision = RateLimitDecision {
            allowed: false,
            limit: header_limit,
            remaining: 0,
            reset_after: duration(tat - now_micros),
            retry_after: Some(duration(allow_at - now_micros)),
            window: period,
            unchecked: false,
        };
        return Step {
            decision,
            state,
            forget_at: tat,
        };
    }
    let remaining = u32::try_from((now_micros - allow_at) / interval).unwrap_or(u32::MAX);
    let decision = RateLimitDecision {
        allowed: true,
        limit: header_limit,
        remaining,
        reset_after: duration(next_tat - now_micros),
        retry_after: None,
        window: period,
        unchecked: false,
    };
    Step {
        decision,
        state: u64::try_from(next_tat).unwrap_or(u64::MAX),
        forget_at: next_tat,
    }
}

const INDEX_BITS: u32 = 24;
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// Packs a sliding-window state: window index (mod 2^24), current count, previous count.
pub fn window_pack(index: i64, current: u64, previous: u64) -> u64 {
    ((index as u64 & INDEX_MASK) << (2 * COUNT_BITS)) | (current << COUNT_BITS) | previous
}

/// Sliding-window counter. The estimate of requests in the last `window` is
/// `previous × (window − elapsed) / window + current`; a request is admitted when the estimate
/// including it is at most `limit` (compared exactly, in integers).
///
/// The window index is kept modulo 2^24; a store must forget a key by its `forget_at` (two
/// windows after its last admission), long before the index could wrap.
pub fn window_decide(state: u64, now_micros: i64, limit: u32, window: Duration) -> Step {
    let w = micros(window);
    let index = now_micros.div_euclid(w);
    let elapsed = now_micros - index * w;
    let stored = (state >> (2 * COUNT_BITS)) & INDEX_MASK;
    let (stored_current, stored_previous) = ((state >> COUNT_BITS) & COUNT_MASK, state & COUNT_MASK);
    let (current, previous) = if state == 0 {
        (0, 0)
    } else if stored == index as u64 & INDEX_MASK {
        (stored_current, stored_previous)
    } else if stored == (index - 1) as u64 & INDEX_MASK {
        (0, stored_current)
    } else {
        (0, 0)
    };
    let (w128, limit128) = (w as u128, u128::from(limit));
    let weighted_previous = u128::from(previous) * (w - elapsed) as u128;
    let used = weighted_previous + u128::from(current) * w128;
    let base = RateLimitDecision {
        allowed: false,
        limit,
        remaining: 0,
        reset_after: duration(w - elapsed),
        retry_after: None,
        window,
        unchecked: false,
    };
    if used + w128 <= limit128 * w128 {
        let remaining = ((limit128 * w128 - used - w128) / w128) as u32;
        let decision = RateLimitDecision {
            allowed: true,
            remaining,
            ..base
        };
        let state = window_pack(index, current + 1, previous);
        return Step {
            decision,
            state,
            forget_at: (index + 2) * w,
        };
    }
    // The earliest instant the request fits: later in this window as the previous window's
    // weight decays, or in the next window (where this window's count becomes the previous).
    let in_this_window = (u64::from(limit) > current && previous > 0).then(|| {
        // previous × (w − e) ≤ (limit − current − 1) × w
        let slack = (limit128 - u128::from(current) - 1) * w128;
        ceil_sub(w128, slack, u128::from(previous)) as i64
    });
    let retry_at = match in_this_window {
        Some(e) if e < w => index * w + e,
        _ => {
            // Next window: current × (w − e) ≤ (limit − 1) × w.
            let slack = (limit128 - 1) * w128;
            let e = if current == 0 {
                0
            } else {
                ceil_sub(w128, slack, u128::from(current)) as i64
            };
            (index + 1) * w + e
        }
    };
    let decision = RateLimitDecision {
        retry_after: Some(duration((retry_at - now_micros).max(1))),
        ..base
    };
    let forget_at = if current > 0 { (index + 2) * w } else { (index + 1) * w };
    Step {
        decision,
        state,
        forget_at,
    }
}

/// `ceil(w − slack / divisor)`, clamped at 0: the smallest integer `e` with
/// `divisor × (w − e) ≤ slack`.
fn ceil_sub(w: u128, slack: u128, divisor: u128) -> u128 {
    // divisor × (w − e) ≤ slack ⇔ w − e ≤ floor(slack / divisor) ⇔ e ≥ w − floor(slack / divisor)
    w.saturating_sub(slack / divisor)
}

/// Whether a key whose packed state is `state` is as good as fresh at `now_micros` under
/// `policy` (so a store may forget it): a GCRA state whose arrival time has passed, or a window
/// state two or more windows old.
pub fn forgettable(state: u64, now_micros: i64, policy: &RateLimitPolicy) -> bool {
    match *policy {
        RateLimitPolicy::Gcra { .. } => i64::try_from(state).is_ok_and(|tat| tat <= now_micros),
        RateLimitPolicy::SlidingWindow { window, .. } => {
            let index = now_micros.div_euclid(micros(window)) as u64 & INDEX_MASK;
            let stored = (state >> (2 * COUNT_BITS)) & INDEX_MASK;
            state == 0 || index.wrapping_sub(stored) & INDEX_MASK >= 2
        }
    }
}

/// Holds limiter state: one atomic check-and-consume per decision.
#[async_trait]
pub trait RateLimitStore: Send + Sync + Debug {
    /// Decides one request for `key` under `policy` at `now`, consuming from the limit if it is
    /// admitted — atomically: concurrent checks of one key never admit more than the policy.
    ///
    /// # Behavior
    /// Decides exactly as [`gcra_decide`] / [`window_decide`]. A store that keeps time itself
    /// (Redis uses its server clock, so instances agree) may ignore `now`.
    ///
    /// # Errors
    /// Transient errors when the state is unreachable; the [`RateLimiter`] then applies the
    /// policy's [`FailMode`].
    async fn check(&self, key: &LimiterKey, policy: &RateLimitPolicy, now: DateTime<Utc>) -> Result<RateLimitDecision>;
}

/// What to do when the state store is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Admit (availability first); the decision is marked `unchecked`.
    Open,
    /// Refuse with [`Error::Unavailable`] (protection first).
    Closed,
}

/// A policy with its failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRule {
    /// The policy.
    pub policy: RateLimitPolicy,
    /// When the store is unavailable.
    pub fail: FailMode,
}

/// The rule per endpoint class. Defaults: analytics 100/min, event writes
/// 1000/min, event reads 100/min (GCRA, burst = limit), general 1000 per 15 minutes (sliding
/// window); all fail open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    rules: HashMap<EndpointClass, LimitRule>,
}

impl Default for RateLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        let open = |policy| LimitRule {
            policy,
            fail: FailMode::Open,
        };
        Self {
            rules: HashMap::from([
                (EndpointClass::Analytics, open(RateLimitPolicy::gcra(100, minute))),
                (EndpointClass::EventsWrite, open(RateLimitPolicy::gcra(1000, minute))),
                (EndpointClass::EventsRead, open(RateLimitPolicy::gcra(100, minute))),
                (
                    EndpointClass::General,
                    open(RateLimitPolicy::sliding_window(1000, 15 * minute)),
                ),
            ]),
        }
    }
}

impl RateLimits {
    /// Replaces the rule of a class.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an invalid policy.
    pub fn set(mut self, class: EndpointClass, rule: LimitRule) -> Result<Self> {
        rule.policy.validate()?;
        self.rules.insert(class, rule);
        Ok(self)
    }

    /// The rule of a class.
    pub fn rule(&self, class: EndpointClass) -> LimitRule {
        self.rules[&class]
    }
}

/// Applies [`RateLimits`] per (tenant, endpoint class) through a [`RateLimitStore`].
#[derive(Debug, Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    limits: Arc<RateLimits>,
    clock: Arc<dyn Clock>,
    /// Requests admitted unchecked because the state store was unavailable.
    unchecked: Arc<std::sync::atomic::AtomicU64>,
}

impl RateLimiter {
    /// A limiter over `store`.
    pub fn new(store: Arc<dyn RateLimitStore>, limits: RateLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            limits: Arc::new(limits),
            clock,
            unchecked: Arc::default(),
        }
    }

    /// Requests admitted without a check since start, because the state store was unavailable
    /// and their rule fails open (a metric: limits are not being enforced).
    pub fn unchecked_total(&self) -> u64 {
        self.unchecked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The rules in force.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Decides one request of `tenant` to an endpoint of `class`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is unavailable and the rule fails closed.
    pub async fn check(&self, tenant: &TenantId, class: EndpointClass) -> Result<RateLimitDecision> {
        let rule = self.limits.rule(class);
        let key = LimiterKey {
            tenant: tenant.clone(),
            class,
        };
        let now = self.clock.now();
        match self.store.check(&key, &rule.policy, now).await {
            Ok(decision) => Ok(decision),
            Err(error) => match rule.fail {
                FailMode::Open => {
                    self.unchecked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(RateLimitDecision {
                        allowed: true,
                        limit: rule.policy.header_limit(),
                        remaining: rule.policy.header_limit(),
                        reset_after: Duration::ZERO,
                        retry_after: None,
                        window: rule.policy.window(),
                        unchecked: true,
                    })
                }
                FailMode::Closed => Err(Error::Unavailable {
                    message: format!("rate limit state unavailable ({error}); refusing by policy"),
                    retry_after: Some(Duration::from_secs(1)),
                }),
            },
        }
    }
}
