//! [`Analytics`]: the facade a service calls.

mod builder;
mod compare;
mod event_log;
mod experiments;
mod feed_link;
mod health;
pub mod live;
mod memo;
mod owed;
mod realtime;
mod series;
mod summary;
mod summary_json;
mod tenant_stats;
mod warm;

use std::sync::Arc;

use tokio::sync::broadcast;

pub use builder::{AnalyticsBuilder, ServingPolicy};
pub use compare::{Change, ComparedSummary, Comparison, PeriodComparison};
pub use event_log::{DEFAULT_EVENT_PAGE, EventLog, EventLogRequest};
pub use experiments::Assignment;
pub use health::{HEALTH_PROBE_TIMEOUT, HealthReport, HealthStatus};
pub use live::{LiveConfig, LiveSummary, LiveUpdate};
pub use memo::MemoPolicy;
pub use owed::SETTLE_EVERY;
pub use realtime::{REALTIME_WINDOW, Realtime};
pub use series::{DEFAULT_SERIES_PAGE, MAX_SERIES_PAGE, PaginatedSummary, SeriesPageRequest, SeriesPagination};
pub use summary::SummaryOptions;
pub use summary_json::{SharedJson, SummaryJson};
pub use tenant_stats::TenantCacheStats;
pub use warm::{MAX_WARM_RANGES, Warmed};

use crate::cache::policy::ingest_tags;
use crate::cache::single_flight::SingleFlight;
use crate::cache::{CacheBackend, CacheKey, CacheStats, Tag, TagVersions, TtlPolicy};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::{
    ApiKey, Event, EventInput, Experiment, ExperimentId, ExperimentInput, ExperimentPatch, Tenant, TenantId,
};
use crate::resilience::{CircuitBreaker, LoadShedder, RateLimiter};
use crate::store::{AppendOutcome, EventListQuery, EventPage, EventStore, StoreHealth};

/// The most events one ingest call accepts.
pub const MAX_BATCH: usize = 10_000;

/// Notice that a tenant's data changed, sent after an ingest is acknowledged (for live views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    /// Whose data changed.
    pub tenant: TenantId,
    /// How many events were newly accepted.
    pub accepted: usize,
}

/// One ingested event, as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ingested {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// True when the tenant already had an event with this id (a retry): nothing was counted.
    pub duplicate: bool,
}

/// The facade: validates requests, plans queries, serves them through the cache from the store
/// (behind a circuit breaker, with load shedding and stale fallbacks), and ingests events with
/// invalidation.
///
/// Cheap to clone; clones share everything.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use analytics_core::{Analytics, model::{EventInput, TenantId}, query::SummaryRequest};
///
/// let analytics = Analytics::in_memory();
/// let tenant = TenantId::parse("acme")?;
/// let event = EventInput {
///     user_id: Some("u1".into()),
///     event_type: Some("click".into()),
///     page: Some("/home".into()),
///     timestamp: Some("2024-01-15T10:00:00Z".into()),
///     ..Default::default()
/// };
/// analytics.ingest(&tenant, vec![event]).await?;
/// let summary = analytics.summary(&tenant, &SummaryRequest::new("2024-01-01", "2024-01-31")).await?;
/// assert_eq!(summary.body.total_events, 1);
/// assert_eq!(summary.body.time_series_data.len(), 31);
/// # Ok::<(), analytics_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

/// A decoded cache hit and the bytes it was decoded from.
type DecodedHit = (Arc<[u8]>, Arc<summary::CachedSummary>);

#[derive(Debug)]
struct Inner {
    store: Arc<dyn EventStore>,
    breaker: Option<CircuitBreaker>,
    cache: Arc<dyn CacheBackend>,
    clock: Arc<dyn Clock>,
    ttl: TtlPolicy,
    serving: ServingPolicy,
    load: LoadShedder,
    limiter: RateLimiter,
    flights: SingleFlight<(CacheKey, TagVersions), Arc<summary::CachedSummary>>,
    memo: memo::RegistryMemo,
    live: live::LiveHub,
    /// Decoded cache hits by key, with the bytes they were decoded from.
    decoded: papaya::HashMap<CacheKey, DecodedHit, crate::FastHash>,
    changes: broadcast::Sender<ChangeNotice>,
    /// Each tenant's own cache figures.
    tenant_counts: tenant_stats::TenantCacheCounts,
    /// Breakers of other dependencies, reported by health.
    dependency_breakers: Vec<(String, CircuitBreaker)>,
    /// Whether the cache may be used while invalidations are owed.
    fence: owed::CacheFence,
    /// The channel to the other instances, if any.
    feed: Option<feed_link::FeedLink>,
}

