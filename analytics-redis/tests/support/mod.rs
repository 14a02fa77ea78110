//! Shared setup: configurations on the test servers with a key prefix of their own.

use analytics_core::testkit;
use analytics_redis::RedisConfig;

/// A fresh key prefix, so tests and runs sharing a server never see each other's keys.
pub(crate) fn prefix(test: &str) -> String {
    format!("test-{test}-{:016x}", getrandom::u64().expect("OS randomness"))
}

/// The standalone server (`REDIS_URL`) under a fresh prefix, or `None` (skip).
pub(crate) fn standalone(test: &str) -> Option<RedisConfig> {
    standalone_with_prefix(test).map(|(config, _)| config)
}

/// [`standalone`], and the prefix it uses.
#[allow(dead_code)] // Not every test file needs the prefix.
pub(crate) fn standalone_with_prefix(test: &str) -> Option<(RedisConfig, String)> {
    let url = testkit::server_url("REDIS_URL", test)?;
    let prefix = prefix(test);
    Some((RedisConfig::new(url).prefix(prefix.clone()), prefix))
}

/// The three-master cluster (`REDIS_CLUSTER_URLS`, comma-separated nodes) under a fresh
/// prefix, or `None` (skip).
pub(crate) fn cluster(test: &str) -> Option<RedisConfig> {
    let urls = testkit::server_url("REDIS_CLUSTER_URLS", test)?;
    Some(RedisConfig::cluster(urls.split(',')).prefix(prefix(test)))
}
