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
use foldhash::HashMapExt;
use serde::{Deserialize, Serialize};

use crate::error::corrupt;
use crate::ingest::copy::CopyRows;
use crate::sketch::UserSketch;

/// `level` of UTC-hour rows: `period` is hours since the Unix epoch.
pub(crate) const LEVEL_HOUR: i16 = 0;
/// `level` of UTC-day rows: `period` is days since the Unix epoch.
pub(crate) const LEVEL_DAY: i16 = 1;
/// `level` of UTC-week rows (Monday to Sunday): `period` is [`week_of`] a day.
pub(crate) const LEVEL_WEEK: i16 = 2;

/// The week (Monday-aligned, numbered from the one holding the epoch's Thursday) of epoch day
/// `day`.
pub(crate) fn week_of(day: i64) -> i64 {
    (day + 3).div_euclid(7)
}

/// The epoch day week `week` starts on (a Monday).
pub(crate) fn first_day_of(week: i64) -> i64 {
    week * 7 - 3
}

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

/// A period's share of a batch, borrowing from the batch's events. Counts are summed in hash
/// maps with borrowed keys as hours are added into days and days into weeks, and ordered once,
/// when the row is written; the users are listed and sketched once per row. (Ordered maps of
/// owned keys merged entry by entry, and hour sketches merged one by one into days and weeks,
/// had been a third of the server's CPU time on an HTTP ingest, profiled; the maps hash with
/// `foldhash`, as SipHash over every event's values was a visible share before that.)
#[derive(Clone)]
struct Share<'a> {
    events: u64,
    counts: foldhash::HashMap<(Dim, &'a str), u64>,
    /// Per (experiment, variant): written as [`Dim::Variant`] values.
    variants: foldhash::HashMap<(&'a str, &'a str), u64>,
    /// Every identified event's user (repeats included: the sketch ignores them).
    users: Vec<&'a str>,
}

