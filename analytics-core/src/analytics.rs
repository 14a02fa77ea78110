//! [`Analytics`]: the facade a service calls.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::cache::policy::ingest_tags;
use crate::cache::single_flight::SingleFlight;
use crate::cache::{CacheBackend, CacheEntry, CacheKey, CacheStats, Freshness, Tag, TagVersions, TtlPolicy};
use crate::clock::{Clock, SystemClock, delta, elapsed};
use crate::error::{Error, Result};
use crate::model::{
    ApiKey, Event, EventInput, Experiment, ExperimentId, ExperimentInput, ExperimentPatch, Tenant, TenantId,
};
use crate::query::{LoadLevel, Query, QueryPlan, Summary, SummaryBody, SummaryMetadata, SummaryRequest};
use crate::store::{AppendOutcome, EventListQuery, EventPage, EventStore, MemoryStore, StoreHealth};

/// The most events one ingest call accepts.
pub const MAX_BATCH: usize = 10_000;

/// What a summary entry in the cache holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CachedSummary {
    body: SummaryBody,
    unique_users_approximate: bool,
}

/// A computed summary and when it was computed.
#[derive(Debug, Clone)]
struct Computed {
    cached: Arc<CachedSummary>,
    computed_at: DateTime<Utc>,
}

/// Notice that a tenant's data changed, sent after an ingest is acknowledged (for live views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    /// Whose data changed.
    pub tenant: TenantId,
    /// How many events were newly accepted.
    pub accepted: usize,
}

/// The facade: validates requests, plans queries, serves them through the cache from the store,
/// and ingests events with invalidation.
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

#[derive(Debug)]
struct Inner {
    store: Arc<dyn EventStore>,
    cache: Arc<dyn CacheBackend>,
    clock: Arc<dyn Clock>,
    ttl: TtlPolicy,
    flights: SingleFlight<(CacheKey, TagVersions), Computed>,
    changes: broadcast::Sender<ChangeNotice>,
}

/// Builds an [`Analytics`]; every part has an embedded default.
#[derive(Debug, Default)]
pub struct AnalyticsBuilder {
    store: Option<Arc<dyn EventStore>>,
    cache: Option<Arc<dyn CacheBackend>>,
    clock: Option<Arc<dyn Clock>>,
    ttl: TtlPolicy,
}

impl AnalyticsBuilder {
    /// The event store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The cache backend (default: [`MokaCache`](crate::cache::MokaCache) of 256 MiB with the
    /// `moka` feature, else [`NoCache`]).
    pub fn cache(mut self, cache: Arc<dyn CacheBackend>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// TTL tiers and stale window (default: [`TtlPolicy::default`]).
    pub fn ttl_policy(mut self, ttl: TtlPolicy) -> Self {
        self.ttl = ttl;
        self
    }

    /// The facade.
    pub fn build(self) -> Analytics {
        let (changes, _) = broadcast::channel(1024);
        Analytics {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                cache: self.cache.unwrap_or_else(default_cache),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
                ttl: self.ttl,
                flights: SingleFlight::default(),
                changes,
            }),
        }
    }
}

fn default_cache() -> Arc<dyn CacheBackend> {
    #[cfg(feature = "moka")]
    return Arc::new(crate::cache::MokaCache::default());
    #[cfg(not(feature = "moka"))]
    return Arc::new(crate::cache::NoCache::default());
}

impl Analytics {
    /// A builder with every part at its embedded default.
    pub fn builder() -> AnalyticsBuilder {
        AnalyticsBuilder::default()
    }

    /// The embedded default: [`MemoryStore`], the moka cache, the system clock.
    pub fn in_memory() -> Self {
        Self::builder().build()
    }

    /// The clock this facade reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store behind the facade.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// Validates `request` for `tenant` and answers it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the bad field; store errors when the answer cannot be
    /// computed.
    pub async fn summary(&self, tenant: &TenantId, request: &SummaryRequest) -> Result<Summary> {
        let query = Query::parse(tenant, request)?;
        self.summary_for(query, request.skip_cache).await
    }

    /// Answers a validated query; `skip_cache` bypasses the cache read (the fresh answer is
    /// still stored).
    ///
    /// # Errors
    /// Store errors when the answer cannot be computed.
    pub async fn summary_for(&self, query: Query, skip_cache: bool) -> Result<Summary> {
        let inner = &self.inner;
        let started = inner.clock.now();
        let query = self.with_experiment_settings(query).await?;
        let key = CacheKey::for_query(&query);
        let tags = inner.ttl.query_tags(&query, started);
        let tenant = query.tenant().clone();

        // A cache failure must not fail the query: without a lookup we answer from the store
        // and do not cache (we could not prove which tag versions the answer was computed under).
        let lookup = inner.cache.get(&tenant, &key, &tags, started).await.ok();
        if !skip_cache
            && let Some(hit) = lookup.as_ref().and_then(|l| l.hit.as_ref())
            && hit.freshness == Freshness::Fresh
            && let Ok(cached) = serde_json::from_slice::<CachedSummary>(&hit.entry.value)
        {
            let age = elapsed(hit.entry.created_at, started);
            return Ok(self.respond(&query, cached, started, Some(age)));
        }

        let versions = lookup.map(|l| l.tag_versions);
        let computed = match versions {
            Some(versions) => {
                let (this, owned) = (self.clone(), query.clone());
                let flight_key = (key.clone(), versions.clone());
                inner
                    .flights
                    .run(
                        flight_key,
                        async move { this.compute_and_cache(owned, key, versions).await },
                    )
                    .await?
            }
            None => self.compute(&query).await?,
        };
        let Computed { cached, .. } = computed;
        Ok(self.respond(&query, (*cached).clone(), started, None))
    }

