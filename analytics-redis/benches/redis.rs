#![allow(missing_docs)] // criterion_group! generates undocumented public items.

//! The Redis backends' figures, against a real server (`REDIS_URL`), in one run:
//!
//! - invalidating a tenant that has 10,000 cached entries among `REDIS_KEYS` keys (default
//!   1,000,000): versioned tags (`RedisCache::clear_tenant`, one `INCR`) vs seed 000's tag sets
//!   (`SMEMBERS` of the tag's key set, then `DEL` of those keys and of the set) vs `SCAN MATCH` over
//!   the keyspace and `DEL` of the matches — side by side in one criterion group;
//! - cache get latency on one connection: p50 and p99 of 20,000 sequential fresh hits;
//! - limiter decisions per second from 8 concurrent tasks (GCRA, server clock).
//!
//! `REDIS_URL=redis://… cargo bench -p analytics-redis --bench redis`, then
//! `scripts/bench-report`. The keyspace is filled once under the prefix `bench-<REDIS_KEYS>`
//! and reused by later runs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics_core::cache::{CacheBackend, CacheEntry, CacheKey, Tag};
use analytics_core::model::TenantId;
use analytics_core::resilience::{EndpointClass, LimiterKey, RateLimitPolicy, RateLimitStore};
use analytics_core::testkit;
use analytics_redis::{RedisCache, RedisConfig, RedisRateLimitStore};
use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use redis::aio::MultiplexedConnection;

/// Entries of the tenant being invalidated.
const TENANT_ENTRIES: usize = 10_000;
/// Keys written per pipeline while filling.
const PIPELINE: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn entry(tags: Vec<(Tag, u64)>) -> CacheEntry {
    let now = now();
    CacheEntry {
        value: vec![7u8; 600].into(),
        created_at: now,
        fresh_until: now + TimeDelta::hours(1),
        stale_until: now + TimeDelta::hours(2),
        tags,
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    raw: MultiplexedConnection,
    cache: RedisCache,
    limiter: Arc<RedisRateLimitStore>,
    prefix: String,
    keys: usize,
}

/// Fills the keyspace (once per `REDIS_KEYS`): other tenants' filler keys and `TENANT_ENTRIES`
/// cached entries of tenant `acme`.
fn setup(url: &str) -> Fixture {
    let keys = env_usize("REDIS_KEYS", 1_000_000).max(2 * TENANT_ENTRIES);
    let prefix = format!("bench-{keys}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = RedisConfig::new(url).prefix(prefix.clone());
    let (raw, cache, limiter) = runtime.block_on(async {
        let raw = redis::Client::open(url)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let cache = RedisCache::connect(&config).await.expect("cache");
        let limiter = RedisRateLimitStore::connect(&config).await.expect("limiter");
        (raw, cache, Arc::new(limiter))
    });
    let fixture = Fixture {
        runtime,
        raw,
        cache,
        limiter,
        prefix,
        keys,
    };
    fill(&fixture);
    fixture
}

fn fill(f: &Fixture) {
    let marker = format!("{}:filled", f.prefix);
    let mut raw = f.raw.clone();
    let filled: bool = f
        .runtime
        .block_on(redis::cmd("EXISTS").arg(&marker).query_async(&mut raw))
        .expect("exists");
    if filled {
        println!("reusing the {} keys under {}", f.keys, f.prefix);
        return;
    }
    let started = Instant::now();
    let fillers = f.keys - TENANT_ENTRIES;
    f.runtime.block_on(async {
        for chunk in (0..fillers).collect::<Vec<_>>().chunks(PIPELINE) {
            let mut pipe = redis::pipe();
            for i in chunk {
                pipe.set(
                    format!("{}:{{t:other-{}}}:e:summary:{i}", f.prefix, i % 1000),
                    [7u8; 64].as_slice(),
                )
                .ignore();
            }
            let () = pipe.query_async(&mut raw).await.expect("fill");
        }
        let tenant = TenantId::parse("acme").expect("valid");
        let tags = [Tag::tenant(), Tag::month(2024, 5)];
        for i in 0..TENANT_ENTRIES {
            let key = CacheKey::from_text(format!("summary:{i}"));
            let versions = f
                .cache
                .get(&tenant, &key, &tags, now())
                .await
                .expect("get")
                .tag_versions;
            f.cache.set(&tenant, &key, entry(versions), now()).await.expect("set");
        }
        let () = redis::cmd("SET")
            .arg(&marker)
            .arg(1)
            .query_async(&mut raw)
            .await
            .expect("marker");
    });
    println!("filled {} keys under {} in {:.1?}", f.keys, f.prefix, started.elapsed());
}

/// Seed 000's layout for one tenant: `TENANT_ENTRIES` entry keys and the tag's set of them.
async fn seed_tag_set(raw: &mut MultiplexedConnection, prefix: &str) -> (String, Vec<String>) {
    let tag_set = format!("{prefix}:seed:cache:tag:tenant:acme");
    let keys: Vec<String> = (0..TENANT_ENTRIES)
        .map(|i| format!("{prefix}:seed:cache:acme:analytics:{i}"))
        .collect();
    for chunk in keys.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.set(key, [7u8; 600].as_slice()).ignore();
        }
        pipe.sadd(&tag_set, chunk).ignore();
        let () = pipe.query_async(raw).await.expect("seed entries");
    }
    (tag_set, keys)
}

