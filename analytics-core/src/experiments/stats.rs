//! The statistics of an A/B comparison, as pure functions of counts: the pooled two-proportion
//! z-test, the Wald interval for the difference of two proportions, the chi-square
//! goodness-of-fit test of the sample ratio, and the Bayesian chance to beat control.
//!
//! Distribution functions come from `statrs` (normal survival and quantile functions through
//! its `erfc`/`erfc_inv`, chi-square survival through the upper regularized gamma function), so
//! tiny p-values keep their relative precision. `tests/experiment_stats.rs` checks every function
//! against values computed with scipy.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};
use statrs::function::beta::ln_beta;

/// Successes out of trials: converted users out of users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proportion {
    /// Users who converted.
    pub successes: u64,
    /// Users.
    pub trials: u64,
}

impl Proportion {
    /// `successes` of `trials` (`successes` is capped at `trials`).
    pub fn new(successes: u64, trials: u64) -> Self {
        Self {
            successes: successes.min(trials),
            trials,
        }
    }

    /// The observed rate, or `None` without trials.
    pub fn rate(&self) -> Option<f64> {
        (self.trials > 0).then(|| self.successes as f64 / self.trials as f64)
    }

    /// Trials that did not succeed.
    pub fn failures(&self) -> u64 {
        self.trials - self.successes
    }
}

/// A z statistic with its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZTest {
    /// (treatment rate − control rate) / pooled standard error.
    pub z: f64,
    /// P(|Z| ≥ |z|) for a standard normal Z.
    pub p_value: f64,
}

/// A two-sided confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// A chi-square statistic with its degrees of freedom and upper-tail p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChiSquareTest {
    /// Σ (observed − expected)² / expected.
    pub statistic: f64,
    /// Categories − 1.
    pub degrees_of_freedom: u32,
    /// P(X ≥ statistic) for X chi-square distributed with those degrees of freedom.
    pub p_value: f64,
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal is valid")
}

/// The pooled two-proportion z-test of `treatment` against `control`, two-sided.
///
/// `None` when a group has no trials, or when no (or every) trial in both groups succeeded: the
/// pooled variance is then zero and the statistic undefined.
pub fn two_proportion_z_test(control: Proportion, treatment: Proportion) -> Option<ZTest> {
    let (p_c, p_t) = (control.rate()?, treatment.rate()?);
    let (n_c, n_t) = (control.trials as f64, treatment.trials as f64);
    let pooled = (control.successes + treatment.successes) as f64 / (n_c + n_t);
    let variance = pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t);
    if variance <= 0.0 {
        return None;
    }
    let z = (p_t - p_c) / variance.sqrt();
    Some(ZTest {
        z,
        p_value: (2.0 * standard_normal().sf(z.abs())).min(1.0),
    })
}

/// The two-sided quantile for a confidence `level` in (0, 1): Φ⁻¹(1 − (1 − level) / 2).
pub fn critical_value(level: f64) -> f64 {
    standard_normal().inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

/// The Wald (normal-approximation, unpooled) interval for treatment rate − control rate at a
/// confidence `level` in (0, 1). `None` when a group has no trials.
pub fn difference_interval(control: Proportion, treatment: Proportion, level: f64) -> Option<Interval> {
    let (p_c, p_t) = (control.rate()?, treatment.rate()?);
    let se = (p_c * (1.0 - p_c) / control.trials as f64 + p_t * (1.0 - p_t) / treatment.trials as f64).sqrt();
    let difference = p_t - p_c;
    let half_width = critical_value(level) * se;
    Some(Interval {
        lower: difference - half_width,
        upper: difference + half_width,
    })
}

/// The chi-square goodness-of-fit test of `observed` counts against shares proportional to
/// `weights` (same length, positive weights): a sample ratio mismatch check.
///
/// `None` with fewer than two categories or no observations.
pub fn sample_ratio_test(observed: &[u64], weights: &[f64]) -> Option<ChiSquareTest> {
    if observed.len() < 2 || observed.len() != weights.len() {
        return None;
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return None;
    }
    let weight_sum: f64 = weights.iter().sum();
    let statistic = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / weight_sum;
            (o as f64 - expected).powi(2) / expected
        })
        .sum::<f64>();
    let degrees_of_freedom = u32::try_from(observed.len() - 1).unwrap_or(u32::MAX);
    let distribution = ChiSquared::new(f64::from(degrees_of_freedom)).expect("at least one degree of freedom");
    Some(ChiSquareTest {
        statistic,
        degrees_of_freedom,
        p_value: distribution.sf(statistic),
    })
}

