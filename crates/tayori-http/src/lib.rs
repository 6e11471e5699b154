//! tayori's HTTP adapter: routes, request and response shapes, status codes.
//!
//! It owns [`router`]: `POST /v1/events` (the intake of `tayori dev`: 202 with the delivery id,
//! 400 with the reason), `GET /v1/deliveries/{id}` (where a posted event stands) and
//! `GET /healthz`. It converts HTTP into calls of the use cases and their answers into JSON; it
//! holds no business rules and must not talk to a database, queue or mail service except
//! through the use cases and ports it is given. The admin API and console are in `tayori-admin`.
//! It also owns [`serve`], the server every listener of tayori runs on, with its limits.

pub mod preview;
pub mod serve;

pub use serve::{ServeLimits, serve};

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tayori_app::ports::DeliveryStore;
use tayori_app::{Accepted, EventIntake};
use tayori_domain::{DeliveryId, EmailAddress, MAX_EVENT_BYTES};
use tracing::error;

/// What the routes need.
#[derive(Clone)]
pub struct AppState {
    /// The intake use case.
    pub intake: Arc<EventIntake>,
    /// Read access to deliveries.
    pub store: Arc<dyn DeliveryStore>,
}

/// Bodies up to this size reach the intake, so an oversized event (over the contract's 1 MiB)
/// is recorded as rejected with its reason; larger requests are refused outright with 413.
pub const MAX_REQUEST_BYTES: usize = 4 * MAX_EVENT_BYTES;

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(post_event))
        .route("/v1/deliveries/{id}", get(get_delivery))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct QueuedBody {
    delivery_id: DeliveryId,
    status_url: String,
}

#[derive(Debug, Serialize)]
struct RejectedBody {
    error: &'static str,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<DeliveryId>,
}

/// An error answer: 4xx say what to fix; 5xx say only what happened, the cause goes to the log.
#[derive(Debug)]
enum ApiError {
    NotFound,
    BadRequest(String),
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such delivery".into()),
            ApiError::BadRequest(reason) => (StatusCode::BAD_REQUEST, "bad_request", reason),
            ApiError::Unavailable(cause) => {
                error!(error = %cause, "request failed: a dependency is unavailable");
                let message = "temporarily unavailable; nothing was kept, try again".to_owned();
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
        };
        (status, Json(serde_json::json!({ "error": error, "message": message }))).into_response()
    }
}

async fn post_event(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    match state.intake.accept(body.to_vec()).await {
        Ok(Accepted::Queued { delivery_id }) => {
            let status_url = format!("/v1/deliveries/{delivery_id}");
            Ok((StatusCode::ACCEPTED, Json(QueuedBody { delivery_id, status_url })).into_response())
        }
        Ok(Accepted::Rejected { reason, delivery_id }) => {
            let body = RejectedBody { error: "rejected", reason, delivery_id };
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        Err(error) => Err(ApiError::Unavailable(error.0)),
    }
}

/// Where a delivery stands, for the producer that posted it. The recipient is masked: this
/// route has no authentication.
#[derive(Debug, Serialize)]
struct DeliveryStatusBody {
    delivery_id: DeliveryId,
    tenant: String,
    event_type: Option<String>,
    recipient: Option<String>,
    status: String,
    reason: Option<String>,
    provider_message_id: Option<String>,
    duplicates: u32,
    created_at: String,
    decided_at: Option<String>,
}

async fn get_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryStatusBody>, ApiError> {
    let id = DeliveryId::parse(&id)
        .ok_or_else(|| ApiError::BadRequest(format!("{id:?} is not a delivery id (a UUID)")))?;
    let record = state
        .store
        .delivery(id, None)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or(ApiError::NotFound)?;
    let masked = |raw: &str| EmailAddress::parse(raw).map(|a| a.masked()).unwrap_or_default();
    Ok(Json(DeliveryStatusBody {
        delivery_id: record.delivery_id,
        tenant: record.tenant.to_string(),
        event_type: record.event_type,
        recipient: record.recipient.as_deref().map(masked),
        status: record.status.to_string(),
        reason: record.reason,
        provider_message_id: record.provider_message_id,
        duplicates: record.duplicate_count,
        created_at: record.created_at.to_rfc3339(),
        decided_at: record.decided_at.map(|t| t.to_rfc3339()),
    }))
}

async fn healthz() -> &'static str {
    "ok"
}
