//! The JSON API under `/api/v1`, one module per capability (the file tree is the route map).
//! Each handler parses its input into domain types, calls one use case, and converts the answer;
//! `utoipa` documents each from its annotation, and `utoipa-axum` registers route and
//! documentation together in the capability's `routes()`. This module merges them under the
//! document's header and holds the parsing they share.

mod dead_letters;
mod deliveries;
mod insight;
mod previews;
mod resend;
mod suppressions;
mod tenants;
mod tokens;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tayori_app::ports::DeliveryCursor;
use tayori_domain::{DeliveryId, EventType, TenantId};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

pub(crate) use dead_letters::dead_letter_queue;
pub(crate) use deliveries::SearchParams;
pub(crate) use insight::{AuditParams, audit_views};
pub(crate) use previews::{SampleParams, sample_preview, template_views};
pub(crate) use resend::{ResendFailedBody, ResendFailedItem, resend_failed_view};

use crate::AdminState;
use crate::error::{ApiError, ErrorBody};

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

/// The API's routes with their documentation: each capability's, merged.
pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(dead_letters::routes())
        .merge(deliveries::routes())
        .merge(insight::routes())
        .merge(previews::routes())
        .merge(resend::routes())
        .merge(suppressions::routes())
        .merge(tenants::routes())
        .merge(tokens::routes())
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

/// A tenant named in a path or a form, where it is required.
pub(crate) fn required_tenant(raw: &str) -> Result<TenantId, ApiError> {
    tenant_param(Some(raw))?.ok_or_else(|| ApiError::bad_request("tenant: required"))
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

/// Why an operator acts.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReasonBody {
    /// Required; recorded in the audit log.
    pub reason: String,
}

/// An optional event type from a query, a body or a form: blank is none.
pub(crate) fn event_type_param(raw: Option<&str>) -> Result<Option<EventType>, ApiError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| EventType::parse(s).map_err(|e| ApiError::bad_request(format!("event_type: {e}"))))
        .transpose()
}
