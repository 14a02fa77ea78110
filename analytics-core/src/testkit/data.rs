//! Generated multi-tenant datasets and queries.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use crate::model::{
    Browser, Country, Device, Event, EventId, EventType, ExperimentId, Page, TenantId, UserId, VariantKey,
};
use crate::query::{Granularity, Query, SummaryRequest};
use crate::store::AppendOutcome;

const HOUR_MICROS: i64 = 3_600_000_000;
const DAYS: i64 = 8;
/// Tenants with events; one more (index `TENANTS`) never has any.
const TENANTS: usize = 3;
const EVENT_TYPES: [&str; 5] = ["page_view", "click", "signup", "CONVERSION", "purchase"];
const TIMEZONES: [&str; 7] = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
];
/// Windows around DST changes (Europe 2024-03-31, US 2024-11-03).
const BASES: [&str; 2] = ["2024-03-28T00:00:00Z", "2024-10-31T00:00:00Z"];

/// One generated event, by indexes into small pools so values collide often.
#[derive(Debug, Clone)]
struct EventSpec {
    id: u16,
    offset_micros: i64,
    user: Option<u8>,
    event_type: u8,
    page: Option<u8>,
    device: Option<u8>,
    browser: Option<u8>,
    country: Option<u8>,
    experiment: Option<(u8, Option<u8>)>,
}

/// A batch for one tenant, possibly sent twice (a retry).
#[derive(Debug, Clone)]
struct BatchSpec {
    tenant: usize,
    events: Vec<EventSpec>,
    retried: bool,
}

/// A generated dataset: batches over three tenants in an 8-day window.
#[derive(Debug, Clone)]
pub struct Dataset {
    base: usize,
    batches: Vec<BatchSpec>,
}

/// The tenant names one case uses, unique to it.
#[derive(Debug, Clone)]
pub struct CaseNames {
    /// `TENANTS` tenants with events and one without.
    pub tenants: Vec<TenantId>,
}

impl CaseNames {
    /// Fresh names for a new case.
    pub fn fresh() -> Self {
        let (prefix, case) = (super::run_prefix(), super::next_case());
        Self {
            tenants: (0..=TENANTS)
                .map(|i| TenantId::parse(format!("tk-{prefix}-{case}-{i}")).expect("valid"))
                .collect(),
        }
    }
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let offset = prop_oneof![
        (0..DAYS * 24).prop_map(|h| h * HOUR_MICROS),
        (0..DAYS * 24 * 60).prop_map(|m| m * 60_000_000),
        0..DAYS * 24 * HOUR_MICROS,
    ];
    (
        0u16..300,
        offset,
        prop::option::weighted(0.85, 0u8..15),
        0u8..EVENT_TYPES.len() as u8,
        prop::option::weighted(0.8, 0u8..14),
        prop::option::weighted(0.8, 0u8..3),
        prop::option::weighted(0.7, 0u8..4),
        prop::option::weighted(0.6, 0u8..5),
        prop::option::weighted(0.4, (0u8..2, prop::option::weighted(0.9, 0u8..3))),
    )
        .prop_map(
            |(id, offset_micros, user, event_type, page, device, browser, country, experiment)| EventSpec {
                id,
                offset_micros,
                user,
                event_type,
                page,
                device,
                browser,
                country,
                experiment,
            },
        )
}

impl Dataset {
    /// Strategy: up to 12 batches of up to 40 events.
    pub fn strategy() -> impl Strategy<Value = Self> {
        let batch = (
            0..TENANTS,
            prop::collection::vec(event_spec(), 1..40),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(tenant, events, retried)| BatchSpec {
                tenant,
                events,
                retried,
            });
        (0..BASES.len(), prop::collection::vec(batch, 0..12)).prop_map(|(base, batches)| Self { base, batches })
    }

    /// The start of the window.
    pub fn base(&self) -> DateTime<Utc> {
        BASES[self.base].parse().expect("valid base")
    }

    /// The batches as events, with the tenant each is for and whether it is sent twice.
    pub fn batches(&self, names: &CaseNames) -> Vec<(TenantId, Vec<Event>, bool)> {
        self.batches
            .iter()
            .map(|b| {
                let tenant = &names.tenants[b.tenant];
                (
                    tenant.clone(),
                    b.events.iter().map(|e| self.event(tenant, e)).collect(),
                    b.retried,
                )
            })
            .collect()
    }

