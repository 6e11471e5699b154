//! What the admin use cases need from storage: operators' tokens, the audit log, suppressions,
//! links from resent and replayed deliveries to their origin, searches and counts.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{
    DeliveryId, DeliveryStatus, EmailAddress, EventType, FeedbackStatus, TenantId,
};

use super::{DeliveryCursor, DeliveryPage, StoreError, UnkeyedRejectionRecord};

/// What a token may do. `admin` does everything; `operator` reads and acts (resend, replay,
/// suppressions); `viewer` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and acts on deliveries and suppressions.
    Operator,
    /// Everything, including unmasked recipients and tokens.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be admin, operator or viewer, got {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Which tenants a token may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant, also rows without a tenant (unkeyed rejections).
    All,
    /// Only these (never empty).
    Only(Vec<TenantId>),
}

impl TenantScope {
    /// Whether the tenant is in scope.
    pub fn includes(&self, tenant: &TenantId) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(tenants) => tenants.contains(tenant),
        }
    }

    /// The tenants to filter on: `None` for every tenant.
    pub fn filter(&self) -> Option<Vec<TenantId>> {
        match self {
            TenantScope::All => None,
            TenantScope::Only(tenants) => Some(tenants.clone()),
        }
    }

    /// The filter for a request that may narrow the scope to one tenant: `Err(())` when that
    /// tenant is out of scope (callers answer as if it did not exist).
    #[allow(clippy::result_unit_err)]
    pub fn narrowed(&self, tenant: Option<&TenantId>) -> Result<Option<Vec<TenantId>>, ()> {
        match tenant {
            Some(tenant) if self.includes(tenant) => Ok(Some(vec![tenant.clone()])),
            Some(_) => Err(()),
            None => Ok(self.filter()),
        }
    }
}

/// SES feedback kept without a delivery: it matched none (`unmatched`), or could not be read
/// (`invalid`). It names no tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedFeedbackRecord {
    /// The feedback identity (`sns:<MessageId>`, `eventbridge:<id>`, `sha256:<hex>`).
    pub feedback_id: String,
    /// `unmatched` or `invalid`.
    pub result: String,
    /// The SES event kind, when it was read.
    pub kind: Option<String>,
    /// The SES message id, when it was read.
    pub ses_message_id: Option<String>,
    /// Why it is kept.
    pub reason: Option<String>,
    /// When tayori received it.
    pub received_at: DateTime<Utc>,
}

/// Where a page of unmatched feedback ended: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedFeedbackCursor {
    /// The last row's arrival.
    pub received_at: DateTime<Utc>,
    /// The last row's identity.
    pub feedback_id: String,
}

/// A token as stored (never the token itself: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id, shown in the audit log.
    pub token_id: String,
    /// What it may do.
    pub role: Role,
    /// Which tenants it sees.
    pub scope: TenantScope,
    /// A note on whom it is for.
    pub label: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One entry of the audit log, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: the token's id (the nil UUID for the command line).
    pub token_id: String,
    /// The role it had.
    pub role: String,
    /// What, e.g. `delivery.resend`.
    pub action: String,
    /// On which tenant, when the object has one.
    pub tenant: Option<TenantId>,
    /// The kind of object, e.g. `delivery`.
    pub object_kind: Option<String>,
    /// The object's id.
    pub object_id: Option<String>,
    /// The reason the operator gave.
    pub reason: Option<String>,
    /// Anything else worth keeping, as a JSON object.
    pub detail: serde_json::Value,
}

/// One entry of the audit log, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position in the log (grows).
    pub audit_id: i64,
    /// The entry.
    pub entry: AuditEntry,
}

/// A search of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only these tenants' entries; `None` also includes entries without a tenant.
    pub tenants: Option<Vec<TenantId>>,
    /// Only this token's.
    pub token_id: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries about this object.
    pub object_id: Option<String>,
    /// Entries older than this one.
    pub before: Option<i64>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// A search of deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliverySearch {
    /// Only these tenants; `None` means every tenant.
    pub tenants: Option<Vec<TenantId>>,
    /// Only this outcome.
    pub status: Option<DeliveryStatus>,
    /// Only this event type.
    pub event_type: Option<EventType>,
    /// Only this recipient (exact match).
    pub recipient: Option<EmailAddress>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Only deliveries with no decided resend: none made, or the ones made still `processing`
    /// (throttled, or their sender stopped) or never handled.
    pub not_resent: bool,
    /// Start after this row.
    pub after: Option<DeliveryCursor>,
    /// At most this many (capped at 500 by stores).
    pub limit: u32,
}

