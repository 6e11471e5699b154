//! What the binary's integration tests share: where the repository is, the moto server that
//! `scripts/test` starts (its SDK configuration, its queues' counts, the raw emails its SES kept)
//! and the contract's example event.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

/// Runs the `tayori` binary: whether it succeeded, its standard output, its standard error.
pub fn tayori(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tayori")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository's root (templates, fixtures, docs).
pub fn repo_root() -> PathBuf {
    manifest_dir().join("../..")
}

/// The contract's example event (`tests/fixtures/events/valid/deposit-completed-ja.json`).
pub fn contract_example() -> Value {
    let path = repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Where moto listens (`TAYORI_TEST_AWS_ENDPOINT`, set by `scripts/test`).
pub fn moto_endpoint() -> String {
    std::env::var("TAYORI_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("TAYORI_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test (starts moto)")
    })
}

/// An SDK configuration for moto: its endpoint, a region, dummy credentials.
pub async fn moto() -> aws_config::SdkConfig {
    capture_logs();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("t", "t", None, None, "t"))
        .load()
        .await
}

/// Sends the warnings (and tayori's info lines) of in-process workers to the test's captured
/// output, so that a failing test shows what the worker said (a delete SQS did not take, a
/// retry); a passing test shows nothing. Once per test binary; later calls change nothing.
pub fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,tayori=info"))
        .with_test_writer()
        .try_init();
}

/// A queue's messages as `"{visible}+{in flight}"`: `"0+0"` when nothing is left.
pub async fn queue_length(sqs: &aws_sdk_sqs::Client, queue: &str) -> String {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    format!(
        "{}+{}",
        attributes[&QueueAttributeName::ApproximateNumberOfMessages],
        attributes[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
    )
}

/// The raw messages moto's SES has stored whose text contains `needle`, with moto's message id.
pub async fn ses_messages_containing(needle: &str) -> Vec<(String, String)> {
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto_endpoint()))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    data["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|message| {
            let raw = message["raw_data"].as_str()?.to_owned();
            raw.contains(needle).then(|| (message["id"].as_str().unwrap().to_owned(), raw))
        })
        .collect()
}

/// [`ses_messages_containing`], the raw messages only.
pub async fn ses_raw_messages_containing(needle: &str) -> Vec<String> {
    ses_messages_containing(needle).await.into_iter().map(|(_, raw)| raw).collect()
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}

/// Creates a queue whose messages move to a dead-letter queue after `max_receives` receives;
/// returns both URLs.
pub async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: u32,
) -> (String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (queue, dlq)
}

/// A queue URL no test reads from (commands that only need the configuration to load).
pub const UNREAD_QUEUE: &str = "http://127.0.0.1:1/unused";

/// A worker configuration in `dir` on `database_url` and `queue_url`, sending into
/// `dir/outbox`, with the repository's templates.
pub fn outbox_config(dir: &std::path::Path, database_url: &str, queue_url: &str) -> PathBuf {
    let config = dir.join("tayori.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nkind = \"postgres\"\nurl = \"{database_url}\"\n\
             [queue]\nurl = \"{queue_url}\"\n\
             [sender]\nkind = \"outbox\"\ndir = \"{}\"\n[templates]\ndir = \"{}\"\n",
            dir.join("outbox").display(),
            repo_root().join("templates").display()
        ),
    )
    .unwrap();
    config
}
