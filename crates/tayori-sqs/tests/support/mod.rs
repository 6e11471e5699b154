//! moto server through the real SDK client, for the adapter's tests: a client, and a queue with
//! its dead-letter queue.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use serde_json::json;

const ENDPOINT_VAR: &str = "TAYORI_TEST_AWS_ENDPOINT";

/// An SQS client for moto (the test script starts it and sets `TAYORI_TEST_AWS_ENDPOINT`).
pub async fn sqs() -> Client {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{ENDPOINT_VAR} is not set: run the tests with scripts/test, which starts moto")
    });
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    Client::new(&config)
}

/// A queue with a dead-letter queue after `max_receives`, named uniquely for this test.
pub async fn queue_with_dlq(
    client: &Client,
    name: &str,
    max_receives: u32,
    fifo: bool,
) -> (String, String) {
    let unique = format!("{name}-{}-{}", std::process::id(), Utc::now().timestamp_micros());
    let suffix = if fifo { ".fifo" } else { "" };
    let mut dlq = client.create_queue().queue_name(format!("{unique}-dlq{suffix}"));
    if fifo {
        dlq = dlq.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let dlq_url = dlq.send().await.unwrap().queue_url.unwrap();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let policy =
        json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives }).to_string();
    let mut queue = client
        .create_queue()
        .queue_name(format!("{unique}{suffix}"))
        .attributes(QueueAttributeName::RedrivePolicy, policy);
    if fifo {
        queue = queue
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    }
    (queue.send().await.unwrap().queue_url.unwrap(), dlq_url)
}

/// Visible + in flight.
pub async fn messages_in(client: &Client, queue_url: &str) -> (u64, u64) {
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let get = |name| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

pub mod fault_proxy;
