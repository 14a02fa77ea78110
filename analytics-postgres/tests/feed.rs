//! The PostgreSQL change feed on the real server, through core's feed suite: a notice published
//! by one instance reaches the listeners of the others, and a listener whose connection is cut
//! says so once it listens again.

mod support;

use std::sync::Arc;

use analytics_core::testkit::feed;
use analytics_postgres::PgChangeFeed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_the_other_instances() {
    let Some(store) = support::store("feed").await else {
        return;
    };
    let feed_of = || Arc::new(PgChangeFeed::new(store.pool().clone()));
    feed::notices_cross(feed_of(), feed_of()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_announced_when_it_listens_again() {
    let Some(store) = support::store("feed_cut").await else {
        return;
    };
    let feed_of = || Arc::new(PgChangeFeed::new(store.pool().clone()));
    feed::a_cut_subscription_is_announced(feed_of(), feed_of(), || async {
        // The listening sessions end, as a network fault or a restart would end them.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND query ILIKE 'LISTEN%analytics_changes%'",
        )
        .execute(store.pool())
        .await
        .unwrap();
    })
    .await;
}
