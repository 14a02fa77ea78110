//! [`AppState`] and [`HttpConfig`]: what the handlers share. Handlers take only the part they
//! need (`State<Analytics>`, `State<Arc<HttpConfig>>`, `State<Arc<Metrics>>`) through
//! [`FromRef`], so no module depends on the whole state but the router.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::Analytics;
use analytics_core::model::TenantId;
use axum::extract::FromRef;

use crate::limit_headers::LimitHeaderValues;
use crate::metrics::Metrics;
use crate::parsed::ParsedSummaries;

/// How callers prove which tenant they act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "server", derive(clap::ValueEnum))]
pub enum AuthMode {
    /// `X-API-Key`: the key's tenant comes from the store, remembered for a short while (see
    /// [`MemoPolicy`](analytics_core::MemoPolicy)); keys are stored hashed and compared in
    /// constant time.
    #[default]
    #[cfg_attr(
        feature = "server",
        value(
            help = "X-API-Key: the key's tenant is looked up in the store and remembered for 30 s; keys are stored hashed"
        )
    )]
    ApiKey,
    /// `X-Tenant-Id` is trusted as is: only behind a gateway that authenticates callers and sets
    /// the header itself. With [`HttpConfig::default_tenant`], callers that send no tenant
    /// header act for that tenant.
    #[cfg_attr(
        feature = "server",
        value(
            help = "X-Tenant-Id is trusted: only behind a gateway that authenticates callers; with --default-tenant, requests without it act for that tenant"
        )
    )]
    Header,
}

/// Live-stream settings of the adapter (coalescing is core's:
/// [`LiveConfig`](analytics_core::LiveConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// How often an idle stream sends a heartbeat comment (keeps proxies from closing it).
    pub heartbeat: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// Settings of the HTTP adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// How callers are authenticated (default: API keys).
    pub auth: AuthMode,
    /// With [`AuthMode::Header`]: the tenant of requests that send no `X-Tenant-Id` (for
    /// single-tenant deployments and clients that never send one). Ignored with API keys.
    pub default_tenant: Option<TenantId>,
    /// The largest request body accepted, in bytes (default 16 MiB: a full batch of 10,000
    /// events with modest properties). A larger declared `Content-Length` is refused with 413
    /// before the body is read; a body that grows past it while read, likewise.
    pub body_limit: usize,
    /// How long a request body may take to arrive (default 10 s); then 408.
    pub body_timeout: Duration,
    /// How long a request may take to produce its response (default 30 s); then 503. Streams
    /// are not cut: the limit applies until their headers are sent.
    pub request_timeout: Duration,
    /// Live-stream settings.
    pub stream: StreamConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            auth: AuthMode::ApiKey,
            default_tenant: None,
            body_limit: 16 * 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            stream: StreamConfig::default(),
        }
    }
}

/// What the router shares: the facade, the settings, the metrics and the memo of parsed
/// summary requests. Cheap to clone: one reference count (middleware clone their state on every
/// request).
#[derive(Debug, Clone)]
pub struct AppState {
    parts: Arc<Parts>,
}

#[derive(Debug)]
struct Parts {
    analytics: Analytics,
    config: Arc<HttpConfig>,
    metrics: Arc<Metrics>,
    summaries: Arc<ParsedSummaries>,
    limit_headers: LimitHeaderValues,
}

impl AppState {
    /// State over `analytics` with `config`.
    pub fn new(analytics: Analytics, config: HttpConfig) -> Self {
        let metrics = Arc::new(Metrics::new(analytics.clock().clone()));
        Self {
            parts: Arc::new(Parts {
                config: Arc::new(config),
                metrics,
                summaries: Arc::default(),
                limit_headers: LimitHeaderValues::new(analytics.rate_limiter().limits()),
                analytics,
            }),
        }
    }

    /// The facade.
    pub fn analytics(&self) -> &Analytics {
        &self.parts.analytics
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.parts.config
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.parts.metrics
    }

    /// The request metrics, shared.
    pub(crate) fn metrics_handle(&self) -> Arc<Metrics> {
        self.parts.metrics.clone()
    }

    /// The constant rate-limit header values of each endpoint class.
    pub(crate) fn limit_headers(&self) -> &LimitHeaderValues {
        &self.parts.limit_headers
    }

    /// Live-stream topics running (one per distinct streamed query).
    pub fn stream_topics(&self) -> usize {
        self.parts.analytics.live_topics()
    }

    /// Ends every live stream (call when shutting down: graceful shutdown waits for open
    /// connections, and a stream never ends by itself).
    pub fn close_streams(&self) {
        self.parts.analytics.close_live();
    }
}

impl FromRef<AppState> for Analytics {
    fn from_ref(state: &AppState) -> Self {
        state.parts.analytics.clone()
    }
}

impl FromRef<AppState> for Arc<HttpConfig> {
    fn from_ref(state: &AppState) -> Self {
        state.parts.config.clone()
    }
}

impl FromRef<AppState> for Arc<ParsedSummaries> {
    fn from_ref(state: &AppState) -> Self {
        state.parts.summaries.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.parts.metrics.clone()
    }
}
