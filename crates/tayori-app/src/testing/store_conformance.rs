//! The contract of [`DeliveryStore`], as tests every adapter runs unchanged.
//!
//! An adapter's test file provides a [`StoreUnderTest`] on a fresh database and invokes
//! [`store_conformance_tests!`](crate::store_conformance_tests), which expands to one
//! `#[tokio::test]` per case below, so a failing case is named in the test output.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use tayori_domain::{
    DeliveryStatus, EmailAddress, EventId, EventSource, EventType, IdempotencyKey, Outcome,
    RawBody, Subject, TenantId,
};

use crate::ports::{
    AttemptEnd, AttemptResult, Claim, ClaimRequest, DeliveryQuery, DeliveryStore, RecordOutcome,
    StoreError, UnkeyedRejection,
};

/// A store on a fresh, empty database, as the suite needs it.
#[async_trait]
pub trait StoreUnderTest: Send + Sync {
    /// The store.
    fn store(&self) -> Arc<dyn DeliveryStore>;

    /// A new store on the same database through new connections, the old ones closed.
    async fn reconnect(&self) -> Arc<dyn DeliveryStore>;
}

/// Expands to one test per conformance case, each calling `$make` (an async expression) for a
/// fresh [`StoreUnderTest`]:
///
/// - `store_conformance_tests!(make())` gives `#[tokio::test]`s (multi-threaded, so concurrent
///   claims really run concurrently); the calling crate needs `tokio` with `macros` and
///   `rt-multi-thread`.
/// - `store_conformance_tests!(blocking: make())` gives plain `#[test]`s run on
///   `futures::executor::block_on`, for stores that need no runtime.
#[macro_export]
macro_rules! store_conformance_tests {
    (blocking: $make:expr) => {
        $crate::store_conformance_tests!(@list blocking, $make);
    };
    (@list $mode:ident, $make:expr) => {
        $crate::store_conformance_tests!(@cases $mode, $make;
            first_claim_creates_a_processing_delivery,
            sixteen_concurrent_claims_have_exactly_one_winner,
            unexpired_lease_cannot_be_taken_over,
            expired_lease_can_be_taken_over,
            released_lease_can_be_claimed_at_once,
            a_claim_to_send_starts_the_first_attempt_only,
            sixteen_concurrent_claims_to_send_start_one_attempt,
            decided_key_never_reopens,
            decided_outcome_is_never_overwritten,
            outcomes_survive_a_reconnect,
            duplicates_are_counted,
            attempts_are_recorded_in_order,
            a_send_result_and_its_outcome_are_recorded_together,
            unkeyed_rejections_are_kept_once_and_counted,
            same_event_id_in_two_tenants_is_two_deliveries,
            every_outcome_round_trips,
            listing_is_newest_first_tenant_scoped_and_paginated,
            lookup_by_id_respects_tenant_scope,
            concurrent_writes_of_every_kind_get_their_own_answers,
            an_unknown_send_is_decided_as_unknown,
            what_an_event_carries_is_kept_as_given_or_refused_alike,
        );
    };
    (@cases tokio, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let harness = $make.await;
                $crate::testing::store_conformance::$case(&harness).await;
            }
        )*
    };
    (@cases blocking, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::store_conformance::block_on(async {
                    let harness = $make.await;
                    $crate::testing::store_conformance::$case(&harness).await;
                });
            }
        )*
    };
    ($make:expr) => {
        $crate::store_conformance_tests!(@list tokio, $make);
    };
}

/// Runs a future to completion on the current thread (for the `blocking:` form of the macro).
pub use futures::executor::block_on;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().expect("valid time")
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

fn key_in(tenant: &str, id: &str) -> IdempotencyKey {
    IdempotencyKey::new(
        TenantId::parse(tenant).expect("tenant"),
        EventSource::parse("acme/accounts").expect("source"),
        EventId::parse(id).expect("id"),
    )
}

fn key(id: &str) -> IdempotencyKey {
    key_in("acme-invest", id)
}

fn claim_at(key: &IdempotencyKey, owner: &str, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        key: key.clone(),
        event_type: Some(EventType::parse("account.deposit_completed").expect("type")),
        recipient: Some(EmailAddress::parse("taro@example.com").expect("address")),
        event_json: Some(r#"{"specversion":"1.0"}"#.into()),
        raw_body: None,
        owner: owner.into(),
        receive_count: 1,
        lease: Duration::from_secs(60),
        now,
    }
}

