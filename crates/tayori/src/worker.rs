//! `tayori worker`: the production path. SQS in, the handle-event use case, SES (or an outbox)
//! out, PostgreSQL (or SQLite) for delivery state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tayori_app::handle_event::SendingPauses;
use tayori_app::ports::{
    DeliveryStore, EmailSender, NoSuppressions, SuppressionList, WorkerRegistry,
};
use tayori_app::{
    AccountRateSettings, DeliveryPolicy, EventHandler, FeedbackHandler, MessageHandler,
    PublishActivity, ReleaseHeldEvents, Released, ShareSendRate, Sharing,
};
use tayori_outbox::FileOutbox;
use tayori_postgres::{
    PostgresActivityBoard, PostgresFeedbackStore, PostgresHeldEvents, PostgresStore,
    PostgresSuppressions, PostgresWorkerRegistry,
};
use tayori_ses::{SesConfig, SesSender, tenant_pacing};
use tayori_sqlite::SqliteStore;
use tayori_sqs::{ConsumerReport, SqsConsumer};
use tayori_templates::{ReloadableTemplates, TemplateSet};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::clock::SystemClock;
use crate::config::{SenderConfig, StoreConfig, WorkerConfig};

/// A running worker.
pub struct WorkerApp {
    /// The store it records into (tests read outcomes through it).
    pub store: Arc<dyn DeliveryStore>,
    /// The templates in use; [`ReloadableTemplates::reload`] swaps them (SIGHUP does).
    pub templates: Arc<ReloadableTemplates>,
    stop: watch::Sender<bool>,
    consumer: JoinHandle<ConsumerReport>,
    /// The consumers of `[[dedicated_queues]]`.
    dedicated_consumers: Vec<JoinHandle<ConsumerReport>>,
    /// The publication of the tenants' activity for the console (PostgreSQL only).
    publish_activity: Option<JoinHandle<()>>,
    /// The SES feedback queue's consumer, when `[feedback] queue_url` is set.
    feedback_consumer: Option<JoinHandle<ConsumerReport>>,
    /// The release of events held for paused tenants (PostgreSQL only).
    release_held: Option<JoinHandle<Released>>,
    /// The division of the SES account's rate among the workers (SES sender only), and its
    /// loop.
    rate_sharing: Option<(Arc<ShareSendRate>, JoinHandle<()>)>,
    reload_on_hangup: Option<JoinHandle<()>>,
    /// `/healthz`, `/readyz`, `/metrics`, when `http.listen` is set.
    pub endpoints: Option<crate::http_health::HealthServer>,
}

/// The AWS settings every client shares: the standard chain (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// profiles, web identity in Kubernetes) with explicit timeouts, since the SDK has none for reads.
///
/// The region comes from the standard chain too (`AWS_REGION`, the profile's `region`, then
/// the instance metadata service), with one short attempt at the metadata service instead of
/// the SDK's several (about 1 s, not 5), so that a machine with neither is told at once.
pub async fn aws_config() -> aws_config::SdkConfig {
    use aws_config::environment::region::EnvironmentVariableRegionProvider;
    use aws_config::imds::region::ImdsRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::ProfileFileRegionProvider;

    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        // Above the 20 s long poll; the consumer also bounds every call itself.
        .read_timeout(Duration::from_secs(30))
        .build();
    let metadata = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .read_timeout(Duration::from_millis(500))
        .max_attempts(1)
        .build();
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(ImdsRegionProvider::builder().imds_client(metadata).build());
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .timeout_config(timeouts)
        .http_client(aws_http_client())
        .load()
        .await
}

/// Refuses AWS settings without a region: every SQS and SES call would fail with "Missing
/// Region", forever, while the worker looked healthy.
pub fn require_region(aws: &aws_config::SdkConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        aws.region().is_some(),
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or `region` in the AWS profile), \
         e.g. AWS_REGION=ap-northeast-1; the instance metadata service did not answer either"
    );
    Ok(())
}

/// The SDK's default HTTPS client with idle connections kept 30 s instead of 90 s: load
/// balancers and NAT gateways forget idle connections silently (an ALB after 60 s by default),
/// and a call sent on a forgotten one hangs until a timeout (measured: a long poll 23 s, in
/// `crates/tayori-sqs/tests/endpoint_faults.rs`).
pub fn aws_http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

/// How long the AWS clients keep an idle connection for reuse.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects everything and starts consuming, with AWS settings from the standard chain.
pub async fn start(config: WorkerConfig) -> anyhow::Result<WorkerApp> {
    let aws = aws_config().await;
    require_region(&aws)?;
    start_with_aws(config, aws).await
}

