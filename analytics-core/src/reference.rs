//! The reference aggregation: the executable definition of every metric.
//!
//! A plain fold over raw events, written to be obviously right rather than fast. Every store is
//! tested against it on generated data by the conformance suite; a store is correct when it
//! agrees with this, not when its own tests pass.
//!
//! Definitions, for events of the query's tenant with `start <= timestamp < end` that pass the
//! filters:
//! - `total_events`: how many there are;
//! - `unique_users`: distinct non-anonymous `user_id`s (anonymous events count only in totals);
//! - `events_by_type`, `devices`: counts per value, ranked by [`rank_counts`]; events without a
//!   device are not in `devices`;
//! - `time_series`: count per bucket of [`Query::bucket_starts`] (an event belongs to the last
//!   bucket starting at or before it), every bucket present, zero-filled;
//! - `top_pages`: the [`TOP_PAGES`] pages with most events of any type, ranked;
//! - `top_pages` and `devices` are empty when the query omits breakdowns;
//! - `variants` (only when filtering on an experiment): per variant of events carrying that
//!   experiment and a variant — `events`, distinct `users`, and `conversions`: distinct users
//!   with an event of the query's conversion event type in that variant.
//!
//! [`experiment_counts`] defines the same per-variant counts over a whole experiment (every event
//! of the tenant carrying it, whatever its time), which experiment results analyse.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{Event, EventType, ExperimentId, TenantId, UserId, VariantKey};
use crate::query::{Aggregates, Query, TOP_PAGES, VariantCounts, rank_counts, time};

/// Aggregates `events` (of any tenants) for `query`, by definition.
pub fn aggregate<'a>(events: impl IntoIterator<Item = &'a Event>, query: &Query) -> Aggregates {
    let starts = query.bucket_starts();
    let mut total = 0;
    let mut users = HashSet::new();
    let mut by_type = HashMap::new();
    let mut pages = HashMap::new();
    let mut devices = HashMap::new();
    let mut browsers = HashMap::new();
    let mut countries = HashMap::new();
    let mut series = vec![0u64; starts.len()];
    let mut variants: BTreeMap<VariantKey, VariantTally> = BTreeMap::new();

    for event in events.into_iter().filter(|e| query.counts(e)) {
        total += 1;
        if let Some(user) = &event.user_id {
            users.insert(user.clone());
        }
        *by_type.entry(event.event_type.clone()).or_insert(0) += 1;
        if let Some(page) = event.page.as_ref().filter(|_| query.breakdowns()) {
            *pages.entry(page.clone()).or_insert(0) += 1;
        }
        if let Some(device) = event.device.as_ref().filter(|_| query.breakdowns()) {
            *devices.entry(device.clone()).or_insert(0) += 1;
        }
        if let Some(browser) = event.browser.as_ref().filter(|_| query.breakdowns()) {
            *browsers.entry(browser.clone()).or_insert(0) += 1;
        }
        if let Some(country) = event.country.as_ref().filter(|_| query.breakdowns()) {
            *countries.entry(country.clone()).or_insert(0) += 1;
        }
        series[time::bucket_index(starts, event.timestamp)] += 1;
        if query.filters().experiment_id.is_some()
            && let Some(variant) = &event.variant
        {
            variants
                .entry(variant.clone())
                .or_default()
                .add(event, query.conversion_event_type());
        }
    }

    Aggregates {
        total_events: total,
        unique_users: users.len() as u64,
        unique_users_approximate: false,
        events_by_type: rank_counts(by_type, None),
        time_series: series,
        top_pages: rank_counts(pages, Some(TOP_PAGES)),
        devices: rank_counts(devices, None),
        browsers: rank_counts(browsers, None),
        countries: rank_counts(countries, None),
        variants: query
            .filters()
            .experiment_id
            .as_ref()
            .map(|_| variants.into_iter().map(|(key, t)| (key, t.counts())).collect()),
    }
}

/// Per-variant counts of `experiment` over all of `tenant`'s `events`: `events` carrying the
/// experiment and a variant, distinct identified `users`, and `conversions` — distinct users with
/// an event of `conversion` in that variant.
pub fn experiment_counts<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    tenant: &TenantId,
    experiment: &ExperimentId,
    conversion: &EventType,
) -> BTreeMap<VariantKey, VariantCounts> {
    let mut variants: BTreeMap<VariantKey, VariantTally> = BTreeMap::new();
    for event in events {
        let (Some(id), Some(variant)) = (&event.experiment_id, &event.variant) else {
            continue;
        };
        if event.tenant_id == *tenant && id == experiment {
            variants.entry(variant.clone()).or_default().add(event, conversion);
        }
    }
    variants.into_iter().map(|(key, t)| (key, t.counts())).collect()
}

/// One variant's events, users, and users with a conversion event.
#[derive(Default)]
struct VariantTally {
    events: u64,
    users: HashSet<UserId>,
    converted: HashSet<UserId>,
}

