//! `tayori prune`'s store on a fresh PostgreSQL database, through the prune use case: a delivery
//! past the retention goes with its attempts, feedback timeline, matched feedback and links, and
//! so does one left `processing` by a crash long ago; one a worker took over since the cutoff,
//! young ones and rows a worker has locked stay; the foreign-key checks of the deletes walk
//! indexes, not whole tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use tayori_app::ports::{
    Claim, Clock, DeliveryStore, FeedbackPolicy, FeedbackRecord, FeedbackRecorded, FeedbackStore,
    PrunableCounts, RetentionStore, UnkeyedRejection,
};
use tayori_app::prune::{PruneRecords, PruneRequest, PrunedCounts};
use tayori_app::testing::ManualClock;
use tayori_domain::{DeliveryStatus, IdempotencyKey, RawBody, RetentionDays, parse_feedback};
use tayori_postgres::testing::{acme_key as key, claim_request, record_sent as sent};
use tayori_postgres::{PostgresFeedbackStore, PostgresRetention, PostgresStore};

/// SES's Delivery notification for `key`'s email (tags and message id), or for an email tayori
/// never sent.
fn delivery_notification(key: Option<&IdempotencyKey>, message_id: &str) -> Value {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ses-events/delivery.json");
    let mut event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    event["mail"]["messageId"] = json!(message_id);
    match key {
        Some(key) => {
            event["mail"]["tags"]["tayori-tenant"] = json!([key.tenant.as_str()]);
            event["mail"]["tags"]["tayori-delivery-id"] = json!([key.delivery_id().to_string()]);
        }
        None => {
            event["mail"].as_object_mut().unwrap().remove("tags");
        }
    }
    event
}

async fn record_feedback(
    feedback: &PostgresFeedbackStore,
    body: &Value,
    at: DateTime<Utc>,
) -> FeedbackRecorded {
    let body = body.to_string();
    let policy = FeedbackPolicy::default();
    match parse_feedback(body.as_bytes()) {
        Ok(event) => feedback.record_feedback(FeedbackRecord::Event(&event), &policy, at).await,
        Err(invalid) => {
            let record = FeedbackRecord::Invalid { invalid: &invalid, body: body.as_bytes() };
            feedback.record_feedback(record, &policy, at).await
        }
    }
    .unwrap()
}

