//! A summary compared with the previous period of equal length.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Analytics, SummaryOptions};
use crate::error::Result;
use crate::query::{Query, Summary, SummaryBody};

/// What a summary may be compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Comparison {
    /// The period of equal length that ends where the query's range starts.
    Previous,
}

/// A summary with the previous period's numbers and the relative change to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComparedSummary {
    /// The summary of the requested range.
    #[serde(flatten)]
    pub summary: Summary,
    /// The previous period.
    pub comparison: PeriodComparison,
}

/// The previous period and the relative changes from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeriodComparison {
    /// Start of the previous period (inclusive).
    pub start_date: DateTime<Utc>,
    /// End of the previous period (exclusive): the start of the requested one.
    pub end_date: DateTime<Utc>,
    /// The previous period's numbers.
    #[serde(flatten)]
    pub previous: SummaryBody,
    /// Relative change from the previous period (0.25 = +25%).
    pub change: Change,
}

/// Relative changes; `null` where the previous period had none (no rate of change from zero).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Of total events.
    pub total_events: Option<f64>,
    /// Of unique users.
    pub unique_users: Option<f64>,
}

impl Change {
    /// The change from `previous` to `current`.
    pub fn between(current: &SummaryBody, previous: &SummaryBody) -> Self {
        Self {
            total_events: relative(current.total_events, previous.total_events),
            unique_users: relative(current.unique_users, previous.unique_users),
        }
    }
}

/// `(current - previous) / previous`, or `None` when `previous` is zero.
fn relative(current: u64, previous: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    (previous > 0).then(|| (current as f64 - previous as f64) / previous as f64)
}

impl Analytics {
    /// `query`'s summary and the previous period's, with the relative change. Both go through
    /// the cache like any summary.
    ///
    /// # Errors
    /// As [`summary_with`](Self::summary_with); [`Error::InvalidInput`](crate::Error::InvalidInput)
    /// on `compare` when the previous period would start before 1970.
    pub async fn summary_compared(&self, query: Query, options: SummaryOptions) -> Result<ComparedSummary> {
        let previous_query = query.previous_period()?;
        let range = previous_query.range();
        let (summary, previous) = futures_util::future::try_join(
            self.summary_with(query, options),
            self.summary_with(previous_query, options),
        )
        .await?;
        Ok(ComparedSummary {
            comparison: PeriodComparison {
                start_date: range.start(),
                end_date: range.end(),
                change: Change::between(&summary.body, &previous.body),
                previous: previous.body,
            },
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_relative_and_undefined_from_zero() {
        assert_eq!(relative(125, 100), Some(0.25));
        assert_eq!(relative(50, 100), Some(-0.5));
        assert_eq!(relative(7, 0), None);
    }
}
