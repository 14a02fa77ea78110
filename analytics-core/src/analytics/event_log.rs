//! The event log as clients ask for it: filters, page or cursor, and the defaults.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::Analytics;
use crate::error::{Error, Result};
use crate::model::{Event, EventType, TenantId, UserId};
use crate::query::{TimeRange, parse_bound};
use crate::store::{EventCursor, EventListQuery, Pagination};

/// Events per page when the request names no `limit`.
pub const DEFAULT_EVENT_PAGE: u32 = 50;

/// A request for a page of the event log, as a client sends it. Dates are UTC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLogRequest {
    /// `YYYY-MM-DD` or an RFC 3339 instant: events at or after it (default: the beginning).
    pub start_date: Option<String>,
    /// `YYYY-MM-DD` (inclusive) or an RFC 3339 instant (exclusive) (default: no end).
    pub end_date: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// The caller's own tenant, if the client names it; any other is [`Error::Forbidden`].
    pub tenant_id: Option<String>,
    /// Offset paging: page number from 1 (the default paging, with totals).
    pub page: Option<u32>,
    /// Events per page, 1–[`MAX_PAGE_LIMIT`](crate::store::MAX_PAGE_LIMIT) (default
    /// [`DEFAULT_EVENT_PAGE`]).
    pub limit: Option<u32>,
    /// Keyset paging: empty for the first page, then the previous page's `nextCursor`. Not
    /// with `page`.
    pub cursor: Option<String>,
}

/// A page of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventLog {
    /// Newest first.
    pub events: Vec<Event>,
    /// Events per page.
    pub limit: u32,
    /// Offset paging: the page number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Offset paging: matching events in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Offset paging: pages in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
    /// Cursor paging: the cursor of the next page, null on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Option<String>>,
}

impl EventLogRequest {
    /// The validated store query for `tenant`.
    ///
    /// # Errors
    /// [`Error::Forbidden`] on `tenantId` naming another tenant; [`Error::InvalidInput`] naming
    /// the bad field (dates, `page`, `limit`, `cursor`, both `page` and `cursor`).
    pub fn to_query(&self, tenant: &TenantId) -> Result<EventListQuery> {
        if let Some(claimed) = &self.tenant_id
            && claimed != tenant.as_str()
        {
            return Err(Error::forbidden(
                "tenantId",
                "only the authenticated tenant's events can be listed",
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_EVENT_PAGE);
        let pagination = match (self.cursor.as_deref(), self.page) {
            (Some(_), Some(_)) => return Err(Error::invalid("cursor", "give either page or cursor, not both")),
            (Some(""), None) => Pagination::Cursor { after: None, limit },
            (Some(cursor), None) => Pagination::Cursor {
                after: Some(EventCursor::decode(cursor)?),
                limit,
            },
            (None, page) => Pagination::Offset {
                page: page.unwrap_or(1),
                limit,
            },
        };
        pagination.validate()?;
        Ok(EventListQuery {
            range: self.range()?,
            event_type: self.event_type.as_deref().map(EventType::parse).transpose()?,
            user_id: self.user_id.as_deref().map(UserId::parse).transpose()?,
            pagination,
        })
    }

    /// The range asked for: open at either end when that date is absent.
    fn range(&self) -> Result<Option<TimeRange>> {
        let (start, end) = (self.start_date.as_deref(), self.end_date.as_deref());
        if start.is_none() && end.is_none() {
            return Ok(None);
        }
        let start = match start {
            Some(raw) => parse_bound(Some(raw), "startDate", Tz::UTC, false)?,
            None => DateTime::UNIX_EPOCH,
        };
        let end = match end {
            Some(raw) => parse_bound(Some(raw), "endDate", Tz::UTC, true)?,
            // After every start a date or RFC 3339 instant can name, so an open range is never
            // empty (an earlier end once blamed `endDate` for a late `startDate` given alone).
            None => open_end(),
        };
        Ok(Some(TimeRange::new(start, end)?))
    }
}

/// The end of an open-ended range: the first instant of the year 10000, later than any event
/// can be.
fn open_end() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

impl Analytics {
    /// A page of `tenant`'s event log, newest first.
    ///
    /// # Errors
    /// As [`EventLogRequest::to_query`]; store errors.
    pub async fn event_log(&self, tenant: &TenantId, request: &EventLogRequest) -> Result<EventLog> {
        let query = request.to_query(tenant)?;
        let page = self.list_events(tenant, &query).await?;
        Ok(match query.pagination {
            Pagination::Offset { page: number, limit } => EventLog {
                events: page.events,
                limit,
                page: Some(number),
                total_pages: page.total.map(|t| t.div_ceil(u64::from(limit))),
                total: page.total,
                next_cursor: None,
            },
            Pagination::Cursor { limit, .. } => EventLog {
                events: page.events,
                limit,
                page: None,
                total: None,
                total_pages: None,
                next_cursor: Some(page.next_cursor.map(|c| c.encode())),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn defaults_are_the_first_offset_page_of_fifty_over_all_time() {
        let query = EventLogRequest::default().to_query(&tenant()).unwrap();
        assert_eq!(query.pagination, Pagination::Offset { page: 1, limit: 50 });
        assert_eq!(query.range, None);
        let open = EventLogRequest {
            start_date: Some("2024-01-01".into()),
            ..Default::default()
        };
        assert_eq!(open.to_query(&tenant()).unwrap().range.unwrap().end(), open_end());
    }

    #[test]
    fn bad_requests_name_the_field() {
        let field = |r: EventLogRequest| r.to_query(&tenant()).unwrap_err().field().map(str::to_owned);
        let both = EventLogRequest {
            page: Some(2),
            cursor: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(field(both).as_deref(), Some("cursor"));
        let zero = EventLogRequest {
            page: Some(0),
            ..Default::default()
        };
        assert_eq!(field(zero).as_deref(), Some("page"));
        let other = EventLogRequest {
            tenant_id: Some("beta".into()),
            ..Default::default()
        };
        assert!(matches!(other.to_query(&tenant()), Err(Error::Forbidden { .. })));
        let bad_start = EventLogRequest {
            start_date: Some("soon".into()),
            ..Default::default()
        };
        assert_eq!(field(bad_start).as_deref(), Some("startDate"));
        for late in ["9999-12-31", "9999-12-31T23:59:59.999999Z"] {
            let open = EventLogRequest {
                start_date: Some(late.into()),
                ..Default::default()
            };
            assert!(open.to_query(&tenant()).is_ok(), "{late} alone starts an open range");
        }
    }
}
