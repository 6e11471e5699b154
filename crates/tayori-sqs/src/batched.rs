//! SQS calls made in batches of up to ten: deletes of handled messages, and visibility changes
//! of messages left for later (a backoff, or a hand-back of a tenant over its share), so a busy
//! worker makes one call per ten messages instead of one per message.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How long an entry waits for companions before its batch is sent anyway.
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// SQS's most entries in one batch call.
const MAX_BATCH: usize = 10;

/// Hands entries to a batching task. Dropping every clone ends the task after it has sent what
/// it holds.
#[derive(Debug, Clone)]
pub(crate) struct Batched<T> {
    entries: mpsc::UnboundedSender<T>,
}

/// Deletes handled messages, by receipt handle.
pub(crate) type Deleter = Batched<String>;
/// Sets messages' visibility, by receipt handle and seconds.
pub(crate) type VisibilityChanger = Batched<(String, i32)>;

impl<T: Send + 'static> Batched<T> {
    /// Starts the task that collects entries and hands each batch to `send`.
    fn spawn<F, Fut>(mut send: F) -> (Self, JoinHandle<()>)
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (entries, mut incoming) = mpsc::unbounded_channel::<T>();
        let task = tokio::spawn(async move {
            let mut batch: Vec<T> = Vec::with_capacity(MAX_BATCH);
            loop {
                let next = if batch.is_empty() {
                    incoming.recv().await
                } else {
                    match tokio::time::timeout(FLUSH_AFTER, incoming.recv()).await {
                        Ok(next) => next,
                        Err(_elapsed) => {
                            send(std::mem::take(&mut batch)).await;
                            continue;
                        }
                    }
                };
                match next {
                    Some(entry) => {
                        batch.push(entry);
                        if batch.len() == MAX_BATCH {
                            send(std::mem::take(&mut batch)).await;
                        }
                    }
                    None => {
                        if !batch.is_empty() {
                            send(batch).await;
                        }
                        return;
                    }
                }
            }
        });
        (Self { entries }, task)
    }

    fn push(&self, entry: T) {
        // The task ends only when every sender is gone, so this cannot fail while `self` lives.
        let _ = self.entries.send(entry);
    }
}

impl Deleter {
    /// Starts the deleting task.
    pub(crate) fn spawn_deleter(
        client: Client,
        queue_url: String,
        call_timeout: Duration,
    ) -> (Self, JoinHandle<()>) {
        Self::spawn(move |batch| {
            let (client, queue_url) = (client.clone(), queue_url.clone());
            async move { delete_batch(&client, &queue_url, call_timeout, batch).await }
        })
    }

    /// Queues a message for deletion.
    pub(crate) fn delete(&self, receipt: String) {
        self.push(receipt);
    }
}

impl VisibilityChanger {
    /// Starts the task that changes visibilities.
    pub(crate) fn spawn_visibility_changer(
        client: Client,
        queue_url: String,
        call_timeout: Duration,
    ) -> (Self, JoinHandle<()>) {
        Self::spawn(move |batch| {
            let (client, queue_url) = (client.clone(), queue_url.clone());
            async move { change_visibility_batch(&client, &queue_url, call_timeout, batch).await }
        })
    }

    /// Queues a change of a message's visibility to `seconds` from when the batch is sent (at
    /// most [`FLUSH_AFTER`] later; the message stays invisible meanwhile).
    pub(crate) fn set(&self, receipt: String, seconds: i32) {
        self.push((receipt, seconds));
    }
}

/// A message whose delete fails comes back after its visibility timeout; the use case then finds
/// its key decided and counts a duplicate. So failures are logged, not retried here.
async fn delete_batch(client: &Client, queue_url: &str, timeout: Duration, batch: Vec<String>) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = batch
        .into_iter()
        .enumerate()
        .filter_map(|(i, receipt)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .ok()
        })
        .collect();
    let count = entries.len();
    // The crash tests' "during the delete": the receipts are taken, no call made.
    #[cfg(feature = "failpoints")]
    fail::fail_point!("sqs.during_delete");
    let call = client.delete_message_batch().queue_url(queue_url).set_entries(Some(entries)).send();
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(output)) => {
            if !output.failed().is_empty() {
                warn!(
                    failed = output.failed().len(),
                    first_error = output.failed()[0].message().unwrap_or_default(),
                    "some handled messages were not deleted; they will come back as duplicates"
                );
            }
            debug!(deleted = output.successful().len(), "deleted handled messages");
        }
        Ok(Err(error)) => warn!(
            count,
            error = %DisplayErrorContext(&error),
            "could not delete handled messages; they will come back as duplicates"
        ),
        Err(_elapsed) => warn!(count, "deleting handled messages timed out; they may come back"),
    }
}

/// A message whose visibility change fails comes back when its current visibility timeout ends
/// (at most the consumer's `visibility_timeout_seconds`): sooner or later than asked, never lost.
async fn change_visibility_batch(
    client: &Client,
    queue_url: &str,
    timeout: Duration,
    batch: Vec<(String, i32)>,
) {
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = batch
        .into_iter()
        .enumerate()
        .filter_map(|(i, (receipt, seconds))| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .visibility_timeout(seconds)
                .build()
                .ok()
        })
        .collect();
    let count = entries.len();
    let call = client
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send();
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(output)) => {
            if !output.failed().is_empty() {
                warn!(
                    failed = output.failed().len(),
                    first_error = output.failed()[0].message().unwrap_or_default(),
                    "some visibility changes failed; those messages return when their timeout ends"
                );
            }
        }
        Ok(Err(error)) => warn!(
            count,
            error = %DisplayErrorContext(&error),
            "could not change messages' visibility; they return when their timeout ends"
        ),
        Err(_elapsed) => warn!(count, "changing messages' visibility timed out"),
    }
}
