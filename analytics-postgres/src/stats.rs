//! What a `period_stats` row holds: the events of one (tenant, UTC hour or day) as counted by
//! one batch — or by several, once compaction has merged their rows.
//!
//! Rows of a period add up: totals and counts sum, sketches union. So ingestion only appends
//! (no row locks, no read-modify-write of dense sketches), queries merge whatever rows a period
//! has, and compaction merges them into one without changing any answer.

use std::collections::BTreeMap;

use analytics_core::Result;
use analytics_core::model::Event;
use analytics_core::query::HourSpan;
use serde::{Deserialize, Serialize};

use crate::error::corrupt;
use crate::ingest::copy::CopyRows;
use crate::sketch::UserSketch;

/// `level` of UTC-hour rows: `period` is hours since the Unix epoch.
pub(crate) const LEVEL_HOUR: i16 = 0;
/// `level` of UTC-day rows: `period` is days since the Unix epoch.
pub(crate) const LEVEL_DAY: i16 = 1;

/// The `period_stats` columns in the order [`PeriodStats::write`] writes them.
pub(crate) const COLUMNS: &str = "tenant_id, level, period, events, counts, users";

/// A dimension counted per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Dim {
    /// Event type.
    Type,
    /// Page.
    Page,
    /// Device.
    Device,
    /// Browser.
    Browser,
    /// Country.
    Country,
    /// An experiment's variant: the value is [`variant_value`] of the two.
    Variant,
}

/// Separates experiment and variant in a [`Dim::Variant`] value (ids never contain control
/// characters).
pub(crate) const VARIANT_SEPARATOR: char = '\u{1f}';

/// The [`Dim::Variant`] value of an experiment's variant.
pub(crate) fn variant_value(experiment: &str, variant: &str) -> String {
    format!("{experiment}{VARIANT_SEPARATOR}{variant}")
}

/// A (level, period) key.
pub(crate) type PeriodKey = (i16, i64);

/// The (level, period) keys an event counts in: its UTC hour and its UTC day.
pub(crate) fn periods_of(event: &Event) -> [PeriodKey; 2] {
    let hour = HourSpan::hour_of(event.timestamp);
    [(LEVEL_HOUR, hour), (LEVEL_DAY, hour.div_euclid(24))]
}

/// The contents of several stored rows of one period, being merged into one.
#[derive(Debug, Default)]
pub(crate) struct PeriodStats {
    /// Events counted.
    pub(crate) events: u64,
    /// Events per (dimension, value).
    pub(crate) counts: BTreeMap<(Dim, String), u64>,
    /// The rows' encoded user sketches, merged at the end in one pass
    /// ([`UserSketch::union_of`]; merging sparse sketches one by one rewrites the growing list
    /// each time).
    pub(crate) users: Vec<Vec<u8>>,
}

impl PeriodStats {
    /// Adds a stored row.
    pub(crate) fn add_row(&mut self, events: i64, counts: &[u8], users: Option<&[u8]>) -> Result<()> {
        self.events += u64::try_from(events).map_err(|_| corrupt("event count", events))?;
        for (dim, value, n) in decode_counts(counts)? {
            *self.counts.entry((dim, value.to_owned())).or_insert(0) += n;
        }
        if let Some(bytes) = users {
            self.users.push(bytes.to_vec());
        }
        Ok(())
    }

    /// The merged users of the rows added, if any had users.
    pub(crate) fn merged_users(&self) -> Result<Option<UserSketch>> {
        match self.users.as_slice() {
            [] => Ok(None),
            sketches => UserSketch::union_of(sketches).map(Some),
        }
    }

    /// Writes the merged row of `tenant`'s `key` in [`COLUMNS`] order.
    pub(crate) fn write(&self, rows: &mut CopyRows, tenant: &str, (level, period): PeriodKey) -> Result<()> {
        let counts: Vec<(Dim, &str, u64)> = self.counts.iter().map(|((d, v), n)| (*d, v.as_str(), *n)).collect();
        write_row(
            rows,
            tenant,
            (level, period),
            self.events,
            &counts,
            self.merged_users()?.as_ref(),
        );
        Ok(())
    }
}

fn write_row(
    rows: &mut CopyRows,
    tenant: &str,
    (level, period): PeriodKey,
    events: u64,
    counts: &[(Dim, &str, u64)],
    users: Option<&UserSketch>,
) {
    let counts = postcard::to_allocvec(counts).expect("counts always serialize");
    let users = users.map(UserSketch::encode);
    rows.row(6, |row| {
        row.text(tenant)
            .int2(level)
            .int8(period)
            .int8(i64::try_from(events).unwrap_or(i64::MAX))
            .bytea(&counts)
            .opt_bytea(users.as_deref());
    });
}

/// The stored counts of a row, borrowing the value strings from `bytes`.
pub(crate) fn decode_counts(bytes: &[u8]) -> Result<Vec<(Dim, &str, u64)>> {
    postcard::from_bytes(bytes).map_err(|e| corrupt("period counts", e))
}