/// Like [`start`], with the AWS settings given (tests point them at moto).
pub async fn start_with_aws(
    config: WorkerConfig,
    aws: aws_config::SdkConfig,
) -> anyhow::Result<WorkerApp> {
    let templates = ReloadableTemplates::load(&config.templates.dir).with_context(|| {
        format!("the templates in {} have problems", config.templates.dir.display())
    })?;
    let templates = Arc::new(templates);
    let tenant_ids: Vec<_> = templates.current().tenants().map(|t| t.id.clone()).collect();
    for tenant in templates.current().tenants().filter(|t| t.publishers.is_open()) {
        warn!(
            tenant = %tenant.id,
            "the tenant lists no producers or sources in its tenant.toml: anyone allowed to send \
             to the queue can publish as it (docs/tenancy.md)"
        );
    }
    let loaded_tenants: Arc<dyn Fn() -> usize + Send + Sync> = {
        let templates = templates.clone();
        Arc::new(move || templates.current().tenants().count())
    };

    // Suppressions live in PostgreSQL (added through the admin API); SQLite has none.
    let mut suppressions: Arc<dyn SuppressionList> = Arc::new(NoSuppressions);
    // SES feedback is recorded in PostgreSQL only (`validate` refuses it with SQLite).
    let mut feedback_store = None;
    let mut held_events = None;
    let mut activity_board = None;
    let mut pool = None;
    let store: Arc<dyn DeliveryStore> = match &config.store {
        StoreConfig::Postgres { .. } => {
            let postgres = config.store.postgres().context("store")?;
            let store = PostgresStore::connect(&postgres)
                .await
                .context("cannot connect to PostgreSQL (store.url)")?;
            // The schema must be migrated (`tayori migrate`) before workers start; applying
            // pending migrations here too keeps a single-worker setup to one command.
            store.migrate().await.context("migrations failed")?;
            suppressions = Arc::new(PostgresSuppressions::new(store.pool().clone()));
            feedback_store = Some(PostgresFeedbackStore::new(store.pool().clone()));
            held_events = Some(Arc::new(PostgresHeldEvents::new(store.pool().clone())));
            activity_board = Some(Arc::new(PostgresActivityBoard::new(store.pool().clone())));
            pool = Some(store.pool().clone());
            Arc::new(store)
        }
        StoreConfig::Sqlite { path } => {
            Arc::new(SqliteStore::open(path).await.with_context(|| {
                format!("cannot open SQLite at {} (store.path)", path.display())
            })?)
        }
    };

    let worker_id = config.worker_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let (sender, rate_sharing): (Arc<dyn EmailSender>, _) = match &config.sender {
        SenderConfig::Outbox(outbox) => (Arc::new(FileOutbox::new(outbox.clone())), None),
        SenderConfig::Ses(ses) => {
            let sender = Arc::new(ses_sender(ses, &templates.current(), &aws).await?);
            let registry = pool.map(|pool| {
                Arc::new(PostgresWorkerRegistry::new(pool, &worker_id)) as Arc<dyn WorkerRegistry>
            });
            let sharing = share_send_rate(ses, sender.clone(), registry, &worker_id);
            // Registered, and paced by its share, before the first message is taken.
            sharing.join().await;
            let looping = {
                let sharing = sharing.clone();
                tokio::spawn(async move { sharing.run().await })
            };
            (sender as Arc<dyn EmailSender>, Some((sharing, looping)))
        }
    };

    let sqs = aws_sdk_sqs::Client::new(&aws);
    let handler = Arc::new(EventHandler {
        store: store.clone(),
        tenants: templates.clone(),
        suppressions,
        renderer: templates.clone(),
        sender,
        clock: Arc::new(SystemClock),
        policy: DeliveryPolicy {
            unsubscribe: config.unsubscribe.links()?,
            ..config.delivery.policy()
        },
        worker_id: worker_id.clone(),
        // With PostgreSQL, pauses set by operators and the reputation guard are shared by every
        // worker, and the paused tenants' events are held there until the resume.
        pauses: match (&feedback_store, &held_events) {
            (Some(store), Some(held)) => SendingPauses::with_shared(
                Arc::new(store.clone()),
                SendingPauses::SHARED_ANSWER_KEPT_FOR,
            )
            .holding_in(held.clone()),
            _ => SendingPauses::default(),
        },
    });
    let (stop, stopped) = watch::channel(false);
    // `/healthz` fails once a consumer's loop has ended.
    let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // What each consumer knows of its queue and store, for `/readyz`: the events queue's first.
    let mut health = Vec::new();
    let mut spawn_consumer = |queue: tayori_sqs::ConsumerConfig,
                              handler: Arc<dyn MessageHandler>| {
        let name = queue.queue_url.rsplit('/').next().unwrap_or_default().to_owned();
        let consumer = SqsConsumer::new(sqs.clone(), queue, handler);
        health.push((name, consumer.health()));
        let (alive, stopped) = (alive.clone(), stopped.clone());
        tokio::spawn(async move {
            let report = consumer.run(stopped).await;
            alive.store(false, std::sync::atomic::Ordering::Relaxed);
            report
        })
    };
    // The shared events queue first, then any dedicated ones, each with its share of the slots.
    let mut event_consumers = config
        .event_consumers()
        .into_iter()
        .map(|queue| {
            info!(queue = %queue.queue_url, max_in_flight = queue.max_in_flight, "consuming events");
            spawn_consumer(queue, handler.clone())
        })
        .collect::<Vec<_>>();
    let consumer = event_consumers.remove(0);
    let release_held = held_events.map(|held| {
        let release = ReleaseHeldEvents {
            held,
            handler,
            clock: Arc::new(SystemClock),
            settings: config.delivery.release(),
        };
        let stopped = stopped.clone();
        tokio::spawn(async move { release.run(&|| *stopped.borrow()).await })
    });
    // What the tenants are doing here, for the console's Tenants page (PostgreSQL only).
    let publish_activity = activity_board.map(|board| {
        let publish = PublishActivity {
            board,
            worker: format!("{worker_id}/{}", std::process::id()),
            clock: Arc::new(SystemClock),
            every: tayori_app::publish_activity::PUBLISH_EVERY,
        };
        let stopped = stopped.clone();
        tokio::spawn(async move { publish.run(&|| *stopped.borrow()).await })
    });
    let feedback_consumer = match (config.feedback.consumer(&config.queue), feedback_store) {
        (Some(queue), Some(store)) => {
            info!(queue = %queue.queue_url, "consuming SES feedback");
            let handler = FeedbackHandler {
                store: Arc::new(store),
                clock: Arc::new(SystemClock),
                policy: config.feedback.policy(),
            };
            Some(spawn_consumer(queue, Arc::new(handler)))
        }
        (Some(_), None) => anyhow::bail!(
            "invalid configuration: feedback.queue_url needs store.kind = \"postgres\""
        ),
        (None, _) => None,
    };
    let endpoints = crate::http_health::start_worker_endpoints(
        &config.http,
        &tenant_ids,
        health,
        loaded_tenants,
        alive,
    )
    .await?;
    let reload_on_hangup = crate::signals::on_hangup(reload_templates(templates.clone()));
    let store_url = config.store.postgres().map(|p| tayori_postgres::redacted_url(&p.url));
    info!(worker_id, queue = %config.queue.queue_url, store = store_url.as_deref().unwrap_or("sqlite"), "worker started");
    Ok(WorkerApp {
        store,
        templates,
        stop,
        consumer,
        dedicated_consumers: event_consumers,
        publish_activity,
        feedback_consumer,
        release_held,
        rate_sharing,
        reload_on_hangup,
        endpoints,
    })
}

