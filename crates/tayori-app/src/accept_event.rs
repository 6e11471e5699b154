//! Accepting an event from a producer over HTTP (the intake of `tayori dev`): check it at the
//! door so the producer learns at once what is wrong, record what is refused, queue the rest.

use std::sync::Arc;

use tayori_domain::{DeliveryId, decode_message_body};

use crate::handle_event::{EventHandler, Handled, InboundMessage};
use crate::ports::EventQueue;

/// What became of a posted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// It meets the contract and waits for a worker; this delivery will decide it.
    Queued {
        /// Derived from the event's key: the same event always gets the same id.
        delivery_id: DeliveryId,
    },
    /// It breaks the contract. It was recorded as `rejected` with this reason.
    Rejected {
        /// What is wrong.
        reason: String,
        /// The delivery it was recorded against, when it had a key.
        delivery_id: Option<DeliveryId>,
    },
}

/// The event could neither be queued nor its rejection recorded: nothing was kept, the
/// producer must try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IntakeError(pub String);

/// The intake use case.
pub struct EventIntake {
    /// Records rejections exactly as a worker would.
    pub handler: Arc<EventHandler>,
    /// Where valid events wait.
    pub queue: Arc<dyn EventQueue>,
}

impl EventIntake {
    /// Checks a body against the contract; queues it or records its rejection.
    pub async fn accept(&self, body: Vec<u8>) -> Result<Accepted, IntakeError> {
        match decode_message_body(&body) {
            Ok(event) => {
                let delivery_id = event.key.delivery_id();
                self.queue.publish(body).await.map_err(|e| IntakeError(e.to_string()))?;
                Ok(Accepted::Queued { delivery_id })
            }
            Err(error) => {
                // The worker's own path records it, so a rejection looks the same whichever
                // door the event came through; a repeat is counted as a duplicate.
                let handled = self
                    .handler
                    .handle(&InboundMessage::first(body))
                    .await
                    .map_err(|retry| IntakeError(retry.reason))?;
                let delivery_id = match handled {
                    Handled::Decided { delivery_id, .. }
                    | Handled::Duplicate { delivery_id, .. }
                    | Handled::Held { delivery_id, .. } => Some(delivery_id),
                    Handled::RejectedWithoutKey { .. } => None,
                };
                Ok(Accepted::Rejected { reason: error.reason, delivery_id })
            }
        }
    }
}
