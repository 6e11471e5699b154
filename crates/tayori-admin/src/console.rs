//! The operator console under `/console`: server-rendered pages (tera, autoescaped), plain forms
//! and one small script for keyboard shortcuts. Sign-in (same-origin posts only, throttled per
//! client address) puts an opaque session id in an HttpOnly, SameSite=Strict cookie, `Secure`
//! unless the binary says otherwise; every form carries the session's CSRF token; every page is
//! served with a strict Content-Security-Policy. Data comes from the same use cases as the API, so
//! scoping and masking are the same.

use std::sync::OnceLock;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;
use tayori_app::AdminError;
use tayori_app::admin::StatsWindow;
use tayori_app::ports::DeliverySearch;
use tayori_domain::{DeliveryStatus, EmailAddress};

use crate::AdminState;
use crate::api::{
    AuditParams, ResendFailedBody, SampleParams, SearchParams, audit_views, dead_letter_queue,
    delivery_id, encode_cursor, event_type_param, resend_failed_view, sample_preview,
    template_views, tenant_param,
};
use crate::auth::{ClientAddr, NoSession, SESSION_COOKIE, Session};
use crate::error::ApiError;
use crate::views::{
    ActionView, CountView, DeadLettersView, DeliveryDetailView, DeliverySummary, HeldView,
    PausedView, SuppressionView, UnkeyedView, UnmatchedFeedbackView,
};

/// Scripts only from our own origin (the one file below), no plugins, no framing of the console;
/// inline styles are allowed because emails in the preview frame use them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

const SCRIPT: &str = include_str!("../templates/console.js");

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/console", get(dashboard))
        .route("/console/app.js", get(script))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/deliveries", get(deliveries))
        .route("/console/deliveries/resend-failed", post(resend_failed))
        .route("/console/deliveries/{id}", get(delivery))
        .route("/console/deliveries/{id}/resend", post(resend))
        .route("/console/deliveries/{id}/replay", post(replay))
        .route("/console/rejected", get(rejected))
        .route("/console/dead-letters", get(dead_letters))
        .route("/console/dead-letters/redrive", post(redrive_dead_letters))
        .route("/console/rejected/unkeyed/{sha256}/replay", post(replay_unkeyed))
        .route("/console/suppressions", get(suppressions).post(add_suppression))
        .route("/console/suppressions/remove", post(remove_suppression))
        .route("/console/templates", get(templates))
        .route("/console/templates/{tenant}/{event_type}", get(template_preview))
        .route("/console/tenants", get(tenants))
        .route("/console/tenants/{tenant}/pause", post(pause_tenant))
        .route("/console/tenants/{tenant}/resume", post(resume_tenant))
        .route("/console/tenants/{tenant}/held", get(held_events))
        .route("/console/tenants/{tenant}/held/discard", post(discard_held))
        .route("/console/audit", get(audit))
}

