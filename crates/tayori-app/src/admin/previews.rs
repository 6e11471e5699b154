//! The tenants' templates and their previews, rendered with a sample or with posted variables as
//! the worker would render them.

use serde_json::Value;
use tayori_domain::{EventType, Locale, TenantId, decode_message_body};

use super::{AdminError, AdminService, Principal};
use crate::ports::{Preview, PreviewCatalog, PreviewError, PreviewRequest};

/// A rendered template preview from posted variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPreview {
    /// The subject line.
    pub subject: String,
    /// The HTML part, a whole document: show it in a sandboxed frame.
    pub html: String,
    /// The text part.
    pub text: String,
    /// The locale used.
    pub locale: Locale,
}

impl AdminService {
    /// The templates of the principal's tenants.
    pub fn templates(&self, who: &Principal) -> PreviewCatalog {
        let mut catalog = self.previews.catalog();
        catalog.tenants.retain(|t| who.scope.includes(&t.id));
        catalog
    }

    /// A template rendered with one of its samples (sensitive variables masked).
    pub fn preview_sample(
        &self,
        who: &Principal,
        request: &PreviewRequest,
    ) -> Result<Preview, AdminError> {
        self.require_tenant(who, &request.tenant)?;
        self.previews.preview(request).map_err(|error| match error {
            PreviewError::NotFound { what } => AdminError::NotFound(what),
            PreviewError::Render { reason } => AdminError::Invalid(reason),
        })
    }

    /// A template rendered with posted variables, as the worker would render an event carrying
    /// them (to a placeholder recipient).
    pub fn preview_variables(
        &self,
        who: &Principal,
        tenant: &TenantId,
        event_type: &EventType,
        variables: Value,
        locale: Option<&Locale>,
    ) -> Result<RenderedPreview, AdminError> {
        self.require_tenant(who, tenant)?;
        let profile = self
            .handler
            .tenants
            .tenant(tenant)
            .ok_or_else(|| AdminError::NotFound(format!("no tenant {tenant}")))?;
        let mut to = serde_json::json!({ "email": "preview@example.com" });
        if let Some(locale) = locale {
            to["locale"] = Value::String(locale.to_string());
        }
        let envelope = serde_json::json!({
            "specversion": "1.0",
            "id": "preview",
            "source": "tayori:preview",
            "type": event_type.as_str(),
            "tenant": tenant.as_str(),
            "data": { "to": to, "variables": variables },
        });
        let event = decode_message_body(envelope.to_string().as_bytes())
            .map_err(|e| AdminError::Invalid(e.reason))?;
        let rendered = self
            .handler
            .renderer
            .render(&profile, &event)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        Ok(RenderedPreview {
            subject: rendered.subject.as_str().to_owned(),
            html: rendered.html,
            text: rendered.text,
            locale: rendered.locale,
        })
    }
}
