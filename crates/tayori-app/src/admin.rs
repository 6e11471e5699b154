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

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tayori_domain::{
    DeliveryId, DeliveryStatus, EmailAddress, EventSource, EventType, IdempotencyKey, Locale,
    MaskVariables, TenantId, decode_message_body, mask_addresses, mask_body, mask_link,
};
use tracing::info;

use crate::handle_event::{EventHandler, Handled, InboundMessage};
use crate::ports::{
    ActivityBoard, AdminStore, AttemptRecord, AuditEntry, AuditQuery, AuditRecord, Clock,
    DeadLetterDepth, DeadLetterError, DeadLetters, DeliveryCursor, DeliveryLink, DeliveryPage,
    DeliveryRecord, DeliverySearch, DeliveryStore, HeldEvent, HeldEvents, HeldSummary, LeasedEvent,
    LinkKind, OutcomeCount, Preview, PreviewCatalog, PreviewError, PreviewRequest, Role,
    StoreError, SuppressionEntry, SuppressionQuery, TemplatePreviews, TenantActivity, TenantPause,
    TenantScope, TokenRecord, UnkeyedRejectionRecord, UnmatchedFeedbackCursor,
    UnmatchedFeedbackRecord,
};

/// The token id recorded for actions taken on the command line.
pub const COMMAND_LINE_TOKEN_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Every token starts with this, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "tyr_";

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

/// Held events one [`AdminService::discard_held`] call decides at most: a call stays within an
/// HTTP request's time; the operator calls again for the rest.
pub const DISCARD_PER_CALL: u64 = 10_000;

/// How long a discard leases each held event: the release rounds leave it alone meanwhile.
const DISCARD_LEASE: Duration = Duration::minutes(5);

/// What a discard of held events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Events decided `rejected` (or found decided before) and no longer held.
    pub discarded: u64,
    /// Events that could not be decided now; still held.
    pub left: u64,
    /// The tenant's held events after the call (of the event type asked for, when one was),
    /// the ones beyond this call's limit included.
    pub remaining: u64,
}

/// A token just made: the secret is shown once and never stored (nor in `Debug`).
#[derive(Clone)]
pub struct IssuedToken {
    /// What to put in `Authorization: Bearer ...`.
    pub secret: String,
    /// What is stored.
    pub record: TokenRecord,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("secret", &"***").field("record", &self.record).finish()
    }
}

/// The SHA-256 (hex) under which a token's secret is stored.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A delivery with everything the detail page shows.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    /// The delivery (recipient masked unless the role is admin).
    pub record: DeliveryRecord,
    /// The send attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// Deliveries made from this one, and the one it was made from.
    pub links: Vec<DeliveryLink>,
    /// What SES said about it (recipients masked unless the role is admin).
    pub feedback: DeliveryFeedback,
    /// Why it cannot be resent, when it cannot.
    pub not_resendable: Option<String>,
}

/// What came of a resend or replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionResult {
    /// The new delivery; `None` when a replayed body still yields no key.
    pub delivery_id: Option<DeliveryId>,
    /// Its status after handling (`processing` when a transient failure left it for later).
    pub status: DeliveryStatus,
    /// The outcome's reason, or what was transient.
    pub reason: Option<String>,
}

/// Which of a tenant's failed deliveries a bulk resend takes ([`AdminService::resend_failed`]).
#[derive(Debug, Clone)]
pub struct FailedResends {
    /// Created at or after: the start of the incident. Required, as is `until`, so that a bulk
    /// resend names its window and a later call over the same window cannot reach the resends
    /// it made (which may fail too).
    pub from: DateTime<Utc>,
    /// Created before.
    pub until: DateTime<Utc>,
    /// Only this event type.
    pub event_type: Option<EventType>,
    /// Go on after this delivery: the previous page's `next`.
    pub after: Option<DeliveryCursor>,
    /// Deliveries taken by this call, 1 to [`MAX_FAILED_RESENDS`].
    pub limit: u32,
    /// Only say what would be resent; send nothing, record nothing.
    pub dry_run: bool,
}

/// Failed deliveries one [`AdminService::resend_failed`] call takes at most: each is sent in
/// turn while the request waits.
pub const MAX_FAILED_RESENDS: u32 = 500;

/// One failed delivery taken by a bulk resend.
#[derive(Debug)]
pub struct FailedResend {
    /// The failed delivery (the recipient masked unless the role is admin).
    pub origin: DeliveryRecord,
    /// What came of its resend; `None` in a dry run for one that would be resent. An error
    /// says why it cannot be resent (sensitive variables, no kept body).
    pub result: Option<Result<ActionResult, AdminError>>,
}

/// A page of a bulk resend: the deliveries it took, newest first, and where the next call goes
/// on (`None` once the window has no more failed deliveries not yet resent).
#[derive(Debug)]
pub struct FailedResendPage {
    /// The deliveries taken.
    pub items: Vec<FailedResend>,
    /// The cursor for the next call.
    pub next: Option<DeliveryCursor>,
}

/// Dead letters one [`AdminService::redrive_dead_letters`] call moves at most: a call stays
/// within an HTTP request's time.
pub const MAX_REDRIVE: u64 = 10_000;

/// Which dead-letter queue: the events queue's or the SES feedback queue's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadLetterQueue {
    /// Products' events the workers could not decide.
    #[default]
    Events,
    /// SES notifications the workers could not record.
    Feedback,
}

impl DeadLetterQueue {
    /// Its name in the API and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Feedback => "feedback",
        }
    }

    /// From its name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "events" => Some(Self::Events),
            "feedback" => Some(Self::Feedback),
            _ => None,
        }
    }
}

/// The dead-letter queues a process can look at (none on the command line).
#[derive(Clone, Default)]
pub struct DeadLetterQueues {
    /// The events queue's.
    pub events: Option<Arc<dyn DeadLetters>>,
    /// The SES feedback queue's, when the workers consume feedback.
    pub feedback: Option<Arc<dyn DeadLetters>>,
}

