use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sesv2::error::{BoxError, ProvideErrorMetadata};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use chrono::Utc;
use tayori_app::ports::{
    AccountRateError, EmailSender, SendError, SendRateControl, SentEmail, TenantProfile,
};
use tayori_domain::{OutgoingEmail, TenantId};

use crate::config::{InvalidSesConfig, SesConfig, check_rate};
use crate::errors::{chain, classify};
use crate::limiter::{FairLimiter, TenantPace};
use crate::tags::email_tags;

/// Where the global send rate at start came from (a worker on PostgreSQL then divides the
/// account's rate among the live workers through [`SendRateControl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRateSource {
    /// The account's maximum send rate, from SES's `GetAccount`, times
    /// `sender.account_rate_share`.
    Account,
    /// `sender.send_rate`: asked for, or `GetAccount` failed.
    Config,
}

/// An [`EmailSender`] on Amazon SES v2: one `SendEmail` call with **raw** content (the bytes of
/// `tayori-mime`, the same as every other sender's), paced by a global send rate shared fairly
/// among tenants and optional per-tenant caps.
///
/// Each send: builds the MIME message; waits its turn under the rate limits (at most
/// `sender.max_rate_wait`, else `Throttled`); calls `SendEmail` exactly once, with the SDK's retries
/// off, naming the sender (`FromEmailAddress`), the recipient, the tenant's configuration set
/// and SES tenant when it has them, and the tags `tayori-tenant`, `tayori-event-type` and
/// `tayori-delivery-id`; then maps the result (see `docs/configuration.md`).
#[derive(Clone)]
pub struct SesSender {
    client: Client,
    limiter: Arc<FairLimiter>,
    max_rate_wait: Duration,
    send_rate_source: SendRateSource,
}

impl std::fmt::Debug for SesSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesSender")
            .field("send_rate", &self.limiter.rate())
            .field("send_rate_source", &self.send_rate_source)
            .field("max_rate_wait", &self.max_rate_wait)
            .finish_non_exhaustive()
    }
}

/// How one tenant is paced beside the others, from its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantPacing {
    /// Its own cap in emails per second (`max_send_rate`), if any.
    pub max_send_rate: Option<u32>,
    /// Sends it gets per turn while other tenants wait too (`weight`, at least 1).
    pub weight: u32,
}

/// Each tenant's cap and weight, from the tenants' profiles (`max_send_rate`, `weight`);
/// tenants not listed share the global rate with weight 1 and no cap.
pub fn tenant_pacing<'a>(
    profiles: impl IntoIterator<Item = &'a TenantProfile>,
) -> HashMap<TenantId, TenantPacing> {
    profiles
        .into_iter()
        .filter(|profile| profile.max_send_rate.is_some() || profile.weight != 1)
        .map(|profile| {
            let pacing =
                TenantPacing { max_send_rate: profile.max_send_rate, weight: profile.weight };
            (profile.id.clone(), pacing)
        })
        .collect()
}

