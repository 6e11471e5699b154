//! The in-process queue driving the real use case (with in-memory fakes behind it): events are
//! handled, transient failures come back after a backoff, shutdown drains work in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tayori_app::ports::{DeliveryStore, EventQueue, SendError};
use tayori_app::testing::{
    FakeRenderer, FakeSuppressions, FakeTenants, InMemoryStore, ManualClock, RecordingSender,
    example_event,
};
use tayori_app::{DeliveryPolicy, EventHandler};
use tayori_domain::DeliveryStatus;
use tayori_memqueue::{WorkerSettings, memory_queue};
use tokio::sync::watch;

fn handler(store: Arc<InMemoryStore>, sender: Arc<RecordingSender>) -> Arc<EventHandler> {
    Arc::new(EventHandler {
        store,
        tenants: Arc::new(FakeTenants::with(&["acme-invest"])),
        suppressions: Arc::new(FakeSuppressions::default()),
        renderer: Arc::new(FakeRenderer::knowing(&["account.deposit_completed"])),
        sender,
        clock: Arc::new(ManualClock::new()),
        policy: DeliveryPolicy::default(),
        worker_id: "memqueue-test".into(),
        pauses: Default::default(),
    })
}

#[tokio::test]
async fn handles_events_retries_transient_failures_and_stops_cleanly() {
    let store = Arc::new(InMemoryStore::default());
    let sender = Arc::new(RecordingSender::failing_with(vec![SendError::Unavailable {
        reason: "blip".into(),
    }]));
    let (queue, workers) = memory_queue(16);
    let (stop, stopped) = watch::channel(false);
    let settings = WorkerSettings {
        concurrency: 2,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    };
    let running =
        tokio::spawn(workers.run(handler(store.clone(), sender.clone()), settings, stopped));

    for id in ["a", "b", "c"] {
        let mut event = example_event();
        event["id"] = json!(id);
        queue.publish(event.to_string().into_bytes()).await.unwrap();
    }
    // Wait (bounded) until all three are sent, one of them after a retry.
    for _ in 0..200 {
        if sender.sent().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sender.sent().len(), 3);
    assert_eq!(sender.calls(), 4, "one transient failure, retried once");

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap();
    let page = store
        .deliveries(&tayori_app::ports::DeliveryQuery { limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert!(page.deliveries.iter().all(|d| d.status == DeliveryStatus::Sent));
}

#[tokio::test]
async fn a_full_queue_refuses_instead_of_blocking() {
    let (queue, _workers) = memory_queue(1);
    queue.publish(b"{}".to_vec()).await.unwrap();
    let error = queue.publish(b"{}".to_vec()).await.unwrap_err();
    assert!(error.to_string().contains("in-process queue"), "{error}");
}
