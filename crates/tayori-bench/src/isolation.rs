//! Tenant isolation (issue 21): does one tenant keep its latency and throughput while another
//! tenant on the same events queue floods it, is throttled by SES, is answered slowly, or is
//! paused by an operator?
//!
//! Tenant B (`acme-bank`) publishes a steady load (a feeder, 200 events/s by default); B's
//! latency is SQS's `SentTimestamp` → SES accepted (both as the stand-in saw them), so it
//! includes the time B's messages waited in the queue. It is measured alone, then beside tenant
//! A (`acme-invest`): (a) `burst`, A's burst preloaded at the start; (b) `throttled`, A
//! publishing while SES answers A's sends with `TooManyRequestsException`; (c) `slow`, SES
//! accepting A's sends after a delay (2 s); (d) `paused`, A publishing while an operator's pause
//! holds its events in PostgreSQL. Both producers set `MessageGroupId` to their tenant and send
//! with their own credentials (the stand-in's `SenderId`); the stand-in delivers as SQS fair
//! queues do, or in plain order with `--fair-queues off`.
//!
//! After B's window, A's trouble ends (SES accepts again, or the operator resumes) and the run
//! waits, for at most the drain time, until A's events are decided. Then every event is
//! accounted for: sent (SES accepted it), decided (the store has an outcome), held, still on the
//! queue, or lost (deleted from the queue without an outcome or a held copy); no delivery may be
//! accepted twice by SES, or have two accepted attempts in the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::Utc;
use clap::ValueEnum;
use futures::StreamExt;
use tayori_app::admin::COMMAND_LINE_TOKEN_ID;
use tayori_app::ports::{AuditEntry, TenantPauses};
use tayori_app::{ReleaseHeldEvents, ReleaseSettings};
use tayori_domain::TenantId;
use tayori_postgres::{PostgresAdminStore, PostgresHeldEvents};
use tayori_sqs::{ConsumerReport, SqsConsumer};
use tokio::sync::watch;

use crate::cpu::{self, CpuUse};
use crate::report;
use crate::runs::{self, BenchClock, Setup};
use crate::standin::SesAnswer;
use crate::stats::Summary;

/// The tenant whose latency is measured.
pub const TENANT_B: &str = "acme-bank";
/// The tenant that makes trouble.
pub const TENANT_A: &str = "acme-invest";

/// How long B's last messages may take to leave the queue after its feeder stopped.
const B_FINISH: Duration = Duration::from_secs(120);

/// What tenant A does beside B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// B alone: the reference.
    Alone,
    /// (a) A's burst in the queue at the start: it saturates the worker.
    Burst,
    /// (b) A publishing, its sends answered with throttling errors.
    Throttled,
    /// (c) A publishing, its sends answered after a delay.
    Slow,
    /// (d) A publishing while paused by an operator: its events are held in PostgreSQL.
    Paused,
}

impl Scenario {
    /// Its name in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Alone => "alone",
            Scenario::Burst => "burst",
            Scenario::Throttled => "throttled",
            Scenario::Slow => "slow",
            Scenario::Paused => "paused",
        }
    }

    /// A publishes at a steady rate during B's window.
    fn a_feeds(self) -> bool {
        matches!(self, Scenario::Throttled | Scenario::Slow | Scenario::Paused)
    }
}

/// The run's settings (flags of `tayori-bench`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// B's offered load, events/s.
    pub b_rate: u32,
    /// B's window, seconds (A's feeder runs as long).
    pub seconds: u64,
    /// A's burst in `burst`.
    pub burst: usize,
    /// A's offered load in `throttled`, `slow` and `paused`, events/s.
    pub a_rate: u32,
    /// SES's delay for A's sends in `slow`.
    pub slow: Duration,
    /// How long to wait for A's events after B's window.
    pub drain: Duration,
    /// Fair queues (else plain delivery).
    pub fair: bool,
}

/// What became of one tenant's events.
#[derive(Debug, Default)]
pub struct Accounting {
    /// Events published.
    pub published: usize,
    /// Deliveries SES accepted (distinct).
    pub sent: usize,
    /// Deliveries with an outcome in the store, by status.
    pub outcomes: Vec<(String, i64)>,
    /// Events held in `held_events` at the end.
    pub held: usize,
    /// Messages still on the queue at the end (visible or in flight).
    pub queued: usize,
    /// Messages deleted from the queue whose event has neither an outcome nor a held copy.
    pub lost: usize,
    /// Deliveries SES accepted more than once.
    pub sent_twice: usize,
    /// Deliveries with more than one accepted attempt in the store.
    pub accepted_twice_in_store: i64,
    /// Deliveries SES accepted that the store does not record as `sent`, and the reverse.
    pub sent_mismatch: usize,
    /// `SendEmail` calls refused with a throttling error.
    pub throttled: u64,
}