fn tera() -> &'static tera::Tera {
    static TERA: OnceLock<tera::Tera> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut tera = tera::Tera::default();
        // Autoescaping is what makes hostile data inert: every template is an `.html` name and
        // autoescape is set explicitly (the injection tests check it).
        tera.autoescape_on(vec![".html"]);
        let templates = [
            ("base.html", include_str!("../templates/base.html")),
            ("sign_in.html", include_str!("../templates/sign_in.html")),
            ("dashboard.html", include_str!("../templates/dashboard.html")),
            ("deliveries.html", include_str!("../templates/deliveries.html")),
            ("delivery.html", include_str!("../templates/delivery.html")),
            ("rejected.html", include_str!("../templates/rejected.html")),
            ("suppressions.html", include_str!("../templates/suppressions.html")),
            ("templates.html", include_str!("../templates/templates.html")),
            ("preview.html", include_str!("../templates/preview.html")),
            ("tenants.html", include_str!("../templates/tenants.html")),
            ("held.html", include_str!("../templates/held.html")),
            ("resent.html", include_str!("../templates/resent.html")),
            ("dead_letters.html", include_str!("../templates/dead_letters.html")),
            ("audit.html", include_str!("../templates/audit.html")),
            ("error.html", include_str!("../templates/error.html")),
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

fn page(name: &str, context: serde_json::Value) -> Response {
    let context = match tera::Context::from_value(context) {
        Ok(context) => context,
        Err(error) => return failure(&error),
    };
    match tera().render(name, &context) {
        Ok(body) => {
            let mut response = Html(body).into_response();
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

fn failure(error: &dyn std::error::Error) -> Response {
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

fn with(mut context: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(target), serde_json::Value::Object(extra)) = (context.as_object_mut(), extra) {
        target.extend(extra);
    }
    context
}

fn error_page(session: Option<&Session>, error: ApiError) -> Response {
    let (status, code, message) = error.parts();
    let context = match session {
        Some(session) => base(session, ""),
        None => json!({ "nav": "" }),
    };
    let mut response = page(
        "error.html",
        with(context, json!({ "status": status.as_u16(), "code": code, "message": message })),
    );
    *response.status_mut() = status;
    response
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn => Redirect::to("/console/sign-in").into_response(),
            NoSession::Failed(error) => error_page(None, error),
        }
    }
}

fn check_csrf(session: &Session, presented: &str) -> Result<(), ApiError> {
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

// ---- sign in and out ----

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    token: String,
}

async fn sign_in_page() -> Response {
    page("sign_in.html", json!({ "nav": "" }))
}

async fn sign_in(
    State(state): State<AdminState>,
    client: ClientAddr,
    uri: Uri,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    let refused = |status: StatusCode, error: &str| {
        let mut response = page("sign_in.html", json!({ "nav": "", "error": error }));
        *response.status_mut() = status;
        response
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
        return failure(&std::io::Error::other(format!("no secure randomness: {error}")));
    }
    match state.sessions.sign_in(form.token.trim(), &client.to_string(), random).await {
        Ok(signed_in) => {
            let cookie = Cookie::build((SESSION_COOKIE, signed_in.session_id))
                .http_only(true)
                .secure(state.secure_cookies)
                .same_site(SameSite::Strict)
                .path("/console")
                .build();
            (jar.add(cookie), Redirect::to("/console")).into_response()
        }
        Err(AdminError::Unauthenticated) => {
            refused(StatusCode::UNAUTHORIZED, "That token is unknown, revoked or expired.")
        }
        Err(other) => error_page(None, ApiError(other)),
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

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AdminState>,
    session: Session,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(error) = check_csrf(&session, &form.csrf) {
        return error_page(Some(&session), error);
    }
    // The session ends in the database: its cookie, replayed, signs nobody in.
    if let Err(error) = state.sessions.sign_out(&session.id).await {
        return error_page(Some(&session), ApiError(error));
    }
    let cookie = Cookie::build((SESSION_COOKIE, "")).path("/console").build();
    (jar.remove(cookie), Redirect::to("/console/sign-in")).into_response()
}

// ---- pages ----

async fn dashboard(State(state): State<AdminState>, session: Session) -> Response {
    let who = &session.principal;
    let mut windows = Vec::new();
    for (name, window) in
        [("hour", StatsWindow::Hour), ("day", StatsWindow::Day), ("week", StatsWindow::Week)]
    {
        match state.service.stats(who, None, window).await {
            Ok(counts) => windows.push(json!({
                "name": name,
                "counts": counts.iter().map(CountView::from).collect::<Vec<_>>(),
            })),
            Err(error) => return error_page(Some(&session), ApiError(error)),
        }
    }
    let failures =
        DeliverySearch { status: Some(DeliveryStatus::Failed), limit: 10, ..Default::default() };
    let failures = match state.service.search_deliveries(who, None, failures).await {
        Ok(page) => page.deliveries.iter().map(DeliverySummary::from).collect::<Vec<_>>(),
        Err(error) => return error_page(Some(&session), ApiError(error)),
    };
    let paused = match state.service.paused_tenants(who, None).await {
        Ok(paused) => paused.iter().map(PausedView::from).collect::<Vec<_>>(),
        Err(error) => return error_page(Some(&session), ApiError(error)),
    };
    page(
        "dashboard.html",
        with(
            base(&session, "dashboard"),
            json!({ "windows": windows, "failures": failures, "paused": paused }),
        ),
    )
}

async fn deliveries(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<SearchParams>,
) -> Response {
    let form = json!({
        "tenant": params.tenant, "status": params.status, "event_type": params.event_type,
        "recipient": params.recipient, "from": params.from, "until": params.until,
        "not_resent": params.not_resent.unwrap_or(false),
    });
    // A bulk resend's window must not move while it pages: an open end is fixed at the next
    // whole second (rounding down would leave out what failed in this one).
    let resend_until = params.until.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| {
        let next_second = chrono::Utc::now() + chrono::Duration::seconds(1);
        next_second.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    let result = match params.parse() {
        Ok((tenant, search)) => state
            .service
            .search_deliveries(&session.principal, tenant.as_ref(), search)
            .await
            .map_err(ApiError),
        Err(error) => Err(error),
    };
    let context = match result {
        Ok(page) => json!({
            "form": form,
            "deliveries": page.deliveries.iter().map(DeliverySummary::from).collect::<Vec<_>>(),
            "next": page.next.as_ref().map(encode_cursor),
            "resend_until": resend_until,
        }),
        Err(error) => json!({ "form": form, "deliveries": [], "error": error.parts().2 }),
    };
    page("deliveries.html", with(base(&session, "deliveries"), context))
}

#[derive(Debug, Default, Deserialize)]
struct DoneParams {
    done: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

async fn delivery(
    State(state): State<AdminState>,
    session: Session,
    Path(id): Path<String>,
    Query(done): Query<DoneParams>,
) -> Response {
    let detail = match delivery_id(&id) {
        Ok(id) => state.service.delivery(&session.principal, id).await.map_err(ApiError),
        Err(error) => Err(error),
    };
    match detail {
        Ok(detail) => {
            let view = DeliveryDetailView::from(&detail);
            let event = view.event.as_ref().and_then(|e| serde_json::to_string_pretty(e).ok());
            page(
                "delivery.html",
                with(
                    base(&session, "deliveries"),
                    json!({
                        "d": view, "event_pretty": event,
                        "done": done.done, "done_status": done.status, "done_reason": done.reason,
                    }),
                ),
            )
        }
        Err(error) => error_page(Some(&session), error),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// The held events' discard form of one event type.
    #[serde(default)]
    event_type: String,
}

fn after_action(
    origin: &str,
    result: Result<tayori_app::admin::ActionResult, AdminError>,
) -> Result<Response, ApiError> {
    let done = result?;
    let view = ActionView::from(&done);
    let new = view.delivery_id.unwrap_or_default();
    let mut url = format!("/console/deliveries/{origin}?done={new}&status={}", view.status);
    if let Some(reason) = &view.reason {
        url.push_str("&reason=");
        url.push_str(&percent_encode(reason));
    }
    Ok(Redirect::to(&url).into_response())
}

/// Percent-encodes everything but unreserved characters (for a query value we build).
fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn resend(
    State(state): State<AdminState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        check_csrf(&session, &form.csrf)?;
        let parsed = delivery_id(&id)?;
        after_action(&id, state.service.resend(&session.principal, parsed, &form.reason).await)
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(&session), error))
}

async fn replay(
    State(state): State<AdminState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        check_csrf(&session, &form.csrf)?;
        let parsed = delivery_id(&id)?;
        after_action(
            &id,
            state.service.replay_delivery(&session.principal, parsed, &form.reason).await,
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(&session), error))
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
) -> Response {
    let result = async {
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
            let has_status = |item: &&crate::api::ResendFailedItem| {
                item.result.as_ref().is_some_and(|result| result.status == wanted)
            };
            view.items.iter().filter(has_status).count()
        };
        // Sent now, or found sent by a racing call; `processing`: throttled, finished next time.
        let (resent, undecided) = (status_count("sent"), status_count("processing"));
        Ok::<_, ApiError>(json!({
            "form": {
                "tenant": form.tenant, "event_type": form.event_type, "from": form.from,
                "until": form.until, "reason": form.reason,
            },
            "items": view.items,
            "next": view.next,
            "resent": resent,
            "undecided": undecided,
        }))
    }
    .await;
    match result {
        Ok(context) => page("resent.html", with(base(&session, "deliveries"), context)),
        Err(error) => error_page(Some(&session), error),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DeadLetterQuery {
    queue: Option<String>,
    message: Option<String>,
}

async fn dead_letters(
    State(state): State<AdminState>,
    session: Session,
    Query(query): Query<DeadLetterQuery>,
) -> Response {
    let who = &session.principal;
    let result = async {
        let queue = dead_letter_queue(query.queue.as_deref())?;
        let page = state.service.dead_letters(who, queue, 100).await?;
        Ok::<_, ApiError>(DeadLettersView::of(queue, &page))
    }
    .await;
    let queue = query.queue.clone().unwrap_or_else(|| "events".into());
    let context = match result {
        Ok(view) => json!({ "view": view, "queue": queue }),
        Err(error) => json!({ "error": error.parts().2, "queue": queue }),
    };
    let may_redrive = who.may_act() && who.scope == tayori_app::ports::TenantScope::All;
    let extra = json!({ "may_redrive": may_redrive, "message": query.message });
    page("dead_letters.html", with(with(base(&session, "dead-letters"), context), extra))
}

#[derive(Debug, Default, Deserialize)]
struct RedriveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    max: String,
}

async fn redrive_dead_letters(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<RedriveForm>,
) -> Response {
    let result = async {
        check_csrf(&session, &form.csrf)?;
        let max = form
            .max
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("max: not a number: {:?}", form.max)))?;
        let queue = dead_letter_queue(Some(&form.queue))?;
        let who = &session.principal;
        let done = state.service.redrive_dead_letters(who, queue, max, &form.reason).await?;
        let message = match done.stopped {
            None => {
                format!("{} dead letters moved back to the {} queue.", done.moved, queue.as_str())
            }
            Some(why) => format!(
                "{} dead letters moved back, then the redrive stopped: {why}. Run it again.",
                done.moved
            ),
        };
        let to = format!(
            "/console/dead-letters?queue={}&message={}",
            queue.as_str(),
            percent_encode(&message)
        );
        Ok::<_, ApiError>(Redirect::to(&to).into_response())
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(&session), error))
}

