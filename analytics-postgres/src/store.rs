//! [`PostgresStore`]: core's [`EventStore`] on PostgreSQL.

use std::collections::BTreeMap;

use analytics_core::Result;
use analytics_core::cache::Tag;
use analytics_core::model::{ApiKeyHash, Event, EventType, Experiment, ExperimentId, Tenant, TenantId, VariantKey};
use analytics_core::query::{Aggregates, QueryPlan, VariantCounts};
use analytics_core::store::{
    AppendOutcome, EventListQuery, EventPage, EventStore, OwedInvalidation, StoreHealth, check_batch_tenant,
};
use async_trait::async_trait;
use sqlx::PgPool;

use crate::compact::{self, CompactionTracker};
use crate::config::PostgresConfig;
use crate::error::{self, corrupt};
use crate::ingest::{IngestState, KnownExposures};
use crate::partitions::Partitions;
use crate::period_cache::PeriodCache;
use crate::replica::{Readers, ReplicaStats};
use crate::stats::{Dim, LEVEL_DAY, VARIANT_SEPARATOR};
use crate::{events, ingest, owed, rebuild, registry, stats, summary};

/// The PostgreSQL [`EventStore`]. See the [crate docs](crate) for the schema and the figures.
///
/// Cheap to share: wrap it in an `Arc` (it holds connection pools).
#[derive(Debug)]
pub struct PostgresStore {
    write: PgPool,
    readers: Readers,
    partitions: Partitions,
    ingest: IngestState,
    periods: PeriodCache,
}

impl PostgresStore {
    /// Connects the pools and, unless turned off, applies the embedded migrations.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](analytics_core::Error::InvalidInput) naming the bad setting;
    /// transient errors when the server is unreachable; [`Error::Backend`](analytics_core::Error::Backend)
    /// when a migration fails.
    pub async fn connect(config: &PostgresConfig) -> Result<Self> {
        let (write, read) = config.connect().await?;
        if config.runs_migrations() {
            crate::MIGRATOR
                .run(&write)
                .await
                .map_err(|e| analytics_core::Error::Backend(format!("postgres migrations: {e}")))?;
            rebuild::if_pending(&write).await?;
        }
        Ok(Self {
            readers: Readers::new(write.clone(), read, config.replica_policy()),
            write,
            partitions: Partitions::default(),
            ingest: IngestState {
                compaction: CompactionTracker::new(config.compaction_threshold()),
                exposures: KnownExposures::default(),
            },
            periods: PeriodCache::new(config.period_cache_capacity()),
        })
    }

    /// Merges, for every tenant, each period's `period_stats` rows into one; returns how many
    /// rows were merged away.
    ///
    /// Each store compacts the periods it writes as it goes (see
    /// [`PostgresConfig::compact_after`]); this catches up on rows left by other processes or
    /// before a restart. Safe to run at any time, beside ingestion and queries. When it merged
    /// any rows it then vacuums `period_stats` (best effort), so the time series' index-only
    /// scans do not wait for autovacuum.
    ///
    /// # Errors
    /// Transient errors when the server is unreachable.
    pub async fn compact(&self) -> Result<u64> {
        compact::compact_all(&self.write).await
    }

    /// How reads were served when a replica is configured (see [`ReplicaReads`](crate::ReplicaReads)).
    pub fn replica_stats(&self) -> ReplicaStats {
        self.readers.stats()
    }

    /// The write pool (the primary), for callers that add their own tables alongside.
    pub fn pool(&self) -> &PgPool {
        &self.write
    }

