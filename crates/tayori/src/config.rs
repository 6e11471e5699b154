//! The worker's configuration: a TOML file, then `TAYORI_*` environment overrides
//! (`TAYORI_QUEUE__URL` sets `queue.url`), validated at start with errors that name the setting.
//! `docs/configuration.md` documents every setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use tayori_app::ports::{FeedbackPolicy, ReputationGuard, ReputationThresholds};
use tayori_app::{DeliveryPolicy, ReleaseSettings};
use tayori_outbox::OutboxConfig;
use tayori_postgres::{PostgresConfig, SessionLimits};
use tayori_ses::SesConfig;
use tayori_sqs::ConsumerConfig;

/// Everything `tayori worker` reads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Where delivery state lives.
    pub store: StoreConfig,
    /// The events queue.
    pub queue: ConsumerConfig,
    /// How emails leave.
    pub sender: SenderConfig,
    /// The tenants' templates.
    #[serde(default)]
    pub templates: TemplatesConfig,
    /// Leases and retries.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`[http] listen`).
    #[serde(default)]
    pub http: crate::http_health::HttpConfig,
    /// This worker's name in claims and logs; defaults to `<hostname>-<pid>`.
    #[serde(default)]
    pub worker_id: Option<String>,
    /// The SES feedback queue (`[feedback] queue_url`); none by default.
    #[serde(default)]
    pub feedback: FeedbackConfig,
    /// One-click unsubscribe links in subscription mail (`[unsubscribe]`); none by default.
    #[serde(default)]
    pub unsubscribe: UnsubscribeConfig,
    /// Events queues of their own for tenants that need hard isolation (`[[dedicated_queues]]`),
    /// consumed beside `[queue]` with its settings; none by default.
    #[serde(default)]
    pub dedicated_queues: Vec<DedicatedQueue>,
}

/// An events queue of its own for one or a few tenants (`[[dedicated_queues]]`): consumed with
/// `[queue]`'s settings and a share of `queue.max_in_flight` by weight.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DedicatedQueue {
    /// The queue's URL.
    pub url: String,
    /// Its share of the worker's slots against `queue.weight` and the other dedicated queues'.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// One-click unsubscribe (docs/feedback.md): where the public endpoint is and the key its tokens
/// are signed with. Without both, subscription mail carries no `List-Unsubscribe`.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnsubscribeConfig {
    /// The public base URL the unsubscribe endpoint is served under (`https://mail.example.com`).
    pub base_url: Option<String>,
    /// The signing key, at least 32 bytes (`TAYORI_UNSUBSCRIBE__KEY`); keep it secret.
    pub key: Option<String>,
    /// Keys links were signed with before a rotation: still accepted by the endpoint, never used
    /// to sign (`TAYORI_UNSUBSCRIBE__PREVIOUS_KEYS='["…"]'`); remove them once their links expired.
    pub previous_keys: Vec<String>,
    /// How long a link works after the email is sent, in days (default 60).
    pub valid_days: Option<u64>,
    /// Requests a second with valid tokens the public endpoint accepts in all, beyond which it
    /// answers 429 (default 20).
    pub requests_per_second: Option<u32>,
    /// Where `tayori unsubscribe serve` serves the endpoint (`0.0.0.0:8081`). Set: `tayori admin
    /// serve` no longer serves `/unsubscribe`. Unset: the admin listener serves it.
    pub listen: Option<std::net::SocketAddr>,
    /// The largest request body of the unsubscribe listener (default 64 KiB).
    pub max_body_bytes: Option<usize>,
    /// Requests a minute with valid tokens from one client address (default 60).
    pub per_client_per_minute: Option<u32>,
    /// Requests a minute with valid tokens for one recipient (default 10).
    pub per_recipient_per_minute: Option<u32>,
    /// Requests a minute with invalid tokens from one client address before it gets 429
    /// instead of 400 (default 30).
    pub invalid_per_client_per_minute: Option<u32>,
    /// Proxies in front that append the client to `X-Forwarded-For` (default 0: the header is
    /// ignored; 1 behind one load balancer).
    pub trusted_proxy_hops: usize,
}

impl std::fmt::Debug for UnsubscribeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeConfig")
            .field("base_url", &self.base_url)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("previous_keys", &vec!["***"; self.previous_keys.len()])
            .field("valid_days", &self.valid_days)
            .field("requests_per_second", &self.requests_per_second)
            .field("listen", &self.listen)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("per_client_per_minute", &self.per_client_per_minute)
            .field("per_recipient_per_minute", &self.per_recipient_per_minute)
            .field("invalid_per_client_per_minute", &self.invalid_per_client_per_minute)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .finish()
    }
}

impl UnsubscribeConfig {
    /// The endpoint's rate (at least 1).
    pub fn requests_per_second(&self) -> std::num::NonZeroU32 {
        std::num::NonZeroU32::new(self.requests_per_second.unwrap_or(20))
            .unwrap_or(std::num::NonZeroU32::MIN)
    }

    /// The endpoint's rate limits.
    pub fn limits(&self) -> tayori_admin::UnsubscribeLimits {
        let per_minute = |value: Option<u32>, default: u32| {
            let n = std::num::NonZeroU32::new(value.unwrap_or(default))
                .unwrap_or(std::num::NonZeroU32::MIN);
            tayori_admin::Quota::per_minute(n)
        };
        tayori_admin::UnsubscribeLimits {
            overall: tayori_admin::Quota::per_second(self.requests_per_second()),
            per_client: per_minute(self.per_client_per_minute, 60),
            per_recipient: per_minute(self.per_recipient_per_minute, 10),
            invalid_per_client: per_minute(self.invalid_per_client_per_minute, 30),
            trusted_proxy_hops: self.trusted_proxy_hops,
        }
    }