async fn rejected(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<SearchParams>,
) -> Response {
    let who = &session.principal;
    let search = SearchParams { status: Some("rejected".into()), ..params };
    let result = async {
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
        Ok::<_, ApiError>(json!({
            "deliveries": deliveries,
            "next": page.next.as_ref().map(encode_cursor),
            "unkeyed": unkeyed.iter().map(UnkeyedView::from).collect::<Vec<_>>(),
            "unmatched": unmatched.iter().map(UnmatchedFeedbackView::from).collect::<Vec<_>>(),
        }))
    }
    .await;
    match result {
        Ok(context) => page("rejected.html", with(base(&session, "rejected"), context)),
        Err(error) => error_page(Some(&session), error),
    }
}

async fn replay_unkeyed(
    State(state): State<AdminState>,
    session: Session,
    Path(sha256): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    let result = async {
        check_csrf(&session, &form.csrf)?;
        let done = state.service.replay_unkeyed(&session.principal, &sha256, &form.reason).await?;
        let to = match done.delivery_id {
            Some(id) => format!("/console/deliveries/{id}"),
            None => "/console/rejected".to_owned(),
        };
        Ok::<_, ApiError>(Redirect::to(&to).into_response())
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(&session), error))
}

#[derive(Debug, Default, Deserialize)]
struct SuppressionFilter {
    tenant: Option<String>,
    address: Option<String>,
    message: Option<String>,
}

