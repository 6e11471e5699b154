//! The operators' use cases: find deliveries, see what happened, act on failures (resend one or a
//! window's failed deliveries, replay, suppress, pause a tenant, look at and redrive dead
//! letters), all limited to what a token's role and tenants allow and written to the audit log.
//!
//! Rules kept here, not in the HTTP layer:
//! - a tenant outside a token's scope does not exist for it: its objects answer
//!   [`AdminError::NotFound`], exactly like ids that were never there;
//! - a role that may not do something gets [`AdminError::Forbidden`] (only for objects it can
//!   see);
//! - recipients (in rows and in the stored envelope) are masked unless the role is `admin`;
//! - every action is audited in the same transaction as the change it makes.
//!
//! A resend (or a replay of a rejected event) is a new delivery whose idempotency key is derived
//! from the original — source `tayori:resend` (`tayori:replay`), id `<original delivery id>:<n>`
//! — fed through the same [`EventHandler`] the workers use, in this process: the operator sees
//! its outcome at once, and it goes through the same claim, suppression check, rendering and
//! send. A transient failure is reported, not retried in the background; the operator tries
//! again (with the next `n`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tayori_domain::{
    DeliveryId, EmailAddress, EventType, MaskVariables, TenantId, mask_addresses, mask_body,
};

use crate::handle_event::EventHandler;
use crate::ports::{
    ActivityBoard, AdminStore, AuditEntry, Clock, DeliveryRecord, DeliveryStore, HeldEvents, Role,
    StoreError, TemplatePreviews, TenantScope,
};

mod dead_letters;
mod deliveries;
mod insight;
mod previews;
mod resend;
mod suppressions;
mod tenants;
mod tokens;

pub use dead_letters::{
    DeadLetterContent, DeadLetterPage, DeadLetterQueue, DeadLetterQueues, DeadLetterSummary,
    MAX_REDRIVE, Redriven,
};
pub use deliveries::{DeliveryDetail, UnmatchedFeedbackPage};
pub use insight::StatsWindow;
pub use previews::RenderedPreview;
pub use resend::{ActionResult, FailedResend, FailedResendPage, FailedResends, MAX_FAILED_RESENDS};
pub use suppressions::ShownSuppression;
pub use tenants::{DISCARD_PER_CALL, Discarded};
pub use tokens::{AdminTokens, IssuedToken, TOKEN_PREFIX, token_hash};

/// The token id recorded for actions taken on the command line.
pub const COMMAND_LINE_TOKEN_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Who is asking: a valid token's id, role and tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id.
    pub token_id: String,
    /// What it may do.
    pub role: Role,
    /// Which tenants it sees.
    pub scope: TenantScope,
}

impl Principal {
    /// The command line (`tayori admin tenant ...`): whoever can read the configuration file
    /// and reach the database can do anything, so an admin of every tenant, audited under
    /// [`COMMAND_LINE_TOKEN_ID`].
    pub fn command_line() -> Self {
        Self { token_id: COMMAND_LINE_TOKEN_ID.into(), role: Role::Admin, scope: TenantScope::All }
    }

    /// Whether the role may resend, replay and change suppressions.
    pub fn may_act(&self) -> bool {
        self.role >= Role::Operator
    }

    /// Whether the role sees recipients unmasked.
    pub fn sees_addresses(&self) -> bool {
        self.role == Role::Admin
    }

    fn require_act(&self) -> Result<(), AdminError> {
        if self.may_act() {
            Ok(())
        } else {
            Err(AdminError::Forbidden(format!("the {} role may only read", self.role)))
        }
    }

    pub(crate) fn audit(&self, at: DateTime<Utc>, action: &str) -> AuditEntry {
        AuditEntry {
            at,
            token_id: self.token_id.clone(),
            // The command line's entries read as such, like its token commands'.
            role: match self.token_id.as_str() {
                COMMAND_LINE_TOKEN_ID => "command-line".into(),
                _ => self.role.to_string(),
            },
            action: action.to_owned(),
            tenant: None,
            object_kind: None,
            object_id: None,
            reason: None,
            detail: Value::Object(Default::default()),
        }
    }
}

/// Why an admin request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token, or an unknown, revoked or expired one.
    #[error("a valid token is required")]
    Unauthenticated,
    /// No such object, or one outside the token's tenants (the same answer, on purpose).
    #[error("{0}")]
    NotFound(String),
    /// The role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request cannot be carried out as asked: what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The database cannot be reached; try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data.
    #[error("admin request failed: {0:#}")]
    Unexpected(anyhow::Error),
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => AdminError::Unavailable(cause),
            // What the operator sent cannot be stored as it is (NUL in a reason, ...).
            StoreError::Refused(cause) => AdminError::Invalid(cause),
            StoreError::Unexpected(error) => AdminError::Unexpected(error),
        }
    }
}

