//! The dead-letter queues (events and SES feedback): what lies there, and moving it back.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::{DeadLettersView, RedriveView};

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(dead_letters)).routes(routes!(redrive_dead_letters))
}

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
