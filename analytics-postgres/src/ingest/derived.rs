//! What a batch's new events add to the derived tables — rollups, experiment state, unique-user
//! sketches — computed in Rust from the events (aggregating in SQL cost more than everything
//! else in a batch) and written with one array-parameter statement per table, in key order so
//! concurrent batches lock rows in the same order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use analytics_core::model::Event;
use analytics_core::query::HourSpan;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::sketch::UserSketch;

/// Sketch and rollup levels, matching the `level` column: UTC hours since the epoch.
pub(crate) const LEVEL_HOUR: i16 = 0;
/// UTC days since the epoch.
pub(crate) const LEVEL_DAY: i16 = 1;

/// Rollup dimensions, matching the `dim` column.
pub(crate) const DIM_TOTAL: i16 = 0;
/// Event type.
pub(crate) const DIM_TYPE: i16 = 1;
/// Page.
pub(crate) const DIM_PAGE: i16 = 2;
/// Device.
pub(crate) const DIM_DEVICE: i16 = 3;
const DIM_BROWSER: i16 = 4;
const DIM_COUNTRY: i16 = 5;

/// The (level, period) pairs an event counts in.
fn periods(event: &Event) -> [(i16, i64); 2] {
    let hour = HourSpan::hour_of(event.timestamp);
    [(LEVEL_HOUR, hour), (LEVEL_DAY, hour.div_euclid(24))]
}

const UPSERT_ROLLUPS: &str = "
INSERT INTO rollups AS r (tenant_id, level, dim, period, value, n)
SELECT $1, * FROM unnest($2::smallint[], $3::smallint[], $4::bigint[], $5::text[], $6::bigint[])
ON CONFLICT (tenant_id, level, dim, period, value) DO UPDATE SET n = r.n + excluded.n";

/// Adds `events` to the rollup counters.
pub(super) async fn add_rollups(conn: &mut PgConnection, tenant: &str, events: &[&Event]) -> sqlx::Result<()> {
    // Hash while counting (a batch adds ~12 counts per event), sort once for the lock order.
    let mut counts: HashMap<(i16, i16, i64, &str), i64> = HashMap::with_capacity(4096);
    for event in events {
        let values = [
            (DIM_TOTAL, Some("")),
            (DIM_TYPE, Some(event.event_type.as_str())),
            (DIM_PAGE, event.page.as_ref().map(|v| v.as_str())),
            (DIM_DEVICE, event.device.as_ref().map(|v| v.as_str())),
            (DIM_BROWSER, event.browser.as_ref().map(|v| v.as_str())),
            (DIM_COUNTRY, event.country.as_ref().map(|v| v.as_str())),
        ];
        for (level, period) in periods(event) {
            for (dim, value) in values {
                if let Some(value) = value {
                    *counts.entry((level, dim, period, value)).or_insert(0) += 1;
                }
            }
        }
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_unstable();
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((level, dim, period, value), n) in counts {
        columns.0.push(level);
        columns.1.push(dim);
        columns.2.push(period);
        columns.3.push(value);
        columns.4.push(n);
    }
    sqlx::query(UPSERT_ROLLUPS)
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
pub(super) async fn add_experiment_state(conn: &mut PgConnection, tenant: &str, events: &[&Event]) -> sqlx::Result<()> {
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

/// Locks (creating where missing) the sketches of the given periods, in key order, so
/// concurrent batches cannot deadlock on them.
const LOCK_SKETCHES: &str = "
INSERT INTO user_sketches AS s (tenant_id, level, period)
SELECT $1, level, period FROM unnest($2::smallint[], $3::bigint[]) AS u (level, period)
ON CONFLICT (tenant_id, level, period) DO UPDATE SET sketch = s.sketch
RETURNING level, period, sketch";

const WRITE_SKETCHES: &str = "
UPDATE user_sketches AS s SET sketch = u.sketch
FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS u (level, period, sketch)
WHERE s.tenant_id = $1 AND s.level = u.level AND s.period = u.period";

/// Adds the users of `events` to the sketches of their hours and days.
pub(super) async fn add_to_sketches(conn: &mut PgConnection, tenant: &str, events: &[&Event]) -> sqlx::Result<()> {
    let mut users: BTreeMap<(i16, i64), Vec<&str>> = BTreeMap::new();
    for event in events {
        let Some(user) = &event.user_id else { continue };
        for key in periods(event) {
            users.entry(key).or_default().push(user.as_str());
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    let (levels, periods): (Vec<i16>, Vec<i64>) = users.keys().copied().unzip();
    let stored: Vec<(i16, i64, Option<Vec<u8>>)> = sqlx::query_as(LOCK_SKETCHES)
        .bind(tenant)
        .bind(&levels)
        .bind(&periods)
        .fetch_all(&mut *conn)
        .await?;
    let mut columns = (
        Vec::with_capacity(stored.len()),
        Vec::with_capacity(stored.len()),
        Vec::new(),
    );
    for (level, period, bytes) in stored {
        let mut sketch = match bytes {
            Some(bytes) => UserSketch::decode(&bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            None => UserSketch::default(),
        };
        for user in users.get(&(level, period)).into_iter().flatten() {
            sketch.insert(user);
        }
        columns.0.push(level);
        columns.1.push(period);
        columns.2.push(sketch.encode());
    }
    sqlx::query(WRITE_SKETCHES)
        .bind(tenant)
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .execute(conn)
        .await?;
    Ok(())
}