/// One period's share of a batch, borrowing from the batch's events. The maps hash with
/// `foldhash`: SipHash over every event's five values was a visible share of the client's
/// ingest time (profiled).
#[derive(Default)]
struct BatchShare<'a> {
    events: u64,
    counts: foldhash::HashMap<(Dim, &'a str), u64>,
    variants: foldhash::HashMap<(&'a str, &'a str), u64>,
    users: Vec<&'a str>,
}

/// The `period_stats` rows `events` of `tenant` add: one per UTC hour and per UTC day they touch.
pub(crate) fn batch_rows(tenant: &str, events: &[&Event]) -> (CopyRows, Vec<PeriodKey>) {
    let mut shares: BTreeMap<PeriodKey, BatchShare> = BTreeMap::new();
    for event in events {
        let values = [
            (Dim::Type, Some(event.event_type.as_str())),
            (Dim::Page, event.page.as_ref().map(|v| v.as_str())),
            (Dim::Device, event.device.as_ref().map(|v| v.as_str())),
            (Dim::Browser, event.browser.as_ref().map(|v| v.as_str())),
            (Dim::Country, event.country.as_ref().map(|v| v.as_str())),
        ];
        for key in periods_of(event) {
            let share = shares.entry(key).or_default();
            share.events += 1;
            for (dim, value) in values {
                if let Some(value) = value {
                    *share.counts.entry((dim, value)).or_insert(0) += 1;
                }
            }
            if let (Some(experiment), Some(variant)) = (&event.experiment_id, &event.variant) {
                *share
                    .variants
                    .entry((experiment.as_str(), variant.as_str()))
                    .or_insert(0) += 1;
            }
            if let Some(user) = &event.user_id {
                share.users.push(user.as_str());
            }
        }
    }
    let mut rows = CopyRows::with_capacity(shares.len(), 256);
    let keys = shares.keys().copied().collect();
    for (key, share) in shares {
        let variants: Vec<(String, u64)> = share
            .variants
            .into_iter()
            .map(|((experiment, variant), n)| (variant_value(experiment, variant), n))
            .collect();
        let mut counts: Vec<(Dim, &str, u64)> = share.counts.into_iter().map(|((d, v), n)| (d, v, n)).collect();
        counts.extend(variants.iter().map(|(v, n)| (Dim::Variant, v.as_str(), *n)));
        counts.sort_unstable();
        let users = (!share.users.is_empty()).then(|| {
            let mut sketch = UserSketch::default();
            for user in share.users {
                sketch.insert(user);
            }
            sketch
        });
        write_row(&mut rows, tenant, key, share.events, &counts, users.as_ref());
    }
    (rows, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::{EventId, EventType, Page, TenantId, UserId};

    fn event(id: &str, at: &str, user: Option<&str>, page: &str) -> Event {
        let mut e = Event::new(
            TenantId::parse("t").unwrap(),
            EventId::parse(id).unwrap(),
            EventType::parse("view").unwrap(),
            at.parse().unwrap(),
        );
        e.user_id = user.map(|u| UserId::parse(u).unwrap());
        e.page = Some(Page::parse(page).unwrap());
        e
    }

    #[test]
    fn a_batch_adds_one_row_per_hour_and_day_and_rows_add_up() {
        let a = event("a", "2024-03-01T10:05:00Z", Some("u1"), "/x");
        let b = event("b", "2024-03-01T10:55:00Z", Some("u2"), "/x");
        let c = event("c", "2024-03-01T11:00:00Z", None, "/y");
        let (rows, keys) = batch_rows("t", &[&a, &b, &c]);
        let hour = HourSpan::hour_of(a.timestamp);
        assert_eq!(
            keys,
            [(LEVEL_HOUR, hour), (LEVEL_HOUR, hour + 1), (LEVEL_DAY, hour / 24)]
        );
        assert_eq!(rows.len(), 3);

        // Two stored rows of one period merge into their sum.
        let counts = |pairs: &[(Dim, &str, u64)]| postcard::to_allocvec(pairs).unwrap();
        let mut one = UserSketch::default();
        one.insert("u1");
        let mut two = UserSketch::default();
        two.insert("u1");
        two.insert("u2");
        let mut merged = PeriodStats::default();
        merged
            .add_row(2, &counts(&[(Dim::Page, "/x", 2)]), Some(&one.encode()))
            .unwrap();
        merged
            .add_row(
                3,
                &counts(&[(Dim::Page, "/x", 1), (Dim::Type, "view", 3)]),
                Some(&two.encode()),
            )
            .unwrap();
        merged.add_row(1, &counts(&[]), None).unwrap();
        assert_eq!(merged.events, 6);
        assert_eq!(merged.counts[&(Dim::Page, "/x".to_owned())], 3);
        assert_eq!(merged.counts[&(Dim::Type, "view".to_owned())], 3);
        assert_eq!(merged.merged_users().unwrap().map(|mut s| s.estimate()), Some(2));
        assert!(PeriodStats::default().merged_users().unwrap().is_none());
    }

    #[test]
    fn corrupt_rows_are_backend_errors() {
        assert!(PeriodStats::default().add_row(-1, &[], None).is_err());
        assert!(decode_counts(b"\xff\xff\xff\xff\xff").is_err());
    }
}
