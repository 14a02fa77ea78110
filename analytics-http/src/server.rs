//! The `analytics-server` binary: flags and environment, assembling the facade from them, and
//! serving with graceful shutdown.
//!
//! ```text
//! analytics-server [--listen 127.0.0.1:3001] [--store memory|postgres://…] [--read-url postgres://…]
//!                  [--cache memory|redis://…] [--auth api-key|header]
//!                  [--bootstrap-tenant NAME:KEY]… [--rate-limit CLASS=LIMIT/SECONDS]…
//! analytics-server tenant create NAME [--store postgres://…]
//! ```
//!
//! With no flags it serves the embedded default (in-memory store, moka cache, in-process rate
//! limits) on 127.0.0.1:3001. Every flag has an `ANALYTICS_*` environment variable.

use std::net::SocketAddr;
#[cfg(any(feature = "postgres", feature = "redis"))]
use std::sync::Arc;
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::model::{ApiKey, Tenant, TenantId};
use analytics_core::resilience::{BreakerConfig, EndpointClass, FailMode, LimitRule, RateLimitPolicy, RateLimits};
use analytics_core::store::EventStore;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::state::{AppState, AuthMode, HttpConfig};

/// Command line of `analytics-server`.
#[derive(Debug, Parser)]
#[command(name = "analytics-server", version, about = "Serves the analytics HTTP API.")]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Where data lives.
    #[command(flatten)]
    pub backends: Backends,
    /// How to serve.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tenant administration.
    Tenant {
        /// The action.
        #[command(subcommand)]
        action: TenantCommand,
    },
}

/// Tenant administration.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Registers a tenant in the store and prints a new API key for it (shown only once).
    Create {
        /// The tenant's id (ASCII letters, digits, `_ - . :`), also used as its name.
        name: String,
    },
}

/// Store and cache.
#[derive(Debug, Args)]
pub struct Backends {
    /// `memory` or a `postgres://` URL.
    #[arg(long, env = "ANALYTICS_STORE", default_value = "memory", global = true)]
    pub store: String,
    /// A PostgreSQL read replica URL for summaries and the event log.
    #[arg(long, env = "ANALYTICS_READ_URL", global = true)]
    pub read_url: Option<String>,
    /// With `--read-url`: how long a read waits for the replica to replay every write
    /// acknowledged before it, before reading the primary instead (so reads never miss an
    /// acknowledged write and no lagging answer is cached). `off` reads the replica as it is.
    #[arg(long, env = "ANALYTICS_REPLICA_WAIT_MS", default_value = "100", value_parser = parse_replica_wait, global = true)]
    pub replica_wait_ms: ReplicaWait,
    /// `memory` or a `redis://` URL (a moka tier in front of Redis, kept coherent across
    /// instances; rate limits are then shared through Redis too).
    #[arg(long, env = "ANALYTICS_CACHE", default_value = "memory", global = true)]
    pub cache: String,
    /// Milliseconds a request waits for a PostgreSQL connection (to connect, or for one to
    /// free up) before it fails as unavailable: bounds the wait while the store is first
    /// failing, before the breaker opens.
    #[arg(long, env = "ANALYTICS_STORE_TIMEOUT_MS", default_value_t = 500, global = true)]
    pub store_timeout_ms: u64,
    /// Seconds the store's breaker stays open before trial calls test it again (it also opens
    /// after 5 failed calls in a row, however little traffic there is).
    #[arg(long, env = "ANALYTICS_BREAKER_OPEN_WAIT", default_value_t = 30, global = true)]
    pub breaker_open_wait: u64,
    /// Milliseconds to wait for a Redis reply (connecting: twice that). Redis has a breaker of
    /// its own, shared by the cache and the rate limits: after 3 failures in a row (a refused
    /// connection fails at once) it is left alone for 5 s, summaries come from the store
    /// uncached and limits follow their failure policy.
    #[arg(long, env = "ANALYTICS_CACHE_TIMEOUT_MS", default_value_t = 250, global = true)]
    pub cache_timeout_ms: u64,
}

/// Serving options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ANALYTICS_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// How callers name their tenant: `api-key` (X-API-Key) or `header` (X-Tenant-Id, trusted:
    /// only behind a gateway that authenticates callers).
    #[arg(long, env = "ANALYTICS_AUTH", value_enum, default_value = "api-key")]
    pub auth: AuthMode,
    /// With `--auth header`: the tenant of requests that send no X-Tenant-Id (clients that
    /// never send one, single-tenant deployments).
    #[arg(long, env = "ANALYTICS_DEFAULT_TENANT")]
    pub default_tenant: Option<String>,
    /// Provisions a tenant with a known API key at start (`NAME:KEY`; repeatable; idempotent).
    #[arg(
        long = "bootstrap-tenant",
        env = "ANALYTICS_BOOTSTRAP_TENANTS",
        value_delimiter = ','
    )]
    pub bootstrap_tenants: Vec<String>,
    /// Overrides a rate limit: `CLASS=LIMIT/SECONDS` with CLASS one of analytics, events-write,
    /// events-read, general (repeatable). Defaults: analytics 100/60, events-write 1000/60,
    /// events-read 100/60, general 1000 per 15 minutes.
    #[arg(long = "rate-limit", env = "ANALYTICS_RATE_LIMITS", value_delimiter = ',')]
    pub rate_limits: Vec<String>,
    /// Seconds a request may take to produce its response.
    #[arg(long, env = "ANALYTICS_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// The largest request body, in bytes (a larger declared Content-Length is refused with 413
    /// before reading).
    #[arg(long, env = "ANALYTICS_BODY_LIMIT", default_value_t = 16 * 1024 * 1024)]
    pub body_limit: usize,
    /// Seconds a request body may take to arrive (then 408).
    #[arg(long, env = "ANALYTICS_BODY_TIMEOUT", default_value_t = 10)]
    pub body_timeout: u64,
}

