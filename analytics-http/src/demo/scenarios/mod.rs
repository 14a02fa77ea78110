//! The five high-load scenarios, run over HTTP against a demo-mode server: a traffic spike, a
//! failing store and its circuit breaker, cache performance, graceful degradation under
//! overload, and end-to-end integration. Each reports its figures, a log, and pass or fail;
//! each check fails when the mechanism it shows is switched off ([`SwitchedOff`](super::SwitchedOff)).
//!
//! The scenarios run one after another, each on its own tenants, so one's rate limits or cached
//! answers do not decide another's outcome. Bounded: every wait has a deadline, and the whole
//! run takes well under a minute on a 2-core machine.

mod api;
mod breaker;
mod cache;
mod degradation;
mod integration;
mod spike;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::FaultMode;
use api::Api;

/// The scenario tenants, provisioned by the demo server with [`key_of`] keys.
pub const TENANTS: [&str; 13] = [
    "hl-spike",
    "hl-breaker",
    "hl-cache",
    "hl-load-0",
    "hl-load-1",
    "hl-load-2",
    "hl-load-3",
    "hl-load-4",
    "hl-load-5",
    "hl-load-6",
    "hl-load-7",
    "hl-int-a",
    "hl-int-b",
];

/// The API key of a scenario tenant (demo mode only: the keys are public by design).
pub fn key_of(tenant: &str) -> String {
    format!("demo-key-{tenant}")
}

/// How to run the scenarios.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    /// The demo server, `http://HOST:PORT`.
    pub base_url: String,
    /// Concurrent requests of the traffic spike (default 100).
    pub spike: usize,
}

impl ScenarioOptions {
    /// The defaults against `base_url`.
    pub fn new(base_url: String) -> Self {
        Self { base_url, spike: 100 }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every scenario passed.
    pub passed: bool,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// One entry per scenario, in order.
    pub scenarios: Vec<ScenarioReport>,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    /// Its name.
    pub name: &'static str,
    /// Every check held.
    pub passed: bool,
    /// Its figures, by name.
    pub figures: BTreeMap<&'static str, String>,
    /// The checks that failed, in words.
    pub failures: Vec<String>,
    /// What happened, step by step.
    pub log: Vec<String>,
}

impl ScenarioReport {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            passed: true,
            figures: BTreeMap::new(),
            failures: Vec::new(),
            log: Vec::new(),
        }
    }

    fn figure(&mut self, name: &'static str, value: impl ToString) {
        self.figures.insert(name, value.to_string());
    }

    fn log(&mut self, line: impl Into<String>) {
        self.log.push(line.into());
    }

    fn check(&mut self, holds: bool, failure: impl Into<String>) {
        if !holds {
            self.passed = false;
            self.failures.push(failure.into());
        }
    }
}

/// Runs the five scenarios in order.
pub async fn run(options: &ScenarioOptions) -> Report {
    let started = Instant::now();
    let api = Api::new(&options.base_url);
    let mut scenarios = Vec::new();
    scenarios.push(spike::traffic_spike(&api, options.spike).await);
    scenarios.push(breaker::circuit_breaker(&api).await);
    scenarios.push(cache::cache_performance(&api).await);
    scenarios.push(degradation::graceful_degradation(&api).await);
    scenarios.push(integration::integration(&api).await);
    // Whatever happened, leave the store healthy.
    let _ = api.set_faults(FaultMode::Healthy).await;
    Report {
        passed: scenarios.iter().all(|s| s.passed),
        seconds: started.elapsed().as_secs_f64(),
        scenarios,
    }
}

// ---- Figures --------------------------------------------------------------------------------
/// The `p`th percentile of sorted milliseconds (nearest rank).
fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_ms.len() - 1) as f64).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ms(x: f64) -> String {
    format!("{x:.1} ms")
}
