use async_trait::async_trait;

/// The queue could not take the message.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is full or unreachable; the caller should try again later.
    #[error("event queue unavailable: {0}")]
    Unavailable(String),
}

/// Where accepted events wait for a worker (the in-process queue of `tayori dev`; SQS in
/// production, fed by the products directly).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// MUST either keep the body for a worker to handle at least once, or return an error.
    async fn publish(&self, body: Vec<u8>) -> Result<(), QueueError>;
}