impl SesSender {
    /// A sender on the SDK configuration `sdk` (the binary loads it with
    /// `aws_config::load_defaults`, so `AWS_REGION`, `AWS_ENDPOINT_URL`, profiles and roles
    /// apply), paced by `config` and by `tenants` (see [`tenant_pacing`]).
    ///
    /// Checks `config` and the tenant caps first. Then, when `read_account_send_rate` is on,
    /// asks SES for the account's maximum send rate (`GetAccount`, with the SDK's standard
    /// retries: it sends nothing); when that fails it logs a warning and uses `send_rate`.
    pub async fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        config: &SesConfig,
        tenants: &HashMap<TenantId, TenantPacing>,
    ) -> Result<Self, InvalidSesConfig> {
        config.validate()?;
        let mut paces = HashMap::with_capacity(tenants.len());
        for (tenant, pacing) in tenants {
            if let Some(rate) = pacing.max_send_rate {
                check_rate(&format!("max_send_rate of tenant {tenant}"), f64::from(rate))?;
            }
            if !(1..=1000).contains(&pacing.weight) {
                return Err(InvalidSesConfig::new(
                    format!("weight of tenant {tenant}"),
                    "must be a whole number from 1 to 1000",
                ));
            }
            let pace =
                TenantPace { cap: pacing.max_send_rate.map(f64::from), weight: pacing.weight };
            paces.insert(tenant.clone(), pace);
        }

        let client = Client::from_conf(
            aws_sdk_sesv2::config::Builder::from(sdk)
                // One attempt: an SDK retry after a timeout or a 5xx could send a second email
                // inside one call. tayori retries, and records every attempt.
                .retry_config(RetryConfig::disabled())
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(config.connect_timeout)
                        .read_timeout(config.call_timeout)
                        .operation_attempt_timeout(config.call_timeout)
                        .operation_timeout(config.call_timeout)
                        .build(),
                )
                .build(),
        );

        let (send_rate, send_rate_source) = if config.read_account_send_rate {
            match account_send_rate(&client).await {
                Ok(account_rate) => {
                    let rate = account_rate * config.account_rate_share;
                    tracing::info!(
                        account_send_rate = account_rate,
                        account_rate_share = config.account_rate_share,
                        send_rate = rate,
                        "Using the SES account's maximum send rate."
                    );
                    (rate, SendRateSource::Account)
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        send_rate = config.send_rate,
                        "Could not read the SES account's send rate; using sender.send_rate instead."
                    );
                    (config.send_rate, SendRateSource::Config)
                }
            }
        } else {
            (config.send_rate, SendRateSource::Config)
        };

        let burst = NonZeroU32::new(config.send_burst).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            client,
            limiter: Arc::new(FairLimiter::new(send_rate, burst, &paces)),
            max_rate_wait: config.max_rate_wait,
            send_rate_source,
        })
    }

    /// The global rate in force, in emails per second.
    pub fn send_rate(&self) -> f64 {
        self.limiter.rate()
    }

    /// Where [`Self::send_rate`] came from.
    pub fn send_rate_source(&self) -> SendRateSource {
        self.send_rate_source
    }
}

/// `GetAccount` → `SendQuota.MaxSendRate`, or why it cannot be used.
async fn account_send_rate(client: &Client) -> Result<f64, AccountRateError> {
    let account = client
        .get_account()
        .customize()
        // A read: the SDK's standard retries are safe here.
        .config_override(
            aws_sdk_sesv2::config::Builder::default().retry_config(RetryConfig::standard()),
        )
        .send()
        .await
        .map_err(|error| {
            let reason = chain(&error);
            let denied = error.raw_response().is_some_and(|raw| raw.status().as_u16() == 403)
                || error.code().is_some_and(|code| code.starts_with("AccessDenied"));
            if denied {
                AccountRateError::Denied { reason }
            } else {
                AccountRateError::Unavailable { reason }
            }
        })?;
    if !account.sending_enabled() {
        tracing::warn!("SES reports sending as disabled for this account; sends will be refused.");
    }
    let unusable = |reason: String| AccountRateError::Unavailable { reason };
    let rate = account
        .send_quota()
        .map(|quota| quota.max_send_rate())
        .ok_or_else(|| unusable("GetAccount returned no SendQuota".to_owned()))?;
    check_rate("SendQuota.MaxSendRate", rate)
        .map(|()| rate)
        .map_err(|error| unusable(format!("GetAccount returned an unusable rate: {error}")))
}

/// The account's rate, read again; the rate shared among tenants, changed at run time (a worker
/// on PostgreSQL divides the account's rate among the live workers).
#[async_trait]
impl SendRateControl for SesSender {
    async fn account_send_rate(&self) -> Result<f64, AccountRateError> {
        account_send_rate(&self.client).await
    }

