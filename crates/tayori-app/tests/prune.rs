//! The prune use case against an in-memory retention store: what it counts, deletes in batches,
//! keeps, and how it rides out a store outage or a stop. The PostgreSQL store's own behaviour
//! (what goes with a delivery, locks, foreign keys) is tested in tayori-postgres.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures::executor::block_on;
use tayori_app::ports::{Clock, PrunableCounts, RetentionStore, StoreError};
use tayori_app::prune::{PruneProgress, PruneRecords, PruneRequest, PrunedCounts, PrunedKind};
use tayori_app::testing::ManualClock;
use tayori_domain::RetentionDays;

/// Deliveries as (created, held by a worker since the cutoff); feedback and rejections as times.
#[derive(Default)]
struct FakeRetention {
    deliveries: Mutex<Vec<(DateTime<Utc>, bool)>>,
    unmatched_feedback: Mutex<Vec<DateTime<Utc>>>,
    unkeyed_rejections: Mutex<Vec<DateTime<Utc>>>,
    audit: Mutex<Vec<DateTime<Utc>>>,
    failures: Mutex<VecDeque<StoreError>>,
    calls: AtomicU32,
}

impl FakeRetention {
    fn fail_next_with(&self, errors: Vec<StoreError>) {
        self.failures.lock().unwrap().extend(errors);
    }

    fn next_failure(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.failures.lock().unwrap().pop_front().map_or(Ok(()), Err)
    }
}

fn take_before(rows: &mut Vec<DateTime<Utc>>, cutoff: DateTime<Utc>, limit: u32) -> u64 {
    let mut taken = 0;
    rows.retain(|at| {
        let goes = *at < cutoff && taken < limit;
        taken += u32::from(goes);
        !goes
    });
    u64::from(taken)
}

#[async_trait]
impl RetentionStore for FakeRetention {
    async fn count_prunable(&self, cutoff: DateTime<Utc>) -> Result<PrunableCounts, StoreError> {
        self.next_failure()?;
        let deliveries = self.deliveries.lock().unwrap();
        let old = |held: bool| {
            deliveries.iter().filter(|(at, h)| *at < cutoff && *h == held).count() as u64
        };
        let before = |rows: &Mutex<Vec<DateTime<Utc>>>| {
            rows.lock().unwrap().iter().filter(|at| **at < cutoff).count() as u64
        };
        Ok(PrunableCounts {
            deliveries: old(false),
            processing_kept: old(true),
            unkeyed_rejections: before(&self.unkeyed_rejections),
            unmatched_feedback: before(&self.unmatched_feedback),
            audit_entries: 0,
        })
    }

    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.next_failure()?;
        let mut taken = 0;
        self.deliveries.lock().unwrap().retain(|(at, held)| {
            let goes = *at < cutoff && !held && taken < limit;
            taken += u32::from(goes);
            !goes
        });
        Ok(u64::from(taken))
    }

    async fn prune_unkeyed_rejections(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.next_failure()?;
        Ok(take_before(&mut self.unkeyed_rejections.lock().unwrap(), cutoff, limit))
    }

    async fn prune_unmatched_feedback(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.next_failure()?;
        Ok(take_before(&mut self.unmatched_feedback.lock().unwrap(), cutoff, limit))
    }

    async fn count_audit(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.next_failure()?;
        Ok(self.audit.lock().unwrap().iter().filter(|at| **at < cutoff).count() as u64)
    }

    async fn prune_audit(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.next_failure()?;
        Ok(take_before(&mut self.audit.lock().unwrap(), cutoff, limit))
    }
}

struct World {
    store: Arc<FakeRetention>,
    clock: Arc<ManualClock>,
    pruner: PruneRecords,
}

/// 7 deliveries 100 days old that no worker holds and 2 a worker holds, 3 deliveries 10 days old;
/// 3 unmatched feedback messages and 1 unkeyed rejection 100 days old, one of each 10 days old.
fn world() -> World {
    let clock = Arc::new(ManualClock::new());
    let now = clock.now();
    let old = now - TimeDelta::days(100);
    let young = now - TimeDelta::days(10);
    let store = Arc::new(FakeRetention::default());
    {
        let mut deliveries = store.deliveries.lock().unwrap();
        deliveries.extend([(old, false); 7]);
        deliveries.extend([(old, true); 2]);
        deliveries.extend([(young, false); 3]);
        store.unmatched_feedback.lock().unwrap().extend([old, old, old, young]);
        store.unkeyed_rejections.lock().unwrap().extend([old, young]);
    }
    let pruner = PruneRecords::new(store.clone(), clock.clone());
    World { store, clock, pruner }
}

