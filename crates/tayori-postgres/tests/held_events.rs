//! The held events of paused tenants on a fresh PostgreSQL database: leased only once the tenant
//! is resumed, one copy per key, a lease that runs out hands the event over again, and a hold or
//! a newer lease keeps a worker with an old lease from forgetting it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use tayori_app::ports::{HeldEntry, HeldEvent, HeldEvents, TenantPauses};
use tayori_domain::{EventId, EventSource, IdempotencyKey, TenantId};
use tayori_postgres::testing::{acme_key, fresh_database, operator_audit};
use tayori_postgres::{PostgresAdminStore, PostgresHeldEvents, PostgresStore};

fn held(key: &IdempotencyKey, body: &str, at: chrono::DateTime<Utc>) -> HeldEvent {
    HeldEvent {
        entry: HeldEntry {
            key: key.clone(),
            event_type: tayori_domain::EventType::parse("account.deposit_completed").unwrap(),
            receive_count: 2,
            reason: "bad template".into(),
            held_at: at,
        },
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn held_events_wait_for_the_resume_and_are_forgotten_only_by_their_lease() {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let held_events = PostgresHeldEvents::new(store.pool().clone());
    let admin = PostgresAdminStore::new(store.pool().clone());
    let acme = TenantId::parse("acme-invest").unwrap();
    let other_key = IdempotencyKey::new(
        TenantId::parse("acme-bank").unwrap(),
        EventSource::parse("core-banking").unwrap(),
        EventId::parse("b-1").unwrap(),
    );
    let t0 = Utc::now();
    assert!(
        admin
            .pause_tenant(&acme, &operator_audit(&acme, "tenant.pause", "bad template"))
            .await
            .unwrap()
    );

    // Two events of the paused tenant, one held twice (a redelivery): one copy, the later body,
    // the first place in line. An event of a tenant that is not paused is leased at once.
    held_events.hold(&held(&acme_key("a-1"), "first", t0)).await.unwrap();
    held_events.hold(&held(&acme_key("a-2"), "second", t0 + Duration::seconds(1))).await.unwrap();
    held_events.hold(&held(&acme_key("a-1"), "again", t0 + Duration::seconds(2))).await.unwrap();
    held_events.hold(&held(&other_key, "other", t0)).await.unwrap();
    // What operators see: by event type, and the oldest first, without bodies.
    let summary = held_events.held_summary(&acme, 1).await.unwrap();
    let deposit = tayori_domain::EventType::parse("account.deposit_completed").unwrap();
    assert_eq!(summary.by_event_type, [(deposit.clone(), 2, micros(t0))]);
    let oldest: Vec<_> = summary.oldest.iter().map(|e| e.key.id.as_str()).collect();
    assert_eq!(oldest, ["a-1"], "one, the oldest");

    // The operators' list of paused tenants counts them.
    let paused = admin.paused_tenants(None).await.unwrap();
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!((paused[0].held_events, paused[0].oldest_held_at), (2, Some(micros(t0))));

    let lease_until = t0 + Duration::minutes(5);
    let leased = held_events.lease_released(10, t0, lease_until).await.unwrap();
    assert_eq!(leased.len(), 1, "only the tenant that is not paused: {leased:?}");
    assert_eq!(leased[0].event.entry.key, other_key);
    assert!(held_events.forget(&other_key, leased[0].lease).await.unwrap());

    // An operator's discard leases one tenant's events, paused or not, of one event type when
    // asked; a lease taken that way runs like any other (here it is given back by running out).
    let withdrawal = tayori_domain::EventType::parse("account.withdrawal_requested").unwrap();
    let other_type = held_events.lease_of_tenant(&acme, Some(&withdrawal), 10, t0, t0).await;
    assert!(other_type.unwrap().is_empty(), "none of another event type");
    let of_type = held_events.lease_of_tenant(&acme, Some(&deposit), 10, t0, t0).await.unwrap();
    assert_eq!(of_type.len(), 2);
    let discarding = held_events.lease_of_tenant(&acme, None, 10, t0, t0).await.unwrap();
    let keys: Vec<_> = discarding.iter().map(|l| l.event.entry.key.id.as_str()).collect();
    assert_eq!(keys, ["a-1", "a-2"]);

    // Resumed: oldest first, in batches; a leased event is not leased again while its lease runs.
    assert!(
        admin.resume_tenant(&acme, &operator_audit(&acme, "tenant.resume", "fixed")).await.unwrap()
    );
    let first = held_events.lease_released(1, t0, lease_until).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event.entry.key, acme_key("a-1"));
    assert_eq!(first[0].event.body, b"again");
    assert_eq!(first[0].event.entry.receive_count, 2);
    let second = held_events.lease_released(10, t0, lease_until).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event.entry.key, acme_key("a-2"));
    assert!(held_events.lease_released(10, t0, lease_until).await.unwrap().is_empty());

    // a-1 is held again while leased (paused again, say): the old lease forgets nothing.
    held_events.hold(&held(&acme_key("a-1"), "held again", t0)).await.unwrap();
    assert!(!held_events.forget(&acme_key("a-1"), first[0].lease).await.unwrap());

    // a-2's lease runs out (its worker died): leased again; the dead worker's lease is void.
    let later = lease_until + Duration::seconds(1);
    let again = held_events.lease_released(10, later, later + Duration::minutes(5)).await.unwrap();
    let keys: Vec<_> = again.iter().map(|l| l.event.entry.key.id.as_str()).collect();
    assert_eq!(keys, ["a-1", "a-2"]);
    assert!(!held_events.forget(&acme_key("a-2"), second[0].lease).await.unwrap());
    for leased in &again {
        assert!(held_events.forget(&leased.event.entry.key, leased.lease).await.unwrap());
    }
    let far = later + Duration::days(1);
    assert!(held_events.lease_released(10, far, far).await.unwrap().is_empty(), "none left");
}

