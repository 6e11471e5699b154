//! What a driving adapter (the SQS consumer) hands its messages to: the events use case or the
//! feedback use case, behind one trait so that one consumer serves both queues.

use async_trait::async_trait;
use tracing::debug;

use crate::{EventHandler, FeedbackHandler, Handled, InboundMessage, RetryLater};

/// Handles one queue message.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// MUST return `Ok` only once what the message asks for is recorded (the message may then be
    /// deleted), and `Err` when it must come back later, having changed nothing that would stop
    /// a later delivery of the same message from succeeding.
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater>;
}

#[async_trait]
impl MessageHandler for EventHandler {
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater> {
        let handled = self.handle(message).await?;
        if let Handled::Duplicate { delivery_id, .. } = &handled {
            debug!(%delivery_id, "duplicate delivery of a decided event");
        }
        Ok(())
    }
}

#[async_trait]
impl MessageHandler for FeedbackHandler {
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater> {
        self.handle(message).await.map(|_| ())
    }
}
