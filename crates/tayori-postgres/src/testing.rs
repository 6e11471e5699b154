//! A fresh database per test on the throwaway cluster that `scripts/test` starts, a sent
//! delivery recorded the way a worker records it, and an operator's audit entry about a tenant.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tayori_app::ports::{
    AttemptEnd, AttemptResult, AuditEntry, Claim, ClaimRequest, DeliveryStore,
};
use tayori_domain::{EmailAddress, EventId, EventSource, IdempotencyKey, Outcome, TenantId};

use crate::{PostgresConfig, PostgresStore};

/// The variable `scripts/test` sets to the throwaway cluster's admin URL.
pub const TEST_DATABASE_URL_VAR: &str = "TAYORI_TEST_DATABASE_URL";

/// Creates an empty, migrated database and returns its config. Panics with a clear message
/// when the test cluster is not there: these tests must run, not skip.
pub async fn fresh_database() -> PostgresConfig {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = std::env::var(TEST_DATABASE_URL_VAR).unwrap_or_else(|_| {
        panic!("{TEST_DATABASE_URL_VAR} is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL")
    });
    let name = format!(
        "tayori_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test cluster at {admin_url}: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!("create database {name}")))
        .await
        .unwrap_or_else(|e| panic!("cannot create {name}: {e}"));
    admin.close().await;

    let (base, _) = admin_url.rsplit_once('/').unwrap_or((&admin_url, ""));
    let mut config = PostgresConfig::new(format!("{base}/{name}"));
    config.max_connections = 20;
    let store = PostgresStore::connect(&config).await.expect("connect to the fresh database");
    store.migrate().await.expect("migrations apply to an empty database");
    store.close().await;
    config
}

/// The key of acme-invest's event `id` from the source core-banking.
pub fn acme_key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new(
        TenantId::parse("acme-invest").expect("a valid tenant"),
        EventSource::parse("core-banking").expect("a valid source"),
        EventId::parse(id).expect("a valid event id"),
    )
}

/// A worker's claim of `key` at `at` (recipient taro@example.com, a one-minute lease).
pub fn claim_request(key: &IdempotencyKey, at: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        key: key.clone(),
        event_type: None,
        recipient: EmailAddress::parse("taro@example.com").ok(),
        event_json: Some(r#"{"specversion":"1.0"}"#.into()),
        raw_body: None,
        owner: "test".into(),
        receive_count: 1,
        lease: Duration::from_secs(60),
        now: at,
    }
}

/// Records a delivery of acme-invest's event `id` (source core-banking) sent at `at`, the way a
/// worker records it: the claim with its first attempt, then the attempt's result (accepted, SES
/// message id `ses-<id>`) with the outcome `sent`. Panics if the key was claimed before.
pub async fn record_sent(store: &PostgresStore, id: &str, at: DateTime<Utc>) -> IdempotencyKey {
    let key = acme_key(id);
    let claim = store
        .claim_and_start_attempt(&claim_request(&key, at))
        .await
        .expect("the claim is recorded");
    assert_eq!(claim, Claim::Claimed { attempt: 1 }, "{id} is a new key");
    let message_id = format!("ses-{id}");
    let end = AttemptEnd { attempt: 1, result: AttemptResult::Accepted, detail: &message_id };
    let outcome = Outcome::Sent { provider_message_id: message_id.clone() };
    store
        .record_attempt_finished_and_outcome(&key, end, &outcome, None, at)
        .await
        .expect("the outcome is recorded");
    key
}

/// The token id of the operator in [`operator_audit`].
pub const OPERATOR_TOKEN_ID: &str = "6f1e2c0a-8d4b-4e57-9a31-54c91f0b7d22";

/// An operator's audit entry (now, token [`OPERATOR_TOKEN_ID`]) of `action` on `tenant`, for
/// `reason`: what the admin use cases write with a pause or a resume.
pub fn operator_audit(tenant: &TenantId, action: &str, reason: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        token_id: OPERATOR_TOKEN_ID.into(),
        role: "operator".into(),
        action: action.into(),
        tenant: Some(tenant.clone()),
        object_kind: Some("tenant".into()),
        object_id: Some(tenant.to_string()),
        reason: Some(reason.into()),
        detail: serde_json::json!({}),
    }
}
