//! The operator console under `/console`: server-rendered pages (tera, autoescaped), plain forms
//! and one small script for keyboard shortcuts, one module per capability (named as in the API
//! and the use cases). Sign-in (same-origin posts only, throttled per client address) puts an
//! opaque session id in an HttpOnly, SameSite=Strict cookie, `Secure` unless the binary says
//! otherwise; every form carries the session's CSRF token; every page is served with a strict
//! Content-Security-Policy. Data comes from the same use cases as the API, so scoping and masking
//! are the same. A handler answers a [`Page`], a redirect or a [`ConsoleError`]; both render
//! themselves.

mod dead_letters;
mod deliveries;
mod insight;
mod previews;
mod resend;
mod sessions;
mod suppressions;
mod tenants;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tayori_app::AdminError;

use crate::AdminState;
use crate::auth::{NoSession, Session};
use crate::error::ApiError;

/// Scripts only from our own origin (the one file below), no plugins, no framing of the console;
/// inline styles are allowed because emails in the preview frame use them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const SCRIPT: &str = include_str!("../../templates/console.js");

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console/app.js", get(script))
        .merge(dead_letters::routes())
        .merge(deliveries::routes())
        .merge(insight::routes())
        .merge(previews::routes())
        .merge(resend::routes())
        .merge(sessions::routes())
        .merge(suppressions::routes())
        .merge(tenants::routes())
        .layer(middleware::from_fn(frame_errors))
}

fn tera() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = tera::Tera::default();
        // Autoescaping is what makes hostile data inert: every template is an `.html` name and
        // autoescape is set explicitly (the injection tests check it).
        tera.autoescape_on(vec![".html"]);
        let templates = [
            ("base.html", include_str!("../../templates/base.html")),
            ("sign_in.html", include_str!("../../templates/sign_in.html")),
            ("dashboard.html", include_str!("../../templates/dashboard.html")),
            ("deliveries.html", include_str!("../../templates/deliveries.html")),
            ("delivery.html", include_str!("../../templates/delivery.html")),
            ("rejected.html", include_str!("../../templates/rejected.html")),
            ("suppressions.html", include_str!("../../templates/suppressions.html")),
            ("templates.html", include_str!("../../templates/templates.html")),
            ("preview.html", include_str!("../../templates/preview.html")),
            ("tenants.html", include_str!("../../templates/tenants.html")),
            ("held.html", include_str!("../../templates/held.html")),
            ("resent.html", include_str!("../../templates/resent.html")),
            ("dead_letters.html", include_str!("../../templates/dead_letters.html")),
            ("audit.html", include_str!("../../templates/audit.html")),
            ("error.html", include_str!("../../templates/error.html")),
        ];
        tera.register_filter("when", when);
        if let Err(error) = tera.add_raw_templates(templates) {
            // The templates are compiled into the binary and covered by tests.
            panic!("console templates do not parse: {error:?}");
        }
        tera
    })
}

/// `{{ t | when }}`: an RFC 3339 time as `2026-11-28 05:20:12 UTC`, to the second (the API keeps
/// the full precision).
fn when(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let Some(raw) = value.as_str() else { return Ok(value.clone()) };
    Ok(match chrono::DateTime::parse_from_rfc3339(raw) {
        Ok(t) => tera::Value::String(
            t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ),
        Err(_) => value.clone(),
    })
}

/// A console page: a template and what it shows, rendered (autoescaped) with the console's
/// security headers.
pub(crate) struct Page {
    template: &'static str,
    context: serde_json::Value,
    status: StatusCode,
}

impl Page {
    /// A signed-in page: the frame (navigation with `nav` marked, who is signed in, the CSRF
    /// token) and what the page shows.
    pub(crate) fn framed(
        session: &Session,
        nav: &str,
        template: &'static str,
        shows: serde_json::Value,
    ) -> Self {
        Self::bare(template, with(base(session, nav), shows))
    }

    /// A page outside the frame (the sign-in page).
    pub(crate) fn bare(template: &'static str, context: serde_json::Value) -> Self {
        Self { template, context, status: StatusCode::OK }
    }