/// What a dead letter carries, read from its body (never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterContent {
    /// A product's event.
    Event {
        /// Its idempotency key.
        key: IdempotencyKey,
        /// Its type.
        event_type: EventType,
    },
    /// An SES notification.
    Feedback {
        /// `bounce`, `complaint`, `delivery`, ...
        kind: &'static str,
        /// The email's SES message id.
        ses_message_id: Option<String>,
        /// The tenant and delivery from the email's tags.
        tenant: Option<TenantId>,
        /// The delivery from the email's tags.
        delivery_id: Option<DeliveryId>,
    },
    /// Why the body could not be read (a worker rejects or records it as invalid once
    /// redriven).
    Unreadable(String),
}

impl DeadLetterContent {
    /// The tenant it names, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Event { key, .. } => Some(&key.tenant),
            Self::Feedback { tenant, .. } => tenant.as_ref(),
            Self::Unreadable(_) => None,
        }
    }

    fn read(queue: DeadLetterQueue, body: &[u8]) -> Self {
        match queue {
            DeadLetterQueue::Events => match decode_message_body(body) {
                Ok(event) => Self::Event { key: event.key, event_type: event.event_type },
                Err(error) => Self::Unreadable(error.to_string()),
            },
            DeadLetterQueue::Feedback => match tayori_domain::parse_feedback(body) {
                Ok(feedback) => Self::Feedback {
                    kind: feedback.kind.name(),
                    ses_message_id: feedback.ses_message_id,
                    tenant: feedback.tenant,
                    delivery_id: feedback.delivery_id,
                },
                Err(error) => Self::Unreadable(error.reason),
            },
        }
    }
}

/// A message of a dead-letter queue as operators see it: when, how often received, and what it
/// carries; never the body (it holds the recipient's data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    /// The queue's id of the message.
    pub message_id: String,
    /// First sent to its source queue.
    pub sent_at: Option<DateTime<Utc>>,
    /// Receives so far, peeks included.
    pub receive_count: u32,
    /// The body's size in bytes.
    pub size: usize,
    /// What it carries.
    pub content: DeadLetterContent,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Messages moved back to the events queue.
    pub moved: u64,
    /// Why it stopped before `max` with messages left (the queue service failing part way);
    /// what it moved stays moved.
    pub stopped: Option<String>,
}

/// What the dead-letter queue holds, as a principal may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// The queue's depth; only for tokens of every tenant (it counts every tenant's messages).
    pub depth: Option<DeadLetterDepth>,
    /// A sample of its messages in the principal's tenants, oldest first.
    pub messages: Vec<DeadLetterSummary>,
}

/// A suppression as shown to a principal: the address masked unless the role is admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownSuppression {
    /// The tenant.
    pub tenant: TenantId,
    /// The address, or its masked form.
    pub address: String,
    /// Why.
    pub reason: String,
    /// What caused it.
    pub cause: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A page of SES feedback kept without a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedFeedbackPage {
    /// Newest first.
    pub feedback: Vec<UnmatchedFeedbackRecord>,
    /// Where the next page starts, if there is one.
    pub next: Option<UnmatchedFeedbackCursor>,
}

pub use crate::ports::{DeliveryFeedback, FeedbackEntry, ReputationThresholds, TenantReputation};

/// A time window for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsWindow {
    /// The last hour.
    Hour,
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
}

impl StatsWindow {
    /// Parses `hour`, `day` or `week`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
            Self::Week => Duration::days(7),
        }
    }
}

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

