//! Sending again and feeding through again: a delivery's resend and replay buttons, the bulk
//! resend of failed deliveries, and the rejected events with their replay buttons.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{ConsoleError, Page, ReasonForm, check_csrf, percent_encode};
use crate::AdminState;
use crate::api::{
    ResendFailedBody, ResendFailedItem, SearchParams, delivery_id, encode_cursor,
    resend_failed_view,
};
use crate::auth::Session;
use crate::views::{ActionView, DeliveryDetailView, UnkeyedView, UnmatchedFeedbackView};

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/deliveries/resend-failed", post(resend_failed))
        .route("/console/deliveries/{id}/resend", post(resend))
        .route("/console/deliveries/{id}/replay", post(replay))
        .route("/console/rejected", get(rejected))
        .route("/console/rejected/unkeyed/{sha256}/replay", post(replay_unkeyed))
}

/// Back to the delivery page, which says what the action did.
fn after_action(origin: &str, done: &tayori_app::admin::ActionResult) -> Redirect {
    let view = ActionView::from(done);
    let new = view.delivery_id.unwrap_or_default();
    let mut url = format!("/console/deliveries/{origin}?done={new}&status={}", view.status);
    if let Some(reason) = &view.reason {
        url.push_str("&reason=");
        url.push_str(&percent_encode(reason));
    }
    Redirect::to(&url)
}

async fn resend(
    State(state): State<AdminState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Redirect, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let parsed = delivery_id(&id)?;
    let done = state.service.resend(&session.principal, parsed, &form.reason).await?;
    Ok(after_action(&id, &done))
}

async fn replay(
    State(state): State<AdminState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Redirect, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let parsed = delivery_id(&id)?;
    let done = state.service.replay_delivery(&session.principal, parsed, &form.reason).await?;
    Ok(after_action(&id, &done))
}

/// The deliveries page's bulk resend form (and its "next page" form).
#[derive(Debug, Default, Deserialize)]
struct ResendFailedForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    after: String,
}

async fn resend_failed(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<ResendFailedForm>,
) -> Result<Page, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let body = ResendFailedBody {
        tenant: form.tenant.clone(),
        from: form.from.clone(),
        until: form.until.clone(),
        event_type: Some(form.event_type.clone()),
        after: Some(form.after.clone()),
        limit: None,
        dry_run: false,
        reason: form.reason.clone(),
    };
    let (tenant, request) = body.parse()?;
    let done =
        state.service.resend_failed(&session.principal, &tenant, request, &form.reason).await?;
    let view = resend_failed_view(done);
    let status_count = |wanted: &str| {
        let has_status = |item: &&ResendFailedItem| {
            item.result.as_ref().is_some_and(|result| result.status == wanted)
        };
        view.items.iter().filter(has_status).count()
    };
    // Sent now, or found sent by a racing call; `processing`: throttled, finished next time.
    let (resent, undecided) = (status_count("sent"), status_count("processing"));
    let shows = json!({
        "form": {
            "tenant": form.tenant, "event_type": form.event_type, "from": form.from,
            "until": form.until, "reason": form.reason,
        },
        "items": view.items,
        "next": view.next,
        "resent": resent,
        "undecided": undecided,
    });
    Ok(Page::framed(&session, "deliveries", "resent.html", shows))
}

/// Rejected deliveries with their bodies and reasons; unfiltered, also the bodies without a key
/// and the SES feedback that matched no delivery.
async fn rejected(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<SearchParams>,
) -> Result<Page, ConsoleError> {
    let who = &session.principal;
    let search = SearchParams { status: Some("rejected".into()), ..params };
    let (tenant, search) = search.parse()?;
    let page = state.service.search_deliveries(who, tenant.as_ref(), search).await?;
    let mut deliveries = Vec::new();
    for record in &page.deliveries {
        let detail = state.service.delivery(who, record.delivery_id).await?;
        deliveries.push(DeliveryDetailView::from(&detail));
    }
    // Neither names a tenant: shown with the unfiltered list only.
    let (unkeyed, unmatched) = if tenant.is_none() {
        let unmatched = state.service.unmatched_feedback(who, None, 50).await?;
        (state.service.unkeyed_rejections(who, 50).await?, unmatched.feedback)
    } else {
        (Vec::new(), Vec::new())
    };
    let shows = json!({
        "deliveries": deliveries,
        "next": page.next.as_ref().map(encode_cursor),
        "unkeyed": unkeyed.iter().map(UnkeyedView::from).collect::<Vec<_>>(),
        "unmatched": unmatched.iter().map(UnmatchedFeedbackView::from).collect::<Vec<_>>(),
    });
    Ok(Page::framed(&session, "rejected", "rejected.html", shows))
}

async fn replay_unkeyed(
    State(state): State<AdminState>,
    session: Session,
    Path(sha256): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Redirect, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let done = state.service.replay_unkeyed(&session.principal, &sha256, &form.reason).await?;
    Ok(Redirect::to(&match done.delivery_id {
        Some(id) => format!("/console/deliveries/{id}"),
        None => "/console/rejected".to_owned(),
    }))
}
