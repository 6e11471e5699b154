//! Deletes handled messages in batches of up to ten, so a busy worker makes one delete call
//! per batch instead of one per message.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How long a receipt waits for companions before its batch is sent anyway.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

/// Hands receipt handles to the batching task. Dropping every clone ends the task after it has
/// deleted what it holds.
#[derive(Debug, Clone)]
pub(crate) struct Deleter {
    receipts: mpsc::UnboundedSender<String>,
}

impl Deleter {
    /// Starts the batching task.
    pub(crate) fn spawn(
        client: Client,
        queue_url: String,
        call_timeout: Duration,
    ) -> (Self, JoinHandle<()>) {
        let (receipts, mut incoming) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            let mut batch: Vec<String> = Vec::with_capacity(10);
            loop {
                let next = if batch.is_empty() {
                    incoming.recv().await
                } else {
                    match tokio::time::timeout(FLUSH_AFTER, incoming.recv()).await {
                        Ok(next) => next,
                        Err(_elapsed) => {
                            delete_batch(&client, &queue_url, call_timeout, &mut batch).await;
                            continue;
                        }
                    }
                };
                match next {
                    Some(receipt) => {
                        batch.push(receipt);
                        if batch.len() == 10 {
                            delete_batch(&client, &queue_url, call_timeout, &mut batch).await;
                        }
                    }
                    None => {
                        delete_batch(&client, &queue_url, call_timeout, &mut batch).await;
                        return;
                    }
                }
            }
        });
        (Self { receipts }, task)
    }

    /// Queues a message for deletion.
    pub(crate) fn delete(&self, receipt: String) {
        // The task ends only when every sender is gone, so this cannot fail while `self` lives.
        let _ = self.receipts.send(receipt);
    }
}

/// A message whose delete fails comes back after its visibility timeout; the use case then finds
/// its key decided and counts a duplicate. So failures are logged, not retried here.
async fn delete_batch(
    client: &Client,
    queue_url: &str,
    timeout: Duration,
    batch: &mut Vec<String>,
) {
    if batch.is_empty() {
        return;
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = batch
        .drain(..)
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
            error = %aws_sdk_sqs::error::DisplayErrorContext(&error),
            "could not delete handled messages; they will come back as duplicates"
        ),
        Err(_elapsed) => warn!(count, "deleting handled messages timed out; they may come back"),
    }
}
