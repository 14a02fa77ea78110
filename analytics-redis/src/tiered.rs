//! [`TieredCache`]: an in-process moka tier in front of [`RedisCache`], kept coherent across
//! instances by an invalidation broadcast.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use analytics_core::cache::{
    CacheBackend, CacheEntry, CacheKey, CacheLookup, CacheStats, Freshness, LookupCounters, MokaCache, Tag, TagVersions,
};
use analytics_core::model::TenantId;
use analytics_core::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use redis::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::RedisCache;
use crate::connection::RedisConfig;
use crate::error;

/// Separates the tenant and the tags in a broadcast message (none of them has control
/// characters).
const SEPARATOR: char = '\u{1f}';
/// The longest pause between attempts to resubscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Two tiers: a local [`MokaCache`] in front of a shared [`RedisCache`].
///
/// - A lookup answers from the local tier when it holds a fresh entry; otherwise from Redis,
///   copying a fresh Redis entry into the local tier. A copy keeps the Redis entry's deadlines
///   (so it never outlives it) and is fresh at most `local_ttl` (default 10 s), a bound on how
///   stale a copy can get if a broadcast is lost without the connection noticing.
/// - Storing writes Redis and drops the local copy.
/// - Invalidating bumps the tags in Redis, in the local tier, and publishes them; every instance
///   applies published invalidations to its local tier.
/// - While the subscription is down the local tier is flushed and bypassed, and it is flushed
///   again when the subscription is back (messages may have been missed in between).
///
/// A local copy records the local versions of the requested tags, read before Redis was asked,
/// so an invalidation that arrives meanwhile leaves the copy invalid. An entry stored with tags
/// the lookup did not ask for is not copied.
///
/// Lookups report Redis's tag versions (the ones to store a recomputed entry with). A lookup
/// answered locally reports the Redis version last seen for each tag while the tag's local
/// version has not moved since — every invalidation, local or broadcast, moves it; otherwise it
/// asks Redis.
#[derive(Debug)]
pub struct TieredCache {
    local: Arc<MokaCache>,
    remote: RedisCache,
    channel: String,
    local_ttl: Duration,
    coherent: Arc<AtomicBool>,
    subscriptions: watch::Receiver<u64>,
    received: watch::Receiver<u64>,
    counters: LookupCounters,
    local_hits: AtomicU64,
    seen: Mutex<HashMap<(TenantId, Tag), SeenVersions>>,
    listener: JoinHandle<()>,
}

/// A tag's local version, and its Redis version read right after it.
#[derive(Debug, Clone, Copy)]
struct SeenVersions {
    local: u64,
    remote: u64,
}

/// How many tags' versions [`TieredCache`] remembers before it starts over.
const MAX_SEEN: usize = 100_000;

impl TieredCache {
    /// Connects the Redis tier and subscribes to invalidations, waiting up to the connection
    /// timeout for the subscription (until it is up, lookups bypass the local tier).
    ///
    /// `local` is the in-process tier (its byte bound applies).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a bad setting; transient errors when Redis is unreachable.
    pub async fn connect(config: &RedisConfig, local: MokaCache) -> Result<Self> {
        let remote = RedisCache::connect(config).await?;
        let client = config.client()?;
        let channel = remote.keys().channel();
        let local = Arc::new(local);
        let coherent = Arc::new(AtomicBool::new(false));
        let (subscribed, mut subscriptions) = watch::channel(0);
        let (applied, received) = watch::channel(0);
        let listener = tokio::spawn(listen(
            client,
            channel.clone(),
            local.clone(),
            coherent.clone(),
            Signals { subscribed, applied },
        ));
        let _ = tokio::time::timeout(config.connect_timeout(), subscriptions.wait_for(|n| *n > 0)).await;
        Ok(Self {
            local,
            remote,
            channel,
            local_ttl: Duration::from_secs(10),
            coherent,
            subscriptions,
            received,
            counters: LookupCounters::default(),
            local_hits: AtomicU64::new(0),
            seen: Mutex::default(),
            listener,
        })
    }

    /// How long a local copy may be served as fresh at most (default 10 s).
    pub fn local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = ttl;
        self
    }

    /// Whether the invalidation subscription is up (and the local tier in use).
    pub fn is_coherent(&self) -> bool {
        self.coherent.load(Ordering::SeqCst)
    }

    /// How many times the subscription has been established (the first time, and after every
    /// reconnection). Each one flushed the local tier.
    pub fn subscriptions(&self) -> watch::Receiver<u64> {
        self.subscriptions.clone()
    }

    /// How many broadcast invalidations (from any instance, this one included) have been
    /// applied to the local tier.
    pub fn invalidations_received(&self) -> watch::Receiver<u64> {
        self.received.clone()
    }

    /// The Redis tier.
    pub fn remote(&self) -> &RedisCache {
        &self.remote
    }

    /// Lookups answered by the local tier.
    pub fn local_hits(&self) -> u64 {
        self.local_hits.load(Ordering::Relaxed)
    }

    /// The Redis versions of `local` versions, if each was seen with its current local version.
    fn remote_versions(&self, tenant: &TenantId, local: &TagVersions) -> Option<TagVersions> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        local
            .iter()
            .map(|(tag, version)| match seen.get(&(tenant.clone(), tag.clone())) {
                Some(s) if s.local == *version => Some((tag.clone(), s.remote)),
                _ => None,
            })
            .collect()
    }

    /// Remembers the Redis versions `remote` read right after the local versions `local`.
    fn remember(&self, tenant: &TenantId, local: &TagVersions, remote: &TagVersions) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() > MAX_SEEN {
            seen.clear();
        }
        for ((tag, local), (_, remote)) in local.iter().zip(remote) {
            seen.insert(
                (tenant.clone(), tag.clone()),
                SeenVersions {
                    local: *local,
                    remote: *remote,
                },
            );
        }
    }
}

