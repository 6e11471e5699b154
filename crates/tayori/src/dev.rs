//! `tayori dev`: the whole path of an event on one machine, with nothing to install.
//!
//! HTTP intake → in-process queue → the handle-event use case → tenants' templates → `.eml` files,
//! with delivery state in SQLite under the data directory (or in PostgreSQL when given a URL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tayori_app::ports::{DeliveryStore, NoSuppressions};
use tayori_app::{DeliveryPolicy, EventHandler, EventIntake};
use tayori_http::{AppState, router};
use tayori_memqueue::{WorkerSettings, memory_queue};
use tayori_outbox::{FileOutbox, OutboxConfig};
use tayori_postgres::{PostgresConfig, PostgresStore};
use tayori_sqlite::SqliteStore;
use tayori_templates::{ReloadableTemplates, TemplateWatcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::cli::DevArgs;
use crate::clock::SystemClock;

/// Everything `tayori dev` needs, validated by [`start`]. Its `Debug` masks the database
/// password.
#[derive(Clone)]
pub struct DevConfig {
    /// Where to listen (port 0 picks a free one).
    pub listen: SocketAddr,
    /// SQLite file and outbox live here.
    pub data_dir: PathBuf,
    /// The templates directory.
    pub templates: PathBuf,
    /// PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// Events handled at once.
    pub concurrency: usize,
}

impl std::fmt::Debug for DevConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("templates", &self.templates)
            .field("database_url", &self.database_url.as_deref().map(tayori_postgres::redacted_url))
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl From<DevArgs> for DevConfig {
    fn from(args: DevArgs) -> Self {
        Self {
            listen: args.listen,
            data_dir: args.data_dir,
            templates: args.templates,
            database_url: args.database_url,
            concurrency: args.concurrency,
        }
    }
}

/// A running `tayori dev`.
pub struct DevApp {
    /// The address the intake listens on.
    pub addr: SocketAddr,
    /// The delivery store it records into.
    pub store: Arc<dyn DeliveryStore>,
    /// Where the `.eml` files go.
    pub outbox_dir: PathBuf,
    /// The templates in use, reloaded when their files change.
    pub templates: Arc<ReloadableTemplates>,
    /// Reloads `templates` on file changes while the app runs (`None` when the OS refused a
    /// watch: edits then need a restart).
    _template_watcher: Option<TemplateWatcher>,
    store_description: String,
    templates_description: String,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    workers: JoinHandle<()>,
}

/// How long work in flight may take to finish after a stop is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Starts the intake, the workers and everything behind them.
pub async fn start(config: DevConfig) -> anyhow::Result<DevApp> {
    let templates = ReloadableTemplates::load(&config.templates).with_context(|| {
        format!("the templates in {} have problems", config.templates.display())
    })?;
    let templates = Arc::new(templates);
    // Authors edit templates while `tayori dev` runs: reload on every change, keeping the last
    // good set when an edit breaks something (the preview page shows why).
    let template_watcher = match templates.watch() {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            warn!(
                error = %error,
                "cannot watch the templates for changes; restart to pick up edits"
            );
            None
        }
    };
    let tenant_names: Vec<String> =
        templates.current().tenants().map(|t| t.id.to_string()).collect();
    let templates_description = format!(
        "{} ({} tenant{}: {})",
        config.templates.display(),
        tenant_names.len(),
        if tenant_names.len() == 1 { "" } else { "s" },
        tenant_names.join(", ")
    );

    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!("cannot create the data directory {}", config.data_dir.display())
    })?;
    let (store, store_description): (Arc<dyn DeliveryStore>, String) = match &config.database_url {
        Some(url) => {
            let store = PostgresStore::connect(&PostgresConfig::new(url))
                .await
                .context("cannot connect to the database given by --database-url")?;
            store.migrate().await.context("migrations failed")?;
            (Arc::new(store), format!("PostgreSQL {}", tayori_postgres::redacted_url(url)))
        }
        None => {
            let path = config.data_dir.join("tayori.db");
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
            (Arc::new(store), format!("SQLite {}", path.display()))
        }
    };
    let outbox_dir = config.data_dir.join("outbox");
    let outbox = FileOutbox::new(OutboxConfig { dir: outbox_dir.clone() });

    let handler = Arc::new(EventHandler {
        store: store.clone(),
        tenants: templates.clone(),
        suppressions: Arc::new(NoSuppressions),
        renderer: templates.clone(),
        sender: Arc::new(outbox),
        clock: Arc::new(SystemClock),
        policy: DeliveryPolicy::default(),
        worker_id: format!("dev-{}", std::process::id()),
        pauses: Default::default(),
    });
    let (queue, workers) = memory_queue(10_000);
    let (stop, stopped) = watch::channel(false);
    let settings = WorkerSettings { concurrency: config.concurrency, ..WorkerSettings::default() };
    let workers = tokio::spawn(workers.run(handler.clone(), settings, stopped.clone()));

    let intake = Arc::new(EventIntake { handler, queue: Arc::new(queue) });
    let app = router(AppState { intake, store: store.clone() })
        .merge(tayori_http::preview::router(templates.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (in use? try --listen)", config.listen))?;
    let addr = listener.local_addr()?;
    let mut server_stopped = stopped;
    let server = tokio::spawn(async move {
        // The intake takes bodies up to its own limit: an oversized event is recorded as
        // rejected with its reason rather than refused.
        let limits = tayori_http::ServeLimits {
            max_body_bytes: tayori_http::MAX_REQUEST_BYTES,
            ..tayori_http::ServeLimits::default()
        };
        tayori_http::serve(listener, app, limits, async move {
            let _ = server_stopped.wait_for(|stop| *stop).await;
        })
        .await
    });
    info!(%addr, "tayori dev started");
    Ok(DevApp {
        addr,
        store,
        outbox_dir,
        templates,
        _template_watcher: template_watcher,
        store_description,
        templates_description,
        stop,
        server,
        workers,
    })
}

impl DevApp {
    /// What to tell the person who started it.
    pub fn banner(&self) -> String {
        let url = format!("http://{}", self.addr);
        format!(
            "tayori dev is running. Ctrl-C stops it.\n\
             \n  intake     POST {url}/v1/events   (CloudEvents JSON, see docs/contract.md)\
             \n  status     GET  {url}/v1/deliveries/<delivery_id>\
             \n  preview    {url}/preview   (every template with its samples; reloads on edits)\
             \n  outbox     {}   (one .eml per email; open it in any mail client)\
             \n  store      {}\
             \n  templates  {}\
             \n\nTry:\n  curl -sS -X POST {url}/v1/events -H 'content-type: application/json' \\\n    \
             --data @tests/fixtures/events/valid/deposit-completed-ja.json",
            self.outbox_dir.display(),
            self.store_description,
            self.templates_description,
        )
    }

    /// Runs until Ctrl-C or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        crate::signals::wait_for_stop().await;
        eprintln!("stopping: finishing the events in flight (at most {SHUTDOWN_GRACE:?})");
        self.shutdown().await
    }

    /// Stops taking requests, lets the events in flight finish, and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let finished = async {
            self.server
                .await
                .context("the HTTP server panicked")?
                .context("the HTTP server failed")?;
            self.workers.await.context("the workers panicked")
        };
        tokio::time::timeout(SHUTDOWN_GRACE, finished)
            .await
            .context("work in flight did not finish within the grace period")?
    }
}
