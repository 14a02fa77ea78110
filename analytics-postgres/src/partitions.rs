//! Monthly partitions of `events`, created as events arrive.

use std::collections::HashSet;
use std::sync::Mutex;

use analytics_core::Result;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::PgPool;

use crate::error::{self, sqlstate};

/// A calendar month as `year * 12 + (month - 1)`.
type MonthIndex = i32;

/// Creates each month's partition the first time this process sees an event in it (and the
/// month after it, so the next month's first events do not wait for DDL).
#[derive(Debug, Default)]
pub(crate) struct Partitions {
    known: Mutex<HashSet<MonthIndex>>,
}

impl Partitions {
    /// Makes sure every month of `timestamps` has a partition (or, failing that, that the
    /// default partition takes its events).
    pub(crate) async fn ensure(&self, pool: &PgPool, timestamps: impl Iterator<Item = DateTime<Utc>>) -> Result<()> {
        let missing: Vec<MonthIndex> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            let mut wanted: Vec<MonthIndex> = timestamps
                .map(month_of)
                .flat_map(|m| [m, m + 1])
                .filter(|m| !known.contains(m))
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            wanted
        };
        for month in missing {
            create(pool, month).await?;
            self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(month);
        }
        Ok(())
    }
}

fn month_of(t: DateTime<Utc>) -> MonthIndex {
    t.year() * 12 + t.month0() as i32
}

fn month_start(month: MonthIndex) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(month.div_euclid(12), month.rem_euclid(12) as u32 + 1, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists in UTC")
}

/// The partition's table name, `events_pYYYYMM`.
pub(crate) fn partition_name(month: MonthIndex) -> String {
    format!("events_p{:04}{:02}", month.div_euclid(12), month.rem_euclid(12) + 1)
}

async fn create(pool: &PgPool, month: MonthIndex) -> Result<()> {
    let (from, to) = (month_start(month), month_start(month + 1));
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{}') TO ('{}')",
        partition_name(month),
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    match create_serialized(pool, month, &sql).await {
        Ok(()) => Ok(()),
        Err(e) => match error::code(&e).as_deref() {
            // Another process created it at the same moment without taking the lock (an older
            // version): it exists, which is all we need.
            Some(sqlstate::UNIQUE_VIOLATION | sqlstate::DUPLICATE_TABLE) => Ok(()),
            // The default partition already holds events of this month (they arrived while the
            // partition could not be created): the month stays in the default partition, which
            // answers queries exactly the same, only without partition pruning.
            Some(sqlstate::CHECK_VIOLATION) => Ok(()),
            _ => Err(error::map("create partition", e)),
        },
    }
}

/// Runs `create` holding the month's partition lock for its transaction (per schema): instances
/// creating the same month's partition at once take turns, and the later one finds it exists.
async fn create_serialized(pool: &PgPool, month: MonthIndex, create: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.partition'), $1)")
        .bind(month)
        .execute(&mut *tx)
        .await?;
    sqlx::query(create).execute(&mut *tx).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_arithmetic_crosses_years() {
        let t: DateTime<Utc> = "2024-12-31T23:59:59Z".parse().unwrap();
        let m = month_of(t);
        assert_eq!(partition_name(m), "events_p202412");
        assert_eq!(partition_name(m + 1), "events_p202501");
        assert_eq!(month_start(m + 1).to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(partition_name(month_of(DateTime::UNIX_EPOCH)), "events_p197001");
    }
}
