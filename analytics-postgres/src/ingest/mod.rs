//! Batch ingestion: one transaction per batch, binary `COPY` for every bulk write.
//!
//! 1. Ids repeated inside the batch are duplicates (first occurrence wins), decided in Rust by
//!    sorting the ids (which the ledger needs anyway) rather than hashing them.
//! 2. The batch's ids are claimed in the `event_ids` ledger: first optimistically, with `COPY`
//!    inside a savepoint (about twice as fast as `INSERT … ON CONFLICT`, measured); if an id is
//!    already there the savepoint is rolled back and the ids are claimed with `INSERT … ON
//!    CONFLICT DO NOTHING RETURNING`, whose answer says which are new. Ids are claimed in byte
//!    order, so concurrent batches sharing ids wait for each other instead of deadlocking.
//! 3. The new events are streamed with `COPY` into `events` (PostgreSQL routes each row to its
//!    month's partition).
//! 4. The new events' share of every UTC hour and day they touch is appended to `period_stats`
//!    (one row per period, [`crate::stats`]) — no row locks, so concurrent batches never wait on
//!    each other there — and the per-user experiment state is upserted ([`exposures`]).
//! 5. Commit; only then is the outcome returned. Periods that have collected enough rows are
//!    then compacted ([`crate::compact`]); a failed compaction is retried later and never fails
//!    the call, whose events are already committed.
//!
//! A transaction that loses a deadlock or serialization race is rolled back and retried whole,
//! which is safe because nothing of it was committed.

pub(crate) mod copy;
mod exposures;

pub(crate) use exposures::KnownExposures;

use std::collections::HashSet;

use analytics_core::model::Event;
use analytics_core::store::AppendOutcome;
use analytics_core::{Error, Result};
use sqlx::{PgConnection, PgPool};

use crate::compact::{self, CompactionTracker};
use crate::error;
use crate::stats::{self, PeriodKey};

const CLAIM_IDS: &str = "INSERT INTO event_ids (tenant_id, id) \
    SELECT $1, id FROM unnest($2::text[]) AS u (id) ORDER BY id COLLATE \"C\" \
    ON CONFLICT DO NOTHING RETURNING id";

/// How often a batch that lost a deadlock or serialization race is retried.
const CONFLICT_RETRIES: usize = 4;

/// What a store remembers between batches so that it writes less.
#[derive(Debug)]
pub(crate) struct IngestState {
    /// Rows appended per period since it was compacted.
    pub(crate) compaction: CompactionTracker,
    /// Experiment state this process committed.
    pub(crate) exposures: KnownExposures,
}

/// Appends `events` (already checked to belong to `tenant`) in one transaction, then compacts
/// the periods that are due.
pub(crate) async fn append(
    pool: &PgPool,
    state: &IngestState,
    tenant: &str,
    events: &[Event],
) -> Result<AppendOutcome> {
    if events.is_empty() {
        return Ok(AppendOutcome::default());
    }
    let batch = Batch::encode(tenant, events);
    let mut attempt = 0;
    let (is_new, touched) = loop {
        match batch.apply(pool, &state.exposures).await {
            Ok(applied) => break applied,
            Err(e) if error::is_retryable_conflict(&e) && attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(error::map("append", e)),
        }
    };
    let due = state.compaction.record(tenant, &touched);
    // A compaction that failed is retried on a later batch.
    if !due.is_empty()
        && compact::compact(pool, tenant, &due, compact::TenantLock::Wait)
            .await
            .is_err()
    {
        state.compaction.retry_later(tenant, &due);
    }
    Ok(outcome(events, &batch.positions, &is_new))
}

/// A batch's distinct events with their `COPY` rows, encoded once for every attempt and before
/// the transaction starts (client work that need not hold a connection).
struct Batch<'a> {
    tenant: &'a str,
    /// The distinct events (the first occurrence of each id), in time order.
    events: Vec<&'a Event>,
    /// Where each of `events` is in the caller's batch.
    positions: Vec<usize>,
    rows: copy::CopyRows,
    ledger: copy::CopyRows,
    /// The `period_stats` rows of all the events (right unless some are duplicates).
    periods: (copy::CopyRows, Vec<PeriodKey>),
}

impl<'a> Batch<'a> {
    fn encode(tenant: &'a str, batch: &'a [Event]) -> Self {
        // Ids in byte order, each with its position: the ledger is claimed in that order, and a
        // repeated id sorts right after its first occurrence. (Pairs rather than positions
        // sorted through the batch: the comparisons then read the ids without a detour.)
        let mut by_id: Vec<(&[u8], usize)> = batch
            .iter()
            .enumerate()
            .map(|(position, event)| (event.id.as_str().as_bytes(), position))
            .collect();
        by_id.sort_unstable();
        by_id.dedup_by(|later, first| later.0 == first.0);
        let ledger_events: Vec<&Event> = by_id.iter().map(|(_, position)| &batch[*position]).collect();
        // Rows in time order: the time index is then filled in key order (each leaf page visited
        // once, upper levels hot), and consecutive rows go to the same month's partition.
        let mut positions: Vec<usize> = by_id.into_iter().map(|(_, position)| position).collect();
        positions.sort_unstable_by_key(|position| (batch[*position].timestamp, *position));
        let events: Vec<&Event> = positions.iter().map(|position| &batch[*position]).collect();
        Self {
            tenant,
            rows: copy::event_rows(tenant, &events),
            ledger: copy::ledger_rows(tenant, &ledger_events),
            periods: stats::batch_rows(tenant, &events),
            events,
            positions,
        }
    }

