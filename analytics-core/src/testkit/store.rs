//! The [`EventStore`] conformance suite.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::data::{CaseNames, Dataset, QuerySpec, expected_appends};
use super::{SuiteOptions, run_property};
use crate::Error;
use crate::cache::Tag;
use crate::model::{
    ApiKey, Event, EventId, EventType, Experiment, ExperimentId, ExperimentInput, ExperimentPatch, ExperimentStatus,
    Tenant, TenantId,
};
use crate::query::{Aggregates, QueryPlan, TimeRange};
use crate::reference;
use crate::store::{EventCursor, EventListQuery, EventStore, Pagination};

/// Runs every store check.
pub async fn run_all(store: Arc<dyn EventStore>, options: SuiteOptions) {
    summaries_match_reference(store.clone(), options).await;
    pagination_covers_every_event_once(store.clone(), options).await;
    idempotent_retries(&*store).await;
    tenants_are_isolated(&*store).await;
    experiments_round_trip(&*store).await;
    tenants_and_api_keys(&*store).await;
    rejects_events_of_another_tenant(&*store).await;
    health_reports(&*store).await;
    owed_invalidations_round_trip(&*store).await;
}

/// Property: on generated multi-tenant data (with duplicate ids, retried batches and ids shared
/// across tenants), every append reports the expected accepted and duplicate ids, every
/// generated query — any granularity, several timezones, ranges not aligned to hours, filters —
/// equals the reference aggregation, and every tenant's whole-experiment counts equal
/// [`reference::experiment_counts`] for either conversion type.
pub async fn summaries_match_reference(store: Arc<dyn EventStore>, options: SuiteOptions) {
    let strategy = (Dataset::strategy(), prop::collection::vec(QuerySpec::strategy(), 1..10));
    run_property(
        "summaries_match_reference",
        options.cases,
        strategy,
        move |(dataset, queries)| {
            let store = store.clone();
            async move {
                let names = CaseNames::fresh();
                let kept = append_dataset(&*store, &dataset, &names).await?;
                for spec in &queries {
                    let Some(query) = spec.query(&dataset, &names) else {
                        continue;
                    };
                    let expected = reference::aggregate(&kept, &query);
                    let got = store
                        .summary(&QueryPlan::new(query.clone()))
                        .await
                        .map_err(|e| format!("summary failed: {e}"))?;
                    compare(
                        &got,
                        &expected,
                        query.exact_unique_users(),
                        options.unique_users_tolerance,
                    )
                    .map_err(|why| format!("{why}\nquery: {}", query.canonical()))?;
                }
                experiment_counts_match(&*store, &kept, &names).await
            }
        },
    )
    .await;
}

