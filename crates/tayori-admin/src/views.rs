//! What the API returns and the console shows, built from the use cases' answers.

use serde::Serialize;
use tayori_app::admin::{ActionResult, DeliveryDetail, FeedbackEntry, ShownSuppression};
use tayori_app::ports::{
    AttemptRecord, AuditRecord, DeliveryLink, DeliveryRecord, OutcomeCount, TokenRecord,
    UnkeyedRejectionRecord, UnmatchedFeedbackRecord,
};
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

/// What came of a resend or replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    /// The new delivery (absent when a replayed body still yields no key).
    pub delivery_id: Option<String>,
    /// Its status after handling.
    pub status: String,
    /// Why, or what was transient.
    pub reason: Option<String>,
}

impl From<&ActionResult> for ActionView {
    fn from(a: &ActionResult) -> Self {
        Self {
            delivery_id: a.delivery_id.map(|id| id.to_string()),
            status: a.status.to_string(),
            reason: a.reason.clone(),
        }
    }
}

/// A body that did not even yield an idempotency key.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnkeyedView {
    /// SHA-256 of the body: its id.
    pub body_sha256: String,
    /// The tenant, when the body named a valid one.
    pub tenant: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// The body as received (first 64 KiB), as text.
    pub raw_body: String,
    /// The whole body's size in bytes.
    pub body_size: u64,
    /// How often it arrived.
    pub times_seen: u32,
    /// Last arrival (RFC 3339).
    pub last_seen_at: String,
}

impl From<&UnkeyedRejectionRecord> for UnkeyedView {
    fn from(r: &UnkeyedRejectionRecord) -> Self {
        Self {
            body_sha256: r.body_sha256.clone(),
            tenant: r.tenant.clone(),
            reason: r.reason.clone(),
            raw_body: String::from_utf8_lossy(&r.raw_body).into_owned(),
            body_size: r.body_size,
            times_seen: r.times_seen,
            last_seen_at: r.last_seen_at.to_rfc3339(),
        }
    }
}

/// Rejected events: keyed ones (deliveries rejected with their reason and body) and bodies
/// without a key.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedEvents {
    /// Rejected deliveries, newest first.
    pub deliveries: Vec<DeliveryDetailView>,
    /// Pass as `after` for the next page of rejected deliveries.
    pub next: Option<String>,
    /// Bodies without a key, most recently seen first.
    pub unkeyed: Vec<UnkeyedView>,
}

/// A suppressed address.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    /// The tenant.
    pub tenant: String,
    /// The address (masked unless the role is admin).
    pub address: String,
    /// Why.
    pub reason: String,
    /// `operator`, later `bounce` or `complaint`.
    pub cause: String,
    /// Who added it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
}

impl From<&ShownSuppression> for SuppressionView {
    fn from(s: &ShownSuppression) -> Self {
        Self {
            tenant: s.tenant.to_string(),
            address: s.address.clone(),
            reason: s.reason.clone(),
            cause: s.cause.clone(),
            created_by: s.created_by.clone(),
            created_at: s.created_at.to_rfc3339(),
        }
    }
}

/// Deliveries of one tenant in one status.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountView {
    /// The tenant.
    pub tenant: String,
    /// The status.
    pub status: String,
    /// How many.
    pub count: u64,
}

impl From<&OutcomeCount> for CountView {
    fn from(c: &OutcomeCount) -> Self {
        Self { tenant: c.tenant.to_string(), status: c.status.to_string(), count: c.count }
    }
}

/// Counts per tenant and outcome over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    /// `hour`, `day` or `week`.
    pub window: String,
    /// One row per tenant and status that has deliveries.
    pub counts: Vec<CountView>,
}

/// One tenant's bounce and complaint rates over the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReputationRow {
    /// The tenant.
    pub tenant: String,
    /// Deliveries decided `sent` in the window.
    pub sent: u64,
    /// Of those, reported bounced by SES.
    pub bounced: u64,
    /// Of those, with a complaint.
    pub complained: u64,
    /// bounced / sent.
    pub bounce_rate: f64,
    /// complained / sent.
    pub complaint_rate: f64,
    /// At least `min_sent` deliveries and a rate above its threshold.
    pub over_threshold: bool,
}

