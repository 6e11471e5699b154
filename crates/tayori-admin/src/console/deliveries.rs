//! The deliveries list (search form, bulk resend form) and one delivery's page.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{ConsoleError, Page};
use crate::AdminState;
use crate::api::{SearchParams, delivery_id, encode_cursor};
use crate::auth::Session;
use crate::error::ApiError;
use crate::views::{DeliveryDetailView, DeliverySummary};

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/deliveries", get(deliveries))
        .route("/console/deliveries/{id}", get(delivery))
}

/// The search form and its results; a bad filter is shown on the page.
async fn deliveries(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<SearchParams>,
) -> Page {
    let form = json!({
        "tenant": params.tenant, "status": params.status, "event_type": params.event_type,
        "recipient": params.recipient, "from": params.from, "until": params.until,
        "not_resent": params.not_resent.unwrap_or(false),
    });
    // A bulk resend's window must not move while it pages: an open end is fixed at the next
    // whole second (rounding down would leave out what failed in this one).
    let resend_until = params.until.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| {
        let next_second = chrono::Utc::now() + chrono::Duration::seconds(1);
        next_second.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    let result = match params.parse() {
        Ok((tenant, search)) => state
            .service
            .search_deliveries(&session.principal, tenant.as_ref(), search)
            .await
            .map_err(ApiError),
        Err(error) => Err(error),
    };
    let shows = match result {
        Ok(page) => json!({
            "form": form,
            "deliveries": page.deliveries.iter().map(DeliverySummary::from).collect::<Vec<_>>(),
            "next": page.next.as_ref().map(encode_cursor),
            "resend_until": resend_until,
        }),
        Err(error) => json!({ "form": form, "deliveries": [], "error": error.parts().2 }),
    };
    Page::framed(&session, "deliveries", "deliveries.html", shows)
}

/// What an action on the delivery page did, shown on the page it redirects to.
#[derive(Debug, Default, Deserialize)]
struct DoneParams {
    done: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

async fn delivery(
    State(state): State<AdminState>,
    session: Session,
    Path(id): Path<String>,
    Query(done): Query<DoneParams>,
) -> Result<Page, ConsoleError> {
    let detail = state.service.delivery(&session.principal, delivery_id(&id)?).await?;
    let view = DeliveryDetailView::from(&detail);
    let event = view.event.as_ref().and_then(|e| serde_json::to_string_pretty(e).ok());
    let shows = json!({
        "d": view, "event_pretty": event,
        "done": done.done, "done_status": done.status, "done_reason": done.reason,
    });
    Ok(Page::framed(&session, "deliveries", "delivery.html", shows))
}