fn sent(id: &str) -> Outcome {
    Outcome::Sent { provider_message_id: id.into() }
}

async fn claim(store: &dyn DeliveryStore, request: &ClaimRequest) -> Claim {
    store.claim(request).await.expect("claim")
}

/// A new key is claimed with attempt 1 and shows as `processing` with what is known of it.
pub async fn first_claim_creates_a_processing_delivery(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("e-1");
    assert_eq!(claim(&*store, &claim_at(&k, "w1", at(0))).await, Claim::Claimed { attempt: 1 });
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Processing);
    assert_eq!(record.tenant.as_str(), "acme-invest");
    assert_eq!(record.source, "acme/accounts");
    assert_eq!(record.event_id, "e-1");
    assert_eq!(record.event_type.as_deref(), Some("account.deposit_completed"));
    assert_eq!(record.recipient.as_deref(), Some("taro@example.com"));
    assert_eq!(record.lease_expires_at, Some(at(60)));
    assert_eq!(record.claim_count, 1);
    assert_eq!(record.receive_count, 1);
    assert_eq!(record.created_at, at(0));
}

/// Sixteen workers claim one key at the same moment: exactly one wins, the others see it in
/// flight.
pub async fn sixteen_concurrent_claims_have_exactly_one_winner(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("contended");
    let requests: Vec<ClaimRequest> =
        (0..16).map(|i| claim_at(&k, &format!("worker-{i}"), at(0))).collect();
    let results = futures::future::join_all(requests.iter().map(|r| store.claim(r))).await;
    let mut winners = 0;
    for result in results {
        match result.expect("every claim gets an answer") {
            Claim::Claimed { attempt } => {
                assert_eq!(attempt, 1);
                winners += 1;
            }
            Claim::InFlight { lease_expires_at } => assert_eq!(lease_expires_at, at(60)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one of 16 concurrent claims wins");
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.claim_count, 1);
}

/// While a lease runs, nobody else gets the key.
pub async fn unexpired_lease_cannot_be_taken_over(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("leased");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    assert_eq!(
        claim(&*store, &claim_at(&k, "w2", at(59))).await,
        Claim::InFlight { lease_expires_at: at(60) }
    );
}

/// Once a lease has run out (the worker died), another worker takes the key over.
pub async fn expired_lease_can_be_taken_over(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("abandoned");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    let redelivered = ClaimRequest { receive_count: 3, ..claim_at(&k, "w2", at(60)) };
    assert_eq!(claim(&*store, &redelivered).await, Claim::Claimed { attempt: 2 });
    assert_eq!(
        claim(&*store, &claim_at(&k, "w3", at(61))).await,
        Claim::InFlight { lease_expires_at: at(120) },
        "the takeover holds a fresh lease"
    );
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.claim_count, 2);
    assert_eq!(record.receive_count, 3, "the takeover records the queue's receive count");
}

/// A released lease (after a transient error) can be claimed again at once.
pub async fn released_lease_can_be_claimed_at_once(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("released");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    store.release(&k, at(5)).await.expect("release");
    assert_eq!(claim(&*store, &claim_at(&k, "w2", at(5))).await, Claim::Claimed { attempt: 2 });
}

/// A claim to send starts attempt 1 with the first claim of a key, and nothing with any other
/// answer: not while the lease runs, not on a takeover (whose caller looks at the earlier
/// attempts first), not on a decided key.
pub async fn a_claim_to_send_starts_the_first_attempt_only(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("to-send");
    let attempts = || store.attempts(&k.tenant, k.delivery_id());
    let first = store.claim_and_start_attempt(&claim_at(&k, "w1", at(3))).await.expect("claim");
    assert_eq!(first, Claim::Claimed { attempt: 1 });
    let started = attempts().await.expect("attempts");
    assert_eq!(started.len(), 1);
    assert_eq!((started[0].attempt, started[0].started_at), (1, at(3)));
    assert_eq!((started[0].finished_at, started[0].result), (None, None));
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!((record.status, record.claim_count), (DeliveryStatus::Processing, 1));

    let leased = store.claim_and_start_attempt(&claim_at(&k, "w2", at(10))).await;
    assert_eq!(leased.expect("claim"), Claim::InFlight { lease_expires_at: at(63) });
    let takeover = store.claim_and_start_attempt(&claim_at(&k, "w2", at(63))).await;
    assert_eq!(takeover.expect("claim"), Claim::Claimed { attempt: 2 });
    assert_eq!(attempts().await.expect("attempts").len(), 1, "a takeover starts no attempt");

    store.record_outcome(&k, &sent("ses-1"), None, at(64)).await.expect("record");
    let decided = store.claim_and_start_attempt(&claim_at(&k, "w3", at(200))).await;
    assert_eq!(decided.expect("claim"), Claim::AlreadyDecided { status: DeliveryStatus::Sent });
    assert_eq!(attempts().await.expect("attempts").len(), 1);

    // A plain claim starts nothing, first or not.
    let other = key("to-decide");
    assert_eq!(claim(&*store, &claim_at(&other, "w1", at(0))).await, Claim::Claimed { attempt: 1 });
    assert!(store.attempts(&other.tenant, other.delivery_id()).await.expect("read").is_empty());
}

/// Sixteen workers claim one key to send at the same moment: one wins, and one attempt starts.
pub async fn sixteen_concurrent_claims_to_send_start_one_attempt(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("contended-send");
    let requests: Vec<ClaimRequest> =
        (0..16).map(|i| claim_at(&k, &format!("worker-{i}"), at(0))).collect();
    let results =
        futures::future::join_all(requests.iter().map(|r| store.claim_and_start_attempt(r))).await;
    let mut winners = 0;
    for result in results {
        match result.expect("every claim gets an answer") {
            Claim::Claimed { attempt: 1 } => winners += 1,
            Claim::InFlight { lease_expires_at } => assert_eq!(lease_expires_at, at(60)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1, "exactly one of 16 concurrent claims wins");
    let attempts = store.attempts(&k.tenant, k.delivery_id()).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt, 1);
}

/// A decided key stays decided: later claims, even long after, get `AlreadyDecided`, and a
/// release does not re-open it.
pub async fn decided_key_never_reopens(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("decided");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    let recorded = store.record_outcome(&k, &sent("ses-1"), None, at(1)).await.expect("record");
    assert_eq!(recorded, RecordOutcome::Recorded);
    store.release(&k, at(2)).await.expect("release");
    for later in [at(2), at(61), at(86_400 * 30)] {
        assert_eq!(
            claim(&*store, &claim_at(&k, "w2", later)).await,
            Claim::AlreadyDecided { status: DeliveryStatus::Sent }
        );
    }
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Sent);
    assert_eq!(record.claim_count, 1);
    assert_eq!(record.lease_expires_at, None);
}

/// The first outcome stands; a second one (from a worker whose lease overlapped) is refused.
pub async fn decided_outcome_is_never_overwritten(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("raced");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    store.record_outcome(&k, &sent("ses-first"), None, at(1)).await.expect("record");
    let second = Outcome::Failed { reason: "late".into() };
    assert_eq!(
        store.record_outcome(&k, &second, None, at(2)).await.expect("record"),
        RecordOutcome::AlreadyDecided { status: DeliveryStatus::Sent }
    );
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.provider_message_id.as_deref(), Some("ses-first"));
    assert_eq!(record.reason, None);
    assert_eq!(record.decided_at, Some(at(1)));
}

