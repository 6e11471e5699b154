use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{DeliveryId, FeedbackEvent, FeedbackStatus, InvalidFeedback, TenantId};

use super::StoreError;

/// A feedback-queue message to record: an SES event that was read, or one that could not be.
#[derive(Debug, Clone)]
pub enum FeedbackRecord<'a> {
    /// An SES event, validated.
    Event(&'a FeedbackEvent),
    /// A body that could not be read, with the reason and the body as received (the store keeps
    /// at most its first 64 KiB).
    Invalid {
        /// The identity and reason.
        invalid: &'a InvalidFeedback,
        /// The body.
        body: &'a [u8],
    },
}

/// When feedback suppresses an address beyond the fixed rules (a permanent bounce or a complaint
/// suppresses every class of mail; an unsubscribe suppresses `subscription` mail).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackPolicy {
    /// Transient bounces of one address (for one tenant) within `transient_bounce_window` that
    /// suppress it; 0 never suppresses on transient bounces.
    pub transient_bounce_limit: u32,
    /// The window transient bounces are counted in.
    pub transient_bounce_window: Duration,
    /// Pausing tenants whose bounce or complaint rate is too high; `None`: never.
    pub reputation: Option<ReputationGuard>,
}

impl Default for FeedbackPolicy {
    fn default() -> Self {
        Self {
            transient_bounce_limit: 3,
            transient_bounce_window: Duration::from_secs(7 * 86_400),
            reputation: Some(ReputationGuard::default()),
        }
    }
}

/// Rates above which a tenant's sending harms the account's reputation (SES reviews accounts
/// above about 5 % bounces and 0.1 % complaints); judged only from `min_sent` deliveries on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReputationThresholds {
    /// Bounced / sent.
    pub bounce_rate: f64,
    /// Complained / sent.
    pub complaint_rate: f64,
    /// Fewer sent deliveries than this are not judged (the rates mean little).
    pub min_sent: u64,
}

impl Default for ReputationThresholds {
    fn default() -> Self {
        Self { bounce_rate: 0.04, complaint_rate: 0.0008, min_sent: 200 }
    }
}

/// A tenant's rates over a window, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantReputation {
    /// The counts.
    pub counts: super::ReputationCount,
    /// Bounced / sent.
    pub bounce_rate: f64,
    /// Complained / sent.
    pub complaint_rate: f64,
    /// Enough volume and a rate above its threshold.
    pub over_threshold: bool,
    /// The thresholds applied.
    pub thresholds: ReputationThresholds,
}

impl ReputationThresholds {
    /// The rates of `counts`, judged against these thresholds.
    pub fn judge(self, counts: super::ReputationCount) -> TenantReputation {
        let rate = |n: u64| if counts.sent == 0 { 0.0 } else { n as f64 / counts.sent as f64 };
        let (bounce_rate, complaint_rate) = (rate(counts.bounced), rate(counts.complained));
        let over_threshold = counts.sent >= self.min_sent
            && (bounce_rate > self.bounce_rate || complaint_rate > self.complaint_rate);
        TenantReputation { counts, bounce_rate, complaint_rate, over_threshold, thresholds: self }
    }
}

/// The reputation guard: a tenant whose rates over `window` go above `thresholds` is paused.
#[derive(Debug, Clone, PartialEq)]
pub struct ReputationGuard {
    /// The rates that pause.
    pub thresholds: ReputationThresholds,
    /// The sliding window the rates are computed over.
    pub window: Duration,
}

impl Default for ReputationGuard {
    fn default() -> Self {
        Self { thresholds: ReputationThresholds::default(), window: Duration::from_secs(86_400) }
    }
}

