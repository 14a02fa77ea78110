//! [`InstrumentedStore`]: a store decorator for tests of what sits above a store — counts
//! summaries, can hold them at a gate, and can be taken down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::collections::BTreeMap;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::cache::Tag;
use crate::error::{Error, Result};
use crate::model::{ApiKeyHash, Event, EventType, Experiment, ExperimentId, Tenant, TenantId, VariantKey};
use crate::query::{Aggregates, QueryPlan, VariantCounts};
use crate::store::{AppendOutcome, EventListQuery, EventPage, EventStore, OwedInvalidation, StoreHealth};

/// Wraps a store for fault and concurrency tests.
///
/// - [`summaries`](Self::summaries) counts summary executions (including failed ones), and
///   [`calls`](Self::calls) every call of any kind;
/// - [`set_down`](Self::set_down) makes every data call fail with a transient
///   [`Error::Unavailable`] (tenant and experiment administration keep working, as they would
///   against a primary that is up while a read path is not);
/// - [`set_all_down`](Self::set_all_down) makes every call fail, tenant, API-key and
///   experiment administration included (the whole database is gone);
/// - [`gated`](Self::gated) holds every summary until the returned semaphore gets permits.
#[derive(Debug)]
pub struct InstrumentedStore<S> {
    inner: S,
    down: AtomicBool,
    all_down: AtomicBool,
    summaries: AtomicUsize,
    calls: AtomicUsize,
    gate: Option<Arc<Semaphore>>,
}

impl<S: EventStore> InstrumentedStore<S> {
    /// `inner`, up, ungated.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
            all_down: AtomicBool::new(false),
            summaries: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            gate: None,
        }
    }

    /// `inner` with summaries held at a gate; add permits to the semaphore to release them.
    pub fn gated(inner: S) -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        (
            Self {
                gate: Some(gate.clone()),
                ..Self::new(inner)
            },
            gate,
        )
    }

    /// Takes the store down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Takes the whole store down (`true`): data calls and administration alike fail with a
    /// transient [`Error::Unavailable`]. `false` brings it back.
    pub fn set_all_down(&self, down: bool) {
        self.all_down.store(down, Ordering::SeqCst);
    }

    /// Calls of any method so far (reads, writes, administration, health).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Summary executions so far.
    pub fn summaries(&self) -> usize {
        self.summaries.load(Ordering::SeqCst)
    }

    /// The wrapped store, bypassing the instrumentation.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<()> {
        self.check_admin()?;
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::unavailable("store taken down by the test"));
        }
        Ok(())
    }

    fn check_admin(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.all_down.load(Ordering::SeqCst) {
            Err(Error::unavailable("store taken down by the test"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<S: EventStore> EventStore for InstrumentedStore<S> {
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome> {
        self.check()?;
        self.inner.append(tenant, events).await
    }
    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates> {
        self.summaries.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            let _permit = gate
                .acquire()
                .await
                .map_err(|_| Error::Internal("gate closed".into()))?;
        }
        self.check()?;
        self.inner.summary(plan).await
    }
    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        self.check()?;
        self.inner.list_events(tenant, query).await
    }
    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        self.check()?;
        self.inner.experiment_counts(tenant, experiment, conversion).await
    }
    async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.check_admin()?;
        self.inner.create_experiment(experiment).await
    }
    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        self.check_admin()?;
        self.inner.list_experiments(tenant).await
    }
    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
        self.check()?;
        self.inner.get_experiment(tenant, id).await
    }
    async fn update_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.check_admin()?;
        self.inner.update_experiment(experiment).await
    }
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.check_admin()?;
        self.inner.create_tenant(tenant).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        self.check_admin()?;
        self.inner.get_tenant(id).await
    }
    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
        self.check_admin()?;
        self.inner.add_api_key(tenant, key).await
    }
    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>> {
        self.check_admin()?;
        self.inner.tenant_for_api_key(key).await
    }
    async fn health(&self) -> Result<StoreHealth> {
        self.check()?;
        self.inner.health().await
    }
    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.check()?;
        self.inner.owe_invalidation(tenant, tags).await
    }
    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>> {
        self.check()?;
        self.inner.owed_invalidations().await
    }
    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()> {
        self.check()?;
        self.inner.settle_invalidations(ids).await
    }
}
