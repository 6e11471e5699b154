//! `tayori-bench`: the benchmark of tayori's worker path (issue 3). A development tool: it is
//! not shipped, not part of the image and not run by `cargo test` (only compiled); run it with
//! `scripts/bench`, which provisions a throwaway PostgreSQL cluster and builds it `--release`.
//!
//! It measures the production path of one event — the real `SqsConsumer` polling with the real
//! aws-sdk-sqs client, the `EventHandler` use case, the `PostgresStore` on a real PostgreSQL with
//! fsync on, the tenants' templates, and the real `SesSender` calling SES v2 through
//! aws-sdk-sesv2 — against an in-process stand-in for SQS and SES that is fast enough not to
//! be the bottleneck (moto is: a few hundred calls per second). It reports:
//!
//! - throughput: events decided per second, draining a preloaded queue;
//! - latency: p50/p99 from a message's first receive to its `SendEmail`, both as the stand-in
//!   saw them, under that load and at a fixed offered load (default 1,000 events/s);
//! - peak RSS of the process (`VmHWM`);
//! - the limit: the same SDK calls without tayori's pipeline (receive 10 → 10 × `SendEmail` →
//!   `DeleteMessageBatch`), with the same concurrency, against the same stand-in, and the ratio;
//! - where the time goes: every port call timed per event, and the store's calls on their own;
//! - where the CPU goes: this process, the stand-in's thread, PostgreSQL, everything else;
//! - tenant isolation (issue 21, `--runs isolation`): one tenant's latency and throughput beside
//!   another tenant's burst, throttled sends, slow sends and pause, on a stand-in queue that
//!   delivers as SQS fair queues (or in plain order, `--fair-queues off`);
//! - the soak (issue 22, `--runs soak`, `scripts/soak`): the `tayori worker` binary as a process
//!   of its own for tens of minutes at fixed rates with SQS faults injected, its RSS, open file
//!   descriptors and latency sampled every 10 s (`soak`).
//!
//! Except in the soak, it wires the adapters itself rather than through the `tayori` binary,
//! because the binary reads its settings from the environment and a file; the wiring is the same
//! as `tayori worker`'s (`crates/tayori/src/worker.rs`), with the SES sender in place of the
//! outbox.

mod cpu;
mod database;
mod events;
mod fair_queue;
mod hold_release;
mod instrument;
mod isolation;
mod prune_beside;
mod report;
mod runs;
mod soak;
mod standin;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tayori_postgres::{PostgresConfig, PostgresStore};
use tayori_ses::{SesConfig, SesSender};
use tayori_templates::TemplateSet;

use crate::database::BenchDatabase;
use crate::runs::{ConsumerSettings, Load, Setup};

