//! The Redis change feed on the real servers: a notice published by one instance reaches the
//! listeners of the others, and a listener whose subscription is cut hears that it resubscribed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use analytics_core::feed::{ChangeFeed, FeedEvent, FeedNotice};
use analytics_core::model::TenantId;
use analytics_redis::{RedisChangeFeed, RedisConfig};
use tokio::sync::mpsc;

/// Starts `feed` listening; its events arrive on the returned receiver.
fn listen(feed: Arc<RedisChangeFeed>) -> mpsc::UnboundedReceiver<FeedEvent> {
    let (events, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let deliver = move |event| events.send(event).is_ok();
        feed.listen(&deliver).await;
    });
    received
}

/// The next event; a hang guard, not a timing assertion.
async fn next(received: &mut mpsc::UnboundedReceiver<FeedEvent>) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("no event within 30 s")
        .expect("the listener ended")
}

fn notice(origin: u64, n: usize) -> FeedNotice {
    FeedNotice {
        origin,
        tenant: TenantId::parse("acme").unwrap(),
        accepted: n,
        tags: vec![analytics_core::cache::Tag::date("2024-05-10".parse().unwrap())],
    }
}

/// Publishes until the listener hears it (a subscription is made asynchronously).
async fn publish_until_heard(from: &RedisChangeFeed, received: &mut mpsc::UnboundedReceiver<FeedEvent>, n: usize) {
    for _ in 0..300 {
        from.publish(&notice(1, n)).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(100), received.recv()).await {
            Ok(Some(FeedEvent::Notice(heard))) => {
                assert_eq!(heard, notice(1, n));
                return;
            }
            // Another test of this file cut every subscription: not this test's concern.
            Ok(Some(FeedEvent::Resubscribed)) => {}
            Ok(None) => panic!("the listener ended"),
            Err(_) => {}
        }
    }
    panic!("the listener never heard notice {n}");
}

async fn feeds_reach_each_other(config: RedisConfig) {
    let (a, b) = (
        RedisChangeFeed::connect(&config).await.unwrap(),
        Arc::new(RedisChangeFeed::connect(&config).await.unwrap()),
    );
    let mut on_b = listen(b.clone());
    publish_until_heard(&a, &mut on_b, 1).await;
    publish_until_heard(&a, &mut on_b, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_the_other_instances() {
    let Some(config) = support::standalone("feed") else {
        return;
    };
    feeds_reach_each_other(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_the_other_instances_on_a_cluster() {
    let Some(config) = support::cluster("feed_cluster") else {
        return;
    };
    feeds_reach_each_other(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_subscription_is_reported_when_it_is_back() {
    let Some((config, _)) = support::standalone_with_prefix("feed_cut") else {
        return;
    };
    let a = RedisChangeFeed::connect(&config).await.unwrap();
    let b = Arc::new(RedisChangeFeed::connect(&config).await.unwrap());
    let mut on_b = listen(b.clone());
    publish_until_heard(&a, &mut on_b, 1).await;

    // Cut every subscriber connection, as a network fault would.
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

    assert_eq!(
        next(&mut on_b).await,
        FeedEvent::Resubscribed,
        "notices may have been missed"
    );
    a.publish(&notice(1, 3)).await.unwrap();
    assert_eq!(
        next(&mut on_b).await,
        FeedEvent::Notice(notice(1, 3)),
        "and it hears again"
    );
}
