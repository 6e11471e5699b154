//! `tayori admin ...`: operators' tokens, tenant pauses from the command line, and the server of
//! the admin API and console.
//!
//! `serve` reads the worker's configuration file (the same store, sender, templates and delivery
//! policy), because a resend or replay goes through the same path as a worker's send. The admin
//! store is PostgreSQL only.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};
use tayori_admin::AdminState;
use tayori_app::admin::{AdminService, AdminTokens, DeadLetterQueues, FailedResends, Principal};
use tayori_app::ports::{
    DeadLetterDepth, DeadLetterError, DeadLetterMessage, DeadLetters, EmailSender, Role,
    TenantScope,
};
use tayori_app::{ConsoleSessions, EventHandler, SessionPolicy};
use tayori_domain::{DeliveryStatus, EventType, TenantId};
use tayori_outbox::FileOutbox;
use tayori_postgres::{
    PostgresActivityBoard, PostgresAdminStore, PostgresConfig, PostgresStore, PostgresSuppressions,
};
use tayori_templates::TemplateSet;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::clock::SystemClock;
use crate::config::{SenderConfig, WorkerConfig};

/// `tayori admin ...`
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Manage operators' bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Pause and resume tenants, and discard their held events, without the admin server.
    ///
    /// Uses the worker's configuration file (the store and templates); audited under the
    /// command line's token id (00000000-…).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Act on deliveries without the admin server (resend a window's failures).
    ///
    /// Uses the worker's configuration file (the store, sender and templates: a resend sends);
    /// audited under the command line's token id (00000000-…).
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Serve the admin API (/api/v1) and the operator console (/console).
    ///
    /// Uses the worker's configuration file for the store (PostgreSQL), sender, templates and
    /// delivery policy: resends and replays go through the same path as the worker's sends.
    Serve(ServeArgs),
}

/// `tayori admin token ...`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only its SHA-256 is stored.
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List(DatabaseArgs),
    /// Revoke a token at once.
    Revoke(RevokeArgs),
}

/// `tayori admin tenant ...`
#[derive(Subcommand)]
pub enum TenantCommand {
    /// List the tenants paused now: since when, by whom, why, and their held events.
    Paused(ConfigArgs),
    /// Pause a tenant's sending for every worker: its events are held until it is resumed.
    Pause(TenantActionArgs),
    /// Lift a tenant's pause (an operator's or the reputation guard's); its held events go out
    /// within seconds.
    Resume(TenantActionArgs),
    /// While a tenant is paused, decide every one of its held events (or those of one event
    /// type) `rejected` with the reason instead of sending them after the resume.
    DiscardHeld(DiscardHeldArgs),
}

/// Options of `tayori admin tenant discard-held`.
#[derive(Args)]
pub struct DiscardHeldArgs {
    /// The tenant, the reason and the configuration file.
    #[command(flatten)]
    pub action: TenantActionArgs,
    /// Only the held events of this event type, e.g. account.deposit_completed (default: all).
    #[arg(long)]
    pub event_type: Option<String>,
}

/// `tayori admin deliveries ...`
#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// Resend a tenant's failed deliveries created in a time window that have no decided
    /// resend, after their cause is fixed: each mailed once (however often this runs, and beside
    /// the API's bulk resend; a resend left undecided is finished by the next run), newest
    /// first, 100 per step, until the window has none left.
    ResendFailed(ResendFailedArgs),
}

