//! The path of one event, from a queue message to a decided delivery.
//!
//! Read [`EventHandler::handle`] top-down: decode, resolve the tenant, check suppression and
//! render (before the claim, so that the claim can start the send attempt in the same write),
//! claim the key, send, record. Every way out of it either records exactly one outcome
//! for the event (then the driving adapter deletes the message) or returns [`RetryLater`] having
//! changed nothing that would stop a later delivery of the same message from succeeding, or
//! (for a tenant an operator or the reputation guard paused) holds the message in the store
//! until the resume, when [`ReleaseHeldEvents`](crate::ReleaseHeldEvents) hands it back here.
//! `docs/idempotency.md` walks through what happens at each crash point.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tayori_domain::{
    DecodeError, DeliveryId, DeliveryStatus, Event, IdempotencyKey, Mailbox, Outcome,
    OutgoingEmail, Publisher, RawBody, Subject, TenantId, UnsubscribeKey, decode_message_body,
};
use tracing::{Instrument, debug, info, warn};

use crate::ports::{
    AttemptEnd, AttemptResult, Claim, ClaimRequest, Clock, DeliveryStore, EmailSender,
    MessageClass, PauseScope, RecordOutcome, SendError, StoreError, SuppressionList,
    TemplateRenderer, TenantDirectory, TenantProfile, UnkeyedRejection,
};
use crate::ports::{HeldEntry, HeldEvent, HeldEvents, TenantPauseList};
use crate::telemetry;

/// The longest wait under the send rate an event takes in a slot; a longer one goes back to the
/// queue for about that long. Not shorter: each hand-back costs two queue calls and a receive,
/// and the limiter must keep enough emails waiting to use every token of its rate.
const RATE_WAIT_BEFORE_HAND_BACK: Duration = Duration::from_secs(2);

/// The first wait before looking again at a key another worker holds.
const IN_FLIGHT_FIRST_WAIT: Duration = Duration::from_secs(5);

/// One message as the queue delivered it.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The message body, as received.
    pub body: Vec<u8>,
    /// How many times the queue has handed this message out, this time included (SQS's
    /// `ApproximateReceiveCount`); recorded with the delivery.
    pub receive_count: u32,
    /// Who sent it, as a shared queue reports it; checked against the tenant's `producers` and
    /// `sources`. `None` for what did not come from a producer's queue (tayori's own resends,
    /// held events released after a check on arrival, `tayori dev`'s local intake).
    pub publisher: Option<Publisher>,
}

impl InboundMessage {
    /// A message received for the first time, not from a producer's queue.
    pub fn first(body: Vec<u8>) -> Self {
        Self { body, receive_count: 1, publisher: None }
    }

    /// A message tayori hands itself (a release, a resend), received `receive_count` times.
    pub fn internal(body: Vec<u8>, receive_count: u32) -> Self {
        Self { body, receive_count, publisher: None }
    }
}

/// How deliveries are retried and leased.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// How long a claim holds. It must exceed the longest render + send (the sender's timeout),
    /// or a slow send can be taken over and sent twice; see `docs/idempotency.md`.
    pub lease: Duration,
    /// After this many claims of a key that ended in transient errors, the delivery is `failed`.
    pub max_attempts: u32,
    /// Whether a send whose result is unknown (no answer, or a worker that died mid-send) is
    /// tried again. Off by default: a possible duplicate email is worse than a missing one for
    /// the notices tayori sends, and an operator can resend.
    pub resend_unknown: bool,
    /// Waits between tries to record an outcome after the email was sent, so that a database
    /// blip does not turn a sent email into an unknown one.
    pub record_retry_backoff: Vec<Duration>,
    /// How long a tenant (or the whole account) stays paused after the mail service says its
    /// sending is paused; its events wait, others go on.
    pub pause_for: Duration,
    /// One-click unsubscribe links for `subscription` mail; `None`: no links (and no
    /// `List-Unsubscribe` headers).
    pub unsubscribe: Option<UnsubscribeLinks>,
}

/// How `subscription` mail links to its one-click unsubscribe (RFC 8058).
#[derive(Debug, Clone)]
pub struct UnsubscribeLinks {
    /// The public base URL, e.g. `https://mail.example.com`: links are
    /// `{base_url}/unsubscribe/{token}`.
    pub base_url: String,
    /// The key tokens are signed with.
    pub key: UnsubscribeKey,
    /// How long a link works after the email is sent.
    pub valid_for: Duration,
}

impl UnsubscribeLinks {
    /// The link for this recipient of this tenant's event type, made at `now`.
    pub fn url(
        &self,
        tenant: &TenantId,
        address: &tayori_domain::EmailAddress,
        event_type: &tayori_domain::EventType,
        now: DateTime<Utc>,
    ) -> String {
        let expires = now + chrono::Duration::from_std(self.valid_for).unwrap_or_default();
        let token = self.key.sign(tenant, address, event_type, expires);
        format!("{}/unsubscribe/{token}", self.base_url.trim_end_matches('/'))
    }
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            max_attempts: 10,
            resend_unknown: false,
            record_retry_backoff: [200, 1_000, 3_000, 10_000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            pause_for: Duration::from_secs(300),
            unsubscribe: None,
        }
    }
}

