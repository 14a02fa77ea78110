//! Tenants, API-key hashes and experiments: small documents keyed by tenant.

use analytics_core::model::{ApiKeyHash, Experiment, ExperimentId, Tenant, TenantId};
use analytics_core::{Error, Result};
use sqlx::PgPool;
use sqlx::types::Json;

use crate::error::{self, corrupt};

pub(crate) async fn create_tenant(pool: &PgPool, tenant: &Tenant) -> Result<()> {
    let inserted = sqlx::query("INSERT INTO tenants (id, doc) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant.id.as_str())
        .bind(Json(tenant))
        .execute(pool)
        .await
        .map_err(|e| error::map("create tenant", e))?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "tenant {:?} already exists",
            tenant.id.as_str()
        )));
    }
    Ok(())
}

pub(crate) async fn get_tenant(pool: &PgPool, id: &TenantId) -> Result<Option<Tenant>> {
    let doc: Option<Json<Tenant>> = sqlx::query_scalar("SELECT doc FROM tenants WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(|e| error::map("get tenant", e))?;
    Ok(doc.map(|d| d.0))
}

pub(crate) async fn add_api_key(pool: &PgPool, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO api_keys (key_hash, tenant_id) SELECT $1, id FROM tenants WHERE id = $2 ON CONFLICT DO NOTHING",
    )
    .bind(&key.0[..])
    .bind(tenant.as_str())
    .execute(pool)
    .await
    .map_err(|e| error::map("add API key", e))?;
    if inserted.rows_affected() == 1 {
        return Ok(());
    }
    match get_tenant(pool, tenant).await? {
        None => Err(Error::not_found(format!("tenant {:?}", tenant.as_str()))),
        Some(_) => Err(Error::Conflict("API key already registered".into())),
    }
}

pub(crate) async fn tenant_for_api_key(pool: &PgPool, key: &ApiKeyHash) -> Result<Option<TenantId>> {
    let tenant: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM api_keys WHERE key_hash = $1")
        .bind(&key.0[..])
        .fetch_optional(pool)
        .await
        .map_err(|e| error::map("authenticate", e))?;
    tenant
        .map(|t| TenantId::parse(t).map_err(|e| corrupt("tenant id", e)))
        .transpose()
}

pub(crate) async fn create_experiment(pool: &PgPool, experiment: &Experiment) -> Result<()> {
    let inserted =
        sqlx::query("INSERT INTO experiments (tenant_id, id, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(experiment.tenant_id.as_str())
            .bind(experiment.id.as_str())
            .bind(Json(experiment))
            .execute(pool)
            .await
            .map_err(|e| error::map("create experiment", e))?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "experiment {:?} already exists",
            experiment.id.as_str()
        )));
    }
    Ok(())
}

pub(crate) async fn list_experiments(pool: &PgPool, tenant: &TenantId) -> Result<Vec<Experiment>> {
    let docs: Vec<Json<Experiment>> =
        sqlx::query_scalar("SELECT doc FROM experiments WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant.as_str())
            .fetch_all(pool)
            .await
            .map_err(|e| error::map("list experiments", e))?;
    Ok(docs.into_iter().map(|d| d.0).collect())
}

pub(crate) async fn get_experiment(pool: &PgPool, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
    let doc: Option<Json<Experiment>> =
        sqlx::query_scalar("SELECT doc FROM experiments WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(|e| error::map("get experiment", e))?;
    Ok(doc.map(|d| d.0))
}

pub(crate) async fn update_experiment(pool: &PgPool, experiment: &Experiment) -> Result<()> {
    let updated = sqlx::query("UPDATE experiments SET doc = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(experiment.tenant_id.as_str())
        .bind(experiment.id.as_str())
        .bind(Json(experiment))
        .execute(pool)
        .await
        .map_err(|e| error::map("update experiment", e))?;
    if updated.rows_affected() == 0 {
        return Err(Error::not_found(format!("experiment {:?}", experiment.id.as_str())));
    }
    Ok(())
}