impl Analytics {
    /// A builder with every part at its embedded default.
    pub fn builder() -> AnalyticsBuilder {
        AnalyticsBuilder::default()
    }

    /// The embedded default: [`MemoryStore`](crate::store::MemoryStore) behind a circuit
    /// breaker, the moka cache, the system clock, default load shedding and rate limits.
    pub fn in_memory() -> Self {
        Self::builder().build().expect("the default settings are valid")
    }

    /// The clock this facade reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store behind the facade (behind its breaker, if any).
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The circuit breaker in front of the store, if any (metrics and operator controls).
    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.inner.breaker.as_ref()
    }

    /// The load shedder (its snapshot feeds health endpoints).
    pub fn load(&self) -> &LoadShedder {
        &self.inner.load
    }

    /// The rate limiter, for adapters that enforce limits per tenant and endpoint class.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Validates and stores a batch of events for `tenant`, then invalidates the cached answers
    /// they affect.
    ///
    /// # Behavior
    /// Returns only after the store has committed the events and the cache has been
    /// invalidated — or, when the cache cannot be reached, the invalidation has been recorded in
    /// the store and this instance has stopped using its cache until it is applied — so any
    /// read after it sees them. Events whose id the tenant already has are
    /// reported as duplicates and not counted again, so a failed call can be retried as is.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `events[i].field` (nothing is stored then);
    /// store errors; a transient error if, after the events were stored, neither the cache nor
    /// the store took the invalidation (retry: the retry reports them as duplicates and
    /// invalidates again).
    pub async fn ingest(&self, tenant: &TenantId, inputs: Vec<EventInput>) -> Result<AppendOutcome> {
        check_batch_size(inputs.len())?;
        let now = self.inner.clock.now();
        let events = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| Event::from_input(input, tenant, now).map_err(|e| e.in_field(&format!("events[{i}]."))))
            .collect::<Result<Vec<_>>>()?;
        self.ingest_events(tenant, events).await
    }

    /// Validates and stores one event; otherwise as [`ingest`](Self::ingest). The answer holds
    /// the event as stored (with its generated id when it had none) and whether it was a retry.
    ///
    /// # Errors
    /// As [`ingest`](Self::ingest), with fields named without the `events[i].` prefix.
    pub async fn ingest_one(&self, tenant: &TenantId, input: EventInput) -> Result<Ingested> {
        let event = Event::from_input(input, tenant, self.inner.clock.now())?;
        let outcome = self.ingest_events(tenant, vec![event.clone()]).await?;
        Ok(Ingested {
            duplicate: outcome.accepted.is_empty(),
            event,
        })
    }

    /// Stores already-validated events; otherwise as [`ingest`](Self::ingest).
    ///
    /// # Errors
    /// As [`ingest`](Self::ingest).
    pub async fn ingest_events(&self, tenant: &TenantId, events: Vec<Event>) -> Result<AppendOutcome> {
        check_batch_size(events.len())?;
        self.ensure_settling();
        let outcome = self.inner.store.append(tenant, &events).await?;
        // Duplicates are invalidated too: they may be the retry of a call whose invalidation failed.
        let tags = ingest_tags(&events);
        if let Err(cache_error) = self.inner.cache.invalidate(tenant, &tags).await {
            // The events are committed: owe the invalidation durably and stop trusting the
            // cache here until it is applied (see `owed`), then acknowledge.
            self.inner
                .store
                .owe_invalidation(tenant, &tags)
                .await
                .map_err(|e| Error::Unavailable {
                    message: format!(
                        "events stored but cached answers could not be invalidated ({cache_error}) nor the \
                         invalidation recorded ({e}); retry the call"
                    ),
                    retry_after: e.retry_after().or(cache_error.retry_after()),
                })?;
            self.inner.fence.raise();
        }
        if !outcome.accepted.is_empty() {
            // Nobody listening is fine.
            let _ = self.inner.changes.send(ChangeNotice {
                tenant: tenant.clone(),
                accepted: outcome.accepted.len(),
            });
            if let Some(feed) = &self.inner.feed {
                feed.publish(tenant, outcome.accepted.len(), &tags);
            }
        }
        Ok(outcome)
    }

    /// Notices of acknowledged ingests, for live views. Slow receivers miss notices (and are
    /// told so by the channel) rather than slowing ingestion.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.inner.changes.subscribe()
    }

    /// A page of `tenant`'s raw events, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `page`, `limit`; store errors.
    pub async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        query.pagination.validate()?;
        self.inner.store.list_events(tenant, query).await
    }

    /// Creates an experiment.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field; [`Error::Conflict`] if the id is taken.
    pub async fn create_experiment(&self, tenant: &TenantId, input: ExperimentInput) -> Result<Experiment> {
        let experiment = Experiment::from_input(input, tenant, self.inner.clock.now())?;
        self.inner.store.create_experiment(&experiment).await?;
        self.remember_experiment(tenant, &experiment.id, experiment.conversion_event_type.clone());
        Ok(experiment)
    }

    /// The tenant's experiments.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        self.inner.store.list_experiments(tenant).await
    }

    /// One experiment.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the tenant has none with that id.
    pub async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Experiment> {
        self.inner
            .store
            .get_experiment(tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(format!("experiment {:?}", id.as_str())))
    }

    /// Applies a partial update to an experiment. A changed conversion event type changes the
    /// queries' cache keys, so no cached answer goes stale.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] naming the field.
    pub async fn update_experiment(
        &self,
        tenant: &TenantId,
        id: &ExperimentId,
        patch: ExperimentPatch,
    ) -> Result<Experiment> {
        let current = self.get_experiment(tenant, id).await?;
        let updated = current.apply(patch, self.inner.clock.now())?;
        self.inner.store.update_experiment(&updated).await?;
        self.remember_experiment(tenant, id, updated.conversion_event_type.clone());
        Ok(updated)
    }

    /// Registers a tenant and returns it with a new API key (shown only now; stored hashed).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `name`; [`Error::Conflict`] if the id is taken.
    pub async fn create_tenant(&self, id: TenantId, name: &str) -> Result<(Tenant, ApiKey)> {
        let tenant = Tenant::new(id, name, self.inner.clock.now())?;
        self.inner.store.create_tenant(&tenant).await?;
        let key = ApiKey::generate()?;
        self.inner.store.add_api_key(&tenant.id, &key.hash()).await?;
        Ok((tenant, key))
    }

    /// Cache counters and size, over every tenant: for operators. A tenant's own figures:
    /// [`tenant_cache_stats`](Self::tenant_cache_stats).
    ///
    /// # Errors
    /// Cache backend errors.
    pub async fn cache_stats(&self) -> Result<CacheStats> {
        self.inner.cache.stats().await
    }

    /// Drops every cached answer of `tenant`.
    ///
    /// # Errors
    /// Cache backend errors.
    pub async fn clear_cache(&self, tenant: &TenantId) -> Result<()> {
        self.inner.cache.clear_tenant(tenant).await
    }

    /// Invalidates specific tags of `tenant` (e.g. after correcting data out of band).
    ///
    /// # Errors
    /// Cache backend errors.
    pub async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.inner.cache.invalidate(tenant, tags).await
    }

    /// The store's health.
    ///
    /// # Errors
    /// Store errors.
    pub async fn store_health(&self) -> Result<StoreHealth> {
        self.inner.store.health().await
    }
}

fn check_batch_size(len: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::invalid("events", "must hold at least one event"));
    }
    if len > MAX_BATCH {
        return Err(Error::invalid(
            "events",
            format!("holds {len} events; the limit is {MAX_BATCH}"),
        ));
    }
    Ok(())
}
