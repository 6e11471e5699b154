//! Signing in to the console with a token, and out again.

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;
use tayori_app::AdminError;

use super::{ConsoleError, CsrfForm, Page, check_csrf, failure};
use crate::AdminState;
use crate::auth::{ClientAddr, SESSION_COOKIE, Session};

/// This capability's pages and forms.
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
}

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in_page() -> Page {
    Page::bare("sign_in.html", json!({ "nav": "" }))
}

async fn sign_in(
    State(state): State<AdminState>,
    client: ClientAddr,
    uri: Uri,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    let refused = |status: StatusCode, error: &str| {
        Ok(Page::bare("sign_in.html", json!({ "nav": "", "error": error }))
            .status(status)
            .into_response())
    };
    if let Err(why) = same_origin(&uri, &headers) {
        tracing::warn!(client = %client, why, "console sign-in refused: a cross-site post");
        return refused(StatusCode::FORBIDDEN, "Sign in from this console's own page.");
    }
    if !state.may_try_sign_in(client.0) {
        tracing::warn!(client = %client, "console sign-in throttled: too many attempts");
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from your address; wait a minute and try again.",
        );
    }
    let mut random = [0u8; 32];
    if let Err(error) = getrandom::fill(&mut random) {
        return Ok(failure(&std::io::Error::other(format!("no secure randomness: {error}"))));
    }
    match state.sessions.sign_in(form.token.trim(), &client.to_string(), random).await {
        Ok(signed_in) => {
            let cookie = Cookie::build((SESSION_COOKIE, signed_in.session_id))
                .http_only(true)
                .secure(state.secure_cookies)
                .same_site(SameSite::Strict)
                .path("/console")
                .build();
            Ok((jar.add(cookie), Redirect::to("/console")).into_response())
        }
        Err(AdminError::Unauthenticated) => {
            refused(StatusCode::UNAUTHORIZED, "That token is unknown, revoked or expired.")
        }
        Err(other) => Err(other.into()),
    }
}

/// Whether a post comes from this console's own pages. Browsers say where a form was posted
/// from: `Sec-Fetch-Site` where they send it (it must be `same-origin`), else `Origin`, else
/// `Referer`, whose host must be this request's `Host`. The console's pages are served with
/// `Referrer-Policy: no-referrer`, under which browsers post `Origin: null`: hence
/// `Sec-Fetch-Site` first, and `null` alone is refused. A request that says nothing at all
/// (curl, a script) is no browser carrying someone's cookies, and is let through.
fn same_origin(uri: &Uri, headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    match text("sec-fetch-site") {
        Some("same-origin" | "none") => return Ok(()),
        Some(_) => return Err("Sec-Fetch-Site is not same-origin"),
        None => {}
    }
    let origin = text("origin").filter(|o| *o != "null");
    let Some(source) = origin.or_else(|| text("referer")) else {
        return match text("origin") {
            Some(_) => Err("Origin is null"),
            None => Ok(()),
        };
    };
    let host = text("host").or_else(|| uri.authority().map(|a| a.as_str()));
    // `scheme://host[:port][/path]`.
    let source_host = source
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default());
    match (source_host, host) {
        (Some(source), Some(host)) if source.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err("Origin or Referer names another host"),
    }
}

async fn sign_out(
    State(state): State<AdminState>,
    session: Session,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<(CookieJar, Redirect), ConsoleError> {
    check_csrf(&session, &form.csrf)?;
    // The session ends in the database: its cookie, replayed, signs nobody in.
    state.sessions.sign_out(&session.id).await?;
    let cookie = Cookie::build((SESSION_COOKIE, "")).path("/console").build();
    Ok((jar.remove(cookie), Redirect::to("/console/sign-in")))
}