    fn event(&self, tenant: &TenantId, spec: &EventSpec) -> Event {
        let timestamp = self.base() + TimeDelta::microseconds(spec.offset_micros);
        let event_type = EventType::parse(EVENT_TYPES[spec.event_type as usize]).expect("valid");
        let mut event = Event::new(
            tenant.clone(),
            EventId::parse(format!("e{}", spec.id)).expect("valid"),
            event_type,
            timestamp,
        );
        event.user_id = spec.user.map(|u| UserId::parse(format!("user {u}")).expect("valid"));
        event.page = spec.page.map(|p| Page::parse(format!("/page/{p}")).expect("valid"));
        event.device = spec
            .device
            .map(|d| Device::parse(["desktop", "mobile", "tablet"][d as usize]).expect("valid"));
        event.browser = spec
            .browser
            .map(|b| Browser::parse(["Chrome", "Firefox", "Safari", "Edge"][b as usize]).expect("valid"));
        event.country = spec
            .country
            .map(|c| Country::parse(["US", "DE", "FR", "JP", "BR"][c as usize]).expect("valid"));
        if let Some((experiment, variant)) = spec.experiment {
            event.experiment_id = Some(ExperimentId::parse(format!("exp{experiment}")).expect("valid"));
            event.variant = variant.map(|v| VariantKey::parse(["A", "B", "C"][v as usize]).expect("valid"));
        }
        event
    }
}

/// What a store must answer when appending `batches` in order: the outcome of each call
/// (retries included) and the events it keeps.
pub(super) fn expected_appends(batches: &[(TenantId, Vec<Event>, bool)]) -> (Vec<AppendOutcome>, Vec<Event>) {
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    let mut outcomes = Vec::new();
    for (tenant, events, retried) in batches {
        for _ in 0..if *retried { 2 } else { 1 } {
            let mut outcome = AppendOutcome::default();
            for event in events {
                if seen.insert((tenant.clone(), event.id.clone())) {
                    kept.push(event.clone());
                    outcome.accepted.push(event.id.clone());
                } else {
                    outcome.duplicates.push(event.id.clone());
                }
            }
            outcomes.push(outcome);
        }
    }
    (outcomes, kept)
}

/// A generated summary query over a dataset's window.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    tenant: usize,
    start: Bound,
    end: Bound,
    granularity: Granularity,
    timezone: usize,
    event_type: Option<u8>,
    user: Option<u8>,
    experiment: Option<u8>,
    purchase_converts: bool,
    exact: bool,
    breakdowns: bool,
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    /// A `YYYY-MM-DD` date, days after the window start (an end date is inclusive).
    Date(i64),
    /// An instant, microseconds after the window start.
    Instant(i64),
}

impl QuerySpec {
    /// Strategy: any tenant (including one without events), date or instant bounds, every
    /// granularity, several timezones, optional filters.
    pub fn strategy() -> impl Strategy<Value = Self> {
        let bound = || {
            prop_oneof![
                (-1..DAYS + 1).prop_map(Bound::Date),
                (-HOUR_MICROS..(DAYS * 24 + 1) * HOUR_MICROS).prop_map(Bound::Instant),
                (-2..DAYS * 24 + 2).prop_map(|h| Bound::Instant(h * HOUR_MICROS)),
            ]
        };
        (
            (
                0..=TENANTS,
                bound(),
                bound(),
                prop::sample::select(Granularity::ALL.to_vec()),
                0..TIMEZONES.len(),
            ),
            (
                prop::option::weighted(0.2, 0u8..EVENT_TYPES.len() as u8),
                prop::option::weighted(0.15, 0u8..15),
                prop::option::weighted(0.25, 0u8..3),
                any::<bool>(),
                any::<bool>(),
                prop::bool::weighted(0.8),
            ),
        )
            .prop_map(
                |(
                    (tenant, start, end, granularity, timezone),
                    (event_type, user, experiment, purchase_converts, exact, breakdowns),
                )| {
                    Self {
                        tenant,
                        start,
                        end,
                        granularity,
                        timezone,
                        event_type,
                        user,
                        experiment,
                        purchase_converts,
                        exact,
                        breakdowns,
                    }
                },
            )
    }

    /// The query for this spec, or `None` when its bounds make an empty range.
    pub fn query(&self, dataset: &Dataset, names: &CaseNames) -> Option<Query> {
        let base = dataset.base();
        let text = |b: Bound| match b {
            Bound::Date(days) => (base + TimeDelta::days(days)).format("%Y-%m-%d").to_string(),
            Bound::Instant(micros) => (base + TimeDelta::microseconds(micros)).to_rfc3339(),
        };
        let request = SummaryRequest {
            start_date: Some(text(self.start)),
            end_date: Some(text(self.end)),
            group_by: Some(self.granularity.as_str().into()),
            timezone: Some(TIMEZONES[self.timezone].into()),
            event_type: self.event_type.map(|t| EVENT_TYPES[t as usize].into()),
            user_id: self.user.map(|u| format!("user {u}")),
            experiment_id: self.experiment.map(|x| format!("exp{x}")),
            exact: self.exact,
            skip_cache: false,
        };
        let query = match Query::parse(&names.tenants[self.tenant], &request) {
            Ok(query) => query,
            Err(crate::Error::InvalidInput { field, .. }) if field == "endDate" => return None,
            Err(other) => panic!("generated request {request:?} was rejected: {other}"),
        };
        let conversion = if self.purchase_converts {
            "purchase"
        } else {
            "CONVERSION"
        };
        Some(
            query
                .with_conversion_event_type(EventType::parse(conversion).expect("valid"))
                .with_breakdowns(self.breakdowns),
        )
    }
}