impl From<&tayori_app::admin::TenantReputation> for ReputationRow {
    fn from(r: &tayori_app::admin::TenantReputation) -> Self {
        Self {
            tenant: r.counts.tenant.to_string(),
            sent: r.counts.sent,
            bounced: r.counts.bounced,
            complained: r.counts.complained,
            bounce_rate: r.bounce_rate,
            complaint_rate: r.complaint_rate,
            over_threshold: r.over_threshold,
        }
    }
}

/// Bounce and complaint rates per tenant (from SES feedback, `docs/feedback.md`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReputationView {
    /// `hour`, `day` or `week`.
    pub window: String,
    /// The bounce rate threshold (0.04 = 4 %).
    pub bounce_rate_threshold: f64,
    /// The complaint rate threshold (0.0008 = 0.08 %).
    pub complaint_rate_threshold: f64,
    /// Tenants with fewer sent deliveries are not judged.
    pub min_sent: u64,
    /// One row per tenant with sent deliveries in the window.
    pub tenants: Vec<ReputationRow>,
    /// Tenants paused now, by an operator or the reputation guard (resume with
    /// `POST /api/v1/tenants/{tenant}/resume`).
    pub paused: Vec<PausedView>,
}

/// A tenant whose sending is paused for every worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct PausedView {
    /// The tenant.
    pub tenant: String,
    /// Why: the operator's reason, or the reputation guard's rates and thresholds.
    pub reason: String,
    /// Since when (RFC 3339).
    pub paused_at: String,
    /// The token id of the operator who paused it; null when the reputation guard did.
    pub paused_by: Option<String>,
    /// Its events held until the resume (workers hold a paused tenant's events in the store
    /// rather than leave them on the queue).
    pub held_events: u64,
    /// When the oldest of them was held (RFC 3339); null when none is held.
    pub oldest_held_at: Option<String>,
}

impl From<&tayori_app::ports::TenantPause> for PausedView {
    fn from(p: &tayori_app::ports::TenantPause) -> Self {
        Self {
            tenant: p.tenant.to_string(),
            reason: p.reason.clone(),
            paused_at: p.paused_at.to_rfc3339(),
            paused_by: p.paused_by.clone(),
            held_events: p.held_events,
            oldest_held_at: p.oldest_held_at.map(|at| at.to_rfc3339()),
        }
    }
}

/// What a pause did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseView {
    /// False when the tenant was paused already (nothing changed, nothing audited).
    pub paused: bool,
}

/// What a tenant has held until its resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    /// Every held event of the tenant.
    pub total: u64,
    /// Per event type, in order.
    pub by_event_type: Vec<HeldTypeView>,
    /// The oldest held events (at most `limit`), oldest first; no bodies.
    pub oldest: Vec<HeldEntryView>,
}

/// The held events of one event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldTypeView {
    /// The event type.
    pub event_type: String,
    /// How many.
    pub events: u64,
    /// When the oldest was held (RFC 3339).
    pub oldest_held_at: String,
}

/// One held event.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldEntryView {
    /// The producer.
    pub source: String,
    /// The producer's id of the event.
    pub event_id: String,
    /// The delivery it becomes once released (or discarded).
    pub delivery_id: String,
    /// Its type.
    pub event_type: String,
    /// When it was held (RFC 3339).
    pub held_at: String,
    /// The queue's receive count when it was held.
    pub receive_count: u32,
    /// The pause's reason when it was held.
    pub reason: String,
}

