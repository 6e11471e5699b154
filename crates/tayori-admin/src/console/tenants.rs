//! The tenants page (paused or sending, rates, live activity), pause and resume, and a paused
//! tenant's held events with their discard form.

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tayori_app::admin::StatsWindow;

use super::{ConsoleError, Page, ReasonForm, check_csrf, percent_encode};
use crate::AdminState;
use crate::api::{event_type_param, required_tenant};
use crate::auth::Session;
use crate::error::ApiError;
use crate::views::{HeldView, PausedView};

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/tenants", get(tenants))
        .route("/console/tenants/{tenant}/pause", post(pause_tenant))
        .route("/console/tenants/{tenant}/resume", post(resume_tenant))
        .route("/console/tenants/{tenant}/held", get(held_events))
        .route("/console/tenants/{tenant}/held/discard", post(discard_held))
}

#[derive(Debug, Default, Deserialize)]
struct TenantsParams {
    window: Option<String>,
    message: Option<String>,
}

/// Every tenant of the principal: paused or sending (and who paused it, why, since when), its
/// bounce and complaint rates over the window, and the pause and resume forms.
async fn tenants(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<TenantsParams>,
) -> Result<Page, ConsoleError> {
    let who = &session.principal;
    let name = params.window.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "day".into());
    let window = StatsWindow::parse(&name)
        .ok_or_else(|| ApiError::bad_request("window: hour, day or week"))?;
    let reputation = state.service.reputation(who, None, window).await?;
    let paused = state.service.paused_tenants(who, None).await?;
    let activity = state.service.tenant_activity(who).await?;
    let thresholds = state.service.reputation_thresholds;
    // A no-break space: "4.00 %" never wraps between the number and its sign.
    let percent = |rate: f64| format!("{:.2}\u{a0}%", rate * 100.0);
    let row = |tenant: &tayori_domain::TenantId, event_types: Option<usize>| {
        let rates = reputation.iter().find(|r| &r.counts.tenant == tenant).map(|r| {
            json!({
                "sent": r.counts.sent, "bounced": r.counts.bounced,
                "complained": r.counts.complained, "bounce_rate": percent(r.bounce_rate),
                "complaint_rate": percent(r.complaint_rate),
                "over_threshold": r.over_threshold,
            })
        });
        let pause = paused.iter().find(|p| &p.tenant == tenant).map(PausedView::from);
        let now = activity.iter().find(|a| a.tenant == tenant.as_str()).map(|a| {
            json!({
                "in_flight": a.in_flight, "waiting": a.waiting, "slots": a.slots,
                "send_rate": format!("{:.1}", a.send_rate), "hand_backs": a.hand_backs,
                "workers": a.workers,
            })
        });
        json!({
            "tenant": tenant.to_string(), "event_types": event_types,
            "rates": rates, "pause": pause, "now": now,
        })
    };
    let catalog = state.service.templates(who);
    let mut rows: Vec<_> = catalog
        .tenants
        .iter()
        .map(|t| row(&t.id, Some(t.events.iter().filter(|e| e.accepted).count())))
        .collect();
    // A pause outlives its tenant's templates: show it so that it can be resumed.
    for pause in paused.iter().filter(|p| !catalog.tenants.iter().any(|t| t.id == p.tenant)) {
        rows.push(row(&pause.tenant, None));
    }
    let shows = json!({
        "tenants": rows,
        "window": name,
        "bounce_threshold": percent(thresholds.bounce_rate),
        "complaint_threshold": percent(thresholds.complaint_rate),
        "min_sent": thresholds.min_sent,
        "message": params.message,
    });
    Ok(Page::framed(&session, "tenants", "tenants.html", shows))
}

async fn pause_tenant(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Redirect, ConsoleError> {
    act_on_tenant(&state, &session, &tenant, &form, TenantAction::Pause).await
}

async fn resume_tenant(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Redirect, ConsoleError> {
    act_on_tenant(&state, &session, &tenant, &form, TenantAction::Resume).await
}

/// A tenant's held events: counts by event type, the oldest 50, and the discard form.
async fn held_events(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
) -> Result<Page, ConsoleError> {
    let who = &session.principal;
    let tenant = required_tenant(&tenant)?;
    let held = state.service.held_events(who, &tenant, 50).await?;
    let paused = state.service.paused_tenants(who, Some(&tenant)).await?;
    let shows = json!({
        "tenant": tenant.to_string(),
        "held": HeldView::from(&held),
        "pause": paused.first().map(PausedView::from),
    });
    Ok(Page::framed(&session, "tenants", "held.html", shows))
}

async fn discard_held(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Redirect, ConsoleError> {
    act_on_tenant(&state, &session, &tenant, &form, TenantAction::DiscardHeld).await
}

/// The Tenants page's forms.
#[derive(Debug, Clone, Copy)]
enum TenantAction {
    Pause,
    Resume,
    DiscardHeld,
}

async fn act_on_tenant(
    state: &AdminState,
    session: &Session,
    tenant: &str,
    form: &ReasonForm,
    action: TenantAction,
) -> Result<Redirect, ConsoleError> {
    check_csrf(session, &form.csrf)?;
    let tenant = required_tenant(tenant)?;
    let who = &session.principal;
    let service = &state.service;
    let message = match action {
        TenantAction::Pause if service.pause_tenant(who, &tenant, &form.reason).await? => {
            format!("{tenant} is paused: its events are held until it is resumed.")
        }
        TenantAction::Pause => format!("{tenant} was paused already."),
        TenantAction::Resume if service.resume_tenant(who, &tenant, &form.reason).await? => {
            format!("{tenant} is sending again; its held events go out within seconds.")
        }
        TenantAction::Resume => format!("{tenant} was not paused."),
        TenantAction::DiscardHeld => {
            let event_type = event_type_param(Some(&form.event_type))?;
            let done =
                service.discard_held(who, &tenant, event_type.as_ref(), &form.reason).await?;
            let of_type = event_type.map(|t| format!(" of {t}")).unwrap_or_default();
            format!(
                "{tenant}: {} held events{of_type} discarded (rejected with your reason), {} \
                 could not be now, {} still held.",
                done.discarded, done.left, done.remaining
            )
        }
    };
    Ok(Redirect::to(&format!("/console/tenants?message={}", percent_encode(&message))))
}
