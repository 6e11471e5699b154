//! The bench's phases: the worker path (preloaded or fed at a fixed rate, optionally with
//! timing wrappers), the bare SDK calls (the limit), and the store's calls alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tayori_app::handle_event::SendingPauses;
use tayori_app::ports::{
    AttemptEnd, AttemptResult, Claim, ClaimRequest, Clock, DeliveryStore, EmailSender,
    TemplateRenderer,
};
use tayori_app::{DeliveryPolicy, EventHandler};
use tayori_domain::Outcome;
use tayori_postgres::{
    PostgresFeedbackStore, PostgresHeldEvents, PostgresStore, PostgresSuppressions, WriteBatchStats,
};
use tayori_ses::SesSender;
use tayori_sqs::{ConsumerConfig, ConsumerReport, SqsConsumer};
use tayori_templates::TemplateSet;
use tokio::sync::watch;

use crate::cpu::{self, CpuUse, ThreadCpu};
use crate::events::EventFactory;
use crate::instrument::{Spans, TimedRenderer, TimedSender, TimedStore, Timings};
use crate::standin::StandIn;
use crate::stats::Summary;

/// The bare-SDK run gives up after this many failed receives.
const MAX_BARE_ERRORS: usize = 100;

/// A phase that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// Everything the phases share.
pub struct Setup {
    /// The SQS and SES stand-in.
    pub standin: Arc<StandIn>,
    /// The stand-in's thread, for CPU accounting.
    pub standin_cpu: ThreadCpu,
    /// An SQS client on the standard SDK settings `tayori worker` uses.
    pub sqs: aws_sdk_sqs::Client,
    /// An SES client set up as the SES sender sets up its own (no retries, timeouts).
    pub bare_ses: aws_sdk_sesv2::Client,
    /// The demo tenants' templates.
    pub templates: Arc<TemplateSet>,
    /// The events to publish.
    pub events: Arc<EventFactory>,
    /// The delivery store on the bench's fresh database.
    pub store: Arc<PostgresStore>,
    /// The real SES sender.
    pub sender: Arc<SesSender>,
    /// A pool on the bench's database, for the checks after each phase.
    pub db: PgPool,
    /// The consumer's settings.
    pub consumer: ConsumerSettings,
    /// The PostgreSQL cluster's postmaster, for CPU accounting.
    pub postmaster: Option<u32>,
}

/// The consumer settings the bench may tune (everything else is `ConsumerConfig::default()`).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSettings {
    /// Long-poll loops.
    pub pollers: usize,
    /// Messages received and not yet finished, at most.
    pub max_in_flight: usize,
}

/// How a worker phase gets its events.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// All of them in the queue before the worker starts.
    Preloaded(usize),
    /// Published while the worker runs, at `rate` events per second for `seconds`.
    Fed {
        /// Events per second.
        rate: u32,
        /// For how long.
        seconds: u64,
    },
}

impl Load {
    fn total(self) -> usize {
        match self {
            Load::Preloaded(n) => n,
            Load::Fed { rate, seconds } => rate as usize * seconds as usize,
        }
    }
}

/// The wall clock and tokio's timers.
pub(crate) struct BenchClock;

#[async_trait]
impl Clock for BenchClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// One message's life as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Its delivery's tag.
    pub delivery: String,
    /// Enqueued.
    pub sent_at: Instant,
    /// First handed out by a receive.
    pub first_received: Instant,
    /// First `SendEmail` for its delivery.
    pub ses_at: Option<Instant>,
    /// Deleted.
    pub deleted_at: Instant,
}

/// What a worker phase measured.
pub struct WorkerRun {
    /// Events published.
    pub events: usize,
    /// From the consumer's start to the last delete.
    pub elapsed: Duration,
    /// For a fed phase: from the first publish to the last.
    pub feed_elapsed: Option<Duration>,
    /// First receive at the stand-in → `SendEmail` at the stand-in, per message.
    pub receive_to_send: Option<Summary>,
    /// Enqueued → `SendEmail`, per message.
    pub enqueue_to_send: Option<Summary>,
    /// `SendEmail` calls.
    pub ses_calls: usize,
    /// Deliveries with more than one `SendEmail`.
    pub ses_duplicates: usize,
    /// Deleted messages without a `SendEmail`.
    pub missing_sends: usize,
    /// Receives that handed out a message again.
    pub redelivered: u64,
    /// What the consumer counted.
    pub report: ConsumerReport,
    /// CPU used during the phase.
    pub cpu: CpuUse,
    /// VmHWM during the phase (MiB), when it could be reset at its start.
    pub peak_rss: Option<f64>,
    /// VmRSS at the phase's start (MiB).
    pub rss_at_start: Option<f64>,
    /// What the store holds for the phase's events.
    pub check: StoreCheck,
    /// Every message's trace.
    pub traces: Vec<Trace>,
    /// The breakdown run's step timings.
    pub timings: Option<Spans>,
    /// What the store's group committer did during the phase.
    pub write_batches: WriteBatchStats,
}

