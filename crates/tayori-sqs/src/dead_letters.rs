//! The events queue's dead-letter queue for operators ([`DeadLetters`]): its depth, a look at its
//! messages without taking them out, and a redrive. The dead-letter queue is the one the events
//! queue's redrive policy names, found on first use, so no setting can disagree with the queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use tayori_app::ports::{DeadLetterDepth, DeadLetterError, DeadLetterMessage, DeadLetters};
use tokio::sync::OnceCell;

/// Every SDK call here has this long; the SDK sets no read timeout of its own.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The dead-letter queue of an events queue, on SQS.
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
    dead_letter_url: OnceCell<String>,
}

impl SqsDeadLetters {
    /// The dead-letter queue named by `queue_url`'s redrive policy (read on first use).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into(), dead_letter_url: OnceCell::new() }
    }

    /// The dead-letter queue's URL, as the redrive policy names it (`tayori dlq redrive` without
    /// `--from`).
    pub async fn url(&self) -> Result<String, DeadLetterError> {
        self.dead_letter_url().await.map(str::to_owned)
    }

    /// The dead-letter queue's URL: the redrive policy's target ARN
    /// (`arn:aws:sqs:<region>:<account>:<name>`) turned into a URL by SQS itself.
    async fn dead_letter_url(&self) -> Result<&str, DeadLetterError> {
        let url = self
            .dead_letter_url
            .get_or_try_init(|| async {
                let attributes = call(
                    self.client
                        .get_queue_attributes()
                        .queue_url(&self.queue_url)
                        .attribute_names(QueueAttributeName::RedrivePolicy)
                        .send(),
                )
                .await?
                .attributes
                .unwrap_or_default();
                let no_queue = || DeadLetterError::NoDeadLetterQueue(self.queue_url.clone());
                let policy =
                    attributes.get(&QueueAttributeName::RedrivePolicy).ok_or_else(no_queue)?;
                let policy: serde_json::Value = serde_json::from_str(policy).map_err(|e| {
                    DeadLetterError::Unavailable(format!("the redrive policy is not JSON: {e}"))
                })?;
                let arn = policy["deadLetterTargetArn"].as_str().ok_or_else(no_queue)?;
                let parts: Vec<&str> = arn.split(':').collect();
                let [_, _, "sqs", _, account, name] = parts.as_slice() else {
                    return Err(DeadLetterError::Unavailable(format!(
                        "the redrive policy names {arn:?}, not an SQS queue's ARN"
                    )));
                };
                let found = call(
                    self.client
                        .get_queue_url()
                        .queue_name(*name)
                        .queue_owner_aws_account_id(*account)
                        .send(),
                )
                .await?;
                found.queue_url.ok_or_else(|| {
                    DeadLetterError::Unavailable(format!("SQS gave no URL for {name}"))
                })
            })
            .await?;
        Ok(url)
    }
}

/// An SDK call with its timeout, its error in words.
async fn call<T, E>(
    request: impl std::future::Future<Output = Result<T, aws_sdk_sqs::error::SdkError<E>>>,
) -> Result<T, DeadLetterError>
where
    E: std::error::Error + 'static,
{
    tokio::time::timeout(CALL_TIMEOUT, request)
        .await
        .map_err(|_| DeadLetterError::Unavailable("SQS did not answer within 15 s".into()))?
        .map_err(|e| DeadLetterError::Unavailable(DisplayErrorContext(&e).to_string()))
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn depth(&self) -> Result<DeadLetterDepth, DeadLetterError> {
        let url = self.dead_letter_url().await?;
        let attributes = call(
            self.client
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send(),
        )
        .await?
        .attributes
        .unwrap_or_default();
        let count = |name| attributes.get(&name).and_then(|n| n.parse().ok()).unwrap_or(0);
        Ok(DeadLetterDepth {
            queue: url.rsplit('/').next().unwrap_or(url).to_owned(),
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    async fn peek(&self, limit: u32) -> Result<Vec<DeadLetterMessage>, DeadLetterError> {
        let url = self.dead_letter_url().await?;
        let mut seen = std::collections::BTreeMap::new();
        // A visibility of 0 leaves each message where it was for everyone else. SQS samples its
        // servers on each call, so a few calls find more of a large queue; an empty answer ends.
        for _ in 0..limit.div_ceil(10).max(1) * 2 {
            let wanted = (limit as usize).saturating_sub(seen.len()).min(10);
            if wanted == 0 {
                break;
            }
            let received = call(
                self.client
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(wanted as i32)
                    .visibility_timeout(0)
                    .wait_time_seconds(0)
                    .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send(),
            )
            .await?
            .messages
            .unwrap_or_default();
            if received.is_empty() {
                break;
            }
            for message in received {
                let attribute = |name| message.attributes().and_then(|a| a.get(&name));
                let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .and_then(DateTime::<Utc>::from_timestamp_millis);
                let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let message_id = message.message_id().unwrap_or_default().to_owned();
                let body = message.body().unwrap_or_default().as_bytes().to_vec();
                seen.entry(message_id.clone()).or_insert(DeadLetterMessage {
                    message_id,
                    sent_at,
                    receive_count,
                    body,
                });
            }
        }
        Ok(seen.into_values().take(limit as usize).collect())
    }

    async fn redrive(&self, max: u64) -> Result<u64, DeadLetterError> {
        let url = self.dead_letter_url().await?;
        crate::redrive(&self.client, url, &self.queue_url, Some(max), |_| {})
            .await
            .map(|report| report.moved)
            .map_err(|error| DeadLetterError::RedriveStopped {
                moved: error.moved,
                reason: error.reason,
            })
    }
}
