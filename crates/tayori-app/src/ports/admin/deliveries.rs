//! Searching deliveries and reading what SES said about them, or about no delivery at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{
    DeliveryId, DeliveryStatus, EmailAddress, EventType, FeedbackStatus, TenantId,
};

use crate::ports::{DeliveryCursor, DeliveryPage, StoreError};

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

/// The operators' reads over deliveries: the search, a delivery's feedback timeline, and
/// the feedback that matched none. Every read that takes tenants MUST return nothing of another
/// tenant.
#[async_trait]
pub trait DeliveryQueries: Send + Sync {
    /// Deliveries matching the search, newest first, one page (keyset pagination).
    async fn search_deliveries(&self, search: &DeliverySearch) -> Result<DeliveryPage, StoreError>;

    /// What SES said about this delivery (empty when no feedback is consumed).
    async fn feedback(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<DeliveryFeedback, StoreError>;

    /// SES feedback kept without a delivery, newest first, starting after `after`.
    async fn unmatched_feedback(
        &self,
        after: Option<&UnmatchedFeedbackCursor>,
        limit: u32,
    ) -> Result<Vec<UnmatchedFeedbackRecord>, StoreError>;
}
