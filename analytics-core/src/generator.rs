//! A seeded generator of realistic multi-tenant events, for demos, benchmarks and load tests.
//!
//! The same seed and settings always produce the same events (within one version of `rand`).
//! Traffic has a daily rhythm and quieter weekends, pages and users are Zipf-skewed, about 10%
//! of events are anonymous, and one running experiment splits half of the users between
//! `control` and `treatment`, the treatment converting better.
//!
//! [`GeneratorConfig::new`] is a small shop (60 short paths, 6 event types, 3 device classes);
//! [`GeneratorConfig::site`] is shaped like a real site's traffic, for benchmarks: 500 pages
//! given as full URLs, 50,000 users, 8 event types, 4 device classes.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::model::{
    Browser, Country, Device, Event, EventId, EventType, ExperimentId, Page, TenantId, UserId, VariantKey,
};

/// The experiment the generator runs.
pub const EXPERIMENT_ID: &str = "exp_checkout";

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// RNG seed.
    pub seed: u64,
    /// Tenants; events are spread over them, the first getting the most.
    pub tenants: Vec<TenantId>,
    /// How many events in all.
    pub events: usize,
    /// The first instant.
    pub start: DateTime<Utc>,
    /// How many days after `start` events span.
    pub days: u32,
    /// Distinct users per tenant.
    pub users_per_tenant: u32,
    /// Distinct pages (at least 1).
    pub pages: usize,
    /// With an origin (`https://shop.example.com`), pages are full URLs on it, some with a query
    /// string, as browsers report them; without one, paths (`/pricing`).
    pub page_origin: Option<String>,
    /// Which event types and device classes events get.
    pub labels: LabelSet,
}

/// The event types and device classes a generator picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSet {
    /// `page_view`, `click`, `scroll`, `add_to_cart`, `signup`, `CONVERSION`; desktop, mobile,
    /// tablet.
    Compact,
    /// Compact's, plus `search` and `purchase`, and `tv` devices.
    Site,
}

impl GeneratorConfig {
    /// `events` events over the `days` days before `end`, for three tenants (`acme`, `globex`,
    /// `initech`), 20,000 users each.
    pub fn new(seed: u64, events: usize, end: DateTime<Utc>, days: u32) -> Self {
        Self {
            seed,
            tenants: ["acme", "globex", "initech"]
                .map(|t| TenantId::parse(t).expect("valid id"))
                .to_vec(),
            events,
            start: end - TimeDelta::days(i64::from(days)),
            days,
            users_per_tenant: 20_000,
            pages: 60,
            page_origin: None,
            labels: LabelSet::Compact,
        }
    }

    /// `events` events over the 90 days before `end`, shaped like a real site's: 500 pages as
    /// full URLs on `https://shop.example.com`, 50,000 users per tenant, 8 event types, 4 device
    /// classes, 4 browsers; the same three tenants as [`new`](Self::new).
    pub fn site(seed: u64, events: usize, end: DateTime<Utc>) -> Self {
        Self {
            users_per_tenant: 50_000,
            pages: 500,
            page_origin: Some("https://shop.example.com".to_owned()),
            labels: LabelSet::Site,
            ..Self::new(seed, events, end, 90)
        }
    }
}

const EVENT_TYPES: [(&str, u32); 6] = [
    ("page_view", 520),
    ("click", 270),
    ("scroll", 120),
    ("add_to_cart", 50),
    ("signup", 15),
    ("CONVERSION", 25),
];
const SITE_EVENT_TYPES: [(&str, u32); 8] = [
    ("page_view", 480),
    ("click", 250),
    ("scroll", 110),
    ("search", 60),
    ("add_to_cart", 45),
    ("signup", 15),
    ("purchase", 15),
    ("CONVERSION", 25),
];
const DEVICES: [(&str, u32); 3] = [("desktop", 55), ("mobile", 38), ("tablet", 7)];
const SITE_DEVICES: [(&str, u32); 4] = [("desktop", 53), ("mobile", 38), ("tablet", 7), ("tv", 2)];
const BROWSERS: [(&str, u32); 4] = [("Chrome", 64), ("Safari", 20), ("Firefox", 9), ("Edge", 7)];
const COUNTRIES: [(&str, u32); 6] = [("US", 40), ("DE", 14), ("GB", 12), ("IN", 14), ("BR", 10), ("JP", 10)];
const SECTIONS: [&str; 8] = [
    "landing", "pricing", "docs", "blog", "product", "checkout", "account", "support",
];

