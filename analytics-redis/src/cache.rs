//! [`RedisCache`]: the versioned-tag [`CacheBackend`] on Redis.

use std::sync::Arc;

use analytics_core::Result;
use analytics_core::cache::{
    CacheBackend, CacheEntry, CacheHit, CacheKey, CacheLookup, CacheStats, LookupCounters, Tag, TagVersions, classify,
};
use analytics_core::model::TenantId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{Script, Value};

use crate::connection::{RedisConfig, RedisConnection};
use crate::error::{self, corrupt};
use crate::keys::Keys;

/// How long an entry lives in Redis at least, in ms. Freshness is judged on the caller's clock
/// against the entry's deadlines, so keeping it longer changes no answer — and a caller's clock
/// running apart from Redis's (virtual time in tests) can never expire an entry early.
const MIN_ENTRY_TTL_MS: i64 = 60_000;

/// How long a tag's version key lives at least (each stored entry extends it to outlive the
/// entry): a day, so the versions of a day's tags survive between lookups.
const VERSION_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// The versioned-tag cache on Redis (standalone or Cluster).
///
/// - A lookup is one Lua call: it returns the entry, whether each tag the entry was stored with
///   still has the version it was stored with (a missing version counts as changed, so eviction
///   can never bring a stale entry back), and the current versions of the requested tags.
/// - A store is one Lua call; invalidating tags is one `INCR` per tag — O(1), no key sets, nothing
///   that grows with the number of entries. Clearing a tenant bumps its tenant tag.
/// - Every key of a tenant shares one hash tag, so each call touches one cluster slot.
/// - Entries expire in Redis at their stale deadline; version keys outlive the entries they
///   guard.
///
/// Freshness is judged on the `now` each call passes (the facade's clock), like every backend;
/// Redis's own expiry only reclaims memory. Lookup counters are this process's; `entries` and
/// `bytes` in [`stats`](CacheBackend::stats) are the server's (`DBSIZE`, `used_memory`), shared
/// with anything else on it.
#[derive(Debug, Clone)]
pub struct RedisCache {
    connection: RedisConnection,
    keys: Keys,
    scripts: Arc<Scripts>,
    counters: Arc<LookupCounters>,
}

#[derive(Debug)]
struct Scripts {
    get: Script,
    set: Script,
    invalidate: Script,
}

impl RedisCache {
    /// Connects to the server or cluster `config` names.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](analytics_core::Error::InvalidInput) naming a bad setting; transient errors when Redis is unreachable.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        let keys = config.keys()?;
        let connection = config.connect().await?;
        Ok(Self::with_connection(connection, keys))
    }

    pub(crate) fn with_connection(connection: RedisConnection, keys: Keys) -> Self {
        Self {
            connection,
            keys,
            scripts: Arc::new(Scripts {
                get: Script::new(include_str!("lua/cache_get.lua")),
                set: Script::new(include_str!("lua/cache_set.lua")),
                invalidate: Script::new(include_str!("lua/cache_invalidate.lua")),
            }),
            counters: Arc::default(),
        }
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }
}