    fn set_send_rate(&self, per_second: f64) {
        // The use case computes it from checked rates; a value out of range is not applied
        // rather than turned into a quota governor cannot hold.
        match check_rate("send rate share", per_second) {
            Ok(()) => self.limiter.set_rate(per_second),
            Err(error) => tracing::warn!(%error, "Send rate not changed."),
        }
    }
}

#[async_trait]
impl EmailSender for SesSender {
    fn expected_wait(&self, tenant: &TenantId) -> Duration {
        self.limiter.expected_wait(tenant)
    }

    /// One `SendEmail` call at most; see [`SesSender`] and `docs/configuration.md` for the
    /// mapping of its errors. An email `tayori-mime` cannot build is `Rejected` without a call;
    /// a wait for the rate limits beyond `sender.max_rate_wait` is `Throttled` without a call.
    #[tracing::instrument(
        name = "sender.send",
        skip_all,
        fields(
            tenant = %email.tenant,
            event_type = %email.event_type,
            delivery_id = %email.delivery_id,
        )
    )]
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        let raw = tayori_mime::build_message(email, Utc::now()).map_err(|error| {
            SendError::Rejected { reason: format!("the message cannot be built: {error}") }
        })?;

        let waiting_since = std::time::Instant::now();
        let slot = self.limiter.acquire(&email.tenant, self.max_rate_wait).await;
        tayori_app::telemetry::rate_limiter_waited(&email.tenant, waiting_since.elapsed());
        slot.map_err(|exceeded| SendError::Throttled {
            reason: format!(
                "waited {:.1} s for a send slot under the rate limits (global {} emails/s)",
                self.max_rate_wait.as_secs_f64(),
                self.limiter.rate()
            ),
            retry_after: Some(exceeded.retry_after),
        })?;

        let content = RawMessage::builder()
            .data(Blob::new(raw))
            .build()
            .map(|raw| EmailContent::builder().raw(raw).build())
            .map_err(|error| SendError::Unavailable {
                reason: format!("the SendEmail request could not be built: {error}"),
            })?;
        let tags: Vec<MessageTag> = email_tags(email).map_err(|error| SendError::Unavailable {
            reason: format!("the SendEmail request could not be built: {error}"),
        })?;

        let transmitted = Arc::new(AtomicBool::new(false));
        let result = self
            .client
            .send_email()
            .from_email_address(email.from.address.as_str())
            .destination(Destination::builder().to_addresses(email.to.address.as_str()).build())
            .content(content)
            .set_email_tags(Some(tags))
            .set_configuration_set_name(email.sending.configuration_set.clone())
            .set_tenant_name(email.sending.provider_tenant.clone())
            .customize()
            .interceptor(TransmitWatch(Arc::clone(&transmitted)))
            .send()
            .await;

        match result {
            Ok(output) => {
                let provider_message_id = output.message_id().unwrap_or_default().to_owned();
                tracing::info!(
                    ses.message_id = %provider_message_id,
                    to = %email.to.address.masked(),
                    "SES accepted the email."
                );
                Ok(SentEmail { provider_message_id })
            }
            Err(error) => {
                let error = classify(&error, transmitted.load(Ordering::Acquire));
                match &error {
                    SendError::Ambiguous { reason } => tracing::warn!(
                        error = %reason,
                        "SES may or may not have accepted the email."
                    ),
                    other => tracing::debug!(error = %other, "SES did not accept the email."),
                }
                Err(error)
            }
        }
    }
}

/// Notes that the SDK is about to hand the request to its HTTP client: a failure before that
/// point (credentials, endpoint, signing) cannot have reached SES.
#[derive(Debug)]
struct TransmitWatch(Arc<AtomicBool>);

impl Intercept for TransmitWatch {
    fn name(&self) -> &'static str {
        "TayoriTransmitWatch"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.store(true, Ordering::Release);
        Ok(())
    }
}
