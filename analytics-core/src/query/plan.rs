//! The query planner: which parts of a query rollups answer and which need raw events.
//!
//! Stores keep per-hour rollups (UTC hours). A bucket or range is split into its whole UTC hours
//! (answered by rollups) and the partial hours at its edges (answered by raw events). Bucket
//! edges that fall inside an hour — 30- and 45-minute offsets, or ranges given as instants — are
//! such edges. Queries with filters that rollups do not cover read raw events only.

use chrono::{DateTime, Utc};

use super::{Query, TimeRange};

/// Microseconds in an hour.
const HOUR_MICROS: i64 = 3_600_000_000;

/// A half-open run of whole UTC hours, as hour numbers since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourSpan {
    /// First hour (inclusive).
    pub start: i64,
    /// Last hour (exclusive).
    pub end: i64,
}

impl HourSpan {
    /// The hour number containing `t`.
    pub fn hour_of(t: DateTime<Utc>) -> i64 {
        t.timestamp_micros().div_euclid(HOUR_MICROS)
    }

    /// The instant hour `hour` starts.
    pub fn instant(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(hour * HOUR_MICROS).expect("hour within chrono's range")
    }

    /// How many hours.
    pub fn len(&self) -> i64 {
        self.end - self.start
    }

    /// Whether the span holds no hour.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// How to compute one interval: whole hours from rollups plus raw-event pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanPlan {
    /// The interval answered.
    pub interval: TimeRange,
    /// The whole hours rollups answer, if any.
    pub rollup: Option<HourSpan>,
    /// The pieces raw events answer (at most two: the edges). Together with `rollup` they
    /// partition `interval` exactly.
    pub raw: Vec<TimeRange>,
}

impl SpanPlan {
    fn new(interval: TimeRange, rollups_usable: bool) -> Self {
        let first_whole = ceil_hour(interval.start());
        let end_whole = HourSpan::hour_of(interval.end());
        if !rollups_usable || first_whole >= end_whole {
            return Self {
                interval,
                rollup: None,
                raw: vec![interval],
            };
        }
        let rollup = HourSpan {
            start: first_whole,
            end: end_whole,
        };
        // Edges on an hour boundary have no raw piece: checked on the instants' microseconds,
        // as most buckets' edges are (building and clipping the empty pieces was a visible
        // share of planning 90 days by hour).
        let on_hour = |t: DateTime<Utc>| t.timestamp_micros().rem_euclid(HOUR_MICROS) == 0;
        let mut raw = Vec::new();
        if !on_hour(interval.start()) {
            raw.extend(interval.clip(interval.start(), HourSpan::instant(first_whole)));
        }
        if !on_hour(interval.end()) {
            raw.extend(interval.clip(HourSpan::instant(end_whole), interval.end()));
        }
        Self {
            interval,
            rollup: Some(rollup),
            raw,
        }
    }
}

/// Where the plan's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSource {
    /// Rollups for whole hours, raw events for edges.
    Rollups,
    /// Raw events only, because a filter (event type, user, experiment) is set that rollups do
    /// not cover.
    RawEvents,
}

/// One time-series bucket's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPlan {
    /// The bucket's nominal start (may precede the range start for the first bucket).
    pub start: DateTime<Utc>,
    /// How to count its events within the range.
    pub span: SpanPlan,
}

/// What a store executes for a summary: the query, a plan for each bucket's count, and a plan for
/// the whole range (totals, unique users, breakdowns).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// The query planned.
    pub query: Query,
    /// Data source.
    pub source: PlanSource,
    /// The whole range.
    pub whole: SpanPlan,
    /// One plan per bucket, in order, aligned with `query.bucket_starts()`.
    pub buckets: Vec<BucketPlan>,
}