    /// The unsubscribe listener's server limits: `[http]`'s, with its own body limit.
    pub fn serve_limits(
        &self,
        http: &crate::http_health::HttpConfig,
    ) -> anyhow::Result<tayori_http::ServeLimits> {
        let max_body_bytes = self.max_body_bytes.unwrap_or(64 * 1024);
        anyhow::ensure!(
            max_body_bytes >= 1,
            "invalid configuration: unsubscribe.max_body_bytes must be at least 1"
        );
        Ok(tayori_http::ServeLimits { max_body_bytes, ..http.limits()? })
    }

    /// The keys of a rotation still accepted; an error names a bad one.
    pub fn previous_keys(&self) -> anyhow::Result<Vec<tayori_domain::UnsubscribeKey>> {
        anyhow::ensure!(
            self.previous_keys.is_empty() || self.key.is_some(),
            "invalid configuration: unsubscribe.previous_keys needs unsubscribe.key"
        );
        self.previous_keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                tayori_domain::UnsubscribeKey::new(key.as_bytes()).map_err(|e| {
                    anyhow::anyhow!("invalid configuration: unsubscribe.previous_keys[{i}]: {e}")
                })
            })
            .collect()
    }

    /// The links the use case writes, or `None` when not configured; an error names a bad setting.
    pub fn links(&self) -> anyhow::Result<Option<tayori_app::UnsubscribeLinks>> {
        self.previous_keys()?;
        let (base_url, key) = match (&self.base_url, &self.key) {
            (None, None) => return Ok(None),
            (Some(base_url), Some(key)) => (base_url, key),
            _ => anyhow::bail!(
                "invalid configuration: unsubscribe.base_url and unsubscribe.key go together"
            ),
        };
        let scheme_ok = base_url.starts_with("https://") || base_url.starts_with("http://");
        anyhow::ensure!(
            scheme_ok
                && base_url.is_ascii()
                && !base_url.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()),
            "invalid configuration: unsubscribe.base_url must be an http(s) URL without spaces"
        );
        let key = tayori_domain::UnsubscribeKey::new(key.as_bytes())
            .map_err(|e| anyhow::anyhow!("invalid configuration: unsubscribe.key: {e}"))?;
        let days = self.valid_days.unwrap_or(60);
        anyhow::ensure!(
            days >= 1,
            "invalid configuration: unsubscribe.valid_days must be at least 1"
        );
        Ok(Some(tayori_app::UnsubscribeLinks {
            base_url: base_url.clone(),
            key,
            valid_for: Duration::from_secs(days * 86_400),
        }))
    }
}

/// SES feedback (docs/feedback.md): the SQS queue SES events arrive on, through a configuration
/// set's event destination → SNS → SQS, or EventBridge → SQS. Polled like `[queue]`, with its
/// settings (pollers, batch size, visibility, backoff).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// The feedback queue's URL; unset: the worker consumes no feedback.
    pub queue_url: Option<String>,
    /// Transient bounces of one address within the window that suppress it; 0: never.
    pub transient_bounce_limit: u32,
    /// The window transient bounces are counted in, in hours.
    pub transient_bounce_window_hours: u64,
    /// Pause a tenant whose bounce or complaint rate over the window is above its threshold;
    /// an operator resumes it (`POST /api/v1/tenants/{tenant}/resume`).
    pub reputation_pause: bool,
    /// The window of the reputation rates, in hours.
    pub reputation_window_hours: u64,
    /// Bounced / sent above which a tenant is paused (0.04: below the 5 % at which AWS reviews
    /// an account).
    pub reputation_bounce_rate: f64,
    /// Complained / sent above which a tenant is paused (0.0008: below AWS's 0.1 %).
    pub reputation_complaint_rate: f64,
    /// Sent deliveries in the window below which a tenant's rates are not judged.
    pub reputation_min_sent: u64,
    /// How long a delivery whose send's result is unknown (`unknown`) waits for an SES report
    /// (which makes it sent, reconciled) before a resend may take it, in seconds.
    pub unknown_send_window_seconds: u64,
}

/// The default of `[feedback] unknown_send_window_seconds`: 4 h. SES publishes its Send event
/// within seconds and Delivery or Bounce within minutes; hours cover a feedback queue that
/// was stopped or backed up.
pub const DEFAULT_UNKNOWN_SEND_WINDOW_SECONDS: u64 = 4 * 3600;

impl Default for FeedbackConfig {
    fn default() -> Self {
        let policy = FeedbackPolicy::default();
        let thresholds = ReputationThresholds::default();
        Self {
            queue_url: None,
            transient_bounce_limit: policy.transient_bounce_limit,
            transient_bounce_window_hours: policy.transient_bounce_window.as_secs() / 3600,
            reputation_pause: policy.reputation.is_some(),
            reputation_window_hours: policy.reputation.map_or(24, |g| g.window.as_secs() / 3600),
            reputation_bounce_rate: thresholds.bounce_rate,
            reputation_complaint_rate: thresholds.complaint_rate,
            reputation_min_sent: thresholds.min_sent,
            unknown_send_window_seconds: DEFAULT_UNKNOWN_SEND_WINDOW_SECONDS,
        }
    }
}

