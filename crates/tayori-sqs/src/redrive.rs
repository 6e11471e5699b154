//! Moving messages from a dead-letter queue back to the events queue (after the cause of their
//! failures is fixed), as `tayori dlq redrive` does.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use tracing::info;

/// What a redrive moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Messages sent to the target queue and deleted from the dead-letter queue.
    pub moved: u64,
}

/// A redrive stopped early; what was moved before stays moved.
#[derive(Debug, thiserror::Error)]
#[error("redrive stopped after moving {moved} messages: {reason}")]
pub struct RedriveError {
    /// Messages moved before the failure.
    pub moved: u64,
    /// What failed.
    pub reason: String,
}

/// Moves up to `limit` messages (all when `None`) from `from_url` to `to_url`: each batch is
/// sent to the target, then deleted from the source, so a failure can at worst leave a copy in
/// both (which the idempotency key makes harmless), never lose one. Bodies, message attributes
/// and, for FIFO queues, group ids are kept. `progress` is called with the running total after
/// each batch.
pub async fn redrive(
    client: &Client,
    from_url: &str,
    to_url: &str,
    limit: Option<u64>,
    progress: impl Fn(u64),
) -> Result<RedriveReport, RedriveError> {
    let mut moved = 0u64;
    let fail = |moved, reason: String| RedriveError { moved, reason };
    loop {
        let wanted = limit.map_or(10, |l| l.saturating_sub(moved).min(10)) as i32;
        if wanted == 0 {
            break;
        }
        let received = client
            .receive_message()
            .queue_url(from_url)
            .max_number_of_messages(wanted)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send();
        let messages = tokio::time::timeout(Duration::from_secs(15), received)
            .await
            .map_err(|_| fail(moved, "receiving from the dead-letter queue timed out".into()))?
            .map_err(|e| fail(moved, format!("receiving: {}", DisplayErrorContext(&e))))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let fifo = to_url.ends_with(".fifo");
        let mut sends = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(message.body().unwrap_or_default())
                .set_message_attributes(message.message_attributes().cloned());
            if fifo {
                let group = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned()
                    .unwrap_or_else(|| "redrive".into());
                // The source message id is unique, so it deduplicates a retried redrive batch.
                entry = entry
                    .message_group_id(group)
                    .message_deduplication_id(message.message_id().unwrap_or_default());
            }
            sends.push(entry.build().map_err(|e| fail(moved, e.to_string()))?);
        }
        let sent = client
            .send_message_batch()
            .queue_url(to_url)
            .set_entries(Some(sends))
            .send()
            .await
            .map_err(|e| fail(moved, format!("sending: {}", DisplayErrorContext(&e))))?;
        if let Some(failed) = sent.failed().first() {
            return Err(fail(
                moved,
                format!("the target refused a message: {}", failed.message().unwrap_or_default()),
            ));
        }
        let deletes: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let deleted = client
            .delete_message_batch()
            .queue_url(from_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(|e| fail(moved, format!("deleting: {}", DisplayErrorContext(&e))))?;
        if let Some(failed) = deleted.failed().first() {
            return Err(fail(
                moved,
                format!(
                    "a moved message stayed in the dead-letter queue: {}",
                    failed.message().unwrap_or_default()
                ),
            ));
        }
        moved += messages.len() as u64;
        progress(moved);
    }
    info!(moved, "redrive finished");
    Ok(RedriveReport { moved })
}
