//! The JSON API under `/api/v1`. Each handler parses its input into domain types, calls one use
//! case, and converts the answer; `utoipa` documents each from its annotation, and
//! `utoipa-axum` registers route and documentation together.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tayori_app::admin::StatsWindow;
use tayori_app::ports::{
    AuditQuery, DeliveryCursor, DeliverySearch, PreviewRequest, UnmatchedFeedbackCursor,
};
use tayori_domain::{DeliveryId, DeliveryStatus, EmailAddress, EventType, Locale, TenantId};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::{
    ActionView, AuditView, CountView, DeadLettersView, DeliveryDetailView, DeliveryList,
    DeliverySummary, DiscardView, HeldView, PauseView, PausedView, RedriveView, RejectedEvents,
    ReputationRow, ReputationView, ResumeView, StatsView, SuppressionView, UnkeyedView,
    UnmatchedFeedbackList, UnmatchedFeedbackView,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tayori admin API",
        description = "Find deliveries, see what happened, and act on failures. Every route \
            needs `Authorization: Bearer <token>` (`tayori admin token create`). A token scoped \
            to tenants never sees another tenant: such objects answer 404, like unknown ids."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(search_deliveries))
        .routes(routes!(delivery))
        .routes(routes!(resend))
        .routes(routes!(resend_failed))
        .routes(routes!(replay_delivery))
        .routes(routes!(rejected_events))
        .routes(routes!(replay_many))
        .routes(routes!(replay_unkeyed))
        .routes(routes!(unmatched_feedback))
        .routes(routes!(dead_letters))
        .routes(routes!(redrive_dead_letters))
        .routes(routes!(list_suppressions, add_suppression))
        .routes(routes!(remove_suppression))
        .routes(routes!(templates))
        .routes(routes!(preview_sample, preview_variables))
        .routes(routes!(stats))
        .routes(routes!(reputation))
        .routes(routes!(pause_tenant))
        .routes(routes!(resume_tenant))
        .routes(routes!(held_events))
        .routes(routes!(discard_held))
        .routes(routes!(audit_log))
        .routes(routes!(tokens))
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

pub(crate) async fn openapi_json() -> Response {
    match openapi().to_json() {
        Ok(json) => {
            ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

// ---- parsing at the edge ----

pub(crate) fn tenant_param(raw: Option<&str>) -> Result<Option<TenantId>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| TenantId::parse(s).map_err(|e| ApiError::bad_request(format!("tenant: {e}"))))
        .transpose()
}

pub(crate) fn delivery_id(raw: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(raw)
        .ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a delivery id (a UUID)")))
}

fn time_param(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| {
                ApiError::bad_request(format!("{name}: not an RFC 3339 time ({e}): {s:?}"))
            })
        })
        .transpose()
}

/// A page cursor: `<created_at in microseconds>_<delivery id>`.
pub(crate) fn encode_cursor(cursor: &DeliveryCursor) -> String {
    format!("{}_{}", cursor.created_at.timestamp_micros(), cursor.delivery_id)
}

fn decode_cursor(raw: &str) -> Result<DeliveryCursor, ApiError> {
    let bad = || ApiError::bad_request("after: not a cursor from a previous page");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let created_at =
        DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok(DeliveryCursor { created_at, delivery_id: DeliveryId::parse(id).ok_or_else(bad)? })
}

/// The filters of a delivery search, as the query string carries them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this outcome: `processing`, `sent`, `suppressed`, `rejected`, `failed`.
    pub status: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this recipient (exact address).
    pub recipient: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// Only deliveries with no decided resend: none made, or still `processing` (`true`).
    pub not_resent: Option<bool>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl SearchParams {
    pub(crate) fn parse(&self) -> Result<(Option<TenantId>, DeliverySearch), ApiError> {
        let non_empty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
        let search = DeliverySearch {
            tenants: None,
            status: non_empty(&self.status)
                .map(|s| s.parse::<DeliveryStatus>())
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("status: {e}")))?,
            event_type: non_empty(&self.event_type)
                .map(|s| EventType::parse(s.trim()))
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("event_type: {e}")))?,
            recipient: non_empty(&self.recipient)
                .map(|s| EmailAddress::parse(s.trim()))
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("recipient: {e}")))?,
            from: time_param("from", self.from.as_deref())?,
            until: time_param("until", self.until.as_deref())?,
            not_resent: self.not_resent.unwrap_or(false),
            after: non_empty(&self.after).map(|s| decode_cursor(&s)).transpose()?,
            limit: self.limit.unwrap_or(50).clamp(1, 500),
        };
        Ok((tenant_param(self.tenant.as_deref())?, search))
    }
}