impl FeedbackConfig {
    /// The consumer settings for the feedback queue, when one is configured: `[queue]`'s, with
    /// this URL.
    pub fn consumer(&self, events: &ConsumerConfig) -> Option<ConsumerConfig> {
        let url = self.queue_url.as_ref().filter(|u| !u.trim().is_empty())?;
        Some(ConsumerConfig { queue_url: url.clone(), ..events.clone() })
    }

    /// The use case's policy.
    pub fn policy(&self) -> FeedbackPolicy {
        FeedbackPolicy {
            transient_bounce_limit: self.transient_bounce_limit,
            transient_bounce_window: Duration::from_secs(
                self.transient_bounce_window_hours.saturating_mul(3600),
            ),
            reputation: self.reputation_pause.then(|| ReputationGuard {
                window: Duration::from_secs(self.reputation_window_hours.saturating_mul(3600)),
                thresholds: self.thresholds(),
            }),
        }
    }

    /// The rates the guard pauses at, also what the admin API judges tenants against.
    pub fn thresholds(&self) -> ReputationThresholds {
        ReputationThresholds {
            bounce_rate: self.reputation_bounce_rate,
            complaint_rate: self.reputation_complaint_rate,
            min_sent: self.reputation_min_sent,
        }
    }
}

/// The delivery store. Its `Debug` masks the database password.
#[derive(Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// PostgreSQL: what production runs.
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: String,
        /// Pool size.
        #[serde(default = "default_pool")]
        max_connections: u32,
        /// Group commit: write batches (transactions) at once, each on a connection of the pool.
        #[serde(default = "default_write_batches_in_flight")]
        write_batches_in_flight: usize,
        /// Group commit: at most this many writes in one batch.
        #[serde(default = "default_max_writes_per_batch")]
        max_writes_per_batch: usize,
        /// Timeouts and keepalive of every connection (`[store.session]`, in seconds).
        #[serde(default)]
        session: SessionLimits,
    },
    /// One SQLite file: for a single worker on one machine.
    Sqlite {
        /// The database file (created if missing).
        path: PathBuf,
    },
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Postgres { .. } => {
                f.debug_tuple("Postgres").field(&self.postgres()).finish()
            }
            StoreConfig::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
        }
    }
}

fn default_pool() -> u32 {
    tayori_postgres::DEFAULT_MAX_CONNECTIONS
}

fn default_write_batches_in_flight() -> usize {
    tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT
}

fn default_max_writes_per_batch() -> usize {
    tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH
}

/// The most writes one batch may carry: a batch's rows are held in memory and sent as arrays,
/// and a claim carries the event (up to 1 MiB of body).
const MAX_WRITES_PER_BATCH_LIMIT: usize = 4096;

impl StoreConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let StoreConfig::Postgres {
            max_connections,
            write_batches_in_flight,
            max_writes_per_batch,
            session,
            ..
        } = self
        else {
            return Ok(());
        };
        let day = Duration::from_secs(86_400);
        for (setting, limit) in [
            ("statement_timeout", session.statement_timeout),
            ("lock_timeout", session.lock_timeout),
            ("idle_in_transaction_timeout", session.idle_in_transaction_timeout),
        ] {
            anyhow::ensure!(
                limit <= day,
                "store.session.{setting} must be between 0 (no limit) and 86400 seconds"
            );
        }
        anyhow::ensure!(
            (Duration::from_secs(1)..=day).contains(&session.keepalive_idle),
            "store.session.keepalive_idle must be between 1 and 86400 seconds"
        );
        anyhow::ensure!(*max_connections >= 1, "store.max_connections must be at least 1");
        // Each batch holds a connection of the pool while it runs, so there cannot be more
        // batches than connections (and the event path's reads want some left over).
        anyhow::ensure!(
            (1..=*max_connections as usize).contains(write_batches_in_flight),
            "store.write_batches_in_flight ({write_batches_in_flight}) must be at least 1 and at \
             most store.max_connections ({max_connections})"
        );
        anyhow::ensure!(
            (1..=MAX_WRITES_PER_BATCH_LIMIT).contains(max_writes_per_batch),
            "store.max_writes_per_batch ({max_writes_per_batch}) must be between 1 and \
             {MAX_WRITES_PER_BATCH_LIMIT}"
        );
        Ok(())
    }

    /// The PostgreSQL settings, when that is the store.
    pub fn postgres(&self) -> Option<PostgresConfig> {
        match self {
            StoreConfig::Postgres {
                url,
                max_connections,
                write_batches_in_flight,
                max_writes_per_batch,
                session,
            } => {
                let mut config = PostgresConfig::new(url);
                config.max_connections = *max_connections;
                config.write_batches_in_flight = *write_batches_in_flight;
                config.max_writes_per_batch = *max_writes_per_batch;
                config.session = *session;
                Some(config)
            }
            StoreConfig::Sqlite { .. } => None,
        }
    }
}

/// How emails leave.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SenderConfig {
    /// Amazon SES v2: what production runs. Where SES is (region, endpoint, credentials) comes
    /// from the AWS SDK's standard chain, not from here.
    Ses(SesConfig),
    /// Write `.eml` files to a directory (staging without SES, load tests).
    Outbox(OutboxConfig),
}

