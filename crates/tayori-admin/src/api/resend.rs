//! Sending again and feeding through again: one delivery's resend, a tenant's failed deliveries
//! in a window, and the replay of rejected events (keyed or not).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tayori_domain::TenantId;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::deliveries::SearchParams;
use super::{
    ReasonBody, decode_cursor, delivery_id, encode_cursor, event_type_param, tenant_param,
    time_param,
};
use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::{ActionView, DeliveryDetailView, DeliverySummary, RejectedEvents, UnkeyedView};

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(resend))
        .routes(routes!(resend_failed))
        .routes(routes!(replay_delivery))
        .routes(routes!(rejected_events))
        .routes(routes!(replay_many))
        .routes(routes!(replay_unkeyed))
}

/// Send the email again as a new delivery linked to this one (operator, admin).
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/resend", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery id")), request_body = ReasonBody,
    responses((status = 201, body = ActionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn resend(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(id): Path<String>,
    Json(body): Json<ReasonBody>,
) -> Result<(StatusCode, Json<ActionView>), ApiError> {
    let done = state.service.resend(&who, delivery_id(&id)?, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(ActionView::from(&done))))
}

/// Which failed deliveries to resend, and why.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ResendFailedBody {
    /// The tenant whose failed deliveries to resend.
    pub tenant: String,
    /// Created at or after (RFC 3339): the start of the incident.
    pub from: String,
    /// Created before (RFC 3339). Keep it fixed while paging, so that resends that fail again
    /// are not taken up by the same run.
    pub until: String,
    /// Only this event type.
    pub event_type: Option<String>,
    /// The previous answer's `next`.
    pub after: Option<String>,
    /// Failed deliveries this call takes, 1 to 500 (default 100).
    pub limit: Option<u32>,
    /// Only list what would be resent (default `false`).
    #[serde(default)]
    pub dry_run: bool,
    /// Required; recorded in the audit log for each resend.
    pub reason: String,
}

/// One failed delivery a bulk resend took.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResendFailedItem {
    /// The failed delivery (recipient masked unless admin).
    pub origin: DeliverySummary,
    /// The new delivery; absent in a dry run and when it was not resent.
    pub result: Option<ActionView>,
    /// Why it cannot be resent (sensitive variables masked, no kept body).
    pub error: Option<String>,
}

/// A page of a bulk resend.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResendFailed {
    /// The failed deliveries this call took, newest first.
    pub items: Vec<ResendFailedItem>,
    /// Pass as `after` to go on; absent once the window has nothing more to resend.
    pub next: Option<String>,
}

