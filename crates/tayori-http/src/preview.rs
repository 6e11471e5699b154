//! The template preview: tenants, event types, and each event type rendered with each of its
//! samples in each of its locales (headers, the HTML in a sandboxed frame, the text), refreshed
//! when the templates change. `tayori dev` serves it; the admin console reuses [`router`].
//!
//! Routes, all `GET`:
//! - `/preview`: the list of tenants and event types (HTML);
//! - `/preview/{tenant}/{event_type}`: every sample in every locale (HTML);
//! - `/preview/{tenant}/{event_type}/html?sample=&locale=`: one rendered HTML part, for the
//!   frame, served with `Content-Security-Policy: sandbox` so it can run no script;
//! - `/preview/{tenant}/{event_type}/json?sample=&locale=`: one preview as JSON;
//! - `/preview/catalog`: the list as JSON;
//! - `/preview/version`: `{"version": n, "reload_error": …}`, which the pages poll to reload
//!   themselves when the templates change.
//!
//! Everything shown comes from the [`TemplatePreviews`] port, which masks sensitive variables;
//! every piece of it is HTML-escaped here.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tayori_app::ports::{
    Preview, PreviewCatalog, PreviewError, PreviewEvent, PreviewRequest, TemplatePreviews,
    TemplatesVersion,
};
use tayori_domain::{EventType, Locale, TenantId};

/// How often the pages ask whether the templates changed.
const POLL_MILLISECONDS: u32 = 1000;

/// The preview routes, under `/preview`.
pub fn router(previews: Arc<dyn TemplatePreviews>) -> Router {
    Router::new()
        .route("/preview", get(index))
        .route("/preview/version", get(version))
        .route("/preview/catalog", get(catalog))
        .route("/preview/{tenant}/{event_type}", get(event_page))
        .route("/preview/{tenant}/{event_type}/html", get(html_part))
        .route("/preview/{tenant}/{event_type}/json", get(preview_json))
        .with_state(previews)
}

type Previews = State<Arc<dyn TemplatePreviews>>;

/// `?sample=&locale=`: both optional (the first sample; the sample's or the tenant's locale).
#[derive(Debug, Default, Deserialize)]
struct PreviewQuery {
    sample: Option<String>,
    locale: Option<String>,
}

/// An answer that is not a preview: what to fix, with its status.
#[derive(Debug)]
enum PreviewProblem {
    BadRequest(String),
    NotFound(String),
    Render(String),
}

impl IntoResponse for PreviewProblem {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            PreviewProblem::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            PreviewProblem::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            PreviewProblem::Render(m) => (StatusCode::UNPROCESSABLE_ENTITY, "render_failed", m),
        };
        (status, Json(serde_json::json!({ "error": error, "message": message }))).into_response()
    }
}

impl From<PreviewError> for PreviewProblem {
    fn from(error: PreviewError) -> Self {
        match error {
            PreviewError::NotFound { what } => PreviewProblem::NotFound(what),
            PreviewError::Render { reason } => PreviewProblem::Render(reason),
        }
    }
}

/// The tenant and event type of a path, parsed.
fn ids(tenant: &str, event_type: &str) -> Result<(TenantId, EventType), PreviewProblem> {
    let tenant = TenantId::parse(tenant)
        .map_err(|e| PreviewProblem::BadRequest(format!("tenant {tenant:?}: {e}")))?;
    let event_type = EventType::parse(event_type)
        .map_err(|e| PreviewProblem::BadRequest(format!("event type {event_type:?}: {e}")))?;
    Ok((tenant, event_type))
}

/// The request for `?sample=&locale=`; without a sample, the event type's first.
fn request(
    previews: &dyn TemplatePreviews,
    tenant: TenantId,
    event_type: EventType,
    query: PreviewQuery,
) -> Result<PreviewRequest, PreviewProblem> {
    let locale = match query.locale.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(raw) => Some(
            Locale::parse(raw).map_err(|e| PreviewProblem::BadRequest(format!("locale: {e}")))?,
        ),
    };
    let sample = match query.sample.filter(|s| !s.is_empty()) {
        Some(sample) => sample,
        None => find_event(&previews.catalog(), &tenant, &event_type)
            .and_then(|event| event.samples.first().cloned())
            .ok_or_else(|| {
                PreviewProblem::NotFound(format!("{tenant}/{event_type} has no samples"))
            })?,
    };
    Ok(PreviewRequest { tenant, event_type, sample, locale })
}