impl Accounting {
    /// Deliveries with an outcome.
    pub fn decided(&self) -> i64 {
        self.outcomes.iter().filter(|(s, _)| s != "processing").map(|(_, n)| n).sum()
    }

    /// Nothing lost, nothing sent twice, SES and the store agree.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.sent_twice == 0
            && self.accepted_twice_in_store == 0
            && self.sent_mismatch == 0
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let outcomes: Vec<String> = self.outcomes.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!(
            "{} published, {} sent (SES), {} decided ({}), {} held, {} still on the queue, {} lost; \
             sent twice: {} (SES), {} (store); SES/store disagree on {}; {} throttling answers",
            self.published,
            self.sent,
            self.decided(),
            if outcomes.is_empty() { "none".to_owned() } else { outcomes.join(", ") },
            self.held,
            self.queued,
            self.lost,
            self.sent_twice,
            self.accepted_twice_in_store,
            self.sent_mismatch,
            self.throttled
        )
    }
}

/// What one scenario measured.
pub struct ScenarioRun {
    /// Which.
    pub scenario: Scenario,
    /// B's `SentTimestamp` → SES accepted.
    pub b_latency: Option<Summary>,
    /// Where B's time went: `SentTimestamp` → first receive (waiting in the queue), and first
    /// receive → SES accepted (in the worker).
    pub b_split: (Option<Summary>, Option<Summary>),
    /// B's window: first publish → last publish answered.
    pub window: Duration,
    /// B's emails SES accepted within the window.
    pub b_sent_in_window: usize,
    /// B's events.
    pub b: Accounting,
    /// A's events (none when B is alone).
    pub a: Option<Accounting>,
    /// `burst`: every email SES accepted from the consumer's start to A's last one, per second,
    /// and that span.
    pub burst_rate: Option<(f64, Duration)>,
    /// After B's window, how long until every A event was decided or held (`None`: not within
    /// the drain time).
    pub a_drained: Option<Duration>,
    /// What the consumer counted.
    pub report: ConsumerReport,
    /// CPU during the scenario.
    pub cpu: CpuUse,
    /// Times a group was found noisy, and messages handed out ahead of a noisy group's.
    pub fairness: (u64, u64),
}

impl ScenarioRun {
    /// B's emails accepted in its window over B's events offered.
    pub fn b_share(&self) -> f64 {
        self.b_sent_in_window as f64 / self.b.published.max(1) as f64
    }
}

