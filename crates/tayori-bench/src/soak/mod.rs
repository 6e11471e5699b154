//! The soak (issue 22, `--runs soak`, `scripts/soak`): the real `tayori worker` binary, as a
//! process of its own, fed at fixed rates for tens of minutes (by default 10 min at 500 events/s,
//! then 30 min at 300) while a fault proxy in front of the SQS stand-in injects a fault every few
//! minutes. Every 10 s it samples the worker's RSS and open file descriptors and the latency
//! from publish to `SendEmail` of the emails sent in those 10 s; at the end it checks the
//! issue's targets (RSS growth ≤ 10 %, file descriptors flat, p99 drift ≤ 20 %, none lost, none
//! sent twice; how each is computed is in `report`) and prints a markdown report.
//!
//! The wiring: the producer publishes to the stand-in directly (`SendMessageBatch`, ten at a
//! time, access key `bench`, a trusted producer); the worker's SQS client goes through the
//! fault proxy, its SES client straight to the stand-in (the proxy speaks only SQS's errors);
//! its store is the bench's fresh database. The worker gets a copy of the templates without
//! the tenants' `max_send_rate` caps (as the in-process runs set none): a cap of 10 emails/s
//! would make this a soak of the rate limiter's hand-backs.

mod faults;
mod report;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::runs::Setup;
use crate::stats;
use faults::{FaultProxy, Schedule};
use worker::{Endpoints, WorkerProcess};

/// The stand-in's queue the soak uses.
const QUEUE: &str = "soak";

/// What `--soak-*` set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// (events per second, how long) per phase, in order.
    pub phases: Vec<(u32, Duration)>,
    /// How often the worker is sampled.
    pub sample_every: Duration,
    /// One fault this often (zero: none).
    pub fault_every: Duration,
    /// How long a fault lasts.
    pub fault_lasting: Duration,
    /// The longest wait, after publishing stops, for every event to be sent and the queue empty.
    pub drain: Duration,
    /// The `tayori` binary.
    pub tayori_bin: PathBuf,
    /// The templates directory (copied for the worker, without rate caps).
    pub templates: PathBuf,
    /// The bench's database, for the worker's store.
    pub database_url: String,
    /// Also write the report here.
    pub report: Option<PathBuf>,
    /// Keep the worker's log (a line per email, about 1.3 KiB: 1.1 GiB for the issue's run).
    pub keep_log: bool,
}

impl Settings {
    /// The publishing time of all phases.
    fn publishing(&self) -> Duration {
        self.phases.iter().map(|(_, d)| *d).sum()
    }

    /// The phase at `t` since the start: its index and rate; `None` once publishing is over.
    fn phase_at(&self, t: Duration) -> Option<(usize, u32)> {
        let mut end = Duration::ZERO;
        for (index, (rate, length)) in self.phases.iter().enumerate() {
            end += *length;
            if t < end {
                return Some((index, *rate));
            }
        }
        None
    }
}

/// One sample, taken at the end of its window.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Since the soak's start (the first publish).
    pub at: Duration,
    /// The phase's index and offered rate; `None` while draining.
    pub phase: Option<(usize, u32)>,
    /// Events published so far.
    pub published: usize,
    /// Distinct events sent so far.
    pub sent: usize,
    /// Emails first sent in this window, and their publish → `SendEmail` latency.
    pub window: Option<stats::Summary>,
    /// Worker `VmRSS`, MiB.
    pub rss: Option<f64>,
    /// Worker open file descriptors.
    pub fds: Option<usize>,
    /// Worker CPU over the window, in cores.
    pub cpu: Option<f64>,
    /// Messages visible or in flight on the queue.
    pub queue: usize,
    /// Faults active at some time in the window.
    pub faults: Vec<faults::Kind>,
}

/// The end of the soak.
#[derive(Debug, Default)]
pub struct Ending {
    /// Events published.
    pub published: usize,
    /// `SendMessageBatch` entries that failed (not counted as published).
    pub publish_errors: usize,
    /// Published events with no `SendEmail`.
    pub lost: usize,
    /// Events with more than one `SendEmail`.
    pub twice: usize,
    /// `SendEmail` calls beyond the first of their event.
    pub extra_sends: usize,
    /// `SendEmail` calls for no published event.
    pub strays: usize,
    /// Messages left on the queue (visible + in flight).
    pub queue_left: usize,
    /// Receives that handed out a message again.
    pub redelivered: u64,
    /// How long the drain took (until every event was sent and the queue empty, or it gave up).
    pub drain: Duration,
    /// The store's outcomes of the soak's events.
    pub outcomes: Vec<(String, i64)>,
    /// What the proxy did.
    pub proxy: String,
    /// How the worker stopped.
    pub stopped: String,
    /// Warning and error lines in the worker's log.
    pub log_warnings: usize,
    /// Error lines.
    pub log_errors: usize,
    /// The worker's log (deleted afterwards unless kept).
    pub log: PathBuf,
    /// Its size, MiB.
    pub log_mib: f64,
}

