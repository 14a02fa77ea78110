//! A/B experiments: their definition, as stores keep it, and the client's create/update forms.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::rfc3339_micros;
use super::text::{EventType, ExperimentId, TenantId, VariantKey};
use crate::error::{Error, Result};

/// The longest accepted experiment name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The most variants an experiment may have.
pub const MAX_VARIANTS: usize = 20;
/// The smallest and largest variant weight. Weights are relative shares; bounding them keeps
/// every variant's expected count, and so the sample-ratio test, finite (a weight of 1e-271
/// beside 1e308 made its statistic infinite).
pub const WEIGHT_RANGE: std::ops::RangeInclusive<f64> = 1e-6..=1e6;

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExperimentStatus {
    /// Being set up; not assigning users yet.
    Draft,
    /// Live.
    Running,
    /// Temporarily stopped.
    Paused,
    /// Finished.
    Completed,
}

/// One arm of an experiment. The first variant is the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantSpec {
    /// The key events carry in `variant`.
    pub key: VariantKey,
    /// Relative share of users, from 0.000001 to 1,000,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 0.000001, maximum = 1_000_000.0))]
    pub weight: f64,
}

/// An experiment, as stores keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// The id events carry in `experimentId`.
    pub id: ExperimentId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Human name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Life-cycle state.
    pub status: ExperimentStatus,
    /// At least two, unique keys; the first is the control.
    pub variants: Vec<VariantSpec>,
    /// The event type that counts as a conversion (default `CONVERSION`).
    pub conversion_event_type: EventType,
    /// Planned start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Planned end.
    pub ends_at: Option<DateTime<Utc>>,
    /// When it was created.
    #[serde(with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    #[serde(with = "rfc3339_micros")]
    pub updated_at: DateTime<Utc>,
}

/// A client's request to create an experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentInput {
    /// The id events will carry; generated when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ExperimentId>))]
    pub id: Option<String>,
    /// Required human name.
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, nullable = false, min_length = 1, max_length = 200)
    )]
    pub name: Option<String>,
    /// Optional description.
    pub description: Option<String>,
    /// Defaults to `draft`.
    pub status: Option<ExperimentStatus>,
    /// Required: at least two variants with unique keys and positive weights.
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, nullable = false, min_items = 2, max_items = 20)
    )]
    pub variants: Option<Vec<VariantSpec>>,
    /// Defaults to `CONVERSION`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EventType>))]
    pub conversion_event_type: Option<String>,
    /// Planned start.
    pub starts_at: Option<DateTime<Utc>>,
    /// Planned end.
    pub ends_at: Option<DateTime<Utc>>,
}

/// A client's partial update of an experiment (`PATCH`): absent fields are left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<ExperimentStatus>,
    /// New variants (2–20, unique keys).
    #[cfg_attr(feature = "openapi", schema(min_items = 2, max_items = 20))]
    pub variants: Option<Vec<VariantSpec>>,
    /// New conversion event type.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EventType>))]
    pub conversion_event_type: Option<String>,
    /// New planned start.
    pub starts_at: Option<DateTime<Utc>>,
    /// New planned end.
    pub ends_at: Option<DateTime<Utc>>,
}

impl Experiment {
    /// Validates a creation request for `tenant` at `now`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first offending field.
    pub fn from_input(input: ExperimentInput, tenant: &TenantId, now: DateTime<Utc>) -> Result<Self> {
        let id = match input.id {
            Some(id) => ExperimentId::parse(id)?,
            None => ExperimentId::parse(format!("exp_{}", uuid::Uuid::new_v4().simple()))?,
        };
        let experiment = Self {
            id,
            tenant_id: tenant.clone(),
            name: input.name.ok_or_else(|| Error::invalid("name", "is required"))?,
            description: input.description,
            status: input.status.unwrap_or(ExperimentStatus::Draft),
            variants: input
                .variants
                .ok_or_else(|| Error::invalid("variants", "is required"))?,
            conversion_event_type: input
                .conversion_event_type
                .map(|t| EventType::parse(t).map_err(|e| rename(e, "conversionEventType")))
                .transpose()?
                .unwrap_or_else(EventType::conversion),
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            created_at: now,
            updated_at: now,
        };
        experiment.validate()?;
        Ok(experiment)
    }

    /// Applies a partial update at `now`, validating the result.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first offending field; `self` is unchanged then.
    pub fn apply(&self, patch: ExperimentPatch, now: DateTime<Utc>) -> Result<Self> {
        let mut next = self.clone();
        if let Some(name) = patch.name {
            next.name = name;
        }
        if patch.description.is_some() {
            next.description = patch.description;
        }
        if let Some(status) = patch.status {
            next.status = status;
        }
        if let Some(variants) = patch.variants {
            next.variants = variants;
        }
        if let Some(t) = patch.conversion_event_type {
            next.conversion_event_type = EventType::parse(t).map_err(|e| rename(e, "conversionEventType"))?;
        }
        if patch.starts_at.is_some() {
            next.starts_at = patch.starts_at;
        }
        if patch.ends_at.is_some() {
            next.ends_at = patch.ends_at;
        }
        next.updated_at = now;
        next.validate()?;
        Ok(next)
    }

