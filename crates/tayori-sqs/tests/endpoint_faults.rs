//! The consumer when the SQS endpoint misbehaves: moto behind a fault proxy that answers 500,
//! resets connections, leaves calls hanging past the long poll's wait time, and silently drops
//! pooled connections left idle (as a NAT gateway or load balancer does). The SDK client is set
//! up as `tayori worker` sets it up (connect 3 s, read 30 s). What must hold: the consumer's
//! own call timeouts fire, its loops go on, its tasks do not pile up, and every message is
//! handled and deleted within 30 s of the fault's end. The use case is a counting fake: the
//! adapter under test is the consumer (the event path's exactly-once has its own tests).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use tayori_app::{InboundMessage, MessageHandler, RetryLater};
use tayori_sqs::{ConsumerConfig, SqsConsumer};
use tokio::sync::watch;

mod support;

use support::fault_proxy::{Fault, FaultProxy};
use support::{messages_in, queue_with_dlq, sqs};

/// Counts each message body it handles, each taking `takes`.
#[derive(Default)]
struct Counting {
    handled: Mutex<HashMap<String, u32>>,
    takes: Duration,
}

#[async_trait]
impl MessageHandler for Counting {
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater> {
        let body = String::from_utf8_lossy(&message.body).into_owned();
        tokio::time::sleep(self.takes).await;
        *self.handled.lock().unwrap().entry(body).or_default() += 1;
        Ok(())
    }
}

impl Counting {
    fn handled_all(&self, bodies: &[String]) -> bool {
        let handled = self.handled.lock().unwrap();
        bodies.iter().all(|body| handled.contains_key(body))
    }
}

/// An SQS client through `endpoint` set up as `tayori::worker::aws_config` sets it up: connect
/// 3 s, read 30 s, idle connections kept 30 s (`POOL_IDLE_TIMEOUT`), or `pool_idle` here.
async fn client_through(endpoint: &str, pool_idle: Duration) -> Client {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .read_timeout(Duration::from_secs(30))
        .build();
    let http = aws_smithy_http_client::Builder::new()
        .pool_idle_timeout(pool_idle)
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .timeout_config(timeouts)
        .http_client(http)
        .load()
        .await;
    Client::new(&config)
}

/// The worker's pool idle timeout (`tayori::worker::POOL_IDLE_TIMEOUT`).
const WORKER_POOL_IDLE: Duration = Duration::from_secs(30);
/// The SDK's default, hyper's: 90 s.
const SDK_DEFAULT_POOL_IDLE: Duration = Duration::from_secs(90);

fn moto_endpoint() -> String {
    std::env::var("TAYORI_TEST_AWS_ENDPOINT").expect("TAYORI_TEST_AWS_ENDPOINT (scripts/test)")
}

async fn publish(client: &Client, queue_url: &str, phase: &str, count: usize) -> Vec<String> {
    let bodies: Vec<String> = (0..count).map(|i| format!("{phase}-{i}")).collect();
    for body in &bodies {
        client.send_message().queue_url(queue_url).message_body(body).send().await.unwrap();
    }
    bodies
}

/// Visible + in flight.
async fn messages_left(client: &Client, queue_url: &str) -> u64 {
    let (visible, in_flight) = messages_in(client, queue_url).await;
    visible + in_flight
}

