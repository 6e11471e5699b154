//! Previews of tenants' templates rendered with their sample data: what template authors look at
//! in `tayori dev`, and what the admin console shows.

use tayori_domain::{EventType, Locale, Mailbox, TenantId};

use super::MessageClass;

/// Which set of templates is loaded, so that a page can refresh itself when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatesVersion {
    /// Grows by one at each successful (re)load; the same number means the same templates.
    pub version: u64,
    /// Why the last reload failed, when it did (each problem on its own line, `file:line:
    /// message`); the previous set is still in use then. `None` once a reload succeeds.
    pub reload_error: Option<String>,
}

/// Every tenant with its event types, samples and locales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewCatalog {
    /// The templates these come from.
    pub version: TemplatesVersion,
    /// In the order of their ids.
    pub tenants: Vec<PreviewTenant>,
}

/// One tenant in a [`PreviewCatalog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewTenant {
    /// The tenant.
    pub id: TenantId,
    /// Its sender.
    pub from: Mailbox,
    /// Its default locale.
    pub default_locale: Locale,
    /// In the order of their names.
    pub events: Vec<PreviewEvent>,
}

/// One event type of a tenant in a [`PreviewCatalog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewEvent {
    /// The event type.
    pub event_type: EventType,
    /// False while the tenant does not list it among the event types it accepts: its templates
    /// are checked and can be previewed, but events of this type are not sent.
    pub accepted: bool,
    /// What the template declares.
    pub message_class: MessageClass,
    /// The names of its sample data files, in order.
    pub samples: Vec<String>,
    /// The locales it has templates for, in order (a locale-neutral template is listed under
    /// the tenant's default locale).
    pub locales: Vec<Locale>,
}

/// Which preview to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The event type.
    pub event_type: EventType,
    /// The name of one of the event type's samples.
    pub sample: String,
    /// The recipient's locale; `None` uses the sample's, else the tenant's default.
    pub locale: Option<Locale>,
}

/// An email rendered from a sample, as an author or an operator is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The headers a recipient's mail client shows, in order (`From`, `To`, `Reply-To`,
    /// `Subject`), then tayori's own facts about the email (message class, locale used, mail
    /// service options), each as (name, value).
    pub headers: Vec<(String, String)>,
    /// The subject line.
    pub subject: String,
    /// The HTML part, a whole document: to be shown in a sandboxed frame, never inline.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// True when the event type has no text template and the text was generated from the HTML.
    pub text_generated: bool,
    /// The locale whose templates were used, after fallback.
    pub locale: Locale,
    /// What the template declares.
    pub message_class: MessageClass,
    /// The sample's `data` (recipient and variables) as JSON, sensitive variables masked.
    pub data_json: String,
}

/// Why a preview cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    /// No such tenant, event type or sample.
    #[error("{what}")]
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The templates fail on this sample: what the worker would record as the reason of a
    /// rejection (`file:line: message`).
    #[error("{reason}")]
    Render {
        /// What failed.
        reason: String,
    },
}

/// Renders tenants' templates with their sample data for people to look at.
pub trait TemplatePreviews: Send + Sync {
    /// MUST list every loaded tenant with all its event types (accepted or not), samples and
    /// locales. It MUST not do IO.
    fn catalog(&self) -> PreviewCatalog;

    /// MUST render the sample as the worker would render an event carrying its data, in the
    /// requested locale (with the same fallbacks), and MUST mask the values of the event type's
    /// sensitive variables in everything it returns (the parts, the headers and `data_json`),
    /// since previews are shown on screens and to the console's users. It MUST not do IO.
    fn preview(&self, request: &PreviewRequest) -> Result<Preview, PreviewError>;

    /// MUST return the version of the templates in use, cheaply: pages poll it.
    fn version(&self) -> TemplatesVersion;
}