pub use crate::ports::{DeliveryFeedback, FeedbackEntry, ReputationThresholds, TenantReputation};

/// The operators' use cases. See the module documentation.
pub struct AdminService {
    /// Deliveries and their attempts.
    pub deliveries: Arc<dyn DeliveryStore>,
    /// Tokens, audit log, suppressions, links, searches.
    pub admin: Arc<dyn AdminStore>,
    /// The same path the workers use, for resends and replays.
    pub handler: Arc<EventHandler>,
    /// The tenants' templates, for listing and previews.
    pub previews: Arc<dyn TemplatePreviews>,
    /// The events held for paused tenants, for discarding them.
    pub held: Arc<dyn HeldEvents>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The rates tenants are judged against: the workers' reputation guard's
    /// (`[feedback] reputation_*`).
    pub reputation_thresholds: ReputationThresholds,
    /// The dead-letter queues; none where this process reads no queue (the command line).
    pub dead_letters: DeadLetterQueues,
    /// What the running workers say their tenants are doing; none where no worker publishes
    /// (SQLite, the command line).
    pub activity: Option<Arc<dyn ActivityBoard>>,
    /// How long a delivery whose send's result is unknown waits for an SES report before it
    /// may be resent, as "not seen by SES" (`[feedback] unknown_send_window_seconds`).
    pub unknown_send_window: std::time::Duration,
}

impl AdminService {
    async fn visible_delivery(
        &self,
        who: &Principal,
        id: DeliveryId,
    ) -> Result<DeliveryRecord, AdminError> {
        let tenants = who.scope.filter();
        self.deliveries
            .delivery(id, tenants.as_deref())
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no delivery {id}")))
    }

    /// Masks what a role that may not see personal data must not see in a delivery: the
    /// recipient, the stored envelope and the raw body (addresses, names, sensitive variables:
    /// all variables of a body that broke the contract) and addresses in the reason (an SES
    /// error text quotes the recipient).
    fn mask_for(&self, who: &Principal, record: &mut DeliveryRecord) {
        if who.sees_addresses() {
            return;
        }
        record.recipient = record.recipient.as_deref().map(masked);
        record.reason = record.reason.as_deref().map(mask_addresses);
        if let Some(json) = &record.event_json {
            let sensitive = record
                .event_type
                .as_deref()
                .and_then(|t| EventType::parse(t).ok())
                .map(|t| self.handler.renderer.sensitive_variables(&record.tenant, &t))
                .unwrap_or_default();
            record.event_json =
                Some(mask_body(json.as_bytes(), MaskVariables::Declared(&sensitive)));
        }
        if let Some(raw) = &record.raw_body {
            record.raw_body = Some(mask_body(raw, MaskVariables::All).into_bytes());
        }
    }

    fn require_tenant(&self, who: &Principal, tenant: &TenantId) -> Result<(), AdminError> {
        if who.scope.includes(tenant) { Ok(()) } else { Err(no_tenant(Some(tenant))) }
    }
}

fn required_reason(reason: &str) -> Result<&str, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() {
        Err(AdminError::Invalid("a reason is required".into()))
    } else if reason.chars().count() > 1000 {
        Err(AdminError::Invalid("the reason must be at most 1000 characters".into()))
    } else {
        Ok(reason)
    }
}

fn no_tenant(tenant: Option<&TenantId>) -> AdminError {
    AdminError::NotFound(match tenant {
        Some(tenant) => format!("no tenant {tenant}"),
        None => "not found".into(),
    })
}

/// `t***@e***.com`, or `***` for what is not an address.
fn masked(raw: &str) -> String {
    EmailAddress::parse(raw).map(|a| a.masked()).unwrap_or_else(|_| "***".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_and_hide() {
        let a = TenantId::parse("acme-bank").expect("valid tenant");
        let b = TenantId::parse("acme-invest").expect("valid tenant");
        let only_a = TenantScope::Only(vec![a.clone()]);
        assert_eq!(only_a.narrowed(None), Ok(Some(vec![a.clone()])));
        assert_eq!(only_a.narrowed(Some(&b)), Err(()));
        assert_eq!(TenantScope::All.narrowed(Some(&b)), Ok(Some(vec![b.clone()])));
        assert_eq!(TenantScope::All.narrowed(None), Ok(None));
    }

    #[test]
    fn reasons_are_required() {
        assert!(matches!(required_reason("  "), Err(AdminError::Invalid(_))));
        assert_eq!(required_reason(" customer asked ").ok(), Some("customer asked"));
    }
}
