//! The suppression list: who a tenant never mails, added and lifted by operators.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tayori_domain::EmailAddress;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ReasonBody, required_tenant, tenant_param};
use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::SuppressionView;

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_suppressions, add_suppression))
        .routes(routes!(remove_suppression))
}

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
    let tenant = required_tenant(&body.tenant)?;
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
    let tenant = required_tenant(&tenant)?;
    state.service.remove_suppression(&who, &tenant, &address(&addr)?, &body.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}
