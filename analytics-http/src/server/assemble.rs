//! The facade assembled from the flags: store, cache, change feed, breakers, and tenants
//! provisioned at startup.

#[cfg(any(feature = "postgres", feature = "redis"))]
use std::sync::Arc;
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::model::{ApiKey, Tenant, TenantId};
use analytics_core::resilience::{BreakerConfig, RateLimits};
use analytics_core::store::EventStore;

use super::BoxError;
use super::flags::{Backends, ReplicaWait};

/// The facade over the configured store and cache.
///
/// # Errors
/// Unknown backend URLs, connection failures.
pub async fn build(backends: &Backends, limits: RateLimits) -> Result<Analytics, BoxError> {
    let breaker = BreakerConfig {
        wait_in_open: Duration::from_secs(backends.breaker_open_wait),
        ..BreakerConfig::default()
    };
    let mut builder = Analytics::builder().rate_limits(limits).breaker(Some(breaker));
    // Change notices travel between instances over Redis when it is shared, else over the
    // store when it is PostgreSQL (see `analytics_core::feed`).
    let redis_shared = backends.cache.starts_with("redis://") || backends.cache.starts_with("rediss://");
    builder = match backends.store.as_str() {
        "memory" => {
            if backends.read_url.is_some() {
                return Err("--read-url needs --store postgres://…".into());
            }
            builder
        }
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let timeout = Duration::from_millis(backends.store_timeout_ms);
            let replica = backends.read_url.as_deref().map(|url| (url, backends.replica_wait_ms));
            postgres_backends(builder, url, replica, timeout, !redis_shared).await?
        }
        other => return Err(format!("--store must be `memory` or a postgres:// URL, not {other:?}").into()),
    };
    builder = match backends.cache.as_str() {
        "memory" => builder,
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            redis_backends(builder, url, Duration::from_millis(backends.cache_timeout_ms)).await?
        }
        other => return Err(format!("--cache must be `memory` or a redis:// URL, not {other:?}").into()),
    };
    Ok(builder.build()?)
}

/// The PostgreSQL store, and with `feed` its `LISTEN/NOTIFY` change feed.
#[cfg(feature = "postgres")]
async fn postgres_backends(
    builder: analytics_core::AnalyticsBuilder,
    url: &str,
    replica: Option<(&str, ReplicaWait)>,
    timeout: Duration,
    feed: bool,
) -> Result<analytics_core::AnalyticsBuilder, BoxError> {
    use analytics_postgres::ReplicaReads;
    let mut config = analytics_postgres::PostgresConfig::new(url).acquire_timeout(timeout);
    if let Some((read, wait)) = replica {
        config = config.read_replica(read).replica_reads(match wait {
            ReplicaWait::Up(wait) => ReplicaReads::Consistent { wait },
            ReplicaWait::Off => ReplicaReads::Lagging,
        });
    }
    let store = Arc::new(analytics_postgres::PostgresStore::connect(&config).await?);
    tokio::spawn(compact_periodically(store.clone()));
    let builder = if feed {
        builder.change_feed(Arc::new(analytics_postgres::PgChangeFeed::new(store.pool().clone())))
    } else {
        builder
    };
    Ok(builder.store(store))
}

/// How often the server merges the period rows ingestion left behind.
#[cfg(feature = "postgres")]
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// Merges each period's leftover `period_stats` rows into one, at start and every
/// [`COMPACT_EVERY`]. Ingestion compacts a period once enough batches have touched it, so a
/// period that stops receiving events (yesterday, once today has begun) would otherwise keep up
/// to that many rows for good, and every cold summary over it would read and merge them all
/// (measured: 7 ms instead of 2 ms for a month by day). Instances coordinate through advisory
/// locks, so any number may run this.
#[cfg(feature = "postgres")]
async fn compact_periodically(store: Arc<analytics_postgres::PostgresStore>) {
    let mut every = tokio::time::interval(COMPACT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.compact().await {
            Ok(0) => {}
            Ok(merged) => tracing::info!(merged, "compacted leftover period rows"),
            Err(error) => tracing::warn!(%error, "compacting leftover period rows failed; trying again later"),
        }
    }
}

