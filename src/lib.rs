//! # analytics
//!
//! Answers analytics-dashboard questions over a service's user events — total events, unique
//! users, events by type, time series by hour/day/week/month in any timezone, top pages, device
//! stats, A/B experiment variants — fast, cached, and dependable.
//!
//! This is the facade crate: it re-exports [`analytics_core`] (the model, planner, reference
//! aggregation, cache engine and the embedded defaults) and, behind features, the adapters.
//!
//! ```
//! use analytics::{Analytics, model::{EventInput, TenantId}, query::SummaryRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> analytics::Result<()> {
//! let analytics = Analytics::in_memory();
//! let tenant = TenantId::parse("acme")?;
//! analytics
//!     .ingest(&tenant, vec![EventInput {
//!         event_type: Some("click".into()),
//!         timestamp: Some("2024-01-15T10:00:00Z".into()),
//!         ..Default::default()
//!     }])
//!     .await?;
//! let summary = analytics.summary(&tenant, &SummaryRequest::new("2024-01-01", "2024-01-31")).await?;
//! assert_eq!(summary.body.total_events, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//! - `moka` (default): the in-process moka cache, the default cache backend.
//! - `postgres`: the PostgreSQL store, as [`postgres`] (the `analytics-postgres` crate).
//! - `redis`: the Redis cache, two-tier cache and rate-limit store, as [`redis`] (the
//!   `analytics-redis` crate).
//!
//! - `http`: the HTTP adapter's axum router, as [`http`] (the `analytics-http` crate; its
//!   `analytics-server` binary is built from that crate).

pub use analytics_core::*;

/// The PostgreSQL store: partitioned raw events, append-only per-period counts and unique-user
/// sketches, binary COPY ingestion.
#[cfg(feature = "postgres")]
pub use analytics_postgres as postgres;

/// The Redis backends: versioned-tag cache, two-tier coherent cache, distributed rate limiting.
#[cfg(feature = "redis")]
pub use analytics_redis as redis;

/// The HTTP adapter: the full API as an axum `Router`, live stream, OpenAPI and metrics.
#[cfg(feature = "http")]
pub use analytics_http as http;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
