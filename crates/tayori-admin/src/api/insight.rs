//! What happened, read only: outcome counts, reputation, the audit log, and SES feedback that
//! matched no delivery.

use axum::Json;
use axum::extract::{Query, State};
use chrono::DateTime;
use serde::Deserialize;
use tayori_app::admin::StatsWindow;
use tayori_app::ports::{AuditQuery, UnmatchedFeedbackCursor};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_param;
use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::{
    AuditView, CountView, PausedView, ReputationRow, ReputationView, StatsView,
    UnmatchedFeedbackList, UnmatchedFeedbackView,
};

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(unmatched_feedback))
        .routes(routes!(stats))
        .routes(routes!(reputation))
        .routes(routes!(audit_log))
}

/// `?window=&tenant=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// `hour`, `day` (default) or `week`.
    pub window: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
}

pub(crate) async fn stats_view(
    state: &AdminState,
    who: &tayori_app::Principal,
    params: &StatsParams,
) -> Result<StatsView, ApiError> {
    let name = params.window.clone().unwrap_or_else(|| "day".into());
    let window = StatsWindow::parse(&name)
        .ok_or_else(|| ApiError::bad_request("window: hour, day or week"))?;
    let tenant = tenant_param(params.tenant.as_deref())?;
    let counts = state.service.stats(who, tenant.as_ref(), window).await?;
    Ok(StatsView { window: name, counts: counts.iter().map(CountView::from).collect() })
}

/// Deliveries per tenant and outcome over the last hour, day or week.
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", params(StatsParams),
    responses((status = 200, body = StatsView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stats(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<StatsParams>,
) -> Result<Json<StatsView>, ApiError> {
    Ok(Json(stats_view(&state, &who, &params).await?))
}

/// Bounce and complaint rates per tenant over the last hour, day or week, against the
/// thresholds (4 % bounces, 0.08 % complaints, from 200 sent), and the tenants paused now.
#[utoipa::path(get, path = "/api/v1/reputation", tag = "stats", params(StatsParams),
    responses((status = 200, body = ReputationView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reputation(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<StatsParams>,
) -> Result<Json<ReputationView>, ApiError> {
    let name = params.window.clone().unwrap_or_else(|| "day".into());
    let window = StatsWindow::parse(&name)
        .ok_or_else(|| ApiError::bad_request("window: hour, day or week"))?;
    let tenant = tenant_param(params.tenant.as_deref())?;
    let rows = state.service.reputation(&who, tenant.as_ref(), window).await?;
    let paused = state.service.paused_tenants(&who, tenant.as_ref()).await?;
    let thresholds = state.service.reputation_thresholds;
    Ok(Json(ReputationView {
        window: name,
        bounce_rate_threshold: thresholds.bounce_rate,
        complaint_rate_threshold: thresholds.complaint_rate,
        min_sent: thresholds.min_sent,
        tenants: rows.iter().map(ReputationRow::from).collect(),
        paused: paused.iter().map(PausedView::from).collect(),
    }))
}

/// `?tenant=&token_id=&action=&object_id=&before=&limit=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this token's actions.
    pub token_id: Option<String>,
    /// Only this action (e.g. `delivery.resend`).
    pub action: Option<String>,
    /// Only actions on this object.
    pub object_id: Option<String>,
    /// Entries older than this `audit_id`.
    pub before: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

pub(crate) async fn audit_views(
    state: &AdminState,
    who: &tayori_app::Principal,
    params: &AuditParams,
) -> Result<Vec<AuditView>, ApiError> {
    let tenant = tenant_param(params.tenant.as_deref())?;
    let non_empty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
    let query = AuditQuery {
        tenants: None,
        token_id: non_empty(&params.token_id),
        action: non_empty(&params.action),
        object_id: non_empty(&params.object_id),
        before: params.before,
        limit: params.limit.unwrap_or(100),
    };
    let entries = state.service.audit(who, tenant.as_ref(), query).await?;
    Ok(entries.iter().map(AuditView::from).collect())
}

/// The audit log, newest first: who (token id), what, when, on which tenant and object.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Vec<AuditView>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn audit_log(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    Ok(Json(audit_views(&state, &who, &params).await?))
}

/// `?after=&limit=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UnmatchedFeedbackParams {
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// SES feedback that matched no delivery (`unmatched`) or could not be read (`invalid`), kept
/// rather than dropped; newest first. It names no tenant: tokens scoped to tenants get an empty
/// list.
#[utoipa::path(get, path = "/api/v1/feedback/unmatched", tag = "feedback",
    params(UnmatchedFeedbackParams),
    responses((status = 200, body = UnmatchedFeedbackList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn unmatched_feedback(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<UnmatchedFeedbackParams>,
) -> Result<Json<UnmatchedFeedbackList>, ApiError> {
    let after = params.after.as_deref().map(decode_feedback_cursor).transpose()?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 500"));
    }
    let page = state.service.unmatched_feedback(&who, after.as_ref(), limit).await?;
    Ok(Json(UnmatchedFeedbackList {
        feedback: page.feedback.iter().map(UnmatchedFeedbackView::from).collect(),
        next: page.next.as_ref().map(encode_feedback_cursor),
    }))
}

fn encode_feedback_cursor(cursor: &UnmatchedFeedbackCursor) -> String {
    format!("{}_{}", cursor.received_at.timestamp_micros(), cursor.feedback_id)
}

fn decode_feedback_cursor(raw: &str) -> Result<UnmatchedFeedbackCursor, ApiError> {
    let bad = || ApiError::bad_request("after: not a cursor from a previous page");
    let (micros, feedback_id) = raw.split_once('_').ok_or_else(bad)?;
    let received_at =
        DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    if feedback_id.is_empty() {
        return Err(bad());
    }
    Ok(UnmatchedFeedbackCursor { received_at, feedback_id: feedback_id.to_owned() })
}
