//! SES feedback end to end on real parts: `tayori worker` consumes the events queue and the
//! feedback queue on moto server through the real SQS client, records into a fresh PostgreSQL
//! database, sends through the file outbox. The test reads the provider message ids the worker
//! recorded, then publishes fixture SES events (raw, SNS-wrapped, EventBridge-wrapped) rewritten
//! with those ids — moto has no configuration-set event destinations, so the test plays SES.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use serde_json::{Value, json};
use tayori::config::{
    DeliveryConfig, FeedbackConfig, SenderConfig, StoreConfig, TemplatesConfig, UnsubscribeConfig,
    WorkerConfig,
};
use tayori::worker::start_with_aws;
use tayori_app::ports::{DeliveryQueries, DeliveryQuery, DeliveryRecord, DeliveryStore};
use tayori_domain::{DeliveryStatus, FeedbackStatus};
use tayori_outbox::OutboxConfig;
use tayori_postgres::{PostgresAdminStore, PostgresConfig, PostgresFeedbackStore, PostgresStore};
use tayori_ses::SesConfig;
use tayori_sqs::ConsumerConfig;

mod support;

use support::{moto, queue_length, repo_root, ses_raw_messages_containing};

fn event(id: &str, to: &str) -> Value {
    let mut event: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/events/valid/deposit-completed-ja.json"))
            .unwrap(),
    )
    .unwrap();
    event["id"] = json!(id);
    event["data"]["to"]["email"] = json!(to);
    event
}

/// An acme-bank event built from a shipped sample (`report.monthly_ready` is `subscription`
/// mail, `account.deposit_completed` transactional), to `to`.
fn bank_event(id: &str, event_type: &str, sample: &str, to: &str) -> Value {
    let path = repo_root().join(format!("templates/acme-bank/{event_type}/samples/{sample}.json"));
    let mut data: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    data["to"]["email"] = json!(to);
    json!({
        "specversion": "1.0", "id": id, "source": "acme-bank/core", "type": event_type,
        "time": "2026-11-28T10:00:00Z", "tenant": "acme-bank",
        "datacontenttype": "application/json", "data": data,
    })
}

/// A fixture SES event about `delivery` (its message id, its recipient; its tags or none).
fn ses_event(fixture: &str, delivery: &DeliveryRecord, tags: bool) -> Value {
    let path = repo_root().join("tests/fixtures/ses-events").join(format!("{fixture}.json"));
    let mut event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let recipient = delivery.recipient.clone().unwrap();
    event["mail"]["messageId"] = json!(delivery.provider_message_id.clone().unwrap());
    event["mail"]["destination"] = json!([recipient]);
    for (section, list) in [
        ("bounce", "bouncedRecipients"),
        ("complaint", "complainedRecipients"),
        ("deliveryDelay", "delayedRecipients"),
    ] {
        if event.get(section).is_some() {
            event[section][list] = json!([{ "emailAddress": recipient }]);
        }
    }
    if event.get("delivery").is_some() {
        event["delivery"]["recipients"] = json!([recipient]);
    }
    if tags {
        event["mail"]["tags"]["tayori-tenant"] = json!([delivery.tenant.as_str()]);
        event["mail"]["tags"]["tayori-delivery-id"] = json!([delivery.delivery_id.to_string()]);
    } else {
        event["mail"].as_object_mut().unwrap().remove("tags");
    }
    event
}

fn sns(message_id: &str, ses_event: &Value) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:tayori-ses-feedback",
        "Message": ses_event.to_string(),
        "Timestamp": "2026-11-28T10:00:02.500Z",
    })
}

fn eventbridge(id: &str, detail_type: &str, ses_event: &Value) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": detail_type, "source": "aws.ses",
        "account": "123456789012", "time": "2026-11-28T10:05:00Z", "region": "us-east-1",
        "resources": [], "detail": ses_event,
    })
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    let name = format!("{name}-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap()
}

async fn publish(sqs: &aws_sdk_sqs::Client, queue: &str, body: &Value) {
    sqs.send_message().queue_url(queue).message_body(body.to_string()).send().await.unwrap();
}

async fn publish_raw(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str) {
    sqs.send_message().queue_url(queue).message_body(body).send().await.unwrap();
}

/// Polls until `done` holds (at most 30 s): waits for the worker, asserts nothing by itself.
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut done: F) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn deliveries(store: &dyn DeliveryStore) -> Vec<DeliveryRecord> {
    store.deliveries(&DeliveryQuery { limit: 50, ..Default::default() }).await.unwrap().deliveries
}

