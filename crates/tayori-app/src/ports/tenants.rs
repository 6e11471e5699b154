use std::sync::Arc;

use tayori_domain::{Locale, Mailbox, PublisherRules, SendingOptions, TenantId};

/// What tayori knows about one configured tenant (a product).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantProfile {
    /// The tenant.
    pub id: TenantId,
    /// The sender of its emails.
    pub from: Mailbox,
    /// Where replies go, if not to the sender.
    pub reply_to: Option<Mailbox>,
    /// The locale used when an event names none, and the last step of every fallback chain.
    pub default_locale: Locale,
    /// Options for the mail service (SES configuration set and tenant name).
    pub sending: SendingOptions,
    /// The most emails per second this tenant may send, below the account's rate; `None` means
    /// a fair share of the account's rate.
    pub max_send_rate: Option<u32>,
    /// Who may publish events for it (`producers` and `sources`); open when neither is given.
    pub publishers: PublisherRules,
    /// Its share of the send rate while other tenants are waiting too: a tenant of weight 3
    /// gets three sends for every one of a tenant of weight 1 (1 to 1000; 1 when not set).
    pub weight: u32,
}

/// The configured tenants.
pub trait TenantDirectory: Send + Sync {
    /// MUST return the tenant's profile when it is configured, and `None` otherwise. It is
    /// called on every event, so it MUST not do IO.
    fn tenant(&self, id: &TenantId) -> Option<Arc<TenantProfile>>;
}
