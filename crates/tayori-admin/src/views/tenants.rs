//! Paused tenants, what a pause or resume did, and a tenant's held events.

use serde::Serialize;
use utoipa::ToSchema;

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
