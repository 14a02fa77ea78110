//! [`MemoryStore`]: the embedded default store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use roaring::RoaringBitmap;

use super::rollup::{Rollup, RollupLevels};
use super::{
    AppendOutcome, EventCursor, EventListQuery, EventPage, EventStore, MAX_OWED_READ, OwedInvalidation, Pagination,
    StoreHealth, check_batch_tenant,
};
use crate::cache::Tag;
use crate::error::{Error, Result};
use crate::model::{
    ApiKeyHash, Event, EventId, EventType, Experiment, ExperimentId, Tenant, TenantId, UserId, VariantKey,
};
use crate::query::{
    Aggregates, PlanSource, QueryPlan, SpanPlan, TOP_PAGES, TimeRange, VariantCounts, rank_breakdown, rank_counts,
};
use crate::reference;

/// The embedded default [`EventStore`]: everything in process memory.
///
/// A product, not a test double. It is exact (it agrees with the reference aggregation on every
/// metric, unique users included), concurrent (each tenant has its own lock, so tenants never
/// contend), and answers unfiltered summaries from hourly and daily rollups maintained at
/// append: a 31-day summary merges 31 daily rollups plus edge hours instead of folding every
/// event. Unique users are exact: users are interned per tenant and each rollup keeps a roaring
/// bitmap of them, so a range's distinct users are a bitmap union. Raw events are kept, ordered
/// by time, for range edges, filtered queries and the event log.
///
/// Data lives as long as the store: it is not persisted. Use a persistent store (PostgreSQL)
/// when events must survive a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tenants: RwLock<HashMap<TenantId, Arc<RwLock<TenantEvents>>>>,
    experiments: RwLock<HashMap<TenantId, BTreeMap<ExperimentId, Experiment>>>,
    registry: RwLock<Registry>,
    owed: RwLock<OwedLedger>,
}

/// Owed cache invalidations by id; ids are never reused.
#[derive(Debug, Default)]
struct OwedLedger {
    last_id: i64,
    debts: BTreeMap<i64, (TenantId, Vec<Tag>)>,
}

#[derive(Debug, Default)]
struct Registry {
    tenants: HashMap<TenantId, Tenant>,
    api_keys: HashMap<ApiKeyHash, TenantId>,
}

/// One tenant's events and rollups.
#[derive(Debug, Default)]
struct TenantEvents {
    ids: HashSet<EventId>,
    /// Events by timestamp (µs), each vector ordered by id.
    log: BTreeMap<i64, Vec<Arc<Event>>>,
    rollups: RollupLevels,
    users: HashMap<UserId, u32>,
    experiments: HashMap<ExperimentId, BTreeMap<VariantKey, VariantState>>,
}

/// One variant of an experiment, over all time: its events, and bitmaps of its (interned) users
/// and of its users per event type, so conversions are exact for any conversion type.
#[derive(Debug, Default)]
struct VariantState {
    events: u64,
    users: RoaringBitmap,
    by_type: HashMap<EventType, RoaringBitmap>,
}

impl TenantEvents {
    fn insert(&mut self, event: &Event) {
        let user = event.user_id.as_ref().map(|u| self.intern(u));
        self.rollups.add(event, user);
        if let (Some(experiment), Some(variant)) = (&event.experiment_id, &event.variant) {
            let state = self
                .experiments
                .entry(experiment.clone())
                .or_default()
                .entry(variant.clone())
                .or_default();
            state.events += 1;
            if let Some(user) = user {
                state.users.insert(user);
                state.by_type.entry(event.event_type.clone()).or_default().insert(user);
            }
        }
        let slot = self.log.entry(event.timestamp.timestamp_micros()).or_default();
        let at = slot.partition_point(|e| e.id < event.id);
        slot.insert(at, Arc::new(event.clone()));
    }

    fn intern(&mut self, user: &UserId) -> u32 {
        let next = u32::try_from(self.users.len()).expect("fewer than 2^32 users per tenant");
        *self.users.entry(user.clone()).or_insert(next)
    }

