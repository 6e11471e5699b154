//! `tayori worker` end to end on real parts: SQS (and SES) on moto server through the real SDK
//! clients, PostgreSQL (a fresh database), the shipped templates; the sender is the file outbox
//! in one test and SES in the other, where the whole raw message SES received is read back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tayori::config::{DeliveryConfig, SenderConfig, StoreConfig, TemplatesConfig, WorkerConfig};
use tayori::worker::start_with_aws;
use tayori_app::ports::DeliveryQuery;
use tayori_domain::DeliveryStatus;
use tayori_outbox::OutboxConfig;
use tayori_ses::SesConfig;
use tayori_sqs::ConsumerConfig;

mod support;

use support::{moto, queue_length, queue_with_dlq, repo_root, ses_messages_containing};

fn eml_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
            .count()
    })
}

/// A worker on PostgreSQL at `url`, consuming `queue` (1 s polls) into the file outbox `dir`.
fn outbox_worker(url: &str, queue: &str, dir: &Path) -> WorkerConfig {
    let config = WorkerConfig {
        store: StoreConfig::Postgres {
            url: url.to_owned(),
            max_connections: 8,
            write_batches_in_flight: tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT,
            max_writes_per_batch: tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH,
            session: Default::default(),
        },
        queue: ConsumerConfig {
            queue_url: queue.to_owned(),
            wait_time_seconds: 1,
            heartbeat_interval: Duration::from_secs(5),
            ..ConsumerConfig::default()
        },
        sender: SenderConfig::Outbox(OutboxConfig { dir: dir.to_owned() }),
        templates: TemplatesConfig { dir: repo_root().join("templates") },
        delivery: DeliveryConfig::default(),
        http: Default::default(),
        worker_id: Some("e2e".into()),
        feedback: Default::default(),
        unsubscribe: Default::default(),
        dedicated_queues: Vec::new(),
    };
    config.validate().unwrap();
    config
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
    let config = outbox_worker(&database.url, &queue, outbox.path());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_ses_each_key_is_one_whole_email_and_poison_is_recorded_not_looped() {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let run = std::process::id();
    let (queue, dlq) = queue_with_dlq(&sqs, &format!("worker-ses-e2e-{run}"), 3).await;
    // The demo tenant sends from no-reply@acme-invest.example: moto's SES wants it verified.
    // Other tests verify it too; "already exists" is fine.
    let _ = aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity("acme-invest.example")
        .send()
        .await;

    // Recipients unique to this run find our emails among everything moto has stored.
    let recipient = |n: u32| format!("ses-e2e-{run}-{n}@example.com");
    let mut japanese: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    japanese["id"] = json!(format!("ses-ja-{run}"));
    japanese["data"]["to"]["email"] = json!(recipient(1));
    // The same (tenant, source, id) in another message with other data: still one email.
    let mut same_key = japanese.clone();
    same_key["data"]["variables"]["amount"] = json!(999_999);
    let mut english = japanese.clone();
    english["id"] = json!(format!("ses-en-{run}"));
    english["data"]["to"] = json!({"email": recipient(2), "name": "Taro Yamada", "locale": "en"});
    let mut wrapped_event = japanese.clone();
    wrapped_event["id"] = json!(format!("ses-sns-{run}"));
    wrapped_event["data"]["to"]["email"] = json!(recipient(3));
    let mut sns: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/sns-wrapped.json")).unwrap(),
    )
    .unwrap();
    sns["Message"] = json!(wrapped_event.to_string());
    let poison = format!("{{\"not\": \"an event\", \"run\": {run}}}");
    // The first message twice is a redelivery as SQS makes it (at-least-once).
    for body in [
        japanese.to_string(),
        japanese.to_string(),
        same_key.to_string(),
        english.to_string(),
        sns.to_string(),
        poison.clone(),
    ] {
        sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }

    let database = tayori_postgres::testing::fresh_database().await;
    let config = WorkerConfig {
        store: StoreConfig::Postgres {
            url: database.url,
            max_connections: 8,
            write_batches_in_flight: tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT,
            max_writes_per_batch: tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH,
            session: Default::default(),
        },
        queue: ConsumerConfig {
            queue_url: queue.clone(),
            wait_time_seconds: 1,
            heartbeat_interval: Duration::from_secs(5),
            ..ConsumerConfig::default()
        },
        sender: SenderConfig::Ses(SesConfig {
            read_account_send_rate: false,
            send_rate: 50.0,
            // moto is slow under a loaded test run.
            call_timeout: Duration::from_secs(20),
            ..SesConfig::default()
        }),
        templates: TemplatesConfig { dir: repo_root().join("templates") },
        delivery: DeliveryConfig::default(),
        http: Default::default(),
        worker_id: Some("ses-e2e".into()),
        feedback: Default::default(),
        unsubscribe: Default::default(),
        dedicated_queues: Vec::new(),
    };
    config.validate().unwrap();
    let app = start_with_aws(config, aws).await.unwrap();
    let store = app.store.clone();

    let mut decided = Vec::new();
    for _ in 0..600 {
        let page =
            store.deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
        decided = page.deliveries;
        let duplicates: u32 = decided.iter().map(|d| d.duplicate_count).sum();
        let rejected = store.unkeyed_rejections(10).await.unwrap();
        if decided.len() == 3
            && decided.iter().all(|d| d.status.is_decided())
            && duplicates == 2
            && rejected.len() == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = app.stop().await.unwrap();
    assert_eq!(decided.len(), 3, "{decided:?}");
    assert!(decided.iter().all(|d| d.status == DeliveryStatus::Sent), "{decided:?}");
    assert_eq!(decided.iter().map(|d| d.duplicate_count).sum::<u32>(), 2, "{decided:?}");
    let rejected = store.unkeyed_rejections(10).await.unwrap();
    assert_eq!(rejected.len(), 1, "the poison message is recorded");
    assert_eq!(rejected[0].raw_body, poison.as_bytes());
    // SQS may hand a handled message out again (a delete a loaded moto did not take in time): it
    // is then deleted again as a duplicate, never sent again. So every delete beyond the six
    // messages must be a duplicate recorded after the wait above.
    let after = store.deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await;
    let late_duplicates: u32 =
        after.unwrap().deliveries.iter().map(|d| d.duplicate_count).sum::<u32>() - 2;
    assert_eq!(
        report.deleted,
        6 + u64::from(late_duplicates),
        "every message deleted once its outcome was recorded, a redelivery as a duplicate"
    );
    assert_eq!(queue_length(&sqs, &queue).await, "0+0", "nothing left to loop");
    assert_eq!(queue_length(&sqs, &dlq).await, "0+0", "poison is recorded, not dead-lettered");

    // What SES received: one whole email per key, with the bytes tayori built.
    for (n, expected_subject) in [
        (1, "【Acme Invest】ご入金が完了しました"),
        (2, "[Acme Invest] Your deposit has been completed"),
        (3, "【Acme Invest】ご入金が完了しました"),
    ] {
        let to = recipient(n);
        let stored = ses_messages_containing(&to).await;
        assert_eq!(stored.len(), 1, "one email to {to}, however often its event arrived");
        let (ses_message_id, raw) = &stored[0];
        let delivery = decided.iter().find(|d| d.recipient.as_deref() == Some(&to)).unwrap();
        assert_eq!(delivery.provider_message_id.as_ref(), Some(ses_message_id));
        let message = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert_eq!(message.subject(), Some(expected_subject));
        let from = message.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.address(), Some("no-reply@acme-invest.example"));
        assert_eq!(from.name(), Some("Acme Invest"));
        let reply_to = message.reply_to().and_then(|a| a.first()).unwrap();
        assert_eq!(reply_to.address(), Some("support@acme-invest.example"));
        assert_eq!(message.to().and_then(|a| a.first()).unwrap().address(), Some(to.as_str()));
        assert_eq!(
            message.header_raw("X-Tayori-Delivery-Id").map(str::trim),
            Some(delivery.delivery_id.to_string().as_str())
        );
        let message_id = format!("{}@acme-invest.example", delivery.delivery_id);
        assert_eq!(message.message_id(), Some(message_id.as_str()));
        assert_eq!((message.text_body_count(), message.html_body_count()), (1, 1));
        let (text, html) = (message.body_text(0).unwrap(), message.body_html(0).unwrap());
        // Recipient 1's key arrived with two different amounts: whichever copy claimed the key
        // first was rendered, and only it.
        let amounts: &[&str] = match n {
            1 => &["50,000円", "999,999円"],
            2 => &["JPY 50,000"],
            _ => &["50,000円"],
        };
        let shown: Vec<_> = amounts.iter().filter(|a| text.contains(*a)).collect();
        assert_eq!(shown.len(), 1, "{text}");
        assert!(html.contains(shown[0]), "{html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_tenants_events_are_held_off_the_queue_and_sent_once_after_the_resume() {
    use tayori_app::ports::TenantPauses;
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // Two receives and a message is dead-lettered: waiting on the queue through the pause would
    // move the paused tenant's events there within seconds.
    let name = format!("worker-hold-e2e-{}", std::process::id());
    let (queue, dlq) = queue_with_dlq(&sqs, &name, 2).await;
    let database = tayori_postgres::testing::fresh_database().await;
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let admin = tayori_postgres::PostgresAdminStore::new(pool.clone());
    let acme = tayori_domain::TenantId::parse("acme-invest").unwrap();
    let entry = |action: &str| {
        tayori_postgres::testing::operator_audit(&acme, action, "wrong amounts in the template")
    };
    assert!(admin.pause_tenant(&acme, &entry("tenant.pause")).await.unwrap());

    // acme-invest: two events, one of them published twice; acme-bank: one event.
    let example: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    let mut second = example.clone();
    second["id"] = json!("held-2");
    let mut bank = example.clone();
    bank["tenant"] = json!("acme-bank");
    bank["source"] = json!("acme-bank/core");
    bank["data"]["variables"] = json!({
        "amount": 285400, "depositor": "カ）アクメショウジ", "account_last4": "7702",
        "deposited_at": "2026-11-25T09:00:00+09:00", "balance": 1204733
    });
    for body in [&example, &second, &example, &bank] {
        sqs.send_message().queue_url(&queue).message_body(body.to_string()).send().await.unwrap();
    }
    let outbox = tempfile::tempdir().unwrap();
    let app =
        start_with_aws(outbox_worker(&database.url, &queue, outbox.path()), aws).await.unwrap();

    // While paused: acme-bank's event is sent; acme-invest's two keys are held, and every
    // message has left the queue (none dead-lettered).
    let mut held = 0;
    for _ in 0..300 {
        held = admin.paused_tenants(None).await.unwrap()[0].held_events;
        if held == 2 && eml_count(outbox.path()) == 1 && queue_length(&sqs, &queue).await == "0+0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held, 2, "one held copy per key");
    assert_eq!(eml_count(outbox.path()), 1, "only acme-bank's event was sent");
    assert_eq!(queue_length(&sqs, &queue).await, "0+0", "held events are off the queue");
    assert_eq!(queue_length(&sqs, &dlq).await, "0+0", "nothing dead-lettered");

    // Resumed: a release round (every 5 s) sends each held event once.
    assert!(admin.resume_tenant(&acme, &entry("tenant.resume")).await.unwrap());
    let store = app.store.clone();
    let mut decided = Vec::new();
    for _ in 0..200 {
        decided = store
            .deliveries(&DeliveryQuery { limit: 10, ..Default::default() })
            .await
            .unwrap()
            .deliveries;
        if decided.len() == 3 && decided.iter().all(|d| d.status == DeliveryStatus::Sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await.unwrap();
    assert_eq!(decided.len(), 3, "{decided:?}");
    assert!(decided.iter().all(|d| d.status == DeliveryStatus::Sent), "{decided:?}");
    assert_eq!(eml_count(outbox.path()), 3, "one email per key, the duplicate not sent");
    let held_left: i64 =
        sqlx::query_scalar("select count(*) from held_events").fetch_one(&pool).await.unwrap();
    assert_eq!(held_left, 0, "released events are forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_with_a_queue_of_its_own_is_consumed_beside_the_shared_queue() {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let create = |name: String| {
        let sqs = sqs.clone();
        async move { sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap() }
    };
    let shared = create(format!("shared-{}", std::process::id())).await;
    let dedicated = create(format!("acme-bank-own-{}", std::process::id())).await;
    let example: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    for i in 0..5 {
        let mut invest = example.clone();
        invest["id"] = json!(format!("shared-{i}"));
        let mut bank = example.clone();
        bank["id"] = json!(format!("own-{i}"));
        bank["tenant"] = json!("acme-bank");
        bank["data"] = serde_json::from_slice(
            &std::fs::read(
                repo_root()
                    .join("templates/acme-bank/account.deposit_completed/samples/salary.json"),
            )
            .unwrap(),
        )
        .unwrap();
        for (queue, body) in [(&shared, &invest), (&dedicated, &bank)] {
            let group = body["tenant"].as_str().unwrap();
            let send = sqs.send_message().queue_url(queue).message_body(body.to_string());
            send.message_group_id(group).send().await.unwrap();
        }
    }

    let database = tayori_postgres::testing::fresh_database().await;
    let outbox = tempfile::tempdir().unwrap();
    let mut config = outbox_worker(&database.url, &shared, outbox.path());
    config.dedicated_queues =
        vec![tayori::config::DedicatedQueue { url: dedicated.clone(), weight: 1 }];
    config.validate().unwrap();
    let app = start_with_aws(config, aws).await.unwrap();
    for _ in 0..300 {
        if eml_count(outbox.path()) == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = app.store.clone();
    let report = app.stop().await.unwrap();
    let decided =
        store.deliveries(&DeliveryQuery { limit: 20, ..Default::default() }).await.unwrap();
    let decided: Vec<_> = decided
        .deliveries
        .iter()
        .map(|d| (d.event_id.clone(), d.status, d.reason.clone()))
        .collect();
    assert_eq!(eml_count(outbox.path()), 10, "both queues' events sent: {decided:?}");
    assert_eq!(report.deleted, 10, "the report adds up both queues': {report:?}");
    assert_eq!(queue_length(&sqs, &shared).await, "0+0");
    assert_eq!(queue_length(&sqs, &dedicated).await, "0+0");
}
