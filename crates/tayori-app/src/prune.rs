//! Deleting delivery records past their retention (`tayori prune`): deliveries with everything
//! that belongs to them, then feedback that matched nothing, then unkeyed rejections, each oldest
//! first, in batches small enough that the workers writing beside it never wait long.
//!
//! What stays: deliveries a worker has held since the cutoff (a late copy of their event is being
//! handled), suppressions, tenant pauses, admin tokens and the audit log, which have their own
//! lives.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tayori_domain::RetentionDays;
use tracing::warn;

use crate::ports::{Clock, PrunableCounts, RetentionStore, StoreError};

/// What to prune.
#[derive(Debug, Clone, Copy)]
pub struct PruneRequest {
    /// Records younger than this are kept.
    pub keep: RetentionDays,
    /// Records deleted per transaction.
    pub batch_size: NonZeroU32,
    /// Count what would go, delete nothing.
    pub dry_run: bool,
    /// Records deleted per second at most, every kind together; `None`: as fast as the store
    /// goes. Pacing leaves the database's CPU and disk to the workers beside it.
    pub max_rate: Option<NonZeroU32>,
    /// The audit log's own retention, pruned last; `None` keeps it whole.
    pub audit_keep: Option<RetentionDays>,
}

/// The kinds of records pruned, in the order they are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrunedKind {
    /// Deliveries, with their attempts, feedback timeline and links.
    Deliveries,
    /// Feedback messages that matched no delivery or could not be read.
    UnmatchedFeedback,
    /// Bodies that had no idempotency key.
    UnkeyedRejections,
    /// Operators' audit log entries (under their own retention).
    AuditEntries,
}

impl PrunedKind {
    /// How an operator reads it in a progress line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Deliveries => "deliveries",
            Self::UnmatchedFeedback => "unmatched feedback messages",
            Self::UnkeyedRejections => "unkeyed rejections",
            Self::AuditEntries => "audit entries",
        }
    }
}

/// Where a run stands, after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneProgress {
    /// What the batch deleted.
    pub kind: PrunedKind,
    /// Deleted of this kind so far in this run.
    pub deleted: u64,
    /// Counted of this kind at the start (records that age past the cutoff during the run are
    /// not counted; rows a worker holds are skipped).
    pub expected: u64,
}

/// How many records of each kind a run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunedCounts {
    /// Deliveries (their attempts, timelines and links went with them).
    pub deliveries: u64,
    /// Feedback messages that matched nothing.
    pub unmatched_feedback: u64,
    /// Unkeyed rejections.
    pub unkeyed_rejections: u64,
    /// Audit log entries.
    pub audit_entries: u64,
}

impl PrunedCounts {
    fn add(&mut self, kind: PrunedKind, deleted: u64) -> u64 {
        let total = match kind {
            PrunedKind::Deliveries => &mut self.deliveries,
            PrunedKind::UnmatchedFeedback => &mut self.unmatched_feedback,
            PrunedKind::UnkeyedRejections => &mut self.unkeyed_rejections,
            PrunedKind::AuditEntries => &mut self.audit_entries,
        };
        *total += deleted;
        *total
    }

    /// Every kind together.
    pub fn total(&self) -> u64 {
        self.deliveries + self.unmatched_feedback + self.unkeyed_rejections + self.audit_entries
    }
}

/// What a run found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    /// Records created (or last seen, received) before this instant were past the retention.
    pub cutoff: DateTime<Utc>,
    /// Audit entries recorded before this instant were past theirs, when one was asked for.
    pub audit_cutoff: Option<DateTime<Utc>>,
    /// What was past it when the run started.
    pub found: PrunableCounts,
    /// What the run deleted (nothing on a dry run).
    pub deleted: PrunedCounts,
    /// The run was asked to stop before it was done; running it again goes on where it stopped.
    pub stopped_early: bool,
}

/// A run ended on a store failure that outlasted the retries. What was deleted before stays
/// deleted, and a new run goes on from there.
#[derive(Debug, thiserror::Error)]
#[error(
    "pruning stopped after deleting {} deliveries, {} unmatched feedback messages, {} unkeyed \
     rejections and {} audit entries: {source}",
    deleted.deliveries, deleted.unmatched_feedback, deleted.unkeyed_rejections,
    deleted.audit_entries
)]
pub struct PruneError {
    /// Deleted before the failure.
    pub deleted: PrunedCounts,
    /// The failure.
    #[source]
    pub source: StoreError,
}

/// Deletes what is past the retention. See the module's documentation.
pub struct PruneRecords {
    store: Arc<dyn RetentionStore>,
    clock: Arc<dyn Clock>,
    retry_waits: Vec<Duration>,
}

