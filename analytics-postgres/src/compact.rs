//! Compaction: merging the `period_stats` rows of a period into one.
//!
//! Every ingested batch appends a row per hour and day it touches, so a period's row count grows
//! with the batches that touched it, and so does the work of every query over it. Compaction
//! takes a period's rows out with `DELETE … RETURNING` and puts back their merge, in one
//! transaction. That is safe beside everything else that runs:
//! - a batch committing meanwhile appends a row the `DELETE` did not see, so it stays, uncounted
//!   by the merge and still counted by queries;
//! - two compactions of one period: the second waits for the first's row locks, then skips the
//!   rows the first deleted, so every row is merged exactly once;
//! - a query sees the rows before or the merge after (one statement, one snapshot), never both.
//!
//! Each store instance counts the rows it appended per period ([`CompactionTracker`]) and
//! compacts a period after its `compact_after`-th, at the end of the `append` call that wrote it,
//! so rows per period stay bounded without a background task. A period that ingestion has moved
//! past — earlier than every period of its level in the latest batch, as each hour and day
//! becomes when events arrive in time order — is compacted then, whatever its count: in time order
//! a day collects a row from each of a dozen batches at 10M events over 90 days, never reaching
//! the threshold, and a 31-day summary read five times slower for it (measured). Even a count of
//! one is compacted, not forgotten: the period may hold an earlier merge or rows counted before,
//! and forgetting them let batches arriving out of time order (concurrent callers, late events)
//! pile up rows the tracker no longer knew of. [`compact_all`] compacts every
//! period with more than one row (after a restart lost the counts, or as a maintenance step).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use sqlx::{PgConnection, PgPool};

use crate::error;
use crate::ingest::copy::CopyRows;
use crate::stats::{self, PeriodKey, PeriodStats};

/// Rows appended per period by this store instance since the period was last compacted.
#[derive(Debug)]
pub(crate) struct CompactionTracker {
    compact_after: u32,
    appended: Mutex<HashMap<(String, PeriodKey), u32>>,
}

impl CompactionTracker {
    /// A tracker that declares a period due after `compact_after` appended rows (0: never).
    pub(crate) fn new(compact_after: u32) -> Self {
        Self {
            compact_after,
            appended: Mutex::default(),
        }
    }

    /// Counts one appended row for each of `keys` and returns those now due for compaction
    /// (they start counting again from zero): periods at the threshold, and periods of `tenant`
    /// the batch has moved past (see the module docs).
    pub(crate) fn record(&self, tenant: &str, keys: &[PeriodKey]) -> Vec<PeriodKey> {
        if self.compact_after == 0 {
            return Vec::new();
        }
        let mut appended = self.appended.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due = Vec::new();
        for key in keys {
            let count = appended.entry((tenant.to_owned(), *key)).or_insert(0);
            *count += 1;
            if *count >= self.compact_after {
                appended.remove(&(tenant.to_owned(), *key));
                due.push(*key);
            }
        }
        // The earliest period the batch touched, per level.
        let mut earliest: BTreeMap<i16, i64> = BTreeMap::new();
        for &(level, period) in keys {
            earliest
                .entry(level)
                .and_modify(|p| *p = (*p).min(period))
                .or_insert(period);
        }
        appended.retain(|(of, (level, period)), count| {
            let passed = of == tenant && earliest.get(level).is_some_and(|first| period < first);
            if passed && *count > 0 {
                due.push((*level, *period));
            }
            !passed
        });
        // In key order: concurrent compactions then lock rows in one order.
        due.sort_unstable();
        due
    }

    /// Marks `keys` due again at the next append that touches them (a compaction failed).
    pub(crate) fn retry_later(&self, tenant: &str, keys: &[PeriodKey]) {
        let mut appended = self.appended.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            appended.insert((tenant.to_owned(), *key), self.compact_after.saturating_sub(1));
        }
    }
}

const TAKE_ROWS: &str = "
DELETE FROM period_stats p
USING unnest($2::smallint[], $3::bigint[]) AS k (level, period)
WHERE p.tenant_id = $1 AND p.level = k.level AND p.period = k.period
RETURNING p.level, p.period, p.events, p.counts, p.users";

type StoredRow = (i16, i64, i64, Vec<u8>, Option<Vec<u8>>);

/// How a compaction takes its tenant's lock (per schema, so deployments sharing a database do
/// not hold each other up): one compaction of a tenant runs at a time across instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantLock {
    /// Wait for it: an ingest compacting the periods it wrote keeps its bound on rows.
    Wait,
    /// Skip the tenant if another instance holds it: a maintenance sweep leaves the tenant to it.
    Try,
}

impl TenantLock {
    fn sql(self) -> &'static str {
        match self {
            Self::Wait => {
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.compact'), hashtext($1)) IS NOT NULL"
            }
            Self::Try => "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.compact'), hashtext($1))",
        }
    }
}

/// Merges the rows of each of `tenant`'s `keys` into one; returns how many rows were removed, or
/// `None` when `lock` is [`TenantLock::Try`] and another instance is compacting the tenant.
pub(crate) async fn compact(
    pool: &PgPool,
    tenant: &str,
    keys: &[PeriodKey],
    lock: TenantLock,
) -> analytics_core::Result<Option<u64>> {
    let mut tx = pool.begin().await.map_err(|e| error::map("compaction", e))?;
    let locked: bool = sqlx::query_scalar(lock.sql())
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| error::map("compaction", e))?;
    if !locked {
        return Ok(None);
    }
    let removed = compact_in(&mut tx, tenant, keys).await?;
    tx.commit().await.map_err(|e| error::map("compaction", e))?;
    Ok(Some(removed))
}