fn request(days: u32, batch: u32) -> PruneRequest {
    PruneRequest {
        keep: RetentionDays::new(days).unwrap(),
        batch_size: NonZeroU32::new(batch).unwrap(),
        dry_run: false,
        max_rate: None,
        audit_keep: None,
    }
}

fn never() -> bool {
    false
}

const EXPECTED_FOUND: PrunableCounts = PrunableCounts {
    deliveries: 7,
    processing_kept: 2,
    unkeyed_rejections: 1,
    unmatched_feedback: 3,
    audit_entries: 0,
};

#[test]
fn a_dry_run_counts_and_deletes_nothing() {
    let w = world();
    let mut batches = 0;
    let report = block_on(w.pruner.run(
        PruneRequest { dry_run: true, ..request(90, 100) },
        &mut |_| batches += 1,
        &never,
    ))
    .unwrap();
    assert_eq!(report.found, EXPECTED_FOUND);
    assert_eq!(report.deleted, PrunedCounts::default());
    assert_eq!(report.cutoff, w.clock.now() - TimeDelta::days(90));
    assert_eq!(batches, 0);
    assert_eq!(w.store.deliveries.lock().unwrap().len(), 12);
}

#[test]
fn deletes_what_is_past_the_retention_in_batches_and_keeps_the_rest() {
    let w = world();
    let mut progress = Vec::new();
    let report = block_on(w.pruner.run(request(90, 3), &mut |p| progress.push(p), &never)).unwrap();

    assert_eq!(report.found, EXPECTED_FOUND);
    assert_eq!(
        report.deleted,
        PrunedCounts {
            deliveries: 7,
            unmatched_feedback: 3,
            unkeyed_rejections: 1,
            audit_entries: 0
        }
    );
    assert!(!report.stopped_early);
    let step = |kind, deleted, expected| PruneProgress { kind, deleted, expected };
    assert_eq!(
        progress,
        vec![
            step(PrunedKind::Deliveries, 3, 7),
            step(PrunedKind::Deliveries, 6, 7),
            step(PrunedKind::Deliveries, 7, 7),
            step(PrunedKind::UnmatchedFeedback, 3, 3),
            step(PrunedKind::UnmatchedFeedback, 3, 3),
            step(PrunedKind::UnkeyedRejections, 1, 1),
        ],
        "a full batch is followed by another; a short one ends the kind"
    );
    let kept = w.store.deliveries.lock().unwrap().clone();
    assert_eq!(kept.iter().filter(|(_, held)| *held).count(), 2, "held ones stay");
    assert_eq!(kept.len(), 5, "the 2 held and the 3 young");
    assert_eq!(w.store.unmatched_feedback.lock().unwrap().len(), 1);
    assert_eq!(w.store.unkeyed_rejections.lock().unwrap().len(), 1);
}

#[test]
fn a_longer_retention_keeps_everything() {
    let w = world();
    let report = block_on(w.pruner.run(request(365, 100), &mut |_| {}, &never)).unwrap();
    assert_eq!(report.found, PrunableCounts::default());
    assert_eq!(report.deleted, PrunedCounts::default());
    assert_eq!(w.store.deliveries.lock().unwrap().len(), 12);
}

#[test]
fn waits_out_a_store_outage_and_goes_on() {
    let w = world();
    let started = w.clock.now();
    w.store.fail_next_with(vec![
        StoreError::Unavailable("connection refused".into()),
        StoreError::Unavailable("the database system is starting up".into()),
    ]);
    let report = block_on(w.pruner.run(request(90, 100), &mut |_| {}, &never)).unwrap();
    assert_eq!(report.deleted.deliveries, 7);
    // The cutoff was taken before the outage; the waits were 1 s and 2 s.
    assert_eq!(report.cutoff, started - TimeDelta::days(90));
    assert_eq!(w.clock.now() - started, TimeDelta::seconds(3));
}

#[test]
fn an_outage_longer_than_the_retries_stops_with_what_was_deleted() {
    let w = world();
    let mut progress = Vec::new();
    let mut first_batch_done = false;
    // Let the count and one batch of deliveries through, then fail everything.
    let report = block_on(w.pruner.run(
        request(90, 4),
        &mut |p| {
            progress.push(p);
            if !first_batch_done {
                first_batch_done = true;
                w.store.fail_next_with(
                    (0..10).map(|_| StoreError::Unavailable("gone".into())).collect(),
                );
            }
        },
        &never,
    ));
    let error = report.unwrap_err();
    assert_eq!(error.deleted.deliveries, 4);
    assert!(matches!(error.source, StoreError::Unavailable(_)));
    let message = error.to_string();
    assert!(message.starts_with("pruning stopped after deleting 4 deliveries"), "{message}");
    // The count, the first batch, then the second batch tried once and retried six times.
    assert_eq!(w.store.calls.load(Ordering::Relaxed), 2 + 7);
    assert_eq!(w.store.deliveries.lock().unwrap().len(), 8);
}