impl SenderConfig {
    /// The outbox settings, when that is the sender.
    pub fn outbox(&self) -> Option<OutboxConfig> {
        match self {
            SenderConfig::Outbox(outbox) => Some(outbox.clone()),
            SenderConfig::Ses(_) => None,
        }
    }
}

/// Where the templates are.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// The templates directory (one folder per tenant).
    pub dir: PathBuf,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("templates") }
    }
}

/// Leases and retries: see docs/idempotency.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// How long a claim holds, in seconds; must exceed the sender's timeout and the queue's
    /// visibility timeout.
    pub lease_seconds: u64,
    /// Claims of a key before transient errors make it `failed`.
    pub max_attempts: u32,
    /// Resend when a send's result is unknown (may duplicate an email).
    pub resend_unknown: bool,
    /// How long a tenant waits after the mail service paused its sending, in seconds.
    pub pause_seconds: u64,
    /// Held events a release round leases (their bodies are in memory together).
    pub release_batch: u32,
    /// Held events of a round handled at once.
    pub release_concurrency: usize,
    /// How long a round's lease on its events lasts, in seconds: how long a worker that died
    /// mid-round delays them.
    pub release_lease_seconds: u64,
    /// The wait between release rounds once nothing is left to release, in seconds.
    pub release_every_seconds: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let policy = DeliveryPolicy::default();
        let release = ReleaseSettings::default();
        Self {
            lease_seconds: policy.lease.as_secs(),
            max_attempts: policy.max_attempts,
            resend_unknown: policy.resend_unknown,
            pause_seconds: policy.pause_for.as_secs(),
            release_batch: release.batch_size,
            release_concurrency: release.concurrency,
            release_lease_seconds: release.lease_for.as_secs(),
            release_every_seconds: release.every.as_secs(),
        }
    }
}

impl DeliveryConfig {
    /// The use case's policy.
    pub fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            lease: Duration::from_secs(self.lease_seconds),
            max_attempts: self.max_attempts,
            resend_unknown: self.resend_unknown,
            pause_for: Duration::from_secs(self.pause_seconds),
            ..DeliveryPolicy::default()
        }
    }

    /// How the worker releases held events after a resume.
    pub fn release(&self) -> ReleaseSettings {
        ReleaseSettings {
            batch_size: self.release_batch,
            concurrency: self.release_concurrency,
            lease_for: Duration::from_secs(self.release_lease_seconds),
            every: Duration::from_secs(self.release_every_seconds),
        }
    }
}

