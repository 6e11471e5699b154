use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// What is past the retention at a cutoff, counted before anything is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunableCounts {
    /// Deliveries created before the cutoff that no worker has held since: these go, with their
    /// attempts, feedback timeline and links. Most are decided; the others were left in
    /// `processing` by a crash after their message was gone, and no copy of their event came
    /// back for the whole retention period.
    pub deliveries: u64,
    /// Deliveries created before the cutoff and `processing` under a lease taken since the
    /// cutoff: a worker is at a late copy of their event. Kept.
    pub processing_kept: u64,
    /// Bodies without an idempotency key last seen before the cutoff.
    pub unkeyed_rejections: u64,
    /// SES feedback that matched no delivery or could not be read, received before the cutoff.
    pub unmatched_feedback: u64,
    /// Audit log entries recorded before the audit log's own cutoff; 0 when the run keeps the
    /// audit log whole (no audit retention asked for).
    pub audit_entries: u64,
}

/// Deletes delivery records past their retention, in batches, for `tayori prune`.
///
/// Each call deletes at most `limit` records in one transaction, oldest first, and returns how
/// many it deleted; 0 means nothing is left before the cutoff. A call MUST leave nothing half
/// deleted: a delivery goes together with its attempts, its feedback timeline (and the feedback
/// messages matched to it) and the links that name it as the new delivery, or not at all. It MUST
/// NOT delete a delivery `processing` under a lease taken after the cutoff, nor anything another
/// transaction has locked (a worker claiming a redelivered event): those are left for later runs.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Counts what [`RetentionStore::prune_deliveries`] and the others would delete.
    async fn count_prunable(&self, cutoff: DateTime<Utc>) -> Result<PrunableCounts, StoreError>;

    /// Deletes up to `limit` deliveries created before `cutoff` (decided, or `processing` under a
    /// lease that ended before `cutoff`), with what belongs to them.
    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// Deletes up to `limit` unkeyed rejections last seen before `cutoff`.
    async fn prune_unkeyed_rejections(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` feedback messages received before `cutoff` that matched no delivery.
    async fn prune_unmatched_feedback(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Counts the audit log entries recorded before `cutoff`.
    async fn count_audit(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Deletes up to `limit` audit log entries recorded before `cutoff`, oldest first.
    async fn prune_audit(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