/// How a delivery was made from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// An operator sent the email again.
    Resend,
    /// An operator fed a rejected event through again after a fix.
    Replay,
}

impl LinkKind {
    /// The name stored, and the event source of the derived key (`tayori:<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Resend => "resend",
            LinkKind::Replay => "replay",
        }
    }
}

/// One entry of a delivery's feedback timeline: what SES said about the email
/// (docs/feedback.md).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackEntry {
    /// The feedback identity (`sns:…`, `eventbridge:…`, `sha256:…`).
    pub feedback_id: String,
    /// `delivery`, `bounce`, `complaint`, … (see `FeedbackKind::name`).
    pub kind: String,
    /// `Permanent/General`, `abuse`, a reject reason, a delay type, a link.
    pub detail: Option<String>,
    /// The recipients it is about.
    pub recipients: Vec<String>,
    /// When it happened by SES's clock.
    pub occurred_at: Option<DateTime<Utc>>,
    /// When tayori recorded it.
    pub received_at: DateTime<Utc>,
}

/// What SES said about a delivery: where it stands and the timeline, in SES's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFeedback {
    /// The feedback status by precedence; `None` before any feedback.
    pub status: Option<FeedbackStatus>,
    /// The entries, oldest first.
    pub timeline: Vec<FeedbackEntry>,
}

/// A delivery made from another one by an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLink {
    /// The tenant of both.
    pub tenant: TenantId,
    /// The new delivery.
    pub delivery_id: DeliveryId,
    /// The one it was made from.
    pub origin: DeliveryId,
    /// Resend or replay.
    pub kind: LinkKind,
    /// The how-many-th of its kind from this origin (1, 2, ...): part of the derived key.
    pub n: u32,
    /// Why the operator did it.
    pub reason: String,
    /// The token that did it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An address a tenant must not mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionEntry {
    /// The tenant.
    pub tenant: TenantId,
    /// The address.
    pub address: EmailAddress,
    /// Why (shown to operators and recorded as the delivery's reason).
    pub reason: String,
    /// What caused it: `operator` for now; the feedback loop adds `bounce` and `complaint`.
    pub cause: String,
    /// Who added it (a token id, or the feedback loop).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A search of suppressions.
#[derive(Debug, Clone, Default)]
pub struct SuppressionQuery {
    /// Only these tenants; `None` means every tenant.
    pub tenants: Option<Vec<TenantId>>,
    /// Only this address.
    pub address: Option<EmailAddress>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// How many deliveries a tenant has in one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The tenant.
    pub tenant: TenantId,
    /// The outcome (or `processing`).
    pub status: DeliveryStatus,
    /// How many.
    pub count: u64,
}

/// A tenant's sent deliveries over a window and how many of them SES reported bounced or
/// complained about (each delivery counted once, by its feedback status: a complaint wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReputationCount {
    /// The tenant.
    pub tenant: TenantId,
    /// Deliveries decided `sent` in the window.
    pub sent: u64,
    /// Of those, with feedback status `bounced`.
    pub bounced: u64,
    /// Of those, with feedback status `complained`.
    pub complained: u64,
}

/// A tenant whose sending is paused for every worker until an operator resumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPause {
    /// The tenant.
    pub tenant: TenantId,
    /// Why: the operator's reason, or the reputation guard's rates and thresholds.
    pub reason: String,
    /// Since when.
    pub paused_at: DateTime<Utc>,
    /// The operator's token id; `None` when the reputation guard paused it.
    pub paused_by: Option<String>,
    /// The tenant's events held until the resume.
    pub held_events: u64,
    /// When the oldest of them was held.
    pub oldest_held_at: Option<DateTime<Utc>>,
}

