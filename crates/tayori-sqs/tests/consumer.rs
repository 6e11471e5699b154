//! The SQS consumer against moto server through the real SDK client (the test script starts
//! moto and sets `TAYORI_TEST_AWS_ENDPOINT`). The use case behind it runs on in-memory fakes:
//! the adapter under test is the consumer; stores and senders have their own tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tayori_app::ports::{Clock, DeliveryQuery, DeliveryStore, EmailSender, SendError, SentEmail};
use tayori_app::testing::{
    FakeRenderer, FakeSuppressions, FakeTenants, InMemoryStore, RecordingSender, example_event,
};
use tayori_app::{DeliveryPolicy, EventHandler};
use tayori_domain::{DeliveryStatus, OutgoingEmail, PublisherRules};
use tayori_sqs::{ConsumerConfig, ConsumerReport, SqsConsumer};
use tokio::sync::watch;

mod support;

use support::{messages_in, queue_with_dlq, sqs};

struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

async fn publish(client: &Client, queue_url: &str, body: &Value) {
    let mut send = client.send_message().queue_url(queue_url).message_body(body.to_string());
    if queue_url.ends_with(".fifo") {
        // The contract's FIFO group: `<tenant>:<ordering key>`, here one group per recipient.
        let group = format!(
            "{}:{}",
            body["tenant"].as_str().unwrap_or("t"),
            body["data"]["to"]["email"].as_str().unwrap_or("g")
        );
        send = send
            .message_group_id(group)
            .message_deduplication_id(format!("{}", Utc::now().timestamp_nanos_opt().unwrap()));
    }
    send.send().await.unwrap();
}

fn handler(store: Arc<InMemoryStore>, sender: Arc<dyn EmailSender>) -> Arc<EventHandler> {
    Arc::new(EventHandler {
        store,
        tenants: Arc::new(FakeTenants::with(&["acme-invest", "acme-bank"])),
        suppressions: Arc::new(FakeSuppressions::default()),
        renderer: Arc::new(FakeRenderer::knowing(&["account.deposit_completed"])),
        sender,
        clock: Arc::new(SystemClock),
        policy: DeliveryPolicy { lease: Duration::from_secs(30), ..DeliveryPolicy::default() },
        worker_id: "sqs-test".into(),
        pauses: Default::default(),
    })
}

fn fast_config(queue_url: &str) -> ConsumerConfig {
    ConsumerConfig {
        queue_url: queue_url.to_owned(),
        wait_time_seconds: 1,
        visibility_timeout_seconds: 10,
        heartbeat_interval: Duration::from_secs(2),
        backoff_first: Duration::from_secs(1),
        backoff_max: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(10),
        ..ConsumerConfig::default()
    }
}

fn event(id: &str) -> Value {
    let mut event = example_event();
    event["id"] = json!(id);
    event
}

/// Polls `done` every 100 ms for at most `seconds`.
async fn eventually(seconds: u64, what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..seconds * 10 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {seconds} s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_sent_once_however_often_it_arrives_and_every_message_is_deleted() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "once", 5, false).await;
    // 20 events; 5 of them published twice (a producer retry); one wrapped by SNS.
    for i in 0..20 {
        publish(&client, &queue, &event(&format!("e-{i}"))).await;
    }
    for i in 0..5 {
        publish(&client, &queue, &event(&format!("e-{i}"))).await;
    }
    let sns =
        json!({ "Type": "Notification", "MessageId": "m", "Message": event("sns-1").to_string() });
    publish(&client, &queue, &sns).await;
    publish(&client, &queue, &json!("not an event")).await;

    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(RecordingSender::default());
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(
        client.clone(),
        fast_config(&queue),
        handler(store.clone(), sender.clone()),
    );
    let running = tokio::spawn(consumer.run(stopped));

    eventually(30, "all 27 messages handled and deleted", async || {
        messages_in(&client, &queue).await == (0, 0) && sender.sent().len() == 21
    })
    .await;
    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap();

    assert_eq!(sender.sent().len(), 21, "20 events + 1 SNS-wrapped, each once");
    let mut ids: Vec<_> = sender.sent().iter().map(|e| e.delivery_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 21, "no delivery sent twice");
    let page = store.deliveries(&DeliveryQuery { limit: 100, ..Default::default() }).await.unwrap();
    let duplicates: u32 = page.deliveries.iter().map(|d| d.duplicate_count).sum();
    assert_eq!(duplicates, 5);
    assert_eq!(store.unkeyed_rejections(10).await.unwrap().len(), 1, "the poison message is kept");
    assert_eq!(report.received, 27);
    assert_eq!(report.deleted, 27, "poison included: deleted once recorded, never looped");
    println!("report: {report:?}");
}