/// The allocator `tayori` uses (`crates/tayori/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks tayori's worker path (SQS → use case → PostgreSQL + SES) against an in-process
/// SQS/SES stand-in and a real PostgreSQL. See `docs/benchmarks.md`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// An admin URL of a PostgreSQL cluster; the bench creates (and afterwards drops) a fresh
    /// database on it.
    #[arg(long, env = "TAYORI_BENCH_DATABASE_URL")]
    database_url: String,
    /// The templates directory (the demo tenants).
    #[arg(long, default_value = "templates")]
    templates: PathBuf,
    /// Events preloaded for the throughput and breakdown runs (and the limit and store runs).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// The consumer's long-poll loops (`queue.pollers`).
    #[arg(long, default_value_t = 2)]
    pollers: usize,
    /// The consumer's bound on messages in flight (`queue.max_in_flight`).
    #[arg(long, default_value_t = 100)]
    max_in_flight: usize,
    /// The store's connection pool (`store.max_connections`).
    #[arg(long, default_value_t = tayori_postgres::DEFAULT_MAX_CONNECTIONS)]
    pool: u32,
    /// The store's group commit: write batches at once (`store.write_batches_in_flight`).
    #[arg(long, default_value_t = tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT)]
    write_batches: usize,
    /// The store's group commit: writes per batch at most (`store.max_writes_per_batch`).
    #[arg(long, default_value_t = tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH)]
    max_batch: usize,
    /// How many times the limit run repeats (it is short, so one run is noisy); the summary
    /// uses the median and the best.
    #[arg(long, default_value_t = 3)]
    limit_repeats: usize,
    /// Offered load of the latency run, events per second.
    #[arg(long, default_value_t = 1_000)]
    latency_rate: u32,
    /// Duration of the latency run, seconds.
    #[arg(long, default_value_t = 15)]
    latency_seconds: u64,
    /// Which runs, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "throughput,limit,latency,breakdown,store"
    )]
    runs: Vec<Run>,
    /// Old deliveries seeded for the latency-prune run (not a default run).
    #[arg(long, default_value_t = 1_000_000)]
    prune_seed: usize,
    /// The latency-prune run's `tayori prune --batch-size`.
    #[arg(long, default_value = "1000")]
    prune_batch_size: std::num::NonZeroU32,
    /// The latency-prune run's `tayori prune --max-rate` (records per second); none by default.
    #[arg(long)]
    prune_max_rate: Option<std::num::NonZeroU32>,
    /// Events of the hold-release run (not a default run): held while every tenant is paused,
    /// then released.
    #[arg(long, default_value_t = 20_000)]
    hold_events: usize,
    /// The hold-release run's release rounds: events leased per round.
    #[arg(long, default_value_t = tayori_app::ReleaseSettings::default().batch_size)]
    release_batch: u32,
    /// The hold-release run's release rounds: events of a round handled at once.
    #[arg(long, default_value_t = tayori_app::ReleaseSettings::default().concurrency)]
    release_concurrency: usize,
    /// How the stand-in's queues deliver messages with a `MessageGroupId`: as Amazon SQS fair
    /// queues (`on`) or in plain order (`off`).
    #[arg(long, value_enum, default_value = "on")]
    fair_queues: Switch,
    /// The isolation run's scenarios (not a default run), in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "alone,burst,throttled,slow,paused"
    )]
    isolation_scenarios: Vec<isolation::Scenario>,
    /// The isolation run: acme-bank's offered load, events per second.
    #[arg(long, default_value_t = 200)]
    isolation_rate: u32,
    /// The isolation run: acme-bank's window in each scenario, seconds (acme-invest's feeder
    /// runs as long).
    #[arg(long, default_value_t = 25)]
    isolation_seconds: u64,
    /// The isolation run: acme-invest's burst in the `burst` scenario, events.
    #[arg(long, default_value_t = 50_000)]
    isolation_burst: usize,
    /// The isolation run: acme-invest's offered load in `throttled`, `slow` and `paused`,
    /// events per second.
    #[arg(long, default_value_t = 200)]
    isolation_a_rate: u32,
    /// The isolation run: SES's delay for acme-invest's sends in `slow`, milliseconds.
    #[arg(long, default_value_t = 2_000)]
    isolation_slow_ms: u64,
    /// The isolation run: how long to wait for acme-invest's events after acme-bank's window,
    /// seconds (the burst waits at least 300).
    #[arg(long, default_value_t = 60)]
    isolation_drain_seconds: u64,
    /// The soak (not a default run): each phase's length in minutes (fractions allowed).
    #[arg(long, value_delimiter = ',', default_value = "10,30")]
    soak_minutes: Vec<f64>,
    /// The soak: each phase's offered load, events per second (as many as `--soak-minutes`).
    #[arg(long, value_delimiter = ',', default_value = "500,300")]
    soak_rates: Vec<u32>,
    /// The soak: how often the worker is sampled, seconds.
    #[arg(long, default_value_t = 10)]
    soak_sample_seconds: u64,
    /// The soak: one SQS fault this often, seconds (0: none).
    #[arg(long, default_value_t = 180)]
    soak_fault_every: u64,
    /// The soak: how long a fault lasts, seconds.
    #[arg(long, default_value_t = 20)]
    soak_fault_seconds: u64,
    /// The soak: the longest wait after publishing stops for every event to be sent and the
    /// queue to empty, seconds.
    #[arg(long, default_value_t = 120)]
    soak_drain_seconds: u64,
    /// The soak: also write its markdown report to this file.
    #[arg(long)]
    soak_report: Option<PathBuf>,
    /// The soak: keep the worker's log (a line per email; deleted by default).
    #[arg(long)]
    soak_keep_log: bool,
    /// The soak: the `tayori` binary (default: `tayori` next to this program).
    #[arg(long)]
    tayori_bin: Option<PathBuf>,
    /// Keep the bench's database afterwards (its name is printed).
    #[arg(long)]
    keep_database: bool,
    /// Log as `tayori worker` does in production (JSON lines, its default filter) into this
    /// file, to include the cost of logging; by default only warnings go to stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

