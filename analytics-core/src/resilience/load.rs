//! Load levels, priority shedding and the degradation plan.
//!
//! In-flight work is compared with an adaptive concurrency limit (AIMD: the limit grows by
//! `1/limit` per call answered within the target latency and shrinks by 10% per slower one), and
//! the utilisation sets the [`LoadLevel`]. Levels rise at once and fall one step at a time, only
//! after the utilisation has stayed below the level's threshold minus a hysteresis margin for a
//! cooldown, so they do not flap. Each level sheds the lowest priorities and degrades the rest
//! before anything fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::query::LoadLevel;

use crate::clock::Clock;
use crate::error::{Error, Result};

/// A request's priority, 1 (lowest) to 10 (highest); default 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Priority(u8);

impl Priority {
    /// The default priority.
    pub const DEFAULT: Priority = Priority(5);
    /// The highest priority.
    pub const HIGHEST: Priority = Priority(10);

    /// A priority from 1 to 10.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `priority` otherwise.
    pub fn new(value: u8) -> Result<Self> {
        if (1..=10).contains(&value) {
            Ok(Self(value))
        } else {
            Err(Error::invalid("priority", "must be an integer from 1 to 10"))
        }
    }

    /// Parses a header value such as `X-Priority: 7`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `priority`.
    pub fn parse(text: &str) -> Result<Self> {
        text.trim()
            .parse::<u8>()
            .map_err(|_| Error::invalid("priority", "must be an integer from 1 to 10"))
            .and_then(Self::new)
    }

    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Load-shedding settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadConfig {
    /// Starting concurrency limit.
    pub initial_limit: u32,
    /// The limit never shrinks below this.
    pub min_limit: u32,
    /// The limit never grows above this.
    pub max_limit: u32,
    /// Calls slower than this shrink the limit.
    pub target_latency: Duration,
    /// Utilisation (in-flight / limit) at which ELEVATED, HIGH and CRITICAL begin.
    pub thresholds: [f64; 3],
    /// How far below a level's threshold utilisation must fall before stepping down.
    pub hysteresis: f64,
    /// How long a level is held before stepping down.
    pub cooldown: Duration,
    /// Per level (NORMAL, ELEVATED, HIGH, CRITICAL), priorities below this are shed.
    pub shed_below: [u8; 4],
    /// At HIGH and above, priorities below this get a coarser granularity and no costly
    /// breakdowns.
    pub degrade_below: u8,
    /// At CRITICAL, only priorities from this one may reach the store; the others are answered
    /// from the cache or shed.
    pub critical_store_from: u8,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            initial_limit: 64,
            min_limit: 4,
            max_limit: 4096,
            target_latency: Duration::from_millis(250),
            thresholds: [0.5, 0.75, 0.9],
            hysteresis: 0.1,
            cooldown: Duration::from_secs(5),
            shed_below: [1, 1, 3, 6],
            degrade_below: 8,
            critical_store_from: 9,
        }
    }
}

/// What to do differently for one request at the current level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Degradation {
    /// The level decided on.
    pub level: LoadLevel,
    /// Serve stale cached answers as they are, without refreshing them.
    pub prefer_cache: bool,
    /// Use the next coarser granularity.
    pub coarsen: bool,
    /// Omit top pages and device stats.
    pub drop_breakdowns: bool,
    /// Answer only from the cache.
    pub cache_only: bool,
}

/// The observable state of the load shedder (for health endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadSnapshot {
    /// Current level.
    pub level: LoadLevel,
    /// Requests being served.
    pub in_flight: u32,
    /// The adaptive concurrency limit.
    pub limit: f64,
    /// `in_flight / limit`.
    pub utilisation: f64,
    /// Exponentially weighted average response time, in milliseconds.
    pub avg_response_time_ms: f64,
    /// Requests completed since start.
    pub completed: u64,
    /// Requests shed since start.
    pub shed: u64,
}

#[derive(Debug)]
struct State {
    level: LoadLevel,
    /// When the level last changed, in microseconds since the epoch.
    since: i64,
    limit: f64,
    avg_latency_ms: f64,
    completed: u64,
    shed: u64,
}

#[derive(Debug)]
struct Shared {
    config: LoadConfig,
    clock: Arc<dyn Clock>,
    in_flight: AtomicU32,
    state: Mutex<State>,
}

/// Decides load levels, sheds and degrades. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct LoadShedder {
    shared: Arc<Shared>,
}

/// A request being served; dropping it records its latency and frees its slot.
#[derive(Debug)]
pub struct LoadGuard {
    shared: Arc<Shared>,
    /// When it was admitted, in microseconds since the epoch.
    started: i64,
    degradation: Degradation,
}