/// PostgreSQL keeps microseconds.
fn micros(at: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap()
}

#[tokio::test]
async fn holdings_name_every_paused_tenant_and_every_tenant_with_held_events() {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let held_events = PostgresHeldEvents::new(store.pool().clone());
    let admin = PostgresAdminStore::new(store.pool().clone());
    let tenant = |name: &str| TenantId::parse(name).unwrap();
    let key = |tenant_name: &str, id: &str| {
        IdempotencyKey::new(
            tenant(tenant_name),
            EventSource::parse("core").unwrap(),
            EventId::parse(id).unwrap(),
        )
    };
    assert!(held_events.holdings().await.unwrap().is_empty(), "nothing paused, nothing held");

    // acme-invest: paused, two held; acme-bank: paused, nothing held; acme-card: resumed with
    // one held (waiting for its release); acme-loan: paused once, resumed, nothing held.
    let t0 = Utc::now() - Duration::minutes(10);
    for name in ["acme-invest", "acme-bank", "acme-card", "acme-loan"] {
        let why = operator_audit(&tenant(name), "tenant.pause", "x");
        assert!(admin.pause_tenant(&tenant(name), &why).await.unwrap());
    }
    for name in ["acme-card", "acme-loan"] {
        let why = operator_audit(&tenant(name), "tenant.resume", "y");
        assert!(admin.resume_tenant(&tenant(name), &why).await.unwrap());
    }
    held_events.hold(&held(&key("acme-invest", "i-1"), "1", t0)).await.unwrap();
    held_events
        .hold(&held(&key("acme-invest", "i-2"), "2", t0 + Duration::minutes(1)))
        .await
        .unwrap();
    held_events
        .hold(&held(&key("acme-card", "c-1"), "3", t0 + Duration::minutes(2)))
        .await
        .unwrap();

    let holdings: Vec<_> = held_events
        .holdings()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.tenant.to_string(), h.paused, h.held_events, h.oldest_held_at))
        .collect();
    assert_eq!(
        holdings,
        [
            ("acme-bank".to_owned(), true, 0, None),
            ("acme-card".to_owned(), false, 1, Some(micros(t0 + Duration::minutes(2)))),
            ("acme-invest".to_owned(), true, 2, Some(micros(t0))),
        ]
    );
}

#[tokio::test]
async fn workers_releasing_at_once_lease_each_held_event_to_one_of_them() {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let held_events = std::sync::Arc::new(PostgresHeldEvents::new(store.pool().clone()));
    let t0 = Utc::now();
    let events = 400;
    for i in 0..events {
        let at = t0 + Duration::milliseconds(i);
        held_events.hold(&held(&acme_key(&format!("r-{i}")), "body", at)).await.unwrap();
    }
    // Four release loops of batches of 16, as four workers run them: each forgets what it
    // leased before leasing more.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let held_events = held_events.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let now = Utc::now();
                    let leased = held_events
                        .lease_released(16, now, now + Duration::minutes(5))
                        .await
                        .unwrap();
                    if leased.is_empty() {
                        break mine;
                    }
                    for one in leased {
                        assert!(held_events.forget(&one.event.entry.key, one.lease).await.unwrap());
                        mine.push(one.event.entry.key.id.as_str().to_owned());
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per_worker = Vec::new();
    for worker in workers {
        let mine = worker.await.unwrap();
        per_worker.push(mine.len());
        all.extend(mine);
    }
    println!("held events leased per worker: {per_worker:?}");
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), events as usize, "every event leased once: {per_worker:?}");
    assert_eq!(distinct.len(), events as usize, "no event leased twice");
    assert!(held_events.holdings().await.unwrap().is_empty(), "none left held");
}
