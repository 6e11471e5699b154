//! The public one-click unsubscribe endpoint on a fresh PostgreSQL database, through
//! `unsubscribe_router(...).oneshot(...)` with the client's address set as a listener sets it:
//! a valid token unsubscribes once (a second POST changes nothing and audits nothing), by an
//! urlencoded or a multipart body; tampered and expired tokens answer 400 and change nothing;
//! the GET page only confirms; junk tokens spend only their sender's allowance; the per-client,
//! per-recipient and overall limits answer 429.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use tayori_admin::{Quota, UnsubscribeLimits, unsubscribe_router};
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

/// No limit reached within a test.
fn unlimited() -> UnsubscribeLimits {
    UnsubscribeLimits {
        overall: Quota::per_second(NonZeroU32::MAX),
        per_client: Quota::per_second(NonZeroU32::MAX),
        per_recipient: Quota::per_second(NonZeroU32::MAX),
        invalid_per_client: Quota::per_second(NonZeroU32::MAX),
        trusted_proxy_hops: 0,
    }
}

/// `n` within a test, whatever its timing.
fn per_hour(n: u32) -> Quota {
    Quota::per_hour(NonZeroU32::new(n).unwrap())
}

async fn call(
    router: &Router,
    method: &str,
    token: &str,
    form: Option<&str>,
) -> (StatusCode, String) {
    call_from(router, "192.0.2.1", method, token, form).await
}

/// A request from `client`, as `tayori_http::serve` passes the connection's peer.
async fn call_from(
    router: &Router,
    client: &str,
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
    send(router, client, request.body(body).unwrap()).await
}

async fn send(router: &Router, client: &str, mut request: Request<Body>) -> (StatusCode, String) {
    let peer: SocketAddr = format!("{client}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1024 * 1024).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// What Gmail and others may send instead of urlencoded (RFC 8058 names both).
fn multipart_one_click(token: &str, value: &str) -> Request<Body> {
    let boundary = "----tayori-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
         {value}\r\n--{boundary}--\r\n"
    );
    Request::post(format!("/unsubscribe/{token}"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .unwrap()
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
    let router = unsubscribe_router(setup.service.clone(), unlimited());
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

    // Tampered: another token's sealed part spliced in; a flipped byte; garbage.
    let other = token(&setup, "taro@example.com", chrono::Duration::days(30));
    let spliced = format!("{}{}", &good[..good.len() / 2], &other[other.len() / 2..]);
    let mut flipped = other.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    for bad in [spliced.as_str(), flipped.as_str(), "not-a-token"] {
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
async fn a_multipart_one_click_unsubscribes() {
    let setup = setup().await;
    let router = unsubscribe_router(setup.service.clone(), unlimited());
    let good = token(&setup, "misaki@example.com", chrono::Duration::days(30));
    let (status, _) = send(&router, "192.0.2.1", multipart_one_click(&good, "Other")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the field must say One-Click");
    assert!(!unsubscribed(&setup, "misaki@example.com").await);
    let (status, page) = send(&router, "192.0.2.1", multipart_one_click(&good, "One-Click")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(unsubscribed(&setup, "misaki@example.com").await);
}

#[tokio::test]
async fn junk_tokens_spend_only_their_senders_allowance() {
    let setup = setup().await;
    // Tight valid-token limits: junk counted against them would refuse the real ones below.
    let limits = UnsubscribeLimits {
        overall: per_hour(3),
        per_client: per_hour(2),
        per_recipient: per_hour(2),
        invalid_per_client: per_hour(5),
        trusted_proxy_hops: 0,
    };
    let router = unsubscribe_router(setup.service.clone(), limits);
    let flooder = "198.51.100.66";
    for i in 0..5 {
        let junk = format!("v2.{:064x}", i);
        assert_eq!(call_from(&router, flooder, "POST", &junk, Some(ONE_CLICK)).await.0, 400);
    }
    // Past its allowance the flooder gets 429, and only the flooder.
    for _ in 0..200 {
        let (status, _) = call_from(&router, flooder, "POST", "junk", Some(ONE_CLICK)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let misaki = token(&setup, "misaki@example.com", chrono::Duration::days(30));
    let (status, _) = call_from(&router, "203.0.113.5", "POST", &misaki, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::OK, "a real unsubscribe from another client goes through");
    assert!(unsubscribed(&setup, "misaki@example.com").await);
    // Even the flooder's own valid link still works: junk spent no valid-token quota.
    let taro = token(&setup, "taro@example.com", chrono::Duration::days(30));
    let (status, _) = call_from(&router, flooder, "POST", &taro, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(unsubscribed(&setup, "taro@example.com").await);
}

#[tokio::test]
async fn the_per_client_per_recipient_and_overall_limits_answer_429() {
    let setup = setup().await;
    let limits = UnsubscribeLimits {
        overall: per_hour(6),
        per_client: per_hour(2),
        per_recipient: per_hour(2),
        invalid_per_client: per_hour(100),
        trusted_proxy_hops: 0,
    };
    let router = unsubscribe_router(setup.service.clone(), limits);
    let link = |address: &str| token(&setup, address, chrono::Duration::days(30));

    // Per client: two valid requests, the third (another recipient) refused.
    assert_eq!(call_from(&router, "192.0.2.10", "GET", &link("a@example.com"), None).await.0, 200);
    assert_eq!(call_from(&router, "192.0.2.10", "GET", &link("b@example.com"), None).await.0, 200);
    let (status, _) =
        call_from(&router, "192.0.2.10", "POST", &link("c@example.com"), Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "per client");
    assert!(!unsubscribed(&setup, "c@example.com").await, "a refused request changes nothing");

    // Per recipient: d's link twice from two clients, the third (a third client) refused.
    let d = link("d@example.com");
    assert_eq!(call_from(&router, "192.0.2.20", "GET", &d, None).await.0, 200);
    assert_eq!(call_from(&router, "192.0.2.21", "GET", &d, None).await.0, 200);
    let (status, _) = call_from(&router, "192.0.2.22", "POST", &d, Some(ONE_CLICK)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "per recipient");
    assert!(!unsubscribed(&setup, "d@example.com").await);

    // Overall: 4 of the 6 are spent; fresh clients and recipients get 2 more, then 429.
    assert_eq!(call_from(&router, "192.0.2.30", "GET", &link("e@example.com"), None).await.0, 200);
    assert_eq!(call_from(&router, "192.0.2.31", "GET", &link("f@example.com"), None).await.0, 200);
    let (status, _) = call_from(&router, "192.0.2.32", "GET", &link("g@example.com"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "overall");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_the_forwarded_address() {
    let setup = setup().await;
    let limits =
        UnsubscribeLimits { per_client: per_hour(1), trusted_proxy_hops: 1, ..unlimited() };
    let router = unsubscribe_router(setup.service.clone(), limits);
    let get_via_proxy = |forwarded: &'static str, address: &str| {
        let request = Request::get(format!(
            "/unsubscribe/{}",
            token(&setup, address, chrono::Duration::days(30))
        ))
        .header("x-forwarded-for", forwarded)
        .body(Body::empty())
        .unwrap();
        // Every request comes from the same load balancer.
        send(&router, "10.0.0.2", request)
    };
    assert_eq!(get_via_proxy("203.0.113.1", "a@example.com").await.0, 200);
    // A second client behind the same balancer has its own allowance.
    assert_eq!(get_via_proxy("203.0.113.2", "b@example.com").await.0, 200);
    // A spoofed entry to the left of the balancer's does not buy a new allowance.
    assert_eq!(get_via_proxy("1.2.3.4, 203.0.113.1", "c@example.com").await.0, 429);
}
