//! Any JSON summary request: validation never panics, a refusal names a field, and an accepted
//! query's series is the range cut into increasing buckets that hold every event of the range
//! exactly once (the reference aggregation over events at both ends and between).

#![no_main]

use analytics_core::model::{Event, EventId, EventType, TenantId, UserId};
use analytics_core::query::{Query, SummaryRequest};
use analytics_core::reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<SummaryRequest>(data) else {
        return;
    };
    let tenant = TenantId::parse("acme").expect("a valid tenant");
    let query = match Query::parse(&tenant, &request) {
        Err(error) => {
            let field = error.field().expect("every refusal names a field");
            assert!(!field.is_empty(), "{error}");
            return;
        }
        Ok(query) => query,
    };
    let range = query.range();
    assert!(range.start() < range.end());
    let starts = query.bucket_starts();
    assert!(!starts.is_empty());
    assert!(starts[0] <= range.start(), "the first bucket holds the range's start");
    assert!(starts.windows(2).all(|pair| pair[0] < pair[1]), "buckets increase");
    assert!(*starts.last().unwrap() < range.end());

    // Events at the first and last instant of the range, its middle, and just outside it.
    let last = range.end() - chrono::TimeDelta::microseconds(1);
    let middle = range.start() + (range.end() - range.start()) / 2;
    let mut instants = vec![range.start(), middle, last, range.end()];
    if let Some(before) = range.start().checked_sub_signed(chrono::TimeDelta::microseconds(1)) {
        instants.push(before);
    }
    let events: Vec<Event> = instants
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            // The events match the request's type and user filters, so only the range decides.
            let event_type = request.event_type.clone().unwrap_or_else(|| "page_view".into());
            let mut event = Event::new(
                tenant.clone(),
                EventId::parse(format!("e{i}")).expect("a valid id"),
                EventType::parse(event_type).expect("the query accepted this type"),
                at,
            );
            event.user_id = request
                .user_id
                .clone()
                .map(|user| UserId::parse(user).expect("accepted"));
            event
        })
        .collect();
    let aggregates = reference::aggregate(&events, &query);
    let in_range = u64::try_from(instants.iter().filter(|&&at| range.contains(at)).count()).unwrap();
    let bucketed: u64 = aggregates.time_series.iter().sum();
    assert_eq!(aggregates.time_series.len(), starts.len());
    assert_eq!(
        bucketed, aggregates.total_events,
        "every counted event is in one bucket"
    );
    if request.experiment_id.is_none() {
        assert_eq!(
            aggregates.total_events, in_range,
            "exactly the range's events are counted"
        );
    }
});