/// Outcomes are durable: a new connection sees them and still refuses to re-open the key.
pub async fn outcomes_survive_a_reconnect(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("durable");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    let subject = Subject::parse("入金完了のお知らせ").expect("subject");
    store.record_outcome(&k, &sent("ses-9"), Some(&subject), at(1)).await.expect("record");
    drop(store);

    let reopened = h.reconnect().await;
    let record = reopened.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Sent);
    assert_eq!(record.provider_message_id.as_deref(), Some("ses-9"));
    assert_eq!(record.subject.as_deref(), Some("入金完了のお知らせ"));
    assert_eq!(
        claim(&*reopened, &claim_at(&k, "w2", at(3600))).await,
        Claim::AlreadyDecided { status: DeliveryStatus::Sent }
    );
}

/// Arrivals of a decided key are counted.
pub async fn duplicates_are_counted(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("dup");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    store.record_outcome(&k, &sent("ses-1"), None, at(1)).await.expect("record");
    for second in 2..5 {
        store.record_duplicate(&k, at(second)).await.expect("duplicate");
    }
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.duplicate_count, 3);
}

/// Send attempts are recorded before and after, in order; an unfinished one stays visible.
pub async fn attempts_are_recorded_in_order(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("attempts");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    store.record_attempt_started(&k, 1, at(1)).await.expect("start 1");
    store
        .record_attempt_finished(&k, 1, AttemptResult::TransientError, "throttled", at(2))
        .await
        .expect("finish 1");
    store.record_attempt_started(&k, 2, at(10)).await.expect("start 2");

    let attempts = store.attempts(&k.tenant, k.delivery_id()).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].attempt, 1);
    assert_eq!(attempts[0].started_at, at(1));
    assert_eq!(attempts[0].finished_at, Some(at(2)));
    assert_eq!(attempts[0].result, Some(AttemptResult::TransientError));
    assert_eq!(attempts[0].detail.as_deref(), Some("throttled"));
    assert_eq!(attempts[1].attempt, 2);
    assert_eq!(attempts[1].result, None, "a send in progress has no result yet");

    let other = TenantId::parse("acme-bank").expect("tenant");
    assert!(store.attempts(&other, k.delivery_id()).await.expect("attempts").is_empty());
}