/// message id → (tenant, event id, delivery tag).
type Published = Arc<Mutex<HashMap<String, (&'static str, String, String)>>>;

/// Runs the scenarios in order and prints each, then the table and the targets.
pub async fn run(
    setup: &Arc<Setup>,
    settings: Settings,
    scenarios: &[Scenario],
    throughput: Option<f64>,
) -> anyhow::Result<Vec<ScenarioRun>> {
    setup.standin.set_fair_queues(settings.fair);
    let mut results = Vec::new();
    for scenario in scenarios {
        let result = scenario_run(setup, settings, *scenario).await?;
        report::isolation_scenario(&result, settings);
        results.push(result);
    }
    report::isolation_table(&results, settings, throughput);
    Ok(results)
}

async fn scenario_run(
    setup: &Arc<Setup>,
    settings: Settings,
    scenario: Scenario,
) -> anyhow::Result<ScenarioRun> {
    let mode = if settings.fair { "fair" } else { "plain" };
    let queue = format!("iso-{}-{mode}", scenario.name());
    let (phase_a, phase_b) = (format!("{queue}-a"), format!("{queue}-b"));
    let url = setup.standin.create_queue(&queue);
    let producers = (producer(setup, TENANT_A), producer(setup, TENANT_B));
    let published = Published::default();
    let admin = PostgresAdminStore::new(setup.db.clone());
    let tenant_a = TenantId::parse(TENANT_A)?;

    match scenario {
        Scenario::Throttled => setup.standin.set_ses_answer(TENANT_A, SesAnswer::Throttle),
        Scenario::Slow => setup.standin.set_ses_answer(TENANT_A, SesAnswer::Delay(settings.slow)),
        Scenario::Paused => {
            admin.pause_tenant(&tenant_a, &audit("tenant.pause", &tenant_a)).await?;
        }
        Scenario::Alone | Scenario::Burst => {}
    }
    let mut a_published = 0;
    if scenario == Scenario::Burst {
        let started = Instant::now();
        let batches = (0..settings.burst).step_by(10).map(|i| i..(i + 10).min(settings.burst));
        let mut calls = futures::stream::iter(batches)
            .map(|range| publish(setup, &producers.0, &url, TENANT_A, &phase_a, range, &published))
            .buffer_unordered(8);
        while let Some(result) = calls.next().await {
            result?;
        }
        a_published = settings.burst;
        println!(
            "  {queue}: {} events of {TENANT_A} published in {:.1} s before the start",
            settings.burst,
            started.elapsed().as_secs_f64()
        );
    }

    let ports = (setup.store.clone() as _, setup.sender.clone() as _, setup.templates.clone() as _);
    let handler = Arc::new(runs::event_handler(setup, ports));
    let config = runs::consumer_config(setup, &url)?;
    let (stop, stopped) = watch::channel(false);
    let cpu_before = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let start = Instant::now();
    let consumer = tokio::spawn(
        SqsConsumer::new(setup.sqs.clone(), config, handler.clone()).run(stopped.clone()),
    );
    // The release rounds every worker runs beside its consumer (they find nothing to release
    // until a paused tenant is resumed).
    let releasing = ReleaseHeldEvents {
        held: Arc::new(PostgresHeldEvents::new(setup.store.pool().clone())),
        handler,
        clock: Arc::new(BenchClock),
        settings: ReleaseSettings::default(),
    };
    let release_task = tokio::spawn(async move { releasing.run(&|| *stopped.borrow()).await });

    let feed_b = tokio::spawn(feed(
        setup.clone(),
        producers.1.clone(),
        url.clone(),
        TENANT_B,
        phase_b.clone(),
        (settings.b_rate, settings.seconds),
        published.clone(),
    ));
    let feed_a = scenario.a_feeds().then(|| {
        tokio::spawn(feed(
            setup.clone(),
            producers.0.clone(),
            url.clone(),
            TENANT_A,
            phase_a.clone(),
            (settings.a_rate, settings.seconds),
            published.clone(),
        ))
    });
    let (window_start, window_end) = feed_b.await.context("B's feeder panicked")??;
    if let Some(feed_a) = feed_a {
        feed_a.await.context("A's feeder panicked")??;
        a_published = settings.a_rate as usize * settings.seconds as usize;
    }
    let b_done = wait_for_group(setup, &queue, TENANT_B, B_FINISH).await;
    anyhow::ensure!(b_done.is_some(), "{queue}: {TENANT_B}'s messages did not leave the queue");

    // A's trouble ends; its events go out.
    let after_window = Instant::now();
    setup.standin.set_ses_answer(TENANT_A, SesAnswer::Accept);
    let a_drained = match scenario {
        Scenario::Alone => None,
        Scenario::Paused => {
            admin.resume_tenant(&tenant_a, &audit("tenant.resume", &tenant_a)).await?;
            wait_for_decided(setup, &phase_a, a_published, settings.drain).await?
        }
        Scenario::Burst => {
            let limit = settings.drain.max(Duration::from_secs(300));
            wait_for_group(setup, &queue, TENANT_A, limit).await
        }
        Scenario::Throttled | Scenario::Slow => {
            wait_for_group(setup, &queue, TENANT_A, settings.drain).await
        }
    }
    .map(|at| at.saturating_duration_since(after_window));
    let cpu_after = cpu::sample(&setup.standin_cpu, setup.postmaster);
    let _ = stop.send(true);
    setup.standin.close(&queue);
    let report = consumer.await.context("the consumer panicked")?;
    release_task.await.context("the release rounds panicked")?;
    let fairness = {
        let stats = setup.standin.stats(&queue);
        (stats.noisy_episodes, stats.reordered)
    };

    // Everything accounted for.
    let deleted = setup.standin.take_deleted(&queue);
    let ses = setup.standin.take_ses();
    let throttled = setup.standin.take_ses_throttled();
    let published = std::mem::take(&mut *published.lock().unwrap_or_else(PoisonError::into_inner));
    let mut accepted: HashMap<&str, (Instant, usize)> = HashMap::new();
    for record in &ses {
        let Some(delivery) = record.delivery_id.as_deref() else { continue };
        let entry = accepted.entry(delivery).or_insert((record.at, 0));
        entry.0 = entry.0.min(record.at);
        entry.1 += 1;
    }
    let mut b_latencies = Vec::new();
    let (mut b_queued, mut b_worked) = (Vec::new(), Vec::new());
    let mut b_sent_in_window = 0;
    for record in &deleted {
        let Some((TENANT_B, _, tag)) = published.get(&record.message_id) else { continue };
        if let Some((at, _)) = accepted.get(tag.as_str()) {
            b_latencies.push(at.saturating_duration_since(record.sent_at));
            b_queued.push(record.first_received.saturating_duration_since(record.sent_at));
            b_worked.push(at.saturating_duration_since(record.first_received));
            if *at >= window_start && *at <= window_end {
                b_sent_in_window += 1;
            }
        }
    }
    let b = account(setup, TENANT_B, &phase_b, &published, &deleted, &accepted, &throttled).await?;
    let a = match scenario {
        Scenario::Alone => None,
        _ => Some(
            account(setup, TENANT_A, &phase_a, &published, &deleted, &accepted, &throttled).await?,
        ),
    };
    let burst_rate = (scenario == Scenario::Burst)
        .then(|| {
            let of_a = ses.iter().filter(|r| r.tenant.as_deref() == Some(TENANT_A));
            let last_a = of_a.map(|r| r.at).max()?;
            let sent = ses.iter().filter(|r| r.at <= last_a).count();
            let span = last_a.saturating_duration_since(start);
            Some((sent as f64 / span.as_secs_f64().max(1e-9), span))
        })
        .flatten();
    Ok(ScenarioRun {
        scenario,
        b_latency: Summary::of(b_latencies),
        b_split: (Summary::of(b_queued), Summary::of(b_worked)),
        window: window_end.saturating_duration_since(window_start),
        b_sent_in_window,
        b,
        a,
        burst_rate,
        a_drained,
        report,
        cpu: cpu::used(&cpu_before, &cpu_after),
        fairness,
    })
}

/// An SQS client for a tenant's producer: the bench's settings with credentials of its own, so
/// that the stand-in reports its own `SenderId`.
fn producer(setup: &Setup, tenant: &str) -> aws_sdk_sqs::Client {
    let credentials = aws_sdk_sqs::config::Credentials::new(
        format!("AKIA{}", tenant.to_uppercase().replace('-', "")),
        "bench",
        None,
        None,
        "tayori-bench",
    );
    aws_sdk_sqs::Client::from_conf(
        setup.sqs.config().to_builder().credentials_provider(credentials).build(),
    )
}

/// An audit entry as `tayori admin tenant pause|resume` writes it.
fn audit(action: &str, tenant: &TenantId) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        token_id: COMMAND_LINE_TOKEN_ID.into(),
        role: "command-line".into(),
        action: action.to_owned(),
        tenant: Some(tenant.clone()),
        object_kind: Some("tenant".into()),
        object_id: Some(tenant.to_string()),
        reason: Some("tayori-bench: isolation".into()),
        detail: serde_json::json!({}),
    }
}

