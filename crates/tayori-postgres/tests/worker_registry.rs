//! The registry of running workers on a fresh PostgreSQL database: a worker joins with its
//! first heartbeat, the others count it while it beats, a killed one ages out after `live_for`,
//! one that leaves is counted out at once, and a row unheard of for an hour is deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use tayori_app::ports::WorkerRegistry;
use tayori_postgres::testing::fresh_database;
use tayori_postgres::{PostgresStore, PostgresWorkerRegistry};

const LIVE_FOR: Duration = Duration::from_secs(10);

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

#[tokio::test]
async fn workers_join_beat_age_out_and_leave() {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let pool = store.pool().clone();
    // Two processes may share a configured name; the registry tells them apart by id.
    let a = PostgresWorkerRegistry::new(pool.clone(), "worker");
    let b = PostgresWorkerRegistry::new(pool.clone(), "worker");
    let t0 = Utc::now();

    // Join: the first counts itself, the second both.
    assert_eq!(a.heartbeat("a", t0, LIVE_FOR).await.unwrap(), 1);
    assert_eq!(b.heartbeat("b", t0 + secs(1), LIVE_FOR).await.unwrap(), 2);
    assert_eq!(a.heartbeat("c", t0 + secs(1), LIVE_FOR).await.unwrap(), 3);
    assert_eq!(a.heartbeat("a", t0 + secs(2), LIVE_FOR).await.unwrap(), 3);
    let started: chrono::DateTime<Utc> =
        sqlx::query_scalar("select started_at from workers where id = 'a'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(started.timestamp_micros(), t0.timestamp_micros(), "a heartbeat keeps started_at");

    // c is killed after its beat at t0+1: counted until its beat is 10 s old, not after.
    assert_eq!(a.heartbeat("a", t0 + secs(10), LIVE_FOR).await.unwrap(), 3);
    assert_eq!(b.heartbeat("b", t0 + secs(10), LIVE_FOR).await.unwrap(), 3);
    assert_eq!(a.heartbeat("a", t0 + secs(11), LIVE_FOR).await.unwrap(), 2);
    assert_eq!(b.heartbeat("b", t0 + secs(12), LIVE_FOR).await.unwrap(), 2);

    // b leaves gracefully: counted out at a's next beat; leaving twice is fine.
    b.leave("b").await.unwrap();
    b.leave("b").await.unwrap();
    assert_eq!(a.heartbeat("a", t0 + secs(13), LIVE_FOR).await.unwrap(), 1);
    // A worker whose own beat was late still counts itself.
    assert_eq!(a.heartbeat("a", t0 + secs(60), LIVE_FOR).await.unwrap(), 1);
    // b comes back: registered again.
    assert_eq!(b.heartbeat("b", t0 + secs(61), LIVE_FOR).await.unwrap(), 2);

    let ids = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>("select id from workers order by id")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    // The killed c's row stays for an operator to see, then goes after an hour.
    assert_eq!(ids(pool.clone()).await, ["a", "b", "c"]);
    assert_eq!(a.heartbeat("a", t0 + secs(3602), LIVE_FOR).await.unwrap(), 1);
    assert_eq!(ids(pool.clone()).await, ["a", "b"]);
    assert_eq!(a.heartbeat("a", t0 + secs(3662), LIVE_FOR).await.unwrap(), 1);
    assert_eq!(ids(pool.clone()).await, ["a"]);
}

#[tokio::test]
async fn concurrent_first_heartbeats_all_count() {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let registry = PostgresWorkerRegistry::new(store.pool().clone(), "worker");
    let now = Utc::now();
    let beats = (0..8).map(|i| {
        let registry = registry.clone();
        async move { registry.heartbeat(&format!("w{i}"), now, LIVE_FOR).await.unwrap() }
    });
    let counts = futures::future::join_all(beats).await;
    assert!(counts.iter().all(|count| (1..=8).contains(count)), "{counts:?}");
    // Once all have joined, the next beat of any of them sees all eight.
    let later = now + secs(2);
    assert_eq!(registry.heartbeat("w0", later, LIVE_FOR).await.unwrap(), 8);
}