/// Operators' tokens: made (shown once, stored hashed), listed, revoked, checked. Usable without
/// the rest of the service, as the command line does.
pub struct AdminTokens {
    /// Where tokens and the audit log live.
    pub admin: Arc<dyn AdminStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl AdminTokens {
    /// Makes a token. `by` is the admin who asks, or `None` on the command line. `random` must
    /// come from a cryptographically secure source: 32 bytes of secret, 16 of token id.
    pub async fn issue(
        &self,
        by: Option<&Principal>,
        role: Role,
        scope: TenantScope,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
        random: [u8; 48],
    ) -> Result<IssuedToken, AdminError> {
        if let Some(by) = by
            && by.role != Role::Admin
        {
            return Err(AdminError::Forbidden("only the admin role manages tokens".into()));
        }
        if matches!(&scope, TenantScope::Only(tenants) if tenants.is_empty()) {
            return Err(AdminError::Invalid("a scoped token needs at least one tenant".into()));
        }
        let now = self.clock.now();
        let mut id_bytes = [0u8; 16];
        id_bytes.copy_from_slice(&random[32..]);
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(&random[..32]));
        let record = TokenRecord {
            token_id: format_uuid_v4(id_bytes),
            role,
            scope,
            label: label.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let mut audit = match by {
            Some(by) => by.audit(now, "token.create"),
            None => command_line_audit(now, "token.create"),
        };
        audit.object_kind = Some("token".into());
        audit.object_id = Some(record.token_id.clone());
        audit.detail = serde_json::json!({
            "role": role.as_str(),
            "tenants": scope_names(&record.scope),
            "label": label,
            "expires_at": expires_at,
        });
        self.admin.create_token(&record, &token_hash(&secret), &audit).await?;
        Ok(IssuedToken { secret, record })
    }

    /// Every token (admins of every tenant, and the command line).
    pub async fn list(&self, by: Option<&Principal>) -> Result<Vec<TokenRecord>, AdminError> {
        if by.is_some_and(|p| p.role != Role::Admin || p.scope != TenantScope::All) {
            return Err(AdminError::Forbidden(
                "only the admin role of every tenant lists tokens".into(),
            ));
        }
        Ok(self.admin.tokens().await?)
    }

    /// Revokes a token at once.
    pub async fn revoke(&self, by: Option<&Principal>, token_id: &str) -> Result<(), AdminError> {
        if by.is_some_and(|p| p.role != Role::Admin) {
            return Err(AdminError::Forbidden("only the admin role manages tokens".into()));
        }
        let now = self.clock.now();
        let mut audit = match by {
            Some(by) => by.audit(now, "token.revoke"),
            None => command_line_audit(now, "token.revoke"),
        };
        audit.object_kind = Some("token".into());
        audit.object_id = Some(token_id.to_owned());
        if self.admin.revoke_token(token_id, now, &audit).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!("no active token {token_id}")))
        }
    }

    /// The principal behind a presented secret: unknown, revoked and expired tokens are
    /// [`AdminError::Unauthenticated`].
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, AdminError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Err(AdminError::Unauthenticated);
        }
        let token = self
            .admin
            .token_by_hash(&token_hash(secret))
            .await?
            .ok_or(AdminError::Unauthenticated)?;
        let now = self.clock.now();
        if token.revoked_at.is_some() || token.expires_at.is_some_and(|end| end <= now) {
            return Err(AdminError::Unauthenticated);
        }
        // Written at most once a minute per token, so reads stay reads.
        if token.last_used_at.is_none_or(|last| now - last > Duration::minutes(1)) {
            self.admin.touch_token(&token.token_id, now).await?;
        }
        Ok(Principal { token_id: token.token_id, role: token.role, scope: token.scope })
    }
}

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
    /// Token management over this service's store and clock.
    pub fn token_manager(&self) -> AdminTokens {
        AdminTokens { admin: self.admin.clone(), clock: self.clock.clone() }
    }

    /// See [`AdminTokens::issue`].
    pub async fn issue_token(
        &self,
        by: Option<&Principal>,
        role: Role,
        scope: TenantScope,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
        random: [u8; 48],
    ) -> Result<IssuedToken, AdminError> {
        self.token_manager().issue(by, role, scope, label, expires_at, random).await
    }

    /// See [`AdminTokens::list`].
    pub async fn tokens(&self, by: Option<&Principal>) -> Result<Vec<TokenRecord>, AdminError> {
        self.token_manager().list(by).await
    }

    /// See [`AdminTokens::revoke`].
    pub async fn revoke_token(
        &self,
        by: Option<&Principal>,
        token_id: &str,
    ) -> Result<(), AdminError> {
        self.token_manager().revoke(by, token_id).await
    }

    /// See [`AdminTokens::authenticate`].
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, AdminError> {
        self.token_manager().authenticate(secret).await
    }

    /// Searches deliveries in the principal's tenants (narrowed to `tenant` when given).
    pub async fn search_deliveries(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        mut search: DeliverySearch,
    ) -> Result<DeliveryPage, AdminError> {
        search.tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let mut page = self.admin.search_deliveries(&search).await?;
        // A role that sees addresses masked can still ask whether one was mailed: that
        // question is personal data too, so it is on the record (the address only as a hash).
        if let Some(address) = search.recipient.as_ref().filter(|_| !who.sees_addresses()) {
            let mut audit = who.audit(self.clock.now(), "deliveries.search_by_address");
            audit.tenant = tenant.cloned();
            audit.object_kind = Some("address".into());
            audit.object_id = Some(address.masked());
            audit.detail = serde_json::json!({
                "address_sha256": hex::encode(Sha256::digest(address.as_str().as_bytes())),
                "found": page.deliveries.len(),
            });
            self.admin.record_audit(&audit).await?;
        }
        for record in &mut page.deliveries {
            self.mask_for(who, record);
        }
        Ok(page)
    }

    /// One delivery with its attempts and links; `NotFound` outside the principal's tenants.
    pub async fn delivery(
        &self,
        who: &Principal,
        id: DeliveryId,
    ) -> Result<DeliveryDetail, AdminError> {
        let mut record = self.visible_delivery(who, id).await?;
        let mut attempts = self.deliveries.attempts(&record.tenant, id).await?;
        let links = self.admin.links(&record.tenant, id).await?;
        let mut feedback = self.admin.feedback(&record.tenant, id).await?;
        let not_resendable = match self.unknown_until(&record) {
            Some(until) => Some(unknown_not_resendable(until)),
            None => self.resend_body(&record, LinkKind::Resend, 1).err(),
        };
        self.mask_for(who, &mut record);
        if !who.sees_addresses() {
            for attempt in &mut attempts {
                attempt.detail = attempt.detail.as_deref().map(mask_addresses);
            }
            for entry in &mut feedback.timeline {
                entry.recipients.iter_mut().for_each(|address| *address = masked(address));
                // A click's detail is the link clicked: a reset link carries its token.
                let mask = if entry.kind == "click" { mask_link } else { mask_addresses };
                entry.detail = entry.detail.as_deref().map(mask);
            }
        }
        Ok(DeliveryDetail { record, attempts, links, feedback, not_resendable })
    }

    /// Sends a delivery's email again as a new delivery linked to it. See the module docs.
    pub async fn resend(
        &self,
        who: &Principal,
        id: DeliveryId,
        reason: &str,
    ) -> Result<ActionResult, AdminError> {
        let mut origin = self.visible_delivery(who, id).await?;
        who.require_act()?;
        if origin.status == DeliveryStatus::Unknown {
            if let Some(until) = self.unknown_until(&origin) {
                return Err(AdminError::Invalid(format!(
                    "this delivery cannot be resent yet: {}",
                    unknown_not_resendable(until)
                )));
            }
            let tenant = origin.tenant.clone();
            self.expire_unknown(who, &tenant, Some(id)).await?;
            origin = self.visible_delivery(who, id).await?;
        }
        self.derive_and_handle(who, &origin, LinkKind::Resend, reason, Numbering::Next).await
    }

    /// Until when an `unknown` delivery waits for an SES report before it may be resent;
    /// `None` for any other delivery, or once the window has passed.
    fn unknown_until(&self, record: &DeliveryRecord) -> Option<DateTime<Utc>> {
        if record.status != DeliveryStatus::Unknown {
            return None;
        }
        let window = Duration::from_std(self.unknown_send_window).unwrap_or(Duration::MAX);
        let until = record.decided_at.unwrap_or(record.updated_at).checked_add_signed(window)?;
        (until > self.clock.now()).then_some(until)
    }

    /// Makes the tenant's `unknown` deliveries past the window `failed` ("not seen by SES"), so
    /// that a resend can take them (only `only`, when given).
    async fn expire_unknown(
        &self,
        who: &Principal,
        tenant: &TenantId,
        only: Option<DeliveryId>,
    ) -> Result<(), AdminError> {
        let now = self.clock.now();
        let window = Duration::from_std(self.unknown_send_window).unwrap_or(Duration::MAX);
        let Some(decided_before) = now.checked_sub_signed(window) else { return Ok(()) };
        let reason = format!(
            "not seen by SES: no SES report within {} s of a send whose result was unknown; \
             resendable. Before: ",
            self.unknown_send_window.as_secs()
        );
        let mut audit = who.audit(now, "delivery.unknown_expired");
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("delivery".into());
        audit.reason = Some("not seen by SES within the unknown-send window".into());
        audit.detail = serde_json::json!({ "window_seconds": self.unknown_send_window.as_secs() });
        let expired =
            self.admin.expire_unknown_sends(tenant, only, decided_before, &reason, &audit).await?;
        if !expired.is_empty() {
            info!(%tenant, count = expired.len(), "unknown sends not seen by SES are now failed");
        }
        Ok(())
    }

    /// Feeds a rejected delivery's event through again (after a fix, e.g. a template added) as a
    /// new delivery linked to it.
    pub async fn replay_delivery(
        &self,
        who: &Principal,
        id: DeliveryId,
        reason: &str,
    ) -> Result<ActionResult, AdminError> {
        let origin = self.visible_delivery(who, id).await?;
        who.require_act()?;
        if origin.status != DeliveryStatus::Rejected {
            return Err(AdminError::Invalid(format!(
                "only rejected deliveries are replayed; this one is {} (resend it instead)",
                origin.status
            )));
        }
        self.derive_and_handle(who, &origin, LinkKind::Replay, reason, Numbering::Next).await
    }

    /// Resends a page of `tenant`'s failed deliveries that have no decided resend, each as
    /// [`resend`](Self::resend) would (a new linked delivery, audited `delivery.resend`), after
    /// the cause of a run of failures is fixed: a sending identity verified again, a
    /// configuration set restored; `unknown` ones (a send without an answer) only once the
    /// unknown-send window has passed without an SES report ("not seen by SES"). Safe to
    /// repeat: each is only ever given its *first* resend (one key per failed delivery), so a
    /// delivery resent once is never mailed again, two calls racing for one mail it once, and a
    /// first resend left undecided (throttled, or the call stopped) is taken again by the next
    /// call and finishes. One that cannot be resent is reported with why and passed over.
    pub async fn resend_failed(
        &self,
        who: &Principal,
        tenant: &TenantId,
        request: FailedResends,
        reason: &str,
    ) -> Result<FailedResendPage, AdminError> {
        let tenants = who.scope.narrowed(Some(tenant)).map_err(|()| no_tenant(Some(tenant)))?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        if request.from >= request.until {
            return Err(AdminError::Invalid("`from` must be before `until`".into()));
        }
        if !(1..=MAX_FAILED_RESENDS).contains(&request.limit) {
            return Err(AdminError::Invalid(format!("limit must be 1 to {MAX_FAILED_RESENDS}")));
        }
        // Sends whose result is unknown wait for SES's report; those past the window without
        // one become `failed` ("not seen by SES") here, and this search takes them. Also on a
        // dry run: it records what the window decided, not a resend.
        self.expire_unknown(who, tenant, None).await?;
        let search = DeliverySearch {
            tenants,
            status: Some(DeliveryStatus::Failed),
            event_type: request.event_type,
            recipient: None,
            from: Some(request.from),
            until: Some(request.until),
            not_resent: true,
            after: request.after,
            limit: request.limit,
        };
        let page = self.admin.search_deliveries(&search).await?;
        let mut items = Vec::with_capacity(page.deliveries.len());
        for summary in page.deliveries {
            // The search's rows leave the kept event out; a resend needs it.
            let mut origin = self.visible_delivery(who, summary.delivery_id).await?;
            let result = match self.resend_body(&origin, LinkKind::Resend, 1) {
                Err(why) => Some(Err(AdminError::Invalid(format!("cannot be resent: {why}")))),
                Ok(_) if request.dry_run => None,
                Ok(_) => Some(
                    self.derive_and_handle(
                        who,
                        &origin,
                        LinkKind::Resend,
                        reason,
                        Numbering::First,
                    )
                    .await,
                ),
            };
            self.mask_for(who, &mut origin);
            items.push(FailedResend { origin, result });
        }
        Ok(FailedResendPage { items, next: page.next })
    }

    /// What a dead-letter queue holds: its depth and up to `limit` (1 to 100) of its messages,
    /// read without taking them out. Tokens scoped to tenants see only their tenants' messages
    /// and no depth; a message whose body names no tenant only tokens of every tenant see.
    pub async fn dead_letters(
        &self,
        who: &Principal,
        which: DeadLetterQueue,
        limit: u32,
    ) -> Result<DeadLetterPage, AdminError> {
        if !(1..=100).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be 1 to 100, got {limit}")));
        }
        let queue = self.dead_letter_queue(which)?;
        let every_tenant = who.scope == TenantScope::All;
        let depth = match every_tenant {
            true => Some(queue.depth().await.map_err(dead_letter_error)?),
            false => None,
        };
        let mut messages: Vec<DeadLetterSummary> = queue
            .peek(limit)
            .await
            .map_err(dead_letter_error)?
            .into_iter()
            .map(|message| DeadLetterSummary {
                size: message.body.len(),
                content: DeadLetterContent::read(which, &message.body),
                message_id: message.message_id,
                sent_at: message.sent_at,
                receive_count: message.receive_count,
            })
            .filter(|summary| match summary.content.tenant() {
                Some(tenant) => who.scope.includes(tenant),
                None => every_tenant,
            })
            .collect();
        messages.sort_by(|a, b| (a.sent_at, &a.message_id).cmp(&(b.sent_at, &b.message_id)));
        if !who.sees_addresses() {
            // A reason can quote what it refused ("data.to.email: ... taro@example").
            for message in &mut messages {
                if let DeadLetterContent::Unreadable(reason) = &mut message.content {
                    *reason = mask_addresses(reason);
                }
            }
        }
        Ok(DeadLetterPage { depth, messages })
    }

    /// Moves up to `max` (1 to [`MAX_REDRIVE`]) dead letters back to the events queue once
    /// their cause is fixed, audited `dlq.redrive` with the reason and the count (also when it
    /// stops part way: the answer says how far it got and why it stopped). Operators and admins
    /// of every tenant only: it moves every tenant's messages. Each event then goes through the
    /// workers' path: one already decided is a duplicate, not a second email.
    pub async fn redrive_dead_letters(
        &self,
        who: &Principal,
        which: DeadLetterQueue,
        max: u64,
        reason: &str,
    ) -> Result<Redriven, AdminError> {
        who.require_act()?;
        if who.scope != TenantScope::All {
            return Err(AdminError::Forbidden(
                "a redrive moves every tenant's dead letters: it needs a token of every tenant"
                    .into(),
            ));
        }
        let reason = required_reason(reason)?;
        if !(1..=MAX_REDRIVE).contains(&max) {
            return Err(AdminError::Invalid(format!("max must be 1 to {MAX_REDRIVE}, got {max}")));
        }
        let queue = self.dead_letter_queue(which)?;
        let result = queue.redrive(max).await;
        let moved = match &result {
            Ok(moved) | Err(DeadLetterError::RedriveStopped { moved, .. }) => *moved,
            Err(_) => 0,
        };
        let mut audit = who.audit(self.clock.now(), "dlq.redrive");
        audit.object_kind = Some("dead_letter_queue".into());
        audit.object_id = Some(which.as_str().into());
        audit.reason = Some(reason.to_owned());
        audit.detail = serde_json::json!({
            "moved": moved, "max": max,
            "error": result.as_ref().err().map(ToString::to_string),
        });
        self.admin.record_audit(&audit).await?;
        info!(moved, max, "operator redrove dead letters");
        match result {
            Ok(moved) => Ok(Redriven { moved, stopped: None }),
            Err(DeadLetterError::RedriveStopped { moved, reason }) => {
                Ok(Redriven { moved, stopped: Some(reason) })
            }
            Err(other) => Err(dead_letter_error(other)),
        }
    }

    fn dead_letter_queue(
        &self,
        which: DeadLetterQueue,
    ) -> Result<&Arc<dyn DeadLetters>, AdminError> {
        let queue = match which {
            DeadLetterQueue::Events => &self.dead_letters.events,
            DeadLetterQueue::Feedback => &self.dead_letters.feedback,
        };
        queue.as_ref().ok_or_else(|| {
            AdminError::NotFound(match which {
                DeadLetterQueue::Events => "this process reads no queue: no dead letters".into(),
                DeadLetterQueue::Feedback => {
                    "no feedback queue is configured (feedback.queue_url): no dead letters".into()
                }
            })
        })
    }

    /// Unkeyed rejections (bodies without a usable key) the principal may see.
    pub async fn unkeyed_rejections(
        &self,
        who: &Principal,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, AdminError> {
        let tenants = who.scope.filter();
        let mut rejections = self.admin.unkeyed_rejections(tenants.as_deref(), limit).await?;
        if !who.sees_addresses() {
            for rejection in &mut rejections {
                rejection.reason = mask_addresses(&rejection.reason);
                rejection.raw_body =
                    mask_body(&rejection.raw_body, MaskVariables::All).into_bytes();
            }
        }
        Ok(rejections)
    }

    /// SES feedback kept without a delivery, newest first, a page of `limit` (1 to 500). It
    /// names no tenant, so only tokens of every tenant see it; others get an empty page.
    pub async fn unmatched_feedback(
        &self,
        who: &Principal,
        after: Option<&UnmatchedFeedbackCursor>,
        limit: u32,
    ) -> Result<UnmatchedFeedbackPage, AdminError> {
        if who.scope != TenantScope::All {
            return Ok(UnmatchedFeedbackPage { feedback: Vec::new(), next: None });
        }
        let limit = limit.clamp(1, 500);
        // One row more than the page tells whether there is a next one.
        let mut feedback = self.admin.unmatched_feedback(after, limit + 1).await?;
        if !who.sees_addresses() {
            for record in &mut feedback {
                record.reason = record.reason.as_deref().map(mask_addresses);
            }
        }
        let more = feedback.len() > limit as usize;
        feedback.truncate(limit as usize);
        let next = more.then(|| feedback.last()).flatten().map(|last| UnmatchedFeedbackCursor {
            received_at: last.received_at,
            feedback_id: last.feedback_id.clone(),
        });
        Ok(UnmatchedFeedbackPage { feedback, next })
    }

    /// Feeds an unkeyed rejection's body through the handler again, as received.
    pub async fn replay_unkeyed(
        &self,
        who: &Principal,
        body_sha256: &str,
        reason: &str,
    ) -> Result<ActionResult, AdminError> {
        let not_found = || AdminError::NotFound(format!("no rejected body {body_sha256}"));
        let rejection = self.admin.unkeyed_rejection(body_sha256).await?.ok_or_else(not_found)?;
        let tenant = rejection.tenant.as_deref().and_then(|t| TenantId::parse(t).ok());
        let visible = match (&who.scope, &tenant) {
            (TenantScope::All, _) => true,
            (scope, Some(tenant)) => scope.includes(tenant),
            (TenantScope::Only(_), None) => false,
        };
        if !visible {
            return Err(not_found());
        }
        who.require_act()?;
        let reason = required_reason(reason)?;
        if (rejection.raw_body.len() as u64) < rejection.body_size {
            return Err(AdminError::Invalid(format!(
                "only the first {} of {} bytes were kept; the body cannot be replayed",
                rejection.raw_body.len(),
                rejection.body_size
            )));
        }
        let handled = self.handler.handle(&InboundMessage::first(rejection.raw_body)).await;
        let result = action_result(handled, None);
        let outcome = match &result {
            Ok(done) => format!("{}: {}", done.status, done.reason.as_deref().unwrap_or("")),
            Err(other) => other.to_string(),
        };
        let mut audit = who.audit(self.clock.now(), "rejection.replay");
        audit.tenant = tenant;
        audit.object_kind = Some("unkeyed_rejection".into());
        audit.object_id = Some(body_sha256.to_owned());
        audit.reason = Some(reason.to_owned());
        let new_delivery = result.as_ref().ok().and_then(|done| done.delivery_id);
        audit.detail = serde_json::json!({ "result": outcome, "new_delivery_id": new_delivery });
        self.admin.record_unkeyed_replay(body_sha256, self.clock.now(), &outcome, &audit).await?;
        result
    }

    /// Suppressions in the principal's tenants (narrowed to `tenant` when given), addresses
    /// masked unless the role is admin.
    pub async fn suppressions(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        address: Option<EmailAddress>,
        limit: u32,
    ) -> Result<Vec<ShownSuppression>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let query = SuppressionQuery { tenants, address, limit };
        let entries = self.admin.suppressions(&query).await?;
        Ok(entries
            .into_iter()
            .map(|entry| ShownSuppression {
                address: if who.sees_addresses() {
                    entry.address.to_string()
                } else {
                    entry.address.masked()
                },
                tenant: entry.tenant,
                reason: entry.reason,
                cause: entry.cause,
                created_by: entry.created_by,
                created_at: entry.created_at,
            })
            .collect())
    }

    /// Stops all mail from the tenant to the address. `false` when it was suppressed already.
    pub async fn add_suppression(
        &self,
        who: &Principal,
        tenant: &TenantId,
        address: &EmailAddress,
        reason: &str,
    ) -> Result<bool, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let now = self.clock.now();
        let entry = SuppressionEntry {
            tenant: tenant.clone(),
            address: address.clone(),
            reason: format!("suppressed by an operator: {reason}"),
            cause: "operator".into(),
            created_by: who.token_id.clone(),
            created_at: now,
        };
        let mut audit = who.audit(now, "suppression.add");
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("suppression".into());
        audit.object_id = Some(address.masked());
        audit.reason = Some(reason.to_owned());
        Ok(self.admin.add_suppression(&entry, &audit).await?)
    }

    /// Lets the tenant mail the address again; `NotFound` when it was not suppressed.
    pub async fn remove_suppression(
        &self,
        who: &Principal,
        tenant: &TenantId,
        address: &EmailAddress,
        reason: &str,
    ) -> Result<(), AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let mut audit = who.audit(self.clock.now(), "suppression.remove");
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("suppression".into());
        audit.object_id = Some(address.masked());
        audit.reason = Some(reason.to_owned());
        if self.admin.remove_suppression(tenant, address, &audit).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound("that address is not suppressed for the tenant".into()))
        }
    }

    /// Pauses the tenant's sending for every worker until an operator resumes it (audited with
    /// the reason): its events are held until the resume, nothing is claimed or sent, other
    /// tenants go on. Returns false when it was paused already; `NotFound` for a tenant that has no
    /// templates here, so that a misspelt name does not look paused.
    pub async fn pause_tenant(
        &self,
        who: &Principal,
        tenant: &TenantId,
        reason: &str,
    ) -> Result<bool, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        if !self.previews.catalog().tenants.iter().any(|t| &t.id == tenant) {
            return Err(AdminError::NotFound(format!("no tenant {tenant} is configured")));
        }
        let audit = self.tenant_audit(who, "tenant.pause", tenant, reason);
        Ok(self.admin.pause_tenant(tenant, &audit).await?)
    }

    /// Lifts the tenant's pause, an operator's or the reputation guard's (audited with the
    /// reason); returns false when it was not paused.
    pub async fn resume_tenant(
        &self,
        who: &Principal,
        tenant: &TenantId,
        reason: &str,
    ) -> Result<bool, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let audit = self.tenant_audit(who, "tenant.resume", tenant, reason);
        Ok(self.admin.resume_tenant(tenant, &audit).await?)
    }

    /// What the tenant has held (any role in scope): counts by event type and the `limit`
    /// (1–500) oldest events, without their bodies.
    pub async fn held_events(
        &self,
        who: &Principal,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<HeldSummary, AdminError> {
        self.require_tenant(who, tenant)?;
        if !(1..=500).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be 1 to 500, got {limit}")));
        }
        Ok(self.held.held_summary(tenant, limit).await?)
    }

    /// Discards up to [`DISCARD_PER_CALL`] of a paused tenant's held events (of `event_type`
    /// only, when given: the one whose events went wrong), oldest first (one audit entry
    /// `tenant.discard_held` with the reason, the event type and the counts): each is decided
    /// `rejected` ("discarded while the tenant was paused: <reason>") through the event path, so
    /// that it is listed among the deliveries and a later copy of it is a duplicate, never sent.
    /// Refused while the tenant is not paused: its held events are being sent then. Events that
    /// cannot be decided now (the store unreachable, the key in flight elsewhere) stay held.
    pub async fn discard_held(
        &self,
        who: &Principal,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        reason: &str,
    ) -> Result<Discarded, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let tenants = std::slice::from_ref(tenant);
        if self.admin.paused_tenants(Some(tenants)).await?.is_empty() {
            return Err(AdminError::Invalid(format!(
                "{tenant} is not paused: its held events are being sent; pause it first"
            )));
        }
        let outcome = format!("discarded while the tenant was paused: {reason}");
        let mut done = Discarded::default();
        while done.discarded + done.left < DISCARD_PER_CALL {
            let now = self.clock.now();
            let limit = (DISCARD_PER_CALL - done.discarded - done.left).min(100) as u32;
            let until = now + DISCARD_LEASE;
            let leased = self.held.lease_of_tenant(tenant, event_type, limit, now, until).await?;
            if leased.is_empty() {
                break;
            }
            for LeasedEvent { event: HeldEvent { entry, body }, lease } in leased {
                let message = InboundMessage::internal(body, entry.receive_count);
                match self.handler.discard(&message, &outcome).await {
                    Ok(_) => {
                        self.held.forget(&entry.key, lease).await?;
                        done.discarded += 1;
                    }
                    // Leased: it stays held, and is not leased again within this call.
                    Err(_) => done.left += 1,
                }
            }
        }
        done.remaining = match event_type {
            Some(event_type) => {
                let summary = self.held.held_summary(tenant, 0).await?;
                let of_type = summary.by_event_type.iter().find(|(t, ..)| t == event_type);
                of_type.map_or(0, |(_, events, _)| *events)
            }
            None => self
                .admin
                .paused_tenants(Some(tenants))
                .await?
                .first()
                .map_or(0, |pause| pause.held_events),
        };
        let mut audit = self.tenant_audit(who, "tenant.discard_held", tenant, reason);
        audit.detail = serde_json::json!({
            "event_type": event_type.map(EventType::as_str),
            "discarded": done.discarded, "left": done.left, "remaining": done.remaining,
        });
        self.admin.record_audit(&audit).await?;
        info!(%tenant, ?done, "discarded held events");
        Ok(done)
    }

    /// The audit entry of an action on the tenant itself, with its reason.
    fn tenant_audit(
        &self,
        who: &Principal,
        action: &str,
        tenant: &TenantId,
        reason: &str,
    ) -> AuditEntry {
        let mut audit = who.audit(self.clock.now(), action);
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("tenant".into());
        audit.object_id = Some(tenant.to_string());
        audit.reason = Some(reason.to_owned());
        audit
    }

    /// The principal's tenants paused now, by an operator or the reputation guard.
    pub async fn paused_tenants(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<TenantPause>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        Ok(self.admin.paused_tenants(tenants.as_deref()).await?)
    }

    /// What each of the principal's tenants is doing in the running workers now (slots, waiting
    /// messages, send rate, hand-backs), summed over the workers heard from lately; empty when
    /// no worker publishes here.
    pub async fn tenant_activity(
        &self,
        who: &Principal,
    ) -> Result<Vec<TenantActivity>, AdminError> {
        let Some(board) = &self.activity else { return Ok(Vec::new()) };
        let tenants = who.scope.narrowed(None).map_err(|()| no_tenant(None))?;
        let live_for = crate::PublishActivity::live_for(crate::publish_activity::PUBLISH_EVERY);
        Ok(board.read(tenants.as_deref(), self.clock.now(), live_for).await?)
    }

    /// Counts per tenant and outcome over the window, in the principal's tenants.
    pub async fn stats(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        window: StatsWindow,
    ) -> Result<Vec<OutcomeCount>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let since = self.clock.now() - window.length();
        Ok(self.admin.outcome_counts(tenants.as_deref(), since).await?)
    }

    /// Bounce and complaint rates per tenant over the window, against the thresholds a
    /// sending service is held to (see [`ReputationThresholds`]).
    pub async fn reputation(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        window: StatsWindow,
    ) -> Result<Vec<TenantReputation>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let since = self.clock.now() - window.length();
        let counts = self.admin.reputation_counts(tenants.as_deref(), since).await?;
        let thresholds = self.reputation_thresholds;
        Ok(counts.into_iter().map(|counts| thresholds.judge(counts)).collect())
    }

    /// The audit log in the principal's tenants (entries without a tenant, such as token
    /// changes, only for tokens that see every tenant).
    pub async fn audit(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        mut query: AuditQuery,
    ) -> Result<Vec<AuditRecord>, AdminError> {
        query.tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        Ok(self.admin.audit(&query).await?)
    }

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

    /// The body to handle for a resend or replay number `n` of `origin`: its stored event (or,
    /// for an event that broke the contract, its raw body) under the derived key.
    fn resend_body(
        &self,
        origin: &DeliveryRecord,
        kind: LinkKind,
        n: u32,
    ) -> Result<Vec<u8>, String> {
        let stored = match (&origin.event_json, &origin.raw_body) {
            (Some(json), _) => json.as_bytes().to_vec(),
            (None, Some(raw)) => raw.clone(),
            (None, None) => return Err("no copy of the event was kept".into()),
        };
        let mut envelope: Value = serde_json::from_slice(&stored)
            .map_err(|_| "the kept body is not JSON: fix it at the producer".to_owned())?;
        let Some(fields) = envelope.as_object_mut() else {
            return Err("the kept body is not a JSON object".into());
        };
        if let Some(event_type) = fields.get("type").and_then(Value::as_str)
            && let Ok(event_type) = EventType::parse(event_type)
        {
            let sensitive = self.handler.renderer.sensitive_variables(&origin.tenant, &event_type);
            let lost: Vec<&str> = sensitive
                .iter()
                .filter(|name| {
                    fields
                        .get("data")
                        .and_then(|d| d.get("variables"))
                        .and_then(|v| v.get(name.as_str()))
                        .is_some_and(|v| v == "***")
                })
                .map(String::as_str)
                .collect();
            if !lost.is_empty() {
                return Err(format!(
                    "its sensitive variables ({}) are not kept by tayori; ask the producer to \
                     publish the event again",
                    lost.join(", ")
                ));
            }
        }
        fields.insert("source".into(), Value::String(format!("tayori:{}", kind.as_str())));
        fields.insert("id".into(), Value::String(format!("{}:{n}", origin.delivery_id)));
        serde_json::to_vec(&envelope).map_err(|e| e.to_string())
    }

    async fn derive_and_handle(
        &self,
        who: &Principal,
        origin: &DeliveryRecord,
        kind: LinkKind,
        reason: &str,
        numbering: Numbering,
    ) -> Result<ActionResult, AdminError> {
        let reason = required_reason(reason)?;
        let tenant = &origin.tenant;
        let mut n = match numbering {
            Numbering::Next => {
                self.admin.last_link_number(tenant, origin.delivery_id, kind).await? + 1
            }
            Numbering::First => 1,
        };
        // Another operator may take the same number at the same moment: take the next one.
        let (body, delivery_id) = loop {
            let body = self.resend_body(origin, kind, n).map_err(|why| {
                let done = match kind {
                    LinkKind::Resend => "resent",
                    LinkKind::Replay => "replayed",
                };
                AdminError::Invalid(format!("this delivery cannot be {done}: {why}"))
            })?;
            let delivery_id = derived_key(tenant, kind, origin.delivery_id, n)?.delivery_id();
            let now = self.clock.now();
            let link = DeliveryLink {
                tenant: tenant.clone(),
                delivery_id,
                origin: origin.delivery_id,
                kind,
                n,
                reason: reason.to_owned(),
                created_by: who.token_id.clone(),
                created_at: now,
            };
            let mut audit = who.audit(now, &format!("delivery.{}", kind.as_str()));
            audit.tenant = Some(tenant.clone());
            audit.object_kind = Some("delivery".into());
            audit.object_id = Some(origin.delivery_id.to_string());
            audit.reason = Some(reason.to_owned());
            audit.detail = serde_json::json!({ "new_delivery_id": delivery_id, "n": n });
            if self.admin.record_link(&link, &audit).await? {
                break (body, delivery_id);
            }
            if numbering == Numbering::First {
                // Its first resend exists: another call's, or one a throttle or a stop left
                // undecided. The same derived event again: its key makes a decided one a
                // duplicate and lets an undecided one finish, never a second email.
                audit.detail["again"] = serde_json::Value::Bool(true);
                self.admin.record_audit(&audit).await?;
                break (body, delivery_id);
            }
            n += 1;
            if n > 10_000 {
                return Err(AdminError::Invalid("too many resends of this delivery".into()));
            }
        };
        info!(origin = %origin.delivery_id, %delivery_id, kind = kind.as_str(), "operator action");
        let handled = self.handler.handle(&InboundMessage::first(body)).await;
        action_result(handled, Some(delivery_id))
    }
}