/// Publishes events `range` of `phase` for `tenant`, grouped under the tenant.
async fn publish(
    setup: &Setup,
    client: &aws_sdk_sqs::Client,
    url: &str,
    tenant: &'static str,
    phase: &str,
    range: std::ops::Range<usize>,
    published: &Published,
) -> anyhow::Result<()> {
    let mut events = HashMap::new();
    let mut entries = Vec::new();
    for i in range {
        let event = setup.events.event_of(tenant, phase, i)?;
        entries.push(
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(event.body)
                .message_group_id(tenant)
                .build()?,
        );
        events.insert(i.to_string(), (format!("{phase}-{i:07}"), event.delivery_tag));
    }
    let output = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("SendMessageBatch failed")?;
    anyhow::ensure!(output.failed().is_empty(), "SendMessageBatch refused entries");
    let mut published = published.lock().unwrap_or_else(PoisonError::into_inner);
    for entry in output.successful() {
        if let Some((event_id, tag)) = events.remove(entry.id()) {
            published.insert(entry.message_id().to_owned(), (tenant, event_id, tag));
        }
    }
    Ok(())
}

/// Publishes for `tenant` at `rate` events/s for `seconds`, a batch every 5 ms, each in a task
/// of its own. Returns when the first publish started and the last was answered.
async fn feed(
    setup: Arc<Setup>,
    client: aws_sdk_sqs::Client,
    url: String,
    tenant: &'static str,
    phase: String,
    (rate, seconds): (u32, u64),
    published: Published,
) -> anyhow::Result<(Instant, Instant)> {
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
            let (setup, client, url) = (setup.clone(), client.clone(), url.clone());
            let (phase, published) = (phase.clone(), published.clone());
            let range = batch..(batch + 10).min(to);
            calls.spawn(async move {
                publish(&setup, &client, &url, tenant, &phase, range, &published).await
            });
        }
    }
    while let Some(done) = calls.join_next().await {
        done.context("a publishing task panicked")??;
    }
    Ok((start.into_std(), Instant::now()))
}