    fn events_in(&self, range: TimeRange) -> impl DoubleEndedIterator<Item = &Arc<Event>> {
        self.log
            .range(range.start().timestamp_micros()..range.end().timestamp_micros())
            .flat_map(|(_, slot)| slot.iter())
    }

    fn add_raw(&self, span: &SpanPlan, into: &mut Rollup) {
        for piece in &span.raw {
            for event in self.events_in(*piece) {
                into.add(event, event.user_id.as_ref().map(|u| self.users[u]));
            }
        }
    }

    fn count(&self, span: &SpanPlan) -> u64 {
        let rolled = span.rollup.map_or(0, |h| self.rollups.total_in(h));
        let raw: usize = span.raw.iter().map(|piece| self.events_in(*piece).count()).sum();
        rolled + raw as u64
    }

    fn summary(&self, plan: &QueryPlan) -> Aggregates {
        if plan.source == PlanSource::RawEvents {
            // Filters the rollups do not cover: fold the time-narrowed events by definition.
            return reference::aggregate(self.events_in(plan.query.range()).map(|e| &**e), &plan.query);
        }
        let mut whole = Rollup::default();
        if let Some(hours) = plan.whole.rollup {
            self.rollups.merge_span(hours, &mut whole, plan.query.breakdowns());
        }
        self.add_raw(&plan.whole, &mut whole);
        let breakdowns = plan.query.breakdowns();
        Aggregates {
            total_events: whole.total,
            unique_users: whole.users.len(),
            unique_users_approximate: false,
            events_by_type: rank_counts(whole.by_type, None),
            time_series: plan.buckets.iter().map(|b| self.count(&b.span)).collect(),
            // Raw edges may have counted a few breakdown values; omitted breakdowns are empty.
            top_pages: rank_breakdown(breakdowns, whole.pages, Some(TOP_PAGES)),
            devices: rank_breakdown(breakdowns, whole.devices, None),
            browsers: rank_breakdown(breakdowns, whole.browsers, None),
            countries: rank_breakdown(breakdowns, whole.countries, None),
            variants: None,
        }
    }

