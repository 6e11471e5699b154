//! tayori's admin API and operator console: the HTTP side of the operators' use cases.
//!
//! It owns [`router`]: the JSON API under `/api/v1` (bearer tokens; its OpenAPI 3.1 document,
//! generated from the handlers, at `/api/v1/openapi.json`), the server-rendered console under
//! `/console` (a token signs in once and the browser gets an opaque session id in an HttpOnly
//! cookie; forms carry the session's CSRF token; sign-in refuses cross-site posts and is
//! throttled per client address),
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

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use tayori_app::{AdminService, ConsoleSessions};

pub use api::openapi;
pub use auth::{SESSION_COOKIE, csrf_token};
pub use governor::Quota as SignInQuota;
pub use unsubscribe::{Quota, UnsubscribeLimits, unsubscribe_router};

/// What the routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The operators' use cases.
    pub service: Arc<AdminService>,
    /// The console's sign-in, session checks and sign-out.
    pub sessions: Arc<ConsoleSessions>,
    /// Whether the console's session cookie is marked `Secure` (the binary's default everywhere
    /// but on a loopback listener).
    pub secure_cookies: bool,
    /// Sign-in attempts per client address.
    sign_ins: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl AdminState {
    /// The state of [`router`]; sign-in attempts beyond `sign_in_quota` from one client address
    /// are answered 429.
    pub fn new(
        service: Arc<AdminService>,
        sessions: Arc<ConsoleSessions>,
        secure_cookies: bool,
        sign_in_quota: governor::Quota,
    ) -> Self {
        let sign_ins = Arc::new(RateLimiter::keyed(sign_in_quota));
        Self { service, sessions, secure_cookies, sign_ins }
    }

    /// Whether a sign-in attempt from `client` is within its quota (and counts it).
    pub(crate) fn may_try_sign_in(&self, client: Option<SocketAddr>) -> bool {
        // Addresses that stopped trying are forgotten, so the map stays small.
        if self.sign_ins.len() > 10_000 {
            self.sign_ins.retain_recent();
        }
        // Without a peer address (a router called in-process) every caller shares one budget.
        let key = client.map_or(IpAddr::from([0, 0, 0, 0]), |c| c.ip());
        self.sign_ins.check_key(&key).is_ok()
    }
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
