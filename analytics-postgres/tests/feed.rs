//! The PostgreSQL change feed on the real server: a notice published by one instance reaches the
//! listeners of the others, and a listener whose connection is cut hears that it listens again.

mod support;

use std::sync::Arc;
use std::time::Duration;

use analytics_core::feed::{ChangeFeed, FeedEvent, FeedNotice};
use analytics_core::model::TenantId;
use analytics_postgres::PgChangeFeed;
use tokio::sync::mpsc;

/// Starts `feed` listening; its events arrive on the returned receiver.
fn listen(feed: Arc<PgChangeFeed>) -> mpsc::UnboundedReceiver<FeedEvent> {
    let (events, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let deliver = move |event| events.send(event).is_ok();
        feed.listen(&deliver).await;
    });
    received
}

fn notice(origin: u64, n: usize) -> FeedNotice {
    FeedNotice {
        origin,
        tenant: TenantId::parse("acme").unwrap(),
        accepted: n,
        tags: vec![analytics_core::cache::Tag::date("2024-05-10".parse().unwrap())],
    }
}

/// Publishes until the listener hears it (listening starts asynchronously). Notices of other
/// origins (other tests on the same database) and resubscriptions caused by them are skipped.
async fn publish_until_heard(
    from: &PgChangeFeed,
    received: &mut mpsc::UnboundedReceiver<FeedEvent>,
    sent: &FeedNotice,
) {
    for _ in 0..300 {
        from.publish(sent).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(event) = tokio::time::timeout_at(deadline, received.recv()).await {
            match event.expect("the listener ended") {
                FeedEvent::Notice(heard) if heard == *sent => return,
                _ => {}
            }
        }
    }
    panic!("the listener never heard {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_reaches_the_other_instances() {
    let Some(store) = support::store("feed").await else {
        return;
    };
    let (a, b) = (
        PgChangeFeed::new(store.pool().clone()),
        Arc::new(PgChangeFeed::new(store.pool().clone())),
    );
    let origin = getrandom::u64().unwrap();
    let mut on_b = listen(b);
    publish_until_heard(&a, &mut on_b, &notice(origin, 1)).await;
    publish_until_heard(&a, &mut on_b, &notice(origin, 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_reported_when_it_listens_again() {
    let Some(store) = support::store("feed_cut").await else {
        return;
    };
    let a = PgChangeFeed::new(store.pool().clone());
    let origin = getrandom::u64().unwrap();
    let mut on_b = listen(Arc::new(PgChangeFeed::new(store.pool().clone())));
    publish_until_heard(&a, &mut on_b, &notice(origin, 1)).await;

    // End the listening sessions, as a network fault or a restart would.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND query ILIKE 'LISTEN%analytics_changes%'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let resubscribed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if on_b.recv().await.expect("the listener ended") == FeedEvent::Resubscribed {
                return;
            }
        }
    })
    .await;
    assert!(resubscribed.is_ok(), "no resubscription within 30 s (a hang guard)");
    publish_until_heard(&a, &mut on_b, &notice(origin, 2)).await;
}