fn find_event<'a>(
    catalog: &'a PreviewCatalog,
    tenant: &TenantId,
    event_type: &EventType,
) -> Option<&'a PreviewEvent> {
    catalog
        .tenants
        .iter()
        .find(|t| &t.id == tenant)?
        .events
        .iter()
        .find(|e| &e.event_type == event_type)
}

#[derive(Debug, Serialize)]
struct VersionBody {
    version: u64,
    reload_error: Option<String>,
}

impl From<TemplatesVersion> for VersionBody {
    fn from(version: TemplatesVersion) -> Self {
        Self { version: version.version, reload_error: version.reload_error }
    }
}

async fn version(State(previews): Previews) -> Json<VersionBody> {
    Json(previews.version().into())
}

#[derive(Debug, Serialize)]
struct CatalogBody {
    version: VersionBody,
    tenants: Vec<TenantBody>,
}

#[derive(Debug, Serialize)]
struct TenantBody {
    id: String,
    from: String,
    default_locale: String,
    events: Vec<EventBody>,
}

#[derive(Debug, Serialize)]
struct EventBody {
    event_type: String,
    accepted: bool,
    message_class: String,
    samples: Vec<String>,
    locales: Vec<String>,
}

async fn catalog(State(previews): Previews) -> Json<CatalogBody> {
    let catalog = previews.catalog();
    Json(CatalogBody {
        version: catalog.version.into(),
        tenants: catalog
            .tenants
            .into_iter()
            .map(|tenant| TenantBody {
                id: tenant.id.to_string(),
                from: tenant.from.address.as_str().to_owned(),
                default_locale: tenant.default_locale.to_string(),
                events: tenant
                    .events
                    .into_iter()
                    .map(|event| EventBody {
                        event_type: event.event_type.to_string(),
                        accepted: event.accepted,
                        message_class: event.message_class.to_string(),
                        samples: event.samples,
                        locales: event.locales.iter().map(ToString::to_string).collect(),
                    })
                    .collect(),
            })
            .collect(),
    })
}

#[derive(Debug, Serialize)]
struct PreviewBody {
    headers: Vec<(String, String)>,
    subject: String,
    html: String,
    text: String,
    text_generated: bool,
    locale: String,
    message_class: String,
    data: serde_json::Value,
}

async fn preview_json(
    State(previews): Previews,
    Path((tenant, event_type)): Path<(String, String)>,
    Query(query): Query<PreviewQuery>,
) -> Result<Json<PreviewBody>, PreviewProblem> {
    let (tenant, event_type) = ids(&tenant, &event_type)?;
    let request = request(previews.as_ref(), tenant, event_type, query)?;
    let preview = previews.preview(&request)?;
    Ok(Json(PreviewBody {
        data: serde_json::from_str(&preview.data_json).unwrap_or(serde_json::Value::Null),
        headers: preview.headers,
        subject: preview.subject,
        html: preview.html,
        text: preview.text,
        text_generated: preview.text_generated,
        locale: preview.locale.to_string(),
        message_class: preview.message_class.to_string(),
    }))
}

