//! The circuit breaker against a reference model, under concurrency, and as a store decorator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use analytics_core::Error;
use analytics_core::clock::{Clock, ManualClock};
use analytics_core::resilience::{
    BreakerConfig, BreakerPermit, BreakerState, CircuitBreaker, FailurePolicy, SlidingWindow,
};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

fn clock() -> ManualClock {
    ManualClock::new("2024-01-01T00:00:00Z".parse().unwrap())
}

fn breaker(config: BreakerConfig, clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::new(config, Arc::new(clock.clone())).unwrap()
}

fn transient() -> Error {
    Error::unavailable("db down")
}

// ---------------------------------------------------------------- the reference model

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct ModelPermit {
    phase: u64,
    half_open: bool,
    started: DateTime<Utc>,
}

/// A deliberately naive breaker: keeps every outcome and filters the window on each decision.
#[derive(Debug)]
struct Model {
    config: BreakerConfig,
    state: S,
    since: DateTime<Utc>,
    phase: u64,
    closed_outcomes: Vec<(DateTime<Utc>, bool, bool)>,
    trial_admitted: u32,
    trial: Vec<(bool, bool)>,
}

impl Model {
    fn new(config: BreakerConfig, now: DateTime<Utc>) -> Self {
        Self {
            config,
            state: S::Closed,
            since: now,
            phase: 0,
            closed_outcomes: vec![],
            trial_admitted: 0,
            trial: vec![],
        }
    }

    fn go(&mut self, to: S, now: DateTime<Utc>) {
        self.state = to;
        self.since = now;
        self.phase += 1;
        self.trial_admitted = 0;
        self.trial.clear();
        if to == S::Closed {
            self.closed_outcomes.clear();
        }
    }

    fn advance(&mut self, now: DateTime<Utc>) {
        let wait = TimeDelta::from_std(self.config.wait_in_open).unwrap();
        if self.state == S::Open && now >= self.since + wait {
            self.go(S::HalfOpen, now);
        }
        if let (S::HalfOpen, Some(max)) = (self.state, self.config.max_wait_in_half_open)
            && now >= self.since + TimeDelta::from_std(max).unwrap()
        {
            self.go(S::Open, now);
        }
    }

    fn acquire(&mut self, now: DateTime<Utc>) -> Option<ModelPermit> {
        self.advance(now);
        match self.state {
            S::Closed => Some(ModelPermit {
                phase: self.phase,
                half_open: false,
                started: now,
            }),
            S::Open => None,
            S::HalfOpen if self.trial_admitted < self.config.half_open_permits => {
                self.trial_admitted += 1;
                Some(ModelPermit {
                    phase: self.phase,
                    half_open: true,
                    started: now,
                })
            }
            S::HalfOpen => None,
        }
    }

    fn too_bad(&self, outcomes: &[(bool, bool)]) -> bool {
        let n = outcomes.len() as f64;
        let failed = outcomes.iter().filter(|o| o.0).count() as f64;
        let slow = outcomes.iter().filter(|o| o.1).count() as f64;
        failed * 100.0 >= self.config.failure_rate_threshold * n
            || slow * 100.0 >= self.config.slow_call_rate_threshold * n
    }

    fn complete(&mut self, permit: ModelPermit, failed: bool, now: DateTime<Utc>) {
        self.advance(now);
        if permit.phase != self.phase {
            return;
        }
        let slow = now - permit.started >= TimeDelta::from_std(self.config.slow_call_duration).unwrap();
        if permit.half_open {
            self.trial.push((failed, slow));
            if self.trial.len() as u32 >= self.config.half_open_permits {
                let to = if self.too_bad(&self.trial.clone()) {
                    S::Open
                } else {
                    S::Closed
                };
                self.go(to, now);
            }
            return;
        }
        self.closed_outcomes.push((now, failed, slow));
        let window: Vec<(bool, bool)> = match self.config.window {
            SlidingWindow::Count(n) => {
                let skip = self.closed_outcomes.len().saturating_sub(n as usize);
                self.closed_outcomes[skip..].iter().map(|o| (o.1, o.2)).collect()
            }
            SlidingWindow::Time(secs) => self
                .closed_outcomes
                .iter()
                .filter(|o| o.0.timestamp() > now.timestamp() - i64::from(secs))
                .map(|o| (o.1, o.2))
                .collect(),
        };
        let in_a_row = self.closed_outcomes.iter().rev().take_while(|o| o.1).count() as u32;
        let too_many_in_a_row = self.config.consecutive_failures.is_some_and(|n| in_a_row >= n);
        if (window.len() as u32 >= self.config.minimum_calls && self.too_bad(&window)) || too_many_in_a_row {
            self.go(S::Open, now);
        }
    }