/// The event has one recorded outcome (or had one already): the message can be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// This call decided the delivery.
    Decided {
        /// The delivery.
        delivery_id: DeliveryId,
        /// What was decided.
        outcome: Outcome,
    },
    /// The tenant is paused by an operator or the reputation guard: the message is held in the
    /// store until the tenant is resumed (nothing was claimed).
    Held {
        /// The delivery.
        delivery_id: DeliveryId,
        /// The pause's reason.
        reason: String,
    },
    /// The key was decided before; nothing was sent, the duplicate was counted.
    Duplicate {
        /// The delivery.
        delivery_id: DeliveryId,
        /// Its earlier outcome.
        status: DeliveryStatus,
    },
    /// The body did not yield an idempotency key, or its sender may not use the key it carries
    /// (see [`PublisherRules`](tayori_domain::PublisherRules)); it is kept with the reason as an
    /// unkeyed rejection.
    RejectedWithoutKey {
        /// Why.
        reason: String,
    },
}

/// Nothing was decided; the message must come back later (SQS: leave it, with a backoff).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retry later: {reason}")]
pub struct RetryLater {
    /// The delivery, when the event got that far.
    pub delivery_id: Option<DeliveryId>,
    /// What was transient.
    pub reason: String,
    /// The earliest useful retry, when known (a lease's end, a throttling hint).
    pub retry_after: Option<Duration>,
}

/// Handles events: the use case at the heart of tayori.
pub struct EventHandler {
    /// Where deliveries are claimed and decided.
    pub store: Arc<dyn DeliveryStore>,
    /// The configured tenants.
    pub tenants: Arc<dyn TenantDirectory>,
    /// Suppression lists.
    pub suppressions: Arc<dyn SuppressionList>,
    /// The tenants' templates.
    pub renderer: Arc<dyn TemplateRenderer>,
    /// The mail service.
    pub sender: Arc<dyn EmailSender>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Leases and retries.
    pub policy: DeliveryPolicy,
    /// This worker's name, recorded with its claims.
    pub worker_id: String,
    /// Sending pauses this worker has been told of.
    pub pauses: SendingPauses,
}

/// Tenants (and the account) whose sending is paused. Pauses the mail service announces are
/// kept in memory per worker, until when: each worker learns of one from its own first refused
/// send. Pauses set by an operator or the reputation guard are shared by every worker through a
/// [`TenantPauseList`] (PostgreSQL), when one is given, and last until an operator resumes; each
/// tenant's answer is kept for a short while, so that the list is asked about once a second
/// per tenant rather than once per event. With a [`HeldEvents`] store, events of a tenant
/// paused that way are held there until the resume instead of waiting on the queue, where
/// every return counts towards the dead-letter queue's `maxReceiveCount`.
#[derive(Default)]
pub struct SendingPauses {
    local: Mutex<HashMap<Option<TenantId>, DateTime<Utc>>>,
    /// Tenants whose sends the mail service (or the rate limits) throttled a moment ago, until
    /// when, and how many times in a row: their next events go back to the queue without a claim
    /// instead of spending a send attempt and a slot on the same answer.
    throttled: Mutex<HashMap<TenantId, (DateTime<Utc>, u32)>>,
    shared: Option<SharedPauses>,
}

struct SharedPauses {
    list: Arc<dyn TenantPauseList>,
    /// How long an answer of the list is used before it is asked again.
    answer_kept_for: Duration,
    /// Each tenant's last answer.
    answers: Mutex<HashMap<TenantId, PauseAnswer>>,
    /// Where events of a paused tenant wait; `None`: on the queue.
    held: Option<Arc<dyn HeldEvents>>,
}

/// When the shared list was asked about a tenant, and the pause's reason it gave, if any.
type PauseAnswer = (DateTime<Utc>, Option<String>);

impl std::fmt::Debug for SendingPauses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingPauses").field("shared", &self.shared.is_some()).finish()
    }
}

impl SendingPauses {
    /// How long a worker keeps the shared list's answer for a tenant by default: a pause or a
    /// resume takes effect within a second, at one query per tenant and second.
    pub const SHARED_ANSWER_KEPT_FOR: Duration = Duration::from_secs(1);

    /// Pauses announced by the mail service, plus the shared pauses of `list`, each tenant's
    /// answer kept for `answer_kept_for` (zero: asked for every event).
    pub fn with_shared(list: Arc<dyn TenantPauseList>, answer_kept_for: Duration) -> Self {
        Self {
            local: Mutex::default(),
            throttled: Mutex::default(),
            shared: Some(SharedPauses {
                list,
                answer_kept_for,
                answers: Mutex::default(),
                held: None,
            }),
        }
    }

    /// The same pauses, with the events of tenants paused in the shared list held in `held`
    /// until the resume. Without a shared list, nothing is held.
    #[must_use]
    pub fn holding_in(mut self, held: Arc<dyn HeldEvents>) -> Self {
        if let Some(shared) = &mut self.shared {
            shared.held = Some(held);
        }
        self
    }

    fn held(&self) -> Option<&Arc<dyn HeldEvents>> {
        self.shared.as_ref().and_then(|shared| shared.held.as_ref())
    }

    fn pause(&self, scope: Option<TenantId>, until: DateTime<Utc>) {
        self.local.lock().unwrap_or_else(PoisonError::into_inner).insert(scope, until);
    }

    /// How long a tenant's events wait after one of its sends was throttled without a hint; it
    /// doubles with each throttled send in a row (1, 2, 4, 8 s), so that a tenant SES keeps
    /// throttling sends one probe now and then while its backlog waits on the queue, instead of
    /// passing through the worker every second.
    const THROTTLE_WAIT: Duration = Duration::from_secs(1);
    /// The longest such doubled wait: a probe every 8 s at most while SES keeps throttling, so
    /// that the backlog goes out within seconds once it stops.
    const THROTTLE_WAIT_DOUBLED_MAX: Duration = Duration::from_secs(8);
    /// The longest wait, whatever the hint.
    const THROTTLE_WAIT_MAX: Duration = Duration::from_secs(60);

