//! Finding deliveries and reading one: the search (also the console's list) and the detail.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use tayori_app::ports::DeliverySearch;
use tayori_domain::{DeliveryStatus, EmailAddress, EventType, TenantId};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{decode_cursor, delivery_id, encode_cursor, tenant_param, time_param};
use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};
use crate::views::{DeliveryDetailView, DeliveryList, DeliverySummary};

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(search_deliveries)).routes(routes!(delivery))
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