/// Which resend (or replay) of a delivery a new one may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// The next number free: an operator asked for one more.
    Next,
    /// Only the first: a bulk resend never adds a second; an existing first is handled again
    /// (its key makes that safe).
    First,
}

fn derived_key(
    tenant: &TenantId,
    kind: LinkKind,
    origin: DeliveryId,
    n: u32,
) -> Result<IdempotencyKey, AdminError> {
    let source = EventSource::parse(&format!("tayori:{}", kind.as_str()))
        .map_err(|e| AdminError::Unexpected(e.into()))?;
    let id = tayori_domain::EventId::parse(&format!("{origin}:{n}"))
        .map_err(|e| AdminError::Unexpected(e.into()))?;
    Ok(IdempotencyKey::new(tenant.clone(), source, id))
}

fn action_result(
    handled: Result<Handled, crate::RetryLater>,
    expected: Option<DeliveryId>,
) -> Result<ActionResult, AdminError> {
    match handled {
        Ok(Handled::Decided { delivery_id, outcome }) => Ok(ActionResult {
            delivery_id: Some(delivery_id),
            status: outcome.status(),
            reason: outcome.reason().map(str::to_owned),
        }),
        Ok(Handled::Duplicate { delivery_id, status }) => Ok(ActionResult {
            delivery_id: Some(delivery_id),
            status,
            reason: Some("this event was decided before; nothing was sent again".into()),
        }),
        Ok(Handled::Held { delivery_id, reason }) => Ok(ActionResult {
            delivery_id: Some(delivery_id),
            status: DeliveryStatus::Processing,
            reason: Some(format!("the tenant is paused ({reason}): held until it is resumed")),
        }),
        Ok(Handled::RejectedWithoutKey { reason }) => Ok(ActionResult {
            delivery_id: None,
            status: DeliveryStatus::Rejected,
            reason: Some(format!("still without a key: {reason}")),
        }),
        Err(retry) => match retry.delivery_id.or(expected) {
            Some(delivery_id) => Ok(ActionResult {
                delivery_id: Some(delivery_id),
                status: DeliveryStatus::Processing,
                reason: Some(format!("not decided yet: {}; try again", retry.reason)),
            }),
            None => Err(AdminError::Unavailable(retry.reason)),
        },
    }
}