    /// Checks the invariants: a non-empty name, 2–20 variants with unique keys and weights in
    /// [`WEIGHT_RANGE`], an end after the start.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let name_chars = self.name.chars().count();
        if self.name.trim().is_empty() || name_chars > MAX_NAME_CHARS {
            return Err(Error::invalid(
                "name",
                format!("must be 1–{MAX_NAME_CHARS} characters and not blank"),
            ));
        }
        if let Some(d) = &self.description
            && d.chars().count() > MAX_DESCRIPTION_CHARS
        {
            return Err(Error::invalid(
                "description",
                format!("is longer than {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if self.variants.len() < 2 || self.variants.len() > MAX_VARIANTS {
            return Err(Error::invalid(
                "variants",
                format!("needs 2–{MAX_VARIANTS} variants, got {}", self.variants.len()),
            ));
        }
        let mut seen = HashSet::new();
        for (i, variant) in self.variants.iter().enumerate() {
            if !seen.insert(variant.key.as_str()) {
                return Err(Error::invalid(
                    format!("variants[{i}].key"),
                    format!("{:?} is used twice", variant.key.as_str()),
                ));
            }
            if !WEIGHT_RANGE.contains(&variant.weight) {
                return Err(Error::invalid(
                    format!("variants[{i}].weight"),
                    format!(
                        "must be from {} to {} (a relative share)",
                        WEIGHT_RANGE.start(),
                        WEIGHT_RANGE.end()
                    ),
                ));
            }
        }
        if let (Some(start), Some(end)) = (self.starts_at, self.ends_at)
            && end <= start
        {
            return Err(Error::invalid("endsAt", "must be after startsAt"));
        }
        Ok(())
    }
}

fn rename(error: Error, field: &str) -> Error {
    match error {
        Error::InvalidInput { reason, .. } => Error::invalid(field, reason),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    fn create(value: serde_json::Value) -> Result<Experiment> {
        let input: ExperimentInput = serde_json::from_value(value).unwrap();
        Experiment::from_input(input, &TenantId::parse("t").unwrap(), now())
    }

    #[test]
    fn creates_with_defaults() {
        let e = create(json!({"id": "exp_1", "name": "Button colour",
            "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]}))
        .unwrap();
        assert_eq!(e.status, ExperimentStatus::Draft);
        assert_eq!(e.conversion_event_type.as_str(), "CONVERSION");
        assert_eq!(e.created_at, now());
    }

    #[test]
    fn rejects_invalid_definitions() {
        let cases = [
            (json!({"name": "x"}), "variants"),
            (json!({"variants": []}), "name"),
            (
                json!({"name": "x", "variants": [{"key": "A", "weight": 1}]}),
                "variants",
            ),
            (
                json!({"name": "x", "variants": [{"key": "A", "weight": 1}, {"key": "A", "weight": 1}]}),
                "variants[1].key",
            ),
            (
                json!({"name": "x", "variants": [{"key": "A", "weight": 0}, {"key": "B", "weight": 1}]}),
                "variants[0].weight",
            ),
            (
                json!({"name": "x", "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1.0e308}]}),
                "variants[1].weight",
            ),
            (
                json!({"name": "x", "variants": [{"key": "A", "weight": 1.0e-7}, {"key": "B", "weight": 1}]}),
                "variants[0].weight",
            ),
            (
                json!({"name": " ", "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]}),
                "name",
            ),
            (
                json!({"name": "x", "conversionEventType": "a b", "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]}),
                "conversionEventType",
            ),
            (
                json!({"name": "x", "startsAt": "2024-02-01T00:00:00Z", "endsAt": "2024-01-01T00:00:00Z", "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]}),
                "endsAt",
            ),
        ];
        for (value, field) in cases {
            let err = create(value.clone()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn patch_validates_the_result() {
        let e =
            create(json!({"name": "x", "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 1}]})).unwrap();
        let later = now() + chrono::TimeDelta::hours(1);
        let running = e
            .apply(
                ExperimentPatch {
                    status: Some(ExperimentStatus::Running),
                    ..Default::default()
                },
                later,
            )
            .unwrap();
        assert_eq!(running.status, ExperimentStatus::Running);
        assert_eq!(running.updated_at, later);
        assert_eq!(running.name, "x");
        let bad = e.apply(
            ExperimentPatch {
                variants: Some(vec![]),
                ..Default::default()
            },
            later,
        );
        assert!(bad.is_err());
    }
}
