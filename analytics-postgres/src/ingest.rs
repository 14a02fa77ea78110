//! Batch ingestion: one transaction per batch, COPY into staging, then set-based inserts.
//!
//! 1. Ids repeated inside the batch are duplicates (first occurrence wins), decided in Rust.
//! 2. The remaining rows are streamed with `COPY` into a per-session temporary staging table.
//! 3. One statement inserts the staged ids into the `event_ids` ledger (`ON CONFLICT DO
//!    NOTHING`); only the ids it returns — the new ones — go on to `events`, the rollups and
//!    the experiment state. Upserts add to counters (`n = n + excluded.n`), so concurrent
//!    batches for the same tenant and hour never lose an update.
//! 4. The unique-user sketches of the touched hours and days are locked (`ON CONFLICT DO UPDATE`
//!    in key order, so concurrent batches cannot deadlock on them), merged in Rust with the new
//!    rows' users, and written back.
//! 5. Commit; only then is the outcome returned.
//!
//! Rows whose key order differs between concurrent transactions can still deadlock elsewhere
//! (PostgreSQL aborts one); the whole batch is rolled back and retried, which is safe because
//! nothing of it was committed.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use analytics_core::model::Event;
use analytics_core::query::HourSpan;
use analytics_core::store::AppendOutcome;
use analytics_core::{Error, Result};
use sqlx::{PgConnection, PgPool};

use crate::error;
use crate::sketch::UserSketch;

/// Creates the session's staging table; run by every new pooled connection.
pub(crate) const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS staging (
    id text COLLATE \"C\" NOT NULL, ts timestamptz NOT NULL, hour bigint NOT NULL, day bigint NOT NULL,
    user_id text, event_type text NOT NULL, session_id text, page text, browser text, device text,
    country text, properties jsonb NOT NULL, experiment_id text, variant text
) ON COMMIT DELETE ROWS";

const COPY_STAGING: &str = "COPY pg_temp.staging (id, ts, hour, day, user_id, event_type, session_id, page, \
    browser, device, country, properties, experiment_id, variant) FROM STDIN";

/// Stores the staged rows whose ids are new, maintains rollups and experiment state from those
/// rows only, and returns the new ids.
const APPLY_STAGED: &str = r#"
WITH fresh_ids AS (
    INSERT INTO event_ids (tenant_id, id)
    SELECT $1, id FROM pg_temp.staging ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING id
), fresh AS MATERIALIZED (
    SELECT s.* FROM pg_temp.staging s JOIN fresh_ids USING (id)
), stored AS (
    INSERT INTO events (tenant_id, id, ts, user_id, event_type, session_id, page, browser, device,
                        country, properties, experiment_id, variant)
    SELECT $1, id, ts, user_id, event_type, session_id, page, browser, device, country, properties,
           experiment_id, variant
    FROM fresh
), counted AS (
    INSERT INTO rollups AS r (tenant_id, level, period, dim, value, n)
    SELECT $1, p.level, p.period, d.dim, d.value, count(*)
    FROM fresh f
    CROSS JOIN LATERAL (VALUES (0::smallint, f.hour), (1::smallint, f.day)) AS p (level, period)
    CROSS JOIN LATERAL (VALUES (0::smallint, ''::text), (1::smallint, f.event_type), (2::smallint, f.page),
                               (3::smallint, f.device), (4::smallint, f.browser), (5::smallint, f.country)
                       ) AS d (dim, value)
    WHERE d.value IS NOT NULL
    GROUP BY p.level, d.dim, p.period, d.value
    ORDER BY p.level, d.dim, p.period, d.value
    ON CONFLICT (tenant_id, level, dim, period, value) DO UPDATE SET n = r.n + excluded.n
), exposed AS (
    INSERT INTO experiment_users AS x (tenant_id, experiment_id, variant, user_id, first_exposure,
                                       last_seen, events, event_types)
    SELECT $1, experiment_id, variant, user_id, min(ts), max(ts), count(*),
           array_agg(DISTINCT event_type ORDER BY event_type)
    FROM fresh
    WHERE experiment_id IS NOT NULL AND variant IS NOT NULL AND user_id IS NOT NULL
    GROUP BY experiment_id, variant, user_id
    ORDER BY experiment_id, variant, user_id
    ON CONFLICT (tenant_id, experiment_id, variant, user_id) DO UPDATE SET
        first_exposure = least(x.first_exposure, excluded.first_exposure),
        last_seen = greatest(x.last_seen, excluded.last_seen),
        events = x.events + excluded.events,
        event_types = ARRAY(SELECT DISTINCT t FROM unnest(x.event_types || excluded.event_types) AS t ORDER BY t)
)
SELECT id FROM fresh_ids
"#;