impl WorkerRun {
    /// Events decided per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The store's view of a phase's events.
#[derive(Debug, Default)]
pub struct StoreCheck {
    /// Deliveries by status.
    pub outcomes: Vec<(String, i64)>,
    /// Claims made (sum of `claim_count`).
    pub claims: i64,
    /// Send attempts recorded.
    pub attempts: i64,
    /// WAL the cluster wrote during the phase, bytes.
    pub wal_bytes: i64,
    /// Events of the phase.
    pub events: usize,
}

impl StoreCheck {
    /// One line for the report.
    pub fn line(&self) -> String {
        let outcomes: Vec<String> =
            self.outcomes.iter().map(|(status, count)| format!("{count} {status}")).collect();
        format!(
            "store: {}; {} claims; {} send attempts; WAL {:.1} MiB ({:.0} bytes per event)",
            outcomes.join(", "),
            self.claims,
            self.attempts,
            self.wal_bytes as f64 / 1024.0 / 1024.0,
            self.wal_bytes as f64 / self.events.max(1) as f64
        )
    }
}

async fn check_store(
    db: &PgPool,
    phase: &str,
    events: usize,
    (wal_from, wal_to): (&str, &str),
) -> anyhow::Result<StoreCheck> {
    let wal_bytes = wal_between(db, wal_from, wal_to).await?;
    let pattern = format!("{phase}-%");
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "select status, count(*) from deliveries where event_id like $1 group by status \
         order by status",
    )
    .bind(&pattern)
    .fetch_all(db)
    .await?;
    let claims: i64 = sqlx::query_scalar(
        "select coalesce(sum(claim_count), 0)::bigint from deliveries where event_id like $1",
    )
    .bind(&pattern)
    .fetch_one(db)
    .await?;
    let attempts: i64 = sqlx::query_scalar(
        "select count(*) from delivery_attempts a join deliveries d \
             on d.tenant_id = a.tenant_id and d.delivery_id = a.delivery_id \
         where d.event_id like $1",
    )
    .bind(&pattern)
    .fetch_one(db)
    .await?;
    Ok(StoreCheck { outcomes, claims, attempts, wal_bytes, events })
}

/// The cluster's current WAL position.
async fn wal_position(db: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("select pg_current_wal_lsn()::text").fetch_one(db).await?)
}

/// WAL bytes the whole cluster wrote from `from` to `to`.
async fn wal_between(db: &PgPool, from: &str, to: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint")
        .bind(from)
        .bind(to)
        .fetch_one(db)
        .await?)
}

/// message id → delivery tag, filled as batches are published.
type Published = Arc<Mutex<HashMap<String, String>>>;

/// Publishes events `range` of `phase` with `SendMessageBatch`, ten at a time.
async fn publish(
    setup: &Setup,
    queue_url: &str,
    phase: &str,
    range: std::ops::Range<usize>,
    published: &Published,
) -> anyhow::Result<()> {
    let mut tags = HashMap::new();
    let mut entries = Vec::new();
    for i in range {
        let event = setup.events.event(phase, i)?;
        tags.insert(i.to_string(), event.delivery_tag);
        entries.push(
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(event.body)
                .build()?,
        );
    }
    let output = setup
        .sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("SendMessageBatch failed")?;
    anyhow::ensure!(output.failed().is_empty(), "SendMessageBatch refused entries");
    let mut published = published.lock().unwrap_or_else(PoisonError::into_inner);
    for entry in output.successful() {
        if let Some(tag) = tags.remove(entry.id()) {
            published.insert(entry.message_id().to_owned(), tag);
        }
    }
    Ok(())
}

