//! A/B experiments: deterministic assignment of users to variants ([`assign`]), and results
//! that say whether a difference is real ([`ExperimentResults`]).
//!
//! ```
//! use std::collections::BTreeMap;
//! use analytics_core::experiments::{self, Conclusion, ExperimentResults, ResultsOptions};
//! use analytics_core::model::{Experiment, ExperimentInput, TenantId, UserId, VariantKey};
//! use analytics_core::query::VariantCounts;
//!
//! let input: ExperimentInput = serde_json::from_value(serde_json::json!({
//!     "id": "exp_button", "name": "Button colour", "status": "running",
//!     "variants": [{"key": "control", "weight": 1}, {"key": "green", "weight": 1}],
//! })).unwrap();
//! let experiment = Experiment::from_input(input, &TenantId::parse("acme")?, chrono::Utc::now())?;
//!
//! // Every instance, every restart: the same user gets the same variant.
//! let user = UserId::parse("user-42")?;
//! let variant = experiments::assign(&experiment, &user);
//! assert_eq!(variant, experiments::assign(&experiment, &user));
//!
//! let counts = BTreeMap::from([
//!     (VariantKey::parse("control")?, VariantCounts { events: 9_000, users: 2_000, conversions: 200 }),
//!     (VariantKey::parse("green")?, VariantCounts { events: 9_100, users: 2_010, conversions: 260 }),
//! ]);
//! let results = ExperimentResults::compute(&experiment, &counts, ResultsOptions::default())?;
//! let green = &results.comparisons[0];
//! assert_eq!(green.conclusion, Conclusion::Significant);
//! assert!(green.p_value.unwrap() < 0.05);
//! assert!(!results.sample_ratio_mismatch.unwrap().flagged);
//! # Ok::<(), analytics_core::Error>(())
//! ```

mod assign;
mod results;
pub mod stats;

pub use assign::{assign, bucket};
pub use results::{
    Comparison, Conclusion, ExperimentResults, METHOD, MIN_OUTCOMES, ResultsOptions, SRM_THRESHOLD, SampleRatioCheck,
    VariantResult,
};
