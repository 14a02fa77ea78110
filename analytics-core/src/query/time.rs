//! Calendar arithmetic in a query's timezone.
//!
//! A time series is a list of bucket starts; an instant belongs to the last bucket starting at or
//! before it. Every store and the reference use [`bucket_starts`] and [`bucket_index`], so they
//! agree by construction even across DST gaps, repeated hours and zones with 30- or 45-minute
//! offsets.
//!
//! Conventions: a day, week (ISO, Monday) or month starts at the *earliest* instant of its local
//! midnight; an hour that occurs twice (DST fall-back) is two buckets; a local time skipped by a
//! DST gap starts at the first instant after the gap.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::Granularity;
use crate::error::{Error, Result};

/// The instant a local date begins in `tz`.
pub fn local_day_start(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    resolve(tz, date.and_time(chrono::NaiveTime::MIN), None)
}

/// The start of the unit (hour, day, ISO week, month) containing `t`, in `tz`.
pub fn unit_start(t: DateTime<Utc>, granularity: Granularity, tz: Tz) -> DateTime<Utc> {
    let local = t.with_timezone(&tz).naive_local();
    let truncated = truncate(local, granularity);
    let prefer_latest = (granularity == Granularity::Hour).then_some(t);
    resolve(tz, truncated, prefer_latest)
}

/// An upper bound on the number of buckets of a series over `[start, end)`, computed without
/// calendar arithmetic. It assumes no bucket is shorter than half its nominal unit (an hour of
/// 30 minutes after a half-hour DST shift, as on Lord Howe Island, is the shortest in tzdb's
/// modern rules); the two extra buckets are the partial units at each end.
pub fn bucket_count_bound(start: DateTime<Utc>, end: DateTime<Utc>, granularity: Granularity) -> usize {
    let half_unit_secs: i64 = match granularity {
        Granularity::Hour => 30 * 60,
        Granularity::Day => 12 * 3600,
        Granularity::Week => 7 * 12 * 3600,
        Granularity::Month => 14 * 24 * 3600,
    };
    let span = (end - start).num_seconds().max(0);
    usize::try_from(span / half_unit_secs)
        .unwrap_or(usize::MAX)
        .saturating_add(2)
}

/// The bucket starts of a series over `[start, end)`: the first is the start of the unit
/// containing `start`, and each later one lies before `end`.
///
/// # Errors
/// [`Error::InvalidInput`] on `groupBy` when there would be more than `max_buckets` buckets.
pub fn bucket_starts(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    granularity: Granularity,
    tz: Tz,
    max_buckets: usize,
) -> Result<Vec<DateTime<Utc>>> {
    let mut starts = vec![unit_start(start, granularity, tz)];
    let too_many = || {
        Error::invalid(
            "groupBy",
            format!(
                "the range holds more than {max_buckets} {} buckets; choose a coarser granularity or a shorter range",
                granularity.as_str()
            ),
        )
    };
    match granularity {
        // UTC has no offsets to look up: every hour starts an hour after the last (the general
        // loop's time-zone arithmetic was most of planning 90 days by hour, profiled).
        Granularity::Hour if tz == Tz::UTC => loop {
            let next = *starts.last().expect("starts is never empty") + Duration::hours(1);
            if next >= end {
                break;
            }
            if starts.len() == max_buckets {
                return Err(too_many());
            }
            starts.push(next);
        },
        Granularity::Hour => loop {
            let last = *starts.last().expect("starts is never empty");
            let next = next_hour_start(last, tz);
            if next >= end {
                break;
            }
            if starts.len() == max_buckets {
                return Err(too_many());
            }
            starts.push(next);
        },
        _ => {
            let mut naive = truncate(start.with_timezone(&tz).naive_local(), granularity);
            loop {
                naive = add_unit(naive, granularity);
                let next = resolve(tz, naive, None);
                if next >= end {
                    break;
                }
                // A unit swallowed whole by a DST gap resolves to the next unit's start.
                if next > *starts.last().expect("starts is never empty") {
                    if starts.len() == max_buckets {
                        return Err(too_many());
                    }
                    starts.push(next);
                }
            }
        }
    }
    Ok(starts)
}

