//! [`RedisChangeFeed`]: change notices between instances over Redis pub/sub.

use analytics_core::Result;
use analytics_core::feed::{ChangeFeed, FeedEvent, FeedNotice, listen_resubscribing};
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::Client;

use crate::connection::{RedisConfig, RedisConnection};
use crate::error;

/// A [`ChangeFeed`] on Redis pub/sub (a channel under the configuration's key prefix): every
/// instance of a deployment that shares the Redis hears every other's ingests.
///
/// Pub/sub delivers to the subscribers connected at the time; a subscription lost and made
/// again is reported as [`FeedEvent::Resubscribed`] (every live summary is then recomputed).
/// On a cluster, classic pub/sub reaches the subscribers of every node.
#[derive(Debug)]
pub struct RedisChangeFeed {
    connection: RedisConnection,
    client: Client,
    channel: String,
}

impl RedisChangeFeed {
    /// Connects to the server or cluster `config` names.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](analytics_core::Error::InvalidInput) naming a bad setting;
    /// transient errors when Redis is unreachable.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        let channel = config.keys()?.changes_channel();
        Ok(Self {
            connection: config.connect().await?,
            client: config.client()?,
            channel,
        })
    }
}

#[async_trait]
impl ChangeFeed for RedisChangeFeed {
    async fn publish(&self, notice: &FeedNotice) -> Result<()> {
        let published: std::result::Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(notice.encode()?)
            .query_async(&mut self.connection.clone())
            .await;
        published
            .map(drop)
            .map_err(|e| error::map("publish a change notice", e))
    }

    async fn listen(&self, deliver: &(dyn Fn(FeedEvent) -> bool + Send + Sync)) {
        listen_resubscribing(deliver, || async {
            let mut pubsub = self.client.get_async_pubsub().await.ok()?;
            pubsub.subscribe(&self.channel).await.ok()?;
            // Ends when the connection is lost.
            Some(
                pubsub
                    .into_on_message()
                    .filter_map(|message| std::future::ready(message.get_payload::<String>().ok())),
            )
        })
        .await;
    }
}
