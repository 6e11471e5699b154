//! A tenant's sending: pause and resume it, and see or discard what it holds while paused.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ReasonBody, event_type_param, required_tenant};
use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::{DiscardView, HeldView, PauseView, ResumeView};

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(pause_tenant))
        .routes(routes!(resume_tenant))
        .routes(routes!(held_events))
        .routes(routes!(discard_held))
}

/// Pause a tenant's sending for every worker until it is resumed (operator, admin; audited
/// with the reason): its events are held in the database, nothing is claimed or sent, other
/// tenants go on; after the resume the workers send them. `{"paused": false}` when it was
/// paused already.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/pause", tag = "stats",
    request_body = ReasonBody,
    params(("tenant" = String, Path, description = "The tenant")),
    responses((status = 200, body = PauseView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn pause_tenant(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(tenant): Path<String>,
    Json(body): Json<ReasonBody>,
) -> Result<Json<PauseView>, ApiError> {
    let tenant = required_tenant(&tenant)?;
    let paused = state.service.pause_tenant(&who, &tenant, &body.reason).await?;
    Ok(Json(PauseView { paused }))
}

/// Lift a tenant's pause, an operator's or the reputation guard's (operator, admin; audited
/// with the reason). `{"resumed": false}` when it was not paused.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/resume", tag = "stats",
    request_body = ReasonBody,
    params(("tenant" = String, Path, description = "The tenant")),
    responses((status = 200, body = ResumeView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn resume_tenant(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(tenant): Path<String>,
    Json(body): Json<ReasonBody>,
) -> Result<Json<ResumeView>, ApiError> {
    let tenant = required_tenant(&tenant)?;
    let resumed = state.service.resume_tenant(&who, &tenant, &body.reason).await?;
    Ok(Json(ResumeView { resumed }))
}

/// `?limit=` (1–500, default 50)
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HeldParams {
    /// How many of the oldest held events to list.
    pub limit: Option<u32>,
}

/// What a tenant has held until its resume (any role in scope): counts by event type and the
/// oldest events, without their bodies (they carry the recipients' data).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/held", tag = "stats",
    params(("tenant" = String, Path, description = "The tenant"), HeldParams),
    responses((status = 200, body = HeldView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn held_events(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(tenant): Path<String>,
    Query(params): Query<HeldParams>,
) -> Result<Json<HeldView>, ApiError> {
    let tenant = required_tenant(&tenant)?;
    let summary = state.service.held_events(&who, &tenant, params.limit.unwrap_or(50)).await?;
    Ok(Json(HeldView::from(&summary)))
}

/// Discard a paused tenant's held events instead of sending them after the resume (operator,
/// admin; audited with the reason and the counts): up to 10,000 per call, oldest first, each
/// decided `rejected` with the reason, so that it is listed among the deliveries and a later
/// copy of it is a duplicate, never sent. `remaining` > 0: call again. 400 when the tenant is
/// not paused (its held events are being sent).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/held/discard", tag = "stats",
    request_body = DiscardBody,
    params(("tenant" = String, Path, description = "The tenant")),
    responses((status = 200, body = DiscardView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn discard_held(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(tenant): Path<String>,
    Json(body): Json<DiscardBody>,
) -> Result<Json<DiscardView>, ApiError> {
    let tenant = required_tenant(&tenant)?;
    let event_type = event_type_param(body.event_type.as_deref())?;
    let done = state.service.discard_held(&who, &tenant, event_type.as_ref(), &body.reason).await?;
    Ok(Json(DiscardView::from(done)))
}

/// Why to discard a paused tenant's held events, and which.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DiscardBody {
    /// Required; recorded in the audit log and as each event's `rejected` reason.
    pub reason: String,
    /// Only the held events of this event type (default: all of the tenant's).
    pub event_type: Option<String>,
}