/// Fails the first `failures` sends with a transient error.
struct Flaky {
    failures: AtomicU32,
    inner: RecordingSender,
}

#[async_trait]
impl EmailSender for Flaky {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SendError::Throttled {
                reason: "TooManyRequests".into(),
                retry_after: None,
            });
        }
        self.inner.send(email).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_leaves_the_message_with_a_backoff_and_it_is_sent_on_redelivery() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "backoff", 5, false).await;
    publish(&client, &queue, &event("throttled")).await;

    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(Flaky { failures: AtomicU32::new(1), inner: RecordingSender::default() });
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(
        client.clone(),
        fast_config(&queue),
        handler(store.clone(), sender.clone()),
    );
    let running = tokio::spawn(consumer.run(stopped));

    eventually(30, "sent after one backoff", async || sender.inner.sent().len() == 1).await;
    eventually(10, "deleted", async || messages_in(&client, &queue).await == (0, 0)).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap();
    assert_eq!(report.backed_off, 1);
    assert_eq!(report.deleted, 1);
    let page = store.deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.deliveries[0].status, DeliveryStatus::Sent);
    assert_eq!(page.deliveries[0].receive_count, 2, "ApproximateReceiveCount is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_down_the_consumer_holds_off_and_nothing_reaches_the_dlq() {
    let client = sqs().await;
    // Two receives without a decision would move a message to the DLQ.
    let (queue, dlq) = queue_with_dlq(&client, "storedown", 2, false).await;
    for i in 0..3 {
        publish(&client, &queue, &event(&format!("stuck-{i}"))).await;
    }

    let store = Arc::new(InMemoryStore::default());
    store.fail_next(u32::MAX);
    let sender = Arc::new(RecordingSender::default());
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(
        client.clone(),
        fast_config(&queue),
        handler(store.clone(), sender.clone()),
    );
    let health = consumer.health();
    let running = tokio::spawn(consumer.run(stopped));
    eventually(5, "the store seen down", async || !health.store_is_up()).await;
    assert!(health.store().unwrap_err().contains("fake outage"), "{:?}", health.store());
    // With backoffs of 1–2 s, receiving on would have moved them to the DLQ within seconds.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(messages_in(&client, &dlq).await, (0, 0), "nothing in the DLQ");
    assert!(sender.sent().is_empty());

    // The store is back: the consumer receives again and each event is sent once.
    store.fail_next(0);
    eventually(5, "the store seen back", async || health.store_is_up()).await;
    eventually(40, "all sent", async || sender.sent().len() == 3).await;
    eventually(10, "deleted", async || messages_in(&client, &queue).await == (0, 0)).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap();
    assert_eq!(messages_in(&client, &dlq).await, (0, 0));
    // Each message was received at most once before the outage was seen, and once after it
    // (no probe receive falls inside the 12 s).
    assert!(report.received <= 6, "{report:?}");
    assert_eq!(report.deleted, 3, "{report:?}");
}

/// Never answers.
struct Hanging;

#[async_trait]
impl EmailSender for Hanging {
    async fn send(&self, _email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_handling_outlasts_its_deadline_is_abandoned_and_comes_back() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "deadline", 5, false).await;
    publish(&client, &queue, &event("hangs")).await;

    let store = Arc::new(InMemoryStore::default());
    let (stop, stopped) = watch::channel(false);
    let config = ConsumerConfig {
        handling_deadline: Duration::from_secs(3),
        shutdown_grace: Duration::from_secs(1),
        ..fast_config(&queue)
    };
    let consumer = SqsConsumer::new(client.clone(), config, handler(store, Arc::new(Hanging)));
    let running = tokio::spawn(consumer.run(stopped));
    // The heartbeat (every 2 s, visibility 10 s) would keep it invisible for as long as the
    // send hangs; abandoned after 3 s, it is visible again about 10 s after the last renewal.
    // The second receive finds the abandoned claim's lease held and backs off.
    tokio::time::sleep(Duration::from_secs(18)).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap();
    assert_eq!(report.timed_out, 1, "{report:?}");
    assert!(report.received >= 2, "it came back: {report:?}");
    assert_eq!(report.deleted, 0, "{report:?}");
}