    fn cancel(&mut self, permit: ModelPermit) {
        if permit.half_open && permit.phase == self.phase {
            self.trial_admitted -= 1;
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Complete { which: usize, failed: bool },
    Cancel { which: usize },
    Advance { millis: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), prop::bool::weighted(0.45)).prop_map(|(which, failed)| Op::Complete { which, failed }),
        1 => any::<usize>().prop_map(|which| Op::Cancel { which }),
        // Whole seconds land exactly on deadlines (open wait, slow-call duration, windows).
        3 => prop_oneof![0u64..1_500, 0u64..20_000, (1u64..12).prop_map(|s| s * 1000)].prop_map(|millis| Op::Advance { millis }),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    (
        prop_oneof![
            (1u32..6).prop_map(SlidingWindow::Count),
            (1u32..5).prop_map(SlidingWindow::Time)
        ],
        prop::sample::select(vec![25.0, 50.0, 100.0]),
        prop::sample::select(vec![50.0, 100.0]),
        1u64..4,
        1u32..5,
        1u64..10,
        1u32..4,
        prop::option::of(5u64..30),
        prop::option::of(1u32..6),
    )
        .prop_map(
            |(window, failure, slow, slow_secs, minimum, wait, permits, max_wait, in_a_row)| BreakerConfig {
                window,
                failure_rate_threshold: failure,
                slow_call_rate_threshold: slow,
                slow_call_duration: Duration::from_secs(slow_secs),
                minimum_calls: minimum,
                consecutive_failures: in_a_row,
                wait_in_open: Duration::from_secs(wait),
                half_open_permits: permits,
                max_wait_in_half_open: max_wait.map(Duration::from_secs),
                failures: FailurePolicy::TransientOnly,
            },
        )
}

fn state_of(s: S) -> BreakerState {
    match s {
        S::Closed => BreakerState::Closed,
        S::Open => BreakerState::Open,
        S::HalfOpen => BreakerState::HalfOpen,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference_model(config in config(), ops in prop::collection::vec(op(), 1..80)) {
        let clock = clock();
        let breaker = breaker(config, &clock);
        let mut model = Model::new(config, clock.now());
        let mut held: Vec<(BreakerPermit, ModelPermit)> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Acquire => {
                    let real = breaker.try_acquire();
                    let modelled = model.acquire(clock.now());
                    prop_assert_eq!(real.is_ok(), modelled.is_some(), "step {}: {:?} admission differs", step, op);
                    if let (Ok(real), Some(modelled)) = (real, modelled) {
                        held.push((real, modelled));
                    }
                }
                Op::Complete { which, failed } if !held.is_empty() => {
                    let (real, modelled) = held.remove(which % held.len());
                    real.record(failed.then(transient).as_ref());
                    model.complete(modelled, *failed, clock.now());
                }
                Op::Cancel { which } if !held.is_empty() => {
                    let (real, modelled) = held.remove(which % held.len());
                    drop(real);
                    model.cancel(modelled);
                }
                Op::Advance { millis } => clock.advance(Duration::from_millis(*millis)),
                _ => {}
            }
            model.advance(clock.now());
            prop_assert_eq!(breaker.state(), state_of(model.state), "step {}: {:?}", step, op);
        }
    }
}

// ---------------------------------------------------------------- focused behaviour

fn quick_config() -> BreakerConfig {
    BreakerConfig {
        window: SlidingWindow::Count(4),
        minimum_calls: 4,
        failure_rate_threshold: 50.0,
        wait_in_open: Duration::from_secs(10),
        half_open_permits: 2,
        max_wait_in_half_open: Some(Duration::from_secs(30)),
        ..BreakerConfig::default()
    }
}

#[test]
fn opens_at_the_failure_rate_then_half_opens_then_closes() {
    let clock = clock();
    let breaker = breaker(quick_config(), &clock);
    for failed in [false, true, false] {
        breaker.try_acquire().unwrap().record(failed.then(transient).as_ref());
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "three calls are below the minimum"
    );
    breaker.try_acquire().unwrap().failure(&transient());
    assert_eq!(breaker.state(), BreakerState::Open, "2 of 4 failed: 50%");
    let refused = breaker.try_acquire().unwrap_err();
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(10)));
    assert!(refused.is_transient());
    clock.advance(Duration::from_secs(10));
    let (a, b) = (breaker.try_acquire().unwrap(), breaker.try_acquire().unwrap());
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.try_acquire().is_err(), "only two trial permits");
    a.success();
    b.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    let metrics = breaker.metrics();
    assert_eq!(metrics.failures_total, 2);
    assert_eq!(metrics.rejected_total, 2);
    assert_eq!(metrics.last_transition.unwrap().from, BreakerState::HalfOpen);
}

#[test]
fn failed_trials_reopen_and_permanent_errors_do_not_count() {
    let clock = clock();
    let breaker = breaker(quick_config(), &clock);
    for _ in 0..4 {
        breaker
            .try_acquire()
            .unwrap()
            .failure(&Error::invalid("startDate", "bad"));
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "invalid input says nothing about the store"
    );
    for _ in 0..2 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "the last four calls: two answered, two failed"
    );
    clock.advance(Duration::from_secs(10));
    breaker.try_acquire().unwrap().failure(&transient());
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::Open, "1 of 2 trials failed: 50%");
}