impl WorkerConfig {
    /// Reads the file (when given) and the `TAYORI_*` environment, then validates.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            anyhow::ensure!(file.exists(), "config file {} does not exist", file.display());
            figment = figment.merge(Toml::file(file));
        }
        // Only variables for these sections: TAYORI_LOG_FORMAT and the like belong to the CLI.
        const SECTIONS: [&str; 10] = [
            "store__",
            "queue__",
            "sender__",
            "templates__",
            "delivery__",
            "http__",
            "worker_id",
            "feedback__",
            "unsubscribe__",
            "dedicated_queues",
        ];
        let environment = Env::prefixed("TAYORI_")
            .filter(|key| SECTIONS.iter().any(|s| key.as_str().to_ascii_lowercase().starts_with(s)))
            .split("__");
        let figment = figment.merge(environment);
        let mut config: WorkerConfig =
            figment.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        if !figment.contains("queue.handling_deadline_seconds") {
            config.queue.handling_deadline = config.default_handling_deadline();
        }
        config.validate()?;
        Ok(config)
    }

    /// Every events queue this worker consumes: `[queue]` first, then the dedicated ones, each
    /// with its weighted share of `queue.max_in_flight` (and of its bytes), at least a batch.
    /// A dedicated queue's slots are its own: they stay free for it while it is idle, which is
    /// what keeps its tenants apart from the shared queue's floods.
    pub fn event_consumers(&self) -> Vec<ConsumerConfig> {
        if self.dedicated_queues.is_empty() {
            return vec![self.queue.clone()];
        }
        let weights = std::iter::once((self.queue.queue_url.clone(), self.queue.weight))
            .chain(self.dedicated_queues.iter().map(|q| (q.url.clone(), q.weight)));
        let total: u64 = std::iter::once(self.queue.weight)
            .chain(self.dedicated_queues.iter().map(|q| q.weight))
            .map(u64::from)
            .sum::<u64>()
            .max(1);
        let share = |all: usize, weight: u32| (all as u64 * u64::from(weight) / total) as usize;
        weights
            .map(|(url, weight)| {
                let max_in_flight =
                    share(self.queue.max_in_flight, weight).max(self.queue.batch_size as usize);
                let bytes = share(self.queue.max_in_flight_bytes, weight).max(1024 * 1024);
                let tenant_max_in_flight = self
                    .queue
                    .tenant_max_in_flight
                    .iter()
                    .map(|(tenant, slots)| (tenant.clone(), (*slots).min(max_in_flight)))
                    .collect();
                ConsumerConfig {
                    queue_url: url,
                    weight,
                    max_in_flight,
                    max_in_flight_bytes: bytes,
                    tenant_max_in_flight,
                    ..self.queue.clone()
                }
            })
            .collect()
    }

    /// `queue.handling_deadline_seconds` when it is not set: 90 s, or, when the lease is not
    /// longer than that, halfway between the longest send and the lease's end.
    fn default_handling_deadline(&self) -> Duration {
        let lease = Duration::from_secs(self.delivery.lease_seconds);
        let longest_send = match &self.sender {
            SenderConfig::Ses(ses) => ses.max_rate_wait + ses.call_timeout,
            SenderConfig::Outbox(_) => Duration::ZERO,
        };
        let preferred = ConsumerConfig::default().handling_deadline;
        if preferred < lease && preferred > longest_send {
            return preferred;
        }
        longest_send + lease.saturating_sub(longest_send) / 2
    }

    /// Cross-field checks, each naming its setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.store.validate().context("invalid configuration")?;
        self.queue.validate().context("invalid configuration")?;
        for (i, queue) in self.dedicated_queues.iter().enumerate() {
            anyhow::ensure!(
                !queue.url.trim().is_empty(),
                "invalid configuration: dedicated_queues[{i}].url must be set to the queue's URL"
            );
            anyhow::ensure!(
                queue.weight >= 1,
                "invalid configuration: dedicated_queues[{i}].weight must be at least 1"
            );
            anyhow::ensure!(
                queue.url != self.queue.queue_url
                    && self.dedicated_queues[..i].iter().all(|q| q.url != queue.url),
                "invalid configuration: dedicated_queues[{i}].url names a queue already consumed"
            );
        }
        let batch = self.queue.batch_size as usize;
        anyhow::ensure!(
            self.dedicated_queues.is_empty()
                || self.queue.max_in_flight >= batch * (self.dedicated_queues.len() + 1),
            "invalid configuration: queue.max_in_flight must give each of the {} events queues \
             a batch (queue.batch_size) at least",
            self.dedicated_queues.len() + 1
        );
        let lease = self.delivery.lease_seconds;
        anyhow::ensure!(
            lease >= self.queue.visibility_timeout_seconds.max(0) as u64,
            "invalid configuration: delivery.lease_seconds ({lease}) must be at least \
             queue.visibility_timeout_seconds ({}): a redelivered message must find the lease held",
            self.queue.visibility_timeout_seconds
        );
        // Past its deadline a message is abandoned; the lease must outlast that, or another
        // worker could take the key over while this one is still at it.
        anyhow::ensure!(
            self.queue.handling_deadline < Duration::from_secs(lease),
            "invalid configuration: queue.handling_deadline_seconds ({}) must be shorter than \
             delivery.lease_seconds ({lease})",
            self.queue.handling_deadline.as_secs_f64()
        );
        anyhow::ensure!(
            self.delivery.max_attempts >= 1,
            "invalid configuration: delivery.max_attempts must be at least 1"
        );
        for (name, value) in [
            ("release_batch", u64::from(self.delivery.release_batch)),
            ("release_concurrency", self.delivery.release_concurrency as u64),
            ("release_every_seconds", self.delivery.release_every_seconds),
        ] {
            anyhow::ensure!(
                value >= 1,
                "invalid configuration: delivery.{name} must be at least 1"
            );
        }
        anyhow::ensure!(
            self.delivery.release_lease_seconds >= 10,
            "invalid configuration: delivery.release_lease_seconds ({}) must be at least 10: a \
             round's events must be handled within it, or another worker takes them meanwhile",
            self.delivery.release_lease_seconds
        );
        anyhow::ensure!(
            self.feedback.transient_bounce_limit == 0
                || self.feedback.transient_bounce_window_hours > 0,
            "invalid configuration: feedback.transient_bounce_window_hours must be at least 1 \
             when feedback.transient_bounce_limit is set"
        );
        anyhow::ensure!(
            !self.feedback.reputation_pause || self.feedback.reputation_window_hours > 0,
            "invalid configuration: feedback.reputation_window_hours must be at least 1"
        );
        for (setting, rate) in [
            ("reputation_bounce_rate", self.feedback.reputation_bounce_rate),
            ("reputation_complaint_rate", self.feedback.reputation_complaint_rate),
        ] {
            anyhow::ensure!(
                rate > 0.0 && rate < 1.0,
                "invalid configuration: feedback.{setting} must be a fraction between 0 and 1 \
                 (0.04 is 4 %), got {rate}"
            );
        }
        self.unsubscribe.links()?;
        self.http.limits()?;
        self.unsubscribe.serve_limits(&self.http)?;
        anyhow::ensure!(
            self.unsubscribe.listen.is_none() || self.unsubscribe.key.is_some(),
            "invalid configuration: unsubscribe.listen needs unsubscribe.base_url and unsubscribe.key"
        );
        if self.feedback.consumer(&self.queue).is_some() {
            anyhow::ensure!(
                self.store.postgres().is_some(),
                "invalid configuration: feedback.queue_url needs store.kind = \"postgres\" \
                 (the feedback timeline and suppressions live in PostgreSQL)"
            );
        }
        if let SenderConfig::Ses(ses) = &self.sender {
            ses.validate().context("invalid configuration")?;
            // A send that waits its turn and then runs into its timeout must still be inside
            // the lease, or another worker could take the key over while SES is being called.
            let longest_send = ses.max_rate_wait + ses.call_timeout;
            anyhow::ensure!(
                Duration::from_secs(lease) > longest_send,
                "invalid configuration: delivery.lease_seconds ({lease}) must exceed \
                 sender.max_rate_wait + sender.call_timeout ({} s)",
                longest_send.as_secs_f64()
            );
            // A deadline that can cut a send short turns its result into an unknown one.
            anyhow::ensure!(
                self.queue.handling_deadline > longest_send,
                "invalid configuration: queue.handling_deadline_seconds ({}) must exceed \
                 sender.max_rate_wait + sender.call_timeout ({} s)",
                self.queue.handling_deadline.as_secs_f64(),
                longest_send.as_secs_f64()
            );
        }
        Ok(())
    }
}

