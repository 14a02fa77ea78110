//! Per-user experiment state kept at ingest: for each (experiment, variant, user) the first
//! exposure and the set of event types seen, in `experiment_users`. (Events per variant are
//! counted in `period_stats`.)
//!
//! The state only grows: a first exposure can only move earlier, a set of event types only gain
//! members. So a batch row the stored state already covers changes nothing, and is not written.
//! Most rows of a busy experiment are such rows (the same users doing the same things), and
//! upserting them cost ~17 ms per 10,000-event batch and locked each user's row until commit,
//! serializing concurrent batches on popular users (profiled). [`KnownExposures`] remembers, per
//! process, state this process has committed; a row it covers is skipped. That is safe however
//! stale the memory is: the stored state is always at least what was committed, so whatever
//! covers a row in memory covers it in the table too. Rows not covered are upserted, in key
//! order (so concurrent batches lock rows in one order), updating only rows they extend.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, PoisonError};

use analytics_core::model::Event;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Separates event types in one array element (text types never contain control characters).
const TYPE_SEPARATOR: char = '\u{1f}';

const UPSERT_EXPERIMENT_USERS: &str = r"
INSERT INTO experiment_users AS x (tenant_id, experiment_id, variant, user_id, first_exposure, event_types)
SELECT $1, u.experiment_id, u.variant, u.user_id, u.first_seen, string_to_array(u.types, E'\x1f')
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
     AS u (experiment_id, variant, user_id, first_seen, types)
ON CONFLICT (tenant_id, experiment_id, variant, user_id) DO UPDATE SET
    first_exposure = least(x.first_exposure, excluded.first_exposure),
    event_types = CASE WHEN x.event_types @> excluded.event_types THEN x.event_types
                  ELSE ARRAY(SELECT DISTINCT t FROM unnest(x.event_types || excluded.event_types) AS t ORDER BY t)
                  END
WHERE excluded.first_exposure < x.first_exposure OR NOT x.event_types @> excluded.event_types";

/// (experiment, variant, user) of a batch row.
pub(super) type ExposureKey<'a> = (&'a str, &'a str, &'a str);

/// What a batch shows of one user in one variant.
#[derive(Debug)]
pub(super) struct Exposure<'a> {
    first: DateTime<Utc>,
    types: BTreeSet<&'a str>,
}

/// The batch's rows: per (experiment, variant, identified user), the earliest event and the
/// event types, in key order.
pub(super) fn gather<'a>(events: &[&'a Event]) -> BTreeMap<ExposureKey<'a>, Exposure<'a>> {
    let mut rows: BTreeMap<ExposureKey<'a>, Exposure<'a>> = BTreeMap::new();
    for event in events {
        let (Some(experiment), Some(variant), Some(user)) = (&event.experiment_id, &event.variant, &event.user_id)
        else {
            continue;
        };
        let row = rows
            .entry((experiment.as_str(), variant.as_str(), user.as_str()))
            .or_insert_with(|| Exposure {
                first: event.timestamp,
                types: BTreeSet::new(),
            });
        row.first = row.first.min(event.timestamp);
        row.types.insert(event.event_type.as_str());
    }
    rows
}

/// Upserts the rows of `rows` that `known` does not cover.
pub(super) async fn write(
    conn: &mut PgConnection,
    tenant: &str,
    rows: &BTreeMap<ExposureKey<'_>, Exposure<'_>>,
    known: &KnownExposures,
) -> sqlx::Result<()> {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&(experiment, variant, user), exposure) in rows {
        if known.covers(tenant, (experiment, variant, user), exposure) {
            continue;
        }
        columns.0.push(experiment);
        columns.1.push(variant);
        columns.2.push(user);
        columns.3.push(exposure.first);
        let types: Vec<&str> = exposure.types.iter().copied().collect();
        columns.4.push(types.join(&TYPE_SEPARATOR.to_string()));
    }
    if columns.0.is_empty() {
        return Ok(());
    }
    sqlx::query(UPSERT_EXPERIMENT_USERS)
        .bind(tenant)
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many (user, variant) and (user, variant, type) facts [`KnownExposures`] holds before it
/// starts over (about 50 bytes each with the map's overhead).
const MAX_KNOWN: usize = 1 << 20;

