//! `tayori worker`: the production path. SQS in, the handle-event use case, SES (or an outbox)
//! out, PostgreSQL (or SQLite) for delivery state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tayori_app::EventHandler;
use tayori_app::ports::{DeliveryStore, EmailSender, NoSuppressions};
use tayori_outbox::FileOutbox;
use tayori_postgres::PostgresStore;
use tayori_sqlite::SqliteStore;
use tayori_sqs::{ConsumerReport, SqsConsumer};
use tayori_templates::TemplateSet;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::clock::SystemClock;
use crate::config::{SenderConfig, StoreConfig, WorkerConfig};

/// A running worker.
pub struct WorkerApp {
    /// The store it records into (tests read outcomes through it).
    pub store: Arc<dyn DeliveryStore>,
    stop: watch::Sender<bool>,
    consumer: JoinHandle<ConsumerReport>,
    /// `/healthz`, `/readyz`, `/metrics`, when `http.listen` is set.
    pub endpoints: Option<crate::http_health::HealthServer>,
}

/// The AWS settings every client shares: the standard chain (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// profiles, web identity in Kubernetes) with explicit timeouts, since the SDK has none for reads.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        // Above the 20 s long poll; the consumer also bounds every call itself.
        .read_timeout(Duration::from_secs(30))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// Connects everything and starts consuming, with AWS settings from the standard chain.
pub async fn start(config: WorkerConfig) -> anyhow::Result<WorkerApp> {
    start_with_aws(config, aws_config().await).await
}

/// Like [`start`], with the AWS settings given (tests point them at moto).
pub async fn start_with_aws(
    config: WorkerConfig,
    aws: aws_config::SdkConfig,
) -> anyhow::Result<WorkerApp> {
    let templates = TemplateSet::load(&config.templates.dir).with_context(|| {
        format!("the templates in {} have problems", config.templates.dir.display())
    })?;
    let templates = Arc::new(templates);
    let tenant_ids: Vec<_> = templates.tenants().map(|t| t.id.clone()).collect();
    let loaded_tenants: Arc<dyn Fn() -> usize + Send + Sync> = {
        let templates = templates.clone();
        Arc::new(move || templates.tenants().count())
    };

    let store: Arc<dyn DeliveryStore> = match &config.store {
        StoreConfig::Postgres { .. } => {
            let postgres = config.store.postgres().context("store")?;
            let store = PostgresStore::connect(&postgres)
                .await
                .context("cannot connect to PostgreSQL (store.url)")?;
            // The schema must be migrated (`tayori migrate`) before workers start; applying
            // pending migrations here too keeps a single-worker setup to one command.
            store.migrate().await.context("migrations failed")?;
            Arc::new(store)
        }
        StoreConfig::Sqlite { path } => {
            Arc::new(SqliteStore::open(path).await.with_context(|| {
                format!("cannot open SQLite at {} (store.path)", path.display())
            })?)
        }
    };

    let sender: Arc<dyn EmailSender> = match &config.sender {
        SenderConfig::Outbox { .. } => {
            Arc::new(FileOutbox::new(config.sender.outbox().context("sender")?))
        }
    };

    let sqs = aws_sdk_sqs::Client::new(&aws);
    let worker_id = config.worker_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let handler = Arc::new(EventHandler {
        store: store.clone(),
        tenants: templates.clone(),
        suppressions: Arc::new(NoSuppressions),
        renderer: templates,
        sender,
        clock: Arc::new(SystemClock),
        policy: config.delivery.policy(),
        worker_id: worker_id.clone(),
        pauses: Default::default(),
    });
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(sqs, config.queue.clone(), handler);
    // `/healthz` fails once the consumer's loop has ended.
    let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let consumer = tokio::spawn({
        let alive = alive.clone();
        async move {
            let report = consumer.run(stopped).await;
            alive.store(false, std::sync::atomic::Ordering::Relaxed);
            report
        }
    });
    let endpoints = crate::http_health::start_worker_endpoints(
        &config.http,
        &tenant_ids,
        store.clone(),
        loaded_tenants,
        alive,
    )
    .await?;
    info!(worker_id, queue = %config.queue.queue_url, "worker started");
    Ok(WorkerApp { store, stop, consumer, endpoints })
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
        let report = self.consumer.await.context("the SQS consumer panicked");
        // Probes and scrapes are answered until the work in flight is done.
        if let Some(endpoints) = self.endpoints {
            endpoints.stop().await;
        }
        report
    }
}