impl VariantTally {
    fn add(&mut self, event: &Event, conversion: &EventType) {
        self.events += 1;
        if let Some(user) = &event.user_id {
            self.users.insert(user.clone());
            if event.event_type == *conversion {
                self.converted.insert(user.clone());
            }
        }
    }

    fn counts(self) -> VariantCounts {
        VariantCounts {
            events: self.events,
            users: self.users.len() as u64,
            conversions: self.converted.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventId, EventInput, TenantId};
    use crate::query::{Granularity, SummaryRequest};
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn event(tenant: &str, value: serde_json::Value) -> Event {
        let input: EventInput = serde_json::from_value(value).unwrap();
        let now: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        Event::from_input(input, &TenantId::parse(tenant).unwrap(), now).unwrap()
    }

    #[test]
    fn worked_example() {
        let events = vec![
            event(
                "a",
                json!({"id": "1", "userId": "u1", "eventType": "click", "page": "/", "device": "desktop", "browser": "Firefox", "country": "DE", "timestamp": "2024-01-01T10:00:00Z"}),
            ),
            event(
                "a",
                json!({"id": "2", "userId": "u1", "eventType": "view", "page": "/", "device": "mobile", "browser": "Safari", "country": "DE", "timestamp": "2024-01-02T10:00:00Z"}),
            ),
            event(
                "a",
                json!({"id": "3", "eventType": "view", "page": "/b", "timestamp": "2024-01-02T11:00:00Z"}),
            ),
            event(
                "a",
                json!({"id": "4", "userId": "u2", "eventType": "view", "timestamp": "2024-01-04T00:00:00Z"}),
            ),
            event(
                "b",
                json!({"id": "1", "userId": "u9", "eventType": "click", "timestamp": "2024-01-01T10:00:00Z"}),
            ),
        ];
        let tenant = TenantId::parse("a").unwrap();
        let query = Query::parse(
            &tenant,
            &SummaryRequest::new("2024-01-01", "2024-01-03").group_by(Granularity::Day),
        )
        .unwrap();
        let a = aggregate(&events, &query);
        assert_eq!(a.total_events, 3);
        assert_eq!(a.unique_users, 1);
        assert_eq!(a.time_series, [1, 2, 0]);
        assert_eq!(
            a.events_by_type
                .iter()
                .map(|(t, n)| (t.as_str(), *n))
                .collect::<Vec<_>>(),
            [("view", 2), ("click", 1)]
        );
        assert_eq!(
            a.top_pages.iter().map(|(p, n)| (p.as_str(), *n)).collect::<Vec<_>>(),
            [("/", 2), ("/b", 1)]
        );
        assert_eq!(a.devices.len(), 2);
        let browsers: Vec<_> = a.browsers.iter().map(|(b, n)| (b.as_str(), *n)).collect();
        assert_eq!(browsers, [("Firefox", 1), ("Safari", 1)]);
        let countries: Vec<_> = a.countries.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        assert_eq!(countries, [("DE", 2)]);
        assert!(a.variants.is_none());
        assert!(
            events
                .iter()
                .any(|e| e.id == EventId::parse("1").unwrap() && e.tenant_id.as_str() == "b")
        );
    }

    #[test]
    fn experiment_variants_count_distinct_converters() {
        let events = vec![
            event(
                "a",
                json!({"userId": "u1", "eventType": "view", "experimentId": "e", "variant": "A", "timestamp": "2024-01-01T10:00:00Z"}),
            ),
            event(
                "a",
                json!({"userId": "u1", "eventType": "CONVERSION", "experimentId": "e", "variant": "A", "timestamp": "2024-01-01T11:00:00Z"}),
            ),
            event(
                "a",
                json!({"userId": "u1", "eventType": "CONVERSION", "experimentId": "e", "variant": "A", "timestamp": "2024-01-01T12:00:00Z"}),
            ),
            event(
                "a",
                json!({"userId": "u2", "eventType": "view", "experimentId": "e", "variant": "B", "timestamp": "2024-01-01T10:00:00Z"}),
            ),
            event(
                "a",
                json!({"eventType": "CONVERSION", "experimentId": "e", "variant": "B", "timestamp": "2024-01-01T10:00:00Z"}),
            ),
            event(
                "a",
                json!({"userId": "u3", "eventType": "CONVERSION", "experimentId": "other", "variant": "B", "timestamp": "2024-01-01T10:00:00Z"}),
            ),
        ];
        let tenant = TenantId::parse("a").unwrap();
        let query = Query::parse(
            &tenant,
            &SummaryRequest::new("2024-01-01", "2024-01-01").experiment("e"),
        )
        .unwrap();
        let variants = aggregate(&events, &query).variants.unwrap();
        let a = variants[&VariantKey::parse("A").unwrap()];
        let b = variants[&VariantKey::parse("B").unwrap()];
        assert_eq!((a.events, a.users, a.conversions), (3, 1, 1));
        assert_eq!((b.events, b.users, b.conversions), (2, 1, 0));
    }
}