/// The index of the bucket containing `t`: the last start at or before it (0 for instants
/// before the first start).
pub fn bucket_index(starts: &[DateTime<Utc>], t: DateTime<Utc>) -> usize {
    starts.partition_point(|s| *s <= t).saturating_sub(1)
}

fn truncate(local: NaiveDateTime, granularity: Granularity) -> NaiveDateTime {
    let date = local.date();
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN);
    match granularity {
        Granularity::Hour => midnight(date) + Duration::hours(i64::from(local.hour())),
        Granularity::Day => midnight(date),
        Granularity::Week => midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday()))),
        Granularity::Month => midnight(date.with_day(1).expect("day 1 exists")),
    }
}

fn add_unit(naive: NaiveDateTime, granularity: Granularity) -> NaiveDateTime {
    match granularity {
        Granularity::Hour => naive + Duration::hours(1),
        Granularity::Day => naive + Duration::days(1),
        Granularity::Week => naive + Duration::weeks(1),
        Granularity::Month => naive
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(NaiveDateTime::MAX),
    }
}

/// The next local-hour boundary after `start`. Probing forward copes with hours of 30 or 90
/// minutes (Lord Howe's half-hour DST).
fn next_hour_start(start: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let mut probe = start + Duration::hours(1);
    loop {
        let candidate = unit_start(probe, Granularity::Hour, tz);
        if candidate > start {
            return candidate;
        }
        probe += Duration::minutes(15);
    }
}

/// The instant of local time `naive` in `tz`. Ambiguous times resolve to the earlier instant,
/// or to the later one when it is not after `latest_not_after`; a time inside a DST gap
/// resolves to the first instant after the gap.
fn resolve(tz: Tz, naive: NaiveDateTime, latest_not_after: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, later) => {
            let later = later.with_timezone(&Utc);
            match latest_not_after {
                Some(limit) if later <= limit => later,
                _ => earlier.with_timezone(&Utc),
            }
        }
        LocalResult::None => first_instant_at_or_after(tz, naive),
    }
}

/// The earliest instant whose local time in `tz` is at or after `naive`, by bisection over
/// seconds (offsets lie within ±15 hours, so the answer is within that window).
fn first_instant_at_or_after(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let base = naive.and_utc().timestamp();
    let local_at = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .expect("within chrono's range")
            .with_timezone(&tz)
            .naive_local()
    };
    let (mut before, mut after) = (base - 15 * 3600, base + 15 * 3600);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if local_at(mid) >= naive {
            after = mid;
        } else {
            before = mid;
        }
    }
    DateTime::from_timestamp(after, 0).expect("within chrono's range")
}

