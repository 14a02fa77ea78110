//! `/experiments`: create, list, read, update, assign users, record exposures, and results.

use analytics_core::experiments::{ExperimentResults, ResultsOptions};
use analytics_core::model::{Experiment, ExperimentId, ExperimentInput, ExperimentPatch, UserId};
use analytics_core::{Analytics, Assignment};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, Params, ResultsParams};

fn experiment_id(raw: &str) -> Result<ExperimentId, ApiError> {
    ExperimentId::parse(raw).map_err(|e| ApiError::from(e).with_field("id"))
}

/// Creates an experiment.
#[utoipa::path(post, path = "/api/experiments", tag = "experiments", request_body = ExperimentInput,
    responses((status = 201, body = Experiment), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
    JsonBody(input): JsonBody<ExperimentInput>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    let experiment = analytics
        .create_experiment(&caller.tenant, input)
        .await
        .map_err(ApiError::unprocessable)?;
    Ok((StatusCode::CREATED, Json(experiment)))
}

/// The tenant's experiments.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExperimentList {
    /// All of them.
    experiments: Vec<Experiment>,
}

/// Lists the tenant's experiments.
#[utoipa::path(get, path = "/api/experiments", tag = "experiments", responses((status = 200, body = ExperimentList)))]
pub(crate) async fn list(
    State(analytics): State<Analytics>,
    caller: Caller,
    _: Params<NoParams>,
) -> Result<Json<ExperimentList>, ApiError> {
    let experiments = analytics.list_experiments(&caller.tenant).await?;
    Ok(Json(ExperimentList { experiments }))
}

/// One experiment.
#[utoipa::path(get, path = "/api/experiments/{id}", tag = "experiments", params(("id" = analytics_core::model::ExperimentId, Path)),
    responses((status = 200, body = Experiment), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(analytics): State<Analytics>,
    caller: Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
) -> Result<Json<Experiment>, ApiError> {
    let experiment = analytics.get_experiment(&caller.tenant, &experiment_id(&id)?).await?;
    Ok(Json(experiment))
}

/// Updates an experiment's status, name, description or conversion event type.
#[utoipa::path(patch, path = "/api/experiments/{id}", tag = "experiments", params(("id" = analytics_core::model::ExperimentId, Path)),
    request_body = ExperimentPatch,
    responses((status = 200, body = Experiment), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(analytics): State<Analytics>,
    caller: Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
    JsonBody(patch): JsonBody<ExperimentPatch>,
) -> Result<Json<Experiment>, ApiError> {
    let experiment = analytics
        .update_experiment(&caller.tenant, &experiment_id(&id)?, patch)
        .await
        .map_err(ApiError::unprocessable)?;
    Ok(Json(experiment))
}

/// A user to assign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserBody {
    /// The user.
    #[schema(value_type = analytics_core::model::UserId)]
    user_id: String,
}

/// The variant a user sees (deterministic: the same user always gets the same variant).
#[utoipa::path(post, path = "/api/experiments/{id}/assignments", tag = "experiments", params(("id" = analytics_core::model::ExperimentId, Path)),
    request_body = UserBody, responses((status = 200, body = Assignment), (status = 404, body = ErrorBody)))]
pub(crate) async fn assign(
    State(analytics): State<Analytics>,
    caller: Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<Assignment>, ApiError> {
    let user = UserId::parse(&body.user_id).map_err(ApiError::unprocessable)?;
    let assignment = analytics.assign(&caller.tenant, &experiment_id(&id)?, &user).await?;
    Ok(Json(assignment))
}

/// Records that a user saw their variant (only the first exposure counts). 409 unless running.
#[utoipa::path(post, path = "/api/experiments/{id}/exposures", tag = "experiments", params(("id" = analytics_core::model::ExperimentId, Path)),
    request_body = UserBody,
    responses((status = 200, body = Assignment), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn expose(
    State(analytics): State<Analytics>,
    caller: Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<Assignment>, ApiError> {
    let user = UserId::parse(&body.user_id).map_err(ApiError::unprocessable)?;
    let assignment = analytics
        .record_exposure(&caller.tenant, &experiment_id(&id)?, &user)
        .await?;
    Ok(Json(assignment))
}

/// Per-variant conversion, uplift against the control with confidence intervals and p-values,
/// chance to beat control, and a sample-ratio-mismatch check.
#[utoipa::path(get, path = "/api/experiments/{id}/results", tag = "experiments",
    params(("id" = analytics_core::model::ExperimentId, Path), ResultsParams),
    responses((status = 200, body = ExperimentResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn results(
    State(analytics): State<Analytics>,
    caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<ResultsParams>,
) -> Result<Json<ExperimentResults>, ApiError> {
    let mut options = ResultsOptions::default();
    if let Some(level) = params.confidence_level {
        options.confidence_level = level;
    }
    let results = analytics
        .experiment_results(&caller.tenant, &experiment_id(&id)?, options)
        .await?;
    Ok(Json(results))
}
