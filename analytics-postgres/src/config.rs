//! [`PostgresConfig`]: where the store connects and how.

use crate::replica::ReplicaReads;
use std::str::FromStr;
use std::time::Duration;

use analytics_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use crate::error;

/// How [`PostgresStore`](crate::PostgresStore) connects.
///
/// ```
/// use std::time::Duration;
/// use analytics_postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app@db.internal/analytics")
///     .read_replica("postgres://app@replica.internal/analytics")
///     .max_connections(32)
///     .statement_timeout(Duration::from_secs(2));
/// assert_eq!(config.url(), "postgres://app@db.internal/analytics");
/// ```
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    url: String,
    read_url: Option<String>,
    schema: Option<String>,
    max_connections: u32,
    read_max_connections: u32,
    statement_timeout: Duration,
    acquire_timeout: Duration,
    migrate: bool,
    compact_after: u32,
    period_cache_bytes: u64,
    replica_reads: ReplicaReads,
}

impl PostgresConfig {
    /// A configuration for the primary at `url` (a `postgres://` URL), with defaults: 16 write
    /// and 16 read connections, 5 s statement timeout, 5 s pool acquire timeout, migrations
    /// applied on connect, the server's default schema, a period compacted after 16 batches,
    /// 16 MiB of decoded period rows kept.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            read_url: None,
            schema: None,
            max_connections: 16,
            read_max_connections: 16,
            statement_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            migrate: true,
            compact_after: 16,
            period_cache_bytes: 16 << 20,
            replica_reads: ReplicaReads::default(),
        }
    }

    /// The primary's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves summaries, the event log and experiment counts from a replica at `url` (one
    /// server: the freshness check asks it where it is). Writes, tenants and API keys stay on
    /// the primary. By default a read waits for the replica to replay every write acknowledged
    /// before it, up to 100 ms, else reads the primary: see [`replica_reads`](Self::replica_reads).
    pub fn read_replica(mut self, url: impl Into<String>) -> Self {
        self.read_url = Some(url.into());
        self
    }

    /// What a read does about the replica's lag (default [`ReplicaReads::Consistent`], 100 ms;
    /// see the [`replica` module](crate::replica)).
    pub fn replica_reads(mut self, policy: ReplicaReads) -> Self {
        self.replica_reads = policy;
        self
    }

    pub(crate) fn replica_policy(&self) -> ReplicaReads {
        self.replica_reads
    }

    /// Keeps every table in `schema` (created if missing) instead of the server's default
    /// search path. Lowercase ASCII letters, digits and `_`, starting with a letter or `_`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Size of the write pool (and of the read pool unless set separately).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self.read_max_connections = n;
        self
    }

    /// Size of the read pool (used only with a replica).
    pub fn read_max_connections(mut self, n: u32) -> Self {
        self.read_max_connections = n;
        self
    }

    /// The server cancels any statement running longer (maps to [`Error::Timeout`]).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How long a call waits for a free pooled connection (maps to [`Error::Timeout`]).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether connecting applies the embedded migrations (default true). Turn it off when
    /// migrations run as a deploy step ([`MIGRATOR`](crate::MIGRATOR)).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// After how many appended rows a period's `period_stats` rows are merged into one, by the
    /// `append` call that wrote the last of them (default 16; 0 never compacts on ingest, for
    /// deployments that run [`PostgresStore::compact`](crate::PostgresStore::compact) on a
    /// schedule instead). Lower keeps summaries cheaper, higher keeps ingestion cheaper; rows
    /// per period stay at most about this many per store instance.
    pub fn compact_after(mut self, batches: u32) -> Self {
        self.compact_after = batches;
        self
    }

    /// About how many bytes of decoded `period_stats` rows the store keeps between summaries
    /// (default 16 MiB; 0 keeps none). Rows never change once written, so a kept row is never
    /// stale: every summary still asks PostgreSQL which rows its periods have, and fetches only
    /// the contents of rows not kept. A month's rows on a site with a few hundred pages (a
    /// dozen day and week rows) take under a megabyte; a summary that finds its rows here skips
    /// transferring and decoding them (see the crate docs for the figures).
    pub fn period_cache_bytes(mut self, bytes: u64) -> Self {
        self.period_cache_bytes = bytes;
        self
    }

    pub(crate) fn period_cache_capacity(&self) -> u64 {
        self.period_cache_bytes
    }

    pub(crate) fn compaction_threshold(&self) -> u32 {
        self.compact_after
    }

    pub(crate) fn runs_migrations(&self) -> bool {
        self.migrate
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `url`, `readReplica`, `schema`, `maxConnections` or
    /// `statementTimeout`.
    pub fn validate(&self) -> Result<()> {
        self.options(&self.url, "url")?;
        if let Some(read) = &self.read_url {
            self.options(read, "readReplica")?;
        }
        if let Some(schema) = &self.schema {
            check_schema(schema)?;
        }
        if self.max_connections == 0 || self.read_max_connections == 0 {
            return Err(Error::invalid("maxConnections", "must be at least 1"));
        }
        if self.statement_timeout.is_zero() {
            return Err(Error::invalid("statementTimeout", "must be positive"));
        }
        Ok(())
    }

    fn options(&self, url: &str, field: &str) -> Result<PgConnectOptions> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid(field, "must be a postgres:// or postgresql:// URL"));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid(field, format!("is not a PostgreSQL URL ({e})")))?;
        let timeout = self.statement_timeout.as_millis().to_string();
        let mut settings = vec![
            ("statement_timeout", timeout.clone()),
            ("lock_timeout", timeout),
            // Every statement the store runs is an index range scan of milliseconds; starting
            // parallel workers costs more than that (measured: 2 ms of work became 11 ms).
            ("max_parallel_workers_per_gather", "0".into()),
            // Every statement is prepared once per connection and its plan does not depend on
            // the values bound (index range scans on (tenant, time) or (tenant, level, period)),
            // but PostgreSQL re-plans statements whose generic plan it estimates dearer, which
            // was 13–14% of a cold summary (measured; exact-user counts over a month unchanged).
            ("plan_cache_mode", "force_generic_plan".into()),
        ];
        if let Some(schema) = &self.schema {
            settings.push(("search_path", schema.clone()));
        }
        Ok(options.options(settings))
    }

    /// Connects the write pool (and the read pool, if any).
    pub(crate) async fn connect(&self) -> Result<(PgPool, Option<PgPool>)> {
        self.validate()?;
        if let Some(schema) = &self.schema {
            create_schema(&self.url, schema).await?;
        }
        let write = self.pool(&self.url, "url", self.max_connections).await?;
        let read = match &self.read_url {
            Some(url) => Some(self.pool(url, "readReplica", self.read_max_connections).await?),
            None => None,
        };
        Ok((write, read))
    }

    async fn pool(&self, url: &str, field: &str, size: u32) -> Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(self.options(url, field)?)
            .await
            .map_err(|e| error::map("connect", e))
    }
}