async fn suppressions(
    State(state): State<AdminState>,
    session: Session,
    Query(filter): Query<SuppressionFilter>,
) -> Response {
    let result = async {
        let tenant = tenant_param(filter.tenant.as_deref())?;
        let address = filter
            .address
            .as_deref()
            .filter(|a| !a.trim().is_empty())
            .map(|a| {
                EmailAddress::parse(a.trim())
                    .map_err(|e| ApiError::bad_request(format!("address: {e}")))
            })
            .transpose()?;
        Ok::<_, ApiError>(
            state.service.suppressions(&session.principal, tenant.as_ref(), address, 200).await?,
        )
    }
    .await;
    let context = match result {
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
    page("suppressions.html", with(base(&session, "suppressions"), context))
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
) -> Response {
    let result = async {
        check_csrf(&session, &form.csrf)?;
        let tenant = tenant_param(Some(&form.tenant))?
            .ok_or_else(|| ApiError::bad_request("tenant: required"))?;
        let address = EmailAddress::parse(form.address.trim())
            .map_err(|e| ApiError::bad_request(format!("address: {e}")))?;
        let added = state
            .service
            .add_suppression(&session.principal, &tenant, &address, &form.reason)
            .await?;
        let message = if added { "Suppressed." } else { "That address was suppressed already." };
        Ok::<_, ApiError>(
            Redirect::to(&format!("/console/suppressions?message={}", percent_encode(message)))
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(&session), error))
}

async fn remove_suppression(
    State(state): State<AdminState>,
    session: Session,
    Form(form): Form<SuppressionForm>,
) -> Response {
    let result = async {
        check_csrf(&session, &form.csrf)?;
        let tenant = tenant_param(Some(&form.tenant))?
            .ok_or_else(|| ApiError::bad_request("tenant: required"))?;
        let address = EmailAddress::parse(form.address.trim())
            .map_err(|e| ApiError::bad_request(format!("address: {e}")))?;
        state
            .service
            .remove_suppression(&session.principal, &tenant, &address, &form.reason)
            .await?;
        Ok::<_, ApiError>(Redirect::to("/console/suppressions?message=Removed.").into_response())
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(&session), error))
}

