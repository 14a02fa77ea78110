//! Owed cache invalidations (`owed_invalidations`): written when an ingest's events were
//! committed but the cache could not be reached, read and deleted as instances settle them.

use analytics_core::Result;
use analytics_core::cache::Tag;
use analytics_core::model::TenantId;
use analytics_core::store::{MAX_OWED_READ, OwedInvalidation};
use sqlx::PgPool;

use crate::error::{self, corrupt};

pub(crate) async fn owe(pool: &PgPool, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
    let tags: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    sqlx::query("INSERT INTO owed_invalidations (tenant_id, tags) VALUES ($1, $2)")
        .bind(tenant.as_str())
        .bind(tags)
        .execute(pool)
        .await
        .map_err(|e| error::map("owe invalidation", e))?;
    Ok(())
}

pub(crate) async fn owed(pool: &PgPool) -> Result<Vec<OwedInvalidation>> {
    let rows: Vec<(i64, String, Vec<String>)> =
        sqlx::query_as("SELECT id, tenant_id, tags FROM owed_invalidations ORDER BY id LIMIT $1")
            .bind(i64::try_from(MAX_OWED_READ).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(|e| error::map("owed invalidations", e))?;
    rows.into_iter()
        .map(|(id, tenant, tags)| {
            Ok(OwedInvalidation {
                id,
                tenant: TenantId::parse(tenant).map_err(|e| corrupt("owed invalidation tenant", e))?,
                tags: tags.into_iter().map(Tag::from_text).collect(),
            })
        })
        .collect()
}

pub(crate) async fn settle(pool: &PgPool, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM owed_invalidations WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await
        .map_err(|e| error::map("settle invalidations", e))?;
    Ok(())
}