    fn throttle(&self, tenant: &TenantId, now: DateTime<Utc>, hint: Option<Duration>) {
        let mut throttled = self.throttled.lock().unwrap_or_else(PoisonError::into_inner);
        let in_a_row = throttled.get(tenant).map_or(0, |(_, n)| *n).saturating_add(1);
        let doubled = Self::THROTTLE_WAIT
            .saturating_mul(1 << in_a_row.saturating_sub(1).min(10))
            .min(Self::THROTTLE_WAIT_DOUBLED_MAX);
        let wait = hint.unwrap_or(doubled).min(Self::THROTTLE_WAIT_MAX);
        let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
        throttled.insert(tenant.clone(), (until, in_a_row));
    }

    /// A send of this tenant went through: its throttling is over.
    fn throttle_over(&self, tenant: &TenantId) {
        let mut throttled = self.throttled.lock().unwrap_or_else(PoisonError::into_inner);
        if !throttled.is_empty() {
            throttled.remove(tenant);
        }
    }

    /// The end of the throttling wait of this tenant, if one is running.
    fn throttled_until(&self, tenant: &TenantId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let throttled = self.throttled.lock().unwrap_or_else(PoisonError::into_inner);
        throttled.get(tenant).map(|(until, _)| *until).filter(|until| *until > now)
    }

    /// The end of the pause that applies to this tenant, if one is running.
    fn until(&self, tenant: &TenantId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let pauses = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        [pauses.get(&None), pauses.get(&Some(tenant.clone()))]
            .into_iter()
            .flatten()
            .filter(|until| **until > now)
            .max()
            .copied()
    }

    /// Why the shared list pauses this tenant, if it does.
    async fn shared_reason(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let Some(shared) = &self.shared else { return Ok(None) };
        {
            let answers = shared.answers.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((asked_at, reason)) = answers.get(tenant) {
                // A clock that went back makes the age negative: ask again.
                let age = (now - *asked_at).to_std();
                if age.is_ok_and(|age| age < shared.answer_kept_for) {
                    return Ok(reason.clone());
                }
            }
        }
        let reason = shared.list.pause_reason(tenant).await?;
        let mut answers = shared.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.insert(tenant.clone(), (now, reason.clone()));
        Ok(reason)
    }
}

impl EventHandler {
    /// Handles one message: see the module documentation.
    pub async fn handle(&self, message: &InboundMessage) -> Result<Handled, RetryLater> {
        // Metrics are reported here, once per message, so that every way out of the path is
        // counted the same way (`telemetry` names them).
        let in_flight = telemetry::InFlight::enter();
        failpoint!("event.after_receive");
        // 1. Decode. A body that breaks the contract is still recorded, never dropped.
        let decoded = decode_message_body(&message.body);
        let tenant = match &decoded {
            Ok(event) => telemetry::tenant_label(&*self.tenants, &event.key.tenant),
            Err(error) => error.key.as_ref().map_or_else(
                || telemetry::NO_TENANT.to_owned(),
                |key| telemetry::tenant_label(&*self.tenants, &key.tenant),
            ),
        };
        telemetry::event_received(&tenant);
        let result = match decoded {
            Ok(event) => {
                let span = tracing::info_span!(
                    "handle_event",
                    tenant = %event.key.tenant,
                    event_type = %event.event_type,
                    event_id = %event.key.id,
                    delivery_id = %event.key.delivery_id(),
                    provider_message_id = tracing::field::Empty,
                );
                // `instrument`, not `span.enter()`: an entered guard held across awaits would
                // leak the span into whatever else runs on this thread meanwhile.
                self.handle_decoded(message, &event, &in_flight).instrument(span).await
            }
            Err(error) => self.reject_undecodable(message, error).await,
        };
        telemetry::event_handled(&tenant, &result);
        result
    }