async fn rows(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn link(
    pool: &PgPool,
    delivery: &IdempotencyKey,
    origin: &IdempotencyKey,
    at: DateTime<Utc>,
) {
    sqlx::query(
        "insert into delivery_links (tenant_id, delivery_id, origin_delivery_id, kind, n, reason, \
             created_by, created_at) \
         values ($1, $2, $3, 'resend', 1, 'customer asked', gen_random_uuid(), $4)",
    )
    .bind(delivery.tenant.as_str())
    .bind(delivery.delivery_id().as_uuid())
    .bind(origin.delivery_id().as_uuid())
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn prune_deletes_old_decided_deliveries_with_what_belongs_to_them_and_keeps_the_rest() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let pool = store.pool().clone();
    let feedback = PostgresFeedbackStore::new(pool.clone());
    let clock = Arc::new(ManualClock::new());
    let now = clock.now();
    let old = now - TimeDelta::days(100);
    let young = now - TimeDelta::days(10);

    let mut old_sent = Vec::new();
    for n in 0..5 {
        old_sent.push(sent(&store, &format!("old-{n}"), old + TimeDelta::minutes(n)).await);
    }
    // Left `processing` by a crash 100 days ago, its message long gone.
    store.claim_and_start_attempt(&claim_request(&key("old-stuck"), old)).await.unwrap();
    // Also claimed 100 days ago, but a late copy of its event is being handled now (a takeover).
    let taken_over = key("old-taken-over");
    store.claim_and_start_attempt(&claim_request(&taken_over, old)).await.unwrap();
    let takeover = store.claim(&claim_request(&taken_over, now)).await.unwrap();
    assert_eq!(takeover, Claim::Claimed { attempt: 2 });
    let young_sent = [sent(&store, "young-0", young).await, sent(&store, "young-1", young).await];

    // Feedback: matched to an old and to a young delivery, matched to nothing (old and young),
    // and an unreadable body (old).
    let matched_old = delivery_notification(Some(&old_sent[0]), "ses-old-0");
    let matched_young = delivery_notification(Some(&young_sent[0]), "ses-young-0");
    for (body, at) in [(&matched_old, old), (&matched_young, young)] {
        assert!(matches!(
            record_feedback(&feedback, body, at).await,
            FeedbackRecorded::Matched { .. }
        ));
    }
    for (body, at) in [
        (delivery_notification(None, "ses-nobody-old"), old),
        (delivery_notification(None, "ses-nobody-young"), young),
    ] {
        assert_eq!(record_feedback(&feedback, &body, at).await, FeedbackRecorded::Unmatched);
    }
    let unreadable = json!({"Type": "Notification", "MessageId": "sns-bad", "Message": "{"});
    assert_eq!(record_feedback(&feedback, &unreadable, old).await, FeedbackRecorded::Invalid);

    // An old resend of an old delivery, and a young resend whose origin is old.
    link(&pool, &old_sent[1], &old_sent[0], old).await;
    link(&pool, &young_sent[1], &old_sent[2], young).await;

    for (body, at) in [(b"not json, old".as_slice(), old), (b"not json, young".as_slice(), young)] {
        let rejection = UnkeyedRejection {
            tenant: None,
            raw_body: RawBody::capture(body),
            reason: "not JSON".into(),
            now: at,
        };
        store.record_unkeyed_rejection(&rejection).await.unwrap();
    }

    let pruner = PruneRecords::new(Arc::new(PostgresRetention::new(pool.clone())), clock.clone());
    let request = PruneRequest {
        keep: RetentionDays::new(90).unwrap(),
        batch_size: NonZeroU32::new(2).unwrap(),
        dry_run: true,
        max_rate: None,
        audit_keep: None,
    };
    let expected_found = PrunableCounts {
        deliveries: 6,
        processing_kept: 1,
        unkeyed_rejections: 1,
        unmatched_feedback: 2,
        audit_entries: 0,
    };
    let dry = pruner.run(request, &mut |_| {}, &|| false).await.unwrap();
    assert_eq!(dry.found, expected_found);
    assert_eq!(rows(&pool, "deliveries").await, 9, "a dry run deletes nothing");

    let mut batches = 0;
    let report = pruner
        .run(PruneRequest { dry_run: false, ..request }, &mut |_| batches += 1, &|| false)
        .await
        .unwrap();
    assert_eq!(report.found, expected_found);
    assert_eq!(
        report.deleted,
        PrunedCounts {
            deliveries: 6,
            unmatched_feedback: 2,
            unkeyed_rejections: 1,
            audit_entries: 0
        }
    );
    assert_eq!(
        batches,
        4 + 2 + 1,
        "batches of 2: 2, 2, 2, 0 deliveries; 2, 0 feedback; 1 rejection"
    );

    // What stays: the delivery taken over and the young ones, with theirs.
    let remaining: Vec<String> =
        sqlx::query_scalar("select event_id from deliveries order by event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(remaining, ["old-taken-over", "young-0", "young-1"]);
    assert_eq!(rows(&pool, "delivery_attempts").await, 3, "the young ones' and the taken over's");
    assert_eq!(rows(&pool, "delivery_feedback").await, 1, "young-0's timeline");
    let events: Vec<String> =
        sqlx::query_scalar("select coalesce(ses_message_id, '') from feedback_events order by 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(events, ["ses-nobody-young", "ses-young-0"]);
    let links: Vec<uuid::Uuid> = sqlx::query_scalar("select delivery_id from delivery_links")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        links,
        [young_sent[1].delivery_id().as_uuid()],
        "the link of a young delivery stays"
    );
    assert_eq!(rows(&pool, "unkeyed_rejections").await, 1);

    // A young key is still a duplicate; an old one is a new delivery again, which is why the
    // retention must outlive every copy of an event that a queue can hand out.
    let again = store.claim(&claim_request(&young_sent[0], now)).await.unwrap();
    assert_eq!(again, Claim::AlreadyDecided { status: DeliveryStatus::Sent });
    let pruned = store.claim(&claim_request(&old_sent[0], now)).await.unwrap();
    assert_eq!(pruned, Claim::Claimed { attempt: 1 });
}

#[tokio::test]
async fn a_delivery_a_worker_holds_is_left_for_the_next_run() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let pool = store.pool().clone();
    let retention = PostgresRetention::new(pool.clone());
    let now = Utc::now();
    let old = now - TimeDelta::days(100);
    let held = sent(&store, "held", old).await;
    sent(&store, "free", old).await;

    // A worker claiming a redelivery of the old event locks its row until it commits.
    let mut worker = pool.begin().await.unwrap();
    sqlx::query("select 1 from deliveries where delivery_id = $1 for update")
        .bind(held.delivery_id().as_uuid())
        .execute(&mut *worker)
        .await
        .unwrap();
    let cutoff = now - TimeDelta::days(90);
    let deleted =
        tokio::time::timeout(Duration::from_secs(10), retention.prune_deliveries(cutoff, 10))
            .await
            .expect("prune does not wait for the worker's lock")
            .unwrap();
    assert_eq!(deleted, 1, "the free one");
    worker.commit().await.unwrap();
    assert_eq!(retention.prune_deliveries(cutoff, 10).await.unwrap(), 1, "the held one, later");
    assert_eq!(rows(&pool, "deliveries").await, 0);
    assert_eq!(rows(&pool, "delivery_attempts").await, 0);
}

#[tokio::test]
async fn a_delivery_whose_event_is_held_stays_until_the_copy_is_gone() {
    use tayori_app::ports::{HeldEntry, HeldEvent, HeldEvents};
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let pool = store.pool().clone();
    let retention = PostgresRetention::new(pool.clone());
    let held_events = tayori_postgres::PostgresHeldEvents::new(pool.clone());
    let now = Utc::now();
    let old = now - TimeDelta::days(100);
    // A copy of an old, decided event held for a long pause: its record must outlive the hold.
    let kept = sent(&store, "held-copy", old).await;
    sent(&store, "free", old).await;
    let copy = HeldEvent {
        entry: HeldEntry {
            key: kept.clone(),
            event_type: tayori_domain::EventType::parse("account.deposit_completed").unwrap(),
            receive_count: 1,
            reason: "paused".into(),
            held_at: now,
        },
        body: br#"{"specversion":"1.0"}"#.to_vec(),
    };
    held_events.hold(&copy).await.unwrap();
    let cutoff = now - TimeDelta::days(90);
    assert_eq!(retention.count_prunable(cutoff).await.unwrap().deliveries, 1);
    assert_eq!(retention.prune_deliveries(cutoff, 10).await.unwrap(), 1, "the free one");
    assert_eq!(rows(&pool, "deliveries").await, 1, "the held event's record stays");

    // Released (and found decided): the record goes with the next prune.
    let leased = held_events.lease_released(10, now, now).await.unwrap();
    assert!(held_events.forget(&kept, leased[0].lease).await.unwrap());
    assert_eq!(retention.prune_deliveries(cutoff, 10).await.unwrap(), 1);
    assert_eq!(rows(&pool, "deliveries").await, 0);
}

/// Deleting a delivery makes PostgreSQL check that nothing points at it: `SELECT 1 FROM ONLY
/// <table> x WHERE <column> = $1 FOR KEY SHARE OF x` per deleted row (`ri_triggers.c`), planned
/// once per connection. Without an index leading with the column, that reads the whole table for
/// every row deleted, and pruning a large database would never end.
#[tokio::test]
async fn the_foreign_key_checks_of_a_delete_walk_an_index() {
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();

    let primary_key: Vec<String> = sqlx::query_scalar(
        "select a.attname::text from pg_index i \
         join unnest(i.indkey) with ordinality as k(attnum, n) on true \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
         where i.indrelid = 'delivery_attempts'::regclass and i.indisprimary order by k.n",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(primary_key, ["delivery_id", "attempt"], "0014 swapped the attempts' key");

    sqlx::raw_sql("set plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    for (table, column, index) in [
        ("delivery_attempts", "delivery_id", "delivery_attempts_pkey"),
        ("delivery_feedback", "delivery_id", "delivery_feedback_delivery_id"),
        ("delivery_feedback", "feedback_id", "delivery_feedback_feedback_id"),
    ] {
        let statement = format!("ri_{table}_{column}");
        let argument = if column == "delivery_id" {
            "'6f1e2c0a-8d4b-4e57-9a31-54c91f0b7d22'"
        } else {
            "'sns:x'"
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "prepare {statement} as select 1 from only {table} x where {column} = $1 \
             for key share of x"
        )))
        .execute(&mut *conn)
        .await
        .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "explain execute {statement}({argument})"
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("Index Scan using {index} on {table}"))
                || plan.contains(&format!("Bitmap Index Scan on {index}")),
            "the check of {table}.{column} walks {index}:\n{plan}"
        );
    }
}

