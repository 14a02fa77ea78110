//! Demo mode (feature `demo`): the embedded default set up to show its resilience in seconds,
//! a fault switch on its store, the five high-load scenarios, and the routes that expose them.
//!
//! Nothing here is reachable from a server that was not started in demo mode: the routes are
//! merged only by [`DemoServer::serve`], which the `demo` and `high_load` examples call.
//!
//! Demo mode uses settings that make each mechanism visible within a minute rather than the
//! production defaults: the analytics endpoints allow [`DEMO_ANALYTICS_LIMIT`] requests per
//! minute per tenant; the breaker opens after 5 calls of which half failed or took 500 ms, and
//! tries again after 2 s; load levels step down after 1 s.

mod faults;
pub mod scenarios;

use std::sync::Arc;
use std::time::Duration;

use analytics_core::cache::NoCache;
use analytics_core::resilience::{
    BreakerConfig, EndpointClass, FailMode, LimitRule, LoadConfig, RateLimitPolicy, RateLimits, SlidingWindow,
};
use analytics_core::store::MemoryStore;
use analytics_core::{Analytics, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tokio::net::TcpListener;

pub use faults::{FaultMode, FaultSwitch, FaultyStore};
pub use scenarios::{Report, ScenarioOptions, ScenarioReport};

use crate::error::ApiError;
use crate::{AppState, HttpConfig, router};

/// Analytics requests per minute per tenant in demo mode (the traffic-spike scenario sends more).
pub const DEMO_ANALYTICS_LIMIT: u32 = 50;

/// Mechanisms to switch off, to show that each scenario fails without its mechanism.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwitchedOff {
    /// No circuit breaker in front of the store.
    pub breaker: bool,
    /// No cache.
    pub cache: bool,
    /// No rate limits (a limit no spike reaches).
    pub limits: bool,
    /// No load shedding or degradation.
    pub shedding: bool,
}

/// The facade over a memory store behind a [`FaultSwitch`], with demo-mode settings.
///
/// # Errors
/// Only on invalid settings (none here).
pub fn analytics(off: SwitchedOff) -> Result<(Analytics, Arc<FaultSwitch>)> {
    let switch = Arc::new(FaultSwitch::default());
    let store = Arc::new(FaultyStore::new(MemoryStore::new(), switch.clone()));
    let breaker = BreakerConfig {
        window: SlidingWindow::Count(20),
        failure_rate_threshold: 50.0,
        slow_call_rate_threshold: 50.0,
        slow_call_duration: Duration::from_millis(500),
        minimum_calls: 5,
        wait_in_open: Duration::from_secs(2),
        half_open_permits: 2,
        max_wait_in_half_open: Some(Duration::from_secs(10)),
        ..BreakerConfig::default()
    };
    let load = if off.shedding {
        LoadConfig {
            thresholds: [1e9, 2e9, 3e9],
            shed_below: [1; 4],
            ..LoadConfig::default()
        }
    } else {
        LoadConfig {
            cooldown: Duration::from_secs(1),
            ..LoadConfig::default()
        }
    };
    let per_minute = if off.limits { 1_000_000 } else { DEMO_ANALYTICS_LIMIT };
    let limits = RateLimits::default().set(
        EndpointClass::Analytics,
        LimitRule {
            policy: RateLimitPolicy::gcra(per_minute, Duration::from_secs(60)),
            fail: FailMode::Open,
        },
    )?;
    let mut builder = Analytics::builder()
        .store(store)
        .breaker((!off.breaker).then_some(breaker))
        .load(load)
        .rate_limits(limits);
    if off.cache {
        builder = builder.cache(Arc::new(NoCache::default()));
    }
    Ok((builder.build()?, switch))
}

/// A demo server: the full router plus the demo routes, on a loopback port.
#[derive(Debug, Clone)]
pub struct DemoServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The facade it serves.
    pub analytics: Analytics,
    /// Its store's fault switch.
    pub faults: Arc<FaultSwitch>,
}

#[derive(Clone)]
struct DemoState {
    base_url: Arc<str>,
    faults: Arc<FaultSwitch>,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl DemoServer {
    /// Provisions the scenario tenants, binds `listener` and serves in the background.
    ///
    /// # Errors
    /// When a scenario tenant cannot be provisioned or the listener has no address.
    pub async fn serve(
        listener: TcpListener,
        analytics: Analytics,
        faults: Arc<FaultSwitch>,
        config: HttpConfig,
    ) -> std::result::Result<Self, crate::server::BoxError> {
        for tenant in scenarios::TENANTS {
            crate::server::bootstrap_tenant(&analytics, &format!("{tenant}:{}", scenarios::key_of(tenant))).await?;
        }
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = DemoState {
            base_url: base_url.as_str().into(),
            faults: faults.clone(),
            running: Arc::default(),
        };
        let demo_routes = Router::new()
            .route("/api/demo/faults", post(set_faults).get(get_faults))
            .route("/api/demo/high-load", post(run_scenarios))
            .with_state(state);
        let app = router(AppState::new(analytics.clone(), config)).merge(demo_routes);
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the demo server stopped");
            }
        });
        Ok(Self {
            base_url,
            analytics,
            faults,
        })
    }
}

async fn set_faults(State(demo): State<DemoState>, Json(mode): Json<FaultMode>) -> Json<FaultMode> {
    demo.faults.set(mode);
    Json(demo.faults.mode())
}

async fn get_faults(State(demo): State<DemoState>) -> Json<FaultMode> {
    Json(demo.faults.mode())
}

/// Runs the five scenarios against this server; one run at a time.
async fn run_scenarios(State(demo): State<DemoState>) -> Result<Json<Report>, ApiError> {
    let Ok(_running) = demo.running.try_lock() else {
        let mut error = ApiError::for_status(StatusCode::CONFLICT);
        error.message = "the scenarios are already running".into();
        return Err(error);
    };
    let options = ScenarioOptions::new(demo.base_url.to_string());
    Ok(Json(scenarios::run(&options).await))
}
