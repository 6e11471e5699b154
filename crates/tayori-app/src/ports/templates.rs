use tayori_domain::{Event, EventType, Locale, Subject, TenantId};

use super::TenantProfile;

/// An email's content, rendered from the tenant's template for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// The subject line.
    pub subject: Subject,
    /// The HTML part (variables escaped).
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// The locale whose templates were used, after fallback.
    pub locale: Locale,
    /// Whether the email answers the recipient's own action or is one they subscribed to (and
    /// may unsubscribe from), as the event type's template declares.
    pub message_class: MessageClass,
}

/// What kind of email an event type sends, as its template declares (`transactional` unless it
/// says otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// Sent because of something the recipient did or that concerns their account (a deposit, a
    /// password reset, a security alert): sent whatever their marketing preferences.
    #[default]
    Transactional,
    /// A recurring email the recipient subscribed to (a monthly report): it must carry a way to
    /// unsubscribe (`List-Unsubscribe`) and respect an unsubscription.
    Subscription,
}

impl MessageClass {
    /// `transactional` or `subscription`, as template authors write it.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageClass::Transactional => "transactional",
            MessageClass::Subscription => "subscription",
        }
    }
}

impl std::fmt::Display for MessageClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event cannot be rendered. Every variant is permanent for this event: rendering the
/// same data again gives the same result.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The tenant has no template for the event type.
    #[error("tenant {tenant} has no template for event type {event_type}")]
    NoTemplate {
        /// The tenant.
        tenant: String,
        /// The event type.
        event_type: String,
    },
    /// The template failed on this data (an undefined variable, a failing filter, a subject
    /// that is not one line, ...).
    #[error("{reason}")]
    Template {
        /// What failed, naming the template file.
        reason: String,
    },
}

/// Renders a tenant's template for an event.
pub trait TemplateRenderer: Send + Sync {
    /// MUST render the subject, HTML and text of the tenant's template for `event.event_type`,
    /// choosing the locale from the recipient's, then its fallbacks, then the tenant default.
    /// It MUST escape variables in HTML and MUST fail, never render blanks, on an undefined
    /// variable. When the event type declares a schema for its variables, it MUST check the
    /// event's variables against it and fail with [`RenderError::Template`] naming the schema
    /// error. A failure's reason MUST NOT contain the value of a sensitive variable. It runs on
    /// the worker's threads, so it MUST not do IO.
    fn render(&self, tenant: &TenantProfile, event: &Event) -> Result<RenderedEmail, RenderError>;

    /// The names of the event's variables that are sensitive (an account number, a one-time
    /// code): they are rendered into the email but MUST be masked wherever tayori stores, shows
    /// or logs event data. Empty when the template declares none.
    fn sensitive_variables(&self, tenant: &TenantId, event_type: &EventType) -> Vec<String> {
        let _ = (tenant, event_type);
        Vec::new()
    }

    /// The class of email the tenant's template for this event type sends, as its `event.toml`
    /// declares (`transactional` when it says nothing or there is no such template). Suppression
    /// is checked for this class before rendering.
    fn message_class(&self, tenant: &TenantId, event_type: &EventType) -> MessageClass {
        let _ = (tenant, event_type);
        MessageClass::Transactional
    }
}
