//! What every [`ChangeFeed`] must do, for each implementation's tests on its real server: a
//! notice published on one instance's feed reaches another's listener, and a listener whose
//! subscription was cut says so once it is back. Notices carry a random origin, so runs and
//! tests sharing a server's channel do not confuse each other.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cache::Tag;
use crate::feed::{ChangeFeed, FeedEvent, FeedNotice};
use crate::model::TenantId;

/// Starts `feed` listening; its events arrive on the returned receiver (until it is dropped).
pub fn listen(feed: Arc<dyn ChangeFeed>) -> mpsc::UnboundedReceiver<FeedEvent> {
    let (events, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let deliver = move |event| events.send(event).is_ok();
        feed.listen(&deliver).await;
    });
    received
}

/// A notice of a random origin (its `accepted` is `n`).
///
/// # Panics
/// Without OS randomness.
pub fn notice(n: usize) -> FeedNotice {
    FeedNotice {
        origin: getrandom::u64().expect("OS randomness"),
        tenant: TenantId::parse("acme").expect("a valid tenant"),
        accepted: n,
        tags: vec![Tag::date(chrono::NaiveDate::from_ymd_opt(2024, 5, 10).expect("a date"))],
    }
}

/// Publishes `sent` on `from` until `heard` delivers it (a subscription is made
/// asynchronously: a notice published before it is lost, as the trait allows). Other notices
/// and resubscriptions (other tests cutting a shared server's subscriptions) are skipped.
///
/// # Panics
/// When the listener ends or never hears it (after 300 attempts 100 ms apart: a hang guard).
pub async fn publish_until_heard(
    from: &dyn ChangeFeed,
    heard: &mut mpsc::UnboundedReceiver<FeedEvent>,
    sent: &FeedNotice,
) {
    for _ in 0..300 {
        from.publish(sent).await.expect("publish");
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        while let Ok(event) = tokio::time::timeout_at(deadline, heard.recv()).await {
            if event.expect("the listener ended") == FeedEvent::Notice(sent.clone()) {
                return;
            }
        }
    }
    panic!("the listener never heard {sent:?}");
}

/// A notice published on `a` reaches the listener of `b`, twice in a row.
pub async fn notices_cross(a: Arc<dyn ChangeFeed>, b: Arc<dyn ChangeFeed>) {
    let mut on_b = listen(b);
    publish_until_heard(a.as_ref(), &mut on_b, &notice(1)).await;
    publish_until_heard(a.as_ref(), &mut on_b, &notice(2)).await;
}

/// A listener on `b` whose subscription `cut` ends announces [`FeedEvent::Resubscribed`] and
/// then hears `a` again.
///
/// # Panics
/// When no resubscription is announced within 30 s (a hang guard).
pub async fn a_cut_subscription_is_announced<F, Fut>(a: Arc<dyn ChangeFeed>, b: Arc<dyn ChangeFeed>, cut: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut on_b = listen(b);
    publish_until_heard(a.as_ref(), &mut on_b, &notice(1)).await;
    cut().await;
    let resubscribed = tokio::time::timeout(Duration::from_secs(30), async {
        while on_b.recv().await.expect("the listener ended") != FeedEvent::Resubscribed {}
    })
    .await;
    assert!(resubscribed.is_ok(), "no resubscription announced within 30 s");
    publish_until_heard(a.as_ref(), &mut on_b, &notice(2)).await;
}