/// The runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Run {
    /// The worker path draining a preloaded queue: events/s, latency, peak RSS.
    Throughput,
    /// The bare SDK calls with the same concurrency: the limit.
    Limit,
    /// The worker path at a fixed offered load: latency.
    Latency,
    /// The worker path with every port call timed: where the time goes.
    Breakdown,
    /// The store's two calls per event alone: PostgreSQL's ceiling.
    Store,
    /// The latency run again while `tayori prune` deletes `--prune-seed` old deliveries.
    LatencyPrune,
    /// Every tenant paused: `--hold-events` events drained into the hold, then resumed and
    /// released by one worker's release rounds.
    HoldRelease,
    /// The same, with the latency run feeding the worker from the resume on, beside the release.
    LatencyRelease,
    /// Tenant isolation (issue 21): acme-bank's latency alone and beside acme-invest's burst,
    /// throttled sends, slow sends and pause (`--isolation-*`, `--fair-queues`).
    Isolation,
    /// The soak (issue 22): the `tayori worker` binary for `--soak-minutes` at `--soak-rates`
    /// with SQS faults injected; RSS, file descriptors and p99 sampled (`--soak-*`).
    Soak,
}

/// A flag's on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

/// `tayori worker`'s default log filter (`crates/tayori/src/telemetry.rs`).
const PRODUCTION_FILTER: &str = "warn,tayori=info,tayori_app=info,tayori_memqueue=info";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = init_logging(args.log_file.as_deref()) {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    match file {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {} (--log-file)", path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new(PRODUCTION_FILTER))
                .with_writer(std::sync::Mutex::new(file))
                .json()
                .flatten_event(true)
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!("tayori-bench: the worker path of issue 3");
    for (name, value) in cpu::machine() {
        println!("  {name}: {value}");
    }

    let templates = TemplateSet::load(&args.templates)
        .with_context(|| format!("the templates in {} have problems", args.templates.display()))?;
    let templates = Arc::new(templates);
    let events = events::EventFactory::new(&templates)?;
    let (tenants, types) = events.coverage();
    println!(
        "  events: {} variants (tenant × event type × sample × locale) over {tenants} tenants and \
         {types} tenant event types; body {} B, MIME {} B on average",
        events.variants(),
        events.average_body_size(),
        events.average_raw_size()
    );
    for skipped in events.skipped() {
        println!("  skipped (does not render): {skipped}");
    }

    let standin = standin::StandIn::start()?;
    let database = BenchDatabase::create(&args.database_url).await?;
    println!("  database: {} (fresh)", database.name);
    let outcome = bench(&args, templates, events, standin, &database).await;
    if args.keep_database {
        println!("\nkept the database {}", database.name);
    } else if let Err(error) = database.drop_now().await {
        eprintln!("warning: {error:#}");
    }
    outcome
}

async fn bench(
    args: &Args,
    templates: Arc<TemplateSet>,
    events: events::EventFactory,
    standin: standin::StandIn,
    database: &BenchDatabase,
) -> anyhow::Result<()> {
    let store_config = PostgresConfig {
        max_connections: args.pool,
        write_batches_in_flight: args.write_batches,
        max_writes_per_batch: args.max_batch,
        ..PostgresConfig::new(&database.url)
    };
    let store = PostgresStore::connect(&store_config).await.context("cannot connect the store")?;
    store.migrate().await.context("migrations failed")?;
    let db = store.pool().clone();
    let mut postmaster = None;
    for (name, value) in database::settings(&db).await? {
        if name == "data_directory" {
            postmaster = cpu::postmaster_pid(&value);
        }
        println!("  postgres {name}: {value}");
    }
    if postmaster.is_none() {
        println!("  (PostgreSQL's CPU cannot be read: its postmaster.pid is not readable here)");
    }
    println!(
        "  consumer: {} pollers, {} messages in flight at most, batch 10, long poll 20 s; \
         store pool {} connections, group commit {} batches at once of {} writes at most; SES \
         sender rate 1,000,000/s (no cap), no per-tenant caps",
        args.pollers, args.max_in_flight, args.pool, args.write_batches, args.max_batch
    );

    let sdk = sdk_config(standin.endpoint()).await;
    let ses_config =
        SesConfig { send_rate: 1_000_000.0, read_account_send_rate: false, ..SesConfig::default() };
    // No per-tenant caps: acme-bank's `max_send_rate = 10` would make this a benchmark of the
    // rate limiter.
    let sender = SesSender::from_sdk_config(&sdk, &ses_config, &HashMap::new()).await?;
    let bare_ses = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&sdk)
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(ses_config.connect_timeout)
                    .read_timeout(ses_config.call_timeout)
                    .operation_attempt_timeout(ses_config.call_timeout)
                    .operation_timeout(ses_config.call_timeout)
                    .build(),
            )
            .build(),
    );
    let standin_cpu = standin.cpu();
    let setup = Arc::new(Setup {
        standin: Arc::new(standin),
        standin_cpu,
        sqs: aws_sdk_sqs::Client::new(&sdk),
        bare_ses,
        templates,
        events: Arc::new(events),
        store: Arc::new(store),
        sender: Arc::new(sender),
        db,
        consumer: ConsumerSettings { pollers: args.pollers, max_in_flight: args.max_in_flight },
        postmaster,
    });

    let mut summary = Summary::default();
    for run in &args.runs {
        match run {
            Run::Throughput => {
                let result =
                    runs::worker(&setup, "throughput", Load::Preloaded(args.events), false, true)
                        .await?;
                report::worker("Throughput: the worker path draining a preloaded queue", &result);
                summary.throughput = Some(result.rate());
                summary.throughput_p99 = result.receive_to_send.map(|s| s.p99);
                summary.peak_rss = result.peak_rss;
            }
            Run::Limit => {
                let loops = (args.max_in_flight / 10).max(1);
                let mut rates = Vec::new();
                for repeat in 1..=args.limit_repeats.max(1) {
                    let result = runs::bare(&setup, args.events, loops).await?;
                    report::bare(&result, repeat);
                    rates.push(result.rate());
                }
                rates.sort_by(f64::total_cmp);
                summary.limit = Some((rates[rates.len() / 2], rates[rates.len() - 1]));
            }
            Run::Latency => {
                let load = Load::Fed { rate: args.latency_rate, seconds: args.latency_seconds };
                let result = runs::worker(&setup, "latency", load, false, false).await?;
                report::worker(
                    &format!("Latency: the worker path at {} events/s offered", args.latency_rate),
                    &result,
                );
                summary.latency = result.receive_to_send;
            }
            Run::Breakdown => {
                let result =
                    runs::worker(&setup, "breakdown", Load::Preloaded(args.events), true, false)
                        .await?;
                report::worker("Breakdown: the worker path with every port call timed", &result);
                report::breakdown(&result);
            }
            Run::LatencyPrune => {
                let seeding = prune_beside::seed(&setup.db, args.prune_seed).await?;
                println!(
                    "  seeded {} deliveries 400 days old in {:.1} s",
                    args.prune_seed,
                    seeding.as_secs_f64()
                );
                let pruning =
                    prune_beside::start(&setup.db, args.prune_batch_size, args.prune_max_rate);
                let load = Load::Fed { rate: args.latency_rate, seconds: args.latency_seconds };
                let result = runs::worker(&setup, "latency-prune", load, false, false).await;
                let pruned = pruning.stop().await?;
                let result = result?;
                report::worker(
                    &format!(
                        "Latency beside a prune: the worker path at {} events/s offered while \
                         `tayori prune --keep-days 90 --batch-size {}{}` deletes old deliveries",
                        args.latency_rate,
                        args.prune_batch_size,
                        args.prune_max_rate.map(|r| format!(" --max-rate {r}")).unwrap_or_default()
                    ),
                    &result,
                );
                println!(
                    "  prune beside it: {} of {} deliveries deleted in {:.1} s ({:.0}/s){}",
                    pruned.deleted,
                    pruned.found,
                    pruned.elapsed.as_secs_f64(),
                    pruned.deleted as f64 / pruned.elapsed.as_secs_f64().max(1e-9),
                    if pruned.finished { ", finished before the run ended" } else { "" }
                );
            }
            Run::Isolation => {
                let settings = isolation::Settings {
                    b_rate: args.isolation_rate,
                    seconds: args.isolation_seconds,
                    burst: args.isolation_burst,
                    a_rate: args.isolation_a_rate,
                    slow: Duration::from_millis(args.isolation_slow_ms),
                    drain: Duration::from_secs(args.isolation_drain_seconds),
                    fair: args.fair_queues == Switch::On,
                };
                isolation::run(&setup, settings, &args.isolation_scenarios, summary.throughput)
                    .await?;
            }
            Run::Soak => {
                let settings = soak_settings(args, &database.url)?;
                soak::run(&setup, &settings).await?;
            }
            Run::Store => {
                let result = runs::store_only(&setup, args.events, args.max_in_flight).await?;
                report::store_only(&result);
            }
            Run::HoldRelease | Run::LatencyRelease => {
                let settings = tayori_app::ReleaseSettings {
                    batch_size: args.release_batch,
                    concurrency: args.release_concurrency,
                    ..tayori_app::ReleaseSettings::default()
                };
                let beside = (*run == Run::LatencyRelease).then_some(Load::Fed {
                    rate: args.latency_rate,
                    seconds: args.latency_seconds,
                });
                let result = hold_release::run(&setup, args.hold_events, settings, beside).await?;
                report::hold_release(&result, settings);
                if let Some(latency) = &result.beside {
                    report::worker(
                        &format!(
                            "Latency beside the release: the worker path at {} events/s offered \
                             from the resume on",
                            args.latency_rate
                        ),
                        latency,
                    );
                }
            }
        }
    }
    let (hwm, _) = cpu::memory();
    summary.print(args, hwm);
    setup.store.close().await;
    Ok(())
}