impl PruneRecords {
    /// A pruner that waits out a store outage of up to about a minute per batch.
    pub fn new(store: Arc<dyn RetentionStore>, clock: Arc<dyn Clock>) -> Self {
        let retry_waits = [1, 2, 5, 10, 15, 30].map(Duration::from_secs).to_vec();
        Self { store, clock, retry_waits }
    }

    /// Counts what is past the retention, then (unless a dry run) deletes it batch by batch,
    /// calling `progress` after each batch and `should_stop` before each one.
    pub async fn run(
        &self,
        request: PruneRequest,
        progress: &mut (dyn FnMut(PruneProgress) + Send),
        should_stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<PruneReport, PruneError> {
        let now = self.clock.now();
        let cutoff = request.keep.cutoff(now);
        let audit_cutoff = request.audit_keep.map(|keep| keep.cutoff(now));
        let mut deleted = PrunedCounts::default();
        let failed = |source| PruneError { deleted, source };
        let mut found =
            self.with_retries(|| self.store.count_prunable(cutoff)).await.map_err(failed)?;
        if let Some(audit_cutoff) = audit_cutoff {
            found.audit_entries =
                self.with_retries(|| self.store.count_audit(audit_cutoff)).await.map_err(failed)?;
        }
        let mut report = PruneReport { cutoff, audit_cutoff, found, deleted, stopped_early: false };
        if request.dry_run {
            return Ok(report);
        }
        let limit = request.batch_size.get();
        let paced_from = self.clock.now();
        let mut kinds = vec![
            (PrunedKind::Deliveries, found.deliveries, cutoff),
            (PrunedKind::UnmatchedFeedback, found.unmatched_feedback, cutoff),
            (PrunedKind::UnkeyedRejections, found.unkeyed_rejections, cutoff),
        ];
        if let Some(audit_cutoff) = audit_cutoff {
            kinds.push((PrunedKind::AuditEntries, found.audit_entries, audit_cutoff));
        }
        for (kind, expected, cutoff) in kinds {
            loop {
                let stop = match request.max_rate {
                    Some(rate) => !self.pace(paced_from, deleted.total(), rate, should_stop).await,
                    None => should_stop(),
                };
                if stop {
                    report.deleted = deleted;
                    report.stopped_early = true;
                    return Ok(report);
                }
                let batch = self
                    .with_retries(|| async move {
                        match kind {
                            PrunedKind::Deliveries => {
                                self.store.prune_deliveries(cutoff, limit).await
                            }
                            PrunedKind::UnmatchedFeedback => {
                                self.store.prune_unmatched_feedback(cutoff, limit).await
                            }
                            PrunedKind::UnkeyedRejections => {
                                self.store.prune_unkeyed_rejections(cutoff, limit).await
                            }
                            PrunedKind::AuditEntries => self.store.prune_audit(cutoff, limit).await,
                        }
                    })
                    .await
                    .map_err(|source| PruneError { deleted, source })?;
                let so_far = deleted.add(kind, batch);
                progress(PruneProgress { kind, deleted: so_far, expected });
                // A short batch means nothing older is left but rows other transactions held.
                if batch < u64::from(limit) {
                    break;
                }
            }
        }
        report.deleted = deleted;
        Ok(report)
    }

    /// Waits until the `deleted` records so far took at least `deleted / rate` seconds since
    /// `from`, in steps of at most a second so that a stop is seen; false when asked to stop.
    async fn pace(
        &self,
        from: DateTime<Utc>,
        deleted: u64,
        rate: NonZeroU32,
        should_stop: &(dyn Fn() -> bool + Sync),
    ) -> bool {
        // The time the deletes so far may take at the least, to the millisecond.
        let due = Duration::from_millis(deleted.saturating_mul(1_000) / u64::from(rate.get()));
        loop {
            if should_stop() {
                return false;
            }
            let spent = (self.clock.now() - from).to_std().unwrap_or_default();
            match due.checked_sub(spent) {
                Some(wait) if !wait.is_zero() => {
                    self.clock.sleep(wait.min(Duration::from_secs(1))).await;
                }
                _ => return true,
            }
        }
    }

    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut waits = self.retry_waits.iter();
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error @ StoreError::Unavailable(_)) => match waits.next() {
                    Some(wait) => {
                        warn!(error = %error, retry_in = ?wait, "pruning paused: the store is unavailable");
                        self.clock.sleep(*wait).await;
                    }
                    None => return Err(error),
                },
                Err(error) => return Err(error),
            }
        }
    }
}