/// The call after a send that decides the delivery records the attempt's result and the
/// outcome; when another worker decided first, it records the result but not the outcome.
pub async fn a_send_result_and_its_outcome_are_recorded_together(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("send-result");
    // w1's lease (60 s) runs out during its send and w2 takes the key over.
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    store.record_attempt_started(&k, 1, at(1)).await.expect("start 1");
    assert_eq!(claim(&*store, &claim_at(&k, "w2", at(61))).await, Claim::Claimed { attempt: 2 });
    store.record_attempt_started(&k, 2, at(62)).await.expect("start 2");

    let subject = Subject::parse("入金のお知らせ").expect("subject");
    let end = AttemptEnd { attempt: 2, result: AttemptResult::Accepted, detail: "ses-2" };
    let recorded = store
        .record_attempt_finished_and_outcome(&k, end, &sent("ses-2"), Some(&subject), at(63))
        .await
        .expect("record");
    assert_eq!(recorded, RecordOutcome::Recorded);
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Sent);
    assert_eq!(record.provider_message_id.as_deref(), Some("ses-2"));
    assert_eq!(record.subject.as_deref(), Some("入金のお知らせ"));
    assert_eq!(record.decided_at, Some(at(63)));
    assert_eq!(record.lease_expires_at, None);

    // w1 answers late: its attempt's result is kept, its outcome is refused.
    let late = AttemptEnd { attempt: 1, result: AttemptResult::PermanentError, detail: "554" };
    let failed = Outcome::Failed { reason: "554".into() };
    assert_eq!(
        store
            .record_attempt_finished_and_outcome(&k, late, &failed, None, at(64))
            .await
            .expect("record"),
        RecordOutcome::AlreadyDecided { status: DeliveryStatus::Sent }
    );
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!((record.status, record.decided_at), (DeliveryStatus::Sent, Some(at(63))));
    let attempts = store.attempts(&k.tenant, k.delivery_id()).await.expect("attempts");
    let results: Vec<_> = attempts.iter().map(|a| (a.attempt, a.result, a.finished_at)).collect();
    assert_eq!(
        results,
        vec![
            (1, Some(AttemptResult::PermanentError), Some(at(64))),
            (2, Some(AttemptResult::Accepted), Some(at(63))),
        ]
    );
}