/// An iterator of generated events.
#[derive(Debug)]
pub struct EventGenerator {
    config: GeneratorConfig,
    rng: StdRng,
    produced: usize,
    tenant_weights: WeightedIndex<f64>,
    user_weights: WeightedIndex<f64>,
    page_weights: WeightedIndex<f64>,
    pages: Vec<Page>,
    hour_weights: WeightedIndex<f64>,
    event_types: Labels<EventType>,
    devices: Labels<Device>,
    browsers: Labels<Browser>,
    countries: Labels<Country>,
    experiment: ExperimentId,
    variants: [VariantKey; 2],
}

#[derive(Debug)]
struct Labels<T> {
    values: Vec<T>,
    weights: WeightedIndex<u32>,
}

impl<T: Clone> Labels<T> {
    fn new(table: &[(&str, u32)], parse: fn(&str) -> crate::Result<T>) -> Self {
        Self {
            values: table.iter().map(|(v, _)| parse(v).expect("valid label")).collect(),
            weights: WeightedIndex::new(table.iter().map(|(_, w)| *w)).expect("positive weights"),
        }
    }

    fn pick(&self, rng: &mut StdRng) -> T {
        self.values[self.weights.sample(rng)].clone()
    }
}

fn zipf(n: usize, exponent: f64) -> WeightedIndex<f64> {
    WeightedIndex::new((1..=n).map(|k| 1.0 / (k as f64).powf(exponent))).expect("positive weights")
}

/// Page `i`: the home page, then each section's index, then numbered pages in each section;
/// on an origin, full URLs, every seventh with a campaign query string.
fn page(i: usize, origin: Option<&str>) -> String {
    let section = SECTIONS[i % SECTIONS.len()];
    let path = match i {
        0 => "/".to_owned(),
        i if i < SECTIONS.len() => format!("/{section}"),
        i => format!("/{section}/{}", i / SECTIONS.len()),
    };
    match origin {
        None => path,
        Some(origin) if i % 7 == 6 => format!("{origin}{path}?utm_source=newsletter&utm_campaign=c{}", i % 5),
        Some(origin) => format!("{origin}{path}"),
    }
}

impl EventGenerator {
    /// A generator for `config`.
    ///
    /// # Panics
    /// If `config.tenants` is empty, or `users_per_tenant` or `pages` is 0.
    pub fn new(config: GeneratorConfig) -> Self {
        assert!(
            !config.tenants.is_empty() && config.users_per_tenant > 0 && config.pages > 0,
            "need tenants, users and pages"
        );
        let pages: Vec<Page> = (0..config.pages)
            .map(|i| Page::parse(page(i, config.page_origin.as_deref())).expect("valid page"))
            .collect();
        let (event_types, devices): (&[_], &[_]) = match config.labels {
            LabelSet::Compact => (&EVENT_TYPES, &DEVICES),
            LabelSet::Site => (&SITE_EVENT_TYPES, &SITE_DEVICES),
        };
        // Busiest mid-afternoon UTC, quietest before dawn.
        let hour_weights =
            WeightedIndex::new((0..24).map(|h: i32| 1.0 + 2.0 * (-(f64::from(h - 15).powi(2)) / 30.0).exp()))
                .expect("positive");
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            produced: 0,
            tenant_weights: zipf(config.tenants.len(), 1.0),
            user_weights: zipf(config.users_per_tenant as usize, 0.8),
            page_weights: zipf(pages.len(), 1.1),
            pages,
            hour_weights,
            event_types: Labels::new(event_types, |v| EventType::parse(v)),
            devices: Labels::new(devices, |v| Device::parse(v)),
            browsers: Labels::new(&BROWSERS, |v| Browser::parse(v)),
            countries: Labels::new(&COUNTRIES, |v| Country::parse(v)),
            experiment: ExperimentId::parse(EXPERIMENT_ID).expect("valid id"),
            variants: [
                VariantKey::parse("control").expect("valid"),
                VariantKey::parse("treatment").expect("valid"),
            ],
            config,
        }
    }

    fn timestamp(&mut self) -> DateTime<Utc> {
        loop {
            // Day `days` holds the partial day up to the window's end (rejected past it below).
            let day = self.rng.random_range(0..=self.config.days);
            let date = self.config.start + TimeDelta::days(i64::from(day));
            // Weekends carry 60% of a weekday's traffic.
            let weekend = matches!(
                chrono::Datelike::weekday(&date),
                chrono::Weekday::Sat | chrono::Weekday::Sun
            );
            if weekend && self.rng.random_bool(0.4) {
                continue;
            }
            let hour = self.hour_weights.sample(&mut self.rng) as i64;
            let micros = self.rng.random_range(0..3_600_000_000i64);
            let midnight = date
                .with_hour(0)
                .and_then(|d| d.with_minute(0))
                .and_then(|d| d.with_second(0))
                .and_then(|d| d.with_nanosecond(0))
                .expect("valid");
            let t = midnight + TimeDelta::hours(hour) + TimeDelta::microseconds(micros);
            if t >= self.config.start && t < self.config.start + TimeDelta::days(i64::from(self.config.days)) {
                return t;
            }
        }
    }
}

