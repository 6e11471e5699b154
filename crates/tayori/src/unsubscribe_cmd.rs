//! `tayori unsubscribe serve`: the public one-click unsubscribe endpoint in a process of its own,
//! on `unsubscribe.listen`, apart from the admin API and console. It holds only what an
//! unsubscribe needs (the PostgreSQL suppressions and the unsubscribe keys), no SES or SQS
//! credentials, so an internet-facing listener under attack cannot reach the operators' side.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use clap::{Args, Subcommand};
use tayori_app::ports::StoreReadiness as _;
use tayori_postgres::{PostgresStore, PostgresSuppressions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::clock::SystemClock;
use crate::config::WorkerConfig;

/// `tayori unsubscribe ...`
#[derive(Debug, Subcommand)]
pub enum UnsubscribeCommand {
    /// Serve `GET`/`POST /unsubscribe/{token}` on `unsubscribe.listen` (or --listen).
    ///
    /// Uses the worker's configuration file: the PostgreSQL store, `[unsubscribe]` and the
    /// `[http]` limits. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
}

/// Options of `tayori unsubscribe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The worker's configuration file (TOML); TAYORI_* variables override it.
    #[arg(long, short, env = "TAYORI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen here instead of `unsubscribe.listen`.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Runs a `tayori unsubscribe` command.
pub async fn run(command: UnsubscribeCommand) -> anyhow::Result<()> {
    match command {
        UnsubscribeCommand::Serve(args) => {
            let config = WorkerConfig::load(args.config.as_deref())?;
            let app = start(config, args.listen).await?;
            println!("tayori unsubscribe: serving http://{}/unsubscribe/{{token}}", app.addr);
            app.run_until_signal().await
        }
    }
}

/// The endpoint's routes on `store`, or `None` when the configuration writes no unsubscribe
/// links. Shared with `tayori admin serve`, which mounts them when `unsubscribe.listen` is unset.
pub fn router(config: &WorkerConfig, store: &PostgresStore) -> anyhow::Result<Option<Router>> {
    let Some(links) = config.unsubscribe.links()? else { return Ok(None) };
    let service = Arc::new(tayori_app::UnsubscribeService {
        store: Arc::new(PostgresSuppressions::new(store.pool().clone())),
        key: links.key,
        previous_keys: config.unsubscribe.previous_keys()?,
        clock: Arc::new(SystemClock),
    });
    Ok(Some(tayori_admin::unsubscribe_router(service, config.unsubscribe.limits())))
}

/// A running unsubscribe server.
pub struct UnsubscribeApp {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    store: PostgresStore,
}

/// Connects to the store and serves the endpoint on `listen`, else `unsubscribe.listen`.
pub async fn start(
    config: WorkerConfig,
    listen: Option<SocketAddr>,
) -> anyhow::Result<UnsubscribeApp> {
    let Some(listen) = listen.or(config.unsubscribe.listen) else {
        anyhow::bail!("tayori unsubscribe serve needs unsubscribe.listen (or --listen)");
    };
    let Some(postgres) = config.store.postgres() else {
        anyhow::bail!(
            "tayori unsubscribe serve needs PostgreSQL (store.kind = \"postgres\"): unsubscribes are recorded there"
        );
    };
    let limits = config.unsubscribe.serve_limits(&config.http)?;
    let store = PostgresStore::connect(&postgres)
        .await
        .context("cannot connect to PostgreSQL (store.url)")?;
    let Some(app) = router(&config, &store)? else {
        anyhow::bail!("tayori unsubscribe serve needs unsubscribe.base_url and unsubscribe.key");
    };
    // Probes for the process's own Deployment: alive, and ready while PostgreSQL answers.
    let readiness = Arc::new(tayori_postgres::PostgresAdminStore::new(store.pool().clone()));
    let app = app.route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let readiness = readiness.clone();
            async move {
                match readiness.ping().await {
                    Ok(()) => (StatusCode::OK, "ready"),
                    Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (unsubscribe.listen)"))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let server = tokio::spawn(tayori_http::serve(listener, app, limits, async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    info!(%addr, "serving GET/POST /unsubscribe/{{token}} (public, rate-limited)");
    Ok(UnsubscribeApp { addr, stop, server, store })
}

impl UnsubscribeApp {
    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        crate::signals::wait_for_stop().await;
        self.stop().await
    }

    /// Stops accepting, finishes the requests in flight, closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let served = self.server.await;
        self.store.close().await;
        served.context("the unsubscribe server panicked")?.context("the unsubscribe server failed")
    }
}
