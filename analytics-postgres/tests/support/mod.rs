//! Shared setup: a store on the test server in a schema of its own.

use analytics_core::model::TenantId;
use analytics_core::testkit;
use analytics_postgres::{PostgresConfig, PostgresStore};

/// A store in a fresh schema named after `test`, or `None` (skip) without `DATABASE_URL`.
#[allow(dead_code)] // Not every test file needs it.
pub(crate) async fn store(test: &str) -> Option<PostgresStore> {
    let config = config(test)?;
    Some(
        PostgresStore::connect(&config)
            .await
            .expect("connect to the test server"),
    )
}

/// The configuration [`store`] uses, for tests that tweak it.
pub(crate) fn config(test: &str) -> Option<PostgresConfig> {
    let url = testkit::server_url("DATABASE_URL", test)?;
    let schema = format!("test_{test}_{:016x}", getrandom::u64().expect("OS randomness"));
    Some(PostgresConfig::new(url).schema(schema).max_connections(8))
}

/// The most `period_stats` rows any one period of `tenant` has.
#[allow(dead_code)] // Not every test file needs it.
pub(crate) async fn max_rows_per_period(store: &PostgresStore, tenant: &TenantId) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM period_stats WHERE tenant_id = $1 \
         GROUP BY level, period) AS p",
    )
    .bind(tenant.as_str())
    .fetch_one(store.pool())
    .await
    .unwrap()
}
