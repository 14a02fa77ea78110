//! [`ExperimentResults`]: per-variant counts and each variant's comparison with the control.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats::{self, ChiSquareTest, Interval, Proportion};
use crate::error::{Error, Result};
use crate::model::{EventType, Experiment, ExperimentId, ExperimentStatus, VariantKey};
use crate::query::VariantCounts;

/// A sample ratio mismatch is flagged below this p-value (the usual threshold: a real mismatch,
/// not chance, at any sample size worth analysing).
pub const SRM_THRESHOLD: f64 = 0.001;

/// What [`ExperimentResults::compute`] reports in `method`.
pub const METHOD: &str = "Two-sided two-proportion z-test with pooled standard error; Wald (normal \
    approximation, unpooled) confidence interval for the absolute difference in conversion rate; \
    chi-square goodness-of-fit test of users per variant against the weights for sample ratio \
    mismatch (flagged at p < 0.001); Bayesian chance to beat control with uniform Beta(1, 1) priors. \
    Conversion rate = converted users / users, per variant, over the whole experiment.";

/// How to analyse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultsOptions {
    /// Confidence level of the intervals and of the significance call, in (0, 1). Default 0.95.
    pub confidence_level: f64,
}

impl Default for ResultsOptions {
    fn default() -> Self {
        Self { confidence_level: 0.95 }
    }
}

impl ResultsOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `confidenceLevel` outside 0.5–0.9999.
    pub fn validate(&self) -> Result<()> {
        if !(0.5..=0.9999).contains(&self.confidence_level) {
            return Err(Error::invalid("confidenceLevel", "must be between 0.5 and 0.9999"));
        }
        Ok(())
    }
}

/// One variant's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VariantResult {
    /// The variant.
    pub key: VariantKey,
    /// Its weight in the experiment's definition.
    pub weight: f64,
    /// Events carrying the experiment and this variant (anonymous ones included).
    pub events: u64,
    /// Distinct identified users.
    pub users: u64,
    /// Distinct users with an event of the conversion type.
    pub conversions: u64,
    /// `conversions / users`; `null` without users.
    pub conversion_rate: Option<f64>,
}

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Conclusion {
    /// The difference is significant at the confidence level.
    Significant,
    /// No significant difference at the confidence level.
    NotSignificant,
    /// Too few conversions or non-conversions for the normal approximation: no conclusion.
    InsufficientSample,
}

/// A variant against the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The variant compared.
    pub variant: VariantKey,
    /// The control it is compared with.
    pub control: VariantKey,
    /// Variant rate − control rate; `null` when either has no users.
    pub absolute_uplift: Option<f64>,
    /// Absolute uplift / control rate; `null` when the control rate is 0 or undefined.
    pub relative_uplift: Option<f64>,
    /// Confidence interval of the absolute uplift at the confidence level.
    pub confidence_interval: Option<Interval>,
    /// The z statistic; `null` when undefined (an empty group, or no variance at all).
    pub z_score: Option<f64>,
    /// Two-sided p-value of the z-test.
    pub p_value: Option<f64>,
    /// Probability the variant's true rate exceeds the control's.
    pub chance_to_beat_control: Option<f64>,
    /// Whether both groups have at least [`MIN_OUTCOMES`] conversions and non-conversions.
    pub sufficient_sample: bool,
    /// The call at the confidence level.
    pub conclusion: Conclusion,
}

/// The fewest conversions and non-conversions each group needs before a comparison concludes
/// (the usual condition for the normal approximation to a binomial proportion).
pub const MIN_OUTCOMES: u64 = 5;

/// The sample ratio check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SampleRatioCheck {
    /// The chi-square test of users per variant against the weights.
    #[serde(flatten)]
    pub test: ChiSquareTest,
    /// `p_value < threshold`: assignment or tracking is broken, and the comparisons are not to
    /// be trusted.
    pub flagged: bool,
    /// [`SRM_THRESHOLD`].
    pub threshold: f64,
}

