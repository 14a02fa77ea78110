//! A store decorator whose data path can be made slow or failing at run time: how the demo
//! shows the breaker, stale answers and load shedding on a store that is really in trouble.
//!
//! Tenant and API-key look-ups are left alone, so the demo's callers stay signed in while
//! their data path fails, as they would with a store whose replicas or partitions are sick.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use analytics_core::cache::Tag;
use analytics_core::model::{ApiKeyHash, Event, EventType, Experiment, ExperimentId, Tenant, TenantId, VariantKey};
use analytics_core::query::{Aggregates, QueryPlan, VariantCounts};
use analytics_core::store::{AppendOutcome, EventListQuery, EventPage, EventStore, OwedInvalidation, StoreHealth};
use analytics_core::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What the store's data path does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum FaultMode {
    /// Answers normally.
    Healthy,
    /// Answers after a delay (milliseconds).
    Slow {
        /// The delay.
        delay_ms: u64,
    },
    /// Fails every call as a transient outage.
    Failing,
}

/// The run-time switch of a [`FaultyStore`], shared with whoever injects faults.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    /// 0 healthy, `u64::MAX` failing, else the delay in milliseconds.
    state: AtomicU64,
}

impl FaultSwitch {
    /// Sets the mode.
    pub fn set(&self, mode: FaultMode) {
        let state = match mode {
            FaultMode::Healthy => 0,
            FaultMode::Slow { delay_ms } => delay_ms.clamp(1, u64::MAX - 1),
            FaultMode::Failing => u64::MAX,
        };
        self.state.store(state, Ordering::SeqCst);
    }

    /// The current mode.
    pub fn mode(&self) -> FaultMode {
        match self.state.load(Ordering::SeqCst) {
            0 => FaultMode::Healthy,
            u64::MAX => FaultMode::Failing,
            delay_ms => FaultMode::Slow { delay_ms },
        }
    }

    async fn apply(&self) -> Result<()> {
        match self.mode() {
            FaultMode::Healthy => Ok(()),
            FaultMode::Slow { delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok(())
            }
            FaultMode::Failing => Err(Error::unavailable("the demo's fault switch fails the store")),
        }
    }
}

/// `inner` with its data path (appends, summaries, event lists, experiment counts, health)
/// under a [`FaultSwitch`].
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    switch: std::sync::Arc<FaultSwitch>,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`; faults are injected through `switch`.
    pub fn new(inner: S, switch: std::sync::Arc<FaultSwitch>) -> Self {
        Self { inner, switch }
    }
}

#[async_trait]
impl<S: EventStore> EventStore for FaultyStore<S> {
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome> {
        self.switch.apply().await?;
        self.inner.append(tenant, events).await
    }
    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates> {
        self.switch.apply().await?;
        self.inner.summary(plan).await
    }
    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        self.switch.apply().await?;
        self.inner.list_events(tenant, query).await
    }
    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        self.switch.apply().await?;
        self.inner.experiment_counts(tenant, experiment, conversion).await
    }
    async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.inner.create_experiment(experiment).await
    }
    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        self.inner.list_experiments(tenant).await
    }
    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
        self.inner.get_experiment(tenant, id).await
    }
    async fn update_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.inner.update_experiment(experiment).await
    }
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.inner.create_tenant(tenant).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        self.inner.get_tenant(id).await
    }
    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
        self.inner.add_api_key(tenant, key).await
    }
    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>> {
        self.inner.tenant_for_api_key(key).await
    }
    async fn health(&self) -> Result<StoreHealth> {
        self.switch.apply().await?;
        self.inner.health().await
    }
    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.switch.apply().await?;
        self.inner.owe_invalidation(tenant, tags).await
    }
    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>> {
        self.switch.apply().await?;
        self.inner.owed_invalidations().await
    }
    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()> {
        self.switch.apply().await?;
        self.inner.settle_invalidations(ids).await
    }
}
