//! `/experiments`: create, list, read, update, assign users, record exposures, and results.

use analytics_core::Assignment;
use analytics_core::experiments::{ExperimentResults, ResultsOptions};
use analytics_core::model::{Experiment, ExperimentId, ExperimentInput, ExperimentPatch, UserId};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::params::{NoParams, Params};
use crate::state::AppState;

fn experiment_id(raw: &str) -> Result<ExperimentId, ApiError> {
    ExperimentId::parse(raw).map_err(|e| ApiError::from(e).with_field("id"))
}

/// Creates an experiment (seed 004's body).
#[utoipa::path(post, path = "/api/experiments", tag = "experiments", request_body = ExperimentInput,
    responses((status = 201, body = Experiment), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
    JsonBody(input): JsonBody<ExperimentInput>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    let experiment = state
        .analytics()
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
    State(state): State<AppState>,
    caller: Caller,
    _: NoParams,
) -> Result<Json<ExperimentList>, ApiError> {
    let experiments = state.analytics().list_experiments(&caller.tenant).await?;
    Ok(Json(ExperimentList { experiments }))
}

/// One experiment.
#[utoipa::path(get, path = "/api/experiments/{id}", tag = "experiments", params(("id" = String, Path)),
    responses((status = 200, body = Experiment), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoParams,
) -> Result<Json<Experiment>, ApiError> {
    let experiment = state
        .analytics()
        .get_experiment(&caller.tenant, &experiment_id(&id)?)
        .await?;
    Ok(Json(experiment))
}

/// Updates an experiment's status, name, description or conversion event type.
#[utoipa::path(patch, path = "/api/experiments/{id}", tag = "experiments", params(("id" = String, Path)),
    request_body = ExperimentPatch,
    responses((status = 200, body = Experiment), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoParams,
    JsonBody(patch): JsonBody<ExperimentPatch>,
) -> Result<Json<Experiment>, ApiError> {
    let experiment = state
        .analytics()
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
    user_id: String,
}

/// The variant a user sees (deterministic: the same user always gets the same variant).
#[utoipa::path(post, path = "/api/experiments/{id}/assignments", tag = "experiments", params(("id" = String, Path)),
    request_body = UserBody, responses((status = 200, body = Assignment), (status = 404, body = ErrorBody)))]
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoParams,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<Assignment>, ApiError> {
    let user = UserId::parse(&body.user_id).map_err(ApiError::unprocessable)?;
    let assignment = state
        .analytics()
        .assign(&caller.tenant, &experiment_id(&id)?, &user)
        .await?;
    Ok(Json(assignment))
}

/// Records that a user saw their variant (only the first exposure counts). 409 unless running.
#[utoipa::path(post, path = "/api/experiments/{id}/exposures", tag = "experiments", params(("id" = String, Path)),
    request_body = UserBody,
    responses((status = 200, body = Assignment), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn expose(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: NoParams,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<Assignment>, ApiError> {
    let user = UserId::parse(&body.user_id).map_err(ApiError::unprocessable)?;
    let assignment = state
        .analytics()
        .record_exposure(&caller.tenant, &experiment_id(&id)?, &user)
        .await?;
    Ok(Json(assignment))
}

/// Options of the results.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documentation only.
pub(crate) struct ResultsParams {
    /// Confidence level of intervals and significance, 0.5–0.9999 (default 0.95).
    confidence_level: Option<f64>,
}

/// Per-variant conversion, uplift against the control with confidence intervals and p-values,
/// chance to beat control, and a sample-ratio-mismatch check.
#[utoipa::path(get, path = "/api/experiments/{id}/results", tag = "experiments",
    params(("id" = String, Path), ResultsParams),
    responses((status = 200, body = ExperimentResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn results(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ExperimentResults>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["confidenceLevel"])?;
    let mut options = ResultsOptions::default();
    if let Some(raw) = params.get("confidenceLevel") {
        options.confidence_level = raw
            .parse()
            .map_err(|_| ApiError::bad_request("confidenceLevel", format!("{raw:?} is not a number")))?;
    }
    let results = state
        .analytics()
        .experiment_results(&caller.tenant, &experiment_id(&id)?, options)
        .await?;
    Ok(Json(results))
}
