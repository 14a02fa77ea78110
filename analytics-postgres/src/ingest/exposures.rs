//! Per-user experiment state kept at ingest: for each (experiment, variant, user) of the batch's
//! new events, the first and last event, the event count and the event types, merged into
//! `experiment_users` with one array-parameter upsert, in key order so concurrent batches lock
//! rows in the same order.

use std::collections::{BTreeMap, BTreeSet};

use analytics_core::model::Event;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Separates event types in one array element (text types never contain control characters).
const TYPE_SEPARATOR: char = '\u{1f}';

const UPSERT_EXPERIMENT_USERS: &str = r"
INSERT INTO experiment_users AS x (tenant_id, experiment_id, variant, user_id, first_exposure, last_seen,
                                   events, event_types)
SELECT $1, u.experiment_id, u.variant, u.user_id, u.first_seen, u.last_seen, u.events,
       string_to_array(u.types, E'\x1f')
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::text[])
     AS u (experiment_id, variant, user_id, first_seen, last_seen, events, types)
ON CONFLICT (tenant_id, experiment_id, variant, user_id) DO UPDATE SET
    first_exposure = least(x.first_exposure, excluded.first_exposure),
    last_seen = greatest(x.last_seen, excluded.last_seen),
    events = x.events + excluded.events,
    event_types = CASE WHEN x.event_types @> excluded.event_types THEN x.event_types
                  ELSE ARRAY(SELECT DISTINCT t FROM unnest(x.event_types || excluded.event_types) AS t ORDER BY t)
                  END";

#[derive(Default)]
struct Exposure<'a> {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    events: i64,
    types: BTreeSet<&'a str>,
}

/// Adds `events` of identified users in an experiment variant to the per-user experiment state.
pub(super) async fn add(conn: &mut PgConnection, tenant: &str, events: &[&Event]) -> sqlx::Result<()> {
    let mut state: BTreeMap<(&str, &str, &str), Exposure> = BTreeMap::new();
    for event in events {
        let (Some(experiment), Some(variant), Some(user)) = (&event.experiment_id, &event.variant, &event.user_id)
        else {
            continue;
        };
        let entry = state
            .entry((experiment.as_str(), variant.as_str(), user.as_str()))
            .or_default();
        entry.first = Some(entry.first.map_or(event.timestamp, |t| t.min(event.timestamp)));
        entry.last = Some(entry.last.map_or(event.timestamp, |t| t.max(event.timestamp)));
        entry.events += 1;
        entry.types.insert(event.event_type.as_str());
    }
    if state.is_empty() {
        return Ok(());
    }
    let mut columns = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((experiment, variant, user), exposure) in state {
        columns.0.push(experiment);
        columns.1.push(variant);
        columns.2.push(user);
        columns.3.push(exposure.first);
        columns.4.push(exposure.last);
        columns.5.push(exposure.events);
        let types: Vec<&str> = exposure.types.into_iter().collect();
        columns.6.push(types.join(&TYPE_SEPARATOR.to_string()));
    }
    sqlx::query(UPSERT_EXPERIMENT_USERS)
        .bind(tenant)
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .bind(columns.5)
        .bind(columns.6)
        .execute(conn)
        .await?;
    Ok(())
}
