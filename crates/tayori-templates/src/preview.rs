//! [`TemplatePreviews`] on a [`TemplateSet`]: samples rendered for people to look at, with the
//! sensitive variables masked.

use tayori_app::ports::{
    Preview, PreviewCatalog, PreviewError, PreviewEvent, PreviewRequest, PreviewTenant,
    TemplatePreviews, TemplatesVersion,
};
use tayori_domain::Mailbox;

use crate::TemplateSet;
use crate::mask::{mask_data, mask_text};
use crate::render::render_event;
use crate::sample::sample_event;

impl TemplateSet {
    pub(crate) fn catalog_at(&self, version: TemplatesVersion) -> PreviewCatalog {
        let tenants = self
            .tenants
            .iter()
            .map(|(id, tenant)| PreviewTenant {
                id: id.clone(),
                from: tenant.profile.from.clone(),
                default_locale: tenant.profile.default_locale.clone(),
                events: tenant
                    .events
                    .iter()
                    .map(|(event_type, files)| PreviewEvent {
                        event_type: event_type.clone(),
                        accepted: tenant.accepted.contains(event_type),
                        message_class: files.settings.message_class,
                        samples: files.samples.keys().cloned().collect(),
                        locales: self.locales(id, event_type),
                    })
                    .collect(),
            })
            .collect();
        PreviewCatalog { version, tenants }
    }

    pub(crate) fn preview_of(&self, request: &PreviewRequest) -> Result<Preview, PreviewError> {
        let not_found = |what: String| PreviewError::NotFound { what };
        let tenant = self
            .tenants
            .get(&request.tenant)
            .ok_or_else(|| not_found(format!("no tenant {}", request.tenant)))?;
        let files = tenant.events.get(&request.event_type).ok_or_else(|| {
            not_found(format!("tenant {} has no event type {}", request.tenant, request.event_type))
        })?;
        let sample = files.samples.get(&request.sample).ok_or_else(|| {
            not_found(format!("{} has no sample {:?}", files.dir, request.sample))
        })?;
        let sensitive = &files.settings.sensitive_variables;
        let event = sample_event(
            &request.tenant,
            &request.event_type,
            &request.sample,
            &sample.data,
            request.locale.as_ref(),
        )
        .map_err(|(_, reason)| PreviewError::Render { reason })?;
        let mask = |text: &str| mask_text(text, &event.variables, sensitive);
        let rendered = render_event(tenant, &tenant.profile, files, &event)
            .map_err(|failure| PreviewError::Render { reason: mask(&failure.to_string()) })?;
        let email = rendered.email;
        let profile = &tenant.profile;

        let mut headers = vec![("From".to_owned(), mailbox(&profile.from))];
        let to =
            Mailbox { address: event.recipient.email.clone(), name: event.recipient.name.clone() };
        headers.push(("To".to_owned(), mailbox(&to)));
        if let Some(reply_to) = &profile.reply_to {
            headers.push(("Reply-To".to_owned(), mailbox(reply_to)));
        }
        headers.push(("Subject".to_owned(), mask(email.subject.as_str())));
        headers.push(("Message class".to_owned(), email.message_class.to_string()));
        headers.push(("Locale".to_owned(), email.locale.to_string()));
        if let Some(set) = &profile.sending.configuration_set {
            headers.push(("SES configuration set".to_owned(), set.clone()));
        }
        if let Some(name) = &profile.sending.provider_tenant {
            headers.push(("SES tenant".to_owned(), name.clone()));
        }
        if !sensitive.is_empty() {
            headers.push(("Masked variables".to_owned(), sensitive.join(", ")));
        }
        let data = mask_data(&sample.data, sensitive);
        Ok(Preview {
            headers,
            subject: mask(email.subject.as_str()),
            html: mask(&email.html),
            text: mask(&email.text),
            text_generated: rendered.text_generated,
            locale: email.locale,
            message_class: email.message_class,
            data_json: serde_json::to_string_pretty(&data).unwrap_or_default(),
        })
    }
}

/// `Name <address>` as a mail client shows it, or the bare address.
fn mailbox(mailbox: &Mailbox) -> String {
    match &mailbox.name {
        Some(name) if !name.as_str().trim().is_empty() => {
            format!("{} <{}>", name.as_str(), mailbox.address.as_str())
        }
        _ => mailbox.address.as_str().to_owned(),
    }
}

/// A set loaded once is version 1, and never has a reload error.
impl TemplatePreviews for TemplateSet {
    fn catalog(&self) -> PreviewCatalog {
        self.catalog_at(self.version())
    }

    fn preview(&self, request: &PreviewRequest) -> Result<Preview, PreviewError> {
        self.preview_of(request)
    }

    fn version(&self) -> TemplatesVersion {
        TemplatesVersion { version: 1, reload_error: None }
    }
}
