//! The storage contract ([`EventStore`]) and the embedded default ([`MemoryStore`]).

mod memory;
mod rollup;

use std::collections::BTreeMap;
use std::fmt::{self, Debug};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use memory::MemoryStore;

use crate::cache::Tag;
use crate::error::{Error, Result};
use crate::model::{
    ApiKeyHash, Event, EventId, EventType, Experiment, ExperimentId, Tenant, TenantId, UserId, VariantKey,
};
use crate::query::{Aggregates, QueryPlan, TimeRange, VariantCounts};

/// The most events a page of the event log may hold.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// What happened to each event of an appended batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppendOutcome {
    /// Ids stored by this call, in batch order.
    pub accepted: Vec<EventId>,
    /// Ids already stored for the tenant (by an earlier call or earlier in this batch), in batch
    /// order. They were not counted again.
    pub duplicates: Vec<EventId>,
}

/// A position in the event log, after which the next page starts. Opaque to clients: its text
/// form ([`EventCursor::encode`]) is what they pass back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventCursor {
    /// Timestamp of the last event returned.
    pub timestamp: DateTime<Utc>,
    /// Id of the last event returned.
    pub id: EventId,
}

impl EventCursor {
    /// The cursor after `event`.
    pub fn after(event: &Event) -> Self {
        Self {
            timestamp: event.timestamp,
            id: event.id.clone(),
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!("{}~{}", self.timestamp.timestamp_micros(), self.id)
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `cursor`.
    pub fn decode(text: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "is not a cursor this API returned");
        let (micros, id) = text.split_once('~').ok_or_else(bad)?;
        let timestamp = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(bad)?;
        Ok(Self {
            timestamp,
            id: EventId::parse(id).map_err(|_| bad())?,
        })
    }

    /// Whether `event` comes after this cursor in log order (newest first).
    pub fn precedes(&self, event: &Event) -> bool {
        (event.timestamp, &event.id) < (self.timestamp, &self.id)
    }
}

/// How to page through the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// Page numbers (1-based) with a total count: simple, but deep pages cost more.
    Offset {
        /// 1-based page number.
        page: u32,
        /// Events per page, 1–[`MAX_PAGE_LIMIT`].
        limit: u32,
    },
    /// Keyset pagination: stable under concurrent inserts, constant cost per page.
    Cursor {
        /// Start after this position; `None` for the first page.
        after: Option<EventCursor>,
        /// Events per page, 1–[`MAX_PAGE_LIMIT`].
        limit: u32,
    },
}

impl Pagination {
    /// The page size.
    pub fn limit(&self) -> u32 {
        match self {
            Pagination::Offset { limit, .. } | Pagination::Cursor { limit, .. } => *limit,
        }
    }

    /// Checks page ≥ 1 and 1 ≤ limit ≤ [`MAX_PAGE_LIMIT`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `page` or `limit`.
    pub fn validate(&self) -> Result<()> {
        if let Pagination::Offset { page: 0, .. } = self {
            return Err(Error::invalid("page", "starts at 1"));
        }
        if !(1..=MAX_PAGE_LIMIT).contains(&self.limit()) {
            return Err(Error::invalid("limit", format!("must be 1–{MAX_PAGE_LIMIT}")));
        }
        Ok(())
    }
}

/// A request for a page of a tenant's raw events, newest first (timestamp, then id, descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventListQuery {
    /// Only events in this range.
    pub range: Option<TimeRange>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// Only events of this user.
    pub user_id: Option<UserId>,
    /// Which page.
    pub pagination: Pagination,
}

impl EventListQuery {
    /// Whether `event` passes the filters (not the pagination).
    pub fn matches(&self, event: &Event) -> bool {
        self.range.is_none_or(|r| r.contains(event.timestamp))
            && self.event_type.as_ref().is_none_or(|t| *t == event.event_type)
            && self.user_id.as_ref().is_none_or(|u| event.user_id.as_ref() == Some(u))
    }
}

/// A page of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// The events, newest first.
    pub events: Vec<Event>,
    /// Events matching the filters in all (offset pagination only).
    pub total: Option<u64>,
    /// Where the next page starts, if there may be one (cursor pagination only).
    pub next_cursor: Option<EventCursor>,
}

/// A store's self-report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StoreHealth {
    /// Whether the store can serve requests.
    pub healthy: bool,
    /// Which store (`memory`, `postgres`, …).
    pub backend: String,
    /// Free-form detail (pool sizes, lag, …).
    pub detail: String,
}

/// Durable storage of events, experiments and tenants, and execution of summary plans.
///
/// Every method is scoped to one tenant: no method reads or changes another tenant's data.
/// Implementations must be safe to call concurrently.
#[async_trait]
pub trait EventStore: Send + Sync + Debug {
    /// Stores `events` (all of `tenant`) idempotently.
    ///
    /// # Behavior
    /// An event whose id the tenant already has — stored earlier, or earlier in this batch — is
    /// a duplicate: reported in [`AppendOutcome::duplicates`] and not counted again. The call
    /// returns only after every accepted event is durable (committed) and visible to
    /// [`summary`](Self::summary) and [`list_events`](Self::list_events). On error, nothing of
    /// the batch may be half-counted: either the batch is applied or it is not.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `tenantId` if an event belongs to another tenant; transient
    /// errors when the backend is unreachable.
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome>;

    /// Executes `plan`, returning exactly what [`crate::reference::aggregate`] returns for the
    /// plan's query over this tenant's events — except that `unique_users` may be an estimate
    /// (flagged by `unique_users_approximate`) when the query does not require exact counts.
    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates>;

    /// A page of `tenant`'s events, newest first.
    ///
    /// # Behavior
    /// Cursor pages cover every matching event exactly once; `next_cursor` is `None` once the
    /// last page has been returned. Offset pages report `total`.
    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage>;