    /// Steps 2 to 7 for an event that meets the contract.
    async fn handle_decoded(
        &self,
        message: &InboundMessage,
        event: &Event,
        in_flight: &telemetry::InFlight,
    ) -> Result<Handled, RetryLater> {
        let key = &event.key;
        let delivery_id = key.delivery_id();

        // 2. Resolve the tenant. An unknown one is rejected below, after the claim, so that the
        //    rejection is recorded once per key.
        let tenant = self.tenants.tenant(&key.tenant);

        // Who sent it: an event from a producer the tenant does not list, with a source it does
        // not list or one of tayori's own, or grouped under another tenant, is refused without
        // taking its key, so that a forged copy cannot stand in for the real event's id.
        if let (Some(publisher), Some(profile)) = (&message.publisher, &tenant)
            && let Some(reason) =
                profile.publishers.refusal(&key.tenant, key.source.as_str(), publisher)
        {
            // Recorded with its reason and counted as rejected; info, not warn: a misconfigured
            // producer would otherwise flood the log with one line per event.
            info!(%reason, "refused an event from a producer the tenant does not allow");
            return self.reject_unkeyed(message, Some(key.tenant.clone()), reason).await;
        }

        if let Some(until) = self.pauses.until(&key.tenant, self.clock.now()) {
            // Paused by the mail service: wait without claiming, so no attempt is used up.
            telemetry::event_waits_for_pause(&telemetry::tenant_label(&*self.tenants, &key.tenant));
            return Err(RetryLater {
                delivery_id: Some(delivery_id),
                reason: format!("sending is paused for this tenant until {until}"),
                retry_after: (until - self.clock.now()).to_std().ok(),
            });
        }

        // Paused by an operator or the reputation guard, until a resume that may be hours away:
        // hold the message in the store (then it is deleted from the queue), or, without a
        // store for that, wait without claiming, like above.
        let shared_pause = self
            .pauses
            .shared_reason(&key.tenant, self.clock.now())
            .await
            .map_err(|e| retry_later(Some(delivery_id), &e, None))?;
        if let Some(reason) = shared_pause {
            let tenant_label = telemetry::tenant_label(&*self.tenants, &key.tenant);
            if let Some(held) = self.pauses.held() {
                let copy = HeldEvent {
                    entry: HeldEntry {
                        key: key.clone(),
                        event_type: event.event_type.clone(),
                        receive_count: message.receive_count,
                        reason: reason.clone(),
                        held_at: self.clock.now(),
                    },
                    body: message.body.clone(),
                };
                held.hold(&copy).await.map_err(|e| retry_later(Some(delivery_id), &e, None))?;
                // Counted (`tayori_events_held_total`); a paused tenant's traffic would flood
                // the info log.
                debug!(%reason, "tenant paused: event held until it is resumed");
                return Ok(Handled::Held { delivery_id, reason });
            }
            telemetry::event_waits_for_pause(&tenant_label);
            return Err(RetryLater {
                delivery_id: Some(delivery_id),
                reason: format!("sending is paused for this tenant: {reason}"),
                retry_after: Some(self.policy.pause_for),
            });
        }

        // Throttled a moment ago (by the mail service, or by the rate limits): back to the queue
        // until the throttling should be over, without a claim, so no attempt is spent on it.
        if let Some(until) = self.pauses.throttled_until(&key.tenant, self.clock.now()) {
            let label = telemetry::tenant_label(&*self.tenants, &key.tenant);
            telemetry::tenant_handed_back(&label, "throttled");
            return Err(RetryLater {
                delivery_id: Some(delivery_id),
                reason: format!("this tenant's sends were throttled; waiting until {until}"),
                retry_after: (until - self.clock.now()).to_std().ok(),
            });
        }

        // Its sends already queue under its send rate for longer than a moment: back to the
        // queue for about that long rather than holding a slot while it waits.
        let wait = self.sender.expected_wait(&key.tenant);
        if wait > RATE_WAIT_BEFORE_HAND_BACK {
            let label = telemetry::tenant_label(&*self.tenants, &key.tenant);
            telemetry::tenant_handed_back(&label, "rate_capped");
            return Err(RetryLater {
                delivery_id: Some(delivery_id),
                reason: format!(
                    "this tenant's emails queue for about {:.1} s under its send rate; back on \
                     the queue until then",
                    wait.as_secs_f64()
                ),
                retry_after: Some(wait),
            });
        }

        // 3. Prepare, before claiming: the email ready to send, or the outcome that decides
        //    the event without a send. Doing this first lets the claim and the send attempt's
        //    row be one write; a duplicate costs a wasted suppression check and render.
        let prepared = match &tenant {
            Some(tenant) => self.prepare(event, tenant).await?,
            None => {
                let reason = format!("unknown tenant {:?}: not configured", key.tenant.as_str());
                Prepared::Decide(Outcome::Rejected { reason })
            }
        };

        // 4. Claim the key. An email to send starts its first attempt with the claim.
        let request = self.claim_request(event, message.receive_count);
        let purpose = match prepared {
            Prepared::Send(_) => ClaimPurpose::Send,
            Prepared::Decide(_) => ClaimPurpose::Decide,
        };
        let attempt = match self.claim(message, &request, purpose).await? {
            Claimed::Won { attempt } => attempt,
            Claimed::Lost(handled) => return Ok(handled),
        };
        failpoint!("event.after_claim");
        if let Some(outcome) = self.outcome_of_earlier_attempts(key, attempt).await? {
            return self.decide(key, outcome, None).await;
        }
        let email = match prepared {
            Prepared::Send(email) => email,
            Prepared::Decide(outcome) => return self.decide(key, outcome, None).await,
        };

        // 5. Send, with the attempt recorded before (with the first claim, or here after a
        //    takeover or a retry) and after.
        if attempt > 1
            && let Err(error) =
                self.store.record_attempt_started(key, attempt, self.clock.now()).await
        {
            return Err(self.release(key, error.to_string(), None).await);
        }
        debug!(recipient = %email.to.address.masked(), attempt, "sending");
        let send_started = Instant::now();
        let sent = self.sender.send(&email).await;
        telemetry::send_finished(&key.tenant, sent.as_ref().map(|_| ()), send_started.elapsed());
        if let Ok(sent) = &sent {
            failpoint!("event.after_accepted");
            self.pauses.throttle_over(&key.tenant);
            telemetry::receive_to_send(&key.tenant, in_flight.elapsed());
            // Every later line of this event carries the mail service's id (SES message id).
            tracing::Span::current()
                .record("provider_message_id", sent.provider_message_id.as_str());
        }

        // 6. Record what came of it: the attempt's result, with the outcome when it decides one.
        match sent {
            Ok(sent) => {
                let id = sent.provider_message_id;
                let end = AttemptEnd { attempt, result: AttemptResult::Accepted, detail: &id };
                let outcome = Outcome::Sent { provider_message_id: id.clone() };
                self.decide_after_send(key, end, outcome, &email.subject).await
            }
            Err(error @ SendError::Ambiguous { .. }) if !self.policy.resend_unknown => {
                // `unknown` until an SES report about the email reconciles it as sent, or the
                // unknown-send window passes without one (`docs/idempotency.md`).
                let detail = error.to_string();
                let end = AttemptEnd { attempt, result: AttemptResult::Unknown, detail: &detail };
                let reason = format!("{detail}; not resent automatically (resend_unknown = false)");
                self.decide_after_send(key, end, Outcome::Unknown { reason }, &email.subject).await
            }
            Err(error) if error.is_transient() || matches!(error, SendError::Ambiguous { .. }) => {
                let result = if error.is_transient() {
                    AttemptResult::TransientError
                } else {
                    AttemptResult::Unknown
                };
                let detail = error.to_string();
                if attempt >= self.policy.max_attempts {
                    let end = AttemptEnd { attempt, result, detail: &detail };
                    let reason = format!("gave up after {attempt} attempts; last: {detail}");
                    return self
                        .decide_after_send(key, end, Outcome::Failed { reason }, &email.subject)
                        .await;
                }
                self.record_after_send(key, attempt, result, &detail).await?;
                let retry_after = match error {
                    SendError::Throttled { retry_after, .. } => {
                        self.pauses.throttle(&key.tenant, self.clock.now(), retry_after);
                        retry_after
                    }
                    SendError::Paused { scope, .. } => {
                        let scope = (scope == PauseScope::Tenant).then(|| key.tenant.clone());
                        let until = self.clock.now()
                            + chrono::Duration::from_std(self.policy.pause_for).unwrap_or_default();
                        warn!(?scope, %until, "the mail service paused sending; waiting");
                        self.pauses.pause(scope, until);
                        Some(self.policy.pause_for)
                    }
                    _ => None,
                };
                Err(self.release(key, detail, retry_after).await)
            }
            Err(error) => {
                let detail = error.to_string();
                let end =
                    AttemptEnd { attempt, result: AttemptResult::PermanentError, detail: &detail };
                let outcome = Outcome::Failed { reason: detail.clone() };
                self.decide_after_send(key, end, outcome, &email.subject).await
            }
        }
    }

