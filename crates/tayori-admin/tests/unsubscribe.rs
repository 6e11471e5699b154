//! The public one-click unsubscribe endpoint on a fresh PostgreSQL database, through
//! `unsubscribe_router(...).oneshot(...)`: a valid token unsubscribes once (a second POST changes
//! nothing and audits nothing), tampered and expired tokens answer 400 and change nothing, the
//! GET page only confirms, and the rate limiter answers 429 beyond its quota.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tayori_admin::{Quota, unsubscribe_router};
use tayori_app::UnsubscribeService;
use tayori_app::ports::{AuditLog, AuditQuery, Clock, MessageClass, SuppressionList};
use tayori_app::testing::ManualClock;
use tayori_domain::{EmailAddress, EventType, TenantId, UnsubscribeKey};
use tayori_postgres::{PostgresAdminStore, PostgresStore, PostgresSuppressions};
use tower::ServiceExt;

struct Setup {
    key: UnsubscribeKey,
    clock: Arc<ManualClock>,
    suppressions: PostgresSuppressions,
    admin: PostgresAdminStore,
    service: Arc<UnsubscribeService>,
}

async fn setup() -> Setup {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let suppressions = PostgresSuppressions::new(store.pool().clone());
    let key = UnsubscribeKey::new(&[7; 32]).unwrap();
    let clock = Arc::new(ManualClock::new());
    let service = Arc::new(UnsubscribeService {
        store: Arc::new(suppressions.clone()),
        key: key.clone(),
        previous_keys: vec![],
        clock: clock.clone(),
    });
    let admin = PostgresAdminStore::new(store.pool().clone());
    Setup { key, clock, suppressions, admin, service }
}

fn token(setup: &Setup, address: &str, valid_for: chrono::Duration) -> String {
    setup.key.sign(
        &TenantId::parse("acme-bank").unwrap(),
        &EmailAddress::parse(address).unwrap(),
        &EventType::parse("report.monthly_ready").unwrap(),
        setup.clock.now() + valid_for,
    )
}

async fn call(
    router: &Router,
    method: &str,
    token: &str,
    form: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(format!("/unsubscribe/{token}"));
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form.to_owned())
        }
        None => Body::empty(),
    };
    let response = router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1024 * 1024).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn unsubscribed(setup: &Setup, address: &str) -> bool {
    let tenant = TenantId::parse("acme-bank").unwrap();
    let address = EmailAddress::parse(address).unwrap();
    let subscription =
        setup.suppressions.check(&tenant, &address, MessageClass::Subscription).await.unwrap();
    let transactional =
        setup.suppressions.check(&tenant, &address, MessageClass::Transactional).await.unwrap();
    assert_eq!(transactional, None, "an unsubscribe never stops transactional mail");
    subscription.is_some()
}

async fn audit_count(setup: &Setup) -> usize {
    let query =
        AuditQuery { action: Some("suppression.add".into()), limit: 50, ..Default::default() };
    setup.admin.audit(&query).await.unwrap().len()
}

const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

#[tokio::test]
async fn a_valid_token_unsubscribes_once_and_bad_tokens_change_nothing() {
    let setup = setup().await;
    let router = unsubscribe_router(setup.service.clone(), Quota::per_second(NonZeroU32::MAX));
    let good = token(&setup, "misaki@example.com", chrono::Duration::days(30));

    // The page confirms, and changes nothing.
    let (status, page) = call(&router, "GET", &good, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""), "{page}");
    assert!(!page.contains("misaki@example.com"), "the address is masked");
    assert!(!unsubscribed(&setup, "misaki@example.com").await);

    // A POST without the RFC 8058 body is refused.
    let (status, _) = call(&router, "POST", &good, Some("foo=bar")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!unsubscribed(&setup, "misaki@example.com").await);

    // One click: unsubscribed and audited; the second is the same answer and nothing more.
    let (status, _) = call(&router, "POST", &good, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(unsubscribed(&setup, "misaki@example.com").await);
    assert_eq!(audit_count(&setup).await, 1);
    let (status, _) = call(&router, "POST", &good, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit_count(&setup).await, 1, "no double audit");
    let entry =
        &setup.admin.audit(&AuditQuery { limit: 1, ..Default::default() }).await.unwrap()[0];
    assert_eq!(entry.entry.detail["cause"], "unsubscribe");
    assert_eq!(entry.entry.detail["unsubscribe_token_sha256"].as_str().unwrap().len(), 64);

    // Tampered: another address under the good signature; a flipped signature; garbage.
    let other = token(&setup, "taro@example.com", chrono::Duration::days(30));
    let (_, good_tag) = good.split_once('.').unwrap();
    let (other_payload, _) = other.split_once('.').unwrap();
    let forged = format!("{other_payload}.{good_tag}");
    let mut flipped = other.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    for bad in [forged.as_str(), flipped.as_str(), "not-a-token"] {
        for method in ["GET", "POST"] {
            let (status, _) = call(&router, method, bad, Some(ONE_CLICK)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {bad}");
        }
    }
    assert!(!unsubscribed(&setup, "taro@example.com").await);

    // Expired: valid for an hour, used after two.
    let expiring = token(&setup, "jiro@example.com", chrono::Duration::hours(1));
    setup.clock.advance(Duration::from_secs(2 * 3600));
    let (status, _) = call(&router, "POST", &expiring, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!unsubscribed(&setup, "jiro@example.com").await);
    assert_eq!(audit_count(&setup).await, 1);
}

#[tokio::test]
async fn requests_beyond_the_quota_are_refused() {
    let setup = setup().await;
    // Two requests an hour: the third within this test is over the quota, whatever its timing.
    let quota = Quota::per_hour(NonZeroU32::new(2).unwrap());
    let router = unsubscribe_router(setup.service.clone(), quota);
    let good = token(&setup, "misaki@example.com", chrono::Duration::days(30));
    assert_eq!(call(&router, "GET", &good, None).await.0, StatusCode::OK);
    assert_eq!(call(&router, "GET", "bad", None).await.0, StatusCode::BAD_REQUEST);
    let (status, _) = call(&router, "POST", &good, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!unsubscribed(&setup, "misaki@example.com").await, "a refused request changes nothing");
}