impl Drop for TieredCache {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What the listener reports: subscriptions made, messages applied.
struct Signals {
    subscribed: watch::Sender<u64>,
    applied: watch::Sender<u64>,
}

/// Keeps the subscription up: applies every published invalidation to the local tier, flushes
/// it whenever messages may have been missed, and says whether it may be used.
async fn listen(client: Client, channel: String, local: Arc<MokaCache>, coherent: Arc<AtomicBool>, signals: Signals) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            local.clear();
            coherent.store(true, Ordering::SeqCst);
            signals.subscribed.send_modify(|n| *n += 1);
            backoff = Duration::from_millis(50);
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Ok(payload) = message.get_payload::<String>() {
                    apply(&local, &payload).await;
                    signals.applied.send_modify(|n| *n += 1);
                }
            }
        }
        // Disconnected: invalidations are being missed from now on.
        coherent.store(false, Ordering::SeqCst);
        local.clear();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn apply(local: &MokaCache, payload: &str) {
    let mut parts = payload.split(SEPARATOR);
    let Some(Ok(tenant)) = parts.next().map(TenantId::parse) else {
        return;
    };
    let tags: Vec<Tag> = parts.map(Tag::from_text).collect();
    // The moka tier never fails.
    let _ = local.invalidate(&tenant, &tags).await;
}

fn message(tenant: &TenantId, tags: &[Tag]) -> String {
    let mut payload = tenant.as_str().to_owned();
    for tag in tags {
        payload.push(SEPARATOR);
        payload.push_str(tag.as_str());
    }
    payload
}

#[async_trait]
impl CacheBackend for TieredCache {
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup> {
        if !self.is_coherent() {
            let lookup = self.remote.get(tenant, key, tags, now).await?;
            self.counters.record(lookup.hit.as_ref().map(|h| h.freshness));
            return Ok(lookup);
        }
        let local = self.local.get(tenant, key, tags, now).await?;
        if local.hit.as_ref().is_some_and(|h| h.freshness == Freshness::Fresh)
            && let Some(tag_versions) = self.remote_versions(tenant, &local.tag_versions)
        {
            self.local_hits.fetch_add(1, Ordering::Relaxed);
            self.counters.record(Some(Freshness::Fresh));
            return Ok(CacheLookup {
                hit: local.hit,
                tag_versions,
            });
        }
        let lookup = self.remote.get(tenant, key, tags, now).await?;
        self.remember(tenant, &local.tag_versions, &lookup.tag_versions);
        if let Some(hit) = &lookup.hit
            && hit.freshness == Freshness::Fresh
            && hit.entry.tags.iter().all(|(tag, _)| tags.contains(tag))
            && self.is_coherent()
        {
            let local_ttl = TimeDelta::from_std(self.local_ttl).unwrap_or(TimeDelta::MAX);
            let copy = CacheEntry {
                fresh_until: hit.entry.fresh_until.min(now + local_ttl),
                tags: local.tag_versions,
                ..(*hit.entry).clone()
            };
            self.local.set(tenant, key, copy, now).await?;
        }
        self.counters.record(lookup.hit.as_ref().map(|h| h.freshness));
        Ok(lookup)
    }

    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()> {
        self.remote.set(tenant, key, entry, now).await?;
        self.local.remove(tenant, key);
        Ok(())
    }

    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        self.remote.invalidate(tenant, tags).await?;
        self.local.invalidate(tenant, tags).await?;
        let published: std::result::Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(message(tenant, tags))
            .query_async(&mut self.remote.connection())
            .await;
        published.map_err(|e| match error::map("publish invalidation", e) {
            Error::Unavailable { message, .. } => Error::unavailable(format!(
                "{message} (Redis is invalidated; other instances' local tiers may serve their copies \
                 for up to the local TTL)"
            )),
            other => other,
        })?;
        Ok(())
    }

    async fn stats(&self) -> Result<CacheStats> {
        let remote = self.remote.stats().await?;
        Ok(self.counters.stats(remote.entries, remote.bytes))
    }

    /// The local tier only: Redis already has the writer's invalidation, and the broadcast that
    /// also brings it to this tier may arrive after the change notice.
    async fn invalidate_local(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        self.local.invalidate(tenant, tags).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_into_local_invalidations() {
        let local = MokaCache::default();
        let tenant = TenantId::parse("acme").unwrap();
        let tags = [Tag::tenant(), Tag::month(2024, 5)];
        let before = local
            .get(&tenant, &CacheKey::from_text("k"), &tags, Utc::now())
            .await
            .unwrap()
            .tag_versions;
        apply(&local, &message(&tenant, &tags[1..])).await;
        apply(&local, "not a tenant id!\u{1f}x").await;
        let after = local
            .get(&tenant, &CacheKey::from_text("k"), &tags, Utc::now())
            .await
            .unwrap()
            .tag_versions;
        assert_eq!(after[0], before[0]);
        assert_ne!(after[1], before[1]);
    }
}
