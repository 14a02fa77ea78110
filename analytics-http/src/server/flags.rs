//! The command line: flags, their environment variables and their parsing.

use std::net::SocketAddr;
use std::time::Duration;

use analytics_core::resilience::{EndpointClass, FailMode, LimitRule, RateLimitPolicy, RateLimits};
use clap::{Args, Parser, Subcommand};

use super::BoxError;
use crate::state::AuthMode;

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
}
