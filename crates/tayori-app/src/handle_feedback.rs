//! The path of one SES feedback message: parse it (an unreadable one is kept with its reason),
//! then record it against its delivery — timeline, feedback status, automatic suppression — in
//! one store call. Redeliveries are recognised by the event's identity; see `docs/feedback.md`.
//! A report on a delivery whose send had no answer (`unknown`) reconciles it as `sent`; one on a
//! delivery still without an outcome comes back later (`docs/idempotency.md`).

use std::sync::Arc;
use std::time::Duration;

use tayori_domain::parse_feedback;
use tracing::{Instrument, info, warn};

use crate::ports::{Clock, FeedbackPolicy, FeedbackRecord, FeedbackRecorded, FeedbackStore};
use crate::{InboundMessage, RetryLater, telemetry};

/// How long a report on a delivery that has no outcome yet waits on the queue before it is
/// looked at again: about the time a worker takes to record an unknown send, or a dead worker's
/// lease to run out.
const NOT_DECIDED_RETRY: Duration = Duration::from_secs(30);

/// Handles SES feedback messages.
pub struct FeedbackHandler {
    /// Where feedback is recorded.
    pub store: Arc<dyn FeedbackStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// When transient bounces suppress.
    pub policy: FeedbackPolicy,
}

impl FeedbackHandler {
    /// Parses and records one message. `Err` only when the store could not be reached: the
    /// message must come back.
    pub async fn handle(&self, message: &InboundMessage) -> Result<FeedbackRecorded, RetryLater> {
        let parsed = parse_feedback(&message.body);
        let (kind, identity) = match &parsed {
            Ok(event) => (event.kind.name(), event.identity.as_str()),
            Err(invalid) => ("invalid", invalid.identity.as_str()),
        };
        let span = tracing::info_span!(
            "handle_feedback",
            feedback.kind = kind,
            feedback.id = identity,
            ses_message_id = parsed.as_ref().ok().and_then(|e| e.ses_message_id.as_deref()),
        );
        async {
            let record = match &parsed {
                Ok(event) => FeedbackRecord::Event(event),
                Err(invalid) => {
                    warn!(reason = %invalid.reason, "SES feedback could not be read; kept");
                    FeedbackRecord::Invalid { invalid, body: &message.body }
                }
            };
            let recorded = self
                .store
                .record_feedback(record, &self.policy, self.clock.now())
                .await
                .map_err(|error| {
                    telemetry::feedback_recorded(kind, None);
                    RetryLater { delivery_id: None, reason: error.to_string(), retry_after: None }
                })?;
            if recorded == FeedbackRecorded::NotDecidedYet {
                telemetry::feedback_recorded(kind, None);
                info!("feedback about a delivery without an outcome yet; it will come back");
                return Err(RetryLater {
                    delivery_id: parsed.as_ref().ok().and_then(|e| e.delivery_id),
                    reason: "the delivery has no outcome yet".into(),
                    retry_after: Some(NOT_DECIDED_RETRY),
                });
            }
            telemetry::feedback_recorded(kind, Some(&recorded));
            match &recorded {
                FeedbackRecorded::Matched {
                    tenant,
                    delivery_id,
                    status,
                    suppressed,
                    paused,
                    reconciled,
                } => {
                    info!(
                        %tenant,
                        %delivery_id,
                        status = status.map(|s| s.as_str()),
                        suppressed,
                        reconciled,
                        "feedback recorded"
                    );
                    if *reconciled {
                        warn!(%tenant, %delivery_id, "SES reported on a send whose result was unknown: the delivery is sent (reconciled)");
                    }
                    if *paused {
                        warn!(%tenant, "the tenant's bounce or complaint rate is over the threshold: its sending is paused until an operator resumes it");
                    }
                }
                FeedbackRecorded::Unmatched => {
                    info!("feedback matches no delivery; kept as unmatched")
                }
                FeedbackRecorded::Duplicate => info!("feedback seen before; nothing changed"),
                FeedbackRecorded::Invalid | FeedbackRecorded::NotDecidedYet => {}
            }
            Ok(recorded)
        }
        .instrument(span)
        .await
    }
}
