//! The dashboard (outcome counts, recent failures, paused tenants) and the audit log.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::json;
use tayori_app::admin::StatsWindow;
use tayori_app::ports::DeliverySearch;
use tayori_domain::DeliveryStatus;

use super::{ConsoleError, Page};
use crate::AdminState;
use crate::api::{AuditParams, audit_views};
use crate::auth::Session;
use crate::views::{CountView, DeliverySummary, PausedView};

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/console", get(dashboard)).route("/console/audit", get(audit))
}

async fn dashboard(
    State(state): State<AdminState>,
    session: Session,
) -> Result<Page, ConsoleError> {
    let who = &session.principal;
    let mut windows = Vec::new();
    for (name, window) in
        [("hour", StatsWindow::Hour), ("day", StatsWindow::Day), ("week", StatsWindow::Week)]
    {
        let counts = state.service.stats(who, None, window).await?;
        windows.push(json!({
            "name": name,
            "counts": counts.iter().map(CountView::from).collect::<Vec<_>>(),
        }));
    }
    let failures =
        DeliverySearch { status: Some(DeliveryStatus::Failed), limit: 10, ..Default::default() };
    let failures = state.service.search_deliveries(who, None, failures).await?;
    let failures = failures.deliveries.iter().map(DeliverySummary::from).collect::<Vec<_>>();
    let paused = state.service.paused_tenants(who, None).await?;
    let paused = paused.iter().map(PausedView::from).collect::<Vec<_>>();
    let shows = json!({ "windows": windows, "failures": failures, "paused": paused });
    Ok(Page::framed(&session, "dashboard", "dashboard.html", shows))
}

/// The audit log, filtered; a bad filter is shown on the page.
async fn audit(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<AuditParams>,
) -> Page {
    let form = json!({
        "tenant": params.tenant, "token_id": params.token_id, "action": params.action,
        "object_id": params.object_id,
    });
    let shows = match audit_views(&state, &session.principal, &params).await {
        Ok(entries) => json!({ "entries": entries, "form": form }),
        Err(error) => json!({ "entries": [], "form": form, "error": error.parts().2 }),
    };
    Page::framed(&session, "audit", "audit.html", shows)
}