impl From<&tayori_app::ports::HeldSummary> for HeldView {
    fn from(summary: &tayori_app::ports::HeldSummary) -> Self {
        Self {
            total: summary.by_event_type.iter().map(|(_, events, _)| events).sum(),
            by_event_type: summary
                .by_event_type
                .iter()
                .map(|(event_type, events, oldest)| HeldTypeView {
                    event_type: event_type.to_string(),
                    events: *events,
                    oldest_held_at: oldest.to_rfc3339(),
                })
                .collect(),
            oldest: summary
                .oldest
                .iter()
                .map(|entry| HeldEntryView {
                    source: entry.key.source.to_string(),
                    event_id: entry.key.id.to_string(),
                    delivery_id: entry.key.delivery_id().to_string(),
                    event_type: entry.event_type.to_string(),
                    held_at: entry.held_at.to_rfc3339(),
                    receive_count: entry.receive_count,
                    reason: entry.reason.clone(),
                })
                .collect(),
        }
    }
}

/// What a discard of held events did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscardView {
    /// Events decided `rejected` (or found decided before) and no longer held.
    pub discarded: u64,
    /// Events that could not be decided now (the store, a key in flight); still held.
    pub left: u64,
    /// The tenant's held events after the call; above 0, call again.
    pub remaining: u64,
}

impl From<tayori_app::admin::Discarded> for DiscardView {
    fn from(done: tayori_app::admin::Discarded) -> Self {
        Self { discarded: done.discarded, left: done.left, remaining: done.remaining }
    }
}

/// What a resume did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeView {
    /// False when the tenant was not paused (nothing changed, nothing audited).
    pub resumed: bool,
}

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Its position (pass as `before` for older entries).
    pub audit_id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who: the token's id.
    pub token_id: String,
    /// The role it had.
    pub role: String,
    /// What, e.g. `delivery.resend`.
    pub action: String,
    /// On which tenant.
    pub tenant: Option<String>,
    /// The kind of object.
    pub object_kind: Option<String>,
    /// The object's id.
    pub object_id: Option<String>,
    /// The reason given.
    pub reason: Option<String>,
    /// More about it.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<&AuditRecord> for AuditView {
    fn from(r: &AuditRecord) -> Self {
        let e = &r.entry;
        Self {
            audit_id: r.audit_id,
            at: e.at.to_rfc3339(),
            token_id: e.token_id.clone(),
            role: e.role.clone(),
            action: e.action.clone(),
            tenant: e.tenant.as_ref().map(ToString::to_string),
            object_kind: e.object_kind.clone(),
            object_id: e.object_id.clone(),
            reason: e.reason.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub token_id: String,
    /// Its role.
    pub role: String,
    /// Its tenants; absent means every tenant.
    pub tenants: Option<Vec<String>>,
    /// A note on whom it is for.
    pub label: String,
    /// When it was made.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When it was last used.
    pub last_used_at: Option<String>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        Self {
            token_id: t.token_id.clone(),
            role: t.role.to_string(),
            tenants: t.scope.filter().map(|ts| ts.iter().map(ToString::to_string).collect()),
            label: t.label.clone(),
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|x| x.to_rfc3339()),
            revoked_at: t.revoked_at.map(|x| x.to_rfc3339()),
            last_used_at: t.last_used_at.map(|x| x.to_rfc3339()),
        }
    }
}

/// SES feedback kept without a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnmatchedFeedbackView {
    /// Its identity (`sns:<MessageId>`, `eventbridge:<id>`, `sha256:<hex>`).
    pub feedback_id: String,
    /// `unmatched` (no delivery has its SES message id or tags) or `invalid` (unreadable).
    pub result: String,
    /// The SES event kind, when it was read (`bounce`, `complaint`, ...).
    pub kind: Option<String>,
    /// The SES message id, when it was read.
    pub ses_message_id: Option<String>,
    /// Why it is kept.
    pub reason: Option<String>,
    /// When tayori received it (RFC 3339).
    pub received_at: String,
}

impl From<&UnmatchedFeedbackRecord> for UnmatchedFeedbackView {
    fn from(r: &UnmatchedFeedbackRecord) -> Self {
        Self {
            feedback_id: r.feedback_id.clone(),
            result: r.result.clone(),
            kind: r.kind.clone(),
            ses_message_id: r.ses_message_id.clone(),
            reason: r.reason.clone(),
            received_at: r.received_at.to_rfc3339(),
        }
    }
}