impl Iterator for EventGenerator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.produced == self.config.events {
            return None;
        }
        let n = self.produced;
        self.produced += 1;
        let tenant = self.config.tenants[self.tenant_weights.sample(&mut self.rng)].clone();
        let id = EventId::parse(format!("g{}-{n}", self.config.seed)).expect("valid id");
        let mut event_type = self.event_types.pick(&mut self.rng);
        let timestamp = self.timestamp();
        let mut event = Event::new(tenant, id, event_type.clone(), timestamp);
        let anonymous = self.rng.random_bool(0.1);
        let user_index = self.user_weights.sample(&mut self.rng);
        if !anonymous {
            event.user_id = Some(UserId::parse(format!("user-{user_index}")).expect("valid"));
            event.session_id = Some(
                crate::model::SessionId::parse(format!("s-{user_index}-{}", timestamp.format("%j"))).expect("valid"),
            );
            // Half of the users are in the experiment, split by a fixed hash of the user.
            let bucket = (user_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
            if bucket < 8 {
                let variant = &self.variants[(bucket % 2) as usize];
                // The treatment converts about 30% more often.
                if event_type.as_str() != "CONVERSION" && bucket % 2 == 1 && self.rng.random_bool(0.008) {
                    event_type = EventType::conversion();
                    event.event_type = event_type.clone();
                }
                event.experiment_id = Some(self.experiment.clone());
                event.variant = Some(variant.clone());
            }
        }
        event.page = Some(self.pages[self.page_weights.sample(&mut self.rng)].clone());
        event.device = Some(self.devices.pick(&mut self.rng));
        event.browser = Some(self.browsers.pick(&mut self.rng));
        event.country = Some(self.countries.pick(&mut self.rng));
        if event_type.as_str() == "CONVERSION" {
            let mut properties = Map::new();
            properties.insert("value".into(), Value::from(self.rng.random_range(5..500)));
            event.properties = properties.into();
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_within_the_window() {
        let end: DateTime<Utc> = "2024-04-01T00:00:00Z".parse().unwrap();
        let config = GeneratorConfig::new(7, 2000, end, 30);
        let a: Vec<Event> = EventGenerator::new(config.clone()).collect();
        let b: Vec<Event> = EventGenerator::new(config.clone()).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2000);
        assert!(a.iter().all(|e| e.timestamp >= config.start && e.timestamp < end));
        assert!(a.iter().any(|e| e.experiment_id.is_some()));
        assert!(a.iter().any(|e| e.user_id.is_none()));
        let other: Vec<Event> = EventGenerator::new(GeneratorConfig { seed: 8, ..config }).collect();
        assert_ne!(a, other);
    }

    #[test]
    fn the_site_shape_has_many_full_url_pages_and_every_label() {
        use std::collections::HashSet;
        let end: DateTime<Utc> = "2024-04-01T00:00:00Z".parse().unwrap();
        let events: Vec<Event> = EventGenerator::new(GeneratorConfig::site(3, 100_000, end)).collect();
        let distinct = |f: fn(&Event) -> Option<String>| events.iter().filter_map(f).collect::<HashSet<_>>();
        let pages = distinct(|e| e.page.as_ref().map(|p| p.to_string()));
        assert!(pages.len() > 400 && pages.len() <= 500, "{} pages", pages.len());
        assert!(pages.iter().all(|p| p.starts_with("https://shop.example.com/")));
        assert!(pages.iter().any(|p| p.contains("?utm_source=")));
        assert_eq!(distinct(|e| Some(e.event_type.to_string())).len(), 8);
        assert_eq!(distinct(|e| e.device.as_ref().map(|d| d.to_string())).len(), 4);
        assert_eq!(distinct(|e| e.browser.as_ref().map(|b| b.to_string())).len(), 4);
        let users = distinct(|e| e.user_id.as_ref().map(|u| u.to_string()));
        assert!(users.len() > 20_000, "{} users", users.len());
        let first = events.iter().map(|e| e.timestamp).min().unwrap();
        assert!(end - first > TimeDelta::days(89), "spans 90 days");
    }
}