/// Takes `delay` per send.
struct Slow {
    delay: Duration,
    inner: RecordingSender,
}

#[async_trait]
impl EmailSender for Slow {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        tokio::time::sleep(self.delay).await;
        self.inner.send(email).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_work_in_flight_and_leaves_the_rest_visible() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "shutdown", 5, false).await;
    for i in 0..30 {
        publish(&client, &queue, &event(&format!("s-{i}"))).await;
    }
    let store = Arc::new(InMemoryStore::default());
    let sender =
        Arc::new(Slow { delay: Duration::from_millis(1500), inner: RecordingSender::default() });
    let config = ConsumerConfig { pollers: 1, max_in_flight: 10, ..fast_config(&queue) };
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(client.clone(), config, handler(store.clone(), sender.clone()));
    let running = tokio::spawn(consumer.run(stopped));

    eventually(20, "work in flight", async || messages_in(&client, &queue).await.1 > 0).await;
    let asked = tokio::time::Instant::now();
    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(15), running).await.unwrap().unwrap();
    let took = asked.elapsed();

    // Everything received was finished (sent and deleted), released at once, or (received
    // while the tenant's slots and the waiting room were full) handed back with a short delay.
    let sent = sender.inner.sent().len() as u64;
    assert_eq!(report.deleted, sent);
    assert_eq!(report.abandoned, 0);
    assert_eq!(
        report.received,
        report.deleted + report.released_unstarted + report.handed_back,
        "{report:?}"
    );
    eventually(10, "handed-back messages visible again", async || {
        messages_in(&client, &queue).await.1 == 0
    })
    .await;
    let (visible, in_flight) = messages_in(&client, &queue).await;
    assert_eq!(in_flight, 0, "nothing left invisible after the stop");
    assert_eq!(visible, 30 - sent, "the rest waits for the next worker");
    assert!(took < Duration::from_secs(10), "stopped within the grace period: {took:?}");
    println!("shutdown took {took:?}: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_queue_works_the_same() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "fifo", 5, true).await;
    for i in 0..5 {
        publish(&client, &queue, &event(&format!("f-{i}"))).await;
    }
    publish(&client, &queue, &event("f-0")).await;
    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(RecordingSender::default());
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(
        client.clone(),
        fast_config(&queue),
        handler(store.clone(), sender.clone()),
    );
    let running = tokio::spawn(consumer.run(stopped));
    eventually(30, "all handled", async || messages_in(&client, &queue).await == (0, 0)).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap();
    assert_eq!(sender.sent().len(), 5);
    assert_eq!(report.deleted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_long_poll_brings_after_the_stop_are_released_not_started() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "release", 5, false).await;
    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(RecordingSender::default());
    let config = ConsumerConfig { pollers: 1, wait_time_seconds: 5, ..fast_config(&queue) };
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(client.clone(), config, handler(store.clone(), sender.clone()));
    let running = tokio::spawn(consumer.run(stopped));

    // The poller is inside a 5 s long poll on an empty queue; ask it to stop, then publish.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.send(true).unwrap();
    publish(&client, &queue, &event("late")).await;
    let report = tokio::time::timeout(Duration::from_secs(15), running).await.unwrap().unwrap();

    assert!(sender.sent().is_empty(), "nothing is started after a stop");
    assert_eq!(report.released_unstarted, report.received);
    assert_eq!(messages_in(&client, &queue).await, (1, 0), "visible again at once");
    println!("{report:?}");
}

/// The `SenderId` moto reports for every sender (FACTS.md): the allowed producer here.
const MOTO_SENDER_ID: &str = "AIDAIT2UOQQY3AUEKVGXU";

async fn publish_grouped(client: &Client, queue_url: &str, body: &Value, group: &str) {
    let send = client.send_message().queue_url(queue_url).message_body(body.to_string());
    send.message_group_id(group).send().await.unwrap();
}