#[tokio::test]
async fn audit_entries_go_only_under_their_own_retention_when_one_is_asked_for() {
    use tayori_app::ports::AuditLog;
    let config = tayori_postgres::testing::fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let pool = store.pool().clone();
    let admin = tayori_postgres::PostgresAdminStore::new(pool.clone());
    let clock = Arc::new(ManualClock::new());
    let now = clock.now();
    let tenant = tayori_domain::TenantId::parse("acme-invest").unwrap();
    // Entries 800, 500 and 100 days old.
    for days in [800, 500, 100] {
        let mut entry = tayori_postgres::testing::operator_audit(&tenant, "tenant.pause", "x");
        entry.at = now - TimeDelta::days(days);
        admin.record_audit(&entry).await.unwrap();
    }
    let pruner = PruneRecords::new(Arc::new(PostgresRetention::new(pool.clone())), clock.clone());
    let request = PruneRequest {
        keep: RetentionDays::new(90).unwrap(),
        batch_size: NonZeroU32::new(1).unwrap(),
        dry_run: false,
        max_rate: None,
        audit_keep: None,
    };
    let whole = pruner.run(request, &mut |_| {}, &|| false).await.unwrap();
    assert_eq!(whole.deleted.audit_entries, 0);
    assert_eq!(rows(&pool, "admin_audit").await, 3, "no audit retention: the log stays whole");

    let two_years = PruneRequest { audit_keep: Some(RetentionDays::new(730).unwrap()), ..request };
    let dry = PruneRequest { dry_run: true, ..two_years };
    let dry = pruner.run(dry, &mut |_| {}, &|| false).await.unwrap();
    assert_eq!(dry.found.audit_entries, 1);
    let report = pruner.run(two_years, &mut |_| {}, &|| false).await.unwrap();
    assert_eq!(report.deleted.audit_entries, 1);
    assert_eq!(report.audit_cutoff, Some(now - TimeDelta::days(730)));
    let left: Vec<DateTime<Utc>> = sqlx::query_scalar("select at from admin_audit order by at")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, [now - TimeDelta::days(500), now - TimeDelta::days(100)]);
}
