//! The breaker's public state types: its state, a transition, and its metrics.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    /// Calls pass; outcomes are recorded.
    Closed,
    /// Calls are refused until `wait_in_open` has passed.
    Open,
    /// A few trial calls pass; the rest are refused.
    HalfOpen,
    /// Calls pass; nothing is recorded.
    Disabled,
    /// Calls are refused until an operator changes the state.
    ForcedOpen,
    /// Calls pass; outcomes are recorded but never change the state.
    MetricsOnly,
}

impl BreakerState {
    #[inline]
    pub(super) fn code(self) -> u8 {
        self as u8
    }

    #[inline]
    pub(super) fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::Disabled,
            4 => Self::ForcedOpen,
            _ => Self::MetricsOnly,
        }
    }
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Previous state.
    pub from: BreakerState,
    /// New state.
    pub to: BreakerState,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the breaker has seen (for health endpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerMetrics {
    /// Current state.
    pub state: BreakerState,
    /// Calls in the sliding window (closed) or completed trial calls (half-open).
    pub calls: u32,
    /// Failed calls among them.
    pub failed_calls: u32,
    /// Slow calls among them.
    pub slow_calls: u32,
    /// Failure rate over them in percent, if at least `minimum_calls` were seen.
    pub failure_rate: Option<f64>,
    /// Slow-call rate over them in percent, if at least `minimum_calls` were seen.
    pub slow_call_rate: Option<f64>,
    /// Successful calls since creation.
    pub successes_total: u64,
    /// Failed calls since creation.
    pub failures_total: u64,
    /// Calls refused since creation.
    pub rejected_total: u64,
    /// The last state change.
    pub last_transition: Option<Transition>,
}
