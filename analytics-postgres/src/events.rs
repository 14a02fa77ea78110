//! The event log: pages of raw events, newest first.

use std::sync::Arc;

use analytics_core::Result;
use analytics_core::model::{
    Browser, Country, Device, Event, EventId, EventType, ExperimentId, Page, SessionId, TenantId, UserId, VariantKey,
};
use analytics_core::store::{EventCursor, EventListQuery, EventPage, Pagination};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::{self, corrupt};

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    ts: DateTime<Utc>,
    user_id: Option<String>,
    event_type: String,
    session_id: Option<String>,
    page: Option<String>,
    browser: Option<String>,
    device: Option<String>,
    country: Option<String>,
    properties: Json<serde_json::Map<String, serde_json::Value>>,
    experiment_id: Option<String>,
    variant: Option<String>,
}

impl EventRow {
    fn into_event(self, tenant: &TenantId) -> Result<Event> {
        fn opt<T>(value: Option<String>, parse: impl Fn(String) -> Result<T>) -> Result<Option<T>> {
            value.map(parse).transpose()
        }
        let mut event = Event::new(
            tenant.clone(),
            EventId::parse(self.id)?,
            EventType::parse(self.event_type)?,
            self.ts,
        );
        event.user_id = opt(self.user_id, UserId::parse)?;
        event.session_id = opt(self.session_id, SessionId::parse)?;
        event.page = opt(self.page, Page::parse)?;
        event.browser = opt(self.browser, Browser::parse)?;
        event.device = opt(self.device, Device::parse)?;
        event.country = opt(self.country, Country::parse)?;
        event.properties = Arc::new(self.properties.0);
        event.experiment_id = opt(self.experiment_id, ExperimentId::parse)?;
        event.variant = opt(self.variant, VariantKey::parse)?;
        Ok(event)
    }
}

const COLUMNS: &str = "SELECT e.id, e.ts, e.user_id, e.event_type, e.session_id, e.page, e.browser, e.device, \
    e.country, e.properties, e.experiment_id, e.variant FROM events e";

fn push_filters<'a>(sql: &mut QueryBuilder<'a, Postgres>, tenant: &'a TenantId, query: &'a EventListQuery) {
    sql.push(" WHERE e.tenant_id = ").push_bind(tenant.as_str());
    if let Some(range) = &query.range {
        sql.push(" AND e.ts >= ")
            .push_bind(range.start())
            .push(" AND e.ts < ")
            .push_bind(range.end());
    }
    if let Some(t) = &query.event_type {
        sql.push(" AND e.event_type = ").push_bind(t.as_str());
    }
    if let Some(u) = &query.user_id {
        sql.push(" AND e.user_id = ").push_bind(u.as_str());
    }
}

/// A page of `tenant`'s events.
pub(crate) async fn list(pool: &PgPool, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
    query.pagination.validate()?;
    let mut sql = QueryBuilder::new(COLUMNS);
    push_filters(&mut sql, tenant, query);
    let limit = i64::from(query.pagination.limit());
    match &query.pagination {
        Pagination::Offset { page, .. } => {
            let offset = i64::from(*page - 1) * limit;
            sql.push(" ORDER BY e.ts DESC, e.id DESC LIMIT ")
                .push_bind(limit)
                .push(" OFFSET ")
                .push_bind(offset);
            let rows = fetch(pool, &mut sql, tenant);
            let (events, total) = futures_util::future::try_join(rows, total(pool, tenant, query)).await?;
            Ok(EventPage {
                events,
                total: Some(total),
                next_cursor: None,
            })
        }
        Pagination::Cursor { after, .. } => {
            if let Some(cursor) = after {
                // `ts <=` is implied by the row comparison; spelled out, it bounds the index scan.
                sql.push(" AND e.ts <= ")
                    .push_bind(cursor.timestamp)
                    .push(" AND (e.ts, e.id) < (")
                    .push_bind(cursor.timestamp)
                    .push(", ")
                    .push_bind(cursor.id.as_str())
                    .push(")");
            }
            // One extra row says whether another page exists.
            sql.push(" ORDER BY e.ts DESC, e.id DESC LIMIT ").push_bind(limit + 1);
            let mut events = fetch(pool, &mut sql, tenant).await?;
            let more = events.len() as i64 > limit;
            events.truncate(limit as usize);
            let next_cursor = if more {
                events.last().map(EventCursor::after)
            } else {
                None
            };
            Ok(EventPage {
                events,
                total: None,
                next_cursor,
            })
        }
    }
}

async fn fetch(pool: &PgPool, sql: &mut QueryBuilder<'_, Postgres>, tenant: &TenantId) -> Result<Vec<Event>> {
    let rows: Vec<EventRow> = sql
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(|e| error::map("list events", e))?;
    rows.into_iter()
        .map(|row| row.into_event(tenant).map_err(|e| corrupt("event", e)))
        .collect()
}

async fn total(pool: &PgPool, tenant: &TenantId, query: &EventListQuery) -> Result<u64> {
    let mut sql = QueryBuilder::new("SELECT count(*) FROM events e");
    push_filters(&mut sql, tenant, query);
    let n: i64 = sql
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(|e| error::map("count events", e))?;
    u64::try_from(n).map_err(|_| corrupt("count", n))
}