/// A body without a key is kept once per distinct body, with its reason, and counted.
pub async fn unkeyed_rejections_are_kept_once_and_counted(h: &dyn StoreUnderTest) {
    let store = h.store();
    let body = b"{not json".to_vec();
    let rejection = |now| UnkeyedRejection {
        tenant: None,
        raw_body: RawBody::capture(&body),
        reason: "body is not valid JSON".into(),
        now,
    };
    store.record_unkeyed_rejection(&rejection(at(0))).await.expect("first");
    store.record_unkeyed_rejection(&rejection(at(5))).await.expect("second");
    let other = UnkeyedRejection {
        tenant: Some(TenantId::parse("acme-bank").expect("tenant")),
        raw_body: RawBody::capture(b"[]"),
        reason: "body must be a JSON object".into(),
        now: at(3),
    };
    store.record_unkeyed_rejection(&other).await.expect("other");

    let rows = store.unkeyed_rejections(10).await.expect("list");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].raw_body, body, "most recently seen first");
    assert_eq!(rows[0].times_seen, 2);
    assert_eq!(rows[0].first_seen_at, at(0));
    assert_eq!(rows[0].last_seen_at, at(5));
    assert_eq!(rows[0].reason, "body is not valid JSON");
    assert_eq!(rows[1].tenant.as_deref(), Some("acme-bank"));
    assert_eq!(rows[1].body_size, 2);
}

/// Keys lead with the tenant: the same source and id in two tenants are two deliveries.
pub async fn same_event_id_in_two_tenants_is_two_deliveries(h: &dyn StoreUnderTest) {
    let store = h.store();
    let a = key_in("acme-invest", "shared-id");
    let b = key_in("acme-bank", "shared-id");
    assert_eq!(claim(&*store, &claim_at(&a, "w1", at(0))).await, Claim::Claimed { attempt: 1 });
    assert_eq!(claim(&*store, &claim_at(&b, "w1", at(0))).await, Claim::Claimed { attempt: 1 });
    store.record_outcome(&a, &sent("ses-a"), None, at(1)).await.expect("record");
    assert_eq!(
        claim(&*store, &claim_at(&b, "w2", at(2))).await,
        Claim::InFlight { lease_expires_at: at(60) },
        "deciding one tenant's key leaves the other's alone"
    );
}

