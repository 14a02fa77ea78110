//! Request metrics: Prometheus counters and histograms per route (`/metrics`), and the
//! requests-per-second figure of the health endpoints.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) encodes the text format; the
//! facade's state (load, breaker, cache) is read into gauges at scrape time, so it is never
//! stale and costs nothing between scrapes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::clock::Clock;
use analytics_core::query::LoadLevel;
use analytics_core::resilience::BreakerState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Gauges filled from the facade at scrape time.
#[derive(Debug, Default)]
struct FacadeGauges {
    load_level: Gauge,
    in_flight: Gauge,
    load_limit: Gauge<f64, AtomicU64>,
    shed: Gauge,
    breaker: Family<StateLabels, Gauge>,
    cache_hits: Gauge,
    cache_misses: Gauge,
    cache_entries: Gauge,
    cache_bytes: Gauge,
    limits_unchecked: Gauge,
}

/// The adapter's metrics. Cheap to share; recording is lock-free apart from the per-second
/// request meter.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    facade: Arc<FacadeGauges>,
    meter: RateMeter,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Metrics {
    /// Empty metrics; the request meter reads `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let mut registry = Registry::with_prefix("analytics");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let facade = Arc::new(FacadeGauges::default());
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce a response, by route",
            durations.clone(),
        );
        registry.register(
            "load_level",
            "Load level: 0 normal, 1 elevated, 2 high, 3 critical",
            facade.load_level.clone(),
        );
        registry.register("load_in_flight", "Queries in flight", facade.in_flight.clone());
        registry.register(
            "load_limit",
            "Current adaptive concurrency limit",
            facade.load_limit.clone(),
        );
        registry.register("load_shed", "Queries shed since start", facade.shed.clone());
        registry.register(
            "breaker_state",
            "1 for the circuit breaker's current state",
            facade.breaker.clone(),
        );
        registry.register("cache_hits", "Cache hits since start", facade.cache_hits.clone());
        registry.register("cache_misses", "Cache misses since start", facade.cache_misses.clone());
        registry.register("cache_entries", "Entries in the cache", facade.cache_entries.clone());
        registry.register("cache_bytes", "Bytes held by the cache", facade.cache_bytes.clone());
        registry.register(
            "rate_limit_unchecked",
            "Requests admitted without a rate-limit check since start (limit store unavailable, rule fails open)",
            facade.limits_unchecked.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            facade,
            meter: RateMeter::new(clock),
        }
    }

    /// Records one finished request.
    pub fn record(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
        self.meter.tick();
    }

    /// Requests completed in the last whole second.
    pub fn requests_per_second(&self) -> u64 {
        self.meter.rate()
    }

    /// The Prometheus text exposition, with the facade's current state.
    pub async fn render(&self, analytics: &Analytics) -> String {
        let facade = &self.facade;
        let load = analytics.load().snapshot();
        facade.load_level.set(match load.level {
            LoadLevel::Normal => 0,
            LoadLevel::Elevated => 1,
            LoadLevel::High => 2,
            _ => 3,
        });
        facade.in_flight.set(i64::from(load.in_flight));
        facade.load_limit.set(load.limit);
        facade.shed.set(i64::try_from(load.shed).unwrap_or(i64::MAX));
        let unchecked = analytics.rate_limiter().unchecked_total();
        facade
            .limits_unchecked
            .set(i64::try_from(unchecked).unwrap_or(i64::MAX));
        if let Some(breaker) = analytics.breaker() {
            let current = breaker.state();
            for state in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Disabled,
                BreakerState::ForcedOpen,
                BreakerState::MetricsOnly,
            ] {
                let label = StateLabels {
                    state: format!("{state:?}"),
                };
                facade.breaker.get_or_create(&label).set(i64::from(state == current));
            }
        }
        if let Ok(stats) = analytics.cache_stats().await {
            let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            facade.cache_hits.set(clamp(stats.hits));
            facade.cache_misses.set(clamp(stats.misses));
            facade.cache_entries.set(clamp(stats.entries));
            facade.cache_bytes.set(clamp(stats.bytes));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Outermost middleware: times every request and records it under its route pattern (not its
/// path, so ids do not explode the label space).
pub(crate) async fn record_request(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let clock = metrics.meter.clock.clone();
    let started = clock.now();
    let response = next.run(request).await;
    let took = (clock.now() - started).to_std().unwrap_or_default();
    metrics.record(&route, &method, response.status().as_u16(), took);
    response
}

/// Requests per whole second, by the injected clock.
#[derive(Debug)]
struct RateMeter {
    clock: Arc<dyn Clock>,
    state: Mutex<MeterState>,
}

#[derive(Debug, Default)]
struct MeterState {
    second: i64,
    current: u64,
    previous: u64,
}

impl RateMeter {
    fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::new(MeterState::default()),
        }
    }

    fn roll(state: &mut MeterState, second: i64) {
        if second != state.second {
            state.previous = if second == state.second + 1 { state.current } else { 0 };
            state.current = 0;
            state.second = second;
        }
    }

    fn tick(&self) {
        let second = self.clock.now().timestamp();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::roll(&mut state, second);
        state.current += 1;
    }

    fn rate(&self) -> u64 {
        let second = self.clock.now().timestamp();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Self::roll(&mut state, second);
        state.previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analytics_core::clock::ManualClock;

    #[test]
    fn the_meter_reports_the_last_whole_second() {
        let clock = Arc::new(ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap()));
        let meter = RateMeter::new(clock.clone());
        for _ in 0..7 {
            meter.tick();
        }
        assert_eq!(meter.rate(), 0, "the current second is not complete");
        clock.advance(Duration::from_secs(1));
        assert_eq!(meter.rate(), 7);
        meter.tick();
        clock.advance(Duration::from_secs(2));
        assert_eq!(meter.rate(), 0, "an idle second reads as zero");
    }
}