/// acme-invest accepts moto's sender under sources `acme-invest/`; acme-bank only a role moto
/// never reports.
fn bound_tenants() -> FakeTenants {
    let mut invest = tayori_app::testing::tenant_profile("acme-invest");
    invest.publishers = PublisherRules {
        producers: Some(vec![MOTO_SENDER_ID.into()]),
        sources: Some(vec!["acme-invest/".into()]),
    };
    let mut bank = tayori_app::testing::tenant_profile("acme-bank");
    bank.publishers.producers = Some(vec!["AROAACMEBANKPRODUCER".into()]);
    FakeTenants::of(vec![invest, bank])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_are_bound_to_tenants_by_the_sender_id_sqs_reports() {
    let client = sqs().await;
    let (queue, dlq) = queue_with_dlq(&client, "producers", 5, false).await;
    // Allowed: moto's sender for acme-invest, grouped under acme-invest (fair queues).
    publish_grouped(&client, &queue, &event("allowed"), "acme-invest").await;
    // A producer acme-bank does not list.
    let mut bank = event("bank");
    bank["tenant"] = json!("acme-bank");
    bank["source"] = json!("acme-bank/accounts");
    publish_grouped(&client, &queue, &bank, "acme-bank").await;
    // tayori's own source, from a producer.
    let mut reserved = event("reserved");
    reserved["source"] = json!("tayori:resend");
    publish_grouped(&client, &queue, &reserved, "acme-invest").await;
    // Grouped under another tenant than its envelope's.
    publish_grouped(&client, &queue, &event("misgrouped"), "acme-bank").await;

    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(RecordingSender::default());
    let handler = Arc::new(EventHandler {
        tenants: Arc::new(bound_tenants()),
        ..Arc::into_inner(handler(store.clone(), sender.clone())).unwrap()
    });
    let (stop, stopped) = watch::channel(false);
    let running =
        tokio::spawn(SqsConsumer::new(client.clone(), fast_config(&queue), handler).run(stopped));
    eventually(30, "all decided", async || messages_in(&client, &queue).await == (0, 0)).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap();
    assert_eq!(report.deleted, 4);
    assert_eq!(messages_in(&client, &dlq).await, (0, 0));

    let sent = sender.sent();
    assert_eq!(sent.len(), 1, "only the allowed producer's event is sent");
    assert_eq!(sent[0].tenant.as_str(), "acme-invest");
    let mut reasons: Vec<(Option<String>, String)> = store
        .unkeyed_rejections(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.tenant, r.reason))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    let bank_reason = &reasons[0];
    assert_eq!(bank_reason.0.as_deref(), Some("acme-bank"));
    assert!(
        bank_reason.1.contains(&format!(
            "producer \"{MOTO_SENDER_ID}\" may not publish for tenant \"acme-bank\""
        )),
        "{reasons:?}"
    );
    assert!(reasons[1..].iter().all(|(tenant, _)| tenant.as_deref() == Some("acme-invest")));
    assert!(reasons.iter().any(|(_, r)| r.contains("MessageGroupId \"acme-bank\"")), "{reasons:?}");
    assert!(reasons.iter().any(|(_, r)| r.contains("reserved for tayori")), "{reasons:?}");
    // Nothing was claimed for the refused events' keys.
    let page = store.deliveries(&DeliveryQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.deliveries.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tayoris_own_sender_passes_every_tenants_producers() {
    let client = sqs().await;
    let (queue, _dlq) = queue_with_dlq(&client, "trusted", 5, false).await;
    let mut bank = event("redriven");
    bank["tenant"] = json!("acme-bank");
    publish_grouped(&client, &queue, &bank, "acme-bank").await;
    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(RecordingSender::default());
    let handler = Arc::new(EventHandler {
        tenants: Arc::new(bound_tenants()),
        ..Arc::into_inner(handler(store.clone(), sender.clone())).unwrap()
    });
    // Here moto's sender stands for the role that redrives dead letters.
    let config =
        ConsumerConfig { trusted_producers: vec![MOTO_SENDER_ID.into()], ..fast_config(&queue) };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(SqsConsumer::new(client.clone(), config, handler).run(stopped));
    eventually(30, "sent", async || sender.sent().len() == 1).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    assert!(store.unkeyed_rejections(10).await.unwrap().is_empty());
}

/// Sends acme-invest's emails after `slow` each (a tenant whose SES sends crawl), acme-bank's at
/// once; remembers when each tenant's sends finished.
struct SlowTenant {
    slow: Duration,
    inner: RecordingSender,
    bank_sent_at: std::sync::Mutex<Vec<std::time::Instant>>,
}

#[async_trait]
impl EmailSender for SlowTenant {
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError> {
        if email.tenant.as_str() == "acme-invest" {
            tokio::time::sleep(self.slow).await;
        }
        let sent = self.inner.send(email).await;
        if email.tenant.as_str() == "acme-bank" {
            self.bank_sent_at.lock().unwrap().push(std::time::Instant::now());
        }
        sent
    }
}

async fn publish_many(client: &Client, queue_url: &str, events: &[Value]) {
    for chunk in events.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, body)| {
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body.to_string())
                .message_group_id(body["tenant"].as_str().unwrap())
                .build()
                .unwrap()
        });
        let sent = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
        assert!(sent.failed.is_empty(), "{:?}", sent.failed);
    }
}