/// Resend a tenant's failed deliveries in a time window that have no decided resend, after the
/// cause is fixed (operator, admin): up to `limit` per call, newest first, each as its first
/// resend (a new linked delivery with one fixed key). Safe to repeat: a resend is mailed once
/// however often or concurrently this is called, and one left undecided (throttled) finishes
/// on the next call. `dry_run` lists them without sending.
#[utoipa::path(post, path = "/api/v1/deliveries/resend-failed", tag = "deliveries",
    request_body = ResendFailedBody,
    responses((status = 200, body = ResendFailed), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn resend_failed(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Json(body): Json<ResendFailedBody>,
) -> Result<Json<ResendFailed>, ApiError> {
    let (tenant, request) = body.parse()?;
    let page = state.service.resend_failed(&who, &tenant, request, &body.reason).await?;
    Ok(Json(resend_failed_view(page)))
}

impl ResendFailedBody {
    /// The tenant and what to take (the console's form goes through here too).
    pub(crate) fn parse(&self) -> Result<(TenantId, tayori_app::admin::FailedResends), ApiError> {
        let tenant = tenant_param(Some(self.tenant.trim()))?
            .ok_or_else(|| ApiError::bad_request("tenant is required"))?;
        let required_time = |name: &str, raw: &str| {
            time_param(name, Some(raw.trim()))?
                .ok_or_else(|| ApiError::bad_request(format!("{name} is required (RFC 3339)")))
        };
        let request = tayori_app::admin::FailedResends {
            from: required_time("from", &self.from)?,
            until: required_time("until", &self.until)?,
            event_type: event_type_param(self.event_type.as_deref())?,
            after: self
                .after
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: self.limit.unwrap_or(100),
            dry_run: self.dry_run,
        };
        Ok((tenant, request))
    }
}

pub(crate) fn resend_failed_view(page: tayori_app::admin::FailedResendPage) -> ResendFailed {
    let items = page
        .items
        .into_iter()
        .map(|item| {
            let (result, error) = item.result.map(result_or_error).unwrap_or_default();
            ResendFailedItem { origin: DeliverySummary::from(&item.origin), result, error }
        })
        .collect();
    ResendFailed { items, next: page.next.as_ref().map(encode_cursor) }
}

/// Feed a rejected delivery's event through again after a fix (operator, admin).
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/replay", tag = "rejected events",
    params(("id" = String, Path, description = "The rejected delivery's id")),
    request_body = ReasonBody,
    responses((status = 201, body = ActionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn replay_delivery(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(id): Path<String>,
    Json(body): Json<ReasonBody>,
) -> Result<(StatusCode, Json<ActionView>), ApiError> {
    let done = state.service.replay_delivery(&who, delivery_id(&id)?, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(ActionView::from(&done))))
}

/// `?tenant=&after=&limit=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RejectedParams {
    /// Only this tenant (bodies without a key have none and are then left out).
    pub tenant: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Rejected events: deliveries rejected (reason, stored event or raw body) and bodies without a
/// key.
#[utoipa::path(get, path = "/api/v1/rejected-events", tag = "rejected events",
    params(RejectedParams),
    responses((status = 200, body = RejectedEvents), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn rejected_events(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<RejectedParams>,
) -> Result<Json<RejectedEvents>, ApiError> {
    let tenant = tenant_param(params.tenant.as_deref())?;
    let search = SearchParams {
        status: Some("rejected".into()),
        after: params.after.clone(),
        limit: params.limit,
        ..Default::default()
    };
    let (_, search) = search.parse()?;
    let limit = search.limit;
    let page = state.service.search_deliveries(&who, tenant.as_ref(), search).await?;
    let mut deliveries = Vec::with_capacity(page.deliveries.len());
    for record in &page.deliveries {
        // The list shows each body and reason: read each one in full (pages are small).
        let detail = state.service.delivery(&who, record.delivery_id).await?;
        deliveries.push(DeliveryDetailView::from(&detail));
    }
    let unkeyed = match (&tenant, params.after.is_some()) {
        (None, false) => state.service.unkeyed_rejections(&who, limit).await?,
        _ => Vec::new(),
    };
    Ok(Json(RejectedEvents {
        deliveries,
        next: page.next.as_ref().map(encode_cursor),
        unkeyed: unkeyed.iter().map(UnkeyedView::from).collect(),
    }))
}

/// Several rejected events to replay with one reason.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReplayManyBody {
    /// Rejected deliveries' ids.
    #[serde(default)]
    pub delivery_ids: Vec<String>,
    /// Bodies without a key, by SHA-256.
    #[serde(default)]
    pub unkeyed: Vec<String>,
    /// Required; recorded in the audit log for each.
    pub reason: String,
}

/// What came of replaying one of several events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayItem {
    /// The delivery id or body SHA-256 replayed.
    pub id: String,
    /// The new delivery, when it got that far.
    pub result: Option<ActionView>,
    /// Why it was not replayed.
    pub error: Option<String>,
}

/// Replay several rejected events after a fix (operator, admin). Each is tried; the answer says
/// what came of each.
#[utoipa::path(post, path = "/api/v1/rejected-events/replay", tag = "rejected events",
    request_body = ReplayManyBody,
    responses((status = 200, body = Vec<ReplayItem>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn replay_many(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Json(body): Json<ReplayManyBody>,
) -> Result<Json<Vec<ReplayItem>>, ApiError> {
    if !who.may_act() {
        return Err(ApiError(tayori_app::AdminError::Forbidden(format!(
            "the {} role may only read",
            who.role
        ))));
    }
    if body.delivery_ids.len() + body.unkeyed.len() > 500 {
        return Err(ApiError::bad_request("at most 500 events per request"));
    }
    let mut items = Vec::new();
    for id in &body.delivery_ids {
        let done = match delivery_id(id) {
            Ok(parsed) => state.service.replay_delivery(&who, parsed, &body.reason).await,
            Err(ApiError(error)) => Err(error),
        };
        items.push(replay_item(id, done));
    }
    for sha in &body.unkeyed {
        let done = state.service.replay_unkeyed(&who, sha, &body.reason).await;
        items.push(replay_item(sha, done));
    }
    Ok(Json(items))
}

fn replay_item(
    id: &str,
    done: Result<tayori_app::admin::ActionResult, tayori_app::AdminError>,
) -> ReplayItem {
    let (result, error) = result_or_error(done);
    ReplayItem { id: id.to_owned(), result, error }
}

/// One item of a many-at-once action: what came of it, or why nothing did, as a single
/// action's answer would say it.
fn result_or_error(
    done: Result<tayori_app::admin::ActionResult, tayori_app::AdminError>,
) -> (Option<ActionView>, Option<String>) {
    match done {
        Ok(done) => (Some(ActionView::from(&done)), None),
        Err(error) => (None, Some(ApiError(error).parts().2)),
    }
}

/// Feed a body without a key through again, as received (operator, admin).
#[utoipa::path(post, path = "/api/v1/rejected-events/unkeyed/{sha256}/replay",
    tag = "rejected events", request_body = ReasonBody,
    params(("sha256" = String, Path, description = "The body's SHA-256")),
    responses((status = 201, body = ActionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn replay_unkeyed(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(sha256): Path<String>,
    Json(body): Json<ReasonBody>,
) -> Result<(StatusCode, Json<ActionView>), ApiError> {
    let done = state.service.replay_unkeyed(&who, &sha256, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(ActionView::from(&done))))
}
