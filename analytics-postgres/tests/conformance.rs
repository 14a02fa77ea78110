//! Core's conformance suite against a real PostgreSQL (`DATABASE_URL`), in a schema of its own.

mod support;

use std::sync::Arc;

use analytics_core::testkit::{self, SuiteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(store) = support::store("conforms").await else {
        return;
    };
    // Sketch-based unique users are flagged approximate; sparse sketches at these sizes are
    // within a fraction of a percent, so 2% catches any real miscount.
    testkit::store::run_all(Arc::new(store), SuiteOptions::approximate(0.02)).await;
}