    /// Step 3: what the event comes to before any claim. Suppression is checked for the class
    /// of mail the event type sends (an unsubscribe stops subscription mail only; a bounce or a
    /// complaint stops everything), then the email is rendered; a template error on this data is
    /// permanent, so the event is rejected. Subscription mail gets its one-click unsubscribe
    /// link as `unsubscribe_url` (it replaces one the event may carry) and in
    /// `List-Unsubscribe`. Nothing is claimed yet, so a failing check leaves nothing to undo.
    async fn prepare(&self, event: &Event, tenant: &TenantProfile) -> Result<Prepared, RetryLater> {
        let key = &event.key;
        let class = self.renderer.message_class(&key.tenant, &event.event_type);
        match self.suppressions.check(&key.tenant, &event.recipient.email, class).await {
            Ok(None) => {}
            Ok(Some(suppression)) => {
                let reason = format!("{} (checked for {class} mail)", suppression.reason);
                return Ok(Prepared::Decide(Outcome::Suppressed { reason }));
            }
            Err(error) => {
                info!(reason = %error, "transient failure; the message will be retried");
                return Err(RetryLater {
                    delivery_id: Some(key.delivery_id()),
                    reason: error.to_string(),
                    retry_after: None,
                });
            }
        }

        let unsubscribe_url = match (&self.policy.unsubscribe, class) {
            (Some(links), MessageClass::Subscription) => Some(links.url(
                &key.tenant,
                &event.recipient.email,
                &event.event_type,
                self.clock.now(),
            )),
            _ => None,
        };
        let with_link = unsubscribe_url.as_ref().map(|url| {
            let mut event = event.clone();
            event.variables.insert("unsubscribe_url".into(), url.clone().into());
            event
        });
        let to_render = with_link.as_ref().unwrap_or(event);
        failpoint!("event.mid_render");
        let rendered = match tracing::info_span!("render")
            .in_scope(|| self.renderer.render(tenant, to_render))
        {
            Ok(rendered) => rendered,
            Err(error) => {
                return Ok(Prepared::Decide(Outcome::Rejected { reason: error.to_string() }));
            }
        };
        let mut email =
            outgoing_email(tenant, event, rendered.subject, rendered.html, rendered.text);
        email.list_unsubscribe = unsubscribe_url;
        Ok(Prepared::Send(Box::new(email)))
    }

    /// Decides an event `rejected` with `reason`, without sending it: what an operator's discard
    /// of a paused tenant's held events does, so that every discarded event is recorded and a
    /// later copy of it is a duplicate. A body that breaks the contract is rejected for that,
    /// a key decided before stays as it was, and a key whose earlier attempt may have sent is
    /// decided as that attempt says.
    pub async fn discard(
        &self,
        message: &InboundMessage,
        reason: &str,
    ) -> Result<Handled, RetryLater> {
        let event = match decode_message_body(&message.body) {
            Ok(event) => event,
            Err(error) => return self.reject_undecodable(message, error).await,
        };
        let key = &event.key;
        let request = self.claim_request(&event, message.receive_count);
        let result = async {
            match self.claim(message, &request, ClaimPurpose::Decide).await? {
                Claimed::Won { attempt } => {
                    let outcome = match self.outcome_of_earlier_attempts(key, attempt).await? {
                        Some(outcome) => outcome,
                        None => Outcome::Rejected { reason: reason.to_owned() },
                    };
                    self.decide(key, outcome, None).await
                }
                Claimed::Lost(handled) => Ok(handled),
            }
        }
        .await;
        telemetry::event_handled(&telemetry::tenant_label(&*self.tenants, &key.tenant), &result);
        result
    }

