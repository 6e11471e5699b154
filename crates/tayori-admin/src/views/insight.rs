//! Outcome counts, reputation, audit entries and SES feedback kept without a delivery.

use serde::Serialize;
use tayori_app::ports::{AuditRecord, OutcomeCount, UnmatchedFeedbackRecord};

use super::PausedView;
use utoipa::ToSchema;

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
