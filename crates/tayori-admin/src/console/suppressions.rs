//! The suppression list's page, and its add and remove forms.

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tayori_domain::EmailAddress;

use super::{ConsoleError, Page, check_csrf, percent_encode};
use crate::AdminState;
use crate::api::{required_tenant, tenant_param};
use crate::auth::Session;
use crate::error::ApiError;
use crate::views::SuppressionView;

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/suppressions", get(suppressions).post(add_suppression))
        .route("/console/suppressions/remove", post(remove_suppression))
}

#[derive(Debug, Default, Deserialize)]
struct SuppressionFilter {
    tenant: Option<String>,
    address: Option<String>,
    message: Option<String>,
}

/// An address typed into a form.
fn address(raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw.trim()).map_err(|e| ApiError::bad_request(format!("address: {e}")))
}

/// The list, filtered; a bad filter is shown on the page.
async fn suppressions(
    State(state): State<AdminState>,
    session: Session,
    Query(filter): Query<SuppressionFilter>,
) -> Page {
    let result = async {
        let tenant = tenant_param(filter.tenant.as_deref())?;
        let address =
            filter.address.as_deref().filter(|a| !a.trim().is_empty()).map(address).transpose()?;
        Ok::<_, ApiError>(
            state.service.suppressions(&session.principal, tenant.as_ref(), address, 200).await?,
        )
    }
    .await;
    let shows = match result {
        Ok(entries) => json!({
            "entries": entries.iter().map(SuppressionView::from).collect::<Vec<_>>(),
            "form": { "tenant": filter.tenant, "address": filter.address },
            "message": filter.message,
        }),
        Err(error) => json!({
            "entries": [], "form": { "tenant": filter.tenant, "address": filter.address },
            "error": error.parts().2,
        }),
    };
    Page::framed(&session, "suppressions", "suppressions.html", shows)
}

#[derive(Debug, Default, Deserialize)]
struct SuppressionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    reason: String,
}

async fn add_suppression(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<SuppressionForm>,
) -> Result<Redirect, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let tenant = required_tenant(&form.tenant)?;
    let address = address(&form.address)?;
    let added =
        state.service.add_suppression(&session.principal, &tenant, &address, &form.reason).await?;
    let message = if added { "Suppressed." } else { "That address was suppressed already." };
    Ok(Redirect::to(&format!("/console/suppressions?message={}", percent_encode(message))))
}

async fn remove_suppression(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<SuppressionForm>,
) -> Result<Redirect, ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    let tenant = required_tenant(&form.tenant)?;
    let address = address(&form.address)?;
    state.service.remove_suppression(&session.principal, &tenant, &address, &form.reason).await?;
    Ok(Redirect::to("/console/suppressions?message=Removed."))
}