    /// Records a body that does not meet the contract: against its key when it has one (so
    /// redeliveries are counted as duplicates), else as an unkeyed rejection.
    async fn reject_undecodable(
        &self,
        message: &InboundMessage,
        error: DecodeError,
    ) -> Result<Handled, RetryLater> {
        let body = &message.body;
        let Some(key) = error.key.clone() else {
            info!(reason = %error.reason, size = body.len(), "rejected a message without a key");
            return self.reject_unkeyed(message, None, error.reason).await;
        };
        let raw_body = RawBody::capture(body);
        let request = ClaimRequest {
            event_type: error.event_type.clone(),
            raw_body: Some(raw_body),
            ..self.bare_claim_request(&key, message.receive_count)
        };
        match self.claim(message, &request, ClaimPurpose::Decide).await? {
            Claimed::Won { .. } => {
                self.decide(&key, Outcome::Rejected { reason: error.reason }, None).await
            }
            Claimed::Lost(handled) => Ok(handled),
        }
    }

    /// Records a message as rejected without taking any key: it had none, or it may not use
    /// the one it carries.
    async fn reject_unkeyed(
        &self,
        message: &InboundMessage,
        tenant: Option<TenantId>,
        reason: String,
    ) -> Result<Handled, RetryLater> {
        let rejection = UnkeyedRejection {
            tenant,
            raw_body: RawBody::capture(&message.body),
            reason: reason.clone(),
            now: self.clock.now(),
        };
        let recorded = match self.store.record_unkeyed_rejection(&rejection).await {
            Err(StoreError::Refused(cause)) => {
                let reason = storable_text(&reason, &cause);
                self.store.record_unkeyed_rejection(&UnkeyedRejection { reason, ..rejection }).await
            }
            other => other,
        };
        recorded.map_err(|e| retry_later(None, &e, None))?;
        Ok(Handled::RejectedWithoutKey { reason })
    }

    async fn claim(
        &self,
        message: &InboundMessage,
        request: &ClaimRequest,
        purpose: ClaimPurpose,
    ) -> Result<Claimed, RetryLater> {
        let delivery_id = request.key.delivery_id();
        let claim = match purpose {
            ClaimPurpose::Send => self.store.claim_and_start_attempt(request).await,
            ClaimPurpose::Decide => self.store.claim(request).await,
        };
        let claim = match claim {
            // It would be refused again: rejected with the store's reason, never retried.
            Err(StoreError::Refused(cause)) => {
                return self.reject_unstorable(message, request, cause).await.map(Claimed::Lost);
            }
            other => other.map_err(|e| retry_later(Some(delivery_id), &e, None))?,
        };
        self.claimed(request, claim).await
    }

    /// What a claim's answer comes to.
    async fn claimed(&self, request: &ClaimRequest, claim: Claim) -> Result<Claimed, RetryLater> {
        let delivery_id = request.key.delivery_id();
        match claim {
            Claim::Claimed { attempt } => Ok(Claimed::Won { attempt }),
            Claim::AlreadyDecided { status } => {
                info!(%delivery_id, %status, "duplicate of a decided event; not sent again");
                self.store
                    .record_duplicate(&request.key, self.clock.now())
                    .await
                    .map_err(|e| retry_later(Some(delivery_id), &e, None))?;
                Ok(Claimed::Lost(Handled::Duplicate { delivery_id, status }))
            }
            Claim::InFlight { lease_expires_at } => {
                // Usually the holder is alive and about to finish (a duplicate delivered at the
                // same time), so look again soon; if it died, the waits double up to the
                // lease's end, which keeps the receive count low for the queue's DLQ policy.
                let remaining = (lease_expires_at - self.clock.now()).to_std().unwrap_or_default();
                let doublings = request.receive_count.saturating_sub(1).min(10);
                let wait = IN_FLIGHT_FIRST_WAIT.saturating_mul(1 << doublings).min(remaining);
                Err(RetryLater {
                    delivery_id: Some(delivery_id),
                    reason: format!("another worker holds the lease until {lease_expires_at}"),
                    retry_after: Some(wait),
                })
            }
        }
    }

    /// After a takeover: what did earlier claims of this key get as far as? A worker can die
    /// after the mail service answered but before the outcome was recorded; its attempt row
    /// says what happened, and that decides the delivery without a second send.
    ///
    /// - an attempt the service accepted → `sent` with that message id;
    /// - an attempt the service refused for good → `failed` with its reason;
    /// - an attempt without a result (the worker died mid-send) or with an unknown result →
    ///   `unknown` (an SES report may reconcile it), unless `resend_unknown` allows trying again;
    /// - only transient errors, or no attempt at all → nothing: go on and send.
    async fn outcome_of_earlier_attempts(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
    ) -> Result<Option<Outcome>, RetryLater> {
        if attempt == 1 {
            return Ok(None);
        }
        let delivery_id = key.delivery_id();
        let attempts = self
            .store
            .attempts(&key.tenant, delivery_id)
            .await
            .map_err(|e| retry_later(Some(delivery_id), &e, None))?;
        let earlier: Vec<_> = attempts.into_iter().filter(|a| a.attempt < attempt).collect();
        let detail_of = |a: &crate::ports::AttemptRecord| a.detail.clone().unwrap_or_default();
        if let Some(accepted) = earlier.iter().find(|a| a.result == Some(AttemptResult::Accepted)) {
            warn!(attempt = accepted.attempt, "an earlier attempt was accepted; recording it");
            return Ok(Some(Outcome::Sent { provider_message_id: detail_of(accepted) }));
        }
        if let Some(refused) =
            earlier.iter().find(|a| a.result == Some(AttemptResult::PermanentError))
        {
            return Ok(Some(Outcome::Failed { reason: detail_of(refused) }));
        }
        if self.policy.resend_unknown {
            return Ok(None);
        }
        if let Some(unknown) = earlier.iter().find(|a| a.result == Some(AttemptResult::Unknown)) {
            return Ok(Some(Outcome::Unknown {
                reason: format!(
                    "{}; not resent automatically (resend_unknown = false)",
                    detail_of(unknown)
                ),
            }));
        }
        let Some(unfinished) = earlier.iter().rev().find(|a| a.result.is_none()) else {
            return Ok(None);
        };
        let detail = "the worker stopped during the send";
        self.store
            .record_attempt_finished(
                key,
                unfinished.attempt,
                AttemptResult::Unknown,
                detail,
                self.clock.now(),
            )
            .await
            .map_err(|e| retry_later(Some(delivery_id), &e, None))?;
        warn!(attempt = unfinished.attempt, "an earlier send never finished; not resending");
        Ok(Some(Outcome::Unknown {
            reason: format!(
                "result unknown: send attempt {} started at {} never finished ({detail}); \
                 not resent automatically (resend_unknown = false)",
                unfinished.attempt, unfinished.started_at
            ),
        }))
    }

