//! [`RedisConfig`] and the shared connection every backend of this crate uses.

use std::time::Duration;

use analytics_core::{Error, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};

use crate::error;
use crate::keys::Keys;

/// Where and how the Redis backends connect.
///
/// ```
/// use std::time::Duration;
/// use analytics_redis::RedisConfig;
///
/// let standalone = RedisConfig::new("redis://cache.internal:6379").prefix("shop-analytics");
/// let cluster = RedisConfig::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .response_timeout(Duration::from_millis(250));
/// assert!(standalone.validate().is_ok() && cluster.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct RedisConfig {
    nodes: Vec<String>,
    cluster: bool,
    prefix: String,
    response_timeout: Duration,
    connection_timeout: Duration,
}

impl RedisConfig {
    /// One Redis server at `url` (`redis://[user:password@]host:port[/db]`). Defaults: key prefix
    /// `analytics`, 1 s response timeout, 2 s connection timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            nodes: vec![url.into()],
            cluster: false,
            prefix: "analytics".into(),
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(2),
        }
    }

    /// A Redis Cluster reached through any of `nodes` (the rest of the topology is discovered).
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            nodes: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            ..Self::new("")
        }
    }

    /// The prefix of every key (and of the invalidation channel), so several applications or
    /// test runs can share a server. No braces or whitespace.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a command may take before it fails with [`Error::Timeout`].
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long connecting may take.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `url`, `nodes`, `prefix` or `responseTimeout`.
    pub fn validate(&self) -> Result<()> {
        Keys::new(&self.prefix)?;
        if self.nodes.is_empty() {
            return Err(Error::invalid("nodes", "a cluster needs at least one node"));
        }
        let field = if self.cluster { "nodes" } else { "url" };
        for node in &self.nodes {
            if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                return Err(Error::invalid(field, "must be a redis:// or rediss:// URL"));
            }
            redis::parse_redis_url(node).ok_or_else(|| Error::invalid(field, "is not a Redis URL"))?;
        }
        if self.response_timeout.is_zero() || self.connection_timeout.is_zero() {
            return Err(Error::invalid("responseTimeout", "timeouts must be positive"));
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connection_timeout
    }

    pub(crate) fn keys(&self) -> Result<Keys> {
        Keys::new(&self.prefix)
    }

    /// Connects: a reconnecting connection manager to a single server, or a cluster connection
    /// (which follows MOVED/ASK redirections and reconnects to nodes itself).
    pub(crate) async fn connect(&self) -> Result<RedisConnection> {
        self.validate()?;
        if self.cluster {
            let client = ClusterClientBuilder::new(self.nodes.clone())
                .response_timeout(self.response_timeout)
                .connection_timeout(self.connection_timeout)
                .build()
                .map_err(|e| Error::invalid("nodes", e.to_string()))?;
            let connection = client
                .get_async_connection()
                .await
                .map_err(|e| error::map("connect", e))?;
            Ok(RedisConnection::Cluster(Box::new(connection)))
        } else {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(self.response_timeout))
                .set_connection_timeout(Some(self.connection_timeout))
                // No retries inside the manager: a refused connection fails the command at
                // once (core's breaker decides when to try again) instead of holding every
                // command through an exponential backoff.
                .set_number_of_retries(0);
            let manager = self
                .client()?
                .get_connection_manager_with_config(config)
                .await
                .map_err(|e| error::map("connect", e))?;
            Ok(RedisConnection::Single(manager))
        }
    }

    /// A client of the first node, for pub/sub (a cluster delivers classic pub/sub messages to
    /// subscribers on every node).
    pub(crate) fn client(&self) -> Result<Client> {
        let field = if self.cluster { "nodes" } else { "url" };
        Client::open(self.nodes[0].as_str()).map_err(|e| Error::invalid(field, e.to_string()))
    }
}

/// A connection to a single server or to a cluster. Cheap to clone: clones multiplex over the
/// same connections.
#[derive(Clone)]
pub(crate) enum RedisConnection {
    /// A reconnecting connection to one server.
    Single(ConnectionManager),
    /// A cluster connection.
    Cluster(Box<ClusterConnection>),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

/// The connection manager keeps a failed connection attempt until a command sees it, and only
/// then starts a new one: after Redis comes back, the first command would fail on the old
/// refusal. A refused command was never sent, so it is sent once more, on the attempt its
/// failure started: at once when Redis is back, refused again (in microseconds) when it is not.
impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => Box::pin(async move {
                match c.req_packed_command(cmd).await {
                    Err(e) if e.is_connection_refusal() => c.req_packed_command(cmd).await,
                    done => done,
                }
            }),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => Box::pin(async move {
                match c.req_packed_commands(pipeline, offset, count).await {
                    Err(e) if e.is_connection_refusal() => c.req_packed_commands(pipeline, offset, count).await,
                    done => done,
                }
            }),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(config: &RedisConfig) -> String {
        match config.validate() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(field(&RedisConfig::new("http://x")), "url");
        assert_eq!(field(&RedisConfig::cluster(Vec::<String>::new())), "nodes");
        assert_eq!(field(&RedisConfig::cluster(["redis://a:1", "tcp://b"])), "nodes");
        assert_eq!(field(&RedisConfig::new("redis://a:1").prefix("a{b}")), "prefix");
        assert_eq!(
            field(&RedisConfig::new("redis://a:1").response_timeout(Duration::ZERO)),
            "responseTimeout"
        );
        assert!(RedisConfig::new("redis://127.0.0.1:6379/2").validate().is_ok());
    }
}