fn add_report(total: &mut ConsumerReport, more: &ConsumerReport) {
    total.received += more.received;
    total.deleted += more.deleted;
    total.backed_off += more.backed_off;
    total.released_unstarted += more.released_unstarted;
    total.abandoned += more.abandoned;
    total.handed_back += more.handed_back;
    total.timed_out += more.timed_out;
    total.released_store_down += more.released_store_down;
}

/// The sender the configuration names; the admin server's resend uses the same one (with SES,
/// at `sender.account_rate_share` of the account's rate read at start: it is not in the
/// workers' registry).
pub(crate) async fn email_sender(
    config: &SenderConfig,
    templates: &TemplateSet,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<Arc<dyn EmailSender>> {
    Ok(match config {
        SenderConfig::Outbox(outbox) => Arc::new(FileOutbox::new(outbox.clone())),
        SenderConfig::Ses(ses) => Arc::new(ses_sender(ses, templates, aws).await?),
    })
}

/// The SES sender, with the tenants' caps and weights.
async fn ses_sender(
    ses: &SesConfig,
    templates: &TemplateSet,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<SesSender> {
    // Tenant caps and weights are read once: a reload that changes a `max_send_rate` or a
    // `weight` needs a restart to take effect (docs/configuration.md).
    let pacing = tenant_pacing(templates.tenants());
    let sender =
        SesSender::from_sdk_config(aws, ses, &pacing).await.context("invalid configuration")?;
    info!(
        send_rate = sender.send_rate(),
        source = ?sender.send_rate_source(),
        paced_tenants = pacing.len(),
        "SES sender ready"
    );
    Ok(sender)
}

/// How a worker's SES sender takes its share of the account's rate: divided among the live
/// workers in PostgreSQL's registry, or, without one (SQLite), `sender.account_rate_share` of it.
fn share_send_rate(
    ses: &SesConfig,
    sender: Arc<SesSender>,
    registry: Option<Arc<dyn WorkerRegistry>>,
    worker_id: &str,
) -> Arc<ShareSendRate> {
    let account = AccountRateSettings {
        read_from_account: ses.read_account_send_rate,
        configured: ses.send_rate,
        refresh_every: ses.quota_refresh,
    };
    let sharing = match registry {
        Some(registry) => {
            if ses.account_rate_share != 1.0 {
                info!(
                    account_rate_share = ses.account_rate_share,
                    headroom = ses.headroom,
                    "sender.account_rate_share is not used by workers on PostgreSQL: they divide \
                     sender.headroom of the account's rate among the live workers"
                );
            }
            // Unique per process: several processes may be configured with one worker_id.
            let started = chrono::Utc::now().timestamp_micros();
            Sharing::AmongLiveWorkers {
                registry,
                worker: format!("{worker_id}/{}/{started}", std::process::id()),
                headroom: ses.headroom,
                heartbeat_every: ses.registry_heartbeat,
                live_for: ses.registry_dead_after,
            }
        }
        None => Sharing::Fixed { fraction_of_account: ses.account_rate_share },
    };
    Arc::new(ShareSendRate::new(sender, Arc::new(SystemClock), account, sharing))
}

/// What SIGHUP does: load the templates again; a set with problems is refused (logged with its
/// problems) and the last good one stays in use.
fn reload_templates(templates: Arc<ReloadableTemplates>) -> impl Fn() + Send + 'static {
    move || {
        let templates = templates.clone();
        // Loading reads files and inlines CSS: off the async threads.
        tokio::task::spawn_blocking(move || {
            info!(dir = %templates.dir().display(), "SIGHUP: reloading the templates");
            if templates.reload().is_err() {
                warn!("SIGHUP reload refused; fix the templates and send SIGHUP again");
            }
        });
    }
}

impl WorkerApp {
    /// Runs until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<ConsumerReport> {
        crate::signals::wait_for_stop().await;
        info!("stop requested: no new messages; finishing the work in flight");
        self.stop().await
    }

    /// Stops polling, lets the work in flight finish within the grace period, and returns what
    /// the consumer did.
    pub async fn stop(self) -> anyhow::Result<ConsumerReport> {
        let _ = self.stop.send(true);
        if let Some(listener) = self.reload_on_hangup {
            listener.abort();
        }
        let mut report = self.consumer.await.context("the SQS consumer panicked");
        // The report adds up every events queue's.
        for dedicated in self.dedicated_consumers {
            match (dedicated.await, &mut report) {
                (Ok(more), Ok(report)) => add_report(report, &more),
                (Err(error), _) => warn!(error = %error, "a dedicated queue's consumer panicked"),
                (Ok(_), Err(_)) => {}
            }
        }
        // A round in progress finishes its events; ones it leased and did not reach go out after
        // their lease, from whichever worker runs then.
        if let Some(release) = self.release_held {
            match release.await {
                Ok(released) => info!(?released, "release of held events stopped"),
                Err(error) => warn!(error = %error, "the release of held events panicked"),
            }
        }
        if let Some(publish) = self.publish_activity
            && let Err(error) = publish.await
        {
            warn!(error = %error, "the publication of the tenants' activity panicked");
        }
        if let Some(feedback) = self.feedback_consumer {
            match feedback.await {
                Ok(report) => info!(?report, "SES feedback consumer stopped"),
                Err(error) => warn!(error = %error, "the SES feedback consumer panicked"),
            }
        }
        // The sends are done: leave the registry so that the other workers take this one's
        // share at their next heartbeat.
        if let Some((sharing, looping)) = self.rate_sharing {
            looping.abort();
            sharing.leave().await;
        }
        // Probes and scrapes are answered until the work in flight is done.
        if let Some(endpoints) = self.endpoints {
            endpoints.stop().await;
        }
        report
    }
}