/// Publishes events `0..n` of `phase`, eight batches at a time.
async fn preload(
    setup: &Setup,
    queue_url: &str,
    phase: &str,
    n: usize,
    published: &Published,
) -> anyhow::Result<()> {
    let batches = (0..n).step_by(10).map(|start| start..(start + 10).min(n));
    let mut calls = futures::stream::iter(batches)
        .map(|range| publish(setup, queue_url, phase, range, published))
        .buffer_unordered(8);
    while let Some(result) = calls.next().await {
        result?;
    }
    Ok(())
}

/// Publishes at `rate` events per second for `seconds`, a batch every 5 ms, each batch in a task
/// of its own so that a slow call does not delay the schedule. Returns the first and last
/// publish times.
async fn feed(
    setup: Arc<Setup>,
    queue_url: String,
    phase: &'static str,
    rate: u32,
    seconds: u64,
    published: Published,
) -> anyhow::Result<Duration> {
    const TICK: Duration = Duration::from_millis(5);
    let ticks = seconds * 1000 / TICK.as_millis() as u64;
    let per_tick = f64::from(rate) * TICK.as_secs_f64();
    let start = tokio::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for tick in 0..ticks {
        tokio::time::sleep_until(start + TICK * u32::try_from(tick).unwrap_or(u32::MAX)).await;
        let from = (tick as f64 * per_tick).round() as usize;
        let to = ((tick + 1) as f64 * per_tick).round() as usize;
        for batch in (from..to).step_by(10) {
            let (setup, url, published) = (setup.clone(), queue_url.clone(), published.clone());
            let range = batch..(batch + 10).min(to);
            calls.spawn(async move { publish(&setup, &url, phase, range, &published).await });
        }
    }
    let elapsed = start.elapsed();
    while let Some(done) = calls.join_next().await {
        done.context("a publishing task panicked")??;
    }
    Ok(elapsed)
}

/// Runs the real worker path — `SqsConsumer` → `EventHandler` → `PostgresStore` + `SesSender`
/// — on the queue `phase` until every event is deleted. With `instrument`, the store, sender
/// and renderer are wrapped in timing decorators.
pub async fn worker(
    setup: &Arc<Setup>,
    phase: &'static str,
    load: Load,
    instrument: bool,
    measure_peak_rss: bool,
) -> anyhow::Result<WorkerRun> {
    let queue_url = setup.standin.create_queue(phase);
    let published: Published = Arc::default();
    if let Load::Preloaded(n) = load {
        preload(setup, &queue_url, phase, n, &published).await?;
    }
    let total = load.total();

    let timings = instrument.then(|| Arc::new(Timings::default()));
    let store: Arc<dyn DeliveryStore> = setup.store.clone();
    let sender: Arc<dyn EmailSender> = setup.sender.clone();
    let renderer: Arc<dyn TemplateRenderer> = setup.templates.clone();
    let (store, sender, renderer): (
        Arc<dyn DeliveryStore>,
        Arc<dyn EmailSender>,
        Arc<dyn TemplateRenderer>,
    ) = match &timings {
        Some(timings) => (
            Arc::new(TimedStore { inner: store, timings: timings.clone() }),
            Arc::new(TimedSender { inner: sender, timings: timings.clone() }),
            Arc::new(TimedRenderer { inner: renderer, timings: timings.clone() }),
        ),
        None => (store, sender, renderer),
    };
    let handler = Arc::new(event_handler(setup, (store, sender, renderer)));
    let config = consumer_config(setup, &queue_url)?;

    let wal_from = wal_position(&setup.db).await?;
    let rss_at_start = cpu::memory().1;
    let peak_reset = measure_peak_rss && cpu::reset_peak_memory();
    let cpu_before = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let batches_before = setup.store.write_batch_stats();
    let start = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let consumer = tokio::spawn(SqsConsumer::new(setup.sqs.clone(), config, handler).run(stopped));
    let feeder = match load {
        Load::Fed { rate, seconds } => Some(tokio::spawn(feed(
            setup.clone(),
            queue_url.clone(),
            phase,
            rate,
            seconds,
            published.clone(),
        ))),
        Load::Preloaded(_) => None,
    };

    let waited = wait_for_deletes(&setup.standin, phase, total).await;
    let cpu_after = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let write_batches = batches_since(&batches_before, &setup.store.write_batch_stats());
    let wal_to = wal_position(&setup.db).await?;
    let peak_rss = if peak_reset { cpu::memory().0 } else { None };
    let _ = stop.send(true);
    setup.standin.close(phase);
    let report = consumer.await.context("the consumer panicked")?;
    let feed_elapsed = match feeder {
        Some(feeder) => Some(feeder.await.context("the feeder panicked")??),
        None => None,
    };
    waited?;

    let deleted = setup.standin.take_deleted(phase);
    let mut sends: HashMap<String, (Instant, usize)> = HashMap::new();
    let ses = setup.standin.take_ses();
    let ses_calls = ses.len();
    for record in ses {
        let Some(delivery) = record.delivery_id else { continue };
        let entry = sends.entry(delivery).or_insert((record.at, 0));
        entry.0 = entry.0.min(record.at);
        entry.1 += 1;
    }
    let published = std::mem::take(&mut *published.lock().unwrap_or_else(PoisonError::into_inner));
    let traces: Vec<Trace> = deleted
        .iter()
        .filter_map(|record| {
            let delivery = published.get(&record.message_id)?.clone();
            let ses_at = sends.get(&delivery).map(|(at, _)| *at);
            Some(Trace {
                delivery,
                sent_at: record.sent_at,
                first_received: record.first_received,
                ses_at,
                deleted_at: record.deleted_at,
            })
        })
        .collect();
    let end = deleted.iter().map(|r| r.deleted_at).max().unwrap_or(start);
    let receive_to_send = Summary::of(
        traces
            .iter()
            .filter_map(|t| Some(t.ses_at?.saturating_duration_since(t.first_received)))
            .collect(),
    );
    let enqueue_to_send = Summary::of(
        traces
            .iter()
            .filter_map(|t| Some(t.ses_at?.saturating_duration_since(t.sent_at)))
            .collect(),
    );
    Ok(WorkerRun {
        events: total,
        elapsed: end.duration_since(start),
        feed_elapsed,
        receive_to_send,
        enqueue_to_send,
        ses_calls,
        ses_duplicates: sends.values().filter(|(_, count)| *count > 1).count(),
        missing_sends: traces.iter().filter(|t| t.ses_at.is_none()).count(),
        redelivered: setup.standin.stats(phase).redelivered,
        report,
        cpu: cpu::used(&cpu_before, &cpu_after),
        peak_rss,
        rss_at_start,
        check: check_store(&setup.db, phase, total, (&wal_from, &wal_to)).await?,
        traces,
        timings: timings.map(|t| t.take()),
        write_batches,
    })
}

