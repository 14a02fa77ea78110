//! Unfiltered plans: `period_stats` rows for whole periods (decoded rows kept between summaries,
//! [`PeriodCache`]), raw rows for the ragged edges.

use std::collections::BTreeMap;
use std::sync::Arc;

use analytics_core::Result;
use analytics_core::query::{HourSpan, QueryPlan};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::raw::raw_users;
use super::{
    DIM_BROWSER, DIM_COUNTRY, DIM_DEVICE, DIM_PAGE, DIM_TOTAL, DIM_TYPE, DimCounts, Users, dims_wanted, push_ranges,
};
use crate::error::{self, corrupt};
use crate::period_cache::{PeriodCache, PeriodRow};
use crate::sketch::UserSketch;
use crate::stats::{Dim, LEVEL_DAY, LEVEL_HOUR, LEVEL_WEEK, first_day_of, week_of};

/// Rollup pieces covering `span` exactly once, with as few rows as the levels allow: hours at
/// the ragged ends, whole UTC days up to the first and from the last week boundary, whole weeks
/// between (a month reads about 10 rows instead of 31, a quarter about 20 instead of 90).
fn cover(span: HourSpan) -> Vec<(i16, i64, i64)> {
    let first_day = span.start.div_euclid(24) + i64::from(span.start.rem_euclid(24) != 0);
    let end_day = span.end.div_euclid(24);
    if first_day >= end_day {
        return vec![(LEVEL_HOUR, span.start, span.end)];
    }
    let first_week = week_of(first_day - 1) + 1;
    let end_week = week_of(end_day);
    let days = if first_week < end_week {
        vec![
            (LEVEL_DAY, first_day, first_day_of(first_week)),
            (LEVEL_WEEK, first_week, end_week),
            (LEVEL_DAY, first_day_of(end_week), end_day),
        ]
    } else {
        vec![(LEVEL_DAY, first_day, end_day)]
    };
    std::iter::once((LEVEL_HOUR, span.start, first_day * 24))
        .chain(days)
        .chain([(LEVEL_HOUR, end_day * 24, span.end)])
        .filter(|(_, start, end)| start < end)
        .collect()
}

/// Appends ` AND (…)`: rows of the rollup-level `pieces` (`level`, `period` columns), or
/// `FALSE` when there are none.
fn push_periods<'a>(sql: &mut QueryBuilder<'a, Postgres>, pieces: &[(i16, i64, i64)]) {
    sql.push(" AND (FALSE");
    for &(level, start, end) in pieces {
        sql.push(" OR (level = ")
            .push_bind(level)
            .push(" AND period >= ")
            .push_bind(start)
            .push(" AND period < ")
            .push_bind(end)
            .push(")");
    }
    sql.push(")");
}

