//! What a delivery search lists and a delivery's detail shows.

use serde::Serialize;
use tayori_app::admin::{DeliveryDetail, FeedbackEntry};
use tayori_app::ports::{AttemptRecord, DeliveryLink, DeliveryRecord};
use utoipa::ToSchema;

/// One delivery in a list (recipient masked unless the role is admin).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliverySummary {
    /// The delivery's id (a UUID derived from the event's key).
    pub delivery_id: String,
    /// The tenant.
    pub tenant: String,
    /// The event's source.
    pub source: String,
    /// The event's id.
    pub event_id: String,
    /// The event type, when the event had a valid one.
    pub event_type: Option<String>,
    /// The recipient.
    pub recipient: Option<String>,
    /// `processing`, `sent`, `suppressed`, `rejected`, `failed` or `unknown` (the send's result
    /// is unknown: SES may have accepted it; see `reconciled_at`).
    pub status: String,
    /// When an SES report about the email made an `unknown` delivery `sent` (RFC 3339): it is
    /// "sent, reconciled", and its `provider_message_id` is the one SES reported.
    pub reconciled_at: Option<String>,
    /// Why (every outcome but `sent`).
    pub reason: Option<String>,
    /// The rendered subject.
    pub subject: Option<String>,
    /// The SES message id, once sent.
    pub provider_message_id: Option<String>,
    /// First seen (RFC 3339).
    pub created_at: String,
    /// Decided (RFC 3339).
    pub decided_at: Option<String>,
    /// How many times a decided event arrived again.
    pub duplicates: u32,
}

impl From<&DeliveryRecord> for DeliverySummary {
    fn from(r: &DeliveryRecord) -> Self {
        Self {
            delivery_id: r.delivery_id.to_string(),
            tenant: r.tenant.to_string(),
            source: r.source.clone(),
            event_id: r.event_id.clone(),
            event_type: r.event_type.clone(),
            recipient: r.recipient.clone(),
            status: r.status.to_string(),
            reconciled_at: r.reconciled_at.map(|t| t.to_rfc3339()),
            reason: r.reason.clone(),
            subject: r.subject.clone(),
            provider_message_id: r.provider_message_id.clone(),
            created_at: r.created_at.to_rfc3339(),
            decided_at: r.decided_at.map(|t| t.to_rfc3339()),
            duplicates: r.duplicate_count,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliverySummary>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// One send attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// The claim it belonged to.
    pub attempt: u32,
    /// When the send started.
    pub started_at: String,
    /// When it ended (absent if the worker died during the send).
    pub finished_at: Option<String>,
    /// `accepted`, `transient_error`, `permanent_error` or `unknown`.
    pub result: Option<String>,
    /// The SES message id or the error.
    pub detail: Option<String>,
}

impl From<&AttemptRecord> for AttemptView {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at.to_rfc3339(),
            finished_at: a.finished_at.map(|t| t.to_rfc3339()),
            result: a.result.map(|r| r.as_str().to_owned()),
            detail: a.detail.clone(),
        }
    }
}

/// A delivery made from another by an operator.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    /// The new delivery.
    pub delivery_id: String,
    /// The delivery it was made from.
    pub origin: String,
    /// `resend` or `replay`.
    pub kind: String,
    /// Its number among those of its kind from the origin.
    pub n: u32,
    /// Why.
    pub reason: String,
    /// The token that made it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
}

impl From<&DeliveryLink> for LinkView {
    fn from(l: &DeliveryLink) -> Self {
        Self {
            delivery_id: l.delivery_id.to_string(),
            origin: l.origin.to_string(),
            kind: l.kind.as_str().to_owned(),
            n: l.n,
            reason: l.reason.clone(),
            created_by: l.created_by.clone(),
            created_at: l.created_at.to_rfc3339(),
        }
    }
}

/// One thing SES said about a delivery (docs/feedback.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackView {
    /// `send`, `delivery`, `bounce`, `complaint`, `reject`, `delivery_delay`, … .
    pub kind: String,
    /// `Permanent/General`, `abuse`, a reject reason, a delay type, a link.
    pub detail: Option<String>,
    /// The recipients it is about (masked unless the role is admin).
    pub recipients: Vec<String>,
    /// When it happened by SES's clock (RFC 3339), when SES said.
    pub occurred_at: Option<String>,
    /// When tayori recorded it (RFC 3339).
    pub received_at: String,
}

impl From<&FeedbackEntry> for FeedbackView {
    fn from(f: &FeedbackEntry) -> Self {
        Self {
            kind: f.kind.clone(),
            detail: f.detail.clone(),
            recipients: f.recipients.clone(),
            occurred_at: f.occurred_at.map(|t| t.to_rfc3339()),
            received_at: f.received_at.to_rfc3339(),
        }
    }
}

/// A delivery with its event, attempts and links.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetailView {
    /// The delivery.
    #[serde(flatten)]
    pub summary: DeliverySummary,
    /// The event envelope as stored (sensitive variables masked; recipient masked unless the
    /// role is admin).
    #[schema(value_type = Object)]
    pub event: Option<serde_json::Value>,
    /// For an event that broke the contract: the body as received (first 64 KiB), as text.
    pub raw_body: Option<String>,
    /// How many times it was claimed.
    pub claims: u32,
    /// The send attempts, oldest first.
    pub attempts: Vec<AttemptView>,
    /// Deliveries made from this one, and the one it was made from.
    pub links: Vec<LinkView>,
    /// Where SES's feedback puts it: `sent`, `delayed`, `delivered`, `bounced` or `complained`
    /// (by precedence; absent before any feedback).
    pub feedback_status: Option<String>,
    /// What SES said about it, oldest first.
    pub feedback: Vec<FeedbackView>,
    /// Why it cannot be resent, when it cannot.
    pub not_resendable: Option<String>,
}

impl From<&DeliveryDetail> for DeliveryDetailView {
    fn from(d: &DeliveryDetail) -> Self {
        Self {
            summary: DeliverySummary::from(&d.record),
            event: d.record.event_json.as_deref().and_then(|j| serde_json::from_str(j).ok()),
            raw_body: d.record.raw_body.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()),
            claims: d.record.claim_count,
            attempts: d.attempts.iter().map(AttemptView::from).collect(),
            links: d.links.iter().map(LinkView::from).collect(),
            feedback_status: d.feedback.status.map(|s| s.as_str().to_owned()),
            feedback: d.feedback.timeline.iter().map(FeedbackView::from).collect(),
            not_resendable: d.not_resendable.clone(),
        }
    }
}