#[cfg(not(feature = "postgres"))]
async fn postgres_backends(
    _builder: analytics_core::AnalyticsBuilder,
    _url: &str,
    _replica: Option<(&str, ReplicaWait)>,
    _: Duration,
    _feed: bool,
) -> Result<analytics_core::AnalyticsBuilder, BoxError> {
    Err("this build has no PostgreSQL support (feature `postgres`)".into())
}

#[cfg(feature = "redis")]
async fn redis_backends(
    builder: analytics_core::AnalyticsBuilder,
    url: &str,
    timeout: Duration,
) -> Result<analytics_core::AnalyticsBuilder, BoxError> {
    use analytics_core::resilience::{BreakerCache, BreakerRateLimitStore, CircuitBreaker, dependency_breaker_config};

    let config = analytics_redis::RedisConfig::new(url)
        .response_timeout(timeout)
        .connection_timeout(timeout * 2);
    let cache = analytics_redis::TieredCache::connect(&config, analytics_core::cache::MokaCache::default()).await?;
    let limiter = analytics_redis::RedisRateLimitStore::connect(&config).await?;
    let feed = analytics_redis::RedisChangeFeed::connect(&config).await?;
    // A dead Redis must not cost every request its timeout. The cache and the rate limits live
    // on the same server, so they share one breaker: the first failures of either open it for
    // both, and a request pays at most one timeout before both are skipped.
    let redis_breaker = CircuitBreaker::new(
        dependency_breaker_config(),
        Arc::new(analytics_core::clock::SystemClock::new()),
    )?;
    Ok(builder
        .change_feed(Arc::new(feed))
        .dependency_breaker("cache", redis_breaker.clone())
        .dependency_breaker("rateLimits", redis_breaker.clone())
        .cache(Arc::new(BreakerCache::new(Arc::new(cache), redis_breaker.clone())))
        .rate_limit_store(Arc::new(BreakerRateLimitStore::new(Arc::new(limiter), redis_breaker))))
}

#[cfg(not(feature = "redis"))]
async fn redis_backends(
    _builder: analytics_core::AnalyticsBuilder,
    _url: &str,
    _: Duration,
) -> Result<analytics_core::AnalyticsBuilder, BoxError> {
    Err("this build has no Redis support (feature `redis`)".into())
}

/// Provisions `NAME:KEY`: creates the tenant unless it exists, registers the key unless it is
/// already the tenant's. A key registered to another tenant is an error.
///
/// # Errors
/// A malformed spec, a key of another tenant, store errors.
pub async fn bootstrap_tenant(analytics: &Analytics, spec: &str) -> Result<(), BoxError> {
    let (name, key) = spec
        .split_once(':')
        .ok_or_else(|| format!("--bootstrap-tenant wants NAME:KEY, got {spec:?}"))?;
    let id = TenantId::parse(name)?;
    let key = ApiKey::parse(key)?;
    let store = analytics.store();
    match store
        .create_tenant(&Tenant::new(id.clone(), name, analytics.clock().now())?)
        .await
    {
        Ok(()) | Err(analytics_core::Error::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match store.add_api_key(&id, &key.hash()).await {
        Ok(()) => Ok(()),
        Err(analytics_core::Error::Conflict(_)) => match analytics.authenticate(&key).await? {
            owner if owner == id => Ok(()),
            _ => Err(format!("the key of --bootstrap-tenant {name} belongs to another tenant").into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bootstrap_is_idempotent_and_keys_stay_with_their_tenant() {
        let analytics = Analytics::in_memory();
        bootstrap_tenant(&analytics, "acme:key-acme-123").await.unwrap();
        bootstrap_tenant(&analytics, "acme:key-acme-123").await.unwrap();
        let acme = analytics
            .authenticate(&ApiKey::parse("key-acme-123").unwrap())
            .await
            .unwrap();
        assert_eq!(acme.as_str(), "acme");
        assert!(bootstrap_tenant(&analytics, "beta:key-acme-123").await.is_err());
        assert!(bootstrap_tenant(&analytics, "no-colon").await.is_err());
    }
}
