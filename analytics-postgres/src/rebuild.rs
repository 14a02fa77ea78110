//! Rebuilding `period_stats` from `events`, when a migration replaced derived tables that held
//! counts of existing events (migration 0002 leaves a marker row for this).
//!
//! One transaction: it takes the marker row `FOR UPDATE` (a second process connecting meanwhile
//! waits, then finds no marker), locks `events` in `SHARE` mode (no event can be committed while
//! it runs, and none it does not see is left uncommitted), empties `period_stats` (rows appended
//! by batches since the migration are recounted from their events like every other event),
//! recounts every event in batches of [`CHUNK`], and removes the marker.

use analytics_core::Result;
use analytics_core::model::{Browser, Country, Device, Event, EventId, EventType, Page, TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};

use crate::compact::copy_period_rows;
use crate::error::{self, corrupt};
use crate::stats;

/// Events recounted per appended set of rows.
const CHUNK: usize = 10_000;

type Row = (
    String,
    String,
    DateTime<Utc>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Rebuilds `period_stats` if a migration asked for it.
pub(crate) async fn if_pending(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(|e| error::map("rebuild", e))?;
    let mut tx = conn.begin().await.map_err(|e| error::map("rebuild", e))?;
    let pending: Option<bool> = sqlx::query_scalar("SELECT pending FROM period_stats_rebuild FOR UPDATE")
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| error::map("rebuild", e))?;
    if pending.is_some() {
        rebuild(&mut tx).await?;
    }
    tx.commit().await.map_err(|e| error::map("rebuild", e))
}

async fn rebuild(conn: &mut PgConnection) -> Result<()> {
    let map = |e| error::map("rebuild", e);
    sqlx::raw_sql("LOCK TABLE events IN SHARE MODE; DELETE FROM period_stats; DELETE FROM period_stats_rebuild;")
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    // Keyset chunks in index order: memory stays bounded however many events there are.
    let mut after: Option<(String, DateTime<Utc>, String)> = None;
    loop {
        let rows: Vec<Row> =
            match &after {
                None => {
                    sqlx::query_as(&format!("{SELECT_EVENTS} ORDER BY tenant_id, ts, id LIMIT {CHUNK}"))
                        .fetch_all(&mut *conn)
                        .await
                }
                Some((tenant, ts, id)) => sqlx::query_as(&format!(
                    "{SELECT_EVENTS} WHERE (tenant_id, ts, id) > ($1, $2, $3) ORDER BY tenant_id, ts, id LIMIT {CHUNK}"
                ))
                .bind(tenant)
                .bind(ts)
                .bind(id)
                .fetch_all(&mut *conn)
                .await,
            }
            .map_err(map)?;
        let Some(last) = rows.last() else { break };
        after = Some((last.0.clone(), last.2, last.1.clone()));
        let events = rows.into_iter().map(event).collect::<Result<Vec<Event>>>()?;
        for same_tenant in events.chunk_by(|a, b| a.tenant_id == b.tenant_id) {
            let refs: Vec<&Event> = same_tenant.iter().collect();
            let (rows, _) = stats::batch_rows(same_tenant[0].tenant_id.as_str(), &refs);
            copy_period_rows(conn, &rows).await.map_err(map)?;
        }
    }
    Ok(())
}

const SELECT_EVENTS: &str = "SELECT tenant_id, id, ts, user_id, event_type, page, browser, device, country FROM events";

fn event(row: Row) -> Result<Event> {
    let (tenant, id, ts, user, event_type, page, browser, device, country) = row;
    let bad = |e| corrupt("stored event", e);
    let mut event = Event::new(
        TenantId::parse(tenant).map_err(bad)?,
        EventId::parse(id).map_err(bad)?,
        EventType::parse(event_type).map_err(bad)?,
        ts,
    );
    event.user_id = user.map(UserId::parse).transpose().map_err(bad)?;
    event.page = page.map(Page::parse).transpose().map_err(bad)?;
    event.browser = browser.map(Browser::parse).transpose().map_err(bad)?;
    event.device = device.map(Device::parse).transpose().map_err(bad)?;
    event.country = country.map(Country::parse).transpose().map_err(bad)?;
    Ok(event)
}