    fn list(&self, query: &EventListQuery) -> EventPage {
        let newest_first = self.log.values().rev().flat_map(|slot| slot.iter().rev());
        let matching = newest_first.filter(|e| query.matches(e));
        match &query.pagination {
            Pagination::Offset { page, limit } => {
                let total = matching.clone().count() as u64;
                let skip = (*page as usize - 1).saturating_mul(*limit as usize);
                let events = matching
                    .skip(skip)
                    .take(*limit as usize)
                    .map(|e| (**e).clone())
                    .collect();
                EventPage {
                    events,
                    total: Some(total),
                    next_cursor: None,
                }
            }
            Pagination::Cursor { after, limit } => {
                let mut page: Vec<Event> = matching
                    .skip_while(|e| after.as_ref().is_some_and(|c| !c.precedes(e)))
                    .take(*limit as usize + 1)
                    .map(|e| (**e).clone())
                    .collect();
                let more = page.len() > *limit as usize;
                page.truncate(*limit as usize);
                let next_cursor = if more {
                    page.last().map(EventCursor::after)
                } else {
                    None
                };
                EventPage {
                    events: page,
                    total: None,
                    next_cursor,
                }
            }
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tenant(&self, tenant: &TenantId) -> Option<Arc<RwLock<TenantEvents>>> {
        read(&self.tenants).get(tenant).cloned()
    }

    fn tenant_or_create(&self, tenant: &TenantId) -> Arc<RwLock<TenantEvents>> {
        if let Some(existing) = self.tenant(tenant) {
            return existing;
        }
        write(&self.tenants).entry(tenant.clone()).or_default().clone()
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome> {
        check_batch_tenant(tenant, events)?;
        let data = self.tenant_or_create(tenant);
        let mut data = write(&data);
        let mut outcome = AppendOutcome::default();
        for event in events {
            if data.ids.insert(event.id.clone()) {
                data.insert(event);
                outcome.accepted.push(event.id.clone());
            } else {
                outcome.duplicates.push(event.id.clone());
            }
        }
        Ok(outcome)
    }

    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates> {
        match self.tenant(plan.query.tenant()) {
            Some(data) => Ok(read(&data).summary(plan)),
            None => Ok(reference::aggregate([], &plan.query)),
        }
    }

    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        query.pagination.validate()?;
        match self.tenant(tenant) {
            Some(data) => Ok(read(&data).list(query)),
            None => Ok(TenantEvents::default().list(query)),
        }
    }

    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        let Some(data) = self.tenant(tenant) else {
            return Ok(BTreeMap::new());
        };
        let data = read(&data);
        let counts = data
            .experiments
            .get(experiment)
            .into_iter()
            .flatten()
            .map(|(variant, state)| {
                let counts = VariantCounts {
                    events: state.events,
                    users: state.users.len(),
                    conversions: state.by_type.get(conversion).map_or(0, RoaringBitmap::len),
                };
                (variant.clone(), counts)
            })
            .collect();
        Ok(counts)
    }

    async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        let mut all = write(&self.experiments);
        let tenant = all.entry(experiment.tenant_id.clone()).or_default();
        if tenant.contains_key(&experiment.id) {
            return Err(Error::Conflict(format!(
                "experiment {:?} already exists",
                experiment.id.as_str()
            )));
        }
        tenant.insert(experiment.id.clone(), experiment.clone());
        Ok(())
    }

    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        Ok(read(&self.experiments)
            .get(tenant)
            .map(|e| e.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
        Ok(read(&self.experiments).get(tenant).and_then(|e| e.get(id)).cloned())
    }

    async fn update_experiment(&self, experiment: &Experiment) -> Result<()> {
        let mut all = write(&self.experiments);
        match all
            .get_mut(&experiment.tenant_id)
            .and_then(|e| e.get_mut(&experiment.id))
        {
            Some(slot) => {
                *slot = experiment.clone();
                Ok(())
            }
            None => Err(Error::not_found(format!("experiment {:?}", experiment.id.as_str()))),
        }
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let mut registry = write(&self.registry);
        if registry.tenants.contains_key(&tenant.id) {
            return Err(Error::Conflict(format!(
                "tenant {:?} already exists",
                tenant.id.as_str()
            )));
        }
        registry.tenants.insert(tenant.id.clone(), tenant.clone());
        Ok(())
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        Ok(read(&self.registry).tenants.get(id).cloned())
    }

    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
        let mut registry = write(&self.registry);
        if !registry.tenants.contains_key(tenant) {
            return Err(Error::not_found(format!("tenant {:?}", tenant.as_str())));
        }
        if registry.api_keys.contains_key(key) {
            return Err(Error::Conflict("API key already registered".into()));
        }
        registry.api_keys.insert(*key, tenant.clone());
        Ok(())
    }

    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>> {
        Ok(read(&self.registry).api_keys.get(key).cloned())
    }

    async fn health(&self) -> Result<StoreHealth> {
        let tenants = read(&self.tenants).len();
        Ok(StoreHealth {
            healthy: true,
            backend: "memory".into(),
            detail: format!("{tenants} tenants with events"),
        })
    }
    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        let mut owed = write(&self.owed);
        owed.last_id += 1;
        let id = owed.last_id;
        owed.debts.insert(id, (tenant.clone(), tags.to_vec()));
        Ok(())
    }
    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>> {
        Ok(read(&self.owed)
            .debts
            .iter()
            .take(MAX_OWED_READ)
            .map(|(id, (tenant, tags))| OwedInvalidation {
                id: *id,
                tenant: tenant.clone(),
                tags: tags.clone(),
            })
            .collect())
    }
    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()> {
        let mut owed = write(&self.owed);
        for id in ids {
            owed.debts.remove(id);
        }
        Ok(())
    }
}

/// Locks ignore poisoning. Critical sections call nothing that panics on valid data; if a bug
/// made one panic mid-update, the tenant's data could be partly updated, but poisoning would
/// instead fail every later call for every tenant sharing the lock.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