/// The event path as `tayori worker` wires it on PostgreSQL, with these ports: suppressions and
/// the shared pauses (holding a paused tenant's events) read from the bench's database, two
/// reads per event (the pause answer kept for a second per tenant).
pub(crate) fn event_handler(
    setup: &Setup,
    (store, sender, renderer): (
        Arc<dyn DeliveryStore>,
        Arc<dyn EmailSender>,
        Arc<dyn TemplateRenderer>,
    ),
) -> EventHandler {
    let pool = setup.store.pool().clone();
    EventHandler {
        store,
        tenants: setup.templates.clone(),
        suppressions: Arc::new(PostgresSuppressions::new(pool.clone())),
        renderer,
        sender,
        clock: Arc::new(BenchClock),
        policy: DeliveryPolicy::default(),
        worker_id: format!("bench-{}", std::process::id()),
        pauses: SendingPauses::with_shared(
            Arc::new(PostgresFeedbackStore::new(pool.clone())),
            SendingPauses::SHARED_ANSWER_KEPT_FOR,
        )
        .holding_in(Arc::new(PostgresHeldEvents::new(pool))),
    }
}

/// The consumer of `queue_url` with the bench's settings (everything else the defaults).
pub(crate) fn consumer_config(setup: &Setup, queue_url: &str) -> anyhow::Result<ConsumerConfig> {
    let config = ConsumerConfig {
        queue_url: queue_url.to_owned(),
        pollers: setup.consumer.pollers,
        max_in_flight: setup.consumer.max_in_flight,
        // The bench's one publisher (access key "bench", the stand-in's SenderId) publishes for
        // every tenant, acme-pay's producers list included: trusted, as tayori's own role is.
        // The producer checks still run for every event.
        trusted_producers: vec!["bench".to_owned()],
        ..ConsumerConfig::default()
    };
    config.validate()?;
    Ok(config)
}