/// Options of `tayori admin deliveries resend-failed`.
#[derive(Args)]
pub struct ResendFailedArgs {
    /// The tenant, e.g. acme-invest.
    #[arg(long)]
    pub tenant: String,
    /// Created at or after (RFC 3339), e.g. 2026-12-06T01:00:00Z: the incident's start.
    #[arg(long)]
    pub from: String,
    /// Created before (RFC 3339).
    #[arg(long)]
    pub until: String,
    /// Only deliveries of this event type.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Why (recorded in the audit log for each resend).
    #[arg(long)]
    pub reason: String,
    /// List what would be resent; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The worker's configuration file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The worker's configuration file.
#[derive(Args)]
pub struct ConfigArgs {
    /// The worker's configuration file (TOML); TAYORI_* variables override it.
    #[arg(long, short, env = "TAYORI_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Options of `tayori admin tenant pause|resume|discard-held`.
#[derive(Args)]
pub struct TenantActionArgs {
    /// The tenant, e.g. acme-invest.
    pub tenant: String,
    /// Why (recorded in the audit log; with discard-held, in every discarded delivery too).
    #[arg(long)]
    pub reason: String,
    /// The worker's configuration file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Where the tokens are.
#[derive(Args)]
pub struct DatabaseArgs {
    /// The PostgreSQL database, e.g. postgres://tayori@db.internal:5432/tayori.
    #[arg(long, env = "TAYORI_DATABASE_URL")]
    pub database_url: String,
}

/// Options of `tayori admin token create`.
#[derive(Args)]
pub struct CreateArgs {
    /// What it may do: admin (everything), operator (read and act), viewer (read).
    #[arg(long)]
    pub role: String,
    /// A tenant it may see; repeat for several. Without any, it sees every tenant.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// When it stops working: an RFC 3339 time, or a duration from now such as 12h or 30d.
    #[arg(long)]
    pub expires: Option<String>,
    /// A note on whom it is for.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Where the tokens are.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Options of `tayori admin token revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The token's id (from `tayori admin token list`).
    pub token_id: String,
    /// Where the tokens are.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Options of `tayori admin serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The worker's configuration file (TOML); TAYORI_* variables override it.
    #[arg(long, short, env = "TAYORI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081", env = "TAYORI_ADMIN_LISTEN")]
    pub listen: SocketAddr,
    /// Mark the console's session cookie Secure (sent over HTTPS only). Default: yes, except
    /// when listening on a loopback address (plain HTTP on a developer's machine);
    /// `--secure-cookies=false` turns it off elsewhere (only behind nothing but plain HTTP).
    #[arg(
        long,
        env = "TAYORI_ADMIN_SECURE_COOKIES",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub secure_cookies: Option<bool>,
    /// A console session ends after this many minutes without a request.
    #[arg(
        long,
        default_value_t = 30,
        env = "TAYORI_ADMIN_SESSION_IDLE_MINUTES",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub session_idle_minutes: u32,
    /// A console session ends this many hours after sign-in, however busy.
    #[arg(
        long,
        default_value_t = 12,
        env = "TAYORI_ADMIN_SESSION_ABSOLUTE_HOURS",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub session_absolute_hours: u32,
    /// Console sign-in attempts a minute one client address may make; beyond them it is
    /// answered 429 (a burst of this many, then one every 60/n seconds).
    #[arg(
        long,
        default_value_t = 10,
        env = "TAYORI_ADMIN_SIGN_IN_ATTEMPTS_PER_MINUTE",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub sign_in_attempts_per_minute: u32,
}

impl ServeArgs {
    /// The console's settings these options give.
    pub fn console(&self) -> ConsoleSettings {
        ConsoleSettings {
            secure_cookies: secure_cookies(self.listen, self.secure_cookies),
            sessions: SessionPolicy {
                idle: Duration::minutes(i64::from(self.session_idle_minutes)),
                absolute: Duration::hours(i64::from(self.session_absolute_hours)),
            },
            sign_in_attempts_per_minute: NonZeroU32::new(self.sign_in_attempts_per_minute)
                .unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Whether the session cookie is `Secure`: as told, else everywhere but on a loopback listener.
/// Browsers treat `http://localhost` as secure anyway; `127.0.0.1` over plain HTTP is the
/// developer's case this spares.
pub fn secure_cookies(listen: SocketAddr, told: Option<bool>) -> bool {
    told.unwrap_or(!listen.ip().is_loopback())
}

/// The console's sessions and cookie, as `tayori admin serve` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Mark the session cookie `Secure`.
    pub secure_cookies: bool,
    /// How long sessions live.
    pub sessions: SessionPolicy,
    /// Sign-in attempts a minute per client address.
    pub sign_in_attempts_per_minute: NonZeroU32,
}

impl ConsoleSettings {
    /// The defaults, with the cookie `Secure` or not.
    pub fn with_secure_cookies(secure_cookies: bool) -> Self {
        Self {
            secure_cookies,
            sessions: SessionPolicy::default(),
            sign_in_attempts_per_minute: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Runs a `tayori admin` command.
pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Token(command) => run_token(command).await,
        AdminCommand::Tenant(command) => run_tenant(command).await,
        AdminCommand::Deliveries(DeliveriesCommand::ResendFailed(args)) => {
            resend_failed(args).await
        }
        AdminCommand::Serve(args) => {
            let config = WorkerConfig::load(args.config.as_deref())?;
            let console = args.console();
            info!(
                secure_cookies = console.secure_cookies,
                session_idle_minutes = args.session_idle_minutes,
                session_absolute_hours = args.session_absolute_hours,
                "console sessions"
            );
            let app = start_with(config, args.listen, console).await?;
            println!("tayori admin: console at http://{}/console, API at /api/v1", app.addr);
            app.run_until_signal().await
        }
    }
}

async fn tokens(database: &DatabaseArgs) -> anyhow::Result<(PostgresStore, AdminTokens)> {
    let store = PostgresStore::connect(&PostgresConfig::new(&database.database_url))
        .await
        .context("cannot connect to the database given by --database-url")?;
    let admin = Arc::new(PostgresAdminStore::new(store.pool().clone()));
    Ok((store, AdminTokens { admin, clock: Arc::new(SystemClock) }))
}

async fn run_token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let role: Role = args.role.parse()?;
            let scope = if args.tenants.is_empty() {
                TenantScope::All
            } else {
                let tenants = args
                    .tenants
                    .iter()
                    .map(|t| TenantId::parse(t).with_context(|| format!("--tenant {t:?}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                TenantScope::Only(tenants)
            };
            let expires =
                args.expires.as_deref().map(|e| parse_expiry(e, Utc::now())).transpose()?;
            let (store, tokens) = tokens(&args.database).await?;
            let issued =
                tokens.issue(None, role, scope, &args.label, expires, random_bytes()?).await?;
            store.close().await;
            eprintln!(
                "token {} ({role}) created; it is shown once, keep it now:",
                issued.record.token_id
            );
            println!("{}", issued.secret);
            Ok(())
        }
        TokenCommand::List(database) => {
            let (store, tokens) = tokens(&database).await?;
            let list = tokens.list(None).await?;
            store.close().await;
            for token in list {
                let tenants = token
                    .scope
                    .filter()
                    .map(|ts| ts.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "*".into());
                let state = match (token.revoked_at, token.expires_at) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, Some(at)) if at <= Utc::now() => format!("expired {at}"),
                    (None, Some(at)) => format!("expires {at}"),
                    (None, None) => "active".into(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    token.token_id, token.role, tenants, state, token.label
                );
            }
            Ok(())
        }
        TokenCommand::Revoke(args) => {
            let (store, tokens) = tokens(&args.database).await?;
            let revoked = tokens.revoke(None, &args.token_id).await;
            store.close().await;
            revoked?;
            println!("token {} revoked", args.token_id);
            Ok(())
        }
    }
}

async fn run_tenant(command: TenantCommand) -> anyhow::Result<()> {
    let file = match &command {
        TenantCommand::Paused(args) => &args.config,
        TenantCommand::Pause(args) | TenantCommand::Resume(args) => &args.config.config,
        TenantCommand::DiscardHeld(args) => &args.action.config.config,
    };
    let config = WorkerConfig::load(file.as_deref())?;
    // Nothing here sends: a discard decides events without a send.
    let (service, store) = admin_service(&config, Sends::Never).await?;
    let who = Principal::command_line();
    let tenant = |raw: &str| TenantId::parse(raw).with_context(|| format!("tenant {raw:?}"));
    let result = async {
        match command {
            TenantCommand::Paused(_) => {
                for pause in service.paused_tenants(&who, None).await? {
                    let by = pause.paused_by.as_deref().unwrap_or("reputation guard");
                    println!(
                        "{}\tsince {}\tby {by}\t{} held{}\t{}",
                        pause.tenant,
                        pause.paused_at.to_rfc3339(),
                        pause.held_events,
                        pause
                            .oldest_held_at
                            .map(|at| format!(" (oldest {})", at.to_rfc3339()))
                            .unwrap_or_default(),
                        pause.reason
                    );
                }
            }
            TenantCommand::Pause(args) => {
                let tenant = tenant(&args.tenant)?;
                match service.pause_tenant(&who, &tenant, &args.reason).await? {
                    true => println!("{tenant} paused: its events are held until it is resumed"),
                    false => println!("{tenant} was paused already"),
                }
            }
            TenantCommand::Resume(args) => {
                let tenant = tenant(&args.tenant)?;
                match service.resume_tenant(&who, &tenant, &args.reason).await? {
                    true => println!("{tenant} resumed: its held events go out within seconds"),
                    false => println!("{tenant} was not paused"),
                }
            }
            TenantCommand::DiscardHeld(DiscardHeldArgs { action: args, event_type }) => {
                let tenant = tenant(&args.tenant)?;
                let event_type = event_type
                    .map(|raw| {
                        EventType::parse(raw.trim()).with_context(|| format!("event type {raw:?}"))
                    })
                    .transpose()?;
                let mut discarded = 0;
                loop {
                    let done = service
                        .discard_held(&who, &tenant, event_type.as_ref(), &args.reason)
                        .await?;
                    discarded += done.discarded;
                    // Progress on stderr; the total on stdout.
                    eprintln!(
                        "{discarded} discarded, {} could not be now, {} still held",
                        done.left, done.remaining
                    );
                    if done.discarded == 0 || done.remaining == 0 {
                        break;
                    }
                }
                let of_type = event_type.map(|t| format!(" ({t})")).unwrap_or_default();
                println!(
                    "{discarded} held events of {tenant}{of_type} discarded (decided rejected)"
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    store.close().await;
    result
}

async fn resend_failed(args: ResendFailedArgs) -> anyhow::Result<()> {
    let time = |name: &str, raw: &str| {
        DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| format!("--{name} {raw:?} is not an RFC 3339 time"))
    };
    let tenant =
        TenantId::parse(&args.tenant).with_context(|| format!("tenant {:?}", args.tenant))?;
    let event_type = args
        .event_type
        .as_deref()
        .map(|raw| EventType::parse(raw.trim()).with_context(|| format!("event type {raw:?}")))
        .transpose()?;
    let (from, until) = (time("from", &args.from)?, time("until", &args.until)?);
    let config = WorkerConfig::load(args.config.config.as_deref())?;
    // A dry run needs no sender at all.
    let sends = if args.dry_run { Sends::Never } else { Sends::AsConfigured };
    let (service, store) = admin_service(&config, sends).await?;
    let who = Principal::command_line();
    let result = async {
        let (mut taken, mut resent, mut not_resent, mut undecided) = (0u64, 0u64, 0u64, 0u64);
        let mut after = None;
        loop {
            let request = FailedResends {
                from,
                until,
                event_type: event_type.clone(),
                after,
                limit: 100,
                dry_run: args.dry_run,
            };
            let page = service.resend_failed(&who, &tenant, request, &args.reason).await?;
            for item in &page.items {
                taken += 1;
                let origin = item.origin.delivery_id;
                // One line per failed delivery on stdout; progress on stderr.
                match &item.result {
                    None => println!("{origin}	would be resent"),
                    Some(Ok(done)) => {
                        resent += 1;
                        undecided += u64::from(done.status == DeliveryStatus::Processing);
                        let new = done.delivery_id.map(|id| id.to_string()).unwrap_or_default();
                        let why = done.reason.as_deref().unwrap_or_default();
                        println!("{origin}	resent as {new}	{}	{why}", done.status);
                    }
                    Some(Err(error)) => {
                        not_resent += 1;
                        println!("{origin}	not resent	{error}");
                    }
                }
            }
            eprintln!("{taken} failed deliveries taken: {resent} resent, {not_resent} not");
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let done = if args.dry_run { "would be resent" } else { "resent" };
        let count = if args.dry_run { taken - not_resent } else { resent };
        eprintln!("{count} of {taken} failed deliveries of {tenant} {done}");
        if undecided > 0 {
            eprintln!(
                "{undecided} of the resends are not decided yet (throttled, or their key in \
                 flight elsewhere): run the same command again to finish them"
            );
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    store.close().await;
    result
}

/// The command line's sender: its commands decide events (a discard), never send them.
struct NoSends;

#[async_trait::async_trait]
impl EmailSender for NoSends {
    async fn send(
        &self,
        _email: &tayori_domain::OutgoingEmail,
    ) -> Result<tayori_app::ports::SentEmail, tayori_app::ports::SendError> {
        Err(tayori_app::ports::SendError::Unavailable {
            reason: "the command line does not send".into(),
        })
    }
}

/// 48 bytes from the operating system's secure source: a token's secret and id.
fn random_bytes() -> anyhow::Result<[u8; 48]> {
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no secure randomness: {e}"))?;
    Ok(bytes)
}

/// `--expires`: an RFC 3339 time or `<n>h` / `<n>d` from now.
pub fn parse_expiry(raw: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number.parse().with_context(|| {
        format!("--expires {raw:?}: give an RFC 3339 time or a duration like 12h or 30d")
    })?;
    let length = match unit {
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => bail!("--expires {raw:?}: the unit must be h or d"),
    };
    if n <= 0 {
        bail!("--expires {raw:?}: must be in the future");
    }
    Ok(now + length)
}

/// Whether the admin use cases send (resends and replays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sends {
    /// Through the configuration's sender, as the worker does (`tayori admin serve`).
    AsConfigured,
    /// Never (the command line's tenant commands).
    Never,
}

/// The admin use cases on the configuration's PostgreSQL store and templates (migrations
/// applied); the store is returned for closing.
async fn admin_service(
    config: &WorkerConfig,
    sends: Sends,
) -> anyhow::Result<(Arc<AdminService>, PostgresStore)> {
    let Some(postgres) = config.store.postgres() else {
        bail!(
            "tayori admin serve and tayori admin tenant need PostgreSQL (store.kind = \"postgres\"): the admin store is PostgreSQL only"
        );
    };
    let store = PostgresStore::connect(&postgres)
        .await
        .context("cannot connect to PostgreSQL (store.url)")?;
    store.migrate().await.context("migrations failed")?;
    let templates = Arc::new(TemplateSet::load(&config.templates.dir).with_context(|| {
        format!("the templates in {} have problems", config.templates.dir.display())
    })?);
    let sender: Arc<dyn EmailSender> = match (sends, &config.sender) {
        (Sends::Never, _) => Arc::new(NoSends),
        // The same senders the worker can use.
        (Sends::AsConfigured, SenderConfig::Outbox(outbox)) => {
            Arc::new(FileOutbox::new(outbox.clone()))
        }
        // The AWS settings are loaded only when they are used.
        (Sends::AsConfigured, ses @ SenderConfig::Ses(_)) => {
            crate::worker::email_sender(ses, &templates, &crate::worker::aws_config().await).await?
        }
    };
    let clock = Arc::new(SystemClock);
    let held = Arc::new(tayori_postgres::PostgresHeldEvents::new(store.pool().clone()));
    let handler = Arc::new(EventHandler {
        store: Arc::new(store.clone()),
        tenants: templates.clone(),
        suppressions: Arc::new(PostgresSuppressions::new(store.pool().clone())),
        renderer: templates.clone(),
        sender,
        clock: clock.clone(),
        // Resent subscription mail carries its unsubscribe link like the worker's.
        policy: tayori_app::DeliveryPolicy {
            unsubscribe: config.unsubscribe.links()?,
            ..config.delivery.policy()
        },
        worker_id: format!("admin-{}", std::process::id()),
        // Resends of a paused tenant are held like the worker's events.
        pauses: tayori_app::handle_event::SendingPauses::with_shared(
            Arc::new(tayori_postgres::PostgresFeedbackStore::new(store.pool().clone())),
            // An operator's resend right after a resume should not wait for a cached pause.
            std::time::Duration::ZERO,
        )
        // The workers' release rounds send them after the resume.
        .holding_in(held.clone()),
    });
    let service = Arc::new(AdminService {
        deliveries: Arc::new(store.clone()),
        admin: Arc::new(PostgresAdminStore::new(store.pool().clone())),
        handler,
        previews: templates,
        held,
        clock,
        reputation_thresholds: config.feedback.thresholds(),
        // The command line's tenant commands never look at the queues.
        dead_letters: match sends {
            Sends::AsConfigured => DeadLetterQueues {
                events: Some(Arc::new(LazyDeadLetters::new(config.queue.queue_url.clone()))),
                feedback: config
                    .feedback
                    .queue_url
                    .clone()
                    .map(|url| Arc::new(LazyDeadLetters::new(url)) as Arc<dyn DeadLetters>),
            },
            Sends::Never => DeadLetterQueues::default(),
        },
        activity: Some(Arc::new(PostgresActivityBoard::new(store.pool().clone()))),
        unknown_send_window: std::time::Duration::from_secs(
            config.feedback.unknown_send_window_seconds,
        ),
    });
    Ok((service, store))
}

/// A queue's dead-letter queue, with the AWS settings loaded on its first use: the
/// admin server starts without reaching for AWS (and without the region lookup's wait where
/// none is set), and a setup that never opens the page pays nothing.
struct LazyDeadLetters {
    queue_url: String,
    queue: tokio::sync::OnceCell<tayori_sqs::SqsDeadLetters>,
}

impl LazyDeadLetters {
    fn new(queue_url: String) -> Self {
        Self { queue_url, queue: tokio::sync::OnceCell::new() }
    }

    async fn queue(&self) -> &tayori_sqs::SqsDeadLetters {
        self.queue
            .get_or_init(|| async {
                let client = aws_sdk_sqs::Client::new(&crate::worker::aws_config().await);
                tayori_sqs::SqsDeadLetters::new(client, self.queue_url.clone())
            })
            .await
    }
}

#[async_trait::async_trait]
impl DeadLetters for LazyDeadLetters {
    async fn depth(&self) -> Result<DeadLetterDepth, DeadLetterError> {
        self.queue().await.depth().await
    }
    async fn peek(&self, limit: u32) -> Result<Vec<DeadLetterMessage>, DeadLetterError> {
        self.queue().await.peek(limit).await
    }
    async fn redrive(&self, max: u64) -> Result<u64, DeadLetterError> {
        self.queue().await.redrive(max).await
    }
}

/// A running admin server.
pub struct AdminApp {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Connects everything and starts serving, with the console's default sessions.
pub async fn start(
    config: WorkerConfig,
    listen: SocketAddr,
    secure_cookies: bool,
) -> anyhow::Result<AdminApp> {
    start_with(config, listen, ConsoleSettings::with_secure_cookies(secure_cookies)).await
}

/// Connects everything and starts serving.
pub async fn start_with(
    config: WorkerConfig,
    listen: SocketAddr,
    console: ConsoleSettings,
) -> anyhow::Result<AdminApp> {
    let limits = config.http.limits()?;
    let (service, store) = admin_service(&config, Sends::AsConfigured).await?;
    let sessions = Arc::new(ConsoleSessions {
        store: Arc::new(PostgresAdminStore::new(store.pool().clone())),
        tokens: service.token_manager(),
        clock: Arc::new(SystemClock),
        policy: console.sessions,
    });
    let mut app = tayori_admin::router(AdminState::new(
        service,
        sessions,
        console.secure_cookies,
        tayori_admin::SignInQuota::per_minute(console.sign_in_attempts_per_minute),
    ));
    // The public one-click unsubscribe endpoint, when the worker writes unsubscribe links and
    // no listener of its own is configured (`tayori unsubscribe serve`).
    match (config.unsubscribe.listen, crate::unsubscribe_cmd::router(&config, &store)?) {
        (None, Some(unsubscribe)) => {
            app = app.merge(unsubscribe);
            info!("serving POST/GET /unsubscribe/{{token}} (public, rate-limited)");
        }
        (Some(own), Some(_)) => {
            info!(listen = %own, "not serving /unsubscribe: unsubscribe.listen gives it a listener of its own (tayori unsubscribe serve)");
        }
        (_, None) => {}
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let server = tokio::spawn(async move {
        // The peer address (ConnectInfo) is what sign-in throttling and its audit know a client by.
        tayori_http::serve(listener, app, limits, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
    });
    info!(%addr, "admin API and console listening");
    Ok(AdminApp { addr, stop, server })
}

impl AdminApp {
    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        crate::signals::wait_for_stop().await;
        self.stop().await
    }

    /// Stops accepting, finishes the requests in flight.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server.await.context("the admin server panicked")?.context("the admin server failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_times_and_durations() {
        let now = Utc::now();
        assert_eq!(parse_expiry("12h", now).unwrap_or(now), now + Duration::hours(12));
        assert_eq!(parse_expiry("30d", now).unwrap_or(now), now + Duration::days(30));
        assert!(parse_expiry("2030-01-01T00:00:00Z", now).is_ok());
        assert!(parse_expiry("soon", now).is_err());
        assert!(parse_expiry("0d", now).is_err());
        assert!(parse_expiry("3w", now).is_err());
    }

    #[test]
    fn session_cookies_are_secure_except_on_loopback_unless_told() {
        let at = |raw: &str| raw.parse::<SocketAddr>().unwrap_or_else(|_| panic!("{raw}"));
        assert!(secure_cookies(at("0.0.0.0:8080"), None));
        assert!(secure_cookies(at("10.0.3.7:8080"), None));
        assert!(secure_cookies(at("[::]:8080"), None));
        assert!(!secure_cookies(at("127.0.0.1:8081"), None));
        assert!(!secure_cookies(at("[::1]:8081"), None));
        assert!(secure_cookies(at("127.0.0.1:8081"), Some(true)));
        assert!(!secure_cookies(at("0.0.0.0:8080"), Some(false)));
    }

    #[test]
    fn serve_options_default_to_secure_cookies_and_bounded_sessions() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let parse = |args: &[&str]| {
            let mut all = vec!["tayori"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|cli| cli.serve.console())
        };
        let public = parse(&["--listen", "0.0.0.0:8080"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(public.secure_cookies);
        assert_eq!(public.sessions, SessionPolicy::default());
        assert_eq!(public.sessions.idle, Duration::minutes(30));
        assert_eq!(public.sessions.absolute, Duration::hours(12));
        assert_eq!(public.sign_in_attempts_per_minute.get(), 10);
        let local = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!local.secure_cookies, "the default listener is 127.0.0.1");
        assert!(parse(&["--secure-cookies"]).is_ok_and(|c| c.secure_cookies));
        assert!(
            parse(&["--listen", "0.0.0.0:8080", "--secure-cookies=false"])
                .is_ok_and(|c| !c.secure_cookies)
        );
        let short = parse(&["--session-idle-minutes", "5", "--session-absolute-hours", "1"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(short.sessions.idle, Duration::minutes(5));
        assert_eq!(short.sessions.absolute, Duration::hours(1));
        assert!(parse(&["--session-idle-minutes", "0"]).is_err());
    }
}
