//! Reads through a streaming replica that lags (the test script applies each commit 2 s late):
//! an event is counted by the summary read right after its ingest, every time, and the answer the
//! cache keeps afterwards is the new one; once the replica has caught up, it answers.

mod support;

use std::sync::Arc;

use analytics_core::Analytics;
use analytics_core::cache::MokaCache;
use analytics_core::model::{EventInput, TenantId};
use analytics_core::query::SummaryRequest;
use analytics_core::testkit::server_url;
use analytics_postgres::PostgresStore;

fn click(id: &str) -> EventInput {
    serde_json::from_value(serde_json::json!({"id": id, "eventType": "click", "timestamp": "2024-05-10T10:00:00Z"}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_a_lagging_replica_see_every_acknowledged_write() {
    let Some(config) = support::config("replica") else {
        return;
    };
    let Some(replica) = server_url("DATABASE_REPLICA_URL", "replica") else {
        return;
    };
    let store = Arc::new(PostgresStore::connect(&config.read_replica(replica)).await.unwrap());
    let analytics = Analytics::builder()
        .store(store.clone())
        .cache(Arc::new(MokaCache::default()))
        .build()
        .unwrap();
    let tenant = TenantId::parse("lagged").unwrap();
    let may = SummaryRequest::new("2024-05-01", "2024-05-31");
    for n in 1..=5_u64 {
        analytics.ingest(&tenant, vec![click(&format!("e{n}"))]).await.unwrap();
        let read = analytics.summary(&tenant, &may).await.unwrap();
        assert_eq!(read.body.total_events, n, "the read right after the ingest counts it");
        let again = analytics.summary(&tenant, &may).await.unwrap();

        assert!(again.metadata.cached, "{:?}", again.metadata);
        assert_eq!(again.body.total_events, n, "and the answer cached is the new one");
    }
    assert!(store.replica_stats().primary > 0, "the lagging replica was passed over");

    // Once the replica has replayed the writes, it answers. Each attempt waits at most the
    // policy's 100 ms before reading the primary; the deadline is a hang guard, generous
    // because the replica applies commits 2 s late and CI machines are slow.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut attempts = 0;
    while store.replica_stats().replica == 0 {
        attempts += 1;
        let read = analytics
            .summary(
                &tenant,
                &SummaryRequest {
                    skip_cache: true,
                    ..may.clone()
                },
            )
            .await
            .unwrap();
        assert_eq!(read.body.total_events, 5);
        assert!(
            std::time::Instant::now() < deadline || store.replica_stats().replica > 0,
            "the replica never caught up: {attempts} attempts, {:?}, last answer {:?}",
            store.replica_stats(),
            read.metadata
        );
    }
}
