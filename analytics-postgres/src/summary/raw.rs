//! Filtered plans (and exact unique users): raw `events` rows, the time series bucketed in SQL.

use std::collections::BTreeMap;

use analytics_core::Result;
use analytics_core::query::QueryPlan;
use sqlx::{PgPool, Postgres, QueryBuilder};

use analytics_core::model::VariantKey;

use super::{DimCounts, Users, count, dims_wanted, parse};
use crate::error;

/// Appends the plan's row filter over `events e`: tenant, range and the query's filters.
fn push_conditions<'a>(sql: &mut QueryBuilder<'a, Postgres>, plan: &'a QueryPlan) {
    let range = plan.query.range();
    sql.push(" WHERE e.tenant_id = ")
        .push_bind(plan.query.tenant().as_str())
        .push(" AND e.ts >= ")
        .push_bind(range.start())
        .push(" AND e.ts < ")
        .push_bind(range.end());
    let filters = plan.query.filters();
    if let Some(t) = &filters.event_type {
        sql.push(" AND e.event_type = ").push_bind(t.as_str());
    }
    if let Some(u) = &filters.user_id {
        sql.push(" AND e.user_id = ").push_bind(u.as_str());
    }
    if let Some(x) = &filters.experiment_id {
        sql.push(" AND e.experiment_id = ").push_bind(x.as_str());
    }
}

pub(super) async fn raw_dims(pool: &PgPool, plan: &QueryPlan) -> Result<DimCounts> {
    let mut sql = QueryBuilder::new(
        "SELECT d.dim, d.value, count(*) FROM events e CROSS JOIN LATERAL (VALUES (0::smallint, ''::text), \
         (1::smallint, e.event_type), (2::smallint, e.page), (3::smallint, e.device), (4::smallint, e.browser), \
         (5::smallint, e.country)) AS d (dim, value)",
    );
    push_conditions(&mut sql, plan);
    sql.push(" AND d.value IS NOT NULL AND d.dim = ANY(")
        .push_bind(dims_wanted(plan))
        .push(") GROUP BY d.dim, d.value");
    sql.build_query_as()
        .fetch_all(pool)
        .await
        .map_err(|e| error::map("summary", e))
}

pub(super) async fn raw_series(pool: &PgPool, plan: &QueryPlan) -> Result<Vec<(i32, i64)>> {
    // width_bucket numbers buckets from 1 (0 would be before the first start, which the range
    // excludes).
    let mut sql = QueryBuilder::new("SELECT width_bucket(e.ts, ");
    sql.push_bind(plan.query.bucket_starts().to_vec())
        .push("::timestamptz[]) - 1, count(*) FROM events e");
    push_conditions(&mut sql, plan);
    sql.push(" GROUP BY 1");
    sql.build_query_as()
        .fetch_all(pool)
        .await
        .map_err(|e| error::map("summary", e))
}

pub(super) async fn raw_users(pool: &PgPool, plan: &QueryPlan) -> Result<Users> {
    let mut sql = QueryBuilder::new("SELECT count(DISTINCT e.user_id) FROM events e");
    push_conditions(&mut sql, plan);
    let n: i64 = sql
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(|e| error::map("summary", e))?;
    Ok((count(n)?, false))
}

type VariantRow = (String, i64, i64, i64);

pub(super) async fn raw_variants(
    pool: &PgPool,
    plan: &QueryPlan,
) -> Result<Option<BTreeMap<VariantKey, analytics_core::query::VariantCounts>>> {
    if plan.query.filters().experiment_id.is_none() {
        return Ok(None);
    }
    let mut sql = QueryBuilder::new(
        "SELECT e.variant, count(*), count(DISTINCT e.user_id), count(DISTINCT e.user_id) FILTER (WHERE e.event_type = ",
    );
    sql.push_bind(plan.query.conversion_event_type().as_str())
        .push(") FROM events e");
    push_conditions(&mut sql, plan);
    sql.push(" AND e.variant IS NOT NULL GROUP BY e.variant");
    let rows: Vec<VariantRow> = sql
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(|e| error::map("summary", e))?;
    rows.into_iter()
        .map(|(variant, events, users, conversions)| {
            let counts = analytics_core::query::VariantCounts {
                events: count(events)?,
                users: count(users)?,
                conversions: count(conversions)?,
            };
            Ok((parse(VariantKey::parse, variant)?, counts))
        })
        .collect::<Result<_>>()
        .map(Some)
}