/// The soak's settings from the arguments.
fn soak_settings(args: &Args, database_url: &str) -> anyhow::Result<soak::Settings> {
    anyhow::ensure!(
        args.soak_minutes.len() == args.soak_rates.len(),
        "--soak-minutes names {} phases and --soak-rates {}",
        args.soak_minutes.len(),
        args.soak_rates.len()
    );
    let mut phases = Vec::new();
    for (minutes, rate) in args.soak_minutes.iter().zip(&args.soak_rates) {
        anyhow::ensure!(
            minutes.is_finite() && *minutes > 0.0 && *rate > 0,
            "a soak phase needs minutes and a rate above 0 (got {minutes} min at {rate}/s)"
        );
        phases.push((*rate, Duration::from_secs_f64(minutes * 60.0)));
    }
    let tayori_bin = match &args.tayori_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find this program's path (give --tayori-bin)")?
            .with_file_name("tayori"),
    };
    Ok(soak::Settings {
        phases,
        sample_every: Duration::from_secs(args.soak_sample_seconds.max(1)),
        fault_every: Duration::from_secs(args.soak_fault_every),
        fault_lasting: Duration::from_secs(args.soak_fault_seconds),
        drain: Duration::from_secs(args.soak_drain_seconds),
        tayori_bin,
        templates: args.templates.clone(),
        database_url: database_url.to_owned(),
        report: args.soak_report.clone(),
        keep_log: args.soak_keep_log,
    })
}