    /// Runs the transaction; returns which of `self.events` it stored and the periods it
    /// appended rows to.
    async fn apply(&self, pool: &PgPool, known: &KnownExposures) -> sqlx::Result<(Vec<bool>, Vec<PeriodKey>)> {
        let mut tx = pool.begin().await?;
        let is_new = self.claim(&mut tx).await?;
        let new_events: Vec<&Event> = self
            .events
            .iter()
            .zip(&is_new)
            .filter(|(_, new)| **new)
            .map(|(e, _)| *e)
            .collect();
        if new_events.is_empty() {
            tx.commit().await?;
            return Ok((is_new, Vec::new()));
        }
        copy_in(
            &mut tx,
            &format!("COPY events ({}) FROM STDIN (FORMAT binary)", copy::EVENT_COLUMNS),
            self.rows.stream_of(&is_new),
        )
        .await?;
        let recounted;
        let (period_rows, touched) = if new_events.len() == self.events.len() {
            &self.periods
        } else {
            recounted = stats::batch_rows(self.tenant, &new_events);
            &recounted
        };
        compact::copy_period_rows(&mut tx, period_rows).await?;
        let exposures = exposures::gather(&new_events);
        let fingerprints = exposures::write(&mut tx, self.tenant, &exposures, known).await?;
        tx.commit().await?;
        known.record(fingerprints);
        Ok((is_new, touched.clone()))
    }

    /// Claims the ids in the ledger; returns which of `self.events` are new.
    async fn claim(&self, conn: &mut PgConnection) -> sqlx::Result<Vec<bool>> {
        let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
        let copied = copy_in(
            &mut savepoint,
            "COPY event_ids (tenant_id, id) FROM STDIN (FORMAT binary)",
            self.ledger.stream(),
        )
        .await;
        match copied {
            Ok(()) => {
                savepoint.commit().await?;
                return Ok(vec![true; self.events.len()]);
            }
            Err(e) if error::is_unique_violation(&e) => savepoint.rollback().await?,
            Err(e) => return Err(e),
        }
        let ids: Vec<&str> = self.events.iter().map(|e| e.id.as_str()).collect();
        let claimed: Vec<String> = sqlx::query_scalar(CLAIM_IDS)
            .bind(self.tenant)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let claimed: HashSet<String> = claimed.into_iter().collect();
        Ok(ids.iter().map(|id| claimed.contains(*id)).collect())
    }
}

/// The physical limit of [`append`]: `events` written to the events table as `append` writes
/// them (binary `COPY`, rows in time order, in one transaction) and nothing else — no ledger,
/// no period rows, no experiment state.
pub(crate) async fn copy_bare(pool: &PgPool, tenant: &str, events: &[Event]) -> Result<()> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_unstable_by_key(|event| event.timestamp);
    let rows = copy::event_rows(tenant, &sorted);
    let copy = async {
        let mut tx = pool.begin().await?;
        copy_in(
            &mut tx,
            &format!("COPY events ({}) FROM STDIN (FORMAT binary)", copy::EVENT_COLUMNS),
            rows.stream(),
        )
        .await?;
        tx.commit().await
    };
    copy.await.map_err(|e| error::map("bare copy", e))
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: Vec<u8>) -> sqlx::Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

/// Accepted and duplicate ids in batch order: the event at each of `positions` was stored if
/// its flag in `is_new` is set; every other event repeats an id.
fn outcome(events: &[Event], positions: &[usize], is_new: &[bool]) -> AppendOutcome {
    let mut accepted = vec![false; events.len()];
    for (position, new) in positions.iter().zip(is_new) {
        accepted[*position] = *new;
    }
    let mut outcome = AppendOutcome::default();
    for (event, accepted) in events.iter().zip(accepted) {
        if accepted {
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
        let events = [event("b"), event("a"), event("b"), event("c"), event("a")];
        let batch = Batch::encode("t", &events);
        let ids = |v: &[EventId]| v.iter().map(|i| i.as_str().to_string()).collect::<Vec<_>>();
        let kept: Vec<&str> = batch.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            batch.positions,
            [0, 1, 3],
            "the first occurrence of each id, in time order"
        );
        assert_eq!(kept, ["b", "a", "c"]);
        assert_eq!(batch.ledger.len(), 3);

        // "b" was stored before (not new); "a" and "c" are new.
        let outcome = outcome(&events, &batch.positions, &[false, true, true]);
        assert_eq!(ids(&outcome.accepted), ["a", "c"]);
        assert_eq!(ids(&outcome.duplicates), ["b", "b", "a"]);
    }
}
