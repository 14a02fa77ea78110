//! [`BreakerStore`]: any [`EventStore`] behind a [`CircuitBreaker`].

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::breaker::CircuitBreaker;
use crate::cache::Tag;
use crate::error::Result;
use crate::model::{ApiKeyHash, Event, EventType, Experiment, ExperimentId, Tenant, TenantId, VariantKey};
use crate::query::{Aggregates, QueryPlan, VariantCounts};
use crate::store::{AppendOutcome, EventListQuery, EventPage, EventStore, OwedInvalidation, StoreHealth};

/// Wraps a store so every call passes through a circuit breaker: while it is open, calls fail
/// fast with [`Error::Unavailable`](crate::Error::Unavailable) and a retry hint instead of
/// piling onto a failing backend. It is itself an [`EventStore`].
#[derive(Debug)]
pub struct BreakerStore<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S: EventStore> BreakerStore<S> {
    /// `inner` behind `breaker`.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker (for metrics and operator controls).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: EventStore> EventStore for BreakerStore<S> {
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome> {
        self.breaker.call(self.inner.append(tenant, events)).await
    }
    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates> {
        self.breaker.call(self.inner.summary(plan)).await
    }
    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        self.breaker.call(self.inner.list_events(tenant, query)).await
    }
    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        self.breaker
            .call(self.inner.experiment_counts(tenant, experiment, conversion))
            .await
    }
    async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.breaker.call(self.inner.create_experiment(experiment)).await
    }
    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        self.breaker.call(self.inner.list_experiments(tenant)).await
    }
    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
        self.breaker.call(self.inner.get_experiment(tenant, id)).await
    }
    async fn update_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.breaker.call(self.inner.update_experiment(experiment)).await
    }
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.breaker.call(self.inner.create_tenant(tenant)).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        self.breaker.call(self.inner.get_tenant(id)).await
    }
    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
        self.breaker.call(self.inner.add_api_key(tenant, key)).await
    }
    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>> {
        self.breaker.call(self.inner.tenant_for_api_key(key)).await
    }
    /// Health is answered even while the breaker is open: it is how operators see the outage.
    async fn health(&self) -> Result<StoreHealth> {
        self.inner.health().await
    }
    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.breaker.call(self.inner.owe_invalidation(tenant, tags)).await
    }
    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>> {
        self.breaker.call(self.inner.owed_invalidations()).await
    }
    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()> {
        self.breaker.call(self.inner.settle_invalidations(ids)).await
    }
}