async fn compact_in(conn: &mut PgConnection, tenant: &str, keys: &[PeriodKey]) -> analytics_core::Result<u64> {
    let (levels, periods): (Vec<i16>, Vec<i64>) = keys.iter().copied().unzip();
    let taken: Vec<StoredRow> = sqlx::query_as(TAKE_ROWS)
        .bind(tenant)
        .bind(levels)
        .bind(periods)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| error::map("compaction", e))?;
    let removed = taken.len() as u64;
    let mut merged: BTreeMap<PeriodKey, PeriodStats> = BTreeMap::new();
    for (level, period, events, counts, users) in &taken {
        merged
            .entry((*level, *period))
            .or_default()
            .add_row(*events, counts, users.as_deref())?;
    }
    let mut rows = CopyRows::with_capacity(merged.len(), 1024);
    for (key, stats) in &merged {
        stats.write(&mut rows, tenant, *key)?;
    }
    if rows.len() > 0 {
        copy_period_rows(conn, &rows)
            .await
            .map_err(|e| error::map("compaction", e))?;
    }
    Ok(removed)
}

/// Appends `rows` (written by [`PeriodStats::write`] or [`stats::batch_rows`]) to `period_stats`.
pub(crate) async fn copy_period_rows(conn: &mut PgConnection, rows: &CopyRows) -> sqlx::Result<()> {
    let statement = format!("COPY period_stats ({}) FROM STDIN (FORMAT binary)", stats::COLUMNS);
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(rows.stream()).await?;
    copy.finish().await?;
    Ok(())
}

/// How many periods one compaction transaction merges at most. A transaction holds all its
/// periods' rows and merged counts at once (hundreds of pages per busy hour), so this bounds
/// what a sweep holds in memory.
const KEYS_PER_TRANSACTION: usize = 128;

/// Compacts every period of every tenant that has more than one row; returns how many rows were
/// removed (merged into others).
pub(crate) async fn compact_all(pool: &PgPool) -> analytics_core::Result<u64> {
    let due: Vec<(String, i16, i64)> = sqlx::query_as(
        "SELECT tenant_id, level, period FROM period_stats GROUP BY 1, 2, 3 HAVING count(*) > 1 ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| error::map("compaction", e))?;
    let mut by_tenant: BTreeMap<String, Vec<PeriodKey>> = BTreeMap::new();
    for (tenant, level, period) in due {
        by_tenant.entry(tenant).or_default().push((level, period));
    }
    let mut removed = 0;
    for (tenant, keys) in by_tenant {
        for chunk in keys.chunks(KEYS_PER_TRANSACTION) {
            // A tenant another instance is compacting is left to it.
            removed += compact(pool, &tenant, chunk, TenantLock::Try).await?.unwrap_or(0);
        }
    }
    if removed > 0 {
        // A sweep can merge away most of the table's rows (after a restart, or a backlog left
        // by other processes): vacuum now rather than when autovacuum comes round, so the time
        // series' index-only scans find the pages all-visible again (measured on one server: 90 days
        // by hour took 2.7 ms server-side right after a sweep, 2.1–2.2 ms once vacuumed). Best effort: a
        // role that does not own the table only gets a warning, and a failure changes no answer.
        let _ = sqlx::query("VACUUM (ANALYZE) period_stats").execute(pool).await;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_fall_due_after_the_threshold_and_start_over() {
        let tracker = CompactionTracker::new(3);
        let (a, b) = ((0, 10), (1, 0));
        assert!(tracker.record("t", &[a, b]).is_empty());
        assert!(tracker.record("t", &[a]).is_empty());
        assert!(tracker.record("other", &[a]).is_empty(), "counted per tenant");
        assert_eq!(tracker.record("t", &[a, b]), [a]);
        assert_eq!(tracker.record("t", &[b]), [b]);
        assert!(tracker.record("t", &[a]).is_empty());
        tracker.retry_later("t", &[b]);
        assert_eq!(tracker.record("t", &[b]), [b]);
        assert!(CompactionTracker::new(0).record("t", &[a, a, a]).is_empty());
    }

    #[test]
    fn periods_ingestion_moved_past_fall_due() {
        let tracker = CompactionTracker::new(16);
        let (h1, h2, h3, day) = ((0, 100), (0, 101), (0, 102), (1, 4));
        assert!(tracker.record("t", &[h1, day]).is_empty());
        assert!(tracker.record("t", &[h1, h2, day]).is_empty());
        assert!(
            tracker.record("other", &[h3, day]).is_empty(),
            "another tenant's batch moves nothing"
        );
        // Time order moves on to h3: h1 and h2 are due (h2's one row may sit beside an earlier
        // merge), and the day is still being written.
        assert_eq!(tracker.record("t", &[h3, day]), [h1, h2]);
        assert!(
            tracker.record("t", &[h3, day]).is_empty(),
            "nothing left behind to merge"
        );
        assert_eq!(tracker.record("t", &[(0, 200), (1, 5)]), [(0, 102), day]);

        // A batch arriving out of time order adds a row to a period already moved past; the
        // next batch in order makes it due again instead of forgetting it.
        assert!(tracker.record("t", &[h1, (1, 4)]).is_empty());
        assert_eq!(tracker.record("t", &[(0, 201), (1, 5)]), [h1, (0, 200), day]);
    }
}
