//! # analytics-core
//!
//! The storage-agnostic core of the `analytics` library: answers analytics-dashboard questions —
//! total events, unique users, events by type, time series by hour/day/week/month in any IANA
//! timezone, top pages, device stats, A/B experiment variants — from pre-aggregated data, cached
//! with versioned-tag invalidation and data-age TTL tiers.
//!
//! ```
//! use analytics_core::{Analytics, model::{EventInput, TenantId}, query::SummaryRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> analytics_core::Result<()> {
//! let analytics = Analytics::in_memory();
//! let tenant = TenantId::parse("acme")?;
//! analytics
//!     .ingest(&tenant, vec![EventInput {
//!         user_id: Some("u1".into()),
//!         event_type: Some("click".into()),
//!         page: Some("/pricing".into()),
//!         device: Some("mobile".into()),
//!         timestamp: Some("2024-01-15T10:00:00Z".into()),
//!         ..Default::default()
//!     }])
//!     .await?;
//! let summary = analytics.summary(&tenant, &SummaryRequest::new("2024-01-01", "2024-01-31")).await?;
//! assert_eq!(summary.body.total_events, 1);
//! assert_eq!(summary.body.unique_users, 1);
//! assert_eq!(summary.body.top_pages[0].page, "/pricing");
//! # Ok(())
//! # }
//! ```
//!
//! ## Map
//! - [`model`]: validated events, experiments, tenants; [`query`]: requests, the validated
//!   [`Query`](query::Query), the planner, [`Aggregates`](query::Aggregates) and the response.
//! - [`reference`](mod@reference): the executable definition of every metric.
//! - [`store`]: the [`EventStore`](store::EventStore) contract and [`MemoryStore`](store::MemoryStore).
//! - [`cache`]: the [`CacheBackend`](cache::CacheBackend) contract, TTL tiers and tags, the moka
//!   backend.
//! - [`resilience`]: the circuit breaker (and the [`BreakerStore`](resilience::BreakerStore)
//!   decorator), rate limiting ([`RateLimiter`](resilience::RateLimiter) over a
//!   [`RateLimitStore`](resilience::RateLimitStore), in-process by default), load shedding and
//!   degradation ([`LoadShedder`](resilience::LoadShedder)).
//! - [`experiments`]: deterministic assignment to variants and results with significance
//!   (z-test, confidence intervals, sample ratio mismatch, chance to beat control).
//! - [`Analytics`]: the facade. [`clock`]: injected time. [`Error`]: the one error type.
//! - `testkit` (feature): the conformance suites every backend runs; `generator` (feature): a
//!   seeded realistic event generator.
//!
//! ## Backends
//! Embedded defaults here: [`MemoryStore`](store::MemoryStore) and, with the default `moka`
//! feature, [`MokaCache`](cache::MokaCache). PostgreSQL and Redis adapters live in their own
//! crates and pass the same conformance suites.
//!
//! ## Choices
//! - Single flight is built on `futures-util`'s `Shared` plus a tokio task rather than moka's
//!   `get_with`, because it must work in front of every cache backend, not only moka.
//! - Event ids default to UUIDv7 so generated ids sort by time.
//! - The rate-limit arithmetic (GCRA, sliding-window counter) is written here rather than taken
//!   from `governor`: its state must also live in Redis, decided by a Lua port that must agree
//!   with it exactly, and governor has no sliding window and no storable state. The in-process
//!   store uses `papaya` (a lock-free map) and `foldhash`; `SystemClock` reads the TSC through
//!   `quanta`. The breaker is hand-written for the same reason as the limiter: resilience4j
//!   semantics with guard permits and virtual time, which no maintained crate offers.
//! - Experiment statistics use `statrs` (without its default `nalgebra` and `rand` features) for
//!   the normal, chi-square and Beta functions; the tests themselves (a handful of formulas) are
//!   written out in [`experiments::stats`] and checked against scipy.

pub mod analytics;
/// The hasher of the in-process maps on the request path (cache entries and tag versions,
/// decoded answers, per-tenant counters, the registry memo): foldhash, seeded per process.
/// SipHash (the standard library's) showed in the cached summary's profile; these maps are
/// keyed by authenticated tenants and derived keys (a SHA-256 cache key, tags, key hashes),
/// and a random seed keeps their hashes unpredictable from outside.
pub(crate) type FastHash = foldhash::fast::RandomState;
pub mod cache;
pub mod clock;
pub mod error;
pub mod experiments;
pub mod feed;
#[cfg(feature = "generator")]
pub mod generator;
pub mod model;
pub mod query;
pub mod reference;
pub mod resilience;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use analytics::{
    Analytics, AnalyticsBuilder, Assignment, Change, ChangeNotice, ComparedSummary, Comparison, EventLog,
    EventLogRequest, HEALTH_PROBE_TIMEOUT, HealthReport, HealthStatus, Ingested, LiveConfig, LiveSummary, LiveUpdate,
    MemoPolicy, PaginatedSummary, PeriodComparison, Realtime, SETTLE_EVERY, SeriesPageRequest, SeriesPagination,
    ServingPolicy, SharedJson, SummaryJson, SummaryOptions, TenantCacheStats, Warmed,
};
pub use error::{Error, ErrorKind, Result};
