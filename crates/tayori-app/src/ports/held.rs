use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{EventType, IdempotencyKey, TenantId};

use super::StoreError;

/// An event of a tenant paused by an operator or the reputation guard, kept out of the queue
/// until the tenant is resumed: a pause may last longer than the queue would keep handing the
/// message out before moving it to its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEvent {
    /// What operators see of it (the store keeps one held copy per key).
    pub entry: HeldEntry,
    /// The message body, as received (an SNS envelope stays one).
    pub body: Vec<u8>,
}

/// A held event leased to one worker for handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedEvent {
    /// The event.
    pub event: HeldEvent,
    /// Which lease this is: [`HeldEvents::forget`] takes it back.
    pub lease: i64,
}

/// What a tenant has held, for operators: counts by event type and the oldest events (no
/// bodies: they hold the recipients' data).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeldSummary {
    /// Per event type: the events held and the oldest hold, event types in order.
    pub by_event_type: Vec<(EventType, u64, DateTime<Utc>)>,
    /// The oldest held events, oldest first.
    pub oldest: Vec<HeldEntry>,
}

/// A tenant that is paused or has events held, for the gauges operators alert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantHolding {
    /// The tenant.
    pub tenant: TenantId,
    /// Paused now (by an operator or the reputation guard).
    pub paused: bool,
    /// Its events held now.
    pub held_events: u64,
    /// When the oldest of them was held.
    pub oldest_held_at: Option<DateTime<Utc>>,
}

/// A held event without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEntry {
    /// Its key.
    pub key: IdempotencyKey,
    /// Its type, for operators to see what is held.
    pub event_type: EventType,
    /// The queue's receive count when it was held; recorded with the delivery once released.
    pub receive_count: u32,
    /// The pause's reason when it was held.
    pub reason: String,
    /// When it was held.
    pub held_at: DateTime<Utc>,
}

/// Where events of paused tenants wait for the resume (PostgreSQL, beside the pauses).
#[async_trait]
pub trait HeldEvents: Send + Sync {
    /// Keeps the event until its tenant is no longer paused. Holding a key that is held already
    /// MUST keep one copy (this one) and end any lease on it, so that a worker that leased it
    /// and got it held again does not forget it.
    async fn hold(&self, event: &HeldEvent) -> Result<(), StoreError>;

    /// Leases up to `limit` held events whose tenant is not paused (never paused, or resumed),
    /// oldest first, until `lease_until`. An event MUST NOT be leased again while its lease
    /// runs, and MUST be leased again after it ran out without a [`forget`](Self::forget): a
    /// worker that died while handling it leaves it held, not lost.
    async fn lease_released(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError>;

    /// Leases up to `limit` held events of `tenant` (of `event_type` only, when given), paused
    /// or not, oldest first, until `lease_until`, under the same rules as
    /// [`lease_released`](Self::lease_released): what an operator's discard of a paused tenant's
    /// held events goes through.
    async fn lease_of_tenant(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError>;

    /// The tenant's held events by event type, and its `limit` oldest ones.
    async fn held_summary(&self, tenant: &TenantId, limit: u32) -> Result<HeldSummary, StoreError>;

    /// Every tenant paused now or with events held, in tenant order.
    async fn holdings(&self) -> Result<Vec<TenantHolding>, StoreError>;

    /// Forgets a leased event once it has been handled. MUST forget nothing when the event was
    /// held again or leased again since `lease` was given; returns whether it forgot it.
    async fn forget(&self, key: &IdempotencyKey, lease: i64) -> Result<bool, StoreError>;
}
