//! What a cached answer is tagged with and how long it lives.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::Tag;
use crate::clock::delta;
use crate::model::Event;
use crate::query::{Query, TimeRange};

/// How fresh an answer must be, by the age of its range's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TtlTier {
    /// The range ends within `realtime_window` of now (or later).
    Realtime,
    /// The range ends within `recent_window` of now.
    Recent,
    /// Older.
    Historical,
}

/// TTL tiers by data age, and the stale window kept beyond freshness. Defaults:
/// realtime (within 1 hour of now) 30 s, recent (< 7 days) 5 min, historical 1 h; entries stay
/// usable as a labelled stale fallback for 1 hour past freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// TTL of realtime answers.
    pub realtime_ttl: Duration,
    /// TTL of recent answers.
    pub recent_ttl: Duration,
    /// TTL of historical answers.
    pub historical_ttl: Duration,
    /// How close to now a range end must be to count as realtime.
    pub realtime_window: Duration,
    /// How close to now a range end must be to count as recent.
    pub recent_window: Duration,
    /// How long past freshness an entry is kept for stale serving.
    pub stale_window: Duration,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        Self {
            realtime_ttl: Duration::from_secs(30),
            recent_ttl: Duration::from_secs(5 * 60),
            historical_ttl: Duration::from_secs(60 * 60),
            realtime_window: Duration::from_secs(60 * 60),
            recent_window: Duration::from_secs(7 * 24 * 60 * 60),
            stale_window: Duration::from_secs(60 * 60),
        }
    }
}

impl TtlPolicy {
    /// The tier of a range ending at `range_end`, seen at `now`.
    pub fn tier(&self, range_end: DateTime<Utc>, now: DateTime<Utc>) -> TtlTier {
        let age = now - range_end;
        if age < delta(self.realtime_window) {
            TtlTier::Realtime
        } else if age < delta(self.recent_window) {
            TtlTier::Recent
        } else {
            TtlTier::Historical
        }
    }

    /// The TTL of a tier.
    pub fn ttl(&self, tier: TtlTier) -> Duration {
        match tier {
            TtlTier::Realtime => self.realtime_ttl,
            TtlTier::Recent => self.recent_ttl,
            TtlTier::Historical => self.historical_ttl,
        }
    }

    /// The tags of a query's answer: the tenant tag, the UTC months the range covers whole,
    /// the UTC dates of partly covered months, and `realtime` when the range reaches into the
    /// realtime window.
    pub fn query_tags(&self, query: &Query, now: DateTime<Utc>) -> Vec<Tag> {
        self.query_tags_of(query, now).into_owned()
    }

    /// [`query_tags`](Self::query_tags), borrowed from the query where it can be: the calendar's
    /// tags are computed once per query and kept by its clones; only an answer in the realtime
    /// window needs a list of its own.
    pub fn query_tags_of<'q>(&self, query: &'q Query, now: DateTime<Utc>) -> Cow<'q, [Tag]> {
        let calendar = query.calendar_tags();
        if self.tier(query.range().end(), now) == TtlTier::Realtime {
            let mut tags = Vec::with_capacity(calendar.len() + 1);
            tags.extend_from_slice(calendar);
            tags.push(Tag::realtime());
            Cow::Owned(tags)
        } else {
            Cow::Borrowed(calendar)
        }
    }
}

/// The tags of a range's calendar: the tenant tag, the UTC months it covers whole, and the UTC
/// dates of partly covered months.
pub(crate) fn calendar_tags(range: TimeRange) -> Vec<Tag> {
    let first = range.start().date_naive();
    let last = (range.end() - TimeDelta::microseconds(1)).date_naive();
    let mut tags = vec![Tag::tenant()];
    let mut month_start = first.with_day(1).expect("day 1 exists");
    while month_start <= last {
        let next_month = month_start + chrono::Months::new(1);
        let month_end = next_month.pred_opt().expect("a month has a last day");
        if first <= month_start && month_end <= last {
            tags.push(Tag::month(month_start.year(), month_start.month()));
        } else {
            let from = first.max(month_start);
            let to = last.min(month_end);
            tags.extend(from.iter_days().take_while(|d| *d <= to).map(Tag::date));
        }
        month_start = next_month;
    }
    tags
}

/// The tags an ingested batch invalidates: each UTC date and month its events touch, and
/// `realtime`. (Never the tenant tag: that would drop every cached answer on each write.)
pub fn ingest_tags<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Tag> {
    let dates: BTreeSet<NaiveDate> = events.into_iter().map(|e| e.timestamp.date_naive()).collect();
    let months: BTreeSet<(i32, u32)> = dates.iter().map(|d| (d.year(), d.month())).collect();
    dates
        .into_iter()
        .map(Tag::date)
        .chain(months.into_iter().map(|(y, m)| Tag::month(y, m)))
        .chain([Tag::realtime()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;
    use crate::query::SummaryRequest;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn tiers_by_age_of_range_end() {
        let p = TtlPolicy::default();
        let now = utc("2024-06-10T12:00:00Z");
        assert_eq!(p.tier(utc("2024-06-10T13:00:00Z"), now), TtlTier::Realtime);
        assert_eq!(p.tier(utc("2024-06-10T11:30:00Z"), now), TtlTier::Realtime);
        assert_eq!(p.tier(utc("2024-06-05T00:00:00Z"), now), TtlTier::Recent);
        assert_eq!(p.tier(utc("2024-05-01T00:00:00Z"), now), TtlTier::Historical);
        assert_eq!(p.ttl(TtlTier::Recent), Duration::from_secs(300));
    }

    #[test]
    fn whole_months_get_one_tag_partial_months_get_dates() {
        let tenant = TenantId::parse("t").unwrap();
        let q = Query::parse(&tenant, &SummaryRequest::new("2024-01-30", "2024-03-02")).unwrap();
        let tags = TtlPolicy::default().query_tags(&q, utc("2025-01-01T00:00:00Z"));
        let text: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(
            text,
            [
                "tenant",
                "date:2024-01-30",
                "date:2024-01-31",
                "month:2024-02",
                "date:2024-03-01",
                "date:2024-03-02"
            ]
        );
    }

    #[test]
    fn every_ingested_date_invalidates_every_query_covering_it() {
        let tenant = TenantId::parse("t").unwrap();
        let q = Query::parse(&tenant, &SummaryRequest::new("2024-01-30", "2024-03-02")).unwrap();
        let policy = TtlPolicy::default();
        let query_tags = policy.query_tags(&q, utc("2025-01-01T00:00:00Z"));
        for day in utc("2024-01-30T12:00:00Z").date_naive().iter_days().take(33) {
            let event = Event::new(
                tenant.clone(),
                crate::model::EventId::parse("e").unwrap(),
                crate::model::EventType::parse("x").unwrap(),
                day.and_hms_opt(5, 0, 0).unwrap().and_utc(),
            );
            let bumped = ingest_tags([&event]);
            assert!(bumped.iter().any(|t| query_tags.contains(t)), "{day} not covered");
        }
    }
}
