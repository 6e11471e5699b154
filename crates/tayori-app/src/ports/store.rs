use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{
    DeliveryId, DeliveryStatus, EmailAddress, EventType, IdempotencyKey, Outcome, RawBody, Subject,
    TenantId,
};

/// Everything a claim needs: the key, who claims it for how long, and what is known of the event
/// so the delivery row is useful to operators from its first moment.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The event's idempotency key.
    pub key: IdempotencyKey,
    /// The event type, when the event had a valid one.
    pub event_type: Option<EventType>,
    /// The recipient, when the event had a valid one.
    pub recipient: Option<EmailAddress>,
    /// The event's envelope as JSON, when it parsed.
    pub event_json: Option<String>,
    /// The raw body, kept for events that do not meet the contract.
    pub raw_body: Option<RawBody>,
    /// The claiming worker (for diagnosis only).
    pub owner: String,
    /// The queue's receive count of the message that carried the event.
    pub receive_count: u32,
    /// How long the claim holds before another worker may take it over.
    pub lease: Duration,
    /// The current time.
    pub now: DateTime<Utc>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the lease and must decide the delivery. `attempt` counts claims of this
    /// key, this one included (1 on the first delivery, more after crashes and retries).
    Claimed {
        /// The claim's number.
        attempt: u32,
    },
    /// The key has an outcome already; nothing must be sent.
    AlreadyDecided {
        /// The outcome's status.
        status: DeliveryStatus,
    },
    /// Another worker holds an unexpired lease on the key.
    InFlight {
        /// When that lease ends.
        lease_expires_at: DateTime<Utc>,
    },
}

/// The answer to recording an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The outcome is now the delivery's.
    Recorded,
    /// The delivery was decided before (by another worker whose lease overlapped); the earlier
    /// outcome stands.
    AlreadyDecided {
        /// The earlier outcome's status.
        status: DeliveryStatus,
    },
}

/// What one send attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The sender accepted the email.
    Accepted,
    /// A transient error; nothing was sent.
    TransientError,
    /// The sender refused for good.
    PermanentError,
    /// No answer: the email may have been sent.
    Unknown,
}

impl AttemptResult {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Accepted => "accepted",
            AttemptResult::TransientError => "transient_error",
            AttemptResult::PermanentError => "permanent_error",
            AttemptResult::Unknown => "unknown",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Accepted, Self::TransientError, Self::PermanentError, Self::Unknown]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// How a send attempt ended, as the use case reports it to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptEnd<'a> {
    /// The claim number the attempt belongs to.
    pub attempt: u32,
    /// What it came to.
    pub result: AttemptResult,
    /// The sender's message id or error.
    pub detail: &'a str,
}

/// One send attempt as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The claim number it belonged to.
    pub attempt: u32,
    /// When the send started.
    pub started_at: DateTime<Utc>,
    /// When it finished; `None` if the worker died during the send.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended; `None` if the worker died during the send.
    pub result: Option<AttemptResult>,
    /// The sender's message id or error.
    pub detail: Option<String>,
}

/// A body that did not even yield an idempotency key (not JSON, no tenant, ...).
#[derive(Debug, Clone)]
pub struct UnkeyedRejection {
    /// The tenant, when the body named a valid one.
    pub tenant: Option<TenantId>,
    /// The body as received (capped).
    pub raw_body: RawBody,
    /// Why it was rejected.
    pub reason: String,
    /// When it was received.
    pub now: DateTime<Utc>,
}

