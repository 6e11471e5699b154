//! `tayori prune` beside the worker: old deliveries seeded into the bench's database, then the
//! prune use case (`PruneRecords` on `PostgresRetention`, as `tayori prune` wires it) deleting
//! them while the latency run feeds the worker, and stopped when that run ends. What it measures
//! is what a nightly prune costs the events arriving meanwhile, and how fast it deletes then.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use tayori_app::prune::{PruneRecords, PruneReport, PruneRequest};
use tayori_domain::RetentionDays;
use tayori_postgres::PostgresRetention;
use tokio::task::JoinHandle;

use crate::runs::BenchClock;

/// Inserts `n` sent deliveries created 400 days ago (event ids `old-…`, which no run's check
/// counts), each with one send attempt, analyzes the tables and checkpoints.
pub async fn seed(db: &PgPool, n: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let n = i64::try_from(n)?;
    sqlx::query(
        "insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, recipient, \
             status, provider_message_id, subject, event_json, lease_owner, created_at, \
             updated_at, decided_at) \
         select case when i % 2 = 0 then 'acme-invest' else 'acme-bank' end, 'core-banking', \
             'old-' || i, gen_random_uuid(), 'account.deposit_completed', \
             'user' || i || '@example.com', 'sent', 'ses-old-' || i, 'Your deposit is complete', \
             '{\"specversion\":\"1.0\",\"data\":{\"amount\":10000}}', null, t, t, t \
         from generate_series(1, $1) as i, \
             lateral (select now() - interval '400 days' + i * interval '1 millisecond' as t) at",
    )
    .bind(n)
    .execute(db)
    .await
    .context("seeding old deliveries")?;
    sqlx::query(
        "insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at, finished_at, \
             result, detail) \
         select tenant_id, delivery_id, 1, created_at, created_at, 'accepted', \
             provider_message_id from deliveries where event_id like 'old-%'",
    )
    .execute(db)
    .await
    .context("seeding their attempts")?;
    sqlx::query("analyze deliveries, delivery_attempts").execute(db).await?;
    // The seeding's dirty pages written out now, not by a checkpoint during the measured run.
    sqlx::query("checkpoint").execute(db).await.context("checkpoint after seeding")?;
    Ok(start.elapsed())
}

/// A prune running in the background until [`Pruning::stop`].
pub struct Pruning {
    stop: Arc<AtomicBool>,
    task: JoinHandle<anyhow::Result<(PruneReport, Duration)>>,
}

/// What the prune did beside the run.
pub struct Pruned {
    /// Deliveries it deleted.
    pub deleted: u64,
    /// Deliveries past the retention when it started.
    pub found: u64,
    /// From its start to its last batch.
    pub elapsed: Duration,
    /// It deleted everything before the run ended.
    pub finished: bool,
}

/// Starts `tayori prune --keep-days 90 --batch-size B [--max-rate N]` on the bench's database.
pub fn start(db: &PgPool, batch_size: NonZeroU32, max_rate: Option<NonZeroU32>) -> Pruning {
    let pruner =
        PruneRecords::new(Arc::new(PostgresRetention::new(db.clone())), Arc::new(BenchClock));
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let started = Instant::now();
            let request = PruneRequest {
                keep: RetentionDays::new(90)?,
                batch_size,
                dry_run: false,
                max_rate,
                audit_keep: None,
            };
            let report = pruner
                .run(request, &mut |_| {}, &|| stop.load(Ordering::Relaxed))
                .await
                .map_err(|e| anyhow::anyhow!("the prune failed: {e}"))?;
            Ok((report, started.elapsed()))
        }
    });
    Pruning { stop, task }
}

impl Pruning {
    /// Stops it after its current batch and reports.
    pub async fn stop(self) -> anyhow::Result<Pruned> {
        self.stop.store(true, Ordering::Relaxed);
        let (report, elapsed) = self.task.await.context("the prune task panicked")??;
        Ok(Pruned {
            deleted: report.deleted.deliveries,
            found: report.found.deliveries,
            elapsed,
            finished: !report.stopped_early,
        })
    }
}
