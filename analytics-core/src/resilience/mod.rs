//! Staying useful under load and faults: the circuit breaker ([`breaker`]), rate limiting
//! ([`rate_limit`]) and load shedding with graceful degradation ([`load`]). All of it is
//! storage-agnostic and reads time from the [`Clock`](crate::clock::Clock); state that must be
//! shared between instances (limiter counters) sits behind a trait the Redis adapter implements.

pub mod breaker;
mod breaker_store;

pub use breaker::{BreakerConfig, BreakerMetrics, BreakerPermit, BreakerState, CircuitBreaker, FailurePolicy, SlidingWindow};
pub use breaker_store::BreakerStore;