/// A page of SES feedback kept without a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnmatchedFeedbackList {
    /// Newest first.
    pub feedback: Vec<UnmatchedFeedbackView>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next: Option<String>,
}

/// A dead-letter queue, as a principal may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLettersView {
    /// `events` or `feedback`.
    pub queue: String,
    /// The queue's name and counts; absent for tokens scoped to tenants (it counts every
    /// tenant's messages).
    pub depth: Option<DeadLetterDepthView>,
    /// A sample of its messages (up to `limit`), oldest first, in the token's tenants.
    pub messages: Vec<DeadLetterView>,
}

/// How many messages the dead-letter queue holds (SQS's approximate counts).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterDepthView {
    /// The queue's name.
    pub queue: String,
    /// Messages waiting.
    pub visible: u64,
    /// Messages being received (a redrive under way).
    pub in_flight: u64,
}

/// One dead letter: what it carries, never its body.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The queue's id of the message.
    pub message_id: String,
    /// First sent to its source queue (RFC 3339).
    pub sent_at: Option<String>,
    /// Receives so far (looks at the queue included).
    pub receive_count: u32,
    /// The body's size in bytes.
    pub size: usize,
    /// The tenant the event or the email's tags name.
    pub tenant: Option<String>,
    /// An event's source.
    pub source: Option<String>,
    /// An event's id.
    pub event_id: Option<String>,
    /// An event's type.
    pub event_type: Option<String>,
    /// A notification's kind: `bounce`, `complaint`, `delivery`, ...
    pub feedback_kind: Option<String>,
    /// A notification's SES message id.
    pub ses_message_id: Option<String>,
    /// The delivery the event's key or the email's tags name.
    pub delivery_id: Option<String>,
    /// Why the body could not be read (a worker rejects an event, or keeps a notification as
    /// invalid, once redriven).
    pub unreadable: Option<String>,
}

impl DeadLettersView {
    /// The page of `queue`.
    pub fn of(
        queue: tayori_app::admin::DeadLetterQueue,
        page: &tayori_app::admin::DeadLetterPage,
    ) -> Self {
        use tayori_app::admin::DeadLetterContent;
        Self {
            queue: queue.as_str().to_owned(),
            depth: page.depth.as_ref().map(|depth| DeadLetterDepthView {
                queue: depth.queue.clone(),
                visible: depth.visible,
                in_flight: depth.in_flight,
            }),
            messages: page
                .messages
                .iter()
                .map(|m| {
                    let view = DeadLetterView {
                        message_id: m.message_id.clone(),
                        sent_at: m.sent_at.map(|t| t.to_rfc3339()),
                        receive_count: m.receive_count,
                        size: m.size,
                        tenant: m.content.tenant().map(ToString::to_string),
                        ..DeadLetterView::default()
                    };
                    match &m.content {
                        DeadLetterContent::Event { key, event_type } => DeadLetterView {
                            source: Some(key.source.to_string()),
                            event_id: Some(key.id.to_string()),
                            event_type: Some(event_type.to_string()),
                            delivery_id: Some(key.delivery_id().to_string()),
                            ..view
                        },
                        DeadLetterContent::Feedback {
                            kind, ses_message_id, delivery_id, ..
                        } => DeadLetterView {
                            feedback_kind: Some((*kind).to_owned()),
                            ses_message_id: ses_message_id.clone(),
                            delivery_id: delivery_id.map(|id| id.to_string()),
                            ..view
                        },
                        DeadLetterContent::Unreadable(why) => {
                            DeadLetterView { unreadable: Some(why.clone()), ..view }
                        }
                    }
                })
                .collect(),
        }
    }
}

/// What a redrive moved.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveView {
    /// Messages moved back to the events queue.
    pub moved: u64,
    /// Why it stopped part way (the queue service failed); absent when it finished. What it
    /// moved stays moved: run it again.
    pub stopped: Option<String>,
}
