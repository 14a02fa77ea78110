//! Any JSON body as one event: validation never panics, a refusal names a field, and an accepted
//! event, written back out as the API lists it, is accepted again as the same event (what a
//! store returns is valid input).

#![no_main]

use analytics_core::model::{Event, EventInput, TenantId};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<EventInput>(data) else {
        return;
    };
    let tenant = TenantId::parse("acme").expect("a valid tenant");
    let now: DateTime<Utc> = "2024-06-01T12:00:00Z".parse().expect("a valid instant");
    match Event::from_input(input, &tenant, now) {
        Err(error) => {
            let field = error.field().expect("every refusal names a field");
            assert!(!field.is_empty(), "{error}");
        }
        Ok(event) => {
            let listed = serde_json::to_value(&event).expect("an event serializes");
            let input: EventInput = serde_json::from_value(listed).expect("a listed event is an input");
            let again = Event::from_input(input, &tenant, now).expect("a listed event is valid");
            assert_eq!(again, event);
        }
    }
});