/// The whole range's dimension counts and distinct users from the rollups: the covering
/// periods' rows (counts and sketches in one read) and the raw rows of the ragged edges.
pub(super) async fn rollup_whole(pool: &PgPool, cache: &PeriodCache, plan: &QueryPlan) -> Result<(DimCounts, Users)> {
    let tenant = plan.query.tenant().as_str();
    let pieces = plan.whole.rollup.map(cover).unwrap_or_default();
    // Without whole periods the raw rows are the whole range: count their users exactly.
    let exact = plan.query.exact_unique_users() || plan.whole.rollup.is_none();
    let rolled = async {
        if pieces.is_empty() {
            return Ok(Vec::new());
        }
        period_rows(pool, cache, tenant, &pieces, !exact).await
    };
    let mut raw = QueryBuilder::new(
        "SELECT d.dim, d.value, count(*) FROM events e CROSS JOIN LATERAL (VALUES (0::smallint, ''::text), \
         (1::smallint, e.event_type), (2::smallint, e.page), (3::smallint, e.device), (4::smallint, e.browser), \
         (5::smallint, e.country)) AS d (dim, value) \
         WHERE e.tenant_id = ",
    );
    raw.push_bind(tenant);
    push_ranges(&mut raw, &plan.whole.raw);
    raw.push(" AND d.value IS NOT NULL AND d.dim = ANY(")
        .push_bind(dims_wanted(plan))
        .push(") GROUP BY d.dim, d.value");
    let raw = async {
        if plan.whole.raw.is_empty() {
            return Ok(Vec::new());
        }
        raw.build_query_as::<(i16, String, i64)>()
            .fetch_all(pool)
            .await
            .map_err(|e| error::map("summary", e))
    };
    let mut edge_users =
        QueryBuilder::new("SELECT DISTINCT user_id FROM events WHERE user_id IS NOT NULL AND tenant_id = ");
    edge_users.push_bind(tenant);
    push_ranges(&mut edge_users, &plan.whole.raw);
    let edge_users = async {
        if exact || plan.whole.raw.is_empty() {
            return Ok(Vec::new());
        }
        edge_users
            .build_query_scalar::<String>()
            .fetch_all(pool)
            .await
            .map_err(|e| error::map("summary", e))
    };
    let exact_users = async {
        if !exact {
            return Ok(None);
        }
        raw_users(pool, plan).await.map(Some)
    };
    let (rolled, mut counts, edge_users, exact_users) =
        futures_util::future::try_join4(rolled, raw, edge_users, exact_users).await?;

    let wanted = dims_wanted(plan);
    // Hashed, not ordered: with hundreds of full-URL pages per day, ordered inserts spent their
    // time comparing long common prefixes (profiled).
    let distinct = rolled.first().map_or(0, |row| row.counts.len());
    let mut merged: foldhash::HashMap<(i16, &str), i64> =
        foldhash::HashMap::with_capacity_and_hasher(distinct, foldhash::fast::RandomState::default());
    for row in &rolled {
        *merged.entry((DIM_TOTAL, "")).or_insert(0) += row.events;
        for (dim, value, n) in &row.counts {
            let code = match dim {
                Dim::Type => DIM_TYPE,
                Dim::Page => DIM_PAGE,
                Dim::Device => DIM_DEVICE,
                Dim::Browser => DIM_BROWSER,
                Dim::Country => DIM_COUNTRY,
                Dim::Variant => continue,
            };
            if wanted.contains(&code) {
                *merged.entry((code, value)).or_insert(0) += i64::try_from(*n).map_err(|_| corrupt("count", n))?;
            }
        }
    }
    counts.extend(merged.into_iter().map(|((dim, value), n)| (dim, value.to_owned(), n)));

    let users = match exact_users {
        Some(users) => users,
        None => {
            let mut merged = UserSketch::union_of_stored(rolled.iter().filter_map(|row| row.users.as_ref()))?;
            for user in &edge_users {
                merged.insert(user);
            }
            (merged.estimate(), true)
        }
    };
    Ok((counts, users))
}

/// The `period_stats` rows of `tenant`'s rollup `pieces`, decoded: rows the cache holds are
/// named in the query, which then sends only their ids; the others' contents are fetched,
/// decoded and cached ([`PeriodCache`]). Sketches are read only `with_users`.
async fn period_rows(
    pool: &PgPool,
    cache: &PeriodCache,
    tenant: &str,
    pieces: &[(i16, i64, i64)],
    with_users: bool,
) -> Result<Vec<Arc<PeriodRow>>> {
    let tenant_key: Arc<str> = Arc::from(tenant);
    let held = cache.held(&tenant_key, pieces, with_users);
    let mut sql = QueryBuilder::new("SELECT id, level, period, events, CASE WHEN id = ANY(");
    sql.push_bind(&held.ids).push(") THEN NULL ELSE counts END, ");
    if with_users {
        sql.push("CASE WHEN id = ANY(")
            .push_bind(&held.ids)
            .push(") THEN NULL ELSE users END");
    } else {
        sql.push("NULL::bytea");
    }
    sql.push(" FROM period_stats WHERE tenant_id = ").push_bind(tenant);
    push_periods(&mut sql, pieces);
    let fetched = sql
        .build_query_as::<(i64, i16, i64, i64, Option<Vec<u8>>, Option<Vec<u8>>)>()
        .fetch_all(pool)
        .await
        .map_err(|e| error::map("summary", e))?;
    let mut by_period: BTreeMap<(i16, i64), PeriodRead> = BTreeMap::new();
    for (id, level, period, events, counts, users) in fetched {
        let read = by_period.entry((level, period)).or_default();
        match counts {
            // `counts` is never NULL in the table: this is a row the query was told is held.
            None => read
                .rows
                .push(held.get(id).cloned().ok_or_else(|| corrupt("period row id", id))?),
            Some(counts) => {
                let row = PeriodRow::decode(id, events, (&counts, users), with_users, cache.keeps_rows())?;
                read.rows.push(Arc::new(row));
                read.fresh = true;
            }
        }
    }
    let mut rows = Vec::new();
    for (period, read) in by_period {
        rows.extend(read.rows.iter().cloned());
        // A period whose rows were all held keeps its entry (rows deleted since are only ever
        // offered as known again, never read).
        if read.fresh {
            cache.store(&tenant_key, period, read.rows);
        }
    }
    Ok(rows)
}

