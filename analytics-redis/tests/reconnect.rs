//! A Redis killed and started again: while it is gone every call fails (at once: a refused
//! connection is not retried with a backoff), and the first call after it is back succeeds
//! (the connection's stale failure is not handed to it, so a breaker's first trial is not
//! wasted). The test starts its own `redis-server` and ends only that process.

use analytics_core::cache::CacheBackend;
use analytics_core::testkit::process::{free_port, redis_server};
use analytics_redis::{RedisCache, RedisConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_call_after_redis_returns_succeeds() {
    let port = free_port();
    let Some(redis) = redis_server("reconnect", port) else {
        return;
    };
    let cache = RedisCache::connect(&RedisConfig::new(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap();
    cache.stats().await.expect("Redis is up");

    redis.kill();
    for attempt in 0..3 {
        let failed = cache.stats().await;
        assert!(failed.is_err(), "call {attempt} with Redis gone: {failed:?}");
        assert!(failed.unwrap_err().is_transient(), "an outage is transient");
    }

    let _redis = redis_server("reconnect", port).expect("started again");
    cache.stats().await.expect("the first call after Redis is back");
}