/// Publishes events `0..n` of `phase` to `queue_url` before a run.
pub(crate) async fn preload_queue(
    setup: &Setup,
    queue_url: &str,
    phase: &str,
    n: usize,
) -> anyhow::Result<()> {
    preload(setup, queue_url, phase, n, &Published::default()).await
}

/// Waits until the queue has `total` deletes; fails when nothing moves for [`STALL`].
pub(crate) async fn wait_for_deletes(
    standin: &StandIn,
    queue: &str,
    total: usize,
) -> anyhow::Result<()> {
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let stats = standin.stats(queue);
        if stats.deleted >= total {
            return Ok(());
        }
        if stats.deleted != last.0 {
            last = (stats.deleted, Instant::now());
        } else if last.1.elapsed() > STALL {
            anyhow::bail!(
                "{queue}: no progress for {STALL:?}: {} of {total} deleted, {} visible, {} in flight",
                stats.deleted,
                stats.visible,
                stats.in_flight
            );
        }
    }
}

/// What the bare-SDK phase measured.
pub struct BareRun {
    /// Messages.
    pub events: usize,
    /// Concurrent loops.
    pub loops: usize,
    /// From the first receive call to the last delete.
    pub elapsed: Duration,
    /// Calls that failed.
    pub errors: usize,
    /// CPU used.
    pub cpu: CpuUse,
}