/// One HTML part, alone, for the frame. The sandbox policy keeps a template (or a variable
/// that slipped through escaping) from running script in the preview's origin.
async fn html_part(
    State(previews): Previews,
    Path((tenant, event_type)): Path<(String, String)>,
    Query(query): Query<PreviewQuery>,
) -> Response {
    let result = ids(&tenant, &event_type)
        .and_then(|(tenant, event_type)| request(previews.as_ref(), tenant, event_type, query))
        .and_then(|request| previews.preview(&request).map_err(PreviewProblem::from));
    let (status, body) = match result {
        Ok(preview) => (StatusCode::OK, preview.html),
        Err(problem) => {
            let (status, message) = match problem {
                PreviewProblem::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
                PreviewProblem::NotFound(m) => (StatusCode::NOT_FOUND, m),
                PreviewProblem::Render(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            };
            (status, format!("<!DOCTYPE html><pre>{}</pre>", escape(&message)))
        }
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `<`, `>`, `&`, `"` and `'` as entities: for text and attribute values alike.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI','Hiragino Sans',Meiryo,\
sans-serif;margin:0;color:#1f2328;background:#f6f8fa}header{background:#24292f;color:#fff;\
padding:12px 24px}header a{color:#fff}main{padding:16px 24px}h1{font-size:20px;margin:0}\
h2{font-size:16px;margin:24px 0 8px}table.headers{border-collapse:collapse;font-size:13px;\
margin:8px 0}table.headers th{text-align:left;color:#57606a;padding:2px 12px 2px 0;\
font-weight:normal;white-space:nowrap}table.headers td{padding:2px 0}.parts{display:flex;\
gap:16px;flex-wrap:wrap}iframe{width:640px;max-width:100%;height:640px;border:1px solid #d0d7de;\
background:#fff}pre{white-space:pre-wrap;font-size:13px;background:#fff;border:1px solid #d0d7de;\
padding:12px;margin:0;max-width:640px;overflow:auto}section{background:#fff;border:1px solid \
#d0d7de;border-radius:6px;padding:12px 16px;margin:16px 0}.error{background:#ffebe9;\
border-color:#cf222e;color:#82071e}.badge{display:inline-block;font-size:11px;padding:1px 6px;\
border-radius:8px;background:#ddf4ff;margin-left:6px}.off{background:#fff8c5}li{margin:4px 0}\
.muted{color:#57606a;font-size:12px}";

/// The page around `content`: the title, the last reload's error if any, and the script that
/// reloads the page when the templates change.
fn page(title: &str, version: &TemplatesVersion, content: &str) -> Html<String> {
    let mut html = String::with_capacity(content.len() + 4096);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — tayori \
         preview</title><style>{STYLE}</style></head><body><header><h1><a href=\"/preview\">\
         tayori preview</a> · {}</h1></header><main>",
        escape(title),
        escape(title)
    );
    if let Some(error) = &version.reload_error {
        let _ = write!(
            html,
            "<section class=\"error\"><strong>The templates on disk have problems; the ones \
             shown are the last that loaded.</strong><pre class=\"error\">{}</pre></section>",
            escape(error)
        );
    }
    html.push_str(content);
    // The version and the error as the page shows them: any change reloads it.
    let shown =
        serde_json::json!({ "version": version.version, "reload_error": version.reload_error });
    let _ = write!(
        html,
        "<p class=\"muted\">templates version {}; this page reloads when they change.</p></main>\
         <script>const shown={};async function poll(){{try{{const r=await fetch('/preview/version',\
         {{cache:'no-store'}});const v=await r.json();if(v.version!==shown.version||\
         v.reload_error!==shown.reload_error){{location.reload();return}}}}catch(e){{}}\
         setTimeout(poll,{POLL_MILLISECONDS})}}setTimeout(poll,{POLL_MILLISECONDS});</script>\
         </body></html>",
        version.version,
        // JSON in a script: `<` escaped so that no value can close the element.
        shown.to_string().replace('<', "\\u003c")
    );
    Html(html)
}

async fn index(State(previews): Previews) -> Html<String> {
    let catalog = previews.catalog();
    let mut content = String::new();
    if catalog.tenants.is_empty() {
        content.push_str("<p>No tenants.</p>");
    }
    for tenant in &catalog.tenants {
        let _ = write!(
            content,
            "<section><h2>{} <span class=\"muted\">{} · default locale {}</span></h2><ul>",
            escape(tenant.id.as_str()),
            escape(tenant.from.address.as_str()),
            escape(tenant.default_locale.as_str())
        );
        for event in &tenant.events {
            let locales: Vec<&str> = event.locales.iter().map(Locale::as_str).collect();
            let _ = write!(
                content,
                "<li><a href=\"/preview/{}/{}\">{}</a><span class=\"badge\">{}</span>{}\
                 <span class=\"muted\"> {} · samples: {}</span></li>",
                escape(tenant.id.as_str()),
                escape(event.event_type.as_str()),
                escape(event.event_type.as_str()),
                escape(event.message_class.as_str()),
                if event.accepted {
                    ""
                } else {
                    "<span class=\"badge off\">not in event_types: not sent</span>"
                },
                escape(&locales.join(", ")),
                escape(&event.samples.join(", "))
            );
        }
        content.push_str("</ul></section>");
    }
    page("templates", &catalog.version, &content)
}

async fn event_page(
    State(previews): Previews,
    Path((tenant, event_type)): Path<(String, String)>,
) -> Result<Html<String>, PreviewProblem> {
    let (tenant, event_type) = ids(&tenant, &event_type)?;
    let catalog = previews.catalog();
    let event = find_event(&catalog, &tenant, &event_type).ok_or_else(|| {
        PreviewProblem::NotFound(format!("no event type {event_type} for tenant {tenant}"))
    })?;
    let mut content = String::new();
    for sample in &event.samples {
        for locale in &event.locales {
            let request = PreviewRequest {
                tenant: tenant.clone(),
                event_type: event_type.clone(),
                sample: sample.clone(),
                locale: Some(locale.clone()),
            };
            let _ = write!(
                content,
                "<section><h2>sample {} · {}</h2>",
                escape(sample),
                escape(locale.as_str())
            );
            match previews.preview(&request) {
                Ok(preview) => {
                    section(&mut content, &tenant, &event_type, sample, locale, &preview)
                }
                Err(error) => {
                    let _ = write!(
                        content,
                        "<pre class=\"error\">{}</pre>",
                        escape(&error.to_string())
                    );
                }
            }
            content.push_str("</section>");
        }
    }
    let title = format!("{tenant} / {event_type}");
    Ok(page(&title, &catalog.version, &content))
}

/// Headers, the HTML in a sandboxed frame, the text and the (masked) data of one preview.
fn section(
    content: &mut String,
    tenant: &TenantId,
    event_type: &EventType,
    sample: &str,
    locale: &Locale,
    preview: &Preview,
) {
    content.push_str("<table class=\"headers\">");
    for (name, value) in &preview.headers {
        let _ = write!(content, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value));
    }
    let src = format!(
        "/preview/{}/{}/html?sample={}&locale={}",
        tenant.as_str(),
        event_type.as_str(),
        sample,
        locale.as_str()
    );
    let text_label = if preview.text_generated { "text (generated from the HTML)" } else { "text" };
    let _ = write!(
        content,
        "</table><div class=\"parts\"><div><div class=\"muted\">HTML</div><iframe sandbox=\"\" \
         loading=\"lazy\" src=\"{}\" title=\"{}\"></iframe></div><div><div class=\"muted\">{}\
         </div><pre>{}</pre><div class=\"muted\">data (sensitive variables masked)</div>\
         <pre>{}</pre></div></div>",
        escape(&src),
        escape(&preview.subject),
        text_label,
        escape(&preview.text),
        escape(&preview.data_json)
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tayori_app::ports::{MessageClass, PreviewTenant};
    use tayori_domain::{EmailAddress, Mailbox};
    use tower::ServiceExt;

    use super::*;

    /// One tenant `t1` with event type `e1` (samples `a`, `b`; locales ja, en) and `e2` (not
    /// accepted, whose preview fails); records the requests.
    struct FakePreviews {
        version: Mutex<TemplatesVersion>,
        requests: Mutex<Vec<PreviewRequest>>,
    }

    impl FakePreviews {
        fn new() -> Self {
            Self {
                version: Mutex::new(TemplatesVersion { version: 3, reload_error: None }),
                requests: Mutex::new(Vec::new()),
            }
        }
    }

    impl TemplatePreviews for FakePreviews {
        fn catalog(&self) -> PreviewCatalog {
            let event = |name: &str, accepted| PreviewEvent {
                event_type: EventType::parse(name).unwrap(),
                accepted,
                message_class: MessageClass::Transactional,
                samples: vec!["a".into(), "b".into()],
                locales: vec![Locale::parse("ja").unwrap(), Locale::parse("en").unwrap()],
            };
            PreviewCatalog {
                version: self.version(),
                tenants: vec![PreviewTenant {
                    id: TenantId::parse("t1").unwrap(),
                    from: Mailbox {
                        address: EmailAddress::parse("a@t1.example").unwrap(),
                        name: None,
                    },
                    default_locale: Locale::parse("ja").unwrap(),
                    events: vec![event("e1", true), event("e2", false)],
                }],
            }
        }

        fn preview(&self, request: &PreviewRequest) -> Result<Preview, PreviewError> {
            self.requests.lock().unwrap().push(request.clone());
            if request.event_type.as_str() == "e2" {
                return Err(PreviewError::Render { reason: "t1/e2/body.html:3: <oops>".into() });
            }
            if request.sample == "missing" {
                return Err(PreviewError::NotFound { what: "no sample missing".into() });
            }
            Ok(Preview {
                headers: vec![("Subject".into(), "Hi <b>".into())],
                subject: "Hi <b>".into(),
                html: "<p>html part</p><script>alert(1)</script>".into(),
                text: "text <part>".into(),
                text_generated: false,
                locale: request.locale.clone().unwrap_or_else(|| Locale::parse("ja").unwrap()),
                message_class: MessageClass::Transactional,
                data_json: "{\"variables\": {\"code\": \"***\"}}".into(),
            })
        }

        fn version(&self) -> TemplatesVersion {
            self.version.lock().unwrap().clone()
        }
    }

    async fn get(
        previews: Arc<FakePreviews>,
        uri: &str,
    ) -> (StatusCode, Vec<(String, String)>, String) {
        let response =
            router(previews).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_index_lists_tenants_and_event_types() {
        let (status, _, body) = get(Arc::new(FakePreviews::new()), "/preview").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<a href=\"/preview/t1/e1\">e1</a>"), "{body}");
        assert!(body.contains("not in event_types"), "{body}");
        assert!(body.contains("const shown={"), "{body}");
        assert!(body.contains("\"version\":3"), "{body}");
    }

    #[tokio::test]
    async fn the_event_page_shows_every_sample_in_every_locale_escaped() {
        let previews = Arc::new(FakePreviews::new());
        let (status, _, body) = get(previews.clone(), "/preview/t1/e1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(previews.requests.lock().unwrap().len(), 4);
        for (sample, locale) in [("a", "ja"), ("a", "en"), ("b", "ja"), ("b", "en")] {
            let src = format!("src=\"/preview/t1/e1/html?sample={sample}&amp;locale={locale}\"");
            assert!(body.contains(&src), "{src} in {body}");
        }
        assert!(body.contains("<iframe sandbox=\"\""), "{body}");
        assert!(body.contains("<td>Hi &lt;b&gt;</td>"), "{body}");
        assert!(body.contains("<pre>text &lt;part&gt;</pre>"), "{body}");
        assert!(!body.contains("<script>alert"), "the HTML part is only in the frame: {body}");
        // A failing preview shows its reason, escaped.
        let (status, _, body) = get(previews, "/preview/t1/e2").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("t1/e2/body.html:3: &lt;oops&gt;"), "{body}");
    }

    #[tokio::test]
    async fn the_html_part_is_served_sandboxed() {
        let previews = Arc::new(FakePreviews::new());
        let (status, headers, body) =
            get(previews.clone(), "/preview/t1/e1/html?sample=b&locale=en").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "<p>html part</p><script>alert(1)</script>");
        let csp = headers.iter().find(|(k, _)| k == "content-security-policy").unwrap();
        assert!(csp.1.starts_with("sandbox;"), "{csp:?}");
        let request = previews.requests.lock().unwrap().pop().unwrap();
        assert_eq!((request.sample.as_str(), request.locale.unwrap().as_str()), ("b", "en"));
        // Without a sample: the first one; without a locale: none.
        let _ = get(previews.clone(), "/preview/t1/e1/html").await;
        let request = previews.requests.lock().unwrap().pop().unwrap();
        assert_eq!((request.sample.as_str(), request.locale), ("a", None));
        let (status, _, body) = get(previews, "/preview/t1/e2/html").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains("&lt;oops&gt;"), "{body}");
    }

    #[tokio::test]
    async fn json_routes() {
        let previews = Arc::new(FakePreviews::new());
        let (status, _, body) = get(previews.clone(), "/preview/t1/e1/json?sample=a").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["subject"], "Hi <b>");
        assert_eq!(json["data"]["variables"]["code"], "***");
        let (status, _, body) = get(previews.clone(), "/preview/t1/e1/json?sample=missing").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _, _) = get(previews.clone(), "/preview/t1/e1/json?locale=ja_JP").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = get(previews.clone(), "/preview/Bad%20Tenant/e1/json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, body) = get(previews.clone(), "/preview/catalog").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["tenants"][0]["events"][1]["accepted"], false);

        *previews.version.lock().unwrap() =
            TemplatesVersion { version: 4, reload_error: Some("x.html:1: <bad>".into()) };
        let (_, _, body) = get(previews.clone(), "/preview/version").await;
        assert_eq!(body, r#"{"version":4,"reload_error":"x.html:1: <bad>"}"#);
        let (_, _, page) = get(previews, "/preview").await;
        assert!(page.contains("x.html:1: &lt;bad&gt;"), "{page}");
        assert!(page.contains("\\u003cbad>"), "no raw < in the script: {page}");
    }
}