/// The rows a summary read for one period.
#[derive(Default)]
struct PeriodRead {
    rows: Vec<Arc<PeriodRow>>,
    /// Whether any row was not held.
    fresh: bool,
}

/// Event counts of the raw pieces of the series: one scalar subquery per piece (each an index
/// range scan; PostgreSQL cannot flatten them into a join).
const RAW_SERIES: &str = "
SELECT p.idx, (SELECT count(*) FROM events WHERE tenant_id = $1 AND ts >= p.lo AND ts < p.hi)
FROM unnest($2::int[], $3::timestamptz[], $4::timestamptz[]) AS p (idx, lo, hi)";

/// The time series from the rollups: each bucket's rollup pieces summed from the period rows
/// of one range scan per level (a merge in Rust: the pieces of a level are disjoint and in time
/// order), its ragged raw pieces counted in SQL. A subquery per piece cost 12 ms
/// for 90 days by hour (2,160 of them); the scan reads the same rows once.
pub(super) async fn rollup_series(pool: &PgPool, plan: &QueryPlan) -> Result<Vec<(i32, i64)>> {
    let mut by_level: BTreeMap<i16, Vec<(i64, i64, i32)>> = BTreeMap::new();
    let (mut raw_idx, mut raw_starts, mut raw_ends) = (Vec::new(), Vec::new(), Vec::new());
    for (i, bucket) in plan.buckets.iter().enumerate() {
        let i = i32::try_from(i).expect("at most MAX_BUCKETS buckets");
        for (level, start, end) in bucket.span.rollup.map(cover).unwrap_or_default() {
            by_level.entry(level).or_default().push((start, end, i));
        }
        for piece in &bucket.span.raw {
            raw_idx.push(i);
            raw_starts.push(piece.start());
            raw_ends.push(piece.end());
        }
    }
    let tenant = plan.query.tenant().as_str();
    // One row per level, its periods and counts as two arrays: decoding 2,160 rows (90 days by
    // hour) one by one through sqlx's row stream was a tenth of the server's time (profiled).
    // Unordered: PostgreSQL sorted each array on its own, and the pairs are sorted here instead.
    let mut rows = QueryBuilder::new(
        "SELECT level, array_agg(period), array_agg(events) \
         FROM period_stats WHERE tenant_id = ",
    );
    rows.push_bind(tenant).push(" AND (FALSE");
    for (level, pieces) in &by_level {
        let (first, last) = (pieces.first().expect("non-empty"), pieces.last().expect("non-empty"));
        rows.push(" OR (level = ")
            .push_bind(*level)
            .push(" AND period >= ")
            .push_bind(first.0)
            .push(" AND period < ")
            .push_bind(last.1)
            .push(")");
    }
    rows.push(") GROUP BY level");
    let rows = async {
        if by_level.is_empty() {
            return Ok(Vec::new());
        }
        rows.build_query_as::<(i16, Vec<i64>, Vec<i64>)>().fetch_all(pool).await
    };
    let raw = async {
        if raw_idx.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_as::<_, (i32, i64)>(RAW_SERIES)
            .bind(tenant)
            .bind(raw_idx)
            .bind(raw_starts)
            .bind(raw_ends)
            .fetch_all(pool)
            .await
    };
    let (rows, mut series) = futures_util::future::try_join(rows, raw)
        .await
        .map_err(|e| error::map("summary", e))?;
    for (level, pieces) in &by_level {
        let Some((_, periods, counts)) = rows.iter().find(|(l, _, _)| l == level) else {
            series.extend(pieces.iter().map(|&(_, _, idx)| (idx, 0)));
            continue;
        };
        if periods.len() != counts.len() {
            return Err(corrupt("period rows", "periods and counts of different lengths"));
        }
        let mut rows: Vec<(i64, i64)> = periods.iter().copied().zip(counts.iter().copied()).collect();
        rows.sort_unstable_by_key(|&(period, _)| period);
        let mut next = 0;
        for &(start, end, idx) in pieces {
            while rows.get(next).is_some_and(|(p, _)| *p < start) {
                next += 1;
            }
            let mut events = 0;
            while let Some((_, n)) = rows.get(next).filter(|(p, _)| *p < end) {
                events += n;
                next += 1;
            }
            series.push((idx, events));
        }
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_splits_ragged_hours_whole_days_and_whole_weeks() {
        assert_eq!(cover(HourSpan { start: 5, end: 20 }), [(LEVEL_HOUR, 5, 20)]);
        assert_eq!(
            cover(HourSpan { start: 20, end: 75 }),
            [(LEVEL_HOUR, 20, 24), (LEVEL_DAY, 1, 3), (LEVEL_HOUR, 72, 75)]
        );
        assert_eq!(cover(HourSpan { start: 24, end: 72 }), [(LEVEL_DAY, 1, 3)]);
        // Epoch day 4 is a Monday (week 1); day 18 the Monday of week 3.
        assert_eq!(
            cover(HourSpan {
                start: 2 * 24 + 7,
                end: 20 * 24 + 1
            }),
            [
                (LEVEL_HOUR, 55, 72),
                (LEVEL_DAY, 3, 4),
                (LEVEL_WEEK, 1, 3),
                (LEVEL_DAY, 18, 20),
                (LEVEL_HOUR, 480, 481)
            ]
        );
        // Exactly one week, and a span inside one week.
        assert_eq!(
            cover(HourSpan {
                start: 4 * 24,
                end: 11 * 24
            }),
            [(LEVEL_WEEK, 1, 2)]
        );
        assert_eq!(
            cover(HourSpan {
                start: 5 * 24,
                end: 10 * 24
            }),
            [(LEVEL_DAY, 5, 10)]
        );
        // Before the epoch.
        assert_eq!(
            cover(HourSpan {
                start: -10 * 24,
                end: -3 * 24
            }),
            [(LEVEL_WEEK, -1, 0)]
        );
    }

    #[test]
    fn a_cover_counts_every_hour_of_its_span_once() {
        let hours_of = |(level, start, end): (i16, i64, i64)| -> Vec<i64> {
            match level {
                LEVEL_HOUR => (start..end).collect(),
                LEVEL_DAY => (start * 24..end * 24).collect(),
                _ => (first_day_of(start) * 24..first_day_of(end) * 24).collect(),
            }
        };
        for start in -400..400 {
            for len in [1, 23, 24, 25, 24 * 7 - 1, 24 * 7, 24 * 15 + 3, 24 * 40 + 11] {
                let span = HourSpan {
                    start,
                    end: start + len,
                };
                let hours: Vec<i64> = cover(span).into_iter().flat_map(hours_of).collect();
                assert_eq!(hours, (span.start..span.end).collect::<Vec<_>>(), "{span:?}");
            }
        }
    }
}