impl QueryPlan {
    /// Plans `query`.
    pub fn new(query: Query) -> Self {
        let source = if query.filters().is_empty() {
            PlanSource::Rollups
        } else {
            PlanSource::RawEvents
        };
        let usable = source == PlanSource::Rollups;
        let range = query.range();
        let starts = query.bucket_starts();
        let buckets = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = starts.get(i + 1).copied().unwrap_or(range.end());
                let interval = range.clip(start, end).expect("every bucket overlaps the range");
                BucketPlan {
                    start,
                    span: SpanPlan::new(interval, usable),
                }
            })
            .collect();
        Self {
            whole: SpanPlan::new(range, usable),
            source,
            buckets,
            query,
        }
    }
}

fn ceil_hour(t: DateTime<Utc>) -> i64 {
    let micros = t.timestamp_micros();
    micros.div_euclid(HOUR_MICROS) + i64::from(micros.rem_euclid(HOUR_MICROS) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;
    use crate::query::{Granularity, SummaryRequest};
    use proptest::prelude::*;

    fn plan(start: &str, end: &str, g: Granularity, tz: &str) -> QueryPlan {
        let request = SummaryRequest::new(start, end).group_by(g).timezone(tz);
        QueryPlan::new(Query::parse(&TenantId::parse("t").unwrap(), &request).unwrap())
    }

    #[test]
    fn aligned_days_are_all_rollups() {
        let p = plan("2024-01-01", "2024-01-31", Granularity::Day, "UTC");
        assert_eq!(p.whole.rollup.unwrap().len(), 31 * 24);
        assert!(p.whole.raw.is_empty());
        assert!(p.buckets.iter().all(|b| b.span.raw.is_empty()));
    }

    #[test]
    fn half_hour_zone_edges_are_raw() {
        let p = plan("2024-01-01", "2024-01-02", Granularity::Day, "Asia/Kolkata");
        let span = &p.buckets[0].span;
        assert_eq!(span.rollup.unwrap().len(), 23);
        assert_eq!(span.raw.len(), 2);
        assert_eq!((span.raw[0].end() - span.raw[0].start()).num_minutes(), 30);
    }

    fn covered(span: &SpanPlan) -> Vec<(i64, i64)> {
        let mut parts: Vec<(i64, i64)> = span
            .raw
            .iter()
            .map(|r| (r.start().timestamp_micros(), r.end().timestamp_micros()))
            .collect();
        if let Some(h) = span.rollup {
            parts.push((
                HourSpan::instant(h.start).timestamp_micros(),
                HourSpan::instant(h.end).timestamp_micros(),
            ));
        }
        parts.sort();
        parts
    }

    fn assert_partitions(span: &SpanPlan) {
        let parts = covered(span);
        assert_eq!(parts.first().unwrap().0, span.interval.start().timestamp_micros());
        assert_eq!(parts.last().unwrap().1, span.interval.end().timestamp_micros());
        for pair in parts.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "pieces must touch without overlap");
        }
    }

    proptest! {
        #[test]
        fn plans_partition_the_range_exactly(
            start in 1_700_000_000i64..1_710_000_000,
            len in 1i64..2_000_000,
            g in prop::sample::select(Granularity::ALL.to_vec()),
            tz in prop::sample::select(vec!["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe"]),
        ) {
            let s = DateTime::from_timestamp(start, 0).unwrap();
            let e = DateTime::from_timestamp(start + len, 0).unwrap();
            let p = plan(&s.to_rfc3339(), &e.to_rfc3339(), g, tz);
            assert_partitions(&p.whole);
            for b in &p.buckets {
                assert_partitions(&b.span);
            }
            for pair in p.buckets.windows(2) {
                prop_assert_eq!(pair[0].span.interval.end(), pair[1].span.interval.start());
            }
            prop_assert_eq!(p.buckets.first().unwrap().span.interval.start(), p.whole.interval.start());
            prop_assert_eq!(p.buckets.last().unwrap().span.interval.end(), p.whole.interval.end());
        }
    }
}
