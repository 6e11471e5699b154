//! tayori's admin API and operator console: the HTTP side of the operators' use cases.
//!
//! It owns [`router`]: the JSON API under `/api/v1` (bearer tokens; its OpenAPI 3.1 document,
//! generated from the handlers, at `/api/v1/openapi.json`), the server-rendered console under
//! `/console` (a token signs in once; an HttpOnly cookie carries it, forms carry a CSRF token),
//! and `/healthz` and `/readyz`; and the public one-click unsubscribe endpoint ([`unsubscribe_router`]). It converts HTTP into calls of
//! [`AdminService`](tayori_app::AdminService) and its answers into JSON or HTML; roles, tenant
//! scoping, masking and auditing are the use cases' rules, not this crate's. It must not talk to
//! a database, queue or mail service except through that service, and it never reads the
//! environment.

mod api;
mod auth;
mod console;
mod error;
mod unsubscribe;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tayori_app::AdminService;

pub use api::openapi;
pub use auth::{SESSION_COOKIE, csrf_token};
pub use unsubscribe::{Quota, UnsubscribeLimits, unsubscribe_router};

/// What the routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The operators' use cases.
    pub service: Arc<AdminService>,
    /// Whether the console's session cookie is marked `Secure` (true behind HTTPS).
    pub secure_cookies: bool,
}

/// Every admin route: `/api/v1/...`, `/console/...`, `/healthz`, `/readyz`.
pub fn router(state: AdminState) -> Router {
    let (api, _) = api::routes().split_for_parts();
    Router::new()
        .merge(api)
        .route("/api/v1/openapi.json", get(api::openapi_json))
        .merge(console::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The process is alive.
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers and templates are loaded.
async fn readyz(State(state): State<AdminState>) -> Response {
    if let Err(error) = state.service.admin.ping().await {
        tracing::warn!(error = %error, "not ready: the database does not answer");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response();
    }
    if state.service.previews.catalog().tenants.is_empty() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no templates loaded").into_response();
    }
    "ready".into_response()
}
