//! Precomputing summaries into the cache (a dashboard's default ranges after a deploy).

use serde::{Deserialize, Serialize};

use super::{Analytics, SummaryOptions};
use crate::error::{Error, Result};
use crate::model::TenantId;
use crate::query::{Granularity, Query, SummaryRequest};
use crate::resilience::Priority;

/// The most ranges one warm-up may hold.
pub const MAX_WARM_RANGES: usize = 100;

/// One warmed range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warmed {
    /// As requested.
    pub start_date: Option<String>,
    /// As requested.
    pub end_date: Option<String>,
    /// The granularity computed (coarser than asked when degraded under load).
    pub granularity: Granularity,
    /// Whether it was already cached.
    pub was_cached: bool,
    /// Milliseconds taken.
    pub response_time: f64,
}

impl Analytics {
    /// Computes and caches each of `ranges` for `tenant`, in order. Every range is validated
    /// before any is computed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `ranges` (none, or more than [`MAX_WARM_RANGES`]) or naming
    /// `ranges[i].field`; otherwise as [`summary_with`](Self::summary_with).
    pub async fn warm(&self, tenant: &TenantId, ranges: &[SummaryRequest], priority: Priority) -> Result<Vec<Warmed>> {
        if ranges.is_empty() || ranges.len() > MAX_WARM_RANGES {
            return Err(Error::invalid(
                "ranges",
                format!("must hold 1–{MAX_WARM_RANGES} ranges, not {}", ranges.len()),
            ));
        }
        let queries = ranges
            .iter()
            .enumerate()
            .map(|(i, request)| Query::parse(tenant, request).map_err(|e| e.in_field(&format!("ranges[{i}]."))))
            .collect::<Result<Vec<_>>>()?;
        let options = SummaryOptions {
            skip_cache: false,
            priority,
        };
        let mut warmed = Vec::with_capacity(queries.len());
        for (request, query) in ranges.iter().zip(queries) {
            let summary = self.summary_with(query, options).await?;
            warmed.push(Warmed {
                start_date: request.start_date.clone(),
                end_date: request.end_date.clone(),
                granularity: summary.metadata.granularity,
                was_cached: summary.metadata.cached,
                response_time: summary.metadata.response_time,
            });
        }
        Ok(warmed)
    }
}