impl WorkerConfig {
    /// The effective configuration (file, environment and defaults) as TOML that
    /// `tayori worker --config` would read back, with every secret replaced by `***`: the
    /// database password and the unsubscribe keys.
    pub fn redacted(&self) -> anyhow::Result<String> {
        let mut printable = self.clone();
        if let StoreConfig::Postgres { url, .. } = &mut printable.store {
            *url = tayori_postgres::redacted_url(url);
        }
        let unsubscribe = &mut printable.unsubscribe;
        unsubscribe.key = unsubscribe.key.as_ref().map(|_| "***".into());
        unsubscribe.previous_keys.iter_mut().for_each(|key| *key = "***".into());
        let toml = toml::to_string(&printable).context("the configuration as TOML")?;
        Ok(format!(
            "# The effective configuration: the file, TAYORI_* variables and defaults.\n\
             # Secrets are shown as ***.\n\n{toml}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(toml: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), toml).expect("write");
        file
    }

    #[test]
    fn the_printed_configuration_is_toml_the_loader_reads_back_with_secrets_masked() {
        let file = write(
            "worker_id = \"w-1\"\n[store]\nkind = \"postgres\"\n\
             url = \"postgres://tayori:s3cret-pw@db/tayori?sslmode=require\"\n\
             [queue]\nurl = \"https://sqs.example/q\"\n[queue.tenant_max_in_flight]\nacme-bank = 7\n\
             [sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n\
             [unsubscribe]\nbase_url = \"https://mail.example.com\"\n\
             key = \"k-0123456789abcdef0123456789abcdef-secret\"\n\
             previous_keys = [\"p-0123456789abcdef0123456789abcdef-secret\"]\n",
        );
        let config = WorkerConfig::load(Some(file.path())).expect("valid");
        let printed = config.redacted().expect("prints");
        assert!(!printed.contains("s3cret") && !printed.contains("-secret"), "{printed}");
        assert!(printed.contains("url = \"postgres://tayori:***@db/tayori?sslmode=require\""));
        assert!(!format!("{config:?}").contains("s3cret"), "Debug masks the password too");
        // Read back (with keys long enough to load), it is the same configuration.
        let again = write(&printed.replace("\"***\"", "\"0123456789abcdef0123456789abcdef\""));
        let reread = WorkerConfig::load(Some(again.path())).expect("the printout loads");
        assert_eq!(reread.redacted().unwrap(), printed);
    }

    #[test]
    fn store_session_limits_and_the_handling_deadline_are_read_and_checked() {
        let base = "[store]\nkind = \"postgres\"\nurl = \"postgres://tayori@db/tayori\"\n";
        let queue = "[queue]\nurl = \"https://sqs.example/q\"\n";
        let ses = "[sender]\nkind = \"ses\"\n";
        let file = write(&format!(
            "{base}[store.session]\nlock_timeout = 1.5\n{queue}{ses}[delivery]\nlease_seconds = 60\n"
        ));
        let config = WorkerConfig::load(Some(file.path())).expect("valid");
        let session = config.store.postgres().expect("postgres").session;
        assert_eq!(session.lock_timeout, Duration::from_millis(1500));
        assert_eq!(session.statement_timeout, Duration::from_secs(30), "the default");
        // 90 s does not fit under a 60 s lease: halfway between the longest send (20 + 10 s)
        // and the lease.
        assert_eq!(config.queue.handling_deadline, Duration::from_secs(45));

        let file = write(&format!(
            "{base}{queue}handling_deadline_seconds = 120\n{ses}[delivery]\nlease_seconds = 120\n"
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(file.path())).unwrap_err());
        assert!(error.contains("queue.handling_deadline_seconds"), "{error}");

        // Refused, not a panic (serde names the section only: the variant is internally tagged).
        let file = write(&format!("{base}[store.session]\nlock_timeout = -1\n{queue}{ses}"));
        let error = format!("{:#}", WorkerConfig::load(Some(file.path())).unwrap_err());
        assert!(error.contains("store") && error.contains("negative"), "{error}");
    }

    #[test]
    fn reads_a_file_and_names_what_is_wrong() {
        let ok = write(
            r#"
            [store]
            kind = "postgres"
            url = "postgres://tayori@db/tayori"
            [queue]
            url = "https://sqs.ap-northeast-1.amazonaws.com/123456789012/events"
            [sender]
            kind = "outbox"
            dir = "/tmp/outbox"
            "#,
        );
        let config = WorkerConfig::load(Some(ok.path())).expect("valid");
        assert_eq!(config.queue.pollers, 2);
        assert_eq!(config.delivery.lease_seconds, 120);

        let bad = write(
            r#"
            [store]
            kind = "postgres"
            url = "postgres://tayori@db/tayori"
            [queue]
            url = "https://sqs.example/q"
            batch_size = 50
            [sender]
            kind = "outbox"
            dir = "/tmp/outbox"
            "#,
        );
        let error = format!("{:#}", WorkerConfig::load(Some(bad.path())).unwrap_err());
        assert!(error.contains("queue.batch_size"), "{error}");

        let typo = write("[store]\nkind = \"postgres\"\nurl = \"x\"\nmax_conections = 3\n");
        let error = format!("{:#}", WorkerConfig::load(Some(typo.path())).unwrap_err());
        assert!(error.contains("max_conections"), "{error}");
    }

    #[test]
    fn dedicated_queues_share_the_slots_by_weight() {
        let file = write(
            r#"
            [store]
            kind = "postgres"
            url = "postgres://tayori@db/tayori"
            [queue]
            url = "https://sqs.example/shared"
            max_in_flight = 100
            [queue.tenant_max_in_flight]
            acme-bank = 80
            [[dedicated_queues]]
            url = "https://sqs.example/acme-bank"
            weight = 3
            [sender]
            kind = "outbox"
            dir = "/tmp/outbox"
            "#,
        );
        let config = WorkerConfig::load(Some(file.path())).expect("valid");
        let consumers = config.event_consumers();
        let found: Vec<(&str, usize, usize)> = consumers
            .iter()
            .map(|c| (c.queue_url.as_str(), c.max_in_flight, c.tenant_max_in_flight["acme-bank"]))
            .collect();
        assert_eq!(
            found,
            [("https://sqs.example/shared", 25, 25), ("https://sqs.example/acme-bank", 75, 75)]
        );
        assert!(consumers.iter().all(|c| c.validate().is_ok()));

        let twice = write(&format!(
            "{}[[dedicated_queues]]\nurl = \"https://sqs.example/shared\"\n",
            std::fs::read_to_string(file.path()).unwrap()
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(twice.path())).unwrap_err());
        assert!(
            error.contains("dedicated_queues[1].url names a queue already consumed"),
            "{error}"
        );
    }

    const STORE_AND_QUEUE: &str = r#"
        [store]
        kind = "postgres"
        url = "postgres://tayori@db/tayori"
        [queue]
        url = "https://sqs.example/q"
    "#;

    #[test]
    fn the_group_commit_settings_reach_the_store_and_are_checked() {
        let store = |extra: &str| {
            write(&format!(
                "[store]\nkind = \"postgres\"\nurl = \"postgres://tayori@db/tayori\"\n{extra}\n\
                 [queue]\nurl = \"https://sqs.example/q\"\n\
                 [sender]\nkind = \"outbox\"\ndir = \"/tmp/outbox\"\n"
            ))
        };
        let defaults = WorkerConfig::load(Some(store("").path())).expect("valid");
        let postgres = defaults.store.postgres().expect("postgres");
        assert_eq!(
            (postgres.write_batches_in_flight, postgres.max_writes_per_batch),
            (
                tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT,
                tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH
            )
        );

        let set = store("write_batches_in_flight = 1\nmax_writes_per_batch = 64");
        let postgres = WorkerConfig::load(Some(set.path())).expect("valid").store.postgres();
        let postgres = postgres.expect("postgres");
        assert_eq!((postgres.write_batches_in_flight, postgres.max_writes_per_batch), (1, 64));

        for (extra, setting) in [
            ("write_batches_in_flight = 0", "store.write_batches_in_flight (0)"),
            ("max_connections = 4\nwrite_batches_in_flight = 5", "store.max_connections (4)"),
            ("max_writes_per_batch = 0", "store.max_writes_per_batch (0)"),
            ("max_writes_per_batch = 5000", "store.max_writes_per_batch (5000)"),
            ("max_connections = 0", "store.max_connections must be at least 1"),
        ] {
            let error = format!("{:#}", WorkerConfig::load(Some(store(extra).path())).unwrap_err());
            assert!(error.contains(setting), "{extra}: {error}");
        }
    }

    #[test]
    fn the_ses_sender_reads_its_settings_and_names_a_bad_one() {
        let ses = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"ses\"\nsend_rate = 14\ncall_timeout = 8\n"
        ));
        let config = WorkerConfig::load(Some(ses.path())).expect("valid");
        let SenderConfig::Ses(settings) = &config.sender else { panic!("{:?}", config.sender) };
        assert_eq!(settings.send_rate, 14.0);
        assert_eq!(settings.call_timeout, Duration::from_secs(8));
        assert!(settings.read_account_send_rate, "defaults fill the rest");

        let typo = write(&format!("{STORE_AND_QUEUE}\n[sender]\nkind = \"ses\"\nsend_rat = 3\n"));
        let error = format!("{:#}", WorkerConfig::load(Some(typo.path())).unwrap_err());
        assert!(error.contains("send_rat"), "{error}");

        let out_of_range =
            write(&format!("{STORE_AND_QUEUE}\n[sender]\nkind = \"ses\"\nconnect_timeout = 20\n"));
        let error = format!("{:#}", WorkerConfig::load(Some(out_of_range.path())).unwrap_err());
        assert!(error.contains("sender.connect_timeout"), "{error}");

        let short_lease = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"ses\"\nmax_rate_wait = 100\n\
             [delivery]\nlease_seconds = 100\n"
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(short_lease.path())).unwrap_err());
        assert!(error.contains("delivery.lease_seconds"), "{error}");

        let no_release = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n\
             [delivery]\nrelease_concurrency = 0\n"
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(no_release.path())).unwrap_err());
        assert!(error.contains("delivery.release_concurrency must be at least 1"), "{error}");
        let short_release_lease = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n\
             [delivery]\nrelease_lease_seconds = 3\nrelease_batch = 8\n"
        ));
        let error =
            format!("{:#}", WorkerConfig::load(Some(short_release_lease.path())).unwrap_err());
        assert!(error.contains("delivery.release_lease_seconds (3)"), "{error}");

        let feedback = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n\
             [feedback]\nqueue_url = \"https://sqs.example/feedback\"\n"
        ));
        let config = WorkerConfig::load(Some(feedback.path())).expect("valid");
        let consumer = config.feedback.consumer(&config.queue).expect("configured");
        assert_eq!(consumer.queue_url, "https://sqs.example/feedback");
        assert_eq!(consumer.pollers, config.queue.pollers);
        let sqlite = write(
            "[store]\nkind = \"sqlite\"\npath = \"/tmp/t.db\"\n[queue]\nurl = \"q\"\n\
             [sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n[feedback]\nqueue_url = \"f\"\n",
        );
        let error = format!("{:#}", WorkerConfig::load(Some(sqlite.path())).unwrap_err());
        assert!(error.contains("feedback.queue_url"), "{error}");

        let unknown_kind =
            write(&format!("{STORE_AND_QUEUE}\n[sender]\nkind = \"carrier-pigeon\"\n"));
        let error = format!("{:#}", WorkerConfig::load(Some(unknown_kind.path())).unwrap_err());
        assert!(error.contains("carrier-pigeon"), "{error}");
    }

    #[test]
    fn reputation_thresholds_are_settings_and_a_percentage_is_refused() {
        let outbox = "[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"";
        let defaults = write(&format!("{STORE_AND_QUEUE}\n{outbox}\n"));
        let config = WorkerConfig::load(Some(defaults.path())).expect("valid");
        let guard = config.feedback.policy().reputation.expect("on by default");
        assert_eq!(guard.thresholds, ReputationThresholds::default());

        let stricter = write(&format!(
            "{STORE_AND_QUEUE}\n{outbox}\n[feedback]\nreputation_bounce_rate = 0.02\n\
             reputation_complaint_rate = 0.0005\nreputation_min_sent = 50\n"
        ));
        let config = WorkerConfig::load(Some(stricter.path())).expect("valid");
        let guard = config.feedback.policy().reputation.expect("on");
        let expected =
            ReputationThresholds { bounce_rate: 0.02, complaint_rate: 0.0005, min_sent: 50 };
        assert_eq!(guard.thresholds, expected);
        assert_eq!(config.feedback.thresholds(), expected, "the admin API judges by the same");

        let percent = write(&format!(
            "{STORE_AND_QUEUE}\n{outbox}\n[feedback]\nreputation_bounce_rate = 4\n"
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(percent.path())).unwrap_err());
        assert!(error.contains("feedback.reputation_bounce_rate"), "{error}");
    }

    #[test]
    fn a_rotation_keeps_previous_unsubscribe_keys_valid_and_never_prints_them() {
        let current = "c".repeat(32);
        let previous = "p".repeat(32);
        let rotating = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n\
             [unsubscribe]\nbase_url = \"https://mail.example.com\"\nkey = \"{current}\"\n\
             previous_keys = [\"{previous}\"]\n"
        ));
        let config = WorkerConfig::load(Some(rotating.path())).expect("valid");
        assert_eq!(config.unsubscribe.previous_keys().expect("valid").len(), 1);
        let printed = config.redacted().expect("prints");
        assert!(!printed.contains(&current) && !printed.contains(&previous), "{printed}");

        let short = write(&format!(
            "{STORE_AND_QUEUE}\n[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n\
             [unsubscribe]\nbase_url = \"https://mail.example.com\"\nkey = \"{current}\"\n\
             previous_keys = [\"{previous}\", \"too short\"]\n"
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(short.path())).unwrap_err());
        assert!(error.contains("unsubscribe.previous_keys[1]"), "{error}");
    }

    #[test]
    fn listener_limits_default_sanely_and_bad_ones_are_named() {
        let sender = "[sender]\nkind = \"outbox\"\ndir = \"/tmp/o\"\n";
        let plain = write(&format!("{STORE_AND_QUEUE}\n{sender}"));
        let config = WorkerConfig::load(Some(plain.path())).expect("valid");
        let limits = config.http.limits().expect("valid");
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.request_timeout, Duration::from_secs(30));
        assert_eq!((limits.max_connections, limits.max_body_bytes), (1_024, 1 << 20));
        let unsubscribe = config.unsubscribe.serve_limits(&config.http).expect("valid");
        assert_eq!(unsubscribe.max_body_bytes, 64 * 1024);
        assert_eq!(config.unsubscribe.limits().trusted_proxy_hops, 0);

        let zero = write(&format!("{STORE_AND_QUEUE}\n{sender}[http]\nmax_connections = 0\n"));
        let error = format!("{:#}", WorkerConfig::load(Some(zero.path())).unwrap_err());
        assert!(error.contains("http.max_connections"), "{error}");
        let keyless = write(&format!(
            "{STORE_AND_QUEUE}\n{sender}[unsubscribe]\nlisten = \"0.0.0.0:8081\"\n"
        ));
        let error = format!("{:#}", WorkerConfig::load(Some(keyless.path())).unwrap_err());
        assert!(error.contains("unsubscribe.listen"), "{error}");
    }
}