/// Waits until no message of `tenant`'s group is on the queue (visible or in flight); returns
/// when, or `None` after `limit`.
async fn wait_for_group(
    setup: &Setup,
    queue: &str,
    tenant: &str,
    limit: Duration,
) -> Option<Instant> {
    let started = Instant::now();
    loop {
        let counts = setup.standin.group_counts(queue, tenant);
        if counts.visible + counts.in_flight == 0 {
            return Some(Instant::now());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `n` events of `phase` are decided and none is held; returns when, or `None`
/// after `limit`.
async fn wait_for_decided(
    setup: &Setup,
    phase: &str,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Option<Instant>> {
    let started = Instant::now();
    let pattern = format!("{phase}-%");
    loop {
        let (decided, held): (i64, i64) = sqlx::query_as(
            "select (select count(*) from deliveries where event_id like $1 \
                         and status <> 'processing'), \
                    (select count(*) from held_events where event_id like $1)",
        )
        .bind(&pattern)
        .fetch_one(&setup.db)
        .await?;
        if decided >= i64::try_from(n)? && held == 0 {
            return Ok(Some(Instant::now()));
        }
        if started.elapsed() > limit {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What became of `tenant`'s events of `phase`, from the stand-in's records and the store.
async fn account(
    setup: &Setup,
    tenant: &'static str,
    phase: &str,
    published: &HashMap<String, (&'static str, String, String)>,
    deleted: &[crate::standin::MessageRecord],
    accepted: &HashMap<&str, (Instant, usize)>,
    throttled: &HashMap<String, u64>,
) -> anyhow::Result<Accounting> {
    let pattern = format!("{phase}-%");
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "select status, count(*) from deliveries where event_id like $1 group by status \
         order by status",
    )
    .bind(&pattern)
    .fetch_all(&setup.db)
    .await?;
    let decided: HashSet<String> = sqlx::query_scalar(
        "select event_id from deliveries where event_id like $1 and status <> 'processing'",
    )
    .bind(&pattern)
    .fetch_all(&setup.db)
    .await?
    .into_iter()
    .collect();
    let held: HashSet<String> =
        sqlx::query_scalar("select event_id from held_events where event_id like $1")
            .bind(&pattern)
            .fetch_all(&setup.db)
            .await?
            .into_iter()
            .collect();
    let recorded_sent: HashSet<String> = sqlx::query_scalar::<_, String>(
        "select delivery_id::text from deliveries where event_id like $1 and status = 'sent'",
    )
    .bind(&pattern)
    .fetch_all(&setup.db)
    .await?
    .into_iter()
    .map(|id| tayori_ses::tag_value(&id))
    .collect();
    let accepted_twice_in_store: i64 = sqlx::query_scalar(
        "select count(*) from (select 1 from deliveries d join delivery_attempts a \
             on a.tenant_id = d.tenant_id and a.delivery_id = d.delivery_id \
         where d.event_id like $1 and a.result = 'accepted' \
         group by d.delivery_id having count(*) > 1) twice",
    )
    .bind(&pattern)
    .fetch_one(&setup.db)
    .await?;

    let tags: HashSet<&str> = published
        .values()
        .filter(|(t, _, _)| *t == tenant)
        .map(|(_, _, tag)| tag.as_str())
        .collect();
    let sent: HashSet<&str> = accepted.keys().copied().filter(|d| tags.contains(d)).collect();
    let sent_twice = sent.iter().filter(|d| accepted[**d].1 > 1).count();
    let sent_mismatch = sent.iter().filter(|d| !recorded_sent.contains(**d)).count()
        + recorded_sent.iter().filter(|d| !sent.contains(d.as_str())).count();
    let mut deleted_count = 0;
    let mut lost = 0;
    for record in deleted {
        let Some((t, event_id, _)) = published.get(&record.message_id) else { continue };
        if *t != tenant {
            continue;
        }
        deleted_count += 1;
        if !decided.contains(event_id) && !held.contains(event_id) {
            lost += 1;
        }
    }
    let of_tenant = published.values().filter(|(t, _, _)| *t == tenant).count();
    Ok(Accounting {
        published: of_tenant,
        sent: sent.len(),
        outcomes,
        held: held.len(),
        queued: of_tenant - deleted_count.min(of_tenant),
        lost,
        sent_twice,
        accepted_twice_in_store,
        sent_mismatch,
        throttled: throttled.get(tenant).copied().unwrap_or_default(),
    })
}