/// The calendar year of `t` in `tz`.
pub fn local_year(t: DateTime<Utc>, tz: Tz) -> i32 {
    t.with_timezone(&tz).year()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn starts(start: &str, end: &str, g: Granularity, tz: Tz) -> Vec<String> {
        bucket_starts(utc(start), utc(end), g, tz, 10_000)
            .unwrap()
            .into_iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    #[test]
    fn utc_hours_take_the_short_way_to_the_same_starts() {
        // `Etc/UTC` is the same zone under another name, planned the general way.
        for (start, end) in [
            ("2024-03-10T10:37:00Z", "2024-03-14T02:00:00Z"),
            ("2024-03-10T00:00:00Z", "2024-03-10T00:00:01Z"),
        ] {
            assert_eq!(
                starts(start, end, Granularity::Hour, Tz::UTC),
                starts(start, end, Granularity::Hour, Tz::Etc__UTC)
            );
        }
        assert!(
            bucket_starts(
                utc("2024-01-01T00:00:00Z"),
                utc("2024-01-02T00:00:00Z"),
                Granularity::Hour,
                Tz::UTC,
                23
            )
            .is_err()
        );
    }

    #[test]
    fn utc_days_and_months() {
        assert_eq!(
            starts(
                "2024-01-30T00:00:00Z",
                "2024-02-02T00:00:00Z",
                Granularity::Day,
                Tz::UTC
            ),
            [
                "2024-01-30T00:00:00+00:00",
                "2024-01-31T00:00:00+00:00",
                "2024-02-01T00:00:00+00:00"
            ]
        );
        assert_eq!(
            starts(
                "2024-01-15T00:00:00Z",
                "2024-03-01T00:00:00Z",
                Granularity::Month,
                Tz::UTC
            ),
            ["2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00"]
        );
    }

    #[test]
    fn iso_weeks_start_on_monday() {
        // 2024-01-03 is a Wednesday; its ISO week starts Monday 2024-01-01.
        assert_eq!(
            starts(
                "2024-01-03T00:00:00Z",
                "2024-01-09T00:00:00Z",
                Granularity::Week,
                Tz::UTC
            ),
            ["2024-01-01T00:00:00+00:00", "2024-01-08T00:00:00+00:00"]
        );
    }

    #[test]
    fn dst_spring_forward_day_is_23_hours() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let s = bucket_starts(
            utc("2024-03-30T12:00:00Z"),
            utc("2024-04-01T00:00:00Z"),
            Granularity::Day,
            tz,
            100,
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1], utc("2024-03-30T23:00:00Z"));
        assert_eq!(s[2], utc("2024-03-31T22:00:00Z"));
        assert_eq!((s[2] - s[1]).num_hours(), 23);
    }

    #[test]
    fn repeated_hour_is_two_buckets() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 2024-11-03 01:00 local happens at 05:00Z (EDT) and 06:00Z (EST).
        let s = bucket_starts(
            utc("2024-11-03T04:00:00Z"),
            utc("2024-11-03T08:00:00Z"),
            Granularity::Hour,
            tz,
            100,
        )
        .unwrap();
        assert_eq!(
            s,
            [
                utc("2024-11-03T04:00:00Z"),
                utc("2024-11-03T05:00:00Z"),
                utc("2024-11-03T06:00:00Z"),
                utc("2024-11-03T07:00:00Z")
            ]
        );
        assert_eq!(bucket_index(&s, utc("2024-11-03T06:30:00Z")), 2);
    }

    #[test]
    fn half_hour_offsets_and_lord_howe() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            local_day_start(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), kolkata),
            utc("2023-12-31T18:30:00Z")
        );
        let lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
        // DST starts 2024-10-06 02:00 local (+10:30) → 02:30 (+11:00): the 02 hour is 30 minutes.
        let s = bucket_starts(
            utc("2024-10-05T14:30:00Z"),
            utc("2024-10-05T16:30:00Z"),
            Granularity::Hour,
            lord_howe,
            100,
        )
        .unwrap();
        assert_eq!(
            s,
            [
                utc("2024-10-05T14:30:00Z"),
                utc("2024-10-05T15:30:00Z"),
                utc("2024-10-05T16:00:00Z")
            ]
        );
    }

    #[test]
    fn gap_at_midnight_starts_the_day_after_the_gap() {
        // America/Santiago springs forward at 00:00 → 01:00 on 2024-09-08.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let start = local_day_start(NaiveDate::from_ymd_opt(2024, 9, 8).unwrap(), tz);
        assert_eq!(
            start.with_timezone(&tz).naive_local().to_string(),
            "2024-09-08 01:00:00"
        );
    }

    #[test]
    fn bucket_cap_is_enforced() {
        let err = bucket_starts(
            utc("2024-01-01T00:00:00Z"),
            utc("2024-02-01T00:00:00Z"),
            Granularity::Hour,
            Tz::UTC,
            100,
        )
        .unwrap_err();
        assert!(err.to_string().contains("groupBy"), "{err}");
    }

    proptest::proptest! {
        /// The cheap bound `Query::new` trusts must never be below the real count, in any zone.
        #[test]
        fn bucket_count_bound_is_never_below_the_count(
            zone in 0..chrono_tz::TZ_VARIANTS.len(),
            start in 0i64..2_000_000_000,
            hours in 0i64..20_000,
            g in 0..4usize,
        ) {
            let tz = chrono_tz::TZ_VARIANTS[zone];
            let granularity = Granularity::ALL[g];
            let start = DateTime::from_timestamp(start, 0).unwrap();
            let end = start + Duration::hours(hours);
            let count = bucket_starts(start, end, granularity, tz, usize::MAX).unwrap().len();
            proptest::prop_assert!(bucket_count_bound(start, end, granularity) >= count);
        }
    }
}
