//! Staying useful under load and faults: the circuit breaker ([`breaker`]), rate limiting
//! ([`rate_limit`]) and load shedding with graceful degradation ([`load`]). All of it is
//! storage-agnostic and reads time from the [`Clock`](crate::clock::Clock); state that must be
//! shared between instances (limiter counters) sits behind a trait the Redis adapter implements.

pub mod breaker;
mod breaker_backends;
mod breaker_store;
pub mod load;
pub mod rate_limit;
mod rate_limit_headers;
mod rate_limit_memory;

pub use breaker::{
    BreakerConfig, BreakerMetrics, BreakerPermit, BreakerState, CircuitBreaker, FailurePolicy, SlidingWindow,
};
pub use breaker_backends::{BreakerCache, BreakerRateLimitStore, dependency_breaker_config};
pub use breaker_store::BreakerStore;
pub use load::{Degradation, LoadConfig, LoadGuard, LoadShedder, LoadSnapshot, Priority};
pub use rate_limit::{
    EndpointClass, FailMode, LimitRule, LimiterKey, RateLimitDecision, RateLimitPolicy, RateLimitStore, RateLimiter,
    RateLimits,
};
pub use rate_limit_headers::RateLimitHeaderFields;
pub use rate_limit_memory::InProcessRateLimitStore;