/// Above this many successes in both groups the chance to beat control uses the normal
/// approximation of the two Beta posteriors (the exact sum has one term per success).
pub const EXACT_CHANCE_LIMIT: u64 = 100_000;

/// The Bayesian probability that `treatment`'s true rate exceeds `control`'s, with independent
/// uniform (Beta(1, 1)) priors: P(X_t > X_c) for X ~ Beta(1 + successes, 1 + failures).
///
/// Exact (a finite sum of Beta functions, Evan Miller's formula, over the group with fewer
/// successes) up to [`EXACT_CHANCE_LIMIT`] successes; beyond, the normal approximation of the
/// posteriors. `None` when a group has no trials.
pub fn chance_to_beat(control: Proportion, treatment: Proportion) -> Option<f64> {
    if control.trials == 0 || treatment.trials == 0 {
        return None;
    }
    let posterior = |p: Proportion| (1.0 + p.successes as f64, 1.0 + p.failures() as f64);
    let (c, t) = (posterior(control), posterior(treatment));
    if control.successes.min(treatment.successes) > EXACT_CHANCE_LIMIT {
        let moments = |(a, b): (f64, f64)| (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
        let ((m_c, v_c), (m_t, v_t)) = (moments(c), moments(t));
        return Some(standard_normal().cdf((m_t - m_c) / (v_c + v_t).sqrt()));
    }
    // P(X_b > X_a) = Σ_{i=0}^{α_b−1} B(α_a+i, β_a+β_b) / ((β_b+i) B(1+i, β_b) B(α_a, β_a))
    let exceeds = |(a_a, b_a): (f64, f64), (a_b, b_b): (f64, f64)| -> f64 {
        let base = ln_beta(a_a, b_a);
        (0..a_b as u64)
            .map(|i| {
                let i = i as f64;
                (ln_beta(a_a + i, b_a + b_b) - (b_b + i).ln() - ln_beta(1.0 + i, b_b) - base).exp()
            })
            .sum()
    };
    let chance = if treatment.successes <= control.successes {
        exceeds(c, t)
    } else {
        1.0 - exceeds(t, c)
    };
    Some(chance.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_z_test() {
        // 200/1000 vs 250/1000: pooled 0.225, z = 0.05 / sqrt(0.225 · 0.775 · 0.002) ≈ 2.6774.
        let test = two_proportion_z_test(Proportion::new(200, 1000), Proportion::new(250, 1000)).unwrap();
        assert!((test.z - 2.677_398).abs() < 1e-6, "{test:?}");
        assert!((test.p_value - 0.007_419_6).abs() < 1e-7, "{test:?}");
        assert!((critical_value(0.95) - 1.959_964).abs() < 1e-6);
    }

    #[test]
    fn undefined_cases_are_none() {
        let empty = Proportion::new(0, 0);
        let none = Proportion::new(0, 50);
        let all = Proportion::new(50, 50);
        assert!(two_proportion_z_test(empty, none).is_none());
        assert!(two_proportion_z_test(none, none).is_none());
        assert!(two_proportion_z_test(all, all).is_none());
        assert!(difference_interval(none, empty, 0.95).is_none());
        assert!(chance_to_beat(empty, none).is_none());
        assert!(sample_ratio_test(&[0, 0], &[1.0, 1.0]).is_none());
        assert!(sample_ratio_test(&[5], &[1.0]).is_none());
    }

    #[test]
    fn chance_to_beat_is_symmetric_and_exact_for_equal_groups() {
        let a = Proportion::new(30, 100);
        let b = Proportion::new(42, 110);
        let ab = chance_to_beat(a, b).unwrap();
        let ba = chance_to_beat(b, a).unwrap();
        assert!((ab + ba - 1.0).abs() < 1e-12, "{ab} {ba}");
        assert!((chance_to_beat(a, a).unwrap() - 0.5).abs() < 1e-12);
    }
}