/// A startup failure, printed by `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the command line.
///
/// # Errors
/// Bad flags, unreachable backends, a listener that cannot bind.
pub async fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Some(Command::Tenant {
            action: TenantCommand::Create { name },
        }) => create_tenant(&cli.backends, &name).await,
        None => serve(&cli.backends, &cli.serve).await,
    }
}

async fn create_tenant(backends: &Backends, name: &str) -> Result<(), BoxError> {
    if backends.store == "memory" {
        return Err("`tenant create` needs a persistent store: pass --store postgres://…".into());
    }
    let analytics = build(backends, RateLimits::default()).await?;
    let (tenant, key) = analytics.create_tenant(TenantId::parse(name)?, name).await?;
    println!(
        "tenant {} created; API key (shown once): {}",
        tenant.id.as_str(),
        key.expose()
    );
    Ok(())
}

async fn serve(backends: &Backends, args: &ServeArgs) -> Result<(), BoxError> {
    let limits = rate_limits(&args.rate_limits)?;
    let default_tenant = match (&args.default_tenant, args.auth) {
        (None, _) => None,
        (Some(name), AuthMode::Header) => Some(TenantId::parse(name)?),
        (Some(_), AuthMode::ApiKey) => {
            return Err(
                "--default-tenant needs --auth header (with API keys every caller names its tenant by its key)".into(),
            );
        }
    };
    let analytics = build(backends, limits).await?;
    for spec in &args.bootstrap_tenants {
        bootstrap_tenant(&analytics, spec).await?;
    }
    let config = HttpConfig {
        auth: args.auth,
        default_tenant,
        body_limit: args.body_limit,
        body_timeout: Duration::from_secs(args.body_timeout),
        request_timeout: Duration::from_secs(args.request_timeout),
        ..HttpConfig::default()
    };
    let state = AppState::new(analytics, config);
    let listener = TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on http://{}", listener.local_addr()?);
    let app = crate::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            // Streams never end by themselves; in-flight requests and ingests are awaited.
            state.close_streams();
        })
        .await?;
    Ok(())
}

/// `--replica-wait-ms`: milliseconds, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaWait {
    /// Wait up to this long for the replica, then read the primary.
    Up(Duration),
    /// Read the replica as it is.
    Off,
}

fn parse_replica_wait(raw: &str) -> Result<ReplicaWait, String> {
    match raw {
        "off" => Ok(ReplicaWait::Off),
        ms => ms
            .parse()
            .map(|ms| ReplicaWait::Up(Duration::from_millis(ms)))
            .map_err(|_| format!("{ms:?} is neither a number of milliseconds nor `off`")),
    }
}

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

/// The default limits with `CLASS=LIMIT/SECONDS` overrides (GCRA, burst = limit, failing open).
///
/// # Errors
/// A malformed override.
pub fn rate_limits(overrides: &[String]) -> Result<RateLimits, BoxError> {
    let mut limits = RateLimits::default();
    for spec in overrides {
        let bad = || format!("--rate-limit wants CLASS=LIMIT/SECONDS, got {spec:?}");
        let (class, rule) = spec.split_once('=').ok_or_else(bad)?;
        let (limit, seconds) = rule.split_once('/').ok_or_else(bad)?;
        let class = match class {
            "analytics" => EndpointClass::Analytics,
            "events-write" => EndpointClass::EventsWrite,
            "events-read" => EndpointClass::EventsRead,
            "general" => EndpointClass::General,
            _ => return Err(format!("unknown rate-limit class {class:?} in {spec:?}").into()),
        };
        let limit: u32 = limit.parse().map_err(|_| bad())?;
        let seconds: u64 = seconds.parse().map_err(|_| bad())?;
        let rule = LimitRule {
            policy: RateLimitPolicy::gcra(limit, Duration::from_secs(seconds)),
            fail: FailMode::Open,
        };
        limits = limits.set(class, rule)?;
    }
    Ok(limits)
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a handler only SIGTERM stops us, which is fine.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_overrides_parse_and_reject_nonsense() {
        let limits = rate_limits(&["analytics=100000/1".into()]).unwrap();
        assert_eq!(limits.rule(EndpointClass::Analytics).policy.header_limit(), 100_000);
        assert_eq!(
            limits.rule(EndpointClass::EventsWrite),
            RateLimits::default().rule(EndpointClass::EventsWrite)
        );
        for bad in [
            "analytics",
            "analytics=10",
            "reads=1/1",
            "analytics=x/1",
            "analytics=0/1",
        ] {
            assert!(rate_limits(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cli_parses_its_documented_forms() {
        let cli = Cli::try_parse_from([
            "analytics-server",
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "header",
            "--bootstrap-tenant",
            "acme:key-acme-123",
            "--bootstrap-tenant",
            "beta:key-beta-123",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.auth, AuthMode::Header);
        assert_eq!(cli.serve.bootstrap_tenants.len(), 2);
        let admin = Cli::try_parse_from([
            "analytics-server",
            "tenant",
            "create",
            "acme",
            "--store",
            "postgres://x",
        ])
        .unwrap();
        assert!(matches!(admin.command, Some(Command::Tenant { .. })));
        assert_eq!(admin.backends.store, "postgres://x");
    }

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
