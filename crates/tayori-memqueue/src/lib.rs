//! The in-process event queue of `tayori dev` and the workers that drain it.
//!
//! It owns a bounded channel that implements [`EventQueue`], and the loop that hands each
//! message to the [`EventHandler`] use case with bounded concurrency, redelivers it after a
//! backoff when the use case says [`RetryLater`](tayori_app::RetryLater), and drains what is in
//! flight on shutdown. It stands in for SQS on a developer's machine: messages live in memory
//! and are lost if the process dies (the outcome store is durable; the queue is not). It must
//! not know how events are parsed, rendered or sent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tayori_app::ports::{EventQueue, QueueError};
use tayori_app::{EventHandler, Handled, InboundMessage};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// A message waiting in the queue, with how often it was handed out.
#[derive(Debug)]
struct Queued {
    body: Vec<u8>,
    receive_count: u32,
}

/// The publishing side: cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    sender: mpsc::Sender<Queued>,
}

/// The consuming side; see [`Workers::run`].
#[derive(Debug)]
pub struct Workers {
    sender: mpsc::Sender<Queued>,
    receiver: mpsc::Receiver<Queued>,
}

/// Creates a queue holding at most `capacity` waiting messages.
pub fn memory_queue(capacity: usize) -> (MemoryQueue, Workers) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (MemoryQueue { sender: sender.clone() }, Workers { sender, receiver })
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn publish(&self, body: Vec<u8>) -> Result<(), QueueError> {
        // Refuse at once when full rather than hold the producer's request open: it can retry.
        self.sender
            .try_send(Queued { body, receive_count: 0 })
            .map_err(|e| QueueError::Unavailable(format!("in-process queue: {e}")))
    }
}

/// How the workers behave.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages handled at once.
    pub concurrency: usize,
    /// The first wait before a message the use case could not decide comes back.
    pub first_backoff: Duration,
    /// The longest such wait.
    pub max_backoff: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Workers {
    /// Hands messages to `handler` until `shutdown` turns true, then waits for the messages in
    /// flight to finish. Messages still waiting (or waiting for a retry) at shutdown are dropped
    /// with a warning naming how many: this queue is for development only.
    pub async fn run(
        mut self,
        handler: Arc<EventHandler>,
        settings: WorkerSettings,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                message = self.receiver.recv() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let handler = handler.clone();
            let requeue = self.sender.clone();
            let settings = settings.clone();
            in_flight.spawn(async move {
                let _permit = permit;
                handle_one(&handler, message, &requeue, &settings).await;
            });
            // Reap finished tasks so the set does not grow without bound.
            while in_flight.try_join_next().is_some() {}
        }
        let waiting = self.receiver.len();
        info!(in_flight = in_flight.len(), "workers stopping; letting work in flight finish");
        while in_flight.join_next().await.is_some() {}
        if waiting > 0 {
            warn!(waiting, "in-process queue dropped messages that were still waiting");
        }
    }
}

async fn handle_one(
    handler: &EventHandler,
    message: Queued,
    requeue: &mpsc::Sender<Queued>,
    settings: &WorkerSettings,
) {
    let receive_count = message.receive_count + 1;
    let inbound = InboundMessage::internal(message.body, receive_count);
    match handler.handle(&inbound).await {
        Ok(
            Handled::Decided { .. }
            | Handled::Duplicate { .. }
            | Handled::Held { .. }
            | Handled::RejectedWithoutKey { .. },
        ) => {}
        Err(retry) => {
            let wait = retry.retry_after.unwrap_or_else(|| backoff(settings, receive_count));
            info!(reason = %retry.reason, ?wait, receive_count, "will retry");
            let again = Queued { body: inbound.body, receive_count };
            let requeue = requeue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if requeue.send(again).await.is_err() {
                    warn!("queue closed before a retry could be queued");
                }
            });
        }
    }
}

/// Doubling waits from `first_backoff`, capped at `max_backoff`. No jitter: one process, no
/// herd to spread out.
fn backoff(settings: &WorkerSettings, receive_count: u32) -> std::time::Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    settings.first_backoff.saturating_mul(1 << doublings).min(settings.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = WorkerSettings {
            concurrency: 1,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=6).map(|n| backoff(&settings, n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
    }
}
