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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackPolicy {
    /// Transient bounces of one address (for one tenant) within `transient_bounce_window` that
    /// suppress it; 0 never suppresses on transient bounces.
    pub transient_bounce_limit: u32,
    /// The window transient bounces are counted in.
    pub transient_bounce_window: Duration,
}

impl Default for FeedbackPolicy {
    fn default() -> Self {
        Self { transient_bounce_limit: 3, transient_bounce_window: Duration::from_secs(7 * 86_400) }
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
    },
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
    ///   a match.
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
    /// - Events matching nothing and invalid bodies MUST be kept (with their reason), never
    ///   dropped.
    async fn record_feedback(
        &self,
        record: FeedbackRecord<'_>,
        policy: &FeedbackPolicy,
        now: DateTime<Utc>,
    ) -> Result<FeedbackRecorded, StoreError>;
}