    /// Per-variant counts of an experiment over all of the tenant's events carrying it, exactly
    /// as [`crate::reference::experiment_counts`] defines them (whatever the events' times, and
    /// whether or not the experiment is registered).
    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>>;

    /// Stores a new experiment.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the tenant already has an experiment with that id.
    async fn create_experiment(&self, experiment: &Experiment) -> Result<()>;

    /// The tenant's experiments, ordered by id.
    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>>;

    /// One experiment, if the tenant has it.
    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>>;

    /// Replaces an existing experiment.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the tenant has no experiment with that id.
    async fn update_experiment(&self, experiment: &Experiment) -> Result<()>;

    /// Registers a tenant.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the id is taken.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()>;

    /// A registered tenant.
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>>;

    /// Adds an API key (by hash) for a registered tenant.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the tenant is not registered; [`Error::Conflict`] if the hash
    /// already belongs to a tenant.
    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()>;

    /// The tenant an API key belongs to.
    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>>;

    /// Whether the store can serve requests.
    async fn health(&self) -> Result<StoreHealth>;

    /// Records, durably, that `tags` of `tenant` still have to be invalidated in the cache: the
    /// events were stored but the cache could not be reached. Every instance settles these
    /// before it trusts its cache again (see the facade's ingest).
    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()>;

    /// The owed invalidations, oldest first, at most [`MAX_OWED_READ`].
    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>>;

    /// Forgets owed invalidations the cache has taken.
    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()>;
}

/// How many owed invalidations [`EventStore::owed_invalidations`] returns at most.
pub const MAX_OWED_READ: usize = 1000;

/// An invalidation the cache still has to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedInvalidation {
    /// Its id, for [`EventStore::settle_invalidations`].
    pub id: i64,
    /// Whose cached answers it concerns.
    pub tenant: TenantId,
    /// The tags to invalidate.
    pub tags: Vec<Tag>,
}

/// Checks that every event of a batch belongs to `tenant`; stores call this first.
///
/// # Errors
/// [`Error::InvalidInput`] on `events[i].tenantId`.
pub fn check_batch_tenant(tenant: &TenantId, events: &[Event]) -> Result<()> {
    match events.iter().position(|e| e.tenant_id != *tenant) {
        Some(i) => Err(Error::invalid(
            format!("events[{i}].tenantId"),
            "belongs to another tenant",
        )),
        None => Ok(()),
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A shared store is a store, so decorators such as
/// [`BreakerStore`](crate::resilience::BreakerStore) can wrap an `Arc<dyn EventStore>`.
#[async_trait]
impl<T: EventStore + ?Sized> EventStore for std::sync::Arc<T> {
    async fn append(&self, tenant: &TenantId, events: &[Event]) -> Result<AppendOutcome> {
        (**self).append(tenant, events).await
    }
    async fn summary(&self, plan: &QueryPlan) -> Result<Aggregates> {
        (**self).summary(plan).await
    }
    async fn list_events(&self, tenant: &TenantId, query: &EventListQuery) -> Result<EventPage> {
        (**self).list_events(tenant, query).await
    }
    async fn experiment_counts(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        conversion: &EventType,
    ) -> Result<BTreeMap<VariantKey, VariantCounts>> {
        (**self).experiment_counts(tenant, experiment, conversion).await
    }
    async fn create_experiment(&self, experiment: &Experiment) -> Result<()> {
        (**self).create_experiment(experiment).await
    }
    async fn list_experiments(&self, tenant: &TenantId) -> Result<Vec<Experiment>> {
        (**self).list_experiments(tenant).await
    }
    async fn get_experiment(&self, tenant: &TenantId, id: &ExperimentId) -> Result<Option<Experiment>> {
        (**self).get_experiment(tenant, id).await
    }
    async fn update_experiment(&self, experiment: &Experiment) -> Result<()> {
        (**self).update_experiment(experiment).await
    }
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        (**self).create_tenant(tenant).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        (**self).get_tenant(id).await
    }
    async fn add_api_key(&self, tenant: &TenantId, key: &ApiKeyHash) -> Result<()> {
        (**self).add_api_key(tenant, key).await
    }
    async fn tenant_for_api_key(&self, key: &ApiKeyHash) -> Result<Option<TenantId>> {
        (**self).tenant_for_api_key(key).await
    }
    async fn health(&self) -> Result<StoreHealth> {
        (**self).health().await
    }
    async fn owe_invalidation(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        (**self).owe_invalidation(tenant, tags).await
    }
    async fn owed_invalidations(&self) -> Result<Vec<OwedInvalidation>> {
        (**self).owed_invalidations().await
    }
    async fn settle_invalidations(&self, ids: &[i64]) -> Result<()> {
        (**self).settle_invalidations(ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = EventCursor {
            timestamp: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: EventId::parse("a-b:c").unwrap(),
        };
        assert_eq!(EventCursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "abc", "12~", "x~id", "99999999999999999999~id"] {
            assert!(
                matches!(EventCursor::decode(bad), Err(Error::InvalidInput { field, .. }) if field == "cursor"),
                "{bad}"
            );
        }
    }

    #[test]
    fn pagination_limits() {
        assert!(Pagination::Offset { page: 0, limit: 10 }.validate().is_err());
        assert!(Pagination::Cursor { after: None, limit: 0 }.validate().is_err());
        assert!(
            Pagination::Cursor {
                after: None,
                limit: MAX_PAGE_LIMIT + 1
            }
            .validate()
            .is_err()
        );
        assert!(
            Pagination::Offset {
                page: 3,
                limit: MAX_PAGE_LIMIT
            }
            .validate()
            .is_ok()
        );
    }
}