/// Seed 000's invalidation: `SMEMBERS` the tag's set, `DEL` its keys, `DEL` the set.
async fn seed_invalidate(raw: &mut MultiplexedConnection, tag_set: &str) {
    let keys: Vec<String> = redis::cmd("SMEMBERS")
        .arg(tag_set)
        .query_async(raw)
        .await
        .expect("smembers");
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(raw).await.expect("del");
    }
    let _: i64 = redis::cmd("DEL").arg(tag_set).query_async(raw).await.expect("del set");
}

/// The `SCAN`-based invalidation: walk the whole keyspace for the tenant's pattern, delete the
/// matches.
async fn scan_invalidate(raw: &mut MultiplexedConnection, pattern: &str) -> usize {
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(raw)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(&keys).query_async(raw).await.expect("del");
            deleted += keys.len();
        }
        if next == 0 {
            return deleted;
        }
        cursor = next;
    }
}

fn invalidation(c: &mut Criterion, f: &Fixture) {
    let tenant = TenantId::parse("acme").expect("valid");
    let mut group = c.benchmark_group(format!("invalidate_tenant_with_10k_entries_among_{}_keys", f.keys));
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.bench_function("scan_match_del", |b| {
        b.iter_batched(
            || {
                let mut raw = f.raw.clone();
                f.runtime.block_on(seed_tag_set(&mut raw, &f.prefix));
                raw
            },
            |mut raw| {
                let pattern = format!("{}:seed:cache:acme:*", f.prefix);
                let deleted = f.runtime.block_on(scan_invalidate(&mut raw, &pattern));
                assert_eq!(deleted, TENANT_ENTRIES);
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("seed_tag_sets", |b| {
        b.iter_batched(
            || {
                let mut raw = f.raw.clone();
                let (tag_set, _) = f.runtime.block_on(seed_tag_set(&mut raw, &f.prefix));
                (raw, tag_set)
            },
            |(mut raw, tag_set)| f.runtime.block_on(seed_invalidate(&mut raw, &tag_set)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("versioned_tags", |b| {
        b.iter(|| {
            f.runtime
                .block_on(f.cache.clear_tenant(black_box(&tenant)))
                .expect("clear")
        })
    });
    group.finish();
}

/// p50 and p99 of sequential fresh hits on one connection, printed.
fn get_latency(f: &Fixture) {
    let tenant = TenantId::parse("latency").expect("valid");
    let key = CacheKey::from_text("summary:hot");
    let tags = [Tag::tenant(), Tag::month(2024, 5)];
    let samples = env_usize("LATENCY_SAMPLES", 20_000);
    let mut micros: Vec<f64> = f.runtime.block_on(async {
        let versions = f
            .cache
            .get(&tenant, &key, &tags, now())
            .await
            .expect("get")
            .tag_versions;
        f.cache.set(&tenant, &key, entry(versions), now()).await.expect("set");
        let mut micros = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let lookup = f.cache.get(&tenant, &key, &tags, now()).await.expect("get");
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            assert!(lookup.hit.is_some());
        }
        micros
    });
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    println!(
        "cache get (fresh hit, 600-byte value, 2 tags) on one connection, {samples} sequential: \
         p50 {:.1} µs, p99 {:.1} µs",
        at(0.50),
        at(0.99)
    );
}

/// Decisions per second from 8 concurrent tasks, printed.
fn limiter_throughput(f: &Fixture) {
    let per_task = env_usize("LIMITER_CHECKS", 20_000);
    let policy = RateLimitPolicy::gcra(1_000_000, Duration::from_secs(1));
    let started = Instant::now();
    f.runtime.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let limiter = f.limiter.clone();
                tokio::spawn(async move {
                    let key = LimiterKey {
                        tenant: TenantId::parse(format!("tenant-{task}")).expect("valid"),
                        class: EndpointClass::Analytics,
                    };
                    for _ in 0..per_task {
                        limiter.check(&key, &policy, Utc::now()).await.expect("check");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    let elapsed = started.elapsed();
    println!(
        "limiter: {} decisions from 8 tasks in {:.2?}: {:.0} decisions/s",
        8 * per_task,
        elapsed,
        (8 * per_task) as f64 / elapsed.as_secs_f64()
    );
}

fn benches(c: &mut Criterion) {
    let Some(url) = testkit::server_url("REDIS_URL", "redis bench") else {
        return;
    };
    let f = setup(&url);
    get_latency(&f);
    limiter_throughput(&f);
    invalidation(c, &f);
}

criterion_group!(redis_benches, benches);
criterion_main!(redis_benches);