#[test]
fn an_unexpected_store_error_is_not_retried() {
    let w = world();
    w.store
        .fail_next_with(vec![StoreError::Unexpected(anyhow::anyhow!("relation does not exist"))]);
    let error = block_on(w.pruner.run(request(90, 100), &mut |_| {}, &never)).unwrap_err();
    assert_eq!(error.deleted, PrunedCounts::default());
    assert_eq!(w.store.calls.load(Ordering::Relaxed), 1);
}

#[test]
fn a_stop_between_batches_ends_the_run_with_what_was_deleted() {
    let w = world();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = block_on(w.pruner.run(
        request(90, 2),
        &mut |p| {
            if p.deleted >= 4 {
                stop.store(true, Ordering::Relaxed);
            }
        },
        &|| stop.load(Ordering::Relaxed),
    ))
    .unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.deleted, PrunedCounts { deliveries: 4, ..PrunedCounts::default() });

    // Running it again goes on where it stopped.
    let again = block_on(w.pruner.run(request(90, 2), &mut |_| {}, &never)).unwrap();
    assert_eq!(again.found.deliveries, 3);
    assert_eq!(again.deleted.deliveries, 3);
}

#[test]
fn a_max_rate_paces_the_batches_and_a_stop_ends_the_wait() {
    // Without a rate: no waiting at all.
    let w = world();
    let start = w.clock.now();
    block_on(w.pruner.run(request(90, 2), &mut |_| {}, &never)).unwrap();
    assert_eq!(w.clock.now(), start);

    // 4 a second, batches of 2: each batch starts once the records before it took their
    // share. Of the 11 records (7 deliveries, 3 feedback messages, 1 rejection), the last
    // batch (the rejection) is due at 10 / 4 = 2.5 s.
    let w = world();
    let start = w.clock.now();
    let paced = PruneRequest { max_rate: NonZeroU32::new(4), ..request(90, 2) };
    let mut batches_at = Vec::new();
    let report = block_on(w.pruner.run(
        paced,
        &mut |p| batches_at.push((p.kind, p.deleted, (w.clock.now() - start).num_milliseconds())),
        &never,
    ))
    .unwrap();
    assert_eq!(report.deleted.total(), 11);
    assert_eq!(
        batches_at[..4],
        [
            (PrunedKind::Deliveries, 2, 0),
            (PrunedKind::Deliveries, 4, 500),
            (PrunedKind::Deliveries, 6, 1_000),
            (PrunedKind::Deliveries, 7, 1_500),
        ],
        "{batches_at:?}"
    );
    assert_eq!((w.clock.now() - start).num_milliseconds(), 2_500, "{batches_at:?}");

    // A stop while waiting ends the run within a second (the waits are a second at most): the
    // first batch of 4 at 1 a second makes the next one due at 4 s; the stop at 1.5 s ends it
    // at 2 s.
    let w = world();
    let start = w.clock.now();
    let slow = PruneRequest { max_rate: NonZeroU32::new(1), ..request(90, 4) };
    let report = block_on(
        w.pruner
            .run(slow, &mut |_| {}, &|| w.clock.now() - start >= TimeDelta::milliseconds(1_500)),
    )
    .unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.deleted.deliveries, 4, "the first batch, then the wait was cut short");
    assert_eq!((w.clock.now() - start).num_milliseconds(), 2_000);
}

#[test]
fn the_audit_log_is_pruned_last_under_its_own_retention_only_when_asked() {
    let w = world();
    let now = w.clock.now();
    w.store.audit.lock().unwrap().extend([
        now - TimeDelta::days(800),
        now - TimeDelta::days(750),
        now - TimeDelta::days(100),
    ]);
    let report = block_on(w.pruner.run(request(90, 100), &mut |_| {}, &never)).unwrap();
    assert_eq!((report.found.audit_entries, report.deleted.audit_entries), (0, 0));
    assert_eq!(report.audit_cutoff, None);
    assert_eq!(w.store.audit.lock().unwrap().len(), 3, "kept whole without a retention");

    let two_years =
        PruneRequest { audit_keep: Some(RetentionDays::new(730).unwrap()), ..request(90, 1) };
    let mut kinds = Vec::new();
    let report = block_on(w.pruner.run(two_years, &mut |p| kinds.push(p.kind), &never)).unwrap();
    assert_eq!(report.audit_cutoff, Some(now - TimeDelta::days(730)));
    assert_eq!((report.found.audit_entries, report.deleted.audit_entries), (2, 2));
    assert_eq!(kinds.last(), Some(&PrunedKind::AuditEntries), "last, after the records: {kinds:?}");
    assert_eq!(w.store.audit.lock().unwrap().clone(), [now - TimeDelta::days(100)]);
}