impl BareRun {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The limit: the SDK calls the worker path makes for a batch, without tayori's pipeline.
/// `loops` loops each receive 10 (the consumer's receive settings), send each message's email
/// with one `SendEmail` (the same raw MIME, tags, configuration set and SES tenant as the
/// sender's, all ten at once), then delete the ten with one `DeleteMessageBatch`.
pub async fn bare(setup: &Arc<Setup>, n: usize, loops: usize) -> anyhow::Result<BareRun> {
    const PHASE: &str = "bare";
    let queue_url = setup.standin.create_queue(PHASE);
    preload(setup, &queue_url, PHASE, n, &Arc::default()).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let config = ConsumerConfig::default();
    let cpu_before = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..loops {
        let (setup, url, done, errors) =
            (setup.clone(), queue_url.clone(), done.clone(), errors.clone());
        let config = config.clone();
        tasks.spawn(async move {
            let mut sequence = 0usize;
            while done.load(Ordering::Acquire) < n {
                let received = setup
                    .sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(config.batch_size)
                    .wait_time_seconds(config.wait_time_seconds)
                    .visibility_timeout(config.visibility_timeout_seconds)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                    .send()
                    .await;
                let messages = match received {
                    Ok(output) => output.messages.unwrap_or_default(),
                    Err(_) => {
                        if errors.fetch_add(1, Ordering::Relaxed) >= MAX_BARE_ERRORS {
                            setup.standin.close(PHASE);
                            return;
                        }
                        continue;
                    }
                };
                if messages.is_empty() {
                    continue;
                }
                let sends = messages.iter().map(|message| {
                    sequence += 1;
                    bare_send(&setup, message.message_id().unwrap_or_default(), sequence)
                });
                for sent in futures::future::join_all(sends).await {
                    if sent.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let entries: Vec<DeleteMessageBatchRequestEntry> = messages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .ok()
                    })
                    .collect();
                let deleted = setup
                    .sqs
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                if deleted.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                if done.fetch_add(messages.len(), Ordering::AcqRel) + messages.len() >= n {
                    setup.standin.close(PHASE); // ends the other loops' long polls
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a bare-SDK loop panicked")?;
    }
    let errors = errors.load(Ordering::Relaxed);
    anyhow::ensure!(
        errors <= MAX_BARE_ERRORS,
        "the bare-SDK run gave up after {errors} failed calls"
    );
    let cpu_after = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let end = setup.standin.take_deleted(PHASE).iter().map(|r| r.deleted_at).max().unwrap_or(start);
    setup.standin.take_ses();
    Ok(BareRun {
        events: n,
        loops,
        elapsed: end.duration_since(start),
        errors,
        cpu: cpu::used(&cpu_before, &cpu_after),
    })
}

/// One `SendEmail` as the SES sender makes it (raw content, tags, configuration set, tenant).
async fn bare_send(setup: &Setup, message_id: &str, sequence: usize) -> anyhow::Result<()> {
    let email = setup.events.bare_email(sequence);
    let content = EmailContent::builder()
        .raw(RawMessage::builder().data(Blob::new(email.raw)).build()?)
        .build();
    let tags = [
        (tayori_ses::TENANT_TAG, email.tenant),
        (tayori_ses::EVENT_TYPE_TAG, "bench"),
        (tayori_ses::DELIVERY_ID_TAG, message_id),
    ]
    .into_iter()
    .map(|(name, value)| {
        MessageTag::builder().name(name).value(tayori_ses::tag_value(value)).build()
    })
    .collect::<Result<Vec<_>, _>>()?;
    setup
        .bare_ses
        .send_email()
        .from_email_address(email.from)
        .destination(Destination::builder().to_addresses(email.to).build())
        .content(content)
        .set_email_tags(Some(tags))
        .set_configuration_set_name(email.configuration_set.map(str::to_owned))
        .set_tenant_name(email.provider_tenant.map(str::to_owned))
        .send()
        .await?;
    Ok(())
}

/// What the store-only phase measured.
pub struct StoreOnlyRun {
    /// Events.
    pub events: usize,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Each call's time.
    pub steps: Vec<(&'static str, Summary)>,
    /// CPU used.
    pub cpu: CpuUse,
    /// WAL the cluster wrote, bytes.
    pub wal_bytes: i64,
    /// What the store's group committer did during the phase.
    pub write_batches: WriteBatchStats,
}

impl StoreOnlyRun {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The store's part of the worker path alone: for each event, the two calls a first delivery
/// makes (`claim_and_start_attempt`, `record_attempt_finished_and_outcome`),
/// with `concurrency` events at once and nothing else: the ceiling PostgreSQL puts on the path.
pub async fn store_only(
    setup: &Arc<Setup>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<StoreOnlyRun> {
    const PHASE: &str = "store";
    let next = Arc::new(AtomicUsize::new(0));
    let wal_from = wal_position(&setup.db).await?;
    let cpu_before = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let batches_before = setup.store.write_batch_stats();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (setup, next) = (setup.clone(), next.clone());
        tasks.spawn(async move {
            let mut times: Vec<[Duration; 2]> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(times);
                }
                let (event, subject) = setup.events.decoded(PHASE, i)?;
                let key = &event.key;
                let store = &setup.store;
                let t0 = Instant::now();
                let request = ClaimRequest {
                    key: key.clone(),
                    event_type: Some(event.event_type.clone()),
                    recipient: Some(event.recipient.email.clone()),
                    event_json: Some(event.envelope.to_string()),
                    raw_body: None,
                    owner: "bench-store-only".into(),
                    receive_count: 1,
                    lease: DeliveryPolicy::default().lease,
                    now: Utc::now(),
                };
                let Claim::Claimed { attempt } = store.claim_and_start_attempt(&request).await?
                else {
                    anyhow::bail!("a fresh key was not claimed");
                };
                let t1 = Instant::now();
                let id = format!("store-only-{i}");
                let end = AttemptEnd { attempt, result: AttemptResult::Accepted, detail: &id };
                let outcome = Outcome::Sent { provider_message_id: id.clone() };
                store
                    .record_attempt_finished_and_outcome(
                        key,
                        end,
                        &outcome,
                        Some(&subject),
                        Utc::now(),
                    )
                    .await?;
                let t2 = Instant::now();
                times.push([t1 - t0, t2 - t1]);
            }
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a store-only task panicked")??);
    }
    let elapsed = start.elapsed();
    let cpu_after = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let write_batches = batches_since(&batches_before, &setup.store.write_batch_stats());
    let wal_bytes = wal_between(&setup.db, &wal_from, &wal_position(&setup.db).await?).await?;
    let names = ["claim_and_start_attempt", "record_attempt_finished_and_outcome"];
    let steps = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| Some((*name, Summary::of(all.iter().map(|t| t[i]).collect())?)))
        .collect();
    Ok(StoreOnlyRun {
        events: n,
        concurrency,
        elapsed,
        steps,
        cpu: cpu::used(&cpu_before, &cpu_after),
        wal_bytes,
        write_batches,
    })
}

/// The group committer's work between two readings.
fn batches_since(before: &WriteBatchStats, after: &WriteBatchStats) -> WriteBatchStats {
    WriteBatchStats {
        batches: after.batches - before.batches,
        writes: after.writes - before.writes,
        replayed: after.replayed - before.replayed,
    }
}
