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
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, PoisonError};

use analytics_core::model::Event;
use chrono::{DateTime, Utc};
use foldhash::HashMapExt;
use sqlx::PgConnection;

/// Separates event types in one array element (text types never contain control characters).
const TYPE_SEPARATOR: &str = "\u{1f}";

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
    /// Distinct, in the order first seen (a user does a handful of types in a batch, so a list
    /// beats a set).
    types: Vec<&'a str>,
}

/// The batch's rows: per (experiment, variant, identified user), the earliest event and the
/// event types. Unordered: a hash map with `foldhash` (randomly seeded, and many times faster
/// than SipHash on short keys, profiled) instead of a `BTreeMap`, whose string comparisons were
/// a tenth of the client's ingest time; only the rows actually written are sorted.
pub(super) fn gather<'a>(events: &[&'a Event]) -> foldhash::HashMap<ExposureKey<'a>, Exposure<'a>> {
    let mut rows: foldhash::HashMap<ExposureKey<'a>, Exposure<'a>> = foldhash::HashMap::new();
    for event in events {
        let (Some(experiment), Some(variant), Some(user)) = (&event.experiment_id, &event.variant, &event.user_id)
        else {
            continue;
        };
        let row = rows
            .entry((experiment.as_str(), variant.as_str(), user.as_str()))
            .or_insert_with(|| Exposure {
                first: event.timestamp,
                types: Vec::new(),
            });
        row.first = row.first.min(event.timestamp);
        if !row.types.contains(&event.event_type.as_str()) {
            row.types.push(event.event_type.as_str());
        }
    }
    rows
}

/// Upserts the rows of `rows` that `known` does not cover, in key order (so concurrent batches
/// lock rows in one order); returns the rows' fingerprints, for [`KnownExposures::record`] once
/// the transaction has committed.
pub(super) async fn write(
    conn: &mut PgConnection,
    tenant: &str,
    rows: &foldhash::HashMap<ExposureKey<'_>, Exposure<'_>>,
    known: &KnownExposures,
) -> sqlx::Result<Vec<Fingerprint>> {
    let rows: Vec<(&ExposureKey<'_>, &Exposure<'_>)> = rows.iter().collect();
    let fingerprints: Vec<Fingerprint> = rows
        .iter()
        .map(|(key, exposure)| known.fingerprint(tenant, **key, exposure))
        .collect();
    let covered = known.covers(&fingerprints);
    let mut missing: Vec<(&ExposureKey<'_>, &Exposure<'_>)> = rows
        .into_iter()
        .zip(covered)
        .filter_map(|(row, covered)| (!covered).then_some(row))
        .collect();
    if missing.is_empty() {
        return Ok(fingerprints);
    }
    missing.sort_unstable_by_key(|(key, _)| **key);
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&(experiment, variant, user), exposure) in missing {
        columns.0.push(experiment);
        columns.1.push(variant);
        columns.2.push(user);
        columns.3.push(exposure.first);
        let mut types = exposure.types.clone();
        types.sort_unstable();
        columns.4.push(types.join(TYPE_SEPARATOR));
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
    Ok(fingerprints)
}

/// How many (user, variant) and (user, variant, type) facts [`KnownExposures`] holds before it
/// starts over (about 50 bytes each with the map's overhead).
const MAX_KNOWN: usize = 1 << 20;

/// Experiment state this process has committed, as 128-bit hashes (keyed SipHash with a
/// per-process random key, so nobody can construct colliding ids — a collision would skip a
/// write, so this is the one place that keeps SipHash): for each (tenant, experiment, variant,
/// user) the earliest first exposure, and each event type seen. Bounded: it forgets everything
/// once it holds [`MAX_KNOWN`] facts (forgetting only costs writes).
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

/// A batch row as [`KnownExposures`] keeps it, hashed once per batch.
#[derive(Debug)]
pub(super) struct Fingerprint {
    user: u128,
    first: i64,
    types: Vec<u128>,
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

    /// `exposure` of `key` in `tenant`, hashed.
    fn fingerprint(&self, tenant: &str, key: ExposureKey<'_>, exposure: &Exposure<'_>) -> Fingerprint {
        let user = self.hash((tenant, key));
        Fingerprint {
            user,
            first: exposure.first.timestamp_micros(),
            types: exposure.types.iter().map(|t| self.hash((user, *t))).collect(),
        }
    }

    /// For each row, whether committed state already holds everything it would add.
    fn covers(&self, rows: &[Fingerprint]) -> Vec<bool> {
        let known = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        rows.iter()
            .map(|row| {
                known.first.get(&row.user).is_some_and(|first| *first <= row.first)
                    && row.types.iter().all(|t| known.types.contains(t))
            })
            .collect()
    }

    /// Remembers `rows`, after the transaction that wrote them committed.
    pub(super) fn record(&self, rows: Vec<Fingerprint>) {
        let mut known = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if known.first.len() + known.types.len() > MAX_KNOWN {
            *known = Known::default();
        }
        for row in rows {
            let earliest = known.first.entry(row.user).or_insert(row.first);
            *earliest = (*earliest).min(row.first);
            known.types.extend(row.types);
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

    /// Whether `known` covers `row` of the one-event batch `event` in `tenant`.
    fn covered(known: &KnownExposures, tenant: &str, event: &Event) -> bool {
        let rows = gather(&[event]);
        let fingerprint = known.fingerprint(tenant, ("x", "A", "u1"), &rows[&("x", "A", "u1")]);
        known.covers(&[fingerprint])[0]
    }

    #[test]
    fn recorded_state_covers_rows_it_includes_and_nothing_more() {
        let known = KnownExposures::default();
        let view = event("u1", "view", "2024-01-02T00:00:00Z");
        assert!(!covered(&known, "t", &view), "nothing known yet");
        let recorded = gather(&[&view]);
        known.record(
            recorded
                .iter()
                .map(|(key, exposure)| known.fingerprint("t", *key, exposure))
                .collect(),
        );
        assert!(covered(&known, "t", &view));
        assert!(!covered(&known, "other", &view), "per tenant");

        let later_view = event("u1", "view", "2024-01-03T00:00:00Z");
        let earlier_view = event("u1", "view", "2024-01-01T00:00:00Z");
        let conversion = event("u1", "CONVERSION", "2024-01-03T00:00:00Z");
        for (e, expected) in [(&later_view, true), (&earlier_view, false), (&conversion, false)] {
            assert_eq!(covered(&known, "t", e), expected, "{e:?}");
        }
    }

    #[test]
    fn a_row_keeps_each_type_once_and_the_earliest_time() {
        let late = event("u1", "view", "2024-01-03T00:00:00Z");
        let early = event("u1", "view", "2024-01-01T00:00:00Z");
        let conversion = event("u1", "CONVERSION", "2024-01-02T00:00:00Z");
        let rows = gather(&[&late, &early, &conversion]);
        let row = &rows[&("x", "A", "u1")];
        assert_eq!(row.types, ["view", "CONVERSION"]);
        assert_eq!(row.first, early.timestamp);
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
