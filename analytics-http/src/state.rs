//! [`AppState`] and [`HttpConfig`]: what every handler shares.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::Analytics;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::routes::stream::StreamHub;

/// How callers prove which tenant they act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// `X-API-Key`: the key's SHA-256 is looked up in the store (keys are stored hashed;
    /// hashes compare in constant time).
    #[default]
    ApiKey,
    /// `X-Tenant-Id` is trusted as is: only behind a gateway that authenticates callers and sets
    /// the header itself (seed 000's model).
    Header,
}

/// Live-stream settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// After an ingest notice, wait this long for more before recomputing, so a burst of ingests
    /// costs one push. Pushes land within this plus one summary computation of the ingest.
    pub coalesce: Duration,
    /// How often an idle stream sends a heartbeat comment (keeps proxies from closing it).
    pub heartbeat: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            coalesce: Duration::from_millis(100),
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// Settings of the HTTP adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// How callers are authenticated (default: API keys).
    pub auth: AuthMode,
    /// The largest request body accepted, in bytes (default 16 MiB: a full batch of 10,000
    /// events with modest properties). Larger bodies get 413.
    pub body_limit: usize,
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
            body_limit: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            stream: StreamConfig::default(),
        }
    }
}

/// What every handler shares: the facade, the settings, the metrics and the shutdown signal.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    analytics: Analytics,
    config: HttpConfig,
    metrics: Metrics,
    streams: StreamHub,
    shutdown: watch::Sender<bool>,
}

impl AppState {
    /// State over `analytics` with `config`.
    pub fn new(analytics: Analytics, config: HttpConfig) -> Self {
        let metrics = Metrics::new(analytics.clock().clone());
        Self {
            inner: Arc::new(Inner {
                analytics,
                config,
                metrics,
                streams: StreamHub::default(),
                shutdown: watch::Sender::new(false),
            }),
        }
    }

    /// The facade.
    pub fn analytics(&self) -> &Analytics {
        &self.inner.analytics
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The live-stream topics.
    pub(crate) fn streams(&self) -> &StreamHub {
        &self.inner.streams
    }

    /// Live-stream topics running (one per distinct streamed query).
    pub fn stream_topics(&self) -> usize {
        self.inner.streams.topics()
    }

    /// Ends every live stream (call when shutting down: graceful shutdown waits for open
    /// connections, and a stream never ends by itself).
    pub fn close_streams(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves when [`close_streams`](Self::close_streams) has been called.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}