async fn templates(State(state): State<AdminState>, session: Session) -> Response {
    match template_views(&state, &session.principal, None) {
        Ok(list) => {
            page("templates.html", with(base(&session, "templates"), json!({ "templates": list })))
        }
        Err(error) => error_page(Some(&session), error),
    }
}

async fn template_preview(
    State(state): State<AdminState>,
    session: Session,
    Path((tenant, event)): Path<(String, String)>,
    Query(params): Query<SampleParams>,
) -> Response {
    let result = sample_preview(&state, &session.principal, &tenant, &event, &params);
    let samples = tenant_param(Some(&tenant))
        .ok()
        .flatten()
        .and_then(|t| template_views(&state, &session.principal, Some(&t)).ok())
        .and_then(|list| list.into_iter().find(|v| v.event_type == event));
    match result {
        Ok(preview) => page(
            "preview.html",
            with(
                base(&session, "templates"),
                json!({ "tenant": tenant, "event_type": event, "p": preview, "template": samples,
                        "sample": params.sample }),
            ),
        ),
        Err(error) => error_page(Some(&session), error),
    }
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
) -> Response {
    let who = &session.principal;
    let name = params.window.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "day".into());
    let result = async {
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
        Ok::<_, ApiError>(json!({
            "tenants": rows,
            "window": name,
            "bounce_threshold": percent(thresholds.bounce_rate),
            "complaint_threshold": percent(thresholds.complaint_rate),
            "min_sent": thresholds.min_sent,
            "message": params.message,
        }))
    }
    .await;
    match result {
        Ok(context) => page("tenants.html", with(base(&session, "tenants"), context)),
        Err(error) => error_page(Some(&session), error),
    }
}

async fn pause_tenant(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    act_on_tenant(&state, &session, &tenant, &form, TenantAction::Pause).await
}

async fn resume_tenant(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
    act_on_tenant(&state, &session, &tenant, &form, TenantAction::Resume).await
}

/// A tenant's held events: counts by event type, the oldest 50, and the discard form.
async fn held_events(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
) -> Response {
    let who = &session.principal;
    let result = async {
        let tenant = tenant_param(Some(&tenant))?
            .ok_or_else(|| ApiError::bad_request("tenant: required"))?;
        let held = state.service.held_events(who, &tenant, 50).await?;
        let paused = state.service.paused_tenants(who, Some(&tenant)).await?;
        Ok::<_, ApiError>(json!({
            "tenant": tenant.to_string(),
            "held": HeldView::from(&held),
            "pause": paused.first().map(PausedView::from),
        }))
    }
    .await;
    match result {
        Ok(context) => page("held.html", with(base(&session, "tenants"), context)),
        Err(error) => error_page(Some(&session), error),
    }
}

async fn discard_held(
    State(state): State<AdminState>,
    session: Session,
    Path(tenant): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Response {
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
) -> Response {
    let result = async {
        check_csrf(session, &form.csrf)?;
        let tenant =
            tenant_param(Some(tenant))?.ok_or_else(|| ApiError::bad_request("tenant: required"))?;
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
        Ok::<_, ApiError>(
            Redirect::to(&format!("/console/tenants?message={}", percent_encode(&message)))
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(Some(session), error))
}

async fn audit(
    State(state): State<AdminState>,
    session: Session,
    Query(params): Query<AuditParams>,
) -> Response {
    let form = json!({
        "tenant": params.tenant, "token_id": params.token_id, "action": params.action,
        "object_id": params.object_id,
    });
    let context = match audit_views(&state, &session.principal, &params).await {
        Ok(entries) => json!({ "entries": entries, "form": form }),
        Err(error) => json!({ "entries": [], "form": form, "error": error.parts().2 }),
    };
    page("audit.html", with(base(&session, "audit"), context))
}