/// What recording a feedback message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedbackRecorded {
    /// Appended to this delivery's timeline; its feedback status is now `status` (unchanged when
    /// the event ranks below where it stood, or moves no status).
    Matched {
        /// The delivery's tenant.
        tenant: TenantId,
        /// The delivery.
        delivery_id: DeliveryId,
        /// Its feedback status after this event, if it has one.
        status: Option<FeedbackStatus>,
        /// Addresses newly suppressed for the tenant because of this event.
        suppressed: u32,
        /// Whether this event paused the tenant (the reputation guard).
        paused: bool,
        /// Whether this event made an `unknown` delivery `sent` (reconciled): SES reported on
        /// an email whose send had no answer.
        reconciled: bool,
    },
    /// The delivery the event's tags name has no outcome yet (its worker is recording it, or
    /// died and the lease has not run out): nothing was recorded, the message must come back,
    /// so that a report on a send about to be recorded `unknown` is not lost.
    NotDecidedYet,
    /// No delivery matches its tags or message id: kept as unmatched.
    Unmatched,
    /// Kept as invalid with its reason.
    Invalid,
    /// This identity was recorded before (SNS/SQS redelivery): nothing changed.
    Duplicate,
}

/// Records SES feedback against deliveries: the timeline, the feedback status, automatic
/// suppressions, and what matched nothing.
#[async_trait]
pub trait FeedbackStore: Send + Sync {
    /// Records one feedback message, atomically.
    ///
    /// - It MUST record each identity at most once: a second call with an identity already
    ///   recorded MUST change nothing and return `Duplicate`.
    /// - It MUST match an event to a delivery by its `tayori-tenant` and `tayori-delivery-id`
    ///   tags when both are present, else by SES message id (the delivery's provider message
    ///   id); a delivery found by tags whose provider message id differs from the event's is not
    ///   a match (one without a provider message id is).
    /// - When the delivery found by tags is still `processing` without a provider message id,
    ///   it MUST record nothing and return `NotDecidedYet`.
    /// - When the delivery found by tags is `unknown` or `failed` without a provider message id
    ///   (its send's result was unknown), and the event has an SES message id, it MUST make the
    ///   delivery `sent` with that id as its provider message id and `reconciled_at = now`, and
    ///   audit it (action `delivery.reconcile`), in the same transaction: SES only reports on
    ///   emails it accepted.
    /// - On a match it MUST append a timeline entry (keys leading with the tenant) and set the
    ///   feedback status to [`FeedbackStatus::after`] of the current one and the event's.
    /// - On a match of an event that [suppresses](tayori_domain::FeedbackKind::suppresses), it
    ///   MUST add a suppression of every class for each recipient of the delivery's tenant that
    ///   is not suppressed yet, with the cause (`bounce` or `complaint`), and audit each one.
    /// - On a match of a transient bounce, it MUST do the same (cause `transient-bounces`) for
    ///   each recipient with at least `policy.transient_bounce_limit` transient bounces (this
    ///   one included) recorded for the tenant within `policy.transient_bounce_window`.
    /// - On a match of an event that [unsubscribes](tayori_domain::FeedbackKind::unsubscribes),
    ///   it MUST add a suppression of `subscription` mail only (cause `unsubscribe`), audited.
    /// - On a match of a bounce or a complaint, with `policy.reputation` set, it MUST pause the
    ///   tenant (audited, action `tenant.pause`) when its rates over the window are above the
    ///   thresholds, unless it is paused already or an operator resumed it less than a window ago.
    /// - Events matching nothing and invalid bodies MUST be kept (with their reason), never
    ///   dropped.
    async fn record_feedback(
        &self,
        record: FeedbackRecord<'_>,
        policy: &FeedbackPolicy,
        now: DateTime<Utc>,
    ) -> Result<FeedbackRecorded, StoreError>;
}

/// Tenants paused by an operator or the reputation guard, as the worker checks them before each
/// event.
#[async_trait]
pub trait TenantPauseList: Send + Sync {
    /// MUST return why the tenant is paused, or `None` when it is not (never paused, or resumed).
    async fn pause_reason(&self, tenant: &TenantId) -> Result<Option<String>, StoreError>;
}
