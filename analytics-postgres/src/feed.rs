//! [`PgChangeFeed`]: change notices between instances over PostgreSQL `LISTEN/NOTIFY`.

use analytics_core::Result;
use analytics_core::feed::{ChangeFeed, FeedEvent, FeedNotice, listen_resubscribing};
use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::error;

/// The notification channel (one per database).
pub const CHANGES_CHANNEL: &str = "analytics_changes";

/// A [`ChangeFeed`] on PostgreSQL `LISTEN/NOTIFY`, for deployments that share only the store:
/// every instance on the same database hears every other's ingests.
///
/// A notification reaches the sessions listening when it is sent; a listening connection lost
/// and made again is reported as [`FeedEvent::Resubscribed`] (every live summary is then
/// recomputed). Listening holds one connection of its own, outside the pool's count.
#[derive(Debug, Clone)]
pub struct PgChangeFeed {
    pool: PgPool,
}

impl PgChangeFeed {
    /// A feed on the database of `pool` (the store's: [`PostgresStore::pool`](crate::PostgresStore::pool)).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn subscribe(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(CHANGES_CHANNEL).await.ok()?;
        Some(listener)
    }
}

#[async_trait]
impl ChangeFeed for PgChangeFeed {
    async fn publish(&self, notice: &FeedNotice) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(notice.encode()?)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| error::map("publish a change notice", e))
    }

    async fn listen(&self, deliver: &(dyn Fn(FeedEvent) -> bool + Send + Sync)) {
        listen_resubscribing(deliver, || async {
            let listener = self.subscribe().await?;
            // `try_recv` says `None` when the connection is lost: the stream ends there, and a
            // new listener is made (so the loss is announced once it is back).
            Some(Box::pin(futures_util::stream::unfold(
                listener,
                |mut listener| async move {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => Some((notification.payload().to_owned(), listener)),
                        _ => None,
                    }
                },
            )))
        })
        .await;
    }
}