/// 100 events of acme-invest, whose sends take 2 s each, and 50 of acme-bank, interleaved on
/// one queue consumed with 20 slots and `tenant_share`: how long after its events were published
/// acme-bank's last one was sent, and the consumer's report once everything is sent.
async fn slow_tenant_beside_a_quiet_one(tenant_share: f64) -> (Duration, ConsumerReport) {
    let client = sqs().await;
    let (queue, dlq) = queue_with_dlq(&client, "slow-tenant", 5, false).await;
    let invest: Vec<Value> = (0..100).map(|i| event(&format!("invest-{i}"))).collect();
    let bank: Vec<Value> = (0..50)
        .map(|i| {
            let mut event = event(&format!("bank-{i}"));
            event["tenant"] = json!("acme-bank");
            event
        })
        .collect();
    // As two products publishing at the same time leave them on a standard queue: interleaved,
    // two of acme-invest's to one of acme-bank's.
    let mixed: Vec<Value> = invest
        .chunks(2)
        .zip(&bank)
        .flat_map(|(two, one)| two.iter().chain(std::iter::once(one)).cloned())
        .collect();
    publish_many(&client, &queue, &mixed).await;
    let published = std::time::Instant::now();

    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(SlowTenant {
        slow: Duration::from_secs(2),
        inner: RecordingSender::default(),
        bank_sent_at: Default::default(),
    });
    let config = ConsumerConfig {
        max_in_flight: 20,
        tenant_share,
        visibility_timeout_seconds: 10,
        ..fast_config(&queue)
    };
    let (stop, stopped) = watch::channel(false);
    let consumer = SqsConsumer::new(client.clone(), config, handler(store.clone(), sender.clone()));
    let running = tokio::spawn(consumer.run(stopped));
    eventually(90, "every event sent", async || sender.inner.sent().len() == 150).await;
    eventually(10, "all deleted", async || messages_in(&client, &queue).await == (0, 0)).await;
    stop.send(true).unwrap();
    let report = running.await.unwrap();
    assert_eq!(messages_in(&client, &dlq).await, (0, 0), "nothing in the DLQ");
    let mut per_key = std::collections::HashMap::new();
    for email in sender.inner.sent() {
        *per_key.entry(email.delivery_id).or_insert(0) += 1;
    }
    assert_eq!(per_key.len(), 150);
    assert!(per_key.values().all(|n| *n == 1), "each key sent once");
    let bank_done = *sender.bank_sent_at.lock().unwrap().iter().max().unwrap();
    (bank_done - published, report)
}

/// The bound: acme-bank's 50 events are all sent within 5 s of being published. Without the
/// tenants' shares they are not: acme-invest's slow sends hold every slot, the pollers receive
/// only as they finish (20 every 2 s, a third of them acme-bank's), and acme-bank's last event,
/// 150th on the queue, comes out after about five such rounds: 8 to 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tenant_cannot_hold_the_slots_another_tenant_needs() {
    let (waited, report) = slow_tenant_beside_a_quiet_one(0.5).await;
    eprintln!("acme-bank's 50 sent {waited:?} after publishing; {report:?}");
    assert!(waited < Duration::from_secs(5), "acme-bank waited {waited:?}");
    assert!(report.handed_back > 0, "acme-invest's messages over its share went back: {report:?}");
}