    async fn compute(&self, query: &Query) -> Result<Computed> {
        let computed_at = self.inner.clock.now();
        let aggregates = self.inner.store.summary(&QueryPlan::new(query.clone())).await?;
        let cached = CachedSummary {
            body: SummaryBody::assemble(&aggregates, query),
            unique_users_approximate: aggregates.unique_users_approximate,
        };
        Ok(Computed {
            cached: Arc::new(cached),
            computed_at,
        })
    }

    async fn compute_and_cache(&self, query: Query, key: CacheKey, versions: TagVersions) -> Result<Computed> {
        let computed = self.compute(&query).await?;
        let inner = &self.inner;
        let ttl = inner.ttl.ttl(inner.ttl.tier(query.range().end(), computed.computed_at));
        let fresh_until = computed.computed_at + delta(ttl);
        let entry = CacheEntry {
            value: serde_json::to_vec(&*computed.cached)
                .map_err(|e| Error::Internal(format!("serializing a summary: {e}")))?
                .into(),
            created_at: computed.computed_at,
            fresh_until,
            stale_until: fresh_until + delta(inner.ttl.stale_window),
            tags: versions,
        };
        // The answer is good even if caching it fails; the next request recomputes.
        let _ = inner.cache.set(query.tenant(), &key, entry, inner.clock.now()).await;
        Ok(computed)
    }

    fn respond(
        &self,
        query: &Query,
        cached: CachedSummary,
        started: DateTime<Utc>,
        age: Option<std::time::Duration>,
    ) -> Summary {
        let taken = elapsed(started, self.inner.clock.now());
        Summary {
            body: cached.body,
            metadata: SummaryMetadata {
                load_level: LoadLevel::Normal,
                cached: age.is_some(),
                stale: false,
                age_ms: age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
                response_time: taken.as_secs_f64() * 1000.0,
                granularity: query.granularity(),
                timezone: query.timezone().name().to_owned(),
                degraded: Vec::new(),
                unique_users_approximate: cached.unique_users_approximate,
            },
        }
    }

    /// Sets the conversion event type of a filtered experiment from its definition (default
    /// `CONVERSION` for experiments not registered).
    async fn with_experiment_settings(&self, query: Query) -> Result<Query> {
        let Some(id) = query.filters().experiment_id.clone() else {
            return Ok(query);
        };
        match self.inner.store.get_experiment(query.tenant(), &id).await? {
            Some(experiment) => Ok(query.with_conversion_event_type(experiment.conversion_event_type)),
            None => Ok(query),
        }
    }

    /// Validates and stores a batch of events for `tenant`, then invalidates the cached answers
    /// they affect.
    ///
    /// # Behavior
    /// Returns only after the store has committed the events and the cache has been
    /// invalidated, so any read after it sees them. Events whose id the tenant already has are
    /// reported as duplicates and not counted again, so a failed call can be retried as is.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `events[i].field` (nothing is stored then);
    /// store errors; a transient error if invalidation fails after the events were stored (retry:
    /// the retry reports them as duplicates and invalidates again).
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

    /// Stores already-validated events; otherwise as [`ingest`](Self::ingest).
    ///
    /// # Errors
    /// As [`ingest`](Self::ingest).
    pub async fn ingest_events(&self, tenant: &TenantId, events: Vec<Event>) -> Result<AppendOutcome> {
        check_batch_size(events.len())?;
        let outcome = self.inner.store.append(tenant, &events).await?;
        // Duplicates are invalidated too: they may be the retry of a call whose invalidation failed.
        self.inner
            .cache
            .invalidate(tenant, &ingest_tags(&events))
            .await
            .map_err(|e| Error::Unavailable {
                message: format!("events stored but cached answers could not be invalidated ({e}); retry the call"),
                retry_after: e.retry_after(),
            })?;
        if !outcome.accepted.is_empty() {
            // Nobody listening is fine.
            let _ = self.inner.changes.send(ChangeNotice {
                tenant: tenant.clone(),
                accepted: outcome.accepted.len(),
            });
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

    /// The tenant an API key belongs to.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for an unknown key.
    pub async fn authenticate(&self, key: &ApiKey) -> Result<TenantId> {
        self.inner
            .store
            .tenant_for_api_key(&key.hash())
            .await?
            .ok_or_else(|| Error::Unauthenticated("unknown API key".into()))
    }

    /// Cache counters and size.
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
