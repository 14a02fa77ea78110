//! Hourly and daily rollups for the in-memory store.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use roaring::RoaringBitmap;

use crate::model::{Browser, Country, Device, Event, EventType, Page};
use crate::query::HourSpan;

/// Counts of one period (or of a query's accumulation over several).
#[derive(Debug, Default, Clone)]
pub(crate) struct Rollup {
    pub(crate) total: u64,
    pub(crate) by_type: HashMap<EventType, u64>,
    pub(crate) pages: HashMap<Page, u64>,
    pub(crate) devices: HashMap<Device, u64>,
    pub(crate) browsers: HashMap<Browser, u64>,
    pub(crate) countries: HashMap<Country, u64>,
    /// Interned indexes of the distinct users seen.
    pub(crate) users: RoaringBitmap,
}

impl Rollup {
    /// Counts one event whose user (if any) has interned index `user`.
    pub(crate) fn add(&mut self, event: &Event, user: Option<u32>) {
        self.total += 1;
        bump(&mut self.by_type, &event.event_type, 1);
        if let Some(page) = &event.page {
            bump(&mut self.pages, page, 1);
        }
        if let Some(device) = &event.device {
            bump(&mut self.devices, device, 1);
        }
        if let Some(browser) = &event.browser {
            bump(&mut self.browsers, browser, 1);
        }
        if let Some(country) = &event.country {
            bump(&mut self.countries, country, 1);
        }
        if let Some(user) = user {
            self.users.insert(user);
        }
    }

    /// Adds another rollup's counts; pages, devices, browsers and countries only with `breakdowns`.
    pub(crate) fn merge(&mut self, other: &Rollup, breakdowns: bool) {
        self.total += other.total;
        for (k, n) in &other.by_type {
            bump(&mut self.by_type, k, *n);
        }
        if breakdowns {
            for (k, n) in &other.pages {
                bump(&mut self.pages, k, *n);
            }
            for (k, n) in &other.devices {
                bump(&mut self.devices, k, *n);
            }
            for (k, n) in &other.browsers {
                bump(&mut self.browsers, k, *n);
            }
            for (k, n) in &other.countries {
                bump(&mut self.countries, k, *n);
            }
        }
        self.users |= &other.users;
    }
}

fn bump<K: Clone + Eq + Hash>(map: &mut HashMap<K, u64>, key: &K, by: u64) {
    match map.get_mut(key) {
        Some(n) => *n += by,
        None => {
            map.insert(key.clone(), by);
        }
    }
}

/// Rollups per UTC hour and per UTC day, so a span of whole hours costs O(days + edge hours).
#[derive(Debug, Default)]
pub(crate) struct RollupLevels {
    hours: BTreeMap<i64, Rollup>,
    days: BTreeMap<i64, Rollup>,
}

impl RollupLevels {
    pub(crate) fn add(&mut self, event: &Event, user: Option<u32>) {
        let hour = HourSpan::hour_of(event.timestamp);
        self.hours.entry(hour).or_default().add(event, user);
        self.days.entry(hour.div_euclid(24)).or_default().add(event, user);
    }

    /// Calls `visit` with rollups that together cover `span` exactly once.
    fn cover(&self, span: HourSpan, mut visit: impl FnMut(&Rollup)) {
        let first_day = span.start.div_euclid(24) + i64::from(span.start.rem_euclid(24) != 0);
        let end_day = span.end.div_euclid(24);
        if first_day >= end_day {
            self.hours.range(span.start..span.end).for_each(|(_, r)| visit(r));
            return;
        }
        self.hours.range(span.start..first_day * 24).for_each(|(_, r)| visit(r));
        self.days.range(first_day..end_day).for_each(|(_, r)| visit(r));
        self.hours.range(end_day * 24..span.end).for_each(|(_, r)| visit(r));
    }

    /// Merges every count of `span` into `into`.
    pub(crate) fn merge_span(&self, span: HourSpan, into: &mut Rollup, breakdowns: bool) {
        self.cover(span, |r| into.merge(r, breakdowns));
    }

    /// The event count of `span`.
    pub(crate) fn total_in(&self, span: HourSpan) -> u64 {
        let mut total = 0;
        self.cover(span, |r| total += r.total);
        total
    }
}