/// Each of the contract's outcomes is stored and read back with its details.
pub async fn every_outcome_round_trips(h: &dyn StoreUnderTest) {
    let store = h.store();
    let raw = RawBody::capture(br#"{"specversion":"1.0","bad":true}"#);
    let cases = [
        (sent("ses-42"), DeliveryStatus::Sent),
        (Outcome::Suppressed { reason: "tenant list: bounce".into() }, DeliveryStatus::Suppressed),
        (Outcome::Rejected { reason: "data.to.email: no '@'".into() }, DeliveryStatus::Rejected),
        (Outcome::Failed { reason: "MessageRejected: bad".into() }, DeliveryStatus::Failed),
        (Outcome::Unknown { reason: "timed out after 20 s".into() }, DeliveryStatus::Unknown),
    ];
    for (i, (outcome, status)) in cases.iter().enumerate() {
        let k = key(&format!("outcome-{i}"));
        let mut request = claim_at(&k, "w1", at(0));
        if *status == DeliveryStatus::Rejected {
            request.event_json = None;
            request.raw_body = Some(raw.clone());
        }
        claim(&*store, &request).await;
        store.record_outcome(&k, outcome, None, at(1)).await.expect("record");
        let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
        assert_eq!(record.status, *status);
        assert_eq!(record.reason.as_deref(), outcome.reason());
        assert_eq!(record.provider_message_id.as_deref(), outcome.provider_message_id());
        assert_eq!(record.decided_at, Some(at(1)));
        if *status == DeliveryStatus::Rejected {
            assert_eq!(record.raw_body.as_deref(), Some(raw.kept.as_slice()));
        } else {
            assert_eq!(record.event_json.as_deref(), Some(r#"{"specversion":"1.0"}"#));
        }
    }
}

/// Listing is newest first, filtered by tenant and status, and pages by keyset without gaps or
/// repeats.
pub async fn listing_is_newest_first_tenant_scoped_and_paginated(h: &dyn StoreUnderTest) {
    let store = h.store();
    for i in 0..7 {
        let k = key_in("acme-invest", &format!("list-{i}"));
        claim(&*store, &claim_at(&k, "w1", at(i))).await;
        if i % 2 == 0 {
            store.record_outcome(&k, &sent("ses"), None, at(i)).await.expect("record");
        }
    }
    // Two rows with the same timestamp, to exercise the tie-breaker.
    claim(&*store, &claim_at(&key_in("acme-invest", "list-tie"), "w1", at(3))).await;
    claim(&*store, &claim_at(&key_in("acme-bank", "other"), "w1", at(100))).await;

    let invest = vec![TenantId::parse("acme-invest").expect("tenant")];
    let mut seen = Vec::new();
    let mut query = DeliveryQuery { tenants: Some(invest.clone()), limit: 3, ..Default::default() };
    loop {
        let page = store.deliveries(&query).await.expect("page");
        assert!(page.deliveries.len() <= 3);
        seen.extend(page.deliveries.iter().map(|d| (d.created_at, d.event_id.clone())));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "every row once: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first: {seen:?}");
    assert!(seen.iter().all(|(_, id)| id != "other"), "other tenants excluded");

    let sent_only = DeliveryQuery {
        tenants: Some(invest),
        status: Some(DeliveryStatus::Sent),
        limit: 100,
        ..Default::default()
    };
    let page = store.deliveries(&sent_only).await.expect("page");
    assert_eq!(page.deliveries.len(), 4);
    assert!(page.next.is_none());

    let everything = DeliveryQuery { limit: 100, ..Default::default() };
    assert_eq!(store.deliveries(&everything).await.expect("page").deliveries.len(), 9);
}

/// A delivery of another tenant is invisible to a tenant-scoped lookup.
pub async fn lookup_by_id_respects_tenant_scope(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key_in("acme-invest", "scoped");
    claim(&*store, &claim_at(&k, "w1", at(0))).await;
    let invest = [TenantId::parse("acme-invest").expect("tenant")];
    let bank = [TenantId::parse("acme-bank").expect("tenant")];
    assert!(store.delivery(k.delivery_id(), Some(&invest)).await.expect("read").is_some());
    assert!(store.delivery(k.delivery_id(), Some(&bank)).await.expect("read").is_none());
}

/// Writes of every kind on many keys at once (as a worker with many events in flight makes
/// them, and as a store that commits them together sees them): each gets the answer it would
/// get alone, and none is lost or applied twice.
pub async fn concurrent_writes_of_every_kind_get_their_own_answers(h: &dyn StoreUnderTest) {
    let store = h.store();
    let decided = key("mixed-decided");
    let leased = key("mixed-leased");
    let deciding = key("mixed-deciding");
    let sending = key("mixed-sending");
    for k in [&decided, &leased, &deciding, &sending] {
        claim(&*store, &claim_at(k, "w1", at(0))).await;
    }
    store.record_outcome(&decided, &sent("ses-0"), None, at(1)).await.expect("record");
    let fresh: Vec<IdempotencyKey> = (0..8).map(|i| key(&format!("mixed-fresh-{i}"))).collect();

    let fresh_requests: Vec<ClaimRequest> =
        fresh.iter().map(|k| claim_at(k, "w2", at(2))).collect();
    let to_send: Vec<IdempotencyKey> = (0..4).map(|i| key(&format!("mixed-to-send-{i}"))).collect();
    let to_send_requests: Vec<ClaimRequest> =
        to_send.iter().map(|k| claim_at(k, "w2", at(2))).collect();
    let decided_again = claim_at(&decided, "w2", at(2));
    let leased_again = claim_at(&leased, "w2", at(2));
    let late = Outcome::Failed { reason: "late".into() };
    let first = sent("ses-1");
    let (
        (fresh_claims, send_claims),
        (decided_claim, leased_claim, leased_send_claim),
        recorded,
        refused,
        started,
        dup_1,
        dup_2,
    ) = futures::join!(
        futures::future::join(
            futures::future::join_all(fresh_requests.iter().map(|r| store.claim(r))),
            futures::future::join_all(
                to_send_requests.iter().map(|r| store.claim_and_start_attempt(r))
            ),
        ),
        futures::future::join3(
            store.claim(&decided_again),
            store.claim(&leased_again),
            store.claim_and_start_attempt(&leased_again),
        ),
        store.record_outcome(&deciding, &first, None, at(2)),
        store.record_outcome(&decided, &late, None, at(2)),
        store.record_attempt_started(&sending, 1, at(2)),
        store.record_duplicate(&decided, at(2)),
        store.record_duplicate(&decided, at(3)),
    );
    for result in fresh_claims {
        assert_eq!(result.expect("claim"), Claim::Claimed { attempt: 1 });
    }
    assert_eq!(
        decided_claim.expect("claim"),
        Claim::AlreadyDecided { status: DeliveryStatus::Sent }
    );
    assert_eq!(leased_claim.expect("claim"), Claim::InFlight { lease_expires_at: at(60) });
    assert_eq!(leased_send_claim.expect("claim"), Claim::InFlight { lease_expires_at: at(60) });
    for result in send_claims {
        assert_eq!(result.expect("claim to send"), Claim::Claimed { attempt: 1 });
    }
    assert_eq!(recorded.expect("record"), RecordOutcome::Recorded);
    assert_eq!(
        refused.expect("record"),
        RecordOutcome::AlreadyDecided { status: DeliveryStatus::Sent }
    );
    started.expect("attempt started");
    dup_1.expect("duplicate");
    dup_2.expect("duplicate");

    let record = store.delivery(decided.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.duplicate_count, 2);
    assert_eq!(record.provider_message_id.as_deref(), Some("ses-0"));
    let record = store.delivery(deciding.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Sent);
    let attempts = store.attempts(&sending.tenant, sending.delivery_id()).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].started_at, at(2));
    for k in &fresh {
        let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
        assert_eq!((record.status, record.claim_count), (DeliveryStatus::Processing, 1));
        assert!(store.attempts(&k.tenant, k.delivery_id()).await.expect("attempts").is_empty());
    }
    for k in &to_send {
        let attempts = store.attempts(&k.tenant, k.delivery_id()).await.expect("attempts");
        let started: Vec<_> = attempts.iter().map(|a| (a.attempt, a.started_at)).collect();
        assert_eq!(started, [(1, at(2))], "{k}");
    }
    let attempts = store.attempts(&leased.tenant, leased.delivery_id()).await.expect("attempts");
    assert!(attempts.is_empty(), "a lost claim to send starts nothing");
}

/// A send whose result is unknown decides the delivery as `unknown` (with its attempt, in one
/// write): a redelivery finds it decided and a late outcome cannot overwrite it; it is listed
/// under its own status and not reconciled.
pub async fn an_unknown_send_is_decided_as_unknown(h: &dyn StoreUnderTest) {
    let store = h.store();
    let k = key("unknown-send");
    assert_eq!(
        store.claim_and_start_attempt(&claim_at(&k, "w1", at(0))).await.expect("claim"),
        Claim::Claimed { attempt: 1 }
    );
    let end = AttemptEnd { attempt: 1, result: AttemptResult::Unknown, detail: "timed out" };
    let unknown = Outcome::Unknown { reason: "timed out; not resent automatically".into() };
    let recorded = store
        .record_attempt_finished_and_outcome(&k, end, &unknown, None, at(2))
        .await
        .expect("record");
    assert_eq!(recorded, RecordOutcome::Recorded);
    assert_eq!(
        claim(&*store, &claim_at(&k, "w2", at(100))).await,
        Claim::AlreadyDecided { status: DeliveryStatus::Unknown }
    );
    assert_eq!(
        store.record_outcome(&k, &sent("ses-late"), None, at(3)).await.expect("record"),
        RecordOutcome::AlreadyDecided { status: DeliveryStatus::Unknown }
    );
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Unknown);
    assert_eq!(record.reason.as_deref(), unknown.reason());
    assert_eq!((record.provider_message_id, record.reconciled_at), (None, None));
    let query = DeliveryQuery {
        status: Some(DeliveryStatus::Unknown),
        limit: 10,
        ..DeliveryQuery::default()
    };
    let listed = store.deliveries(&query).await.expect("list").deliveries;
    assert_eq!(listed.iter().map(|d| d.delivery_id).collect::<Vec<_>>(), [k.delivery_id()]);
    let attempts = store.attempts(&k.tenant, k.delivery_id()).await.expect("attempts");
    assert_eq!(
        attempts.iter().map(|a| a.result).collect::<Vec<_>>(),
        [Some(AttemptResult::Unknown)]
    );
}