/// Locks (creating where missing) the sketches of the given periods, in key order.
const LOCK_SKETCHES: &str = "
INSERT INTO user_sketches AS s (tenant_id, level, period)
SELECT $1, level, period FROM unnest($2::smallint[], $3::bigint[]) AS u (level, period)
ORDER BY level, period
ON CONFLICT (tenant_id, level, period) DO UPDATE SET sketch = s.sketch
RETURNING level, period, sketch";

const WRITE_SKETCHES: &str = "
UPDATE user_sketches AS s SET sketch = u.sketch
FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS u (level, period, sketch)
WHERE s.tenant_id = $1 AND s.level = u.level AND s.period = u.period";

/// How often a batch that lost a deadlock or serialization race is retried.
const CONFLICT_RETRIES: usize = 4;

/// Sketch levels, matching the `level` column.
pub(crate) const LEVEL_HOUR: i16 = 0;
/// Days since the epoch.
pub(crate) const LEVEL_DAY: i16 = 1;

/// Appends `events` (already checked to belong to `tenant`) in one transaction.
pub(crate) async fn append(pool: &PgPool, tenant: &str, events: &[Event]) -> Result<AppendOutcome> {
    let (unique, repeated) = split_repeats(events);
    if unique.is_empty() {
        return Ok(outcome(events, &HashSet::new(), &repeated));
    }
    let copy_data = encode_copy(&unique);
    let mut attempt = 0;
    let fresh = loop {
        match apply(pool, tenant, &unique, &copy_data).await {
            Ok(fresh) => break fresh,
            Err(e) if error::is_retryable_conflict(&e) && attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(error::map("append", e)),
        }
    };
    Ok(outcome(events, &fresh, &repeated))
}

async fn apply(pool: &PgPool, tenant: &str, unique: &[&Event], copy_data: &[u8]) -> sqlx::Result<HashSet<String>> {
    let mut tx = pool.begin().await?;
    let mut copy = tx.copy_in_raw(COPY_STAGING).await?;
    copy.send(copy_data).await?;
    copy.finish().await?;
    let fresh: HashSet<String> = sqlx::query_scalar(APPLY_STAGED)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let new_events = unique.iter().copied().filter(|e| fresh.contains(e.id.as_str()));
    update_sketches(&mut tx, tenant, new_events).await?;
    tx.commit().await?;
    Ok(fresh)
}

