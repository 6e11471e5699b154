//! The routes through `router(state).oneshot(...)`, without a port, on the real use cases with
//! in-memory fakes behind them (the binary's end-to-end tests cover real stores and a real port).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tayori_app::ports::{EventQueue, QueueError};
use tayori_app::testing::{
    FakeRenderer, FakeSuppressions, FakeTenants, InMemoryStore, ManualClock, RecordingSender,
    example_event,
};
use tayori_app::{DeliveryPolicy, EventHandler, EventIntake, InboundMessage};
use tayori_http::{AppState, router};
use tower::ServiceExt;

#[derive(Default)]
struct VecQueue {
    bodies: Mutex<Vec<Vec<u8>>>,
    full: bool,
}

#[async_trait]
impl EventQueue for VecQueue {
    async fn publish(&self, body: Vec<u8>) -> Result<(), QueueError> {
        if self.full {
            return Err(QueueError::Unavailable("full".into()));
        }
        self.bodies.lock().unwrap().push(body);
        Ok(())
    }
}

struct Setup {
    state: AppState,
    handler: Arc<EventHandler>,
    queue: Arc<VecQueue>,
}

fn setup(queue: VecQueue) -> Setup {
    let store = Arc::new(InMemoryStore::default());
    let handler = Arc::new(EventHandler {
        store: store.clone(),
        tenants: Arc::new(FakeTenants::with(&["acme-invest"])),
        suppressions: Arc::new(FakeSuppressions::default()),
        renderer: Arc::new(FakeRenderer::knowing(&["account.deposit_completed"])),
        sender: Arc::new(RecordingSender::default()),
        clock: Arc::new(ManualClock::new()),
        policy: DeliveryPolicy::default(),
        worker_id: "http-test".into(),
        pauses: Default::default(),
    });
    let queue = Arc::new(queue);
    let intake = Arc::new(EventIntake { handler: handler.clone(), queue: queue.clone() });
    Setup { state: AppState { intake, store }, handler, queue }
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/events")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn a_valid_event_is_accepted_with_its_delivery_id_and_status_url() {
    let s = setup(VecQueue::default());
    let (status, body) = call(&s.state, post(example_event().to_string())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["delivery_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status_url"], format!("/v1/deliveries/{id}"));
    assert_eq!(s.queue.bodies.lock().unwrap().len(), 1);

    // Let the worker path decide it, then read its status.
    let queued = s.queue.bodies.lock().unwrap()[0].clone();
    s.handler.handle(&InboundMessage::first(queued)).await.unwrap();
    let (status, body) =
        call(&s.state, Request::get(format!("/v1/deliveries/{id}")).body(Body::empty()).unwrap())
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "sent");
    assert_eq!(body["recipient"], "t***@e***.com", "no full address on an unauthenticated route");
}

#[tokio::test]
async fn a_malformed_event_gets_400_with_the_reason() {
    let s = setup(VecQueue::default());
    let mut bad = example_event();
    bad["data"]["to"]["email"] = json!("taro@example.com\r\nBcc: x@evil.example");
    let (status, body) = call(&s.state, post(bad.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "rejected");
    assert!(body["reason"].as_str().unwrap().starts_with("data.to.email:"), "{body}");
    // It was recorded against its key, as rejected.
    let id = body["delivery_id"].as_str().unwrap();
    let (_, status_body) =
        call(&s.state, Request::get(format!("/v1/deliveries/{id}")).body(Body::empty()).unwrap())
            .await;
    assert_eq!(status_body["status"], "rejected");
    assert!(s.queue.bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_rejected_with_a_reason_not_dropped() {
    let s = setup(VecQueue::default());
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, body) = call(&s.state, post(big)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["reason"].as_str().unwrap().contains("more than the limit"), "{body}");
}

#[tokio::test]
async fn a_full_queue_answers_503_so_the_producer_retries() {
    let s = setup(VecQueue { full: true, ..Default::default() });
    let (status, body) = call(&s.state, post(example_event().to_string())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "unavailable");
}

#[tokio::test]
async fn unknown_and_malformed_delivery_ids() {
    let s = setup(VecQueue::default());
    let unknown = "6f1e2c0a-8d4b-4e57-9a31-54c91f0b7d22";
    let (status, _) = call(
        &s.state,
        Request::get(format!("/v1/deliveries/{unknown}")).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) =
        call(&s.state, Request::get("/v1/deliveries/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("not a delivery id"));
}

#[tokio::test]
async fn healthz_answers() {
    let s = setup(VecQueue::default());
    let response = router(s.state.clone())
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