impl<'a> Share<'a> {
    /// The share of `events`, all of one hour.
    fn of_hour(events: &[&'a Event]) -> Self {
        // At most five values per event, and far fewer distinct ones in a busy hour.
        let capacity = (events.len() * 5).min(1024);
        let mut share = Self {
            events: 0,
            counts: foldhash::HashMap::with_capacity(capacity),
            variants: foldhash::HashMap::default(),
            users: Vec::with_capacity(events.len()),
        };
        for event in events {
            share.count(event);
        }
        share
    }

    fn count(&mut self, event: &'a Event) {
        self.events += 1;
        let values = [
            (Dim::Type, Some(event.event_type.as_str())),
            (Dim::Page, event.page.as_ref().map(|v| v.as_str())),
            (Dim::Device, event.device.as_ref().map(|v| v.as_str())),
            (Dim::Browser, event.browser.as_ref().map(|v| v.as_str())),
            (Dim::Country, event.country.as_ref().map(|v| v.as_str())),
        ];
        for (dim, value) in values {
            if let Some(value) = value {
                *self.counts.entry((dim, value)).or_insert(0) += 1;
            }
        }
        if let (Some(experiment), Some(variant)) = (&event.experiment_id, &event.variant) {
            *self
                .variants
                .entry((experiment.as_str(), variant.as_str()))
                .or_insert(0) += 1;
        }
        if let Some(user) = &event.user_id {
            self.users.push(user.as_str());
        }
    }

    /// Adds another period's share (an hour's to its day's).
    fn add(&mut self, other: &Share<'a>) {
        self.events += other.events;
        for (key, n) in &other.counts {
            *self.counts.entry(*key).or_insert(0) += n;
        }
        for (key, n) in &other.variants {
            *self.variants.entry(*key).or_insert(0) += n;
        }
        self.users.extend_from_slice(&other.users);
    }

    /// Writes the row, its counts in (dimension, value) order.
    fn write(&self, rows: &mut CopyRows, tenant: &str, key: PeriodKey) {
        let variants: Vec<(String, u64)> = self
            .variants
            .iter()
            .map(|((experiment, variant), n)| (variant_value(experiment, variant), *n))
            .collect();
        let mut counts: Vec<(Dim, &str, u64)> = self
            .counts
            .iter()
            .map(|((dim, value), n)| (*dim, *value, *n))
            .chain(variants.iter().map(|(value, n)| (Dim::Variant, value.as_str(), *n)))
            .collect();
        counts.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let users = (!self.users.is_empty()).then(|| {
            let mut sketch = UserSketch::default();
            for user in &self.users {
                sketch.insert(user);
            }
            sketch
        });
        write_row(rows, tenant, key, self.events, &counts, users.as_ref());
    }
}

/// The `period_stats` rows `events` of `tenant` add: one per UTC hour, UTC day and UTC week they
/// touch (hours first, then days, then weeks, each in time order). Events are counted per hour,
/// each day's row is the sum of its hours' and each week's the sum of its days' (a third of the
/// per-event work of counting every event at every level).
pub(crate) fn batch_rows(tenant: &str, events: &[&Event]) -> (CopyRows, Vec<PeriodKey>) {
    let hour_of = |event: &&Event| HourSpan::hour_of(event.timestamp);
    // Ingestion passes its events in time order; anyone else gets them sorted here.
    let sorted: Vec<&Event>;
    let events = if events.is_sorted_by_key(hour_of) {
        events
    } else {
        sorted = {
            let mut copy = events.to_vec();
            copy.sort_by_key(hour_of);
            copy
        };
        &sorted
    };
    let hours: Vec<(i64, Share)> = events
        .chunk_by(|a, b| hour_of(a) == hour_of(b))
        .map(|run| (hour_of(&run[0]), Share::of_hour(run)))
        .collect();
    let mut days: BTreeMap<i64, Share> = BTreeMap::new();
    for (hour, share) in &hours {
        days.entry(hour.div_euclid(24))
            .and_modify(|day| day.add(share))
            .or_insert_with(|| share.clone());
    }
    let mut weeks: BTreeMap<i64, Share> = BTreeMap::new();
    for (day, share) in &days {
        weeks
            .entry(week_of(*day))
            .and_modify(|week| week.add(share))
            .or_insert_with(|| share.clone());
    }
    let periods: Vec<(PeriodKey, &Share)> = hours
        .iter()
        .map(|(hour, share)| ((LEVEL_HOUR, *hour), share))
        .chain(days.iter().map(|(day, share)| ((LEVEL_DAY, *day), share)))
        .chain(weeks.iter().map(|(week, share)| ((LEVEL_WEEK, *week), share)))
        .collect();
    let mut rows = CopyRows::with_capacity(periods.len(), 256);
    for (key, share) in &periods {
        share.write(&mut rows, tenant, *key);
    }
    (rows, periods.into_iter().map(|(key, _)| key).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::{EventId, EventType, ExperimentId, Page, TenantId, UserId, VariantKey};

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
    fn a_batch_adds_one_row_per_hour_day_and_week_and_rows_add_up() {
        let a = event("a", "2024-03-01T10:05:00Z", Some("u1"), "/x");
        let b = event("b", "2024-03-01T10:55:00Z", Some("u2"), "/x");
        let c = event("c", "2024-03-01T11:00:00Z", None, "/y");
        let (rows, keys) = batch_rows("t", &[&a, &b, &c]);
        let hour = HourSpan::hour_of(a.timestamp);
        assert_eq!(
            keys,
            [
                (LEVEL_HOUR, hour),
                (LEVEL_HOUR, hour + 1),
                (LEVEL_DAY, hour / 24),
                (LEVEL_WEEK, week_of(hour / 24))
            ]
        );
        assert_eq!(rows.len(), 4);

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
    fn a_day_row_is_the_sum_of_its_hour_rows() {
        let mut events = [
            event("a", "2024-03-01T10:05:00Z", Some("u1"), "/x"),
            event("b", "2024-03-01T10:55:00Z", Some("u2"), "/y"),
            event("c", "2024-03-01T13:00:00Z", Some("u1"), "/x"),
            event("d", "2024-03-01T13:30:00Z", None, "/z"),
            event("e", "2024-03-02T00:00:00Z", Some("u3"), "/x"),
        ];
        events[2].experiment_id = Some(ExperimentId::parse("exp").unwrap());
        events[2].variant = Some(VariantKey::parse("B").unwrap());
        let refs: Vec<&Event> = events.iter().collect();
        let (rows, keys) = batch_rows("t", &refs);
        let day = HourSpan::hour_of(events[0].timestamp).div_euclid(24);
        assert_eq!(keys.iter().filter(|k| k.0 == LEVEL_HOUR).count(), 3);
        // 2024-03-01 is a Friday: both days are in one week.
        assert_eq!(
            &keys[3..],
            [(LEVEL_DAY, day), (LEVEL_DAY, day + 1), (LEVEL_WEEK, week_of(day))]
        );

        let read = |i: usize| {
            let fields = rows.fields(i);
            let events = i64::from_be_bytes(fields[3].unwrap().try_into().unwrap());
            let counts: Vec<(Dim, String, u64)> = decode_counts(fields[4].unwrap())
                .unwrap()
                .into_iter()
                .map(|(d, v, n)| (d, v.to_owned(), n))
                .collect();
            let users = fields[5].map(|b| UserSketch::decode(b).unwrap().estimate());
            (events, counts, users)
        };
        let (events_of_day, counts, users) = read(3);
        assert_eq!(events_of_day, 4);
        assert_eq!(users, Some(2), "u1 in two hours is one user of the day");
        let variant = variant_value("exp", "B");
        let expected = [
            (Dim::Type, "view", 4),
            (Dim::Page, "/x", 2),
            (Dim::Page, "/y", 1),
            (Dim::Page, "/z", 1),
            (Dim::Variant, variant.as_str(), 1),
        ];
        let expected: Vec<(Dim, String, u64)> = expected.iter().map(|(d, v, n)| (*d, v.to_string(), *n)).collect();
        assert_eq!(counts, expected, "sorted by (dimension, value)");
        // Events out of time order give the same rows.
        let shuffled: Vec<&Event> = [4, 2, 0, 3, 1].iter().map(|i| &events[*i]).collect();
        let (rows_of_shuffled, keys_of_shuffled) = batch_rows("t", &shuffled);
        assert_eq!(keys_of_shuffled, keys);
        for i in 0..rows.len() {
            assert_eq!(rows_of_shuffled.fields(i), rows.fields(i), "row {i}");
        }
        // The hours add up to it.
        let (first_hour, second_hour) = (read(0), read(1));
        assert_eq!(first_hour.0 + second_hour.0, events_of_day);
        assert_eq!(second_hour.1.last().unwrap().0, Dim::Variant);
        assert_eq!(
            read(4),
            (
                1,
                vec![(Dim::Type, "view".into(), 1), (Dim::Page, "/x".into(), 1)],
                Some(1)
            )
        );
        // The week is the sum of its days.
        let (events_of_week, counts_of_week, users_of_week) = read(5);
        assert_eq!((events_of_week, users_of_week), (5, Some(3)));
        assert!(counts_of_week.contains(&(Dim::Page, "/x".into(), 3)));
    }

    #[test]
    fn weeks_run_monday_to_sunday() {
        let day = |date: &str| HourSpan::hour_of(format!("{date}T12:00:00Z").parse().unwrap()).div_euclid(24);
        let monday = day("2024-03-04");
        assert_eq!(first_day_of(week_of(monday)), monday);
        assert_eq!(week_of(day("2024-03-10")), week_of(monday), "Sunday");
        assert_eq!(week_of(day("2024-03-11")), week_of(monday) + 1, "the next Monday");
        assert_eq!(week_of(day("1970-01-01")), 0);
        assert_eq!(week_of(day("1969-12-28")), -1, "before the epoch");
    }

    #[test]
    fn corrupt_rows_are_backend_errors() {
        assert!(PeriodStats::default().add_row(-1, &[], None).is_err());
        assert!(decode_counts(b"\xff\xff\xff\xff\xff").is_err());
    }
}