async fn experiment_counts_match(store: &dyn EventStore, kept: &[Event], names: &CaseNames) -> Result<(), String> {
    for tenant in &names.tenants {
        for experiment in ["exp0", "exp1"] {
            for conversion in ["CONVERSION", "purchase"] {
                let experiment = ExperimentId::parse(experiment).expect("valid");
                let conversion = EventType::parse(conversion).expect("valid");
                let want = reference::experiment_counts(kept, tenant, &experiment, &conversion);
                let got = store
                    .experiment_counts(tenant, &experiment, &conversion)
                    .await
                    .map_err(|e| format!("experiment counts failed: {e}"))?;
                if got != want {
                    return Err(format!(
                        "experiment counts of {experiment:?} ({conversion:?}) for {tenant:?} differ:\n got {got:?}\nwant {want:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn append_dataset(store: &dyn EventStore, dataset: &Dataset, names: &CaseNames) -> Result<Vec<Event>, String> {
    let batches = dataset.batches(names);
    let (expected, kept) = expected_appends(&batches);
    let mut outcomes = expected.iter();
    for (tenant, events, retried) in &batches {
        for _ in 0..if *retried { 2 } else { 1 } {
            let got = store
                .append(tenant, events)
                .await
                .map_err(|e| format!("append failed: {e}"))?;
            let want = outcomes.next().expect("one expected outcome per call");
            if got != *want {
                return Err(format!("append outcome differs:\n got {got:?}\nwant {want:?}"));
            }
        }
    }
    Ok(kept)
}

fn compare(got: &Aggregates, want: &Aggregates, exact_required: bool, tolerance: f64) -> Result<(), String> {
    if got.unique_users_approximate {
        if exact_required {
            return Err("unique users were approximate although the query required exact counts".into());
        }
        let error = (got.unique_users as f64 - want.unique_users as f64).abs() / (want.unique_users.max(1) as f64);
        if error > tolerance {
            return Err(format!(
                "unique users {} vs exact {} (error {error:.4} > {tolerance})",
                got.unique_users, want.unique_users
            ));
        }
    } else if got.unique_users != want.unique_users {
        return Err(format!(
            "unique users: got {}, want {}",
            got.unique_users, want.unique_users
        ));
    }
    let normalize = |a: &Aggregates| Aggregates {
        unique_users: 0,
        unique_users_approximate: false,
        ..a.clone()
    };
    let (got, want) = (normalize(got), normalize(want));
    if got != want {
        return Err(format!("aggregates differ:\n got {got:?}\nwant {want:?}"));
    }
    Ok(())
}

/// Property: keyset pages (any page size, optional filters) return every matching event exactly
/// once, newest first, ending with no cursor; offset pages agree with the same order and report
/// the total.
pub async fn pagination_covers_every_event_once(store: Arc<dyn EventStore>, options: SuiteOptions) {
    let strategy = (Dataset::strategy(), 1u32..9, prop::option::of(0u8..2), 0usize..3);
    run_property(
        "pagination_covers_every_event_once",
        options.cases,
        strategy,
        move |(dataset, limit, filter, tenant)| {
            let store = store.clone();
            async move {
                let names = CaseNames::fresh();
                let kept = append_dataset(&*store, &dataset, &names).await?;
                let tenant = &names.tenants[tenant];
                let mut query = EventListQuery {
                    range: None,
                    event_type: None,
                    user_id: None,
                    pagination: Pagination::Cursor { after: None, limit },
                };
                match filter {
                    Some(0) => query.event_type = Some(EventType::parse("click").expect("valid")),
                    Some(_) => {
                        let start = dataset.base() + TimeDelta::hours(30);
                        query.range = Some(TimeRange::new(start, start + TimeDelta::hours(50)).expect("valid"));
                    }
                    None => {}
                }
                let mut want: Vec<&Event> = kept
                    .iter()
                    .filter(|e| e.tenant_id == *tenant && query.matches(e))
                    .collect();
                want.sort_by(|a, b| (b.timestamp, &b.id).cmp(&(a.timestamp, &a.id)));

                let mut seen: Vec<EventId> = Vec::new();
                loop {
                    let page = store
                        .list_events(tenant, &query)
                        .await
                        .map_err(|e| format!("list failed: {e}"))?;
                    if page.events.len() > limit as usize {
                        return Err(format!("page of {} events exceeds limit {limit}", page.events.len()));
                    }
                    seen.extend(page.events.iter().map(|e| e.id.clone()));
                    match page.next_cursor {
                        Some(cursor) => {
                            if page.events.is_empty() {
                                return Err("an empty page returned a cursor".into());
                            }
                            if seen.len() > want.len() {
                                return Err("pagination returned more events than exist".into());
                            }
                            let cursor = EventCursor::decode(&cursor.encode()).map_err(|e| e.to_string())?;
                            query.pagination = Pagination::Cursor {
                                after: Some(cursor),
                                limit,
                            };
                        }
                        None => break,
                    }
                }
                let want_ids: Vec<EventId> = want.iter().map(|e| e.id.clone()).collect();
                if seen != want_ids {
                    return Err(format!("keyset pages returned {seen:?}, want {want_ids:?}"));
                }

                query.pagination = Pagination::Offset { page: 2, limit };
                let page = store
                    .list_events(tenant, &query)
                    .await
                    .map_err(|e| format!("list failed: {e}"))?;
                let second: Vec<EventId> = want_ids
                    .iter()
                    .skip(limit as usize)
                    .take(limit as usize)
                    .cloned()
                    .collect();
                let got: Vec<EventId> = page.events.iter().map(|e| e.id.clone()).collect();
                if got != second || page.total != Some(want.len() as u64) {
                    return Err(format!(
                        "offset page 2: got {got:?} total {:?}, want {second:?} total {}",
                        page.total,
                        want.len()
                    ));
                }
                let full: Vec<&Event> = want.iter().take(limit as usize).copied().collect();
                query.pagination = Pagination::Offset { page: 1, limit };
                let first = store
                    .list_events(tenant, &query)
                    .await
                    .map_err(|e| format!("list failed: {e}"))?;
                if first.events.iter().collect::<Vec<_>>() != full {
                    return Err("offset page 1 events differ from the stored events".into());
                }
                Ok(())
            }
        },
    )
    .await;
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("valid instant")
}

fn sample_event(tenant: &TenantId, id: &str, when: &str) -> Event {
    let mut event = Event::new(
        tenant.clone(),
        EventId::parse(id).expect("valid"),
        EventType::parse("click").expect("valid"),
        at(when),
    );
    event.user_id = Some(crate::model::UserId::parse(format!("u-{id}")).expect("valid"));
    event
}

fn day_summary_plan(tenant: &TenantId) -> QueryPlan {
    let range = TimeRange::new(at("2024-05-01T00:00:00Z"), at("2024-05-02T00:00:00Z")).expect("valid");
    QueryPlan::new(
        crate::query::Query::new(
            tenant.clone(),
            range,
            crate::query::Granularity::Hour,
            chrono_tz::Tz::UTC,
            Default::default(),
        )
        .expect("valid"),
    )
}

/// A batch sent twice is counted once; the second call reports every id as a duplicate.
pub async fn idempotent_retries(store: &dyn EventStore) {
    let tenant = CaseNames::fresh().tenants[0].clone();
    let batch = vec![
        sample_event(&tenant, "r1", "2024-05-01T10:00:00Z"),
        sample_event(&tenant, "r2", "2024-05-01T10:30:00Z"),
    ];
    let first = store.append(&tenant, &batch).await.expect("append");
    assert_eq!(first.accepted.len(), 2, "first append accepts both: {first:?}");
    let again = store.append(&tenant, &batch).await.expect("retry");
    assert!(again.accepted.is_empty(), "a retry accepts nothing: {again:?}");
    assert_eq!(again.duplicates, vec![batch[0].id.clone(), batch[1].id.clone()]);
    let summary = store.summary(&day_summary_plan(&tenant)).await.expect("summary");
    assert_eq!(summary.total_events, 2, "retried events are counted once");
}

/// Two tenants with the same event ids and users see only their own events, summaries and logs.
pub async fn tenants_are_isolated(store: &dyn EventStore) {
    let names = CaseNames::fresh();
    let (a, b) = (&names.tenants[0], &names.tenants[1]);
    store
        .append(a, &[sample_event(a, "same", "2024-05-01T10:00:00Z")])
        .await
        .expect("append a");
    let outcome = store
        .append(b, &[sample_event(b, "same", "2024-05-01T11:00:00Z")])
        .await
        .expect("append b");
    assert_eq!(
        outcome.accepted.len(),
        1,
        "an id taken in another tenant is not a duplicate"
    );
    for (tenant, hour) in [(a, 10), (b, 11)] {
        let summary = store.summary(&day_summary_plan(tenant)).await.expect("summary");
        assert_eq!(summary.total_events, 1);
        assert_eq!(summary.time_series[hour], 1, "{tenant} sees only its own event");
        let page = store
            .list_events(
                tenant,
                &EventListQuery {
                    range: None,
                    event_type: None,
                    user_id: None,
                    pagination: Pagination::Offset { page: 1, limit: 10 },
                },
            )
            .await
            .expect("list");
        assert_eq!(page.total, Some(1));
        assert!(page.events.iter().all(|e| e.tenant_id == *tenant));
    }
    let empty = store
        .summary(&day_summary_plan(&names.tenants[3]))
        .await
        .expect("summary");
    assert_eq!(empty.total_events, 0);
    assert_eq!(
        empty.time_series.len(),
        24,
        "an unknown tenant still gets every bucket, zero-filled"
    );
}

/// Experiments: create, conflict on a taken id, get, list in id order, update, not-found on
/// update of a missing one, and no visibility across tenants.
pub async fn experiments_round_trip(store: &dyn EventStore) {
    let names = CaseNames::fresh();
    let tenant = &names.tenants[0];
    let now = at("2024-05-01T00:00:00Z");
    let input = |id: &str| ExperimentInput {
        id: Some(id.into()),
        name: Some(format!("Experiment {id}")),
        variants: Some(
            serde_json::from_value(serde_json::json!([{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]))
                .expect("valid"),
        ),
        ..Default::default()
    };
    let b = Experiment::from_input(input("exp_b"), tenant, now).expect("valid");
    let a = Experiment::from_input(input("exp_a"), tenant, now).expect("valid");
    store.create_experiment(&b).await.expect("create b");
    store.create_experiment(&a).await.expect("create a");
    assert!(
        matches!(store.create_experiment(&a).await, Err(Error::Conflict(_))),
        "a taken id conflicts"
    );
    assert_eq!(store.get_experiment(tenant, &a.id).await.expect("get"), Some(a.clone()));
    let listed: Vec<_> = store
        .list_experiments(tenant)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, vec![a.id.clone(), b.id.clone()]);
    let running = a
        .apply(
            ExperimentPatch {
                status: Some(ExperimentStatus::Running),
                ..Default::default()
            },
            now + TimeDelta::hours(1),
        )
        .expect("valid");
    store.update_experiment(&running).await.expect("update");
    assert_eq!(store.get_experiment(tenant, &a.id).await.expect("get"), Some(running));
    let other = &names.tenants[1];
    assert_eq!(
        store.get_experiment(other, &a.id).await.expect("get"),
        None,
        "another tenant cannot see it"
    );
    assert!(store.list_experiments(other).await.expect("list").is_empty());
    let missing = Experiment::from_input(input("exp_missing"), other, now).expect("valid");
    assert!(matches!(
        store.update_experiment(&missing).await,
        Err(Error::NotFound { .. })
    ));
}

/// Tenants and API keys: create, conflict, lookup by key hash, unknown keys, keys for
/// unregistered tenants.
pub async fn tenants_and_api_keys(store: &dyn EventStore) {
    let names = CaseNames::fresh();
    let tenant = Tenant::new(names.tenants[0].clone(), "Acme", at("2024-05-01T00:00:00Z")).expect("valid");
    store.create_tenant(&tenant).await.expect("create");
    assert!(matches!(store.create_tenant(&tenant).await, Err(Error::Conflict(_))));
    assert_eq!(store.get_tenant(&tenant.id).await.expect("get"), Some(tenant.clone()));
    let key = ApiKey::generate().expect("key");
    store.add_api_key(&tenant.id, &key.hash()).await.expect("add key");
    assert_eq!(
        store.tenant_for_api_key(&key.hash()).await.expect("lookup"),
        Some(tenant.id.clone())
    );
    assert!(matches!(
        store.add_api_key(&tenant.id, &key.hash()).await,
        Err(Error::Conflict(_))
    ));
    let unknown = ApiKey::generate().expect("key");
    assert_eq!(store.tenant_for_api_key(&unknown.hash()).await.expect("lookup"), None);
    assert!(matches!(
        store.add_api_key(&names.tenants[1], &unknown.hash()).await,
        Err(Error::NotFound { .. })
    ));
}

/// A batch containing another tenant's event is rejected whole, naming the field.
pub async fn rejects_events_of_another_tenant(store: &dyn EventStore) {
    let names = CaseNames::fresh();
    let (a, b) = (&names.tenants[0], &names.tenants[1]);
    let batch = vec![
        sample_event(a, "x1", "2024-05-01T10:00:00Z"),
        sample_event(b, "x2", "2024-05-01T10:00:00Z"),
    ];
    let err = store.append(a, &batch).await.expect_err("mixed tenants");
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "events[1].tenantId"),
        "{err}"
    );
    let summary = store.summary(&day_summary_plan(a)).await.expect("summary");
    assert_eq!(summary.total_events, 0, "nothing of a rejected batch is stored");
}

/// The store reports itself healthy.
pub async fn health_reports(store: &dyn EventStore) {
    let health = store.health().await.expect("health");
    assert!(health.healthy, "{health:?}");
    assert!(!health.backend.is_empty());
}

/// Owed cache invalidations are kept until settled, oldest first, with their tenant and tags;
/// settling some leaves the others.
pub async fn owed_invalidations_round_trip(store: &dyn EventStore) {
    let names = CaseNames::fresh();
    let (first, second) = (&names.tenants[0], &names.tenants[1]);
    let tags = |name: &str| vec![Tag::tenant(), Tag::from_text(name)];
    store.owe_invalidation(first, &tags("a")).await.expect("owe");
    store.owe_invalidation(second, &tags("b")).await.expect("owe");
    // Other tests may owe concurrently on a shared server: look only at this case's tenants.
    let mine = |all: Vec<crate::store::OwedInvalidation>| -> Vec<_> {
        all.into_iter().filter(|o| names.tenants.contains(&o.tenant)).collect()
    };
    let owed = mine(store.owed_invalidations().await.expect("owed"));
    assert_eq!(owed.len(), 2, "{owed:?}");
    assert_eq!((&owed[0].tenant, &owed[0].tags), (first, &tags("a")), "oldest first");
    assert_eq!((&owed[1].tenant, &owed[1].tags), (second, &tags("b")));
    store.settle_invalidations(&[owed[0].id]).await.expect("settle");
    let left = mine(store.owed_invalidations().await.expect("owed"));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, owed[1].id);
    store.settle_invalidations(&[owed[1].id]).await.expect("settle");
    assert!(mine(store.owed_invalidations().await.expect("owed")).is_empty());
}
