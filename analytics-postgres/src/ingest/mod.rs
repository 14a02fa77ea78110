//! Batch ingestion: one transaction per batch, set-based writes, `COPY` for the rows.
//!
//! 1. Ids repeated inside the batch are duplicates (first occurrence wins), decided in Rust.
//! 2. The batch's ids go into the `event_ids` ledger in one statement (`ON CONFLICT DO
//!    NOTHING`); the ids it returns are the new ones.
//! 3. The new events are streamed with `COPY` straight into `events` (PostgreSQL routes each row
//!    to its month's partition).
//! 4. Rollups, experiment state and unique-user sketches are updated from the new events only
//!    ([`derived`]); counters are upserted (`n = n + excluded.n`), so concurrent batches for the
//!    same tenant and hour never lose an update.
//! 5. Commit; only then is the outcome returned.
//!
//! Concurrent batches can still deadlock on rows they touch in different orders (PostgreSQL
//! aborts one); the aborted batch is rolled back and retried, which is safe because nothing of it
//! was committed.

mod copy;
pub(crate) mod derived;

use std::collections::HashSet;

use analytics_core::model::Event;
use analytics_core::store::AppendOutcome;
use analytics_core::{Error, Result};
use sqlx::PgPool;

use crate::error;

const CLAIM_IDS: &str = "INSERT INTO event_ids (tenant_id, id) \
    SELECT $1, id FROM unnest($2::text[]) AS u (id) ORDER BY id COLLATE \"C\" \
    ON CONFLICT DO NOTHING RETURNING id";

const COPY_EVENTS: &str = "COPY events (tenant_id, id, ts, user_id, event_type, session_id, page, browser, device, \
    country, properties, experiment_id, variant) FROM STDIN";

/// How often a batch that lost a deadlock or serialization race is retried.
const CONFLICT_RETRIES: usize = 4;

/// Appends `events` (already checked to belong to `tenant`) in one transaction.
pub(crate) async fn append(pool: &PgPool, tenant: &str, events: &[Event]) -> Result<AppendOutcome> {
    let (unique, repeated) = split_repeats(events);
    if unique.is_empty() {
        return Ok(outcome(events, &HashSet::new(), &repeated));
    }
    let rows = copy::CopyRows::encode(tenant, &unique);
    let mut attempt = 0;
    let fresh = loop {
        match apply(pool, tenant, &unique, &rows).await {
            Ok(fresh) => break fresh,
            Err(e) if error::is_retryable_conflict(&e) && attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(error::map("append", e)),
        }
    };
    Ok(outcome(events, &fresh, &repeated))
}

async fn apply(pool: &PgPool, tenant: &str, unique: &[&Event], rows: &copy::CopyRows) -> sqlx::Result<HashSet<String>> {
    let ids: Vec<&str> = unique.iter().map(|e| e.id.as_str()).collect();
    let mut tx = pool.begin().await?;
    let claimed: Vec<String> = sqlx::query_scalar(CLAIM_IDS)
        .bind(tenant)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    if claimed.is_empty() {
        tx.commit().await?;
        return Ok(HashSet::new());
    }
    let fresh: HashSet<String> = claimed.into_iter().collect();
    let is_new: Vec<bool> = ids.iter().map(|id| fresh.contains(*id)).collect();
    let mut copy = tx.copy_in_raw(COPY_EVENTS).await?;
    copy.send(rows.select(&is_new)).await?;
    copy.finish().await?;
    let new_events: Vec<&Event> = unique
        .iter()
        .zip(&is_new)
        .filter(|(_, new)| **new)
        .map(|(e, _)| *e)
        .collect();
    derived::add_rollups(&mut tx, tenant, &new_events).await?;
    derived::add_experiment_state(&mut tx, tenant, &new_events).await?;
    derived::add_to_sketches(&mut tx, tenant, &new_events).await?;
    tx.commit().await?;
    Ok(fresh)
}

/// The batch without repeated ids (first occurrence kept), and the positions of the repeats.
fn split_repeats(events: &[Event]) -> (Vec<&Event>, HashSet<usize>) {
    let mut seen = HashSet::with_capacity(events.len());
    let mut unique = Vec::with_capacity(events.len());
    let mut repeated = HashSet::new();
    for (i, event) in events.iter().enumerate() {
        if seen.insert(event.id.as_str()) {
            unique.push(event);
        } else {
            repeated.insert(i);
        }
    }
    (unique, repeated)
}

/// Accepted and duplicate ids in batch order.
fn outcome(events: &[Event], fresh: &HashSet<String>, repeated: &HashSet<usize>) -> AppendOutcome {
    let mut outcome = AppendOutcome::default();
    for (i, event) in events.iter().enumerate() {
        if !repeated.contains(&i) && fresh.contains(event.id.as_str()) {
            outcome.accepted.push(event.id.clone());
        } else {
            outcome.duplicates.push(event.id.clone());
        }
    }
    outcome
}

/// The facade refuses batches over `MAX_BATCH` before they reach the store; this guards direct
/// callers (one transaction per batch must stay short).
pub(crate) fn check_size(events: &[Event]) -> Result<()> {
    if events.len() > analytics_core::analytics::MAX_BATCH {
        return Err(Error::invalid(
            "events",
            format!("at most {} events per batch", analytics_core::analytics::MAX_BATCH),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::{EventId, EventType, TenantId};

    fn event(id: &str) -> Event {
        Event::new(
            TenantId::parse("t").unwrap(),
            EventId::parse(id).unwrap(),
            EventType::parse("view").unwrap(),
            "2024-03-01T10:20:30.123456Z".parse().unwrap(),
        )
    }

    #[test]
    fn repeats_inside_a_batch_are_duplicates_in_batch_order() {
        let events = [event("a"), event("b"), event("a")];
        let (unique, repeated) = split_repeats(&events);
        assert_eq!(unique.len(), 2);
        let fresh: HashSet<String> = ["a".to_string()].into();
        let outcome = outcome(&events, &fresh, &repeated);
        let ids = |v: &[EventId]| v.iter().map(|i| i.as_str().to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&outcome.accepted), ["a"]);
        assert_eq!(ids(&outcome.duplicates), ["b", "a"]);
    }
}
