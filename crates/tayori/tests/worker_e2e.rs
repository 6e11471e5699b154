//! `tayori worker` end to end on real parts: SQS on moto server through the real SDK client,
//! PostgreSQL (a fresh database), the shipped templates, and the file outbox as the sender.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tayori::config::{DeliveryConfig, SenderConfig, StoreConfig, TemplatesConfig, WorkerConfig};
use tayori::worker::start_with_aws;
use tayori_app::ports::DeliveryQuery;
use tayori_domain::DeliveryStatus;
use tayori_outbox::OutboxConfig;
use tayori_sqs::ConsumerConfig;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn moto() -> aws_config::SdkConfig {
    let endpoint = std::env::var("TAYORI_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("TAYORI_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test (starts moto)")
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("t", "t", None, None, "t"))
        .load()
        .await
}

fn eml_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sends_each_event_once_and_records_every_outcome() {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = sqs
        .create_queue()
        .queue_name(format!("worker-e2e-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let example: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    let mut english = example.clone();
    english["id"] = json!("en-1");
    english["data"]["to"]["locale"] = json!("en");
    let mut unknown_tenant = example.clone();
    unknown_tenant["tenant"] = json!("acme-nobody");
    for body in [&example, &example, &english, &unknown_tenant, &json!({"not": "an event"})] {
        sqs.send_message().queue_url(&queue).message_body(body.to_string()).send().await.unwrap();
    }

    let database = tayori_postgres::testing::fresh_database().await;
    let outbox = tempfile::tempdir().unwrap();
    let config = WorkerConfig {
        store: StoreConfig::Postgres { url: database.url, max_connections: 8 },
        queue: ConsumerConfig {
            queue_url: queue.clone(),
            wait_time_seconds: 1,
            heartbeat_interval: Duration::from_secs(5),
            ..ConsumerConfig::default()
        },
        sender: SenderConfig::Outbox(OutboxConfig { dir: outbox.path().to_owned() }),
        templates: TemplatesConfig { dir: repo_root().join("templates") },
        delivery: DeliveryConfig::default(),
        http: Default::default(),
        worker_id: Some("e2e".into()),
    };
    config.validate().unwrap();
    let app = start_with_aws(config, aws).await.unwrap();
    let store = app.store.clone();

    let mut decided = Vec::new();
    for _ in 0..300 {
        let page =
            store.deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
        let rejected = store.unkeyed_rejections(10).await.unwrap();
        decided = page.deliveries;
        let duplicates: u32 = decided.iter().map(|d| d.duplicate_count).sum();
        if decided.len() == 3
            && decided.iter().all(|d| d.status.is_decided())
            && duplicates == 1
            && rejected.len() == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = app.stop().await.unwrap();

    let status = |id: &str| {
        let ours = decided.iter().find(|d| d.event_id == id && d.tenant.as_str() == "acme-invest");
        ours.map(|d| d.status)
    };
    assert_eq!(status("01JD8Z6Q7K2V4X9M3N5P1R0T8W"), Some(DeliveryStatus::Sent));
    assert_eq!(status("en-1"), Some(DeliveryStatus::Sent));
    let unknown = decided.iter().find(|d| d.tenant.as_str() == "acme-nobody").unwrap();
    assert_eq!(unknown.status, DeliveryStatus::Rejected);
    assert!(unknown.reason.as_deref().unwrap().contains("unknown tenant"));
    assert_eq!(eml_count(outbox.path()), 2, "one email per event, the duplicate not sent");
    // The duplicate may arrive while the first copy is still in flight: it is then backed off
    // (not deleted) and received again, so receives can exceed the five messages sent.
    assert_eq!(report.deleted, 5, "every message deleted once its outcome was recorded");
    assert_eq!(report.received, report.deleted + report.backed_off, "{report:?}");
    let left = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(left.attributes.unwrap()[&QueueAttributeName::ApproximateNumberOfMessages], "0");
}