/// The SDK settings `tayori worker` uses (`crates/tayori/src/worker.rs`), pointed at the
/// stand-in, with static credentials and a fixed region instead of the standard chain.
async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(Duration::from_secs(30))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "bench",
            "bench",
            None,
            None,
            "tayori-bench",
        ))
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .load()
        .await
}

/// The headline figures against the targets.
#[derive(Debug, Default)]
struct Summary {
    throughput: Option<f64>,
    throughput_p99: Option<Duration>,
    /// (median, best) of the limit runs.
    limit: Option<(f64, f64)>,
    latency: Option<stats::Summary>,
    peak_rss: Option<f64>,
}

impl Summary {
    fn print(&self, args: &Args, process_hwm: Option<f64>) {
        println!("\n== Summary (targets from issue 3, on a 2-core machine)");
        let verdict = |ok: bool| if ok { "meets" } else { "misses" };
        if let Some(rate) = self.throughput {
            println!("throughput: {rate:.0} events/s ({} ≥ 3,000)", verdict(rate >= 3000.0));
        }
        if let (Some(rate), Some((median, best))) = (self.throughput, self.limit) {
            println!(
                "limit (bare SDK calls): median {median:.0} messages/s, best {best:.0} of {} runs; \
                 ratio {:.2} to the median, {:.2} to the best ({} ≥ 0.6)",
                args.limit_repeats.max(1),
                rate / median,
                rate / best,
                verdict(rate / median >= 0.6)
            );
        }
        if let Some(p99) = self.throughput_p99 {
            println!("receive → send p99 while draining: {}", stats::ms(p99));
        }
        if let Some(latency) = &self.latency {
            println!(
                "receive → send at {} events/s: p50 {}, p99 {} ({} ≤ 50 ms)",
                args.latency_rate,
                stats::ms(latency.p50),
                stats::ms(latency.p99),
                verdict(latency.p99 <= Duration::from_millis(50))
            );
        }
        if let Some(peak) = self.peak_rss {
            println!(
                "peak RSS during the throughput run: {peak:.1} MiB, stand-in and {} queued events \
                 included ({} ≤ 100 MiB)",
                args.events,
                verdict(peak <= 100.0)
            );
        }
        if let Some(hwm) = process_hwm {
            println!(
                "(VmHWM of the bench process from the throughput run's start to the end, every \
                 later run's queued events, connections and traces included: {hwm:.1} MiB)"
            );
        }
        println!("load average at the end: {}", cpu::load_average());
    }
}