#[test]
fn failures_in_a_row_open_the_breaker_below_the_minimum_calls() {
    let clock = clock();
    // Rates need 20 calls here; the default 5 failures in a row open at once.
    let low_traffic = BreakerConfig {
        minimum_calls: 20,
        ..BreakerConfig::default()
    };
    let breaker = breaker(low_traffic, &clock);
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    breaker.try_acquire().unwrap().success();
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "a success in between starts the count again"
    );
    breaker.try_acquire().unwrap().failure(&transient());
    assert_eq!(
        breaker.state(),
        BreakerState::Open,
        "five failures in a row, 20 calls or not"
    );
    let off = BreakerConfig {
        consecutive_failures: None,
        ..low_traffic
    };
    let rates_only = self::breaker(off, &clock);
    for _ in 0..19 {
        rates_only.try_acquire().unwrap().failure(&transient());
    }
    assert_eq!(rates_only.state(), BreakerState::Closed, "rates wait for the minimum");
}

#[test]
fn slow_calls_open_the_breaker() {
    let clock = clock();
    let config = BreakerConfig {
        slow_call_rate_threshold: 50.0,
        slow_call_duration: Duration::from_secs(2),
        ..quick_config()
    };
    let breaker = breaker(config, &clock);
    for _ in 0..4 {
        let permit = breaker.try_acquire().unwrap();
        clock.advance(Duration::from_secs(3));
        permit.success();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.metrics().last_transition.unwrap().to, BreakerState::Open);
}

#[test]
fn a_cancelled_trial_gives_its_permit_back_and_half_open_cannot_wedge() {
    let clock = clock();
    let breaker = breaker(quick_config(), &clock);
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    clock.advance(Duration::from_secs(10));
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    assert!(breaker.try_acquire().is_err());
    drop(first); // the caller was cancelled
    let replacement = breaker.try_acquire().expect("the permit came back");
    drop(second);
    drop(replacement);
    // Trials that never finish: the maximum half-open wait re-opens the breaker.
    let _stuck = (breaker.try_acquire().unwrap(), breaker.try_acquire().unwrap());
    clock.advance(Duration::from_secs(30));
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn operator_states() {
    let clock = clock();
    let breaker = breaker(quick_config(), &clock);
    breaker.force_open();
    assert!(matches!(
        breaker.try_acquire(),
        Err(Error::Unavailable { retry_after: None, .. })
    ));
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        breaker.state(),
        BreakerState::ForcedOpen,
        "forced open does not time out"
    );
    breaker.disable();
    for _ in 0..10 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    assert_eq!(breaker.state(), BreakerState::Disabled);
    assert_eq!(breaker.metrics().failures_total, 0, "disabled records nothing");
    breaker.metrics_only();
    for _ in 0..10 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    assert_eq!(breaker.state(), BreakerState::MetricsOnly, "metrics-only never opens");
    assert_eq!(breaker.metrics().failed_calls, 4);
    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().calls, 0);
}

#[test]
fn an_outcome_from_an_earlier_phase_is_ignored() {
    let clock = clock();
    let breaker = breaker(quick_config(), &clock);
    let early = breaker.try_acquire().unwrap();
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    clock.advance(Duration::from_secs(10));
    let trial_a = breaker.try_acquire().unwrap();
    let trial_b = breaker.try_acquire().unwrap();
    trial_a.success();
    trial_b.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    early.failure(&transient()); // issued two phases ago
    assert_eq!(breaker.metrics().calls, 0);
}

#[test]
fn invalid_settings_are_rejected_by_name() {
    let bad = BreakerConfig {
        half_open_permits: 0,
        ..BreakerConfig::default()
    };
    let err = CircuitBreaker::new(bad, Arc::new(clock())).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field, .. } if field == "halfOpenPermits"));
    let never = BreakerConfig {
        consecutive_failures: Some(0),
        ..BreakerConfig::default()
    };
    let err = CircuitBreaker::new(never, Arc::new(clock())).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { field, .. } if field == "consecutiveFailures"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_never_admits_more_than_its_permits_at_once() {
    let clock = clock();
    let config = BreakerConfig {
        half_open_permits: 3,
        max_wait_in_half_open: None,
        ..quick_config()
    };
    let breaker = breaker(config, &clock);
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure(&transient());
    }
    clock.advance(Duration::from_secs(10));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|task| {
            let (breaker, running, peak) = (breaker.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                for attempt in 0..2_000 {
                    if breaker.state() != BreakerState::HalfOpen {
                        return;
                    }
                    let Ok(permit) = breaker.try_acquire() else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    // Most trial callers are cancelled; a few finish.
                    if (task + attempt) % 7 == 0 {
                        permit.success();
                    } else {
                        drop(permit);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {} trial calls at once",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(
        breaker.state(),
        BreakerState::Closed,
        "cancelled trials gave their permits back, so it could close"
    );
}
