//! Conformance suites every backend runs (feature `testkit`).
//!
//! Plain async functions taking the backend as a trait object: a backend's test calls them with
//! its own setup, so one suite — not a copied test file per backend — defines correctness.
//!
//! ```
//! use std::sync::Arc;
//! use analytics_core::store::MemoryStore;
//! use analytics_core::testkit::{self, SuiteOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a backend's test: `#[tokio::test] async fn conforms() { ... }`.
//! let options = SuiteOptions { cases: 8, ..SuiteOptions::exact() };
//! testkit::store::run_all(Arc::new(MemoryStore::new()), options).await;
//! # }
//! ```
//!
//! The property-based parts run proptest (with shrinking) on a blocking thread that drives the
//! backend through the caller's tokio runtime, so the suites work on any runtime flavour. Each
//! generated case uses tenants no other case (or earlier run against the same server) uses, so
//! backends may share one database or Redis across cases and runs.

pub mod cache;
mod data;
mod faults;
pub mod feed;
pub mod process;
pub mod rate_limit;
pub mod store;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

pub use data::{CaseNames, Dataset, QuerySpec};
pub use faults::InstrumentedStore;

/// How thoroughly to run a suite, and what a backend may approximate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuiteOptions {
    /// Generated cases per property (the issues ask for at least 256).
    pub cases: u32,
    /// The largest relative error allowed for `unique_users` when a store flags it approximate
    /// and the query did not require exact counts. 0 for exact stores.
    pub unique_users_tolerance: f64,
}

impl SuiteOptions {
    /// 256 cases; unique users must be exact.
    pub fn exact() -> Self {
        Self {
            cases: 256,
            unique_users_tolerance: 0.0,
        }
    }

    /// 256 cases; approximate unique users within `tolerance` (relative) are accepted.
    pub fn approximate(tolerance: f64) -> Self {
        Self {
            cases: 256,
            unique_users_tolerance: tolerance,
        }
    }
}

/// A name prefix unique to this process run, so suites sharing a server never collide.
fn run_prefix() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned())
        .clone()
}

/// A fresh case number.
fn next_case() -> u64 {
    static CASES: AtomicU64 = AtomicU64::new(0);
    CASES.fetch_add(1, Ordering::Relaxed)
}

/// Runs a property: `check` is awaited on the caller's runtime for each generated value;
/// failures are shrunk and reported with the minimal input.
async fn run_property<S, F, Fut>(name: &str, cases: u32, strategy: S, check: F)
where
    S: Strategy + Send + 'static,
    S::Value: Send,
    F: Fn(S::Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>>,
{
    let handle = tokio::runtime::Handle::current();
    let name = name.to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        runner
            .run(&strategy, |value| {
                handle.block_on(check(value)).map_err(TestCaseError::fail)
            })
            .map_err(|e| format!("property `{name}` failed: {e}"))
    })
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(message)) => panic!("{message}"),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => panic!("property runner was cancelled: {join}"),
    }
}

/// The URL of a test server from the environment variable `var` (`DATABASE_URL`, `REDIS_URL`).
///
/// When it is unset, prints one line naming `test` and returns `None` so the test can return
/// early — unless `ANALYTICS_REQUIRE_SERVERS=1` (set by `scripts/test`), when a missing server
/// fails the test instead of skipping it silently.
///
/// # Panics
/// If `var` is unset and `ANALYTICS_REQUIRE_SERVERS=1`.
pub fn server_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("ANALYTICS_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("{test}: {var} is not set but ANALYTICS_REQUIRE_SERVERS=1")
        }
        _ => {
            eprintln!("skipping {test}: set {var} to run it against a real server");
            None
        }
    }
}