const LEVELS: [LoadLevel; 4] = [
    LoadLevel::Normal,
    LoadLevel::Elevated,
    LoadLevel::High,
    LoadLevel::Critical,
];

fn index(level: LoadLevel) -> usize {
    LEVELS.iter().position(|l| *l == level).expect("every level is listed")
}

impl LoadShedder {
    /// A shedder at NORMAL.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for inconsistent limits or thresholds.
    pub fn new(config: LoadConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        if config.min_limit == 0 || config.min_limit > config.initial_limit || config.initial_limit > config.max_limit {
            return Err(Error::invalid(
                "limit",
                "need 0 < min_limit ≤ initial_limit ≤ max_limit",
            ));
        }
        if !(config.thresholds[0] > 0.0
            && config.thresholds[0] < config.thresholds[1]
            && config.thresholds[1] < config.thresholds[2])
        {
            return Err(Error::invalid("thresholds", "must be positive and increasing"));
        }
        let state = State {
            level: LoadLevel::Normal,
            since: clock.now_micros(),
            limit: f64::from(config.initial_limit),
            avg_latency_ms: 0.0,
            completed: 0,
            shed: 0,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                clock,
                in_flight: AtomicU32::new(0),
                state: Mutex::new(state),
            }),
        })
    }

    /// Admits a request of `priority`, or sheds it.
    ///
    /// # Errors
    /// [`Error::Overloaded`] with a retry hint when the current level sheds this priority.
    pub fn admit(&self, priority: Priority) -> Result<LoadGuard> {
        let shared = &self.shared;
        // Microseconds, not `DateTime`: this runs twice per request, and only compares.
        let now = shared.clock.now_micros();
        let in_flight = shared.in_flight.load(Ordering::Acquire);
        let mut state = shared.lock();
        let level = shared.update_level(&mut state, in_flight, now);
        let config = &shared.config;
        if priority.get() < config.shed_below[index(level)] {
            state.shed += 1;
            return Err(Error::Overloaded {
                message: format!(
                    "load level {level:?} sheds priority {} and below",
                    config.shed_below[index(level)] - 1
                ),
                retry_after: config.cooldown,
            });
        }
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let cache_only = level == LoadLevel::Critical && priority.get() < config.critical_store_from;
        // Coarsening saves store work; a cache-only request does none, and is better served by
        // the full-detail answer if one is cached.
        let high = level >= LoadLevel::High && priority.get() < config.degrade_below && !cache_only;
        let degradation = Degradation {
            level,
            prefer_cache: level >= LoadLevel::Elevated,
            coarsen: high,
            drop_breakdowns: high,
            cache_only,
        };
        Ok(LoadGuard {
            shared: shared.clone(),
            started: now,
            degradation,
        })
    }

    /// The current level and its inputs.
    pub fn snapshot(&self) -> LoadSnapshot {
        let shared = &self.shared;
        let in_flight = shared.in_flight.load(Ordering::Acquire);
        let mut state = shared.lock();
        let level = shared.update_level(&mut state, in_flight, shared.clock.now_micros());
        LoadSnapshot {
            level,
            in_flight,
            limit: state.limit,
            utilisation: f64::from(in_flight) / state.limit,
            avg_response_time_ms: state.avg_latency_ms,
            completed: state.completed,
            shed: state.shed,
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_level(&self, state: &mut State, in_flight: u32, now: i64) -> LoadLevel {
        let utilisation = f64::from(in_flight) / state.limit;
        let thresholds = self.config.thresholds;
        let target = LEVELS[thresholds.iter().filter(|t| utilisation >= **t).count()];
        let current = index(state.level);
        if target > state.level {
            state.level = target;
            state.since = now;
        } else if target < state.level
            && utilisation < thresholds[current - 1] - self.config.hysteresis
            && now.saturating_sub(state.since) >= micros(self.config.cooldown)
        {
            state.level = LEVELS[current - 1];
            state.since = now;
        }
        state.level
    }

    fn complete(&self, started: i64) {
        let now = self.clock.now_micros();
        let latency = Duration::from_micros(u64::try_from(now.saturating_sub(started)).unwrap_or(0));
        let in_flight = self.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        let mut state = self.lock();
        let config = &self.config;
        state.limit = if latency > config.target_latency {
            (state.limit * 0.9).max(f64::from(config.min_limit))
        } else {
            (state.limit + 1.0 / state.limit).min(f64::from(config.max_limit))
        };
        let ms = latency.as_secs_f64() * 1000.0;
        state.avg_latency_ms = if state.completed == 0 {
            ms
        } else {
            state.avg_latency_ms * 0.9 + ms * 0.1
        };
        state.completed += 1;
        self.update_level(&mut state, in_flight, now);
    }
}

/// `duration` in microseconds, saturating.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl LoadGuard {
    /// What to degrade for this request.
    pub fn degradation(&self) -> Degradation {
        self.degradation
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.shared.complete(self.started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A shedder whose concurrency limit stays at `limit`, on a virtual clock.
    fn fixed_limit(limit: u32) -> (ManualClock, LoadShedder) {
        let clock = ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap());
        let config = LoadConfig {
            initial_limit: limit,
            min_limit: limit,
            max_limit: limit,
            ..LoadConfig::default()
        };
        (clock.clone(), LoadShedder::new(config, Arc::new(clock)).unwrap())
    }

    #[test]
    fn priorities_parse_with_a_named_error() {
        assert_eq!(Priority::parse(" 7 ").unwrap().get(), 7);
        for bad in ["0", "11", "high", ""] {
            assert!(
                matches!(Priority::parse(bad), Err(Error::InvalidInput { field, .. }) if field == "priority"),
                "{bad}"
            );
        }
    }

    #[test]
    fn overload_ramps_up_at_once_and_down_step_by_step() {
        let (clock, shedder) = fixed_limit(10);
        let top = Priority::HIGHEST;
        let mut held: Vec<LoadGuard> = (0..10).map(|_| shedder.admit(top).unwrap()).collect();
        assert_eq!(shedder.snapshot().level, LoadLevel::Critical);
        // Priorities shed in order: at CRITICAL everything below 6 goes.
        for p in 1..=10 {
            let admitted = shedder.admit(Priority::new(p).unwrap());
            assert_eq!(admitted.is_ok(), p >= 6, "priority {p}");
        }
        held.truncate(2);
        assert_eq!(
            shedder.snapshot().level,
            LoadLevel::Critical,
            "held through the cooldown"
        );
        for expected in [
            LoadLevel::High,
            LoadLevel::Elevated,
            LoadLevel::Normal,
            LoadLevel::Normal,
        ] {
            clock.advance(Duration::from_secs(5));
            assert_eq!(shedder.snapshot().level, expected);
        }
        let snapshot = shedder.snapshot();
        assert_eq!((snapshot.in_flight, snapshot.shed), (2, 5));
    }

    #[test]
    fn hysteresis_keeps_the_level_near_its_threshold() {
        let (clock, shedder) = fixed_limit(10);
        let mut held: Vec<LoadGuard> = (0..5).map(|_| shedder.admit(Priority::DEFAULT).unwrap()).collect();
        assert_eq!(shedder.snapshot().level, LoadLevel::Elevated, "50% utilisation");
        held.pop();
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            shedder.snapshot().level,
            LoadLevel::Elevated,
            "40% is not below 50% − 10%"
        );
        held.pop();
        assert_eq!(shedder.snapshot().level, LoadLevel::Normal, "30% is");
    }

    #[test]
    fn slow_calls_shrink_the_limit_and_fast_ones_grow_it() {
        let clock = ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap());
        let shedder = LoadShedder::new(LoadConfig::default(), Arc::new(clock.clone())).unwrap();
        let guard = shedder.admit(Priority::DEFAULT).unwrap();
        clock.advance(Duration::from_secs(1));
        drop(guard);
        let after_slow = shedder.snapshot();
        assert!((after_slow.limit - 57.6).abs() < 1e-9, "{}", after_slow.limit);
        assert_eq!(after_slow.avg_response_time_ms, 1000.0);
        drop(shedder.admit(Priority::DEFAULT).unwrap());
        assert!(shedder.snapshot().limit > after_slow.limit);
    }

    #[test]
    fn degradation_by_level_and_priority() {
        let (_clock, shedder) = fixed_limit(100);
        let normal = shedder.admit(Priority::DEFAULT).unwrap().degradation();
        assert_eq!(
            normal,
            Degradation {
                level: LoadLevel::Normal,
                ..Degradation::default()
            }
        );
        let _load: Vec<LoadGuard> = (0..80).map(|_| shedder.admit(Priority::HIGHEST).unwrap()).collect();
        let high_low = shedder.admit(Priority::new(5).unwrap()).unwrap().degradation();
        assert!(high_low.prefer_cache && high_low.coarsen && high_low.drop_breakdowns && !high_low.cache_only);
        let high_top = shedder.admit(Priority::new(9).unwrap()).unwrap().degradation();
        assert!(high_top.prefer_cache && !high_top.coarsen && !high_top.drop_breakdowns);
    }
}
