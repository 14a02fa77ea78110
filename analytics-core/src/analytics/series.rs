//! A summary whose time series comes in pages (long hourly ranges).

use serde::{Deserialize, Serialize};

use super::{Analytics, SummaryOptions};
use crate::error::{Error, Result};
use crate::query::{Query, Summary};

/// Buckets per page when the request names none.
pub const DEFAULT_SERIES_PAGE: u32 = 50;
/// The most buckets one page may hold.
pub const MAX_SERIES_PAGE: u32 = 1000;

/// Which page of a summary's time series, as a client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPageRequest {
    /// The `timestamp` of the page's first bucket (a previous page's `nextCursor`); absent or
    /// empty for the first page.
    pub cursor: Option<String>,
    /// Buckets per page, 1–[`MAX_SERIES_PAGE`] (default [`DEFAULT_SERIES_PAGE`]).
    pub limit: Option<u32>,
}

/// A page of a summary's time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaginatedSummary {
    /// The summary, with `timeSeriesData` holding this page's buckets only.
    pub data: Summary,
    /// Where this page is.
    pub pagination: SeriesPagination,
}

/// Where a page of the time series is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeriesPagination {
    /// The cursor of this page (its first bucket); null for the first page.
    pub cursor: Option<String>,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
    /// Whether there is a next page.
    pub has_more: bool,
    /// Buckets per page.
    pub limit: u32,
    /// Buckets in the whole series.
    pub total: usize,
}

impl SeriesPageRequest {
    /// The page size, checked.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `limit` outside 1–[`MAX_SERIES_PAGE`].
    pub fn limit(&self) -> Result<u32> {
        match self.limit {
            None => Ok(DEFAULT_SERIES_PAGE),
            Some(n) if (1..=MAX_SERIES_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(Error::invalid(
                "limit",
                format!("{n} is not a whole number from 1 to {MAX_SERIES_PAGE}"),
            )),
        }
    }
}

impl Analytics {
    /// `query`'s summary (through the cache) with one page of its time series.
    ///
    /// # Errors
    /// As [`summary_with`](Self::summary_with); [`Error::InvalidInput`] on `limit`, or on
    /// `cursor` when it is not a bucket of the series.
    pub async fn summary_page(
        &self,
        query: Query,
        options: SummaryOptions,
        page: &SeriesPageRequest,
    ) -> Result<PaginatedSummary> {
        let limit = page.limit()?;
        let mut summary = self.summary_with(query, options).await?;
        let series = std::mem::take(&mut summary.body.time_series_data);
        let cursor = page.cursor.clone().filter(|c| !c.is_empty());
        let first = match &cursor {
            None => 0,
            Some(c) => series
                .iter()
                .position(|p| &p.timestamp == c)
                .ok_or_else(|| Error::invalid("cursor", format!("{c:?} is not a bucket of this series")))?,
        };
        let total = series.len();
        let end = total.min(first + limit as usize);
        let next_cursor = series.get(end).map(|p| p.timestamp.clone());
        summary.body.time_series_data = series[first..end].to_vec();
        Ok(PaginatedSummary {
            data: summary,
            pagination: SeriesPagination {
                cursor,
                has_more: next_cursor.is_some(),
                next_cursor,
                limit,
                total,
            },
        })
    }
}