/// Experiment state this process has committed, as 128-bit hashes (with a per-process random
/// key, so nobody can construct colliding ids): for each (tenant, experiment, variant, user) the
/// earliest first exposure, and each event type seen. Bounded: it forgets everything once it
/// holds [`MAX_KNOWN`] facts (forgetting only costs writes).
#[derive(Debug)]
pub(crate) struct KnownExposures {
    keys: (RandomState, RandomState),
    state: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    first: HashMap<u128, i64>,
    types: HashSet<u128>,
}

impl Default for KnownExposures {
    fn default() -> Self {
        Self {
            keys: (RandomState::new(), RandomState::new()),
            state: Mutex::default(),
        }
    }
}

impl KnownExposures {
    fn hash(&self, value: impl Hash + Copy) -> u128 {
        (u128::from(self.keys.0.hash_one(value)) << 64) | u128::from(self.keys.1.hash_one(value))
    }

    /// Whether committed state already holds everything `exposure` would add.
    fn covers(&self, tenant: &str, key: ExposureKey<'_>, exposure: &Exposure<'_>) -> bool {
        let user = self.hash((tenant, key));
        let known = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .first
            .get(&user)
            .is_some_and(|first| *first <= exposure.first.timestamp_micros())
            && exposure
                .types
                .iter()
                .all(|t| known.types.contains(&self.hash((user, *t))))
    }

    /// Remembers `rows` of `tenant`, after the transaction that wrote them committed.
    pub(super) fn record(&self, tenant: &str, rows: &BTreeMap<ExposureKey<'_>, Exposure<'_>>) {
        let hashed: Vec<(u128, i64, Vec<u128>)> = rows
            .iter()
            .map(|(key, exposure)| {
                let user = self.hash((tenant, *key));
                let types = exposure.types.iter().map(|t| self.hash((user, *t))).collect();
                (user, exposure.first.timestamp_micros(), types)
            })
            .collect();
        let mut known = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if known.first.len() + known.types.len() > MAX_KNOWN {
            *known = Known::default();
        }
        for (user, first, types) in hashed {
            let earliest = known.first.entry(user).or_insert(first);
            *earliest = (*earliest).min(first);
            known.types.extend(types);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::{EventId, EventType, ExperimentId, TenantId, UserId, VariantKey};

    fn event(user: &str, event_type: &str, at: &str) -> Event {
        let mut e = Event::new(
            TenantId::parse("t").unwrap(),
            EventId::parse("e").unwrap(),
            EventType::parse(event_type).unwrap(),
            at.parse().unwrap(),
        );
        e.user_id = Some(UserId::parse(user).unwrap());
        e.experiment_id = Some(ExperimentId::parse("x").unwrap());
        e.variant = Some(VariantKey::parse("A").unwrap());
        e
    }

    #[test]
    fn recorded_state_covers_rows_it_includes_and_nothing_more() {
        let known = KnownExposures::default();
        let view = event("u1", "view", "2024-01-02T00:00:00Z");
        let recorded = gather(&[&view]);
        let row = &recorded[&("x", "A", "u1")];
        assert!(!known.covers("t", ("x", "A", "u1"), row), "nothing known yet");
        known.record("t", &recorded);
        assert!(known.covers("t", ("x", "A", "u1"), row));
        assert!(!known.covers("other", ("x", "A", "u1"), row), "per tenant");

        let later_view = event("u1", "view", "2024-01-03T00:00:00Z");
        let earlier_view = event("u1", "view", "2024-01-01T00:00:00Z");
        let conversion = event("u1", "CONVERSION", "2024-01-03T00:00:00Z");
        for (e, covered) in [(&later_view, true), (&earlier_view, false), (&conversion, false)] {
            let rows = gather(&[e]);
            assert_eq!(
                known.covers("t", ("x", "A", "u1"), &rows[&("x", "A", "u1")]),
                covered,
                "{e:?}"
            );
        }
    }

    #[test]
    fn anonymous_events_and_events_outside_experiments_have_no_state() {
        let mut anonymous = event("u1", "view", "2024-01-02T00:00:00Z");
        anonymous.user_id = None;
        let mut outside = event("u2", "view", "2024-01-02T00:00:00Z");
        outside.variant = None;
        assert!(gather(&[&anonymous, &outside]).is_empty());
    }
}
