//! A pause and its resume under load: every tenant paused, a preloaded queue drained by the
//! worker into `held_events` (the hold), then every tenant resumed and the held events sent by
//! one worker's release rounds (`ReleaseHeldEvents`, as `tayori worker` runs it). What it
//! measures is how fast a paused tenant's traffic leaves the queue, and how fast a backlog goes
//! out after the resume, with no event lost or sent twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tayori_app::{ReleaseHeldEvents, ReleaseSettings, Released};
use tayori_postgres::PostgresHeldEvents;
use tayori_sqs::SqsConsumer;
use tokio::sync::watch;

use crate::cpu;
use crate::runs::{self, BenchClock, Setup};

/// The queue and event-id prefix of this run.
const PHASE: &str = "hold";

/// What the run measured.
pub struct HoldRelease {
    /// Events published (all paused).
    pub events: usize,
    /// From the consumer's start until every message was deleted (held).
    pub hold: Duration,
    /// Held rows when the queue was empty.
    pub held: i64,
    /// From the resume until every event was decided.
    pub release: Duration,
    /// What the release rounds did.
    pub released: Released,
    /// Deliveries by status afterwards.
    pub outcomes: Vec<(String, i64)>,
    /// Deliveries of the run with more than one send attempt (tayori's own record of every
    /// `SendEmail` call).
    pub sent_twice: i64,
    /// With a latency run beside the release: what it measured.
    pub beside: Option<runs::WorkerRun>,
    /// Held rows left at the end.
    pub held_left: i64,
    /// Peak RSS of the process during both phases, MiB.
    pub peak_rss: Option<f64>,
    /// CPU used during the release phase.
    pub release_cpu: cpu::CpuUse,
}

/// Runs it: pauses every tenant of the event factory, drains `n` events into the hold, resumes,
/// and waits for the release; with `beside`, the worker path's latency run (queue
/// `latency-release`) runs from the resume on, beside the release.
pub async fn run(
    setup: &Arc<Setup>,
    n: usize,
    release: ReleaseSettings,
    beside: Option<runs::Load>,
) -> anyhow::Result<HoldRelease> {
    for profile in setup.templates.tenants() {
        sqlx::query(
            "insert into tenant_pauses (tenant_id, reason, paused_at, paused_by) \
             values ($1, 'bench: paused', now(), null) \
             on conflict (tenant_id) do update set resumed_at = null, paused_at = now()",
        )
        .bind(profile.id.as_str())
        .execute(&setup.db)
        .await
        .context("pausing the tenants")?;
    }
    let queue_url = setup.standin.create_queue(PHASE);
    runs::preload_queue(setup, &queue_url, PHASE, n).await?;

    let ports = (setup.store.clone() as _, setup.sender.clone() as _, setup.templates.clone() as _);
    let handler = Arc::new(runs::event_handler(setup, ports));
    let config = runs::consumer_config(setup, &queue_url)?;
    let peak_reset = cpu::reset_peak_memory();
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let consumer = tokio::spawn(
        SqsConsumer::new(setup.sqs.clone(), config, handler.clone()).run(stopped.clone()),
    );
    let releasing = ReleaseHeldEvents {
        held: Arc::new(PostgresHeldEvents::new(setup.store.pool().clone())),
        handler,
        clock: Arc::new(BenchClock),
        settings: release,
    };
    let release_task = tokio::spawn(async move { releasing.run(&|| *stopped.borrow()).await });

    runs::wait_for_deletes(&setup.standin, PHASE, n).await?;
    let hold = start.elapsed();
    let held: i64 =
        sqlx::query_scalar("select count(*) from held_events").fetch_one(&setup.db).await?;

    let cpu_before = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let resumed = Instant::now();
    sqlx::query("update tenant_pauses set resumed_at = now() where resumed_at is null")
        .execute(&setup.db)
        .await
        .context("resuming the tenants")?;
    let pattern = format!("{PHASE}-%");
    let released_at = tokio::spawn(all_decided(setup.db.clone(), pattern.clone(), n));
    let beside = match beside {
        Some(load) => Some(runs::worker(setup, "latency-release", load, false, false).await?),
        None => None,
    };
    let release_elapsed =
        released_at.await.context("the release watch panicked")??.duration_since(resumed);
    let cpu_after = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let peak_rss = if peak_reset { cpu::memory().0 } else { None };
    let _ = stop.send(true);
    setup.standin.close(PHASE);
    consumer.await.context("the consumer panicked")?;
    let released = release_task.await.context("the release panicked")?;

    setup.standin.take_ses();
    let sent_twice: i64 = sqlx::query_scalar(
        "select count(*) from (select 1 from deliveries d join delivery_attempts a \
             on a.tenant_id = d.tenant_id and a.delivery_id = d.delivery_id \
         where d.event_id like $1 group by d.delivery_id having count(*) > 1) twice",
    )
    .bind(&pattern)
    .fetch_one(&setup.db)
    .await?;
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "select status, count(*) from deliveries where event_id like $1 group by status \
         order by status",
    )
    .bind(&pattern)
    .fetch_all(&setup.db)
    .await?;
    let held_left: i64 =
        sqlx::query_scalar("select count(*) from held_events").fetch_one(&setup.db).await?;
    Ok(HoldRelease {
        events: n,
        hold,
        held,
        release: release_elapsed,
        released,
        outcomes,
        sent_twice,
        beside,
        held_left,
        peak_rss,
        release_cpu: cpu::used(&cpu_before, &cpu_after),
    })
}

/// Waits until the `n` deliveries whose event ids match `pattern` are decided; returns when.
/// Fails when none is decided for a minute.
async fn all_decided(db: sqlx::PgPool, pattern: String, n: usize) -> anyhow::Result<Instant> {
    let mut last = (0_i64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let decided: i64 = sqlx::query_scalar(
            "select count(*) from deliveries where event_id like $1 and status <> 'processing'",
        )
        .bind(&pattern)
        .fetch_one(&db)
        .await?;
        if decided >= i64::try_from(n)? {
            return Ok(Instant::now());
        }
        if decided != last.0 {
            last = (decided, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the release made no progress for 60 s: {decided} of {n} decided");
        }
    }
}