/// A stored unkeyed rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnkeyedRejectionRecord {
    /// SHA-256 of the whole body: the same bad body is stored once.
    pub body_sha256: String,
    /// The tenant, when known.
    pub tenant: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// The body as kept (capped).
    pub raw_body: Vec<u8>,
    /// The whole body's size.
    pub body_size: u64,
    /// How often it arrived.
    pub times_seen: u32,
    /// First arrival.
    pub first_seen_at: DateTime<Utc>,
    /// Last arrival.
    pub last_seen_at: DateTime<Utc>,
}

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Derived from the key.
    pub delivery_id: DeliveryId,
    /// The key's tenant (possibly one that is not configured: then the delivery is rejected).
    pub tenant: TenantId,
    /// The key's source.
    pub source: String,
    /// The key's id.
    pub event_id: String,
    /// The event type, when valid.
    pub event_type: Option<String>,
    /// The recipient, when valid.
    pub recipient: Option<String>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Why (for every outcome but `sent`).
    pub reason: Option<String>,
    /// The sender's message id (for `sent`).
    pub provider_message_id: Option<String>,
    /// The rendered subject, once rendered.
    pub subject: Option<String>,
    /// How many claims were made (first delivery, takeovers, retries).
    pub claim_count: u32,
    /// How many times a decided key arrived again.
    pub duplicate_count: u32,
    /// The queue's receive count of the message at the latest claim (SQS
    /// `ApproximateReceiveCount`).
    pub receive_count: u32,
    /// The lease's end while processing.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The envelope as received.
    pub event_json: Option<String>,
    /// The raw body, for events that did not meet the contract.
    pub raw_body: Option<Vec<u8>>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// When the outcome was recorded.
    pub decided_at: Option<DateTime<Utc>>,
    /// When an SES report about the email made an `unknown` delivery `sent` (reconciled); `None`
    /// for every other delivery.
    pub reconciled_at: Option<DateTime<Utc>>,
}

/// Where a page of deliveries ends: the next page starts after it (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCursor {
    /// `created_at` of the last row of the page.
    pub created_at: DateTime<Utc>,
    /// `delivery_id` of the last row of the page (tie-breaker).
    pub delivery_id: DeliveryId,
}

/// A search for deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only these tenants; `None` means every tenant.
    pub tenants: Option<Vec<TenantId>>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// At most this many (capped at 500 by stores).
    pub limit: u32,
    /// Start after this row.
    pub after: Option<DeliveryCursor>,
}

/// A page of deliveries and where the next one starts.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    /// The rows, newest first.
    pub deliveries: Vec<DeliveryRecord>,
    /// The cursor of the next page, when there may be one.
    pub next: Option<DeliveryCursor>,
}

/// The store failed. Callers retry `Unavailable`; `Refused` will fail again for the same data;
/// `Unexpected` means a bug or corrupt data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is restarting; try again later.
    #[error("delivery store unavailable: {0}")]
    Unavailable(String),
    /// The store cannot keep the data this write carries (PostgreSQL: a data exception, SQLSTATE
    /// class 22, such as NUL in text; or a program limit, 54000). The same write would be
    /// refused again: callers record what they can instead of retrying it.
    #[error("delivery store refused the data: {0}")]
    Refused(String),
    /// Anything else.
    #[error("delivery store failed: {0:#}")]
    Unexpected(#[from] anyhow::Error),
}

/// The text rule every store applies, so that they all agree on what they keep: text holding
/// U+0000 is refused with [`StoreError::Refused`], since PostgreSQL cannot keep NUL in `text`.
/// Stores that could (SQLite, the in-memory fake) call this before each write with the write's
/// texts as `(field, text)` pairs (an absent text passes); the first field holding NUL is named.
pub fn refuse_nul(texts: &[(&str, Option<&str>)]) -> Result<(), StoreError> {
    match texts.iter().find(|(_, text)| text.is_some_and(|text| text.contains('\0'))) {
        Some((field, _)) => {
            Err(StoreError::Refused(format!("{field}: text must not contain NUL (U+0000)")))
        }
        None => Ok(()),
    }
}