    async fn decide(
        &self,
        key: &IdempotencyKey,
        outcome: Outcome,
        subject: Option<&Subject>,
    ) -> Result<Handled, RetryLater> {
        let delivery_id = key.delivery_id();
        let (outcome, recorded) =
            match self.store.record_outcome(key, &outcome, subject, self.clock.now()).await {
                Err(StoreError::Refused(cause)) => {
                    let outcome = storable_outcome(&outcome, &cause);
                    let now = self.clock.now();
                    (outcome.clone(), self.store.record_outcome(key, &outcome, None, now).await)
                }
                recorded => (outcome, recorded),
            };
        let recorded = recorded.map_err(|e| retry_later(Some(delivery_id), &e, None))?;
        Ok(self.decided(delivery_id, outcome, recorded))
    }

    /// Like `decide`, but the email may have gone out: the attempt's result and the outcome
    /// are recorded together, and are worth waiting for the store, since giving up here turns
    /// a known result into an unknown one.
    async fn decide_after_send(
        &self,
        key: &IdempotencyKey,
        end: AttemptEnd<'_>,
        outcome: Outcome,
        subject: &Subject,
    ) -> Result<Handled, RetryLater> {
        let delivery_id = key.delivery_id();
        let mut waits = self.policy.record_retry_backoff.iter();
        loop {
            let now = self.clock.now();
            match self
                .store
                .record_attempt_finished_and_outcome(key, end, &outcome, Some(subject), now)
                .await
            {
                Ok(recorded) => return Ok(self.decided(delivery_id, outcome, recorded)),
                // Refused for its text: waiting cannot help; recorded with text the store keeps.
                Err(StoreError::Refused(cause)) => {
                    let outcome = storable_outcome(&outcome, &cause);
                    let detail = storable_text(end.detail, &cause);
                    let end = AttemptEnd { detail: &detail, ..end };
                    return match self
                        .store
                        .record_attempt_finished_and_outcome(key, end, &outcome, None, now)
                        .await
                    {
                        Ok(recorded) => Ok(self.decided(delivery_id, outcome, recorded)),
                        Err(error) => Err(retry_later(Some(delivery_id), &error, None)),
                    };
                }
                Err(error) => match waits.next() {
                    Some(wait) => {
                        warn!(error = %error, "could not record the outcome of a send; retrying");
                        self.clock.sleep(*wait).await;
                    }
                    None => return Err(retry_later(Some(delivery_id), &error, None)),
                },
            }
        }
    }

