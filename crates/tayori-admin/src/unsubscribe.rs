//! The public one-click unsubscribe endpoint (RFC 8058): `POST /unsubscribe/{token}` with the
//! form body `List-Unsubscribe=One-Click` unsubscribes at once (what mail clients send);
//! `GET /unsubscribe/{token}` shows a small page with a button that posts the same. No admin
//! token: the signed token is the authorization. A tampered or expired token answers 400 and
//! changes nothing. Every request passes one rate limiter first (429 beyond it).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
pub use governor::Quota;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use tayori_app::{UnsubscribeError, UnsubscribeService};

#[derive(Clone)]
struct UnsubscribeState {
    service: Arc<UnsubscribeService>,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// `GET` and `POST /unsubscribe/{token}`, with every request counted against `quota` (in all,
/// not per client: a flood from anywhere is held back; the binary sets it from
/// `unsubscribe.requests_per_second`).
pub fn unsubscribe_router(service: Arc<UnsubscribeService>, quota: Quota) -> Router {
    let limiter = Arc::new(RateLimiter::direct(quota));
    Router::new()
        .route("/unsubscribe/{token}", get(confirm_page).post(one_click))
        .with_state(UnsubscribeState { service, limiter })
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body style=\"font-family: sans-serif; max-width: 32rem; \
         margin: 3rem auto\"><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn rate_limited() -> Response {
    page(StatusCode::TOO_MANY_REQUESTS, "Too many requests", "<p>Please try again in a moment.</p>")
}

fn invalid() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Invalid or expired link",
        "<p>This unsubscribe link is not valid or has expired. Use the link of a more recent \
         email.</p>",
    )
}

fn unavailable(error: &UnsubscribeError) -> Response {
    tracing::warn!(error = %error, "unsubscribe could not be recorded");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "<p>We could not record your request just now. Please try again later.</p>",
    )
}

async fn confirm_page(
    State(state): State<UnsubscribeState>,
    Path(token): Path<String>,
) -> Response {
    if state.limiter.check().is_err() {
        return rate_limited();
    }
    let claim = match state.service.check(&token) {
        Ok(claim) => claim,
        Err(_) => return invalid(),
    };
    // The address is shown masked: the link may have been forwarded.
    let body = format!(
        "<p>Stop these emails from <strong>{tenant}</strong> to {address}? Important notices \
         about your account are still sent.</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" \
         value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
        tenant = escape(claim.tenant.as_str()),
        address = escape(&claim.address.masked()),
    );
    page(StatusCode::OK, "Unsubscribe", &body)
}

async fn one_click(
    State(state): State<UnsubscribeState>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if state.limiter.check().is_err() {
        return rate_limited();
    }
    // RFC 8058: the POST body is `List-Unsubscribe=One-Click`.
    if form.get("List-Unsubscribe").map(String::as_str) != Some("One-Click") {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "<p>The request must carry List-Unsubscribe=One-Click.</p>",
        );
    }
    match state.service.unsubscribe(&token).await {
        Ok(_) => page(
            StatusCode::OK,
            "Unsubscribed",
            "<p>You will not receive these emails any more.</p>",
        ),
        Err(UnsubscribeError::Invalid(_)) => invalid(),
        Err(error @ UnsubscribeError::Store(_)) => unavailable(&error),
    }
}