/// Waits until every body is handled and the queue is empty (so every message was deleted);
/// returns how long that took, or fails after `limit`.
async fn drained(
    moto: &Client,
    queue_url: &str,
    handler: &Counting,
    bodies: &[String],
    limit: Duration,
    what: &str,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if handler.handled_all(bodies) && messages_left(moto, queue_url).await == 0 {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let handled = bodies.iter().filter(|b| handler.handled.lock().unwrap().contains_key(*b));
    panic!(
        "{what}: not handled and deleted within {limit:?}: {} of {} handled, {} left on the queue",
        handled.count(),
        bodies.len(),
        messages_left(moto, queue_url).await
    );
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Within 30 s of a fault's end, as the issue asks.
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_resets_and_hung_calls_are_survived_and_the_consumer_recovers() {
    let moto = sqs().await;
    let (queue, dlq) = queue_with_dlq(&moto, "endpoint-faults", 5, false).await;
    let proxy = FaultProxy::start(&moto_endpoint(), None);
    let pool_idle = WORKER_POOL_IDLE;
    let handler = Arc::new(Counting::default());
    let config = ConsumerConfig {
        queue_url: queue.clone(),
        wait_time_seconds: 2,
        visibility_timeout_seconds: 10,
        heartbeat_interval: Duration::from_secs(2),
        call_timeout: Duration::from_secs(3),
        ..ConsumerConfig::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let consumer =
        SqsConsumer::new(client_through(&proxy.endpoint, pool_idle).await, config, handler.clone());
    let running = tokio::spawn(consumer.run(shutdown));

    let bodies = publish(&moto, &queue, "before", 20).await;
    drained(&moto, &queue, &handler, &bodies, RECOVERY, "before any fault").await;
    let tasks_before = alive_tasks();

    for (fault, seen) in [
        (Fault::ServerError, &proxy.counts.server_errors),
        (Fault::Reset, &proxy.counts.resets),
        (Fault::Hang, &proxy.counts.hung),
    ] {
        proxy.set(fault);
        let bodies = publish(&moto, &queue, &format!("{fault:?}"), 20).await;
        // Long enough for a receive to hang past its 2 s wait time and the 3 s call timeout.
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert!(
            seen.load(Ordering::Relaxed) > 0,
            "{fault:?} was never met: the test proves nothing"
        );
        proxy.set(Fault::None);
        let took = drained(&moto, &queue, &handler, &bodies, RECOVERY, &format!("{fault:?}")).await;
        println!("{fault:?}: every message handled and deleted {took:?} after the fault ended");
        assert!(!running.is_finished(), "the consumer stopped on {fault:?}");
    }
    let tasks_after = alive_tasks();
    println!("tasks alive: {tasks_before} before the faults, {tasks_after} after");
    assert!(
        tasks_after <= tasks_before + 4,
        "tasks piled up: {tasks_before} before the faults, {tasks_after} after"
    );
    assert_eq!(messages_left(&moto, &dlq).await, 0, "nothing reached the dead-letter queue");

    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap();
    println!("{report:?}; proxy: {:?}", proxy.counts);
}

/// After a quiet spell of 75 s on a network that forgets connections idle 60 s (an ALB's
/// default idle timeout), 40 messages whose heartbeats need more connections than the pollers'
/// live ones. Returns how long they took to be handled and deleted, and how many calls went out
/// on a forgotten connection.
async fn after_a_quiet_spell(pool_idle: Duration) -> (Duration, u64) {
    let moto = sqs().await;
    let (queue, dlq) = queue_with_dlq(&moto, "stale-connection", 5, false).await;
    let proxy = FaultProxy::start(&moto_endpoint(), Some(Duration::from_secs(60)));
    // Work that outlasts a heartbeat: after the quiet, the heartbeats of 40 messages at once
    // need more connections than the pollers' fresh ones, so the pool hands out idle ones.
    let handler = Arc::new(Counting { takes: Duration::from_secs(3), ..Counting::default() });
    let config = ConsumerConfig {
        queue_url: queue.clone(),
        // The production long poll: the pollers' connections carry a call at all times, the
        // deletes' connections wait in the pool.
        wait_time_seconds: 20,
        visibility_timeout_seconds: 10,
        heartbeat_interval: Duration::from_secs(2),
        call_timeout: Duration::from_secs(3),
        ..ConsumerConfig::default()
    };
    let (stop, shutdown) = watch::channel(false);
    let consumer =
        SqsConsumer::new(client_through(&proxy.endpoint, pool_idle).await, config, handler.clone());
    let running = tokio::spawn(consumer.run(shutdown));

    let bodies = publish(&moto, &queue, "before", 20).await;
    drained(&moto, &queue, &handler, &bodies, RECOVERY, "before the quiet").await;
    tokio::time::sleep(Duration::from_secs(75)).await;

    let bodies = publish(&moto, &queue, "after-quiet", 40).await;
    let took =
        drained(&moto, &queue, &handler, &bodies, Duration::from_secs(90), "after the quiet").await;
    let dropped = proxy.counts.on_dropped_connections.load(Ordering::Relaxed);
    println!(
        "pool idle {pool_idle:?}: 40 messages handled and deleted {took:?} after a 75 s quiet; {dropped} calls on forgotten connections"
    );
    assert!(!running.is_finished());
    // (Tasks are not compared here: hyper keeps a task per pooled connection, and 40
    // heartbeats at once open more connections than the quiet needed.)
    assert_eq!(messages_left(&moto, &dlq).await, 0);

    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(40), running).await.unwrap().unwrap();
    println!("{report:?}; proxy: {:?}", proxy.counts);
    (took, dropped)
}

#[test]
fn a_connection_the_network_forgot_while_idle_is_never_reused_and_work_goes_on() {
    // Both at once, each on a runtime of its own (so that each counts only its own tasks): the
    // SDK's default pool (the control) and the worker's.
    let on_own_runtime = |pool_idle: Duration| {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(after_a_quiet_spell(pool_idle))
        })
    };
    let control = on_own_runtime(SDK_DEFAULT_POOL_IDLE);
    let worker = on_own_runtime(WORKER_POOL_IDLE);
    let (control, worker) = (control.join().unwrap(), worker.join().unwrap());
    // The control shows the fault is real: with idle connections kept 90 s, calls go out on
    // forgotten connections (and wait for the consumer's timeouts).
    assert!(control.1 > 0, "the control sent nothing on a forgotten connection: {control:?}");
    // The worker's pool lets idle connections go before the network forgets them.
    assert_eq!(worker.1, 0, "the worker's client reused a forgotten connection");
    assert!(worker.0 <= RECOVERY, "40 messages took {:?} after the quiet", worker.0);
}