fn check_schema(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "schema",
            "must be 1–63 lowercase ASCII letters, digits or '_', not starting with a digit",
        ))
    }
}

async fn create_schema(url: &str, schema: &str) -> Result<()> {
    let options = PgConnectOptions::from_str(url).map_err(|e| Error::invalid("url", e.to_string()))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| error::map("connect", e))?;
    // The name was checked by `check_schema`, so quoting it is enough.
    let created = pool
        .execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
        .await;
    pool.close().await;
    match created {
        Ok(_) => Ok(()),
        // Two stores creating the same schema at once: one wins, both may proceed.
        Err(e) if error::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(error::map("create schema", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(config: &PostgresConfig) -> String {
        match config.validate() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(field(&PostgresConfig::new("mysql://x")), "url");
        let base = PostgresConfig::new("postgres://u@localhost/db");
        assert!(base.validate().is_ok());
        assert_eq!(field(&base.clone().read_replica("nope://")), "readReplica");
        assert_eq!(field(&base.clone().schema("Bad-Name")), "schema");
        assert_eq!(field(&base.clone().schema("1abc")), "schema");
        assert_eq!(field(&base.clone().max_connections(0)), "maxConnections");
        assert_eq!(field(&base.statement_timeout(Duration::ZERO)), "statementTimeout");
    }
}