/// Why an operator acts.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReasonBody {
    /// Required; recorded in the audit log.
    pub reason: String,
}

// ---- deliveries ----

/// Search deliveries, newest first, one page at a time.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "deliveries", params(SearchParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn search_deliveries(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<SearchParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let (tenant, search) = params.parse()?;
    let page = state.service.search_deliveries(&who, tenant.as_ref(), search).await?;
    Ok(Json(DeliveryList {
        deliveries: page.deliveries.iter().map(DeliverySummary::from).collect(),
        next: page.next.as_ref().map(encode_cursor),
    }))
}

/// One delivery: its event (sensitive variables masked), attempts, SES message id, subject and
/// links.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path, description = "The delivery id")),
    responses((status = 200, body = DeliveryDetailView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delivery(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetailView>, ApiError> {
    let detail = state.service.delivery(&who, delivery_id(&id)?).await?;
    Ok(Json(DeliveryDetailView::from(&detail)))
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

// ---- rejected events ----

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

// ---- feedback that matched no delivery ----

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

// ---- suppressions ----

/// `?tenant=&address=&limit=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SuppressionParams {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this address.
    pub address: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

fn address(raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw.trim()).map_err(|e| ApiError::bad_request(format!("address: {e}")))
}

/// Suppressed addresses, newest first (masked unless the role is admin).
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "suppressions",
    params(SuppressionParams),
    responses((status = 200, body = Vec<SuppressionView>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_suppressions(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<SuppressionParams>,
) -> Result<Json<Vec<SuppressionView>>, ApiError> {
    let tenant = tenant_param(params.tenant.as_deref())?;
    let filter = params.address.as_deref().filter(|a| !a.is_empty()).map(address).transpose()?;
    let limit = params.limit.unwrap_or(100);
    let entries = state.service.suppressions(&who, tenant.as_ref(), filter, limit).await?;
    Ok(Json(entries.iter().map(SuppressionView::from).collect()))
}

/// A suppression to add.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewSuppression {
    /// The tenant.
    pub tenant: String,
    /// The address.
    pub address: String,
    /// Why; recorded with the entry and in the audit log.
    pub reason: String,
}

/// Stop all mail from a tenant to an address (operator, admin). 201 when added, 200 when it was
/// suppressed already.
#[utoipa::path(post, path = "/api/v1/suppressions", tag = "suppressions",
    request_body = NewSuppression,
    responses((status = 201), (status = 200), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn add_suppression(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Json(body): Json<NewSuppression>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_param(Some(&body.tenant))?
        .ok_or_else(|| ApiError::bad_request("tenant: required"))?;
    let added = state
        .service
        .add_suppression(&who, &tenant, &address(&body.address)?, &body.reason)
        .await?;
    Ok(if added { StatusCode::CREATED } else { StatusCode::OK })
}

/// Let a tenant mail an address again (operator, admin).
#[utoipa::path(delete, path = "/api/v1/suppressions/{tenant}/{address}", tag = "suppressions",
    request_body = ReasonBody,
    params(("tenant" = String, Path, description = "The tenant"),
        ("address" = String, Path, description = "The address")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_suppression(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path((tenant, addr)): Path<(String, String)>,
    Json(body): Json<ReasonBody>,
) -> Result<StatusCode, ApiError> {
    let tenant =
        tenant_param(Some(&tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
    state.service.remove_suppression(&who, &tenant, &address(&addr)?, &body.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- templates ----

/// One event type's templates.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TemplateView {
    /// The tenant.
    pub tenant: String,
    /// The event type.
    pub event_type: String,
    /// Whether the tenant accepts events of this type.
    pub accepted: bool,
    /// `transactional` or `subscription`.
    pub message_class: String,
    /// Its sample data files.
    pub samples: Vec<String>,
    /// The locales it has templates for.
    pub locales: Vec<String>,
}

/// `?tenant=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TenantParams {
    /// Only this tenant.
    pub tenant: Option<String>,
}

pub(crate) fn template_views(
    state: &AdminState,
    who: &tayori_app::Principal,
    tenant: Option<&TenantId>,
) -> Result<Vec<TemplateView>, ApiError> {
    if let Some(tenant) = tenant
        && !who.scope.includes(tenant)
    {
        return Err(ApiError(tayori_app::AdminError::NotFound(format!("no tenant {tenant}"))));
    }
    let catalog = state.service.templates(who);
    Ok(catalog
        .tenants
        .iter()
        .filter(|t| tenant.is_none_or(|only| &t.id == only))
        .flat_map(|t| {
            t.events.iter().map(|e| TemplateView {
                tenant: t.id.to_string(),
                event_type: e.event_type.to_string(),
                accepted: e.accepted,
                message_class: e.message_class.to_string(),
                samples: e.samples.clone(),
                locales: e.locales.iter().map(ToString::to_string).collect(),
            })
        })
        .collect())
}

/// The templates of the token's tenants.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(TenantParams),
    responses((status = 200, body = Vec<TemplateView>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn templates(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<TenantParams>,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    let tenant = tenant_param(params.tenant.as_deref())?;
    Ok(Json(template_views(&state, &who, tenant.as_ref())?))
}

/// A rendered preview.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewView {
    /// The subject.
    pub subject: String,
    /// The HTML part (a whole document; show it in a sandboxed frame).
    pub html: String,
    /// The text part.
    pub text: String,
    /// The locale used.
    pub locale: String,
}

/// `?sample=&locale=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SampleParams {
    /// The sample's name (default: the first).
    pub sample: Option<String>,
    /// The locale (default: the sample's, else the tenant's).
    pub locale: Option<String>,
}

fn event_type(raw: &str) -> Result<EventType, ApiError> {
    EventType::parse(raw).map_err(|e| ApiError::bad_request(format!("event type: {e}")))
}

fn locale(raw: Option<&str>) -> Result<Option<Locale>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| Locale::parse(s).map_err(|e| ApiError::bad_request(format!("locale: {e}"))))
        .transpose()
}

pub(crate) fn sample_preview(
    state: &AdminState,
    who: &tayori_app::Principal,
    tenant: &str,
    event: &str,
    params: &SampleParams,
) -> Result<PreviewView, ApiError> {
    let tenant =
        tenant_param(Some(tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
    let event_type = event_type(event)?;
    let sample = match params.sample.clone().filter(|s| !s.is_empty()) {
        Some(sample) => sample,
        None => template_views(state, who, Some(&tenant))?
            .into_iter()
            .find(|t| t.event_type == event_type.as_str())
            .and_then(|t| t.samples.into_iter().next())
            .ok_or_else(|| {
                ApiError(tayori_app::AdminError::NotFound(format!(
                    "no samples for {tenant}/{event_type}"
                )))
            })?,
    };
    let request =
        PreviewRequest { tenant, event_type, sample, locale: locale(params.locale.as_deref())? };
    let preview = state.service.preview_sample(who, &request)?;
    Ok(PreviewView {
        subject: preview.subject,
        html: preview.html,
        text: preview.text,
        locale: preview.locale.to_string(),
    })
}

/// Render an event type's template with one of its samples (sensitive variables masked).
#[utoipa::path(get, path = "/api/v1/templates/{tenant}/{event_type}/preview", tag = "templates",
    params(("tenant" = String, Path, description = "The tenant"),
        ("event_type" = String, Path, description = "The event type"), SampleParams),
    responses((status = 200, body = PreviewView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn preview_sample(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path((tenant, event)): Path<(String, String)>,
    Query(params): Query<SampleParams>,
) -> Result<Json<PreviewView>, ApiError> {
    Ok(Json(sample_preview(&state, &who, &tenant, &event, &params)?))
}

/// Variables to render a template with.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct VariablesBody {
    /// The event's `data.variables`.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// The recipient's locale.
    pub locale: Option<String>,
}

/// Render an event type's template with posted variables.
#[utoipa::path(post, path = "/api/v1/templates/{tenant}/{event_type}/preview", tag = "templates",
    params(("tenant" = String, Path, description = "The tenant"),
        ("event_type" = String, Path, description = "The event type")),
    request_body = VariablesBody,
    responses((status = 200, body = PreviewView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn preview_variables(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path((tenant, event)): Path<(String, String)>,
    Json(body): Json<VariablesBody>,
) -> Result<Json<PreviewView>, ApiError> {
    let tenant =
        tenant_param(Some(&tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
    let locale = locale(body.locale.as_deref())?;
    let preview = state.service.preview_variables(
        &who,
        &tenant,
        &event_type(&event)?,
        body.variables,
        locale.as_ref(),
    )?;
    Ok(Json(PreviewView {
        subject: preview.subject,
        html: preview.html,
        text: preview.text,
        locale: preview.locale.to_string(),
    }))
}

// ---- stats and audit ----

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
    let tenant =
        tenant_param(Some(&tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
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
    let tenant =
        tenant_param(Some(&tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
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
    let tenant =
        tenant_param(Some(&tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
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
    let tenant =
        tenant_param(Some(&tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
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

/// An optional event type from a query, a body or a form: blank is none.
pub(crate) fn event_type_param(raw: Option<&str>) -> Result<Option<EventType>, ApiError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| EventType::parse(s).map_err(|e| ApiError::bad_request(format!("event_type: {e}"))))
        .transpose()
}

// ---- dead letters ----

/// `?queue=&limit=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterParams {
    /// `events` (default) or `feedback`.
    pub queue: Option<String>,
    /// Messages to look at, 1 to 100 (default 50).
    pub limit: Option<u32>,
}

/// A dead-letter queue by its name; none is `events`.
pub(crate) fn dead_letter_queue(
    raw: Option<&str>,
) -> Result<tayori_app::admin::DeadLetterQueue, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(tayori_app::admin::DeadLetterQueue::Events),
        Some(name) => tayori_app::admin::DeadLetterQueue::parse(name).ok_or_else(|| {
            ApiError::bad_request(format!("queue: expected events or feedback, got {name:?}"))
        }),
    }
}

/// A dead-letter queue (the events queue's, or the SES feedback queue's): its depth (tokens of
/// every tenant) and a sample of its messages in the token's tenants, read without taking them
/// out; what each carries (an event's key and type, a notification's kind and SES message id),
/// never the body.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "dead letters", params(DeadLetterParams),
    responses((status = 200, body = DeadLettersView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn dead_letters(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<DeadLetterParams>,
) -> Result<Json<DeadLettersView>, ApiError> {
    let queue = dead_letter_queue(params.queue.as_deref())?;
    let page = state.service.dead_letters(&who, queue, params.limit.unwrap_or(50)).await?;
    Ok(Json(DeadLettersView::of(queue, &page)))
}

/// How many dead letters to move back, and why.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RedriveBody {
    /// `events` (default) or `feedback`.
    pub queue: Option<String>,
    /// At most this many, 1 to 10,000.
    pub max: u64,
    /// Required; recorded in the audit log.
    pub reason: String,
}

/// Move dead letters back to their source queue once their cause is fixed (operators and
/// admins of every tenant; audited `dlq.redrive` with the queue and the count). An event decided
/// before is then a duplicate, not a second email; a notification recorded before, a duplicate.
#[utoipa::path(post, path = "/api/v1/dead-letters/redrive", tag = "dead letters",
    request_body = RedriveBody,
    responses((status = 200, body = RedriveView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn redrive_dead_letters(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Json(body): Json<RedriveBody>,
) -> Result<Json<RedriveView>, ApiError> {
    let queue = dead_letter_queue(body.queue.as_deref())?;
    let done = state.service.redrive_dead_letters(&who, queue, body.max, &body.reason).await?;
    Ok(Json(RedriveView { moved: done.moved, stopped: done.stopped }))
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

/// Every token (admin only; secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<crate::views::TokenView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn tokens(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
) -> Result<Json<Vec<crate::views::TokenView>>, ApiError> {
    let tokens = state.service.tokens(Some(&who)).await?;
    Ok(Json(tokens.iter().map(crate::views::TokenView::from).collect()))
}
