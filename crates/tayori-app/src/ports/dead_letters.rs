use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// How many messages the events queue's dead-letter queue holds (approximate, as SQS counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterDepth {
    /// The dead-letter queue's name.
    pub queue: String,
    /// Messages waiting in it.
    pub visible: u64,
    /// Messages received from it and not yet deleted or returned (a redrive under way).
    pub in_flight: u64,
}

/// One message of the dead-letter queue, as read without taking it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterMessage {
    /// The queue's id of the message.
    pub message_id: String,
    /// When it was first sent to the events queue (SQS keeps it on the move to the dead-letter
    /// queue; a redrive sends a new message).
    pub sent_at: Option<DateTime<Utc>>,
    /// How many times it was received, the peeks included.
    pub receive_count: u32,
    /// The body as received: for the use case to read its key and type, never to show.
    pub body: Vec<u8>,
}

/// Why the dead-letter queue could not be read or redriven.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The events queue has no redrive policy, so there is no dead-letter queue to look at.
    #[error("the events queue has no dead-letter queue (no redrive policy on {0})")]
    NoDeadLetterQueue(String),
    /// The queue service cannot be reached or refused the call; try again.
    #[error("the dead-letter queue cannot be reached: {0}")]
    Unavailable(String),
    /// A redrive stopped part way; the messages it moved are back on the events queue.
    #[error("the redrive stopped after {moved} messages: {reason}")]
    RedriveStopped {
        /// Messages moved before it stopped.
        moved: u64,
        /// What failed.
        reason: String,
    },
}

/// The events queue's dead-letter queue (SQS): what operators look at and redrive once the
/// cause of a run of dead letters is fixed.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// How many messages it holds.
    async fn depth(&self) -> Result<DeadLetterDepth, DeadLetterError>;

    /// Up to `limit` of its messages, each once, read without hiding them from anyone else (a
    /// sample when the queue holds more: SQS gives no order).
    async fn peek(&self, limit: u32) -> Result<Vec<DeadLetterMessage>, DeadLetterError>;

    /// Moves up to `max` messages back to the events queue, each sent there before it is
    /// deleted here (a failure can leave a copy in both, which idempotency makes harmless, never
    /// none); returns how many moved.
    async fn redrive(&self, max: u64) -> Result<u64, DeadLetterError>;
}