    /// Records how a send attempt ended when it decides nothing yet (a transient error), waiting
    /// out a short store outage for the same reason as `decide_after_send`.
    async fn record_after_send(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
    ) -> Result<(), RetryLater> {
        let mut waits = self.policy.record_retry_backoff.iter();
        loop {
            let now = self.clock.now();
            match self.store.record_attempt_finished(key, attempt, result, detail, now).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Refused(cause)) => {
                    let detail = storable_text(detail, &cause);
                    return self
                        .store
                        .record_attempt_finished(key, attempt, result, &detail, now)
                        .await
                        .map_err(|e| retry_later(Some(key.delivery_id()), &e, None));
                }
                Err(error) => match waits.next() {
                    Some(wait) => self.clock.sleep(*wait).await,
                    None => return Err(retry_later(Some(key.delivery_id()), &error, None)),
                },
            }
        }
    }

    fn decided(
        &self,
        delivery_id: DeliveryId,
        outcome: Outcome,
        recorded: RecordOutcome,
    ) -> Handled {
        match recorded {
            RecordOutcome::Recorded => {
                failpoint!("event.after_outcome");
                info!(
                    %delivery_id,
                    outcome = %outcome.status(),
                    reason = outcome.reason().unwrap_or(""),
                    "delivery decided"
                );
                Handled::Decided { delivery_id, outcome }
            }
            RecordOutcome::AlreadyDecided { status } => {
                warn!(%delivery_id, %status, "another worker decided this delivery first");
                Handled::Duplicate { delivery_id, status }
            }
        }
    }

    /// Gives the lease back after a transient failure, so the next delivery of the message can
    /// claim at once. A failure to release is only logged: the lease runs out by itself.
    async fn release(
        &self,
        key: &IdempotencyKey,
        reason: String,
        retry_after: Option<Duration>,
    ) -> RetryLater {
        if let Err(error) = self.store.release(key, self.clock.now()).await {
            warn!(error = %error, "could not release the lease; it will expire");
        }
        info!(reason = %reason, "transient failure; the message will be retried");
        RetryLater { delivery_id: Some(key.delivery_id()), reason, retry_after }
    }

    /// The store refused the claim for the data it carries and would refuse it again (see
    /// [`StoreError::Refused`]): the event is rejected with the store's reason, against its key
    /// with its raw body (bytes, which every store keeps) and nothing else, or, should the store
    /// refuse even that, without a key. Either way it has its one outcome and leaves the queue.
    async fn reject_unstorable(
        &self,
        message: &InboundMessage,
        request: &ClaimRequest,
        cause: String,
    ) -> Result<Handled, RetryLater> {
        let key = &request.key;
        let reason = format!("the delivery store cannot keep this event as it is: {cause}");
        warn!(%reason, "rejecting an event the store refuses");
        let bare = ClaimRequest {
            raw_body: Some(RawBody::capture(&message.body)),
            ..self.bare_claim_request(key, message.receive_count)
        };
        match self.store.claim(&bare).await {
            Ok(claim) => match self.claimed(&bare, claim).await? {
                Claimed::Won { attempt } => {
                    // A takeover may follow an attempt that sent: that decides it instead.
                    let outcome = self.outcome_of_earlier_attempts(key, attempt).await?;
                    let outcome = outcome.unwrap_or(Outcome::Rejected { reason });
                    self.decide(key, outcome, None).await
                }
                Claimed::Lost(handled) => Ok(handled),
            },
            Err(StoreError::Refused(_)) => {
                self.reject_unkeyed(message, Some(key.tenant.clone()), reason).await
            }
            Err(error) => Err(retry_later(Some(key.delivery_id()), &error, None)),
        }
    }

    fn claim_request(&self, event: &Event, receive_count: u32) -> ClaimRequest {
        let sensitive = self.renderer.sensitive_variables(&event.key.tenant, &event.event_type);
        ClaimRequest {
            event_type: Some(event.event_type.clone()),
            recipient: Some(event.recipient.email.clone()),
            event_json: Some(masked_envelope(&event.envelope, &sensitive).to_string()),
            ..self.bare_claim_request(&event.key, receive_count)
        }
    }

    fn bare_claim_request(&self, key: &IdempotencyKey, receive_count: u32) -> ClaimRequest {
        ClaimRequest {
            receive_count,
            key: key.clone(),
            event_type: None,
            recipient: None,
            event_json: None,
            raw_body: None,
            owner: self.worker_id.clone(),
            lease: self.policy.lease,
            now: self.clock.now(),
        }
    }
}

enum Claimed {
    Won { attempt: u32 },
    Lost(Handled),
}

/// What an event comes to before its key is claimed.
enum Prepared {
    /// The email, ready to send (boxed: it is large next to an outcome).
    Send(Box<OutgoingEmail>),
    /// The outcome that decides the event without a send.
    Decide(Outcome),
}

/// Why a key is claimed: to send (the first claim also starts send attempt 1, in the same
/// write) or to record an outcome without sending.
#[derive(Clone, Copy)]
enum ClaimPurpose {
    Send,
    Decide,
}

fn retry_later(
    delivery_id: Option<DeliveryId>,
    error: &StoreError,
    retry_after: Option<Duration>,
) -> RetryLater {
    RetryLater { delivery_id, reason: error.to_string(), retry_after }
}

/// Text the store refused, made storable: NUL, which PostgreSQL cannot keep in text, written as
/// the escape `\u{0}`, with the store's reason for the operator.
fn storable_text(text: &str, cause: &str) -> String {
    format!("{} (stored with NUL escaped: {cause})", text.replace('\0', "\\u{0}"))
}

/// The same outcome with its text made storable ([`storable_text`]): a sent email stays sent.
fn storable_outcome(outcome: &Outcome, cause: &str) -> Outcome {
    match outcome {
        Outcome::Sent { provider_message_id } => {
            Outcome::Sent { provider_message_id: provider_message_id.replace('\0', "\\u{0}") }
        }
        Outcome::Suppressed { reason } => {
            Outcome::Suppressed { reason: storable_text(reason, cause) }
        }
        Outcome::Rejected { reason } => Outcome::Rejected { reason: storable_text(reason, cause) },
        Outcome::Failed { reason } => Outcome::Failed { reason: storable_text(reason, cause) },
        Outcome::Unknown { reason } => Outcome::Unknown { reason: storable_text(reason, cause) },
    }
}

/// The event's copy as stored: sensitive variables replaced by `"***"`, so that neither the
/// database nor anything that shows it holds them.
fn masked_envelope(envelope: &serde_json::Value, sensitive: &[String]) -> serde_json::Value {
    let mut copy = envelope.clone();
    if let Some(variables) = copy.pointer_mut("/data/variables").and_then(|v| v.as_object_mut()) {
        for name in sensitive {
            if let Some(value) = variables.get_mut(name) {
                *value = serde_json::Value::String("***".into());
            }
        }
    }
    copy
}

fn outgoing_email(
    tenant: &TenantProfile,
    event: &Event,
    subject: Subject,
    html_body: String,
    text_body: String,
) -> OutgoingEmail {
    OutgoingEmail {
        delivery_id: event.key.delivery_id(),
        tenant: tenant.id.clone(),
        event_type: event.event_type.clone(),
        from: tenant.from.clone(),
        reply_to: tenant.reply_to.clone(),
        to: Mailbox { address: event.recipient.email.clone(), name: event.recipient.name.clone() },
        subject,
        html_body,
        text_body,
        sending: tenant.sending.clone(),
        list_unsubscribe: None,
    }
}