    /// The same page with another status.
    pub(crate) fn status(self, status: StatusCode) -> Self {
        Self { status, ..self }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let context = match tera::Context::from_value(self.context) {
            Ok(context) => context,
            Err(error) => return failure(&error),
        };
        match tera().render(self.template, &context) {
            Ok(body) => {
                let mut response = (self.status, Html(body)).into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
                headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
                response
            }
            Err(error) => failure(&error),
        }
    }
}

pub(crate) fn failure(error: &dyn std::error::Error) -> Response {
    tracing::error!(error = %error, "console page failed to render");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// The common context of a signed-in page.
fn base(session: &Session, nav: &str) -> serde_json::Value {
    let tenants = session
        .principal
        .scope
        .filter()
        .map(|ts| ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
    json!({
        "nav": nav,
        "csrf": session.csrf,
        "who": {
            "token_id": session.principal.token_id,
            "role": session.principal.role.as_str(),
            "tenants": tenants.unwrap_or_else(|| "all tenants".into()),
            "may_act": session.principal.may_act(),
        },
    })
}

pub(crate) fn with(mut context: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(target), serde_json::Value::Object(extra)) = (context.as_object_mut(), extra) {
        target.extend(extra);
    }
    context
}

/// Why a console handler did not do its work: the visitor must sign in, or the error page says
/// what went wrong (inside the signed-in frame when the request had a session).
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No valid session: go and sign in.
    SignIn,
    /// What the API would answer, as a page.
    Failed(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::Failed(error)
    }
}

impl From<AdminError> for ConsoleError {
    fn from(error: AdminError) -> Self {
        Self::Failed(ApiError(error))
    }
}

impl From<NoSession> for ConsoleError {
    fn from(no: NoSession) -> Self {
        match no {
            NoSession::SignIn => Self::SignIn,
            NoSession::Failed(error) => Self::Failed(error),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/console/sign-in").into_response(),
            Self::Failed(error) => {
                let (status, code, message) = error.parts();
                let shows = json!({ "status": status.as_u16(), "code": code, "message": message });
                // Drawn without the frame here; `frame_errors` draws it again inside the frame
                // when the request had a session (the error alone does not know it).
                let mut response =
                    Page::bare("error.html", with(json!({ "nav": "" }), shows.clone()))
                        .status(status)
                        .into_response();
                response.extensions_mut().insert(ErrorShown(shows));
                response
            }
        }
    }
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        ConsoleError::from(self).into_response()
    }
}

/// What an error page shows, left on its response for [`frame_errors`].
#[derive(Clone)]
struct ErrorShown(serde_json::Value);

/// The frame of the request's session, filled in by the [`Session`] extractor; read back by
/// [`frame_errors`] once the handler has answered.
#[derive(Clone, Default)]
pub(crate) struct Frame(Arc<OnceLock<serde_json::Value>>);

impl Frame {
    /// Records the signed-in frame of this request (the error page marks no navigation item).
    pub(crate) fn fill(&self, session: &Session) {
        let _ = self.0.set(base(session, ""));
    }
}

/// Lets a handler answer an error with `?` and still get the error page inside its session's
/// frame: the frame is picked up on the way in and put around the error page on the way out.
async fn frame_errors(mut request: Request, next: Next) -> Response {
    let frame = Frame::default();
    request.extensions_mut().insert(frame.clone());
    let response = next.run(request).await;
    match (response.extensions().get::<ErrorShown>(), frame.0.get()) {
        (Some(ErrorShown(shows)), Some(base)) => {
            Page::bare("error.html", with(base.clone(), shows.clone()))
                .status(response.status())
                .into_response()
        }
        _ => response,
    }
}

pub(crate) fn check_csrf(session: &Session, presented: &str) -> Result<(), ApiError> {
    if presented.as_bytes() == session.csrf.as_bytes() {
        Ok(())
    } else {
        Err(ApiError(AdminError::Forbidden(
            "the form expired or came from elsewhere; reload the page and try again".into(),
        )))
    }
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

/// A form that only proves it came from the console.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A form of an audited action.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReasonForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub reason: String,
    /// The held events' discard form of one event type.
    #[serde(default)]
    pub event_type: String,
}

/// Percent-encodes everything but unreserved characters (for a query value we build).
pub(crate) fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
