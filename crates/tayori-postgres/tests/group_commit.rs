//! Group commit through the store's public API: concurrent calls share transactions, and each
//! still gets its own answer once its write is committed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::time::Duration;

use chrono::Utc;
use tayori_app::ports::{AttemptResult, Claim, ClaimRequest, DeliveryStore, RecordOutcome};
use tayori_domain::{DeliveryStatus, EventId, EventSource, IdempotencyKey, Outcome, TenantId};
use tayori_postgres::testing::fresh_database;
use tayori_postgres::{PostgresConfig, PostgresStore};

fn key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new(
        TenantId::parse("acme-invest").unwrap(),
        EventSource::parse("acme/accounts").unwrap(),
        EventId::parse(id).unwrap(),
    )
}

fn claim(key: &IdempotencyKey) -> ClaimRequest {
    ClaimRequest {
        key: key.clone(),
        event_type: None,
        recipient: None,
        event_json: Some("{}".into()),
        raw_body: None,
        owner: "w1".into(),
        receive_count: 1,
        lease: Duration::from_secs(60),
        now: Utc::now(),
    }
}

/// 300 events' four writes, all at once on one writer: they go in far fewer transactions than
/// writes, and every event ends `sent` with its attempt recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_transactions_and_each_is_answered() {
    let config = PostgresConfig { write_batches_in_flight: 1, ..fresh_database().await };
    let store = PostgresStore::connect(&config).await.unwrap();
    let events: Vec<IdempotencyKey> = (0..300).map(|i| key(&format!("e-{i}"))).collect();
    let handled = futures::future::join_all(events.iter().map(|key| {
        let store = store.clone();
        async move {
            assert_eq!(store.claim(&claim(key)).await.unwrap(), Claim::Claimed { attempt: 1 });
            store.record_attempt_started(key, 1, Utc::now()).await.unwrap();
            store
                .record_attempt_finished(key, 1, AttemptResult::Accepted, "ses", Utc::now())
                .await
                .unwrap();
            let outcome = Outcome::Sent { provider_message_id: "ses".into() };
            store.record_outcome(key, &outcome, None, Utc::now()).await.unwrap()
        }
    }))
    .await;
    assert!(handled.iter().all(|r| *r == RecordOutcome::Recorded));

    let stats = store.write_batch_stats();
    assert_eq!(stats.writes, 1_200);
    assert_eq!(stats.replayed, 0);
    assert!(stats.batches < 600, "writes were batched: {stats:?}");

    let reopened = PostgresStore::connect(&config).await.unwrap();
    for key in &events {
        let record = reopened.delivery(key.delivery_id(), None).await.unwrap().unwrap();
        assert_eq!(record.status, DeliveryStatus::Sent);
        let attempts = reopened.attempts(&key.tenant, key.delivery_id()).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].result, Some(AttemptResult::Accepted));
    }
}
