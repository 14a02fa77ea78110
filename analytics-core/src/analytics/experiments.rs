//! The facade's experiment operations: assignment, exposures and results.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Analytics;
use crate::error::{Error, Result};
use crate::experiments::{self, ExperimentResults, ResultsOptions};
use crate::model::tenant::hex;
use crate::model::{Event, EventId, EventType, ExperimentId, ExperimentStatus, TenantId, UserId, VariantKey};

/// Which variant a user sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// The user.
    pub user_id: UserId,
    /// The variant ([`experiments::assign`]).
    pub variant: VariantKey,
    /// Whether the experiment is running. A user of an experiment that is not running still has
    /// a variant (so it is stable across pauses), but should be shown the control.
    pub running: bool,
}

impl Analytics {
    /// The variant `user` sees in one of `tenant`'s experiments.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the tenant has no such experiment; store errors.
    pub async fn assign(&self, tenant: &TenantId, experiment: &ExperimentId, user: &UserId) -> Result<Assignment> {
        let definition = self.get_experiment(tenant, experiment).await?;
        Ok(Assignment {
            experiment_id: experiment.clone(),
            user_id: user.clone(),
            variant: experiments::assign(&definition, user).clone(),
            running: definition.status == ExperimentStatus::Running,
        })
    }

    /// Assigns `user` and records the exposure as an event of type `EXPOSURE` carrying the
    /// experiment and the variant, stamped now.
    ///
    /// # Behavior
    /// The event's id is derived from the experiment and the user, so only a user's first
    /// exposure is stored; later calls report it as a duplicate and count nothing. The event
    /// counts like any other (in totals, and as the variant's users).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the tenant has no such experiment; [`Error::Conflict`] if it is not
    /// running; store errors.
    pub async fn record_exposure(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        user: &UserId,
    ) -> Result<Assignment> {
        let assignment = self.assign(tenant, experiment, user).await?;
        if !assignment.running {
            return Err(Error::Conflict(format!(
                "experiment {:?} is not running; exposures are recorded only while it runs",
                experiment.as_str()
            )));
        }
        let mut event = Event::new(
            tenant.clone(),
            exposure_id(experiment, user),
            EventType::exposure(),
            self.clock().now(),
        );
        event.user_id = Some(user.clone());
        event.experiment_id = Some(experiment.clone());
        event.variant = Some(assignment.variant.clone());
        self.ingest_events(tenant, vec![event]).await?;
        Ok(assignment)
    }

    /// The results of one of `tenant`'s experiments over all its events: per-variant users,
    /// conversions and rates, and each variant against the control (uplift, confidence
    /// interval, z-test p-value, chance to beat control), with a sample ratio mismatch check.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the tenant has no such experiment; [`Error::InvalidInput`] on
    /// `confidenceLevel`; store errors.
    pub async fn experiment_results(
        &self,
        tenant: &TenantId,
        experiment: &ExperimentId,
        options: ResultsOptions,
    ) -> Result<ExperimentResults> {
        options.validate()?;
        let definition = self.get_experiment(tenant, experiment).await?;
        let counts = self
            .store()
            .experiment_counts(tenant, experiment, &definition.conversion_event_type)
            .await?;
        ExperimentResults::compute(&definition, &counts, options)
    }
}

/// The id of `user`'s exposure event in `experiment`: the same on every call and instance.
fn exposure_id(experiment: &ExperimentId, user: &UserId) -> EventId {
    let mut hasher = Sha256::new();
    hasher.update(experiment.as_str().as_bytes());
    hasher.update([0x1f]);
    hasher.update(user.as_str().as_bytes());
    EventId::parse(format!("exposure:{}", hex(&hasher.finalize()[..16]))).expect("hex is a valid id")
}
