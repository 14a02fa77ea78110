//! The Redis change feed on the real servers, through core's feed suite: a notice published by
//! one instance reaches the listeners of the others, and a listener whose subscription is cut
//! says so once it is back.

mod support;

use std::sync::Arc;

use analytics_core::testkit::feed;
use analytics_redis::{RedisChangeFeed, RedisConfig};

async fn two(config: &RedisConfig) -> (Arc<RedisChangeFeed>, Arc<RedisChangeFeed>) {
    (
        Arc::new(RedisChangeFeed::connect(config).await.unwrap()),
        Arc::new(RedisChangeFeed::connect(config).await.unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_the_other_instances() {
    let Some(config) = support::standalone("feed") else {
        return;
    };
    let (a, b) = two(&config).await;
    feed::notices_cross(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_the_other_instances_on_a_cluster() {
    let Some(config) = support::cluster("feed_cluster") else {
        return;
    };
    let (a, b) = two(&config).await;
    feed::notices_cross(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_subscription_is_announced_when_it_is_back() {
    let Some(config) = support::standalone("feed_cut") else {
        return;
    };
    let (a, b) = two(&config).await;
    feed::a_cut_subscription_is_announced(a, b, || async {
        // Every subscriber connection is cut, as a network fault would.
        let url = std::env::var("REDIS_URL").unwrap();
        let mut admin = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .unwrap();
    })
    .await;
}