    /// Closes both pools, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.write.close().await;
        if let Some(replica) = self.readers.replica() {
            replica.close().await;
        }
    }

    /// The physical limit the batch ingest is measured against, for benchmarks: `events` of
    /// `tenant` written to the events table exactly as [`append`](EventStore::append) writes
    /// them (one binary `COPY` of the rows in time order, in a transaction, partitions created
    /// as needed) and nothing more. None of `append`'s promises hold: no idempotency ledger (a
    /// retried event is stored twice), no rollups (summaries do not count these events), no
    /// experiment state, no change notice.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](analytics_core::Error::InvalidInput) when an event is not
    /// `tenant`'s; transient errors when the server is unreachable.
    #[doc(hidden)]
    pub async fn copy_events_bare(&self, tenant: &TenantId, events: &[Event]) -> Result<()> {
        check_batch_tenant(tenant, events)?;
        self.partitions
            .ensure(&self.write, events.iter().map(|e| e.timestamp))
            .await?;
        ingest::copy_bare(&self.write, tenant.as_str(), events).await
    }

    /// Whole-experiment counts per variant: `events` (every event carrying the experiment and
    /// the variant, as the reference counts them), distinct `users`, and `conversions` — users
    /// with at least one event of `conversion_event_type` in that variant. Exact, and independent
    /// of any time range: users and conversions come from the per-user experiment state kept at
    /// ingest (one row per variant and user), events from the daily `period_stats` rows — never
    /// a scan of the experiment's events.
    ///
    /// # Errors
    /// Transient errors when the server is unreachable.
    pub async fn experiment_state(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion_event_type: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        let read = self.readers.pool().await?;
        let users = sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT variant, count(*), count(*) FILTER (WHERE $3 = ANY(event_types))
             FROM experiment_users WHERE tenant_id = $1 AND experiment_id = $2 GROUP BY variant",
        )
        .bind(tenant.as_str())
        .bind(experiment.as_str())
        .bind(conversion_event_type.as_str())
        .fetch_all(read);
        let days =
            sqlx::query_scalar::<_, Vec<u8>>("SELECT counts FROM period_stats WHERE tenant_id = $1 AND level = $2")
                .bind(tenant.as_str())
                .bind(LEVEL_DAY)
                .fetch_all(read);
        let (users, days) = futures_util::future::try_join(users, days)
            .await
            .map_err(|e| error::map("experiment state", e))?;
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("count", n));
        let variant = |v: &str| VariantKey::parse(v).map_err(|e| corrupt("variant", e));
        let mut state: BTreeMap<VariantKey, VariantCounts> = BTreeMap::new();
        for (name, users, conversions) in users {
            let counts = state.entry(variant(&name)?).or_default();
            counts.users = count(users)?;
            counts.conversions = count(conversions)?;
        }
        for bytes in &days {
            for (dim, value, n) in stats::decode_counts(bytes)? {
                if dim != Dim::Variant {
                    continue;
                }
                if let Some((id, name)) = value.split_once(VARIANT_SEPARATOR)
                    && id == experiment.as_str()
                {
                    state.entry(variant(name)?).or_default().events += n;
                }
            }
        }
        Ok(state)
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome> {
        check_batch_tenant(tenant, events)?;
        ingest::check_size(events)?;
        self.partitions
            .ensure(&self.write, events.iter().map(|e| e.timestamp))
            .await?;
        ingest::append(&self.write, &self.ingest, tenant.as_str(), events).await
    }

    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates> {
        summary::summary(self.readers.pool().await?, &self.periods, plan).await
    }

    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        events::list(self.readers.pool().await?, tenant, query).await
    }

    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        self.experiment_state(tenant, experiment, conversion).await
    }

    async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        registry::create_experiment(&self.write, experiment).await
    }

    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        registry::list_experiments(&self.write, tenant).await
    }

    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
        registry::get_experiment(&self.write, tenant, id).await
    }

    async fn update_experiment(&self, experiment: &Experiment) -> Result<()> {
        registry::update_experiment(&self.write, experiment).await
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        registry::create_tenant(&self.write, tenant).await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        registry::get_tenant(&self.write, id).await
    }

    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
        registry::add_api_key(&self.write, tenant, key).await
    }

    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>> {
        registry::tenant_for_api_key(&self.write, key).await
    }

    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        owed::owe(&self.write, tenant, tags).await
    }

    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>> {
        owed::owed(&self.write).await
    }

    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()> {
        owed::settle(&self.write, ids).await
    }

    async fn health(&self) -> Result<StoreHealth> {
        sqlx::query("SELECT 1")
            .execute(&self.write)
            .await
            .map_err(|e| error::map("health check", e))?;
        let mut detail = format!("write pool {}/{} idle", self.write.num_idle(), self.write.size());
        if let Some(replica) = self.readers.replica() {
            let served = self.readers.stats();
            detail += &format!(
                ", replica pool {}/{} idle, reads served by the replica {} and by the primary {}",
                replica.num_idle(),
                replica.size(),
                served.replica,
                served.primary
            );
        }
        Ok(StoreHealth {
            healthy: true,
            backend: "postgres".into(),
            detail,
        })
    }
}