#[async_trait]
impl CacheBackend for RedisCache {
    async fn get(&self, tenant: &TenantId, key: &CacheKey, tags: &[Tag], now: DateTime<Utc>) -> Result<CacheLookup> {
        let mut invocation = self.scripts.get.key(self.keys.entry(tenant, key));
        for tag in tags {
            invocation.key(self.keys.version(tenant, tag));
        }
        invocation.arg(self.keys.version_prefix(tenant)).arg(VERSION_TTL_MS);
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| error::map("cache get", e))?;
        let mut reply = reply.into_iter();
        let versions: Vec<u64> = match reply.next() {
            Some(v) => redis::from_redis_value(v).map_err(|e| corrupt("tag versions", e))?,
            None => return Err(corrupt("cache reply", "empty")),
        };
        let tag_versions: TagVersions = tags.iter().cloned().zip(versions).collect();
        let hit = match reply.len() {
            0 => None,
            6 => {
                let fields: Vec<Value> = reply.collect();
                decode_hit(fields, now)?
            }
            n => return Err(corrupt("cache reply", format!("{n} trailing fields"))),
        };
        self.counters.record(hit.as_ref().map(|h| h.freshness));
        Ok(CacheLookup { hit, tag_versions })
    }

    async fn set(&self, tenant: &TenantId, key: &CacheKey, entry: CacheEntry, now: DateTime<Utc>) -> Result<()> {
        let entry_key = self.keys.entry(tenant, key);
        // Redis expires the entry after (at least) the same span of its own time; freshness is
        // judged on the caller's clock.
        let ttl_ms = (entry.stale_until - now).num_milliseconds();
        if ttl_ms <= 0 {
            return Ok(());
        }
        let ttl_ms = ttl_ms.max(MIN_ENTRY_TTL_MS);
        let mut invocation = self.scripts.set.key(entry_key);
        invocation
            .arg(self.keys.version_prefix(tenant))
            .arg(&*entry.value)
            .arg(entry.created_at.timestamp_micros())
            .arg(entry.fresh_until.timestamp_micros())
            .arg(entry.stale_until.timestamp_micros())
            .arg(ttl_ms)
            .arg(ttl_ms + VERSION_TTL_MS);
        for (tag, version) in &entry.tags {
            invocation.arg(tag.as_str()).arg(*version);
        }
        invocation
            .invoke_async::<i64>(&mut self.connection.clone())
            .await
            .map_err(|e| error::map("cache set", e))?;
        Ok(())
    }

    async fn invalidate(&self, tenant: &TenantId, tags: &[Tag]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.invalidate.prepare_invoke();
        for tag in tags {
            invocation.key(self.keys.version(tenant, tag));
        }
        invocation
            .invoke_async::<i64>(&mut self.connection.clone())
            .await
            .map_err(|e| error::map("cache invalidate", e))?;
        Ok(())
    }

    async fn stats(&self) -> Result<CacheStats> {
        let mut connection = self.connection.clone();
        let entries: u64 = redis::cmd("DBSIZE")
            .query_async(&mut connection)
            .await
            .map_err(|e| error::map("cache stats", e))?;
        let info: Value = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .unwrap_or(Value::Nil);
        let bytes = used_memory(&info);
        Ok(self.counters.stats(entries, bytes))
    }

    /// Nothing is this instance's own: the writer's invalidation is already in Redis.
    async fn invalidate_local(&self, _: &TenantId, _: &[Tag]) -> Result<()> {
        Ok(())
    }
}

/// `used_memory` from an `INFO memory` reply: one text from a server, or one per node (summed)
/// from a cluster.
fn used_memory(info: &Value) -> u64 {
    match info {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes)
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => {
            used_memory(&Value::BulkString(text.clone().into_bytes()))
        }
        Value::Array(items) | Value::Set(items) => items.iter().map(used_memory).sum(),
        Value::Map(pairs) => pairs.iter().map(|(_, v)| used_memory(v)).sum(),
        _ => 0,
    }
}

/// The entry and its freshness from the script's `value, created, fresh, stale, current`.
fn decode_hit(fields: Vec<Value>, now: DateTime<Utc>) -> Result<Option<CacheHit>> {
    let mut fields = fields.into_iter();
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| corrupt("cache entry", format!("no {what}")))
    };
    let value: Vec<u8> = redis::from_redis_value(next("value")?).map_err(|e| corrupt("cache value", e))?;
    let mut instant = |what: &str| -> Result<DateTime<Utc>> {
        let micros: i64 = redis::from_redis_value(next(what)?).map_err(|e| corrupt(what, e))?;
        DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(what, micros))
    };
    let (created_at, fresh_until, stale_until) = (instant("created")?, instant("fresh")?, instant("stale")?);
    let current: i64 = redis::from_redis_value(next("currency")?).map_err(|e| corrupt("currency", e))?;
    let stored: Vec<(String, u64)> =
        redis::from_redis_value(next("tags")?).map_err(|e| corrupt("stored tag versions", e))?;
    let entry = CacheEntry {
        value: value.into(),
        created_at,
        fresh_until,
        stale_until,
        tags: stored.into_iter().map(|(tag, v)| (Tag::from_text(tag), v)).collect(),
    };
    Ok(classify(&entry, current == 1, now).map(|freshness| CacheHit {
        entry: Arc::new(entry),
        freshness,
    }))
}
