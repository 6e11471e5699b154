//! The feedback store on a fresh PostgreSQL database: matching by tags and by SES message id,
//! the status precedence with out-of-order events, deduplication by identity, automatic
//! suppressions with their audit entries, and unmatched and invalid feedback kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tayori_app::ports::{
    AuditLog, AuditQuery, ClaimRequest, DeliveryQueries, DeliveryStore, FeedbackPolicy,
    FeedbackRecord, FeedbackRecorded, FeedbackStore, MessageClass, SuppressionList, TenantPauses,
    UnknownSends,
};
use tayori_domain::{
    EmailAddress, EventId, EventSource, FeedbackStatus, IdempotencyKey, Outcome, TenantId,
    parse_feedback,
};
use tayori_postgres::{
    PostgresAdminStore, PostgresFeedbackStore, PostgresStore, PostgresSuppressions,
};

fn fixture(name: &str) -> Value {
    let path = manifest_dir().join("../../tests/fixtures/ses-events").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A fixture about this delivery: its message id and tags (tags dropped when `tags` is false).
fn about(name: &str, key: &IdempotencyKey, message_id: &str, tags: bool) -> Value {
    let mut event = fixture(name);
    event["mail"]["messageId"] = json!(message_id);
    if tags {
        event["mail"]["tags"]["tayori-tenant"] = json!([key.tenant.as_str()]);
        event["mail"]["tags"]["tayori-delivery-id"] = json!([key.delivery_id().to_string()]);
    } else {
        event["mail"].as_object_mut().unwrap().remove("tags");
    }
    event
}

/// Two transient bounces within a day suppress.
fn policy() -> FeedbackPolicy {
    FeedbackPolicy {
        transient_bounce_limit: 2,
        transient_bounce_window: Duration::from_secs(86_400),
        ..FeedbackPolicy::default()
    }
}

async fn record(store: &PostgresFeedbackStore, body: &Value) -> FeedbackRecorded {
    let body = body.to_string();
    let now = Utc::now();
    match parse_feedback(body.as_bytes()) {
        Ok(event) => {
            store.record_feedback(FeedbackRecord::Event(&event), &policy(), now).await.unwrap()
        }
        Err(invalid) => store
            .record_feedback(
                FeedbackRecord::Invalid { invalid: &invalid, body: body.as_bytes() },
                &policy(),
                now,
            )
            .await
            .unwrap(),
    }
}

async fn sent(store: &PostgresStore, id: &str, message_id: &str) -> IdempotencyKey {
    let key = IdempotencyKey::new(
        TenantId::parse("acme-invest").unwrap(),
        EventSource::parse("core-banking").unwrap(),
        EventId::parse(id).unwrap(),
    );
    let request = ClaimRequest {
        key: key.clone(),
        event_type: None,
        recipient: Some(EmailAddress::parse("taro@example.com").unwrap()),
        event_json: None,
        raw_body: None,
        owner: "test".into(),
        receive_count: 1,
        lease: Duration::from_secs(60),
        now: Utc::now(),
    };
    store.claim(&request).await.unwrap();
    let outcome = Outcome::Sent { provider_message_id: message_id.into() };
    store.record_outcome(&key, &outcome, None, Utc::now()).await.unwrap();
    key
}

#[tokio::test]
async fn feedback_moves_status_by_precedence_dedups_suppresses_and_keeps_the_rest() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let feedback = PostgresFeedbackStore::new(store.pool().clone());
    let suppressions = PostgresSuppressions::new(store.pool().clone());
    let admin = PostgresAdminStore::new(store.pool().clone());
    let first = sent(&store, "e-1", "ses-1").await;
    let second = sent(&store, "e-2", "ses-2").await;
    let status = |key: &IdempotencyKey| {
        let (feedback, key) = (feedback.clone(), key.clone());
        async move { feedback.feedback_status(&key.tenant, key.delivery_id()).await.unwrap() }
    };

    // Out of order: Delivery before Send; the Send does not move it back.
    let delivery = about("delivery", &first, "ses-1", true);
    let matched = record(&feedback, &delivery).await;
    assert!(
        matches!(
            &matched,
            FeedbackRecorded::Matched {
                status: Some(FeedbackStatus::Delivered),
                suppressed: 0,
                ..
            }
        ),
        "{matched:?}"
    );
    assert!(matches!(
        record(&feedback, &about("send", &first, "ses-1", true)).await,
        FeedbackRecorded::Matched { status: Some(FeedbackStatus::Delivered), .. }
    ));
    assert!(matches!(
        record(&feedback, &about("delivery-delay", &first, "ses-1", true)).await,
        FeedbackRecorded::Matched { status: Some(FeedbackStatus::Delivered), .. }
    ));
    // An open only adds to the timeline.
    record(&feedback, &about("open", &first, "ses-1", true)).await;
    assert_eq!(status(&first).await, Some(FeedbackStatus::Delivered));
    // Redelivered: recorded once.
    assert_eq!(record(&feedback, &delivery).await, FeedbackRecorded::Duplicate);
    let timeline = feedback.timeline(&first.tenant, first.delivery_id()).await.unwrap();
    let kinds: Vec<_> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["send", "delivery", "delivery_delay", "open"], "in SES's order");

    // The second delivery, matched by SES message id alone (no tags): a complaint, then a
    // permanent bounce that ranks below it.
    let before = suppressions
        .check(
            &second.tenant,
            &EmailAddress::parse("TARO@example.com").unwrap(),
            MessageClass::Transactional,
        )
        .await
        .unwrap();
    assert_eq!(before, None);
    let complaint = record(&feedback, &about("complaint", &second, "ses-2", false)).await;
    assert!(
        matches!(
            &complaint,
            FeedbackRecorded::Matched {
                status: Some(FeedbackStatus::Complained),
                suppressed: 1,
                ..
            }
        ),
        "{complaint:?}"
    );
    let bounce = record(&feedback, &about("bounce-permanent", &second, "ses-2", false)).await;
    assert!(
        matches!(
            &bounce,
            FeedbackRecorded::Matched {
                status: Some(FeedbackStatus::Complained),
                suppressed: 0,
                ..
            }
        ),
        "already suppressed: {bounce:?}"
    );
    let suppression = suppressions
        .check(
            &second.tenant,
            &EmailAddress::parse("TARO@example.com").unwrap(),
            MessageClass::Transactional,
        )
        .await
        .unwrap()
        .expect("a complaint suppresses the address");
    assert!(suppression.reason.contains("complained"), "{suppression:?}");
    let audit = admin
        .audit(&AuditQuery {
            action: Some("suppression.add".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "one suppression, one audit entry: {audit:?}");
    assert_eq!(audit[0].entry.role, "ses-feedback");

    // Tags naming a delivery whose message id differs: not that delivery; kept as unmatched.
    let mut mismatched = about("delivery", &first, "ses-other", true);
    mismatched["mail"]["messageId"] = json!("ses-other");
    assert_eq!(record(&feedback, &mismatched).await, FeedbackRecorded::Unmatched);
    let unknown = about("bounce-transient", &first, "ses-nobody", false);
    assert_eq!(record(&feedback, &unknown).await, FeedbackRecorded::Unmatched);
    assert_eq!(record(&feedback, &unknown).await, FeedbackRecorded::Duplicate);
    let garbage = json!({"Type": "Notification", "MessageId": "sns-bad", "Message": "{"});
    assert_eq!(record(&feedback, &garbage).await, FeedbackRecorded::Invalid);
    assert_eq!(record(&feedback, &garbage).await, FeedbackRecorded::Duplicate);
    // NUL, which PostgreSQL refuses in text and jsonb, in an unreadable body and in an event.
    let raw_nul = b"not json \0 at all";
    let invalid = parse_feedback(raw_nul).unwrap_err();
    let record_raw = FeedbackRecord::Invalid { invalid: &invalid, body: raw_nul };
    let with_nul = feedback.record_feedback(record_raw, &policy(), Utc::now()).await.unwrap();
    assert_eq!(with_nul, FeedbackRecorded::Invalid);
    let mut open_with_nul = about("open", &first, "ses-1", true);
    open_with_nul["open"]["userAgent"] = json!("bad\u{0}agent");
    assert!(matches!(record(&feedback, &open_with_nul).await, FeedbackRecorded::Matched { .. }));
    let kept =
        PostgresAdminStore::new(store.pool().clone()).unmatched_feedback(None, 10).await.unwrap();
    assert_eq!(kept.len(), 4, "{kept:?}");
    let invalid = kept.iter().find(|k| k.feedback_id == "sns:sns-bad").unwrap();
    assert_eq!(invalid.result, "invalid");
    assert!(invalid.reason.as_deref().unwrap().contains("not JSON"));
    assert!(kept.iter().any(|k| k.ses_message_id.as_deref() == Some("ses-nobody")));
}

#[tokio::test]
async fn transient_bounces_suppress_at_the_limit_and_unsubscribes_only_subscription_mail() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let feedback = PostgresFeedbackStore::new(store.pool().clone());
    let suppressions = PostgresSuppressions::new(store.pool().clone());
    let admin = PostgresAdminStore::new(store.pool().clone());
    let taro = EmailAddress::parse("taro@example.com").unwrap();
    let tenant = TenantId::parse("acme-invest").unwrap();
    let check = async |class| suppressions.check(&tenant, &taro, class).await.unwrap();

    // One transient bounce: under the limit of two.
    let first = sent(&store, "t-1", "ses-t1").await;
    let bounced = record(&feedback, &about("bounce-transient", &first, "ses-t1", true)).await;
    assert!(
        matches!(
            bounced,
            FeedbackRecorded::Matched { status: Some(FeedbackStatus::Bounced), suppressed: 0, .. }
        ),
        "{bounced:?}"
    );
    assert_eq!(check(MessageClass::Transactional).await, None);
    // The second, on another delivery to the same address: suppressed for every class.
    let second = sent(&store, "t-2", "ses-t2").await;
    let bounced = record(&feedback, &about("bounce-transient", &second, "ses-t2", true)).await;
    assert!(matches!(bounced, FeedbackRecorded::Matched { suppressed: 1, .. }), "{bounced:?}");
    let reason = check(MessageClass::Transactional).await.unwrap().reason;
    assert!(reason.contains("2 transient bounces"), "{reason}");
    assert!(check(MessageClass::Subscription).await.is_some());

    // An unsubscribe of another address suppresses its subscription mail only.
    let hanako = EmailAddress::parse("hanako@example.com").unwrap();
    let third = sent(&store, "u-1", "ses-u1").await;
    let mut unsubscribe = about("subscription", &third, "ses-u1", true);
    unsubscribe["mail"]["destination"] = json!(["hanako@example.com"]);
    let recorded = record(&feedback, &unsubscribe).await;
    assert!(matches!(recorded, FeedbackRecorded::Matched { suppressed: 1, .. }), "{recorded:?}");
    let subscription = suppressions.check(&tenant, &hanako, MessageClass::Subscription).await;
    assert!(subscription.unwrap().unwrap().reason.contains("unsubscribed"));
    let transactional = suppressions.check(&tenant, &hanako, MessageClass::Transactional).await;
    assert_eq!(transactional.unwrap(), None, "transactional mail still goes out");

    let audit = admin
        .audit(&AuditQuery {
            action: Some("suppression.add".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let causes: Vec<_> = audit.iter().map(|a| a.entry.detail["cause"].as_str().unwrap()).collect();
    assert_eq!(causes, ["unsubscribe", "transient-bounces"], "newest first");
}

/// A fresh database with acme-invest's four sent deliveries (event ids `{prefix}-0` to `-3`,
/// SES message ids `ses-{prefix}0` to `3`) and a reputation guard that judges from 4 sent over an
/// hour: one bounce is 25 %, over 4 %.
struct Guarded {
    store: PostgresStore,
    feedback: PostgresFeedbackStore,
    admin: PostgresAdminStore,
    tenant: TenantId,
    policy: FeedbackPolicy,
    keys: Vec<IdempotencyKey>,
}

async fn guarded(prefix: &str) -> Guarded {
    use tayori_app::ports::{ReputationGuard, ReputationThresholds};
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let guard = ReputationGuard {
        thresholds: ReputationThresholds { min_sent: 4, ..ReputationThresholds::default() },
        window: Duration::from_secs(3_600),
    };
    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(sent(&store, &format!("{prefix}-{i}"), &format!("ses-{prefix}{i}")).await);
    }
    Guarded {
        feedback: PostgresFeedbackStore::new(store.pool().clone()),
        admin: PostgresAdminStore::new(store.pool().clone()),
        tenant: TenantId::parse("acme-invest").unwrap(),
        policy: FeedbackPolicy { reputation: Some(guard), ..policy() },
        keys,
        store,
    }
}

#[tokio::test]
async fn the_reputation_guard_pauses_once_and_an_operator_resume_holds_for_a_window() {
    use tayori_app::ports::{AuditEntry, TenantPauseList};
    let Guarded { store, feedback, admin, tenant, policy, mut keys } = guarded("r").await;
    let bounce = |key: &IdempotencyKey, i: usize| {
        let mut event = about("bounce-transient", key, &format!("ses-r{i}"), true);
        event["bounce"]["feedbackId"] = json!(format!("fb-{i}"));
        parse_feedback(event.to_string().as_bytes()).unwrap()
    };
    let delivered =
        parse_feedback(about("delivery", &keys[3], "ses-r3", true).to_string().as_bytes()).unwrap();
    let record = async |event: &tayori_domain::FeedbackEvent, at: chrono::DateTime<Utc>| {
        feedback.record_feedback(FeedbackRecord::Event(event), &policy, at).await.unwrap()
    };
    let now = Utc::now();
    // A delivery does not judge; the first bounce pauses; the second finds it paused.
    assert!(matches!(
        record(&delivered, now).await,
        FeedbackRecorded::Matched { paused: false, .. }
    ));
    assert_eq!(feedback.pause_reason(&tenant).await.unwrap(), None);
    assert!(matches!(
        record(&bounce(&keys[0], 0), now).await,
        FeedbackRecorded::Matched { paused: true, .. }
    ));
    let reason = feedback.pause_reason(&tenant).await.unwrap().expect("paused");
    assert!(reason.contains("25.00 % bounces"), "{reason}");
    assert!(matches!(
        record(&bounce(&keys[1], 1), now).await,
        FeedbackRecorded::Matched { paused: false, .. }
    ));
    let other = TenantId::parse("acme-bank").unwrap();
    assert_eq!(feedback.pause_reason(&other).await.unwrap(), None, "only that tenant");

    // An operator resumes it: audited once; a second resume changes nothing.
    let resume = AuditEntry {
        at: now,
        ..tayori_postgres::testing::operator_audit(&tenant, "tenant.resume", "bounces cleaned up")
    };
    assert!(admin.resume_tenant(&tenant, &resume).await.unwrap());
    assert!(!admin.resume_tenant(&tenant, &resume).await.unwrap());
    assert_eq!(feedback.pause_reason(&tenant).await.unwrap(), None);
    // Within the window after the resume, the same rates do not pause it again...
    assert!(matches!(
        record(&bounce(&keys[2], 2), now).await,
        FeedbackRecorded::Matched { paused: false, .. }
    ));
    assert_eq!(feedback.pause_reason(&tenant).await.unwrap(), None);
    let audit = |action: &'static str| {
        let admin = admin.clone();
        async move {
            let query = AuditQuery { action: Some(action.into()), limit: 10, ..Default::default() };
            admin.audit(&query).await.unwrap().len()
        }
    };
    assert_eq!(audit("tenant.pause").await, 1);
    assert_eq!(audit("tenant.resume").await, 1);
    // ...a window later they do (the deliveries counted are those of the window: none left
    // then, so this re-pause comes from rates over fresh deliveries).
    let later = now + chrono::Duration::hours(2);
    for i in 4..8 {
        let key = IdempotencyKey::new(
            tenant.clone(),
            EventSource::parse("core-banking").unwrap(),
            EventId::parse(&format!("r-{i}")).unwrap(),
        );
        let request = ClaimRequest {
            key: key.clone(),
            event_type: None,
            recipient: Some(EmailAddress::parse("taro@example.com").unwrap()),
            event_json: None,
            raw_body: None,
            owner: "test".into(),
            receive_count: 1,
            lease: Duration::from_secs(60),
            now: later,
        };
        store.claim(&request).await.unwrap();
        let outcome = Outcome::Sent { provider_message_id: format!("ses-r{i}") };
        store.record_outcome(&key, &outcome, None, later).await.unwrap();
        keys.push(key);
    }
    assert!(matches!(
        record(&bounce(&keys[4], 4), later).await,
        FeedbackRecorded::Matched { paused: true, .. }
    ));
    assert_eq!(audit("tenant.pause").await, 2);
}

#[tokio::test]
async fn an_operator_pause_holds_until_resumed_and_does_not_hold_the_guard_back_after() {
    use tayori_app::ports::{AuditEntry, TenantPauseList};
    let Guarded { feedback, admin, tenant, policy, keys, .. } = guarded("o").await;
    let bounce = |i: usize| {
        let mut event = about("bounce-transient", &keys[i], &format!("ses-o{i}"), true);
        event["bounce"]["feedbackId"] = json!(format!("fb-o{i}"));
        parse_feedback(event.to_string().as_bytes()).unwrap()
    };
    let now = Utc::now();
    let operator = tayori_postgres::testing::OPERATOR_TOKEN_ID;
    let entry = |action: &str, reason: &str| AuditEntry {
        at: now,
        ..tayori_postgres::testing::operator_audit(&tenant, action, reason)
    };
    let audited = async |action: &str| {
        let query = AuditQuery { action: Some(action.into()), limit: 10, ..Default::default() };
        admin.audit(&query).await.unwrap().len()
    };

    // Paused by an operator: the workers' list says why, the admin list says who; once only.
    assert!(admin.pause_tenant(&tenant, &entry("tenant.pause", "bad template")).await.unwrap());
    assert!(!admin.pause_tenant(&tenant, &entry("tenant.pause", "again")).await.unwrap());
    assert_eq!(feedback.pause_reason(&tenant).await.unwrap().as_deref(), Some("bad template"));
    let paused = admin.paused_tenants(None).await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].paused_by.as_deref(), Some(operator));
    let other = TenantId::parse("acme-bank").unwrap();
    assert!(
        admin.paused_tenants(Some(std::slice::from_ref(&other))).await.unwrap().is_empty(),
        "scoped"
    );
    assert_eq!(feedback.pause_reason(&other).await.unwrap(), None, "only that tenant");
    assert_eq!(audited("tenant.pause").await, 1);

    // The guard finds it paused and leaves the operator's pause as it is.
    let event = bounce(0);
    let recorded = feedback.record_feedback(FeedbackRecord::Event(&event), &policy, now).await;
    assert!(matches!(recorded.unwrap(), FeedbackRecorded::Matched { paused: false, .. }));
    assert_eq!(admin.paused_tenants(None).await.unwrap()[0].paused_by.as_deref(), Some(operator));

    // Resumed: an operator's pause held nothing back, so the guard pauses on the next bounce
    // (unlike after resuming one of its own pauses, see the test above); an operator pause over
    // the guard's changes nothing.
    assert!(admin.resume_tenant(&tenant, &entry("tenant.resume", "fixed")).await.unwrap());
    assert_eq!(feedback.pause_reason(&tenant).await.unwrap(), None);
    let event = bounce(1);
    let recorded = feedback.record_feedback(FeedbackRecord::Event(&event), &policy, now).await;
    assert!(matches!(recorded.unwrap(), FeedbackRecorded::Matched { paused: true, .. }));
    let paused = admin.paused_tenants(None).await.unwrap();
    assert_eq!(paused[0].paused_by, None, "the guard's pause: {paused:?}");
    assert!(paused[0].reason.contains("bounces"), "{paused:?}");
    assert!(!admin.pause_tenant(&tenant, &entry("tenant.pause", "me too")).await.unwrap());
    assert!(feedback.pause_reason(&tenant).await.unwrap().unwrap().contains("bounces"));
    assert_eq!(audited("tenant.pause").await, 2, "the operator's and the guard's");
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}