fn by_event<'a>(all: &'a [DeliveryRecord], id: &str) -> &'a DeliveryRecord {
    all.iter().find(|d| d.event_id == id).unwrap_or_else(|| panic!("no delivery {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_updates_deliveries_dedups_keeps_the_unmatched_and_suppresses() {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let events = queue(&sqs, "feedback-e2e-events").await;
    let feedback = queue(&sqs, "feedback-e2e-feedback").await;
    for (id, to) in
        [("fb-a", "taro@example.com"), ("fb-b", "hanako@example.com"), ("fb-c", "jiro@example.com")]
    {
        publish(&sqs, &events, &event(id, to)).await;
    }

    let database = tayori_postgres::testing::fresh_database().await;
    let outbox = tempfile::tempdir().unwrap();
    let config = WorkerConfig {
        store: StoreConfig::Postgres {
            url: database.url.clone(),
            max_connections: 8,
            write_batches_in_flight: tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT,
            max_writes_per_batch: tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH,
            session: Default::default(),
        },
        queue: ConsumerConfig {
            queue_url: events.clone(),
            wait_time_seconds: 1,
            heartbeat_interval: Duration::from_secs(5),
            ..ConsumerConfig::default()
        },
        sender: SenderConfig::Outbox(OutboxConfig { dir: outbox.path().to_owned() }),
        templates: TemplatesConfig { dir: repo_root().join("templates") },
        delivery: DeliveryConfig::default(),
        http: Default::default(),
        worker_id: Some("feedback-e2e".into()),
        feedback: FeedbackConfig { queue_url: Some(feedback.clone()), ..Default::default() },
        unsubscribe: Default::default(),
        dedicated_queues: Vec::new(),
    };
    config.validate().unwrap();
    let app = start_with_aws(config, aws).await.unwrap();
    let store = app.store.clone();
    until("three sent deliveries", async || {
        let all = deliveries(&*store).await;
        all.len() == 3 && all.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;
    let sent = deliveries(&*store).await;
    let (a, b, c) = (by_event(&sent, "fb-a"), by_event(&sent, "fb-b"), by_event(&sent, "fb-c"));

    // A: Delivery arrives before Send (SNS-wrapped, with tags); the Delivery is redelivered.
    let delivered = sns("sns-a-delivery", &ses_event("delivery", a, true));
    publish(&sqs, &feedback, &delivered).await;
    publish(&sqs, &feedback, &sns("sns-a-send", &ses_event("send", a, true))).await;
    publish(&sqs, &feedback, &delivered).await;
    // B: a permanent bounce through EventBridge, without tags: matched by SES message id.
    let bounce = ses_event("bounce-permanent", b, false);
    publish(&sqs, &feedback, &eventbridge("eb-b-bounce", "Email Bounced", &bounce)).await;
    // C: a raw complaint, then a delivery delay that ranks below it.
    publish(&sqs, &feedback, &ses_event("complaint", c, true)).await;
    publish(&sqs, &feedback, &ses_event("delivery-delay", c, true)).await;
    // Feedback about no delivery of ours, and a body that is not feedback at all.
    let mut stranger = ses_event("delivery", a, false);
    stranger["mail"]["messageId"] = json!("0100-not-ours-000000");
    publish(&sqs, &feedback, &stranger).await;
    publish_raw(&sqs, &feedback, "this is not an SES event").await;

    let pool = PostgresStore::connect(&PostgresConfig::new(&database.url)).await.unwrap();
    let feedback_store = PostgresFeedbackStore::new(pool.pool().clone());
    // What operators see of feedback kept without a delivery (`GET /api/v1/feedback/unmatched`).
    let admin = PostgresAdminStore::new(pool.pool().clone());
    let status = async |d: &DeliveryRecord| {
        feedback_store.feedback_status(&d.tenant, d.delivery_id).await.unwrap()
    };
    until("the feedback queue to be drained and recorded", async || {
        queue_length(&sqs, &feedback).await == "0+0"
            && admin.unmatched_feedback(None, 10).await.unwrap().len() == 2
            && status(c).await == Some(FeedbackStatus::Complained)
    })
    .await;

    assert_eq!(status(a).await, Some(FeedbackStatus::Delivered), "a Send after the Delivery");
    assert_eq!(status(b).await, Some(FeedbackStatus::Bounced));
    assert_eq!(status(c).await, Some(FeedbackStatus::Complained), "a delay after the complaint");
    let timeline = feedback_store.timeline(&a.tenant, a.delivery_id).await.unwrap();
    let kinds: Vec<_> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["send", "delivery"], "the redelivered Delivery recorded once");
    assert_eq!(timeline[1].feedback_id, "sns:sns-a-delivery");
    let timeline = feedback_store.timeline(&b.tenant, b.delivery_id).await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].detail.as_deref(), Some("Permanent/General"));
    assert_eq!(timeline[0].recipients, [b.recipient.clone().unwrap()]);
    let kept = admin.unmatched_feedback(None, 10).await.unwrap();
    let results: Vec<_> = kept.iter().map(|k| k.result.as_str()).collect();
    assert!(results.contains(&"unmatched") && results.contains(&"invalid"), "{kept:?}");
    let unmatched = kept.iter().find(|k| k.result == "unmatched").unwrap();
    assert_eq!(unmatched.ses_message_id.as_deref(), Some("0100-not-ours-000000"));
    // The outcome of the event itself stays `sent`: feedback adds to it, never reopens it.
    assert!(deliveries(&*store).await.iter().all(|d| d.status == DeliveryStatus::Sent));

    // The bounced and the complaining addresses are suppressed for the tenant: later events
    // for them are not sent; another address still is.
    for (id, to) in [
        ("fb-after-bounce", "hanako@example.com"),
        ("fb-after-complaint", "JIRO@example.com"),
        ("fb-other", "saburo@example.com"),
    ] {
        publish(&sqs, &events, &event(id, to)).await;
    }
    until("three more decided deliveries", async || {
        let all = deliveries(&*store).await;
        all.len() == 6 && all.iter().all(|d| d.status.is_decided())
    })
    .await;
    let all = deliveries(&*store).await;
    for id in ["fb-after-bounce", "fb-after-complaint"] {
        let suppressed = by_event(&all, id);
        assert_eq!(suppressed.status, DeliveryStatus::Suppressed, "{id}");
    }
    assert!(by_event(&all, "fb-after-bounce").reason.as_deref().unwrap().contains("bounce"));
    assert!(by_event(&all, "fb-after-complaint").reason.as_deref().unwrap().contains("complained"));
    assert_eq!(by_event(&all, "fb-other").status, DeliveryStatus::Sent);

    // An unsubscribe (SES subscription event, unsubscribeAll) stops the tenant's subscription
    // mail to the address; its transactional mail still goes out.
    let misaki = "misaki.tanaka@example.com";
    publish(&sqs, &events, &bank_event("fb-report-1", "report.monthly_ready", "default", misaki))
        .await;
    until("the first report sent", async || {
        let all = deliveries(&*store).await;
        all.iter().any(|d| d.event_id == "fb-report-1" && d.status == DeliveryStatus::Sent)
    })
    .await;
    let all = deliveries(&*store).await;
    let report = by_event(&all, "fb-report-1");
    publish(&sqs, &feedback, &ses_event("subscription", report, true)).await;
    until("the unsubscribe recorded", async || {
        let timeline = feedback_store.timeline(&report.tenant, report.delivery_id).await.unwrap();
        queue_length(&sqs, &feedback).await == "0+0" && timeline.len() == 1
    })
    .await;
    publish(&sqs, &events, &bank_event("fb-report-2", "report.monthly_ready", "default", misaki))
        .await;
    let deposit = bank_event("fb-deposit", "account.deposit_completed", "salary", misaki);
    publish(&sqs, &events, &deposit).await;
    until("the second report and the deposit decided", async || {
        let all = deliveries(&*store).await;
        ["fb-report-2", "fb-deposit"]
            .iter()
            .all(|id| all.iter().any(|d| d.event_id == *id && d.status.is_decided()))
    })
    .await;
    let all = deliveries(&*store).await;
    let second_report = by_event(&all, "fb-report-2");
    assert_eq!(second_report.status, DeliveryStatus::Suppressed, "{second_report:?}");
    assert!(second_report.reason.as_deref().unwrap().contains("unsubscribed"));
    assert_eq!(by_event(&all, "fb-deposit").status, DeliveryStatus::Sent, "transactional");
    app.stop().await.unwrap();
}

