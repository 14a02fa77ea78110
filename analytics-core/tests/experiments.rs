//! Experiments: statistics against scipy, assignment, and the facade's results and exposures.

use std::collections::BTreeMap;

use analytics_core::clock::ManualClock;
use analytics_core::experiments::stats::{self, Proportion};
use analytics_core::experiments::{self, Conclusion, ResultsOptions};
use analytics_core::model::{Experiment, ExperimentId, ExperimentInput, TenantId, UserId};
use analytics_core::{Analytics, Error};
use serde::Deserialize;
use serde_json::json;

/// Reference values computed with scipy (and checked against statsmodels) by
/// `scripts/experiment-stats-reference.py`; the file names the versions used.
const TABLE: &str = include_str!("data/experiment_stats.json");

#[derive(Deserialize)]
struct Table {
    produced_by: String,
    proportion_cases: Vec<ProportionCase>,
    srm_cases: Vec<SrmCase>,
}

#[derive(Deserialize)]
struct ProportionCase {
    control: Proportion,
    treatment: Proportion,
    level: f64,
    z: Option<f64>,
    p_value: Option<f64>,
    interval: Option<[f64; 2]>,
    chance_to_beat: Option<f64>,
}

#[derive(Deserialize)]
struct SrmCase {
    observed: Vec<u64>,
    weights: Vec<f64>,
    statistic: Option<f64>,
    degrees_of_freedom: Option<u32>,
    p_value: Option<f64>,
}

/// Agreement to 1e-9: absolute for values up to 1, relative beyond; and relative for tiny
/// values (a p-value of 1e-72 must not pass as 0).
fn agrees(got: f64, want: f64) -> bool {
    let scale = want.abs().max(1.0);
    (got - want).abs() <= 1e-9 * scale && (want.abs() >= 1e-9 || (got - want).abs() <= 1e-9 * want.abs())
}

fn check(what: &str, got: Option<f64>, want: Option<f64>, failures: &mut Vec<String>) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) if agrees(g, w) => {}
        _ => failures.push(format!("{what}: got {got:?}, scipy {want:?}")),
    }
}