/// A claimed delivery of acme-invest, without an outcome.
async fn claimed(store: &PostgresStore, id: &str) -> IdempotencyKey {
    let key = IdempotencyKey::new(
        TenantId::parse("acme-invest").unwrap(),
        EventSource::parse("core-banking").unwrap(),
        EventId::parse(id).unwrap(),
    );
    let request = ClaimRequest {
        key: key.clone(),
        event_type: None,
        recipient: Some(EmailAddress::parse("taro@example.com").unwrap()),
        event_json: None,
        raw_body: None,
        owner: "test".into(),
        receive_count: 1,
        lease: Duration::from_secs(60),
        now: Utc::now(),
    };
    store.claim(&request).await.unwrap();
    key
}

#[tokio::test]
async fn a_report_on_an_unknown_send_reconciles_it_and_one_on_an_undecided_send_comes_back() {
    use tayori_app::ports::DeliveryStore as _;
    use tayori_domain::DeliveryStatus;
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let feedback = PostgresFeedbackStore::new(store.pool().clone());
    let admin = PostgresAdminStore::new(store.pool().clone());
    let unknown = Outcome::Unknown { reason: "timed out; not resent automatically".into() };

    // Still processing (its worker is about to record `unknown`): nothing recorded, comes back.
    let key = claimed(&store, "ambiguous-1").await;
    let send = about("send", &key, "ses-found-later", true);
    assert_eq!(record(&feedback, &send).await, FeedbackRecorded::NotDecidedYet);
    store.record_outcome(&key, &unknown, None, Utc::now()).await.unwrap();
    let before = store.delivery(key.delivery_id(), None).await.unwrap().unwrap();
    assert_eq!((before.status, before.reconciled_at), (DeliveryStatus::Unknown, None));

    // The same report again: the delivery is sent, with SES's message id, audited.
    let recorded = record(&feedback, &send).await;
    assert!(
        matches!(
            recorded,
            FeedbackRecorded::Matched { reconciled: true, status: Some(FeedbackStatus::Sent), .. }
        ),
        "{recorded:?}"
    );
    let after = store.delivery(key.delivery_id(), None).await.unwrap().unwrap();
    assert_eq!(after.status, DeliveryStatus::Sent);
    assert_eq!(after.provider_message_id.as_deref(), Some("ses-found-later"));
    assert!(after.reconciled_at.is_some());
    assert_eq!(after.reason, None);
    let audit = admin
        .audit(&AuditQuery {
            action: Some("delivery.reconcile".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].entry.object_id.as_deref(), Some(key.delivery_id().to_string().as_str()));
    assert_eq!(audit[0].entry.detail["previous_status"], "unknown");
    // A later report is matched by the message id now, and reconciles nothing more.
    let delivered = about("delivery", &key, "ses-found-later", false);
    assert!(matches!(
        record(&feedback, &delivered).await,
        FeedbackRecorded::Matched {
            reconciled: false,
            status: Some(FeedbackStatus::Delivered),
            ..
        }
    ));

    // A delivery that had its message id is never taken by another id's tags.
    let other = sent(&store, "plain", "ses-plain").await;
    let forged = about("send", &other, "ses-not-plain", true);
    assert_eq!(record(&feedback, &forged).await, FeedbackRecorded::Unmatched);

    // An unknown send past the window becomes failed ("not seen by SES"), audited; a report
    // that comes even later still reconciles it.
    let late = claimed(&store, "ambiguous-2").await;
    store.record_outcome(&late, &unknown, None, Utc::now()).await.unwrap();
    let audit_entry = tayori_postgres::testing::operator_audit(
        &late.tenant,
        "delivery.unknown_expired",
        "not seen by SES",
    );
    let in_window = admin
        .expire_unknown_sends(
            &late.tenant,
            None,
            Utc::now() - chrono::Duration::hours(1),
            "not seen by SES: ",
            &audit_entry,
        )
        .await
        .unwrap();
    assert!(in_window.is_empty(), "decided a moment ago: still waiting");
    let expired = admin
        .expire_unknown_sends(&late.tenant, None, Utc::now(), "not seen by SES: ", &audit_entry)
        .await
        .unwrap();
    assert_eq!(expired, [late.delivery_id()]);
    let failed = store.delivery(late.delivery_id(), None).await.unwrap().unwrap();
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(failed.reason.as_deref().unwrap().starts_with("not seen by SES: timed out"));
    let bounce = about("bounce-permanent", &late, "ses-very-late", true);
    assert!(matches!(
        record(&feedback, &bounce).await,
        FeedbackRecorded::Matched { reconciled: true, .. }
    ));
    let reconciled = store.delivery(late.delivery_id(), None).await.unwrap().unwrap();
    assert_eq!(reconciled.status, DeliveryStatus::Sent);
    assert_eq!(reconciled.provider_message_id.as_deref(), Some("ses-very-late"));
}