/// The unfolded value of a header of a raw message.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_mail_carries_one_click_unsubscribe_and_transactional_mail_does_not() {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let events = queue(&sqs, "unsubscribe-headers-events").await;
    // moto's SES wants the sender verified; "already exists" is fine.
    let _ = aws_sdk_sesv2::Client::new(&aws)
        .create_email_identity()
        .email_identity("acme-bank.example")
        .send()
        .await;
    let run = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let subscriber = format!("sub-{run}@example.com");
    let customer = format!("txn-{run}@example.com");
    publish(&sqs, &events, &bank_event("h-report", "report.monthly_ready", "default", &subscriber))
        .await;
    publish(
        &sqs,
        &events,
        &bank_event("h-deposit", "account.deposit_completed", "salary", &customer),
    )
    .await;

    let database = tayori_postgres::testing::fresh_database().await;
    let key = "k".repeat(32);
    let config = WorkerConfig {
        store: StoreConfig::Postgres {
            url: database.url.clone(),
            max_connections: 8,
            write_batches_in_flight: tayori_postgres::DEFAULT_WRITE_BATCHES_IN_FLIGHT,
            max_writes_per_batch: tayori_postgres::DEFAULT_MAX_WRITES_PER_BATCH,
            session: Default::default(),
        },
        queue: ConsumerConfig {
            queue_url: events.clone(),
            wait_time_seconds: 1,
            heartbeat_interval: Duration::from_secs(5),
            ..ConsumerConfig::default()
        },
        sender: SenderConfig::Ses(SesConfig {
            read_account_send_rate: false,
            send_rate: 50.0,
            call_timeout: Duration::from_secs(20),
            ..SesConfig::default()
        }),
        templates: TemplatesConfig { dir: repo_root().join("templates") },
        delivery: DeliveryConfig::default(),
        http: Default::default(),
        worker_id: Some("unsubscribe-headers".into()),
        feedback: Default::default(),
        unsubscribe: UnsubscribeConfig {
            base_url: Some("https://mail.acme-bank.example".into()),
            key: Some(key.clone()),
            previous_keys: vec![],
            valid_days: Some(30),
            ..Default::default()
        },
        dedicated_queues: Vec::new(),
    };
    config.validate().unwrap();
    // The admin process is mid-rotation (docs/operations.md, "Rotate the unsubscribe key"): it
    // has the next key already, and the worker's, which still signs, as a previous one.
    let rotated = WorkerConfig {
        unsubscribe: UnsubscribeConfig {
            key: Some("n".repeat(40)),
            previous_keys: vec![key.clone()],
            ..config.unsubscribe.clone()
        },
        ..config.clone()
    };
    rotated.validate().unwrap();
    let admin = tayori::admin::start(rotated, "127.0.0.1:0".parse().unwrap(), false).await.unwrap();
    let app = start_with_aws(config, aws).await.unwrap();
    let store = app.store.clone();
    until("both sent", async || {
        let all = deliveries(&*store).await;
        all.len() == 2 && all.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;

    let [report] = ses_raw_messages_containing(&subscriber).await.try_into().unwrap();
    let list = header(&report, "List-Unsubscribe").expect("List-Unsubscribe on subscription mail");
    let url = list.strip_prefix("<https://mail.acme-bank.example/unsubscribe/").unwrap();
    let token = url.strip_suffix('>').unwrap();
    assert_eq!(
        header(&report, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    // The token in the header is one the configured key signed, for this tenant and address.
    let claim = tayori_domain::UnsubscribeKey::new(key.as_bytes())
        .unwrap()
        .verify(token, chrono::Utc::now())
        .unwrap();
    assert_eq!(claim.tenant.as_str(), "acme-bank");
    assert_eq!(claim.address.as_str(), subscriber);
    assert_eq!(claim.event_type.as_str(), "report.monthly_ready");
    // The same link is the template's `unsubscribe_url` (replacing the event's own).
    let parsed = mail_parser::MessageParser::default().parse(report.as_bytes()).unwrap();
    let html = parsed.body_html(0).unwrap();
    assert!(html.contains(token), "the body links to the same token");
    assert!(!html.contains("settings/notifications?off=statement"), "the event's link replaced");

    let [deposit] = ses_raw_messages_containing(&customer).await.try_into().unwrap();
    assert_eq!(header(&deposit, "List-Unsubscribe"), None, "transactional mail");
    assert_eq!(header(&deposit, "List-Unsubscribe-Post"), None);

    // What a mail client does with the header: POST the RFC 8058 body to the URL (here served
    // by `tayori admin serve` on a real port). The next report to the address is suppressed;
    // transactional mail still goes out.
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{}/unsubscribe/{token}", admin.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    publish(
        &sqs,
        &events,
        &bank_event("h-report-2", "report.monthly_ready", "default", &subscriber),
    )
    .await;
    publish(
        &sqs,
        &events,
        &bank_event("h-deposit-2", "account.deposit_completed", "salary", &subscriber),
    )
    .await;
    until("both decided", async || {
        let all = deliveries(&*store).await;
        all.len() == 4 && all.iter().all(|d| d.status.is_decided())
    })
    .await;
    let all = deliveries(&*store).await;
    assert_eq!(by_event(&all, "h-report-2").status, DeliveryStatus::Suppressed);
    assert_eq!(by_event(&all, "h-deposit-2").status, DeliveryStatus::Sent);
    app.stop().await.unwrap();
    admin.stop().await.unwrap();
}
