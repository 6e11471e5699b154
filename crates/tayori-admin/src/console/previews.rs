//! The templates page and a template's preview with one of its samples.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde_json::json;

use super::{ConsoleError, Page};
use crate::AdminState;
use crate::api::{SampleParams, sample_preview, template_views, tenant_param};
use crate::auth::Session;

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/templates", get(templates))
        .route("/console/templates/{tenant}/{event_type}", get(template_preview))
}

async fn templates(
    State(state): State<AdminState>,
    session: Session,
) -> Result<Page, ConsoleError> {
    let list = template_views(&state, &session.principal, None)?;
    Ok(Page::framed(&session, "templates", "templates.html", json!({ "templates": list })))
}

async fn template_preview(
    State(state): State<AdminState>,
    session: Session,
    Path((tenant, event)): Path<(String, String)>,
    Query(params): Query<SampleParams>,
) -> Result<Page, ConsoleError> {
    let preview = sample_preview(&state, &session.principal, &tenant, &event, &params)?;
    let samples = tenant_param(Some(&tenant))
        .ok()
        .flatten()
        .and_then(|t| template_views(&state, &session.principal, Some(&t)).ok())
        .and_then(|list| list.into_iter().find(|v| v.event_type == event));
    let shows = json!({ "tenant": tenant, "event_type": event, "p": preview, "template": samples,
                        "sample": params.sample });
    Ok(Page::framed(&session, "templates", "preview.html", shows))
}