/// Storage for the admin use cases: tokens, the audit log, suppressions, delivery links, and
/// searches over deliveries. Every read that takes tenants MUST return nothing of another
/// tenant; times come from the caller.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Stores a new token by the SHA-256 (hex) of its secret. It MUST record `audit` in the same
    /// transaction.
    async fn create_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// The token whose secret has this SHA-256 (hex), revoked or not, or `None`.
    async fn token_by_hash(&self, secret_sha256: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Notes that a token was used.
    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; `false` when there is no such token or it was revoked already. It MUST
    /// record `audit` in the same transaction when it revokes.
    async fn revoke_token(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Appends to the audit log.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Reads the audit log, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deliveries matching the search, newest first, one page (keyset pagination).
    async fn search_deliveries(&self, search: &DeliverySearch) -> Result<DeliveryPage, StoreError>;

    /// Per tenant (only `tenants`, when given), deliveries decided `sent` at or after `since`
    /// and how many of them bounced or drew a complaint (see [`ReputationCount`]). Tenants
    /// without such deliveries MUST be left out.
    async fn reputation_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<ReputationCount>, StoreError>;

    /// Pauses the tenant's sending for every worker, as the audit entry's token with its reason
    /// and time: MUST record the pause and write the audit entry in one transaction and return
    /// true; when the tenant is paused already (by anyone) it MUST change nothing, audit
    /// nothing, and return false.
    async fn pause_tenant(&self, tenant: &TenantId, audit: &AuditEntry)
    -> Result<bool, StoreError>;

    /// Lifts the tenant's pause (an operator's or the reputation guard's): MUST set its resume
    /// time and write the audit entry in one transaction and return true; when the tenant is not
    /// paused it MUST change nothing, audit nothing, and return false.
    async fn resume_tenant(
        &self,
        tenant: &TenantId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Makes the tenant's `unknown` deliveries (sends whose result is unknown) decided before
    /// `decided_before` `failed`, `reason_prefix` put before their reason, so that they can be
    /// resent: no SES report came for them within the unknown-send window. Only `only`, when
    /// given. It MUST write one audit entry per delivery changed (the entry given, with the
    /// delivery as its object) in the same transaction, and return the deliveries changed.
    async fn expire_unknown_sends(
        &self,
        tenant: &TenantId,
        only: Option<DeliveryId>,
        decided_before: DateTime<Utc>,
        reason_prefix: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<DeliveryId>, StoreError>;

    /// The tenants paused now (only `tenants`, when given), by tenant.
    async fn paused_tenants(
        &self,
        tenants: Option<&[TenantId]>,
    ) -> Result<Vec<TenantPause>, StoreError>;

    /// Counts of deliveries created at or after `since`, per tenant and status.
    async fn outcome_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutcomeCount>, StoreError>;

    /// The highest `n` of links of this kind from this origin (0 when none).
    async fn last_link_number(
        &self,
        tenant: &TenantId,
        origin: DeliveryId,
        kind: LinkKind,
    ) -> Result<u32, StoreError>;

    /// Records a link with its audit entry in one transaction. `false` (and nothing recorded)
    /// when a link of this kind and `n` from this origin exists already: the caller takes the
    /// next `n`.
    async fn record_link(
        &self,
        link: &DeliveryLink,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// The links that start or end at this delivery.
    async fn links(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<Vec<DeliveryLink>, StoreError>;

    /// What SES said about this delivery (empty when no feedback is consumed).
    async fn feedback(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<DeliveryFeedback, StoreError>;

    /// Unkeyed rejections, most recently seen first; with `tenants`, only those naming one of
    /// them.
    async fn unkeyed_rejections(
        &self,
        tenants: Option<&[TenantId]>,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError>;

    /// SES feedback kept without a delivery, newest first, starting after `after`.
    async fn unmatched_feedback(
        &self,
        after: Option<&UnmatchedFeedbackCursor>,
        limit: u32,
    ) -> Result<Vec<UnmatchedFeedbackRecord>, StoreError>;

    /// One unkeyed rejection by the SHA-256 of its body.
    async fn unkeyed_rejection(
        &self,
        body_sha256: &str,
    ) -> Result<Option<UnkeyedRejectionRecord>, StoreError>;

    /// Notes a replay of an unkeyed rejection and what came of it, with its audit entry.
    async fn record_unkeyed_replay(
        &self,
        body_sha256: &str,
        at: DateTime<Utc>,
        result: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// Suppressions, newest first.
    async fn suppressions(
        &self,
        query: &SuppressionQuery,
    ) -> Result<Vec<SuppressionEntry>, StoreError>;

    /// Adds a suppression for all mail of the tenant, with its audit entry; `false` (nothing
    /// changed, nothing audited) when the address is suppressed already.
    async fn add_suppression(
        &self,
        entry: &SuppressionEntry,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Removes the tenant's suppression of the address, with its audit entry; `false` (nothing
    /// audited) when there was none.
    async fn remove_suppression(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}