/// Adds the users of `events` to the sketches of their hours and days.
async fn update_sketches<'a>(
    conn: &mut PgConnection,
    tenant: &str,
    events: impl Iterator<Item = &'a Event>,
) -> sqlx::Result<()> {
    let mut users: BTreeMap<(i16, i64), Vec<&str>> = BTreeMap::new();
    for event in events {
        let Some(user) = &event.user_id else { continue };
        let hour = HourSpan::hour_of(event.timestamp);
        users.entry((LEVEL_HOUR, hour)).or_default().push(user.as_str());
        users
            .entry((LEVEL_DAY, hour.div_euclid(24)))
            .or_default()
            .push(user.as_str());
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
    let mut sketches = Vec::with_capacity(stored.len());
    let mut keys = (Vec::with_capacity(stored.len()), Vec::with_capacity(stored.len()));
    for (level, period, bytes) in stored {
        let mut sketch = match bytes {
            Some(bytes) => UserSketch::decode(&bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            None => UserSketch::default(),
        };
        for user in users.get(&(level, period)).into_iter().flatten() {
            sketch.insert(user);
        }
        keys.0.push(level);
        keys.1.push(period);
        sketches.push(sketch.encode());
    }
    sqlx::query(WRITE_SKETCHES)
        .bind(tenant)
        .bind(&keys.0)
        .bind(&keys.1)
        .bind(&sketches)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The batch without repeated ids (first occurrence kept), and the positions of the repeats.
fn split_repeats(events: &[Event]) -> (Vec<&Event>, HashSet<usize>) {
    let mut seen = HashSet::with_capacity(events.len());
    let mut unique = Vec::with_capacity(events.len());
    let mut repeated = HashSet::new();
    for (i, event) in events.iter().enumerate() {
        if seen.insert(event.id.as_str()) {
            unique.push(event);
        } else {
            repeated.insert(i);
        }
    }
    (unique, repeated)
}

/// Accepted and duplicate ids in batch order.
fn outcome(events: &[Event], fresh: &HashSet<String>, repeated: &HashSet<usize>) -> AppendOutcome {
    let mut outcome = AppendOutcome::default();
    for (i, event) in events.iter().enumerate() {
        if !repeated.contains(&i) && fresh.contains(event.id.as_str()) {
            outcome.accepted.push(event.id.clone());
        } else {
            outcome.duplicates.push(event.id.clone());
        }
    }
    outcome
}

/// Encodes rows in COPY's text format (tab-separated, `\N` for NULL, backslash escapes).
fn encode_copy(events: &[&Event]) -> Vec<u8> {
    let mut out = String::with_capacity(events.len() * 256);
    for event in events {
        let hour = HourSpan::hour_of(event.timestamp);
        field(&mut out, Some(event.id.as_str()));
        out.push('\t');
        // Always UTC with microseconds, which PostgreSQL parses exactly.
        let _ = write!(out, "{}", event.timestamp.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        let _ = write!(out, "\t{hour}\t{}\t", hour.div_euclid(24));
        field(&mut out, event.user_id.as_ref().map(|v| v.as_str()));
        out.push('\t');
        field(&mut out, Some(event.event_type.as_str()));
        for value in [
            event.session_id.as_ref().map(|v| v.as_str()),
            event.page.as_ref().map(|v| v.as_str()),
            event.browser.as_ref().map(|v| v.as_str()),
            event.device.as_ref().map(|v| v.as_str()),
            event.country.as_ref().map(|v| v.as_str()),
        ] {
            out.push('\t');
            field(&mut out, value);
        }
        out.push('\t');
        let properties = serde_json::to_string(&*event.properties).expect("a JSON map always serializes");
        field(&mut out, Some(&properties));
        out.push('\t');
        field(&mut out, event.experiment_id.as_ref().map(|v| v.as_str()));
        out.push('\t');
        field(&mut out, event.variant.as_ref().map(|v| v.as_str()));
        out.push('\n');
    }
    out.into_bytes()
}

fn field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A batch larger than the staging buffer can hold would be refused by the facade long before
/// it reached the store; this guards direct callers.
pub(crate) fn check_size(events: &[Event]) -> Result<()> {
    if events.len() > analytics_core::analytics::MAX_BATCH {
        return Err(Error::invalid(
            "events",
            format!("at most {} events per batch", analytics_core::analytics::MAX_BATCH),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::model::{EventId, EventType, TenantId};

    fn event(id: &str) -> Event {
        Event::new(
            TenantId::parse("t").unwrap(),
            EventId::parse(id).unwrap(),
            EventType::parse("view").unwrap(),
            "2024-03-01T10:20:30.123456Z".parse().unwrap(),
        )
    }

    #[test]
    fn copy_rows_escape_and_mark_nulls() {
        let mut e = event("a");
        e.page = Some(analytics_core::model::Page::parse("/a\\b").unwrap());
        let text = String::from_utf8(encode_copy(&[&e])).unwrap();
        let columns: Vec<&str> = text.trim_end_matches('\n').split('\t').collect();
        assert_eq!(columns.len(), 14);
        assert_eq!(columns[1], "2024-03-01 10:20:30.123456+00");
        assert_eq!(columns[4], "\\N");
        assert_eq!(columns[7], "/a\\\\b");
        assert_eq!(columns[11], "{}");
    }

    #[test]
    fn repeats_inside_a_batch_are_duplicates_in_batch_order() {
        let events = [event("a"), event("b"), event("a")];
        let (unique, repeated) = split_repeats(&events);
        assert_eq!(unique.len(), 2);
        let fresh: HashSet<String> = ["a".to_string()].into();
        let outcome = outcome(&events, &fresh, &repeated);
        let ids = |v: &[EventId]| v.iter().map(|i| i.as_str().to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&outcome.accepted), ["a"]);
        assert_eq!(ids(&outcome.duplicates), ["b", "a"]);
    }
}