/// Records which events were decided, so that a redelivered event is never mailed twice.
///
/// Keys, indexes and queries lead with the tenant. Times come from the caller's [`ClaimRequest::now`]
/// and `at` arguments, never from the database's clock, so that every worker agrees on leases
/// with its own clock and tests can move time.
///
/// Every store MUST keep text as given, or refuse the write with [`StoreError::Refused`] and
/// change nothing; all of them MUST refuse text containing NUL ([`refuse_nul`]), which
/// PostgreSQL cannot keep, so that an event meets the same fate on each. Bytes (raw bodies) are
/// kept whatever they hold, and JSON text (`event_json`) carries its control characters as
/// escapes, so both always fit.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Claims a key for a lease.
    ///
    /// - On a key never seen, it MUST create the delivery in `processing` and return
    ///   `Claimed { attempt: 1 }`.
    /// - On a decided key, it MUST return `AlreadyDecided` and change nothing.
    /// - On a key in `processing` whose lease ends after `now`, it MUST return `InFlight`.
    /// - On a key in `processing` whose lease has ended, it MUST take the lease over and return
    ///   `Claimed` with the next attempt number.
    ///
    /// Among concurrent claims of one key, from any number of processes, exactly one MUST win.
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError>;

    /// Claims a key like [`claim`](Self::claim) for an email that is ready to send, and when
    /// the claim is the key's first (`Claimed { attempt: 1 }`) records send attempt 1 as started
    /// at `request.now`, as [`record_attempt_started`](Self::record_attempt_started) would. A
    /// later claim (a takeover, a retry after a release) starts no attempt: its caller must
    /// first look at the earlier attempts, then start its own.
    ///
    /// A store that can make the claim and the attempt row one write (PostgreSQL: one
    /// statement, or one transaction in a batch) should: the event path then waits for two
    /// commits instead of three. Either way, when it returns `Claimed { attempt: 1 }` the
    /// attempt row MUST be durable. The default makes the two calls in turn, and gives the
    /// lease back if the second fails.
    async fn claim_and_start_attempt(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let claim = self.claim(request).await?;
        if claim == (Claim::Claimed { attempt: 1 }) {
            let key = &request.key;
            if let Err(error) = self.record_attempt_started(key, 1, request.now).await {
                // So that a redelivery can claim (attempt 2) at once, not after the lease.
                let _ = self.release(key, request.now).await;
                return Err(error);
            }
        }
        Ok(claim)
    }

    /// Ends the lease early (after a transient error) so a redelivery can claim at once. It
    /// MUST leave a decided delivery alone.
    async fn release(&self, key: &IdempotencyKey, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records the outcome of a delivery in `processing`, with the rendered subject when there
    /// was one. It MUST NOT change a decided delivery: then it returns `AlreadyDecided`.
    async fn record_outcome(
        &self,
        key: &IdempotencyKey,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError>;

    /// Counts one more arrival of a decided key.
    async fn record_duplicate(
        &self,
        key: &IdempotencyKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records that a send attempt is starting. It MUST be durable before the send begins, so a
    /// crash during the send leaves a trace.
    async fn record_attempt_started(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records how a send attempt ended.
    async fn record_attempt_finished(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records how a send attempt ended together with the outcome it decides (`sent` after an
    /// accepted send, `failed` after a refusal or an unknown result), under the rules of
    /// [`record_attempt_finished`](Self::record_attempt_finished) and
    /// [`record_outcome`](Self::record_outcome). A store that can make the two one write
    /// (PostgreSQL: one transaction) should: the event path then waits for one commit instead
    /// of two, and no crash falls between the result and the outcome. The default makes the two
    /// calls in turn.
    async fn record_attempt_finished_and_outcome(
        &self,
        key: &IdempotencyKey,
        end: AttemptEnd<'_>,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        self.record_attempt_finished(key, end.attempt, end.result, end.detail, at).await?;
        self.record_outcome(key, outcome, subject, at).await
    }

    /// Keeps a body that yielded no key. The same body (by SHA-256) MUST be stored once, its
    /// arrivals counted.
    async fn record_unkeyed_rejection(
        &self,
        rejection: &UnkeyedRejection,
    ) -> Result<(), StoreError>;

    /// One delivery by id, or `None`. With `tenants`, a delivery of another tenant MUST be
    /// `None`.
    async fn delivery(
        &self,
        id: DeliveryId,
        tenants: Option<&[TenantId]>,
    ) -> Result<Option<DeliveryRecord>, StoreError>;

    /// A delivery's send attempts, oldest first.
    async fn attempts(
        &self,
        tenant: &TenantId,
        id: DeliveryId,
    ) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Deliveries matching the query, newest first, one page.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError>;

    /// Whether the store can take writes now: a cheap check, answered within a few seconds,
    /// that the worker asks every second or so to stop taking work during an outage (and to
    /// start again after it). It MUST fail with `Unavailable` when the store cannot be reached
    /// or cannot write, and MUST NOT wait behind the event path's work (a busy pool is not an
    /// outage). The default reads one delivery.
    async fn probe(&self) -> Result<(), StoreError> {
        self.deliveries(&DeliveryQuery { limit: 1, ..Default::default() }).await.map(|_| ())
    }

    /// Unkeyed rejections, most recently seen first.
    async fn unkeyed_rejections(
        &self,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError>;
}
