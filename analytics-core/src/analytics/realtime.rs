//! Activity in the last few minutes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{Analytics, SummaryOptions};
use crate::clock::delta;
use crate::error::Result;
use crate::model::TenantId;
use crate::query::summary::EventTypeCount;
use crate::query::{Filters, Granularity, Query, TimeRange};
use crate::resilience::Priority;

/// How far back [`Analytics::realtime`] looks.
pub const REALTIME_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Active users and events in the last [`REALTIME_WINDOW`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Realtime {
    /// Distinct users with an event in the window.
    pub active_users: u64,
    /// Events in the window.
    pub events: u64,
    /// Events by type in the window, largest first.
    pub events_by_type: Vec<EventTypeCount>,
    /// The window's length in seconds.
    pub window_seconds: u64,
    /// Window start (inclusive).
    pub since: DateTime<Utc>,
    /// Window end (exclusive): the next whole second after now.
    pub until: DateTime<Utc>,
}

impl Analytics {
    /// `tenant`'s activity in the last [`REALTIME_WINDOW`]. The window ends at the next whole
    /// second, so requests within one second share a cache entry (realtime answers stay fresh
    /// for the realtime TTL tier, and every ingest invalidates them).
    ///
    /// # Errors
    /// As [`summary_with`](Self::summary_with).
    pub async fn realtime(&self, tenant: &TenantId, priority: Priority) -> Result<Realtime> {
        let now = self.clock().now();
        let until = DateTime::from_timestamp(now.timestamp() + 1, 0).unwrap_or(now);
        let since = until - delta(REALTIME_WINDOW);
        let query = Query::new(
            tenant.clone(),
            TimeRange::new(since, until)?,
            Granularity::Hour,
            Tz::UTC,
            Filters::default(),
        )?;
        let options = SummaryOptions {
            skip_cache: false,
            priority,
        };
        let summary = self.summary_with(query, options).await?;
        Ok(Realtime {
            active_users: summary.body.unique_users,
            events: summary.body.total_events,
            events_by_type: summary.body.events_by_type,
            window_seconds: REALTIME_WINDOW.as_secs(),
            since,
            until,
        })
    }
}