/// An experiment's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentResults {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// Its status now.
    pub status: ExperimentStatus,
    /// The event type counted as a conversion.
    pub conversion_event_type: EventType,
    /// The control: the first variant of the definition.
    pub control: VariantKey,
    /// Confidence level used.
    pub confidence_level: f64,
    /// The tests and definitions used ([`METHOD`]).
    pub method: String,
    /// Every variant of the definition, in its order.
    pub variants: Vec<VariantResult>,
    /// Every other variant against the control.
    pub comparisons: Vec<Comparison>,
    /// `null` before any user is counted.
    pub sample_ratio_mismatch: Option<SampleRatioCheck>,
    /// Variant keys seen in events but not in the definition (their events are not analysed).
    pub unexpected_variants: Vec<VariantKey>,
}

impl ExperimentResults {
    /// Analyses `counts` (per variant, over the whole experiment) of `experiment`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for invalid options.
    pub fn compute(
        experiment: &Experiment,
        counts: &BTreeMap<VariantKey, VariantCounts>,
        options: ResultsOptions,
    ) -> Result<Self> {
        options.validate()?;
        let counted = |key: &VariantKey| counts.get(key).copied().unwrap_or_default();
        let variants: Vec<VariantResult> = experiment
            .variants
            .iter()
            .map(|spec| {
                let c = counted(&spec.key);
                VariantResult {
                    key: spec.key.clone(),
                    weight: spec.weight,
                    events: c.events,
                    users: c.users,
                    conversions: c.conversions,
                    conversion_rate: Proportion::new(c.conversions, c.users).rate(),
                }
            })
            .collect();
        let proportion = |v: &VariantResult| Proportion::new(v.conversions, v.users);
        let control = &variants[0];
        let comparisons = variants[1..]
            .iter()
            .map(|v| compare(proportion(control), proportion(v), &control.key, &v.key, options))
            .collect();
        let observed: Vec<u64> = variants.iter().map(|v| v.users).collect();
        let weights: Vec<f64> = variants.iter().map(|v| v.weight).collect();
        let sample_ratio_mismatch = stats::sample_ratio_test(&observed, &weights).map(|test| SampleRatioCheck {
            flagged: test.p_value < SRM_THRESHOLD,
            test,
            threshold: SRM_THRESHOLD,
        });
        Ok(Self {
            experiment_id: experiment.id.clone(),
            status: experiment.status,
            conversion_event_type: experiment.conversion_event_type.clone(),
            control: control.key.clone(),
            confidence_level: options.confidence_level,
            method: METHOD.to_owned(),
            comparisons,
            sample_ratio_mismatch,
            unexpected_variants: counts
                .keys()
                .filter(|k| !experiment.variants.iter().any(|v| v.key == **k))
                .cloned()
                .collect(),
            variants,
        })
    }
}

fn compare(
    control: Proportion,
    variant: Proportion,
    control_key: &VariantKey,
    variant_key: &VariantKey,
    options: ResultsOptions,
) -> Comparison {
    let absolute_uplift = control.rate().zip(variant.rate()).map(|(c, v)| v - c);
    let relative_uplift = control
        .rate()
        .filter(|c| *c > 0.0)
        .zip(absolute_uplift)
        .map(|(c, d)| d / c);
    let test = stats::two_proportion_z_test(control, variant);
    let sufficient_sample = [control, variant]
        .iter()
        .all(|p| p.successes >= MIN_OUTCOMES && p.failures() >= MIN_OUTCOMES);
    let conclusion = match test {
        Some(t) if sufficient_sample && t.p_value < 1.0 - options.confidence_level => Conclusion::Significant,
        Some(_) if sufficient_sample => Conclusion::NotSignificant,
        _ => Conclusion::InsufficientSample,
    };
    Comparison {
        variant: variant_key.clone(),
        control: control_key.clone(),
        absolute_uplift,
        relative_uplift,
        confidence_interval: stats::difference_interval(control, variant, options.confidence_level),
        z_score: test.map(|t| t.z),
        p_value: test.map(|t| t.p_value),
        chance_to_beat_control: stats::chance_to_beat(control, variant),
        sufficient_sample,
        conclusion,
    }
}