/// Whatever bytes an event carries, every store meets them the same way (PostgreSQL cannot keep
/// NUL in text, SQLite could, and both must agree): the event's JSON copy, whose control
/// characters are escapes (`\u0000`), and raw bodies of any bytes are kept as given; text that
/// holds NUL itself is refused with `Refused`, changing nothing, and the delivery can still be
/// decided with text the store keeps. Other control characters are kept as they are.
pub async fn what_an_event_carries_is_kept_as_given_or_refused_alike(h: &dyn StoreUnderTest) {
    fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
        match result {
            Err(StoreError::Refused(reason)) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: expected Refused, got {other:?}"),
        }
    }
    let store = h.store();

    // Kept: the JSON copy with escaped control characters, a raw body with NUL and non-UTF-8.
    let envelope =
        serde_json::json!({ "data": { "variables": { "note": "a\u{0}b\u{7}\r\n\u{7f}" } } });
    let event_json = envelope.to_string();
    assert!(event_json.contains("\\u0000") && !event_json.contains('\0'), "{event_json}");
    let raw = RawBody::capture(b"{\"id\":\"a\x00b\"}\xff\x00");
    let k = key("carries-escapes");
    let request = ClaimRequest {
        event_json: Some(event_json.clone()),
        raw_body: Some(raw.clone()),
        ..claim_at(&k, "w1", at(0))
    };
    assert_eq!(claim(&*store, &request).await, Claim::Claimed { attempt: 1 });
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.event_json.as_deref(), Some(event_json.as_str()));
    assert_eq!(record.raw_body.as_deref(), Some(raw.kept.as_slice()));

    // Refused, changing nothing: a claim whose JSON copy holds NUL itself.
    let k2 = key("carries-nul");
    let bad =
        ClaimRequest { event_json: Some("{\"v\":\"a\0b\"}".into()), ..claim_at(&k2, "w1", at(0)) };
    refused("claim with NUL in event_json", store.claim(&bad).await);
    assert_eq!(store.delivery(k2.delivery_id(), None).await.expect("read"), None);

    // An outcome whose reason holds NUL is refused; the delivery stays as it was, and is decided
    // with a reason the store keeps (other control characters included).
    let nul_reason = Outcome::Rejected { reason: "template error: a\0b".into() };
    refused("outcome with NUL", store.record_outcome(&k, &nul_reason, None, at(1)).await);
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!((record.status, record.reason), (DeliveryStatus::Processing, None));
    let kept = Outcome::Rejected { reason: "template error: a\\u{0}b \u{7}\t\r\n\u{7f}".into() };
    let recorded = store.record_outcome(&k, &kept, None, at(2)).await.expect("record");
    assert_eq!(recorded, RecordOutcome::Recorded);
    let record = store.delivery(k.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Rejected);
    assert_eq!(record.reason.as_deref(), kept.reason());

    // A send's result and outcome refused together: neither is recorded.
    let k3 = key("send-result-with-nul");
    let to_send = claim_at(&k3, "w1", at(0));
    let claimed = store.claim_and_start_attempt(&to_send).await.expect("claim");
    assert_eq!(claimed, Claim::Claimed { attempt: 1 });
    let end = AttemptEnd { attempt: 1, result: AttemptResult::PermanentError, detail: "554 a\0b" };
    let failed = Outcome::Failed { reason: "554 a\0b".into() };
    refused(
        "result and outcome with NUL",
        store.record_attempt_finished_and_outcome(&k3, end, &failed, None, at(1)).await,
    );
    let attempts = store.attempts(&k3.tenant, k3.delivery_id()).await.expect("attempts");
    assert_eq!(attempts.iter().map(|a| a.result).collect::<Vec<_>>(), vec![None]);
    let record = store.delivery(k3.delivery_id(), None).await.expect("read").expect("exists");
    assert_eq!(record.status, DeliveryStatus::Processing);
    refused(
        "attempt result with NUL",
        store.record_attempt_finished(&k3, 1, AttemptResult::PermanentError, "a\0b", at(1)).await,
    );

    // Unkeyed: a body of any bytes is kept; a reason holding NUL is refused.
    let body = b"\x00\x01not json\xff".to_vec();
    let rejection = |reason: &str| UnkeyedRejection {
        tenant: None,
        raw_body: RawBody::capture(&body),
        reason: reason.into(),
        now: at(3),
    };
    refused("unkeyed with NUL", store.record_unkeyed_rejection(&rejection("x\0y")).await);
    assert!(store.unkeyed_rejections(10).await.expect("list").is_empty());
    store.record_unkeyed_rejection(&rejection("body is not valid JSON")).await.expect("kept");
    let rows = store.unkeyed_rejections(10).await.expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].raw_body, body);
}