#[test]
fn statistics_agree_with_scipy_to_1e_9() {
    let table: Table = serde_json::from_str(TABLE).expect("the reference table parses");
    assert!(table.produced_by.contains("scipy"), "{}", table.produced_by);
    assert!(table.proportion_cases.len() >= 15 && table.srm_cases.len() >= 8);
    let mut failures = Vec::new();
    for case in &table.proportion_cases {
        let (c, t) = (case.control, case.treatment);
        let label = format!("{c:?} vs {t:?} at {}", case.level);
        let test = stats::two_proportion_z_test(c, t);
        check(&format!("z of {label}"), test.map(|t| t.z), case.z, &mut failures);
        check(
            &format!("p-value of {label}"),
            test.map(|t| t.p_value),
            case.p_value,
            &mut failures,
        );
        let interval = stats::difference_interval(c, t, case.level);
        check(
            &format!("interval lower of {label}"),
            interval.map(|i| i.lower),
            case.interval.map(|i| i[0]),
            &mut failures,
        );
        check(
            &format!("interval upper of {label}"),
            interval.map(|i| i.upper),
            case.interval.map(|i| i[1]),
            &mut failures,
        );
        check(
            &format!("chance to beat of {label}"),
            stats::chance_to_beat(c, t),
            case.chance_to_beat,
            &mut failures,
        );
    }
    for case in &table.srm_cases {
        let label = format!("{:?} against {:?}", case.observed, case.weights);
        let test = stats::sample_ratio_test(&case.observed, &case.weights);
        check(
            &format!("chi-square of {label}"),
            test.map(|t| t.statistic),
            case.statistic,
            &mut failures,
        );
        check(
            &format!("SRM p-value of {label}"),
            test.map(|t| t.p_value),
            case.p_value,
            &mut failures,
        );
        assert_eq!(test.map(|t| t.degrees_of_freedom), case.degrees_of_freedom, "{label}");
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn experiment(variants: serde_json::Value, status: &str) -> Experiment {
    let input: ExperimentInput =
        serde_json::from_value(json!({"id": "exp_split", "name": "Split", "status": status, "variants": variants}))
            .unwrap();
    Experiment::from_input(
        input,
        &TenantId::parse("t").unwrap(),
        "2024-01-01T00:00:00Z".parse().unwrap(),
    )
    .unwrap()
}

#[test]
fn assignment_follows_the_weights_within_one_point_and_never_changes() {
    let users: Vec<UserId> = (0..100_000)
        .map(|i| UserId::parse(format!("user-{i}")).unwrap())
        .collect();
    for weights in [
        vec![1.0, 1.0],
        vec![1.0, 2.0, 7.0],
        vec![0.1, 0.9],
        vec![5.0, 3.0, 1.0, 1.0],
    ] {
        let variants: Vec<serde_json::Value> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| json!({"key": format!("v{i}"), "weight": w}))
            .collect();
        let definition = experiment(json!(variants), "running");
        // A second copy, as another instance or a restart would build it.
        let again = experiment(json!(variants), "running");
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for user in &users {
            let variant = experiments::assign(&definition, user);
            assert_eq!(variant, experiments::assign(&again, user), "{user:?}");
            *counts.entry(variant.as_str().to_owned()).or_insert(0) += 1;
        }
        let total: f64 = weights.iter().sum();
        for (i, weight) in weights.iter().enumerate() {
            let share = counts.get(&format!("v{i}")).copied().unwrap_or(0) as f64 / users.len() as f64;
            let expected = weight / total;
            assert!(
                (share - expected).abs() <= 0.01,
                "weights {weights:?}: v{i} got {share:.4}, expected {expected:.4}"
            );
        }
    }
}

#[test]
fn assignment_buckets_are_pinned() {
    // These values must never change: changing the hash reshuffles every running experiment.
    // Computed independently: python3 -c "import hashlib; d = hashlib.sha256(b'exp_checkout' +
    // b'\x1f' + b'user-42').digest(); print((int.from_bytes(d[:8], 'big') >> 11) / 2**53)"
    let bucket = |experiment: &str, user: &str| {
        experiments::bucket(&ExperimentId::parse(experiment).unwrap(), &UserId::parse(user).unwrap())
    };
    assert_eq!(format!("{:.15}", bucket("exp_checkout", "user-42")), PINNED_A);
    assert_eq!(format!("{:.15}", bucket("exp_other", "user-42")), PINNED_B);
}

const PINNED_A: &str = "0.712195263459095";
const PINNED_B: &str = "0.391304453855458";

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn facade_with_experiment(status: &str) -> (Analytics, ExperimentId) {
    let clock = ManualClock::new("2024-03-01T12:00:00Z".parse().unwrap());
    let analytics = Analytics::builder().clock(std::sync::Arc::new(clock)).build().unwrap();
    let input: ExperimentInput = serde_json::from_value(json!({
        "id": "exp_cta", "name": "Call to action", "status": status,
        "variants": [{"key": "control", "weight": 1}, {"key": "bold", "weight": 1}],
    }))
    .unwrap();
    let created = analytics.create_experiment(&tenant(), input).await.unwrap();
    (analytics, created.id)
}

#[tokio::test]
async fn exposures_are_recorded_once_and_only_while_running() {
    let (analytics, id) = facade_with_experiment("running").await;
    let user = UserId::parse("u-1").unwrap();
    let first = analytics.record_exposure(&tenant(), &id, &user).await.unwrap();
    let second = analytics.record_exposure(&tenant(), &id, &user).await.unwrap();
    assert_eq!(first, second);
    assert!(first.running);
    let results = analytics
        .experiment_results(&tenant(), &id, ResultsOptions::default())
        .await
        .unwrap();
    let seen: Vec<(String, u64, u64)> = results
        .variants
        .iter()
        .map(|v| (v.key.as_str().to_owned(), v.events, v.users))
        .collect();
    let mut want = vec![("control".to_owned(), 0, 0), ("bold".to_owned(), 0, 0)];
    let slot = want.iter_mut().find(|v| v.0 == first.variant.as_str()).unwrap();
    (slot.1, slot.2) = (1, 1);
    assert_eq!(seen, want, "one exposure event and one user, in the assigned variant");

    let (paused, paused_id) = facade_with_experiment("paused").await;
    let err = paused.record_exposure(&tenant(), &paused_id, &user).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(!paused.assign(&tenant(), &paused_id, &user).await.unwrap().running);
    let missing = ExperimentId::parse("nope").unwrap();
    assert!(matches!(
        analytics.assign(&tenant(), &missing, &user).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn results_analyse_the_counts_the_reference_defines() {
    let (analytics, id) = facade_with_experiment("running").await;
    // 3,000 users split by assignment; the bold variant converts about twice as often.
    let mut inputs = Vec::new();
    let mut expected: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for i in 0..3_000 {
        let user = UserId::parse(format!("user-{i}")).unwrap();
        let variant = analytics.assign(&tenant(), &id, &user).await.unwrap().variant;
        let converts = if variant.as_str() == "bold" {
            i % 5 == 0
        } else {
            i % 10 == 0
        };
        let (events, users, conversions) = expected.entry(variant.as_str().to_owned()).or_default();
        *users += 1;
        *conversions += u64::from(converts);
        for (n, event_type) in [(0, "view"), (1, "CONVERSION")] {
            if n == 1 && !converts {
                continue;
            }
            *events += 1;
            inputs.push(json!({
                "id": format!("e-{i}-{n}"), "userId": user.as_str(), "eventType": event_type,
                "experimentId": id.as_str(), "variant": variant.as_str(),
                "timestamp": "2024-02-20T10:00:00Z",
            }));
        }
    }
    let events: Vec<analytics_core::model::EventInput> = serde_json::from_value(json!(inputs)).unwrap();
    for chunk in events.chunks(5_000) {
        analytics.ingest(&tenant(), chunk.to_vec()).await.unwrap();
    }
    let results = analytics
        .experiment_results(&tenant(), &id, ResultsOptions { confidence_level: 0.99 })
        .await
        .unwrap();
    assert_eq!(results.control.as_str(), "control");
    assert_eq!(results.confidence_level, 0.99);
    let got: BTreeMap<String, (u64, u64, u64)> = results
        .variants
        .iter()
        .map(|v| (v.key.as_str().to_owned(), (v.events, v.users, v.conversions)))
        .collect();
    assert_eq!(got, expected);
    for variant in &results.variants {
        assert_eq!(
            variant.conversion_rate,
            Some(variant.conversions as f64 / variant.users as f64)
        );
    }
    let bold = &results.comparisons[0];
    assert_eq!(bold.variant.as_str(), "bold");
    assert_eq!(bold.conclusion, Conclusion::Significant, "{bold:?}");
    assert!(bold.relative_uplift.unwrap() > 0.5, "{bold:?}");
    assert!(bold.chance_to_beat_control.unwrap() > 0.99);
    assert!(
        !results.sample_ratio_mismatch.unwrap().flagged,
        "assignment is balanced"
    );
    let bad = analytics
        .experiment_results(&tenant(), &id, ResultsOptions { confidence_level: 1.5 })
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::InvalidInput { ref field, .. } if field == "confidenceLevel"));
}
