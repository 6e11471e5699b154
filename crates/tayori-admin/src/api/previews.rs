//! The templates of the token's tenants and their previews, with a sample or posted variables.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use tayori_app::ports::PreviewRequest;
use tayori_domain::{EventType, Locale, TenantId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{required_tenant, tenant_param};
use crate::AdminState;
use crate::auth::Bearer;
use crate::error::{ApiError, ErrorBody};

/// This capability's routes with their documentation.
pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(templates))
        .routes(routes!(preview_sample, preview_variables))
}

/// One event type's templates.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TemplateView {
    /// The tenant.
    pub tenant: String,
    /// The event type.
    pub event_type: String,
    /// Whether the tenant accepts events of this type.
    pub accepted: bool,
    /// `transactional` or `subscription`.
    pub message_class: String,
    /// Its sample data files.
    pub samples: Vec<String>,
    /// The locales it has templates for.
    pub locales: Vec<String>,
}

/// `?tenant=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TenantParams {
    /// Only this tenant.
    pub tenant: Option<String>,
}

pub(crate) fn template_views(
    state: &AdminState,
    who: &tayori_app::Principal,
    tenant: Option<&TenantId>,
) -> Result<Vec<TemplateView>, ApiError> {
    if let Some(tenant) = tenant
        && !who.scope.includes(tenant)
    {
        return Err(ApiError(tayori_app::AdminError::NotFound(format!("no tenant {tenant}"))));
    }
    let catalog = state.service.templates(who);
    Ok(catalog
        .tenants
        .iter()
        .filter(|t| tenant.is_none_or(|only| &t.id == only))
        .flat_map(|t| {
            t.events.iter().map(|e| TemplateView {
                tenant: t.id.to_string(),
                event_type: e.event_type.to_string(),
                accepted: e.accepted,
                message_class: e.message_class.to_string(),
                samples: e.samples.clone(),
                locales: e.locales.iter().map(ToString::to_string).collect(),
            })
        })
        .collect())
}

/// The templates of the token's tenants.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(TenantParams),
    responses((status = 200, body = Vec<TemplateView>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn templates(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Query(params): Query<TenantParams>,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    let tenant = tenant_param(params.tenant.as_deref())?;
    Ok(Json(template_views(&state, &who, tenant.as_ref())?))
}

/// A rendered preview.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreviewView {
    /// The subject.
    pub subject: String,
    /// The HTML part (a whole document; show it in a sandboxed frame).
    pub html: String,
    /// The text part.
    pub text: String,
    /// The locale used.
    pub locale: String,
}

/// `?sample=&locale=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SampleParams {
    /// The sample's name (default: the first).
    pub sample: Option<String>,
    /// The locale (default: the sample's, else the tenant's).
    pub locale: Option<String>,
}

fn event_type(raw: &str) -> Result<EventType, ApiError> {
    EventType::parse(raw).map_err(|e| ApiError::bad_request(format!("event type: {e}")))
}

fn locale(raw: Option<&str>) -> Result<Option<Locale>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| Locale::parse(s).map_err(|e| ApiError::bad_request(format!("locale: {e}"))))
        .transpose()
}

pub(crate) fn sample_preview(
    state: &AdminState,
    who: &tayori_app::Principal,
    tenant: &str,
    event: &str,
    params: &SampleParams,
) -> Result<PreviewView, ApiError> {
    let tenant = required_tenant(tenant)?;
    let event_type = event_type(event)?;
    let sample = match params.sample.clone().filter(|s| !s.is_empty()) {
        Some(sample) => sample,
        None => template_views(state, who, Some(&tenant))?
            .into_iter()
            .find(|t| t.event_type == event_type.as_str())
            .and_then(|t| t.samples.into_iter().next())
            .ok_or_else(|| {
                ApiError(tayori_app::AdminError::NotFound(format!(
                    "no samples for {tenant}/{event_type}"
                )))
            })?,
    };
    let request =
        PreviewRequest { tenant, event_type, sample, locale: locale(params.locale.as_deref())? };
    let preview = state.service.preview_sample(who, &request)?;
    Ok(PreviewView {
        subject: preview.subject,
        html: preview.html,
        text: preview.text,
        locale: preview.locale.to_string(),
    })
}

/// Render an event type's template with one of its samples (sensitive variables masked).
#[utoipa::path(get, path = "/api/v1/templates/{tenant}/{event_type}/preview", tag = "templates",
    params(("tenant" = String, Path, description = "The tenant"),
        ("event_type" = String, Path, description = "The event type"), SampleParams),
    responses((status = 200, body = PreviewView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn preview_sample(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path((tenant, event)): Path<(String, String)>,
    Query(params): Query<SampleParams>,
) -> Result<Json<PreviewView>, ApiError> {
    Ok(Json(sample_preview(&state, &who, &tenant, &event, &params)?))
}

/// Variables to render a template with.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct VariablesBody {
    /// The event's `data.variables`.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// The recipient's locale.
    pub locale: Option<String>,
}

/// Render an event type's template with posted variables.
#[utoipa::path(post, path = "/api/v1/templates/{tenant}/{event_type}/preview", tag = "templates",
    params(("tenant" = String, Path, description = "The tenant"),
        ("event_type" = String, Path, description = "The event type")),
    request_body = VariablesBody,
    responses((status = 200, body = PreviewView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn preview_variables(
    State(state): State<AdminState>,
    Bearer(who): Bearer,
    Path((tenant, event)): Path<(String, String)>,
    Json(body): Json<VariablesBody>,
) -> Result<Json<PreviewView>, ApiError> {
    let tenant = required_tenant(&tenant)?;
    let locale = locale(body.locale.as_deref())?;
    let preview = state.service.preview_variables(
        &who,
        &tenant,
        &event_type(&event)?,
        body.variables,
        locale.as_ref(),
    )?;
    Ok(Json(PreviewView {
        subject: preview.subject,
        html: preview.html,
        text: preview.text,
        locale: preview.locale.to_string(),
    }))
}