fn dead_letter_error(error: DeadLetterError) -> AdminError {
    match error {
        DeadLetterError::NoDeadLetterQueue(_) => AdminError::NotFound(error.to_string()),
        DeadLetterError::Unavailable(_) | DeadLetterError::RedriveStopped { .. } => {
            AdminError::Unavailable(error.to_string())
        }
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

/// Why an `unknown` delivery cannot be resent before `until`.
fn unknown_not_resendable(until: DateTime<Utc>) -> String {
    format!(
        "its send's result is unknown and SES may have accepted it; it waits for SES's report \
         (which makes it sent, reconciled) until {}, and can be resent after that if none came",
        until.to_rfc3339()
    )
}

fn no_tenant(tenant: Option<&TenantId>) -> AdminError {
    AdminError::NotFound(match tenant {
        Some(tenant) => format!("no tenant {tenant}"),
        None => "not found".into(),
    })
}

fn command_line_audit(at: DateTime<Utc>, action: &str) -> AuditEntry {
    AuditEntry {
        at,
        token_id: COMMAND_LINE_TOKEN_ID.into(),
        role: "command-line".into(),
        action: action.to_owned(),
        tenant: None,
        object_kind: None,
        object_id: None,
        reason: None,
        detail: Value::Object(Default::default()),
    }
}

fn scope_names(scope: &TenantScope) -> Value {
    match scope {
        TenantScope::All => Value::Null,
        TenantScope::Only(tenants) => {
            tenants.iter().map(|t| Value::String(t.to_string())).collect()
        }
    }
}

/// Formats 16 random bytes as a version 4 UUID.
fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `t***@e***.com`, or `***` for what is not an address.
fn masked(raw: &str) -> String {
    EmailAddress::parse(raw).map(|a| a.masked()).unwrap_or_else(|_| "***".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reputation_is_judged_only_from_the_minimum_volume() {
        let thresholds = ReputationThresholds::default();
        let counts = |sent, bounced, complained| crate::ports::ReputationCount {
            tenant: TenantId::parse("acme-bank").unwrap_or_else(|e| panic!("{e}")),
            sent,
            bounced,
            complained,
        };
        let judged = thresholds.judge(counts(1_000, 41, 0));
        assert!(judged.over_threshold, "4.1 % bounces");
        assert!((judged.bounce_rate - 0.041).abs() < 1e-9);
        assert!(!thresholds.judge(counts(1_000, 40, 0)).over_threshold, "4 % is not above");
        assert!(thresholds.judge(counts(10_000, 0, 9)).over_threshold, "0.09 % complaints");
        assert!(!thresholds.judge(counts(199, 100, 100)).over_threshold, "too few to judge");
        assert_eq!(thresholds.judge(counts(0, 0, 0)).bounce_rate, 0.0);
    }

    #[test]
    fn token_ids_are_v4_uuids() {
        let id = format_uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }

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
