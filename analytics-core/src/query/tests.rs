//! Query parsing, bucketing and cache-key tests.

use super::*;

fn tenant() -> TenantId {
    TenantId::parse("t").unwrap()
}

#[test]
fn the_kept_cache_key_follows_every_change_of_the_query() {
    let query = Query::parse(&tenant(), &SummaryRequest::new("2024-01-01", "2024-01-31")).unwrap();
    let key = query.cache_key().clone();
    assert_eq!(key, crate::cache::CacheKey::for_query(&query));
    assert_eq!(query.clone().cache_key(), &key, "clones keep it");
    for changed in [
        query.clone().with_breakdowns(false),
        query.clone().with_exact_unique_users(true),
        query
            .clone()
            .with_conversion_event_type(EventType::parse("purchase").unwrap()),
        query.with_granularity(Granularity::Week).unwrap(),
    ] {
        assert_ne!(changed.cache_key(), &key);
        assert_eq!(changed.cache_key(), &crate::cache::CacheKey::for_query(&changed));
    }
}

#[test]
fn dates_are_whole_local_days_end_inclusive() {
    let q = Query::parse(
        &tenant(),
        &SummaryRequest::new("2024-01-01", "2024-01-31").timezone("America/New_York"),
    )
    .unwrap();
    assert_eq!(
        q.range().start(),
        "2024-01-01T05:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        q.range().end(),
        "2024-02-01T05:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(q.bucket_starts().len(), 31);
    assert_eq!(q.granularity(), Granularity::Day);
}

#[test]
fn every_bucket_is_before_the_year_10000_in_the_query_timezone() {
    let kiritimati = |start: &str, end: &str| {
        let request = SummaryRequest::new(start, end)
            .timezone("Pacific/Kiritimati")
            .group_by(Granularity::Hour);
        Query::parse(&tenant(), &request).map_err(|e| e.field().map(str::to_owned))
    };
    // The last local day, whole: its end is exclusive, so no bucket reaches 10000.
    let last_day = kiritimati("9999-12-31", "9999-12-31").unwrap();
    let zeros = Aggregates {
        time_series: vec![0; last_day.bucket_starts().len()],
        ..Aggregates::default()
    };
    let stamps: Vec<String> = SummaryBody::assemble(&zeros, &last_day)
        .time_series_data
        .into_iter()
        .map(|p| p.timestamp)
        .collect();
    assert_eq!(stamps.last().map(String::as_str), Some("9999-12-31T23:00:00+14:00"));
    // 9999-12-31T12:00Z is already 10000-01-01 at +14:00.
    assert_eq!(
        kiritimati("9999-12-31T12:00:00Z", "9999-12-31T13:00:00Z").unwrap_err(),
        Some("startDate".into())
    );
    assert_eq!(
        kiritimati("9999-12-30T00:00:00Z", "9999-12-31T12:00:00Z").unwrap_err(),
        Some("endDate".into())
    );
}

#[test]
fn instants_are_half_open() {
    let q = Query::parse(
        &tenant(),
        &SummaryRequest::new("2024-01-01T10:30:00Z", "2024-01-01T12:00:00+01:00").group_by(Granularity::Hour),
    )
    .unwrap();
    assert_eq!(
        q.range().end(),
        "2024-01-01T11:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(q.bucket_starts().len(), 1);
}

#[test]
fn bad_requests_name_the_field() {
    let base = SummaryRequest::new("2024-01-01", "2024-01-02");
    let cases = [
        (
            SummaryRequest {
                start_date: None,
                ..base.clone()
            },
            "startDate",
        ),
        (
            SummaryRequest {
                end_date: Some("2024-13-01".into()),
                ..base.clone()
            },
            "endDate",
        ),
        (SummaryRequest::new("2024-01-05", "2024-01-01"), "endDate"),
        (
            SummaryRequest {
                group_by: Some("year".into()),
                ..base.clone()
            },
            "groupBy",
        ),
        (
            SummaryRequest {
                timezone: Some("Mars/Olympus".into()),
                ..base.clone()
            },
            "timezone",
        ),
        (
            SummaryRequest {
                event_type: Some("a b".into()),
                ..base.clone()
            },
            "eventType",
        ),
        (
            SummaryRequest {
                experiment_id: Some(String::new()),
                ..base.clone()
            },
            "experimentId",
        ),
        (SummaryRequest::new("1969-01-01", "2024-01-01"), "startDate"),
        (
            SummaryRequest::new("2020-01-01", "2024-01-01").group_by(Granularity::Hour),
            "groupBy",
        ),
    ];
    for (request, field) in cases {
        let err = Query::parse(&tenant(), &request).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
            "{request:?}: {err}"
        );
    }
}

#[test]
fn canonical_text_ignores_spelling() {
    let a = Query::parse(&tenant(), &SummaryRequest::new("2024-01-01", "2024-01-31")).unwrap();
    let b = Query::parse(
        &tenant(),
        &SummaryRequest::new("2024-01-01T00:00:00Z", "2024-02-01T00:00:00+00:00").group_by(Granularity::Day),
    )
    .unwrap();
    assert_eq!(a.canonical(), b.canonical());
    let c = a.with_granularity(Granularity::Week).unwrap();
    assert_ne!(a.canonical(), c.canonical());
}
