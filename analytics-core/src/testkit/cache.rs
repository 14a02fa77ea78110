//! The [`CacheBackend`] conformance suite. Time is virtual: every call passes `now`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use proptest::prelude::*;

use super::data::CaseNames;
use super::{SuiteOptions, run_property};
use crate::cache::{CacheBackend, CacheEntry, CacheKey, CacheStats, Freshness, Tag, TagVersions};
use crate::model::TenantId;

/// Runs every cache check.
pub async fn run_all(cache: Arc<dyn CacheBackend>, options: SuiteOptions) {
    behaves_like_the_model(cache.clone(), options).await;
    expiry_follows_virtual_time(&*cache).await;
    tag_invalidation_is_per_tag(&*cache).await;
    a_write_racing_a_computation_is_not_hidden(&*cache).await;
    clearing_a_tenant_spares_the_others(&*cache).await;
    stats_count_lookups(&*cache).await;
}

fn tag_pool() -> [Tag; 4] {
    let day = |d| Tag::date(NaiveDate::from_ymd_opt(2024, 5, d).expect("valid"));
    [day(1), day(2), Tag::month(2024, 5), Tag::realtime()]
}

fn start() -> DateTime<Utc> {
    "2024-05-01T00:00:00Z".parse().expect("valid")
}

#[derive(Debug, Clone)]
enum Op {
    /// Look up (reading tag versions) then store, as the facade does on a miss.
    Set {
        tenant: usize,
        key: u8,
        tags: Vec<usize>,
        fresh_secs: i64,
        stale_secs: i64,
    },
    Get {
        tenant: usize,
        key: u8,
        tags: Vec<usize>,
    },
    Invalidate {
        tenant: usize,
        tags: Vec<usize>,
    },
    Clear {
        tenant: usize,
    },
    Advance {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let tags = || prop::collection::vec(0usize..4, 0..3);
    prop_oneof![
        3 => (0usize..2, 0u8..4, tags(), 1i64..120, 0i64..120)
            .prop_map(|(tenant, key, tags, fresh_secs, stale_secs)| Op::Set { tenant, key, tags, fresh_secs, stale_secs }),
        4 => (0usize..2, 0u8..4, tags()).prop_map(|(tenant, key, tags)| Op::Get { tenant, key, tags }),
        1 => (0usize..2, tags()).prop_map(|(tenant, tags)| Op::Invalidate { tenant, tags }),
        1 => (0usize..2).prop_map(|tenant| Op::Clear { tenant }),
        2 => (1i64..150).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// The model: a version epoch per (tenant, tag) (how often it was invalidated), entries per
/// (tenant, key) carrying epochs, lookup counters — and, per (tenant, tag, epoch), the version
/// the backend reported for it. Backends choose their version numbers (Redis starts a tag at a
/// fresh value, so a lost version key can never make an old entry valid again); what must hold
/// is that a tag reports one version per epoch and a new version after each invalidation.
#[derive(Default)]
struct Model {
    versions: HashMap<(usize, Tag), u64>,
    entries: HashMap<(usize, u8), CacheEntry>,
    reported: HashMap<(usize, Tag, u64), u64>,
    hits: u64,
    misses: u64,
    stale_hits: u64,
}

impl Model {
    /// Checks the backend's `reported` versions against the epochs: the same version as before
    /// for an epoch already seen, a version never seen for that tag for a new epoch.
    fn check_versions(&mut self, tenant: usize, reported: &TagVersions) -> Result<(), String> {
        for (tag, version) in reported {
            let epoch = self.versions.get(&(tenant, tag.clone())).copied().unwrap_or(0);
            match self.reported.get(&(tenant, tag.clone(), epoch)) {
                Some(known) if known == version => {}
                Some(known) => {
                    return Err(format!(
                        "tag {tag:?} reported version {version}, earlier {known}, with no invalidation between"
                    ));
                }
                None => {
                    let reused = self
                        .reported
                        .iter()
                        .any(|((t, g, _), v)| *t == tenant && g == tag && v == version);
                    if reused {
                        return Err(format!(
                            "tag {tag:?} reported version {version} again after an invalidation"
                        ));
                    }
                    self.reported.insert((tenant, tag.clone(), epoch), *version);
                }
            }
        }
        Ok(())
    }

    fn versions_of(&self, tenant: usize, tags: &[Tag]) -> TagVersions {
        tags.iter()
            .map(|t| (t.clone(), self.versions.get(&(tenant, t.clone())).copied().unwrap_or(0)))
            .collect()
    }

    fn lookup(&mut self, tenant: usize, key: u8, now: DateTime<Utc>) -> Option<(Vec<u8>, Freshness)> {
        let found = self.entries.get(&(tenant, key)).and_then(|entry| {
            let current = entry
                .tags
                .iter()
                .all(|(t, v)| self.versions.get(&(tenant, t.clone())).copied().unwrap_or(0) == *v);
            crate::cache::classify(entry, current, now).map(|f| (entry.value.to_vec(), f))
        });
        match found.as_ref().map(|(_, f)| *f) {
            Some(Freshness::Fresh) => self.hits += 1,
            Some(_) => self.stale_hits += 1,
            None => self.misses += 1,
        }
        found
    }
}

fn tags_of(indexes: &[usize]) -> Vec<Tag> {
    let pool = tag_pool();
    let mut tags = vec![Tag::tenant()];
    tags.extend(indexes.iter().map(|&i| pool[i].clone()));
    tags.dedup();
    tags
}

/// Property: random sequences of sets, gets, tag invalidations, tenant clears and clock
/// advances give the same hits, freshness, tag versions and stats as a simple model.
pub async fn behaves_like_the_model(cache: Arc<dyn CacheBackend>, options: SuiteOptions) {
    let strategy = prop::collection::vec(op(), 1..40);
    run_property("cache_behaves_like_the_model", options.cases, strategy, move |ops| {
        let cache = cache.clone();
        async move {
            let names = CaseNames::fresh();
            let tenants = &names.tenants[..2];
            let mut model = Model::default();
            let mut now = start();
            let before = cache.stats().await.map_err(|e| e.to_string())?;
            let mut value_counter = 0u32;
            for (step, op) in ops.iter().enumerate() {
                let context = |what: String| format!("step {step} ({op:?}): {what}");
                match op {
                    Op::Set {
                        tenant,
                        key,
                        tags,
                        fresh_secs,
                        stale_secs,
                    } => {
                        let tags = tags_of(tags);
                        let cache_key = CacheKey::from_text(format!("k{key}"));
                        let lookup = cache
                            .get(&tenants[*tenant], &cache_key, &tags, now)
                            .await
                            .map_err(|e| e.to_string())?;
                        model.lookup(*tenant, *key, now);
                        model.check_versions(*tenant, &lookup.tag_versions).map_err(context)?;
                        value_counter += 1;
                        let fresh_until = now + TimeDelta::seconds(*fresh_secs);
                        let entry = CacheEntry {
                            value: value_counter.to_be_bytes().to_vec().into(),
                            created_at: now,
                            fresh_until,
                            stale_until: fresh_until + TimeDelta::seconds(*stale_secs),
                            tags: lookup.tag_versions.clone(),
                        };
                        cache
                            .set(&tenants[*tenant], &cache_key, entry.clone(), now)
                            .await
                            .map_err(|e| e.to_string())?;
                        if entry.stale_until > now {
                            // The model's copy carries epochs, in which it judges currency.
                            let tags = model.versions_of(*tenant, &tags);
                            model.entries.insert((*tenant, *key), CacheEntry { tags, ..entry });
                        }
                    }
                    Op::Get { tenant, key, tags } => {
                        let tags = tags_of(tags);
                        let got = cache
                            .get(&tenants[*tenant], &CacheKey::from_text(format!("k{key}")), &tags, now)
                            .await
                            .map_err(|e| e.to_string())?;
                        let want = model.lookup(*tenant, *key, now);
                        let got_hit = got.hit.map(|h| (h.entry.value.to_vec(), h.freshness));
                        if got_hit != want {
                            return Err(context(format!("got {got_hit:?}, model {want:?}")));
                        }
                        model.check_versions(*tenant, &got.tag_versions).map_err(context)?;
                    }
                    Op::Invalidate { tenant, tags } => {
                        let tags = tags_of(tags)[1..].to_vec();
                        cache
                            .invalidate(&tenants[*tenant], &tags)
                            .await
                            .map_err(|e| e.to_string())?;
                        for tag in tags {
                            *model.versions.entry((*tenant, tag)).or_insert(0) += 1;
                        }
                    }
                    Op::Clear { tenant } => {
                        cache.clear_tenant(&tenants[*tenant]).await.map_err(|e| e.to_string())?;
                        *model.versions.entry((*tenant, Tag::tenant())).or_insert(0) += 1;
                    }
                    Op::Advance { secs } => now += TimeDelta::seconds(*secs),
                }
            }
            let after = cache.stats().await.map_err(|e| e.to_string())?;
            let delta = (
                after.hits - before.hits,
                after.misses - before.misses,
                after.stale_hits - before.stale_hits,
            );
            if delta != (model.hits, model.misses, model.stale_hits) {
                return Err(format!(
                    "stats moved by {delta:?}, model counted {:?}",
                    (model.hits, model.misses, model.stale_hits)
                ));
            }
            Ok(())
        }
    })
    .await;
}

fn entry(now: DateTime<Utc>, fresh: i64, stale: i64, tags: TagVersions) -> CacheEntry {
    CacheEntry {
        value: b"v".to_vec().into(),
        created_at: now,
        fresh_until: now + TimeDelta::seconds(fresh),
        stale_until: now + TimeDelta::seconds(fresh + stale),
        tags,
    }
}

/// Stores an entry as the facade does: read the tags' versions, then set with them.
async fn put(
    cache: &dyn CacheBackend,
    tenant: &TenantId,
    key: &CacheKey,
    tags: &[Tag],
    now: DateTime<Utc>,
    fresh: i64,
    stale: i64,
) {
    let versions = cache.get(tenant, key, tags, now).await.expect("get").tag_versions;
    cache
        .set(tenant, key, entry(now, fresh, stale, versions), now)
        .await
        .expect("set");
}

async fn freshness(
    cache: &dyn CacheBackend,
    tenant: &TenantId,
    key: &CacheKey,
    now: DateTime<Utc>,
) -> Option<Freshness> {
    cache
        .get(tenant, key, &[], now)
        .await
        .expect("get")
        .hit
        .map(|h| h.freshness)
}

/// An entry is fresh until `fresh_until`, stale until `stale_until`, then gone — on virtual time.
pub async fn expiry_follows_virtual_time(cache: &dyn CacheBackend) {
    let tenant = CaseNames::fresh().tenants[0].clone();
    let key = CacheKey::from_text("expiry");
    let now = start();
    put(cache, &tenant, &key, &[Tag::tenant()], now, 30, 60).await;
    assert_eq!(
        freshness(cache, &tenant, &key, now + TimeDelta::seconds(29)).await,
        Some(Freshness::Fresh)
    );
    assert_eq!(
        freshness(cache, &tenant, &key, now + TimeDelta::seconds(30)).await,
        Some(Freshness::Stale)
    );
    assert_eq!(
        freshness(cache, &tenant, &key, now + TimeDelta::seconds(89)).await,
        Some(Freshness::Stale)
    );
    assert_eq!(
        freshness(cache, &tenant, &key, now + TimeDelta::seconds(90)).await,
        None
    );
}

/// Invalidating a tag invalidates exactly the entries carrying it, and changes its version only.
pub async fn tag_invalidation_is_per_tag(cache: &dyn CacheBackend) {
    let tenant = CaseNames::fresh().tenants[0].clone();
    let now = start();
    let [day1, day2, ..] = tag_pool();
    for (key, tag) in [("d1", &day1), ("d2", &day2)] {
        let key = CacheKey::from_text(key);
        put(cache, &tenant, &key, &[Tag::tenant(), tag.clone()], now, 60, 60).await;
    }
    let before = cache
        .get(&tenant, &CacheKey::from_text("d1"), &[day1.clone(), day2.clone()], now)
        .await
        .expect("get")
        .tag_versions;
    cache
        .invalidate(&tenant, std::slice::from_ref(&day1))
        .await
        .expect("invalidate");
    assert_eq!(
        freshness(cache, &tenant, &CacheKey::from_text("d1"), now).await,
        Some(Freshness::Invalidated)
    );
    assert_eq!(
        freshness(cache, &tenant, &CacheKey::from_text("d2"), now).await,
        Some(Freshness::Fresh)
    );
    let versions = cache
        .get(&tenant, &CacheKey::from_text("d1"), &[day1.clone(), day2.clone()], now)
        .await
        .expect("get")
        .tag_versions;
    assert_ne!(versions[0], before[0], "the invalidated tag has a new version");
    assert_eq!(versions[1], before[1], "the other tag kept its version");
    assert_eq!((&versions[0].0, &versions[1].0), (&day1, &day2));
}

/// Versions read before a computation, invalidated during it: the stored entry reads as
/// invalidated, so a write that raced the computation is never hidden behind a fresh answer.
pub async fn a_write_racing_a_computation_is_not_hidden(cache: &dyn CacheBackend) {
    let tenant = CaseNames::fresh().tenants[0].clone();
    let key = CacheKey::from_text("race");
    let now = start();
    let [day1, ..] = tag_pool();
    let tags = [Tag::tenant(), day1.clone()];
    let before = cache.get(&tenant, &key, &tags, now).await.expect("get").tag_versions;
    cache.invalidate(&tenant, &[day1]).await.expect("invalidate");
    cache
        .set(&tenant, &key, entry(now, 60, 60, before), now)
        .await
        .expect("set");
    assert_eq!(freshness(cache, &tenant, &key, now).await, Some(Freshness::Invalidated));
}

/// Clearing a tenant invalidates all its entries and none of another tenant's.
pub async fn clearing_a_tenant_spares_the_others(cache: &dyn CacheBackend) {
    let names = CaseNames::fresh();
    let now = start();
    let key = CacheKey::from_text("same-key");
    for (tenant, value) in [(&names.tenants[0], b"a"), (&names.tenants[1], b"b")] {
        let versions = cache
            .get(tenant, &key, &[Tag::tenant()], now)
            .await
            .expect("get")
            .tag_versions;
        let mut e = entry(now, 60, 60, versions);
        e.value = value.to_vec().into();
        cache.set(tenant, &key, e, now).await.expect("set");
    }
    let b = cache
        .get(&names.tenants[1], &key, &[], now)
        .await
        .expect("get")
        .hit
        .expect("b's entry");
    assert_eq!(&*b.entry.value, b"b", "the same key in another tenant is another entry");
    cache.clear_tenant(&names.tenants[0]).await.expect("clear");
    assert_eq!(
        freshness(cache, &names.tenants[0], &key, now).await,
        Some(Freshness::Invalidated)
    );
    assert_eq!(
        freshness(cache, &names.tenants[1], &key, now).await,
        Some(Freshness::Fresh)
    );
}

/// Lookups are counted as hits, stale hits and misses; the hit rate follows; stored entries show
/// in the size.
pub async fn stats_count_lookups(cache: &dyn CacheBackend) {
    let tenant = CaseNames::fresh().tenants[0].clone();
    let key = CacheKey::from_text("stats");
    let now = start();
    let before: CacheStats = cache.stats().await.expect("stats");
    put(cache, &tenant, &key, &[Tag::tenant()], now, 10, 10).await;
    cache.get(&tenant, &key, &[], now).await.expect("get");
    cache
        .get(&tenant, &key, &[], now + TimeDelta::seconds(15))
        .await
        .expect("get");
    let after = cache.stats().await.expect("stats");
    assert_eq!(after.misses - before.misses, 1);
    assert_eq!(after.hits - before.hits, 1);
    assert_eq!(after.stale_hits - before.stale_hits, 1);
    assert!(after.entries >= 1 && after.bytes > 0, "{after:?}");
    let lookups = after.hits + after.misses + after.stale_hits;
    let expected_rate = (after.hits as f64 * 10_000.0 / lookups as f64).round() / 100.0;
    assert_eq!(after.hit_rate, expected_rate);
}
