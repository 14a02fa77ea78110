//! Shared setup: a store on the test server in a schema of its own.

use analytics_core::model::{Event, TenantId};
use analytics_core::query::{Query, QueryPlan};
use analytics_core::store::EventStore;
use analytics_core::{reference, testkit};
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

/// Asserts `store` answers `query` as the reference does over `events`: unique users exactly
/// when the query asks so, otherwise within `tolerance` (a fraction) of the exact count.
#[allow(dead_code)] // Not every test file needs it.
pub(crate) async fn assert_matches_reference(store: &PostgresStore, events: &[Event], query: Query, tolerance: f64) {
    let exact = query.exact_unique_users();
    let want = reference::aggregate(events, &query);
    let mut got = store.summary(&QueryPlan::new(query)).await.unwrap();
    if !exact {
        let error = got.unique_users.abs_diff(want.unique_users) as f64 / want.unique_users.max(1) as f64;
        assert!(
            error <= tolerance,
            "unique users {} vs {}",
            got.unique_users,
            want.unique_users
        );
        got.unique_users = want.unique_users;
        got.unique_users_approximate = false;
    }
    assert_eq!(got, want);
}