/// What the producer and the sampler share.
#[derive(Default)]
struct Shared {
    /// Delivery tag → when its event was published.
    published_at: Mutex<HashMap<String, Instant>>,
    published: AtomicUsize,
    publish_errors: AtomicUsize,
    done: AtomicBool,
}

/// Runs the soak and prints its report; on SIGINT or SIGTERM it stops the worker and fails.
pub async fn run(setup: &Arc<Setup>, settings: &Settings) -> anyhow::Result<()> {
    tokio::select! {
        result = soak(setup, settings) => result,
        signal = interrupted() => anyhow::bail!("interrupted by {signal}; the worker was killed"),
    }
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

async fn soak(setup: &Arc<Setup>, settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(!settings.phases.is_empty(), "--soak-minutes and --soak-rates name no phase");
    let dir = std::env::temp_dir().join(format!("tayori-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let templates = dir.join("templates");
    copy_without_caps(&settings.templates, &templates)?;

    setup.standin.create_queue(QUEUE);
    let proxy = Arc::new(FaultProxy::start(setup.standin.endpoint(), None));
    let producer_url = format!("{}/000000000000/{QUEUE}", setup.standin.endpoint());
    let worker_url = format!("{}/000000000000/{QUEUE}", proxy.endpoint);
    let config = dir.join("tayori.toml");
    write_config(&config, &settings.database_url, &worker_url, &templates)?;
    let endpoints = Endpoints { sqs: &proxy.endpoint, ses: setup.standin.endpoint() };
    let mut worker =
        WorkerProcess::start(&settings.tayori_bin, &config, &endpoints, &dir.join("worker.log"))?;
    wait_until_polling(&mut worker, &proxy).await?;
    let startup_rss = worker.rss_mib();
    println!(
        "\n== Soak: `tayori worker` (pid {}, {}) as a process of its own; RSS {} MiB once polling",
        worker.pid(),
        settings.tayori_bin.display(),
        startup_rss.map_or("?".into(), |r| format!("{r:.1}"))
    );
    println!(
        "  config {}; log {}; SQS through the fault proxy {}, SES at the stand-in {}",
        config.display(),
        worker.log().display(),
        proxy.endpoint,
        setup.standin.endpoint()
    );

    let shared = Arc::new(Shared::default());
    let fault_log = faults::Log::default();
    let start = Instant::now();
    // Both tasks are aborted if the soak ends early (the set is dropped).
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(produce(
        Arc::clone(setup),
        producer_url,
        settings.phases.clone(),
        start,
        Arc::clone(&shared),
    ));
    let schedule = Schedule {
        every: settings.fault_every,
        lasting: settings.fault_lasting,
        until: settings.publishing(),
    };
    let injected =
        tokio::spawn(faults::inject(Arc::clone(&proxy), schedule, start, Arc::clone(&fault_log)));
    let injected = AbortOnDrop(injected);

    let mut samples = Vec::new();
    let mut sends: HashMap<String, u32> = HashMap::new();
    let mut strays = 0;
    let mut last_cpu = (Instant::now(), worker.cpu_seconds());
    let mut tick = 1u32;
    let drain_deadline = settings.publishing() + settings.drain;
    let mut drained_at = None;
    eprintln!("  t (s)  rate  published      sent  p50 ms  p99 ms  RSS MiB  fds  queue  fault");
    loop {
        let window_end = settings.sample_every * tick;
        tokio::time::sleep_until((start + window_end).into()).await;
        tick += 1;
        if let Some(status) = worker.exited() {
            anyhow::bail!(
                "the worker exited during the soak ({status}); its log ends:\n{}",
                worker.log_tail(30)
            );
        }
        // Producer errors end the soak.
        while let Some(result) = tasks.try_join_next() {
            result.context("the producer panicked")??;
        }
        let at = start.elapsed();
        let mut latencies = Vec::new();
        {
            let published_at = shared.published_at.lock().unwrap_or_else(PoisonError::into_inner);
            for record in setup.standin.take_ses() {
                let Some(tag) = record.delivery_id else {
                    strays += 1;
                    continue;
                };
                let count = sends.entry(tag.clone()).or_default();
                *count += 1;
                match published_at.get(&tag) {
                    Some(published) if *count == 1 => {
                        latencies.push(record.at.saturating_duration_since(*published));
                    }
                    Some(_) => {}
                    None => strays += 1,
                }
            }
        }
        // The stand-in keeps every deleted message's record until handed over: hand them over.
        drop(setup.standin.take_deleted(QUEUE));
        let cpu_now = (Instant::now(), worker.cpu_seconds());
        let cpu = match (last_cpu.1, cpu_now.1) {
            (Some(before), Some(after)) => {
                Some((after - before) / cpu_now.0.duration_since(last_cpu.0).as_secs_f64())
            }
            _ => None,
        };
        last_cpu = cpu_now;
        let queue = setup.standin.stats(QUEUE);
        let window_start = at.saturating_sub(settings.sample_every);
        let active = fault_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|w| w.from <= at && w.to >= window_start)
            .map(|w| w.kind)
            .collect();
        let published = shared.published.load(Ordering::Acquire);
        let sample = Sample {
            at,
            phase: settings.phase_at(window_start),
            published,
            sent: sends.len(),
            window: stats::Summary::of(latencies),
            rss: worker.rss_mib(),
            fds: worker.fds(),
            cpu,
            queue: queue.visible + queue.in_flight,
            faults: active,
        };
        eprintln!("{}", report::progress_line(&sample));
        samples.push(sample);

        if shared.done.load(Ordering::Acquire) {
            let all_sent = published_all_sent(&shared, &sends);
            if all_sent && queue.visible + queue.in_flight == 0 {
                drained_at = Some(at);
                break;
            }
            if at >= drain_deadline {
                break;
            }
        }
    }
    drop(injected);
    proxy.set_drop_idle_after(None);

    let left = setup.standin.stats(QUEUE);
    let published = shared.published.load(Ordering::Acquire);
    let (lost, twice, extra_sends) = {
        let published_at = shared.published_at.lock().unwrap_or_else(PoisonError::into_inner);
        let lost = published_at.keys().filter(|tag| !sends.contains_key(*tag)).count();
        let twice = sends.values().filter(|n| **n > 1).count();
        let extra: u32 = sends.values().map(|n| n.saturating_sub(1)).sum();
        (lost, twice, extra as usize)
    };
    let stopped = worker.stop(Duration::from_secs(40));
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "select status, count(*) from deliveries where event_id like 'soak-%' group by status \
         order by status",
    )
    .fetch_all(&setup.db)
    .await
    .context("cannot read the soak's outcomes")?;
    let log = dir.join("worker.log");
    let (log_warnings, log_errors) = log_levels(&log);
    let log_mib = std::fs::metadata(&log).map_or(0.0, |m| m.len() as f64 / 1024.0 / 1024.0);
    let ending = Ending {
        published,
        publish_errors: shared.publish_errors.load(Ordering::Acquire),
        lost,
        twice,
        extra_sends,
        strays,
        queue_left: left.visible + left.in_flight,
        redelivered: left.redelivered,
        drain: drained_at.unwrap_or(start.elapsed()).saturating_sub(settings.publishing()),
        outcomes,
        proxy: faults::counts_line(&proxy),
        stopped,
        log_warnings,
        log_errors,
        log,
        log_mib,
    };
    let windows = fault_log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let markdown = report::markdown(settings, &samples, &windows, &ending, startup_rss);
    println!("{markdown}");
    if let Some(path) = &settings.report {
        std::fs::write(path, &markdown)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        println!("(report written to {})", path.display());
    }
    // The templates' copy and (unless kept) the log go; the config stays for a look afterwards.
    let _ = std::fs::remove_dir_all(&templates);
    if !settings.keep_log {
        let _ = std::fs::remove_file(&ending.log);
    }
    Ok(())
}

/// Whether every published event has been sent.
fn published_all_sent(shared: &Shared, sends: &HashMap<String, u32>) -> bool {
    let published_at = shared.published_at.lock().unwrap_or_else(PoisonError::into_inner);
    published_at.len() <= sends.len() && published_at.keys().all(|tag| sends.contains_key(tag))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the worker's first SQS request reaches the proxy (it has migrated, loaded its
/// templates and started polling); fails if it exits or takes over a minute.
async fn wait_until_polling(worker: &mut WorkerProcess, proxy: &FaultProxy) -> anyhow::Result<()> {
    let started = Instant::now();
    while proxy.counts.forwarded.load(Ordering::Relaxed) == 0 {
        if let Some(status) = worker.exited() {
            anyhow::bail!(
                "the worker exited at start ({status}); its log:\n{}",
                worker.log_tail(30)
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the worker sent no SQS request within 60 s; its log:\n{}",
            worker.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Publishes each phase at its rate, a batch of ten every `10 / rate` seconds on a fixed
/// schedule (a late batch goes at once, and the next ones catch up).
async fn produce(
    setup: Arc<Setup>,
    queue_url: String,
    phases: Vec<(u32, Duration)>,
    start: Instant,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut next_event = 0usize;
    let mut phase_start = start;
    for (rate, length) in phases {
        let total = (f64::from(rate) * length.as_secs_f64()).round() as usize;
        let batch_every = Duration::from_secs_f64(10.0 / f64::from(rate.max(1)));
        for (batch, first) in (0..total).step_by(10).enumerate() {
            let due = phase_start + batch_every * u32::try_from(batch).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due.into()).await;
            let range = next_event + first..next_event + (first + 10).min(total);
            publish(&setup, &queue_url, range, &shared).await?;
        }
        next_event += total;
        phase_start += length;
    }
    tokio::time::sleep_until(phase_start.into()).await;
    shared.done.store(true, Ordering::Release);
    Ok(())
}

/// Publishes events `range` of the phase `soak` in one `SendMessageBatch`. Their publish time is
/// noted before the call (so no `SendEmail` can come before it); entries that fail are
/// forgotten again and counted as errors, not as published.
async fn publish(
    setup: &Setup,
    queue_url: &str,
    range: std::ops::Range<usize>,
    shared: &Shared,
) -> anyhow::Result<()> {
    let mut tags = HashMap::new();
    let mut entries = Vec::new();
    for i in range {
        let event = setup.events.event("soak", i)?;
        entries.push(
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(event.body)
                .build()?,
        );
        tags.insert(i.to_string(), event.delivery_tag);
    }
    let now = Instant::now();
    {
        let mut published_at = shared.published_at.lock().unwrap_or_else(PoisonError::into_inner);
        for tag in tags.values() {
            published_at.insert(tag.clone(), now);
        }
    }
    let sent =
        setup.sqs.send_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await;
    let failed: Vec<String> = match &sent {
        Ok(output) => output.failed().iter().map(|f| f.id().to_owned()).collect(),
        Err(_) => tags.keys().cloned().collect(),
    };
    if !failed.is_empty() {
        let mut published_at = shared.published_at.lock().unwrap_or_else(PoisonError::into_inner);
        for id in &failed {
            if let Some(tag) = tags.get(id) {
                published_at.remove(tag);
            }
        }
        shared.publish_errors.fetch_add(failed.len(), Ordering::AcqRel);
    }
    shared.published.fetch_add(tags.len() - failed.len(), Ordering::AcqRel);
    Ok(())
}

/// The worker's configuration: PostgreSQL, the queue through the proxy, SES without a rate cap
/// (1,000,000/s, not read from the stand-in), the templates' copy; every other setting its
/// default, as in production.
fn write_config(path: &Path, database: &str, queue: &str, templates: &Path) -> anyhow::Result<()> {
    // A JSON string is a TOML basic string.
    let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let text = format!(
        "worker_id = \"soak\"\n\
         [store]\nkind = \"postgres\"\nurl = {}\n\
         [queue]\nurl = {}\n\
         # The bench's producer (access key `bench`) publishes for every tenant.\n\
         trusted_producers = [\"bench\"]\n\
         [sender]\nkind = \"ses\"\nsend_rate = 1000000\nread_account_send_rate = false\n\
         [templates]\ndir = {}\n",
        quote(database),
        quote(queue),
        quote(&templates.to_string_lossy()),
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Copies the templates directory, leaving out the `max_send_rate` lines of the tenants'
/// `tenant.toml`.
fn copy_without_caps(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_without_caps(&entry.path(), &target)?;
        } else if entry.file_name() == "tenant.toml" {
            let text = std::fs::read_to_string(entry.path())?;
            let kept: Vec<&str> =
                text.lines().filter(|l| !l.trim_start().starts_with("max_send_rate")).collect();
            std::fs::write(&target, kept.join("\n") + "\n")?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Lines of the worker's (JSON) log at WARN and at ERROR, read line by line.
fn log_levels(log: &Path) -> (usize, usize) {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(log) else { return (0, 0) };
    let (mut warnings, mut errors) = (0, 0);
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        if line.contains(r#""level":"WARN""#) {
            warnings += 1;
        } else if line.contains(r#""level":"ERROR""#) {
            errors += 1;
        }
    }
    (warnings, errors)
}
