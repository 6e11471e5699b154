//! What a resend or replay did, and the rejected events to replay.

use serde::Serialize;
use tayori_app::admin::ActionResult;
use tayori_app::ports::UnkeyedRejectionRecord;

use super::DeliveryDetailView;
use utoipa::ToSchema;

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
