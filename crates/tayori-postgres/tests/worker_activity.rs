//! The activity board on a fresh PostgreSQL database: each worker's publication replaces its
//! last one, the console reads the sum over workers heard from lately, within the token's
//! tenants, and a worker that withdraws (or goes quiet) drops out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use tayori_app::ports::{ActivityBoard, TenantActivity};
use tayori_domain::TenantId;
use tayori_postgres::testing::fresh_database;
use tayori_postgres::{PostgresActivityBoard, PostgresStore};

fn activity(
    tenant: &str,
    in_flight: u64,
    slots: u64,
    rate: f64,
    hand_backs: u64,
) -> TenantActivity {
    TenantActivity {
        tenant: tenant.into(),
        in_flight,
        waiting: in_flight / 2,
        slots,
        send_rate: rate,
        hand_backs,
        workers: 1,
    }
}

#[tokio::test]
async fn the_console_reads_the_sum_of_the_workers_heard_from_lately() {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.unwrap();
    let board = PostgresActivityBoard::new(store.pool().clone());
    let live_for = Duration::from_secs(15);
    let t0 = Utc::now();
    board.publish("w1", t0, &[activity("acme-bank", 4, 50, 2.5, 1)]).await.unwrap();
    // A second publication replaces the first.
    let w1 = [activity("acme-bank", 10, 50, 3.0, 7), activity("acme-invest", 2, 100, 1.0, 0)];
    board.publish("w1", t0, &w1).await.unwrap();
    board.publish("w2", t0, &[activity("acme-bank", 6, 50, 2.0, 3)]).await.unwrap();
    // A worker killed a minute ago: left out.
    let stale = t0 - chrono::Duration::seconds(60);
    board.publish("w3", stale, &[activity("acme-bank", 99, 99, 99.0, 99)]).await.unwrap();

    let read = board.read(None, t0, live_for).await.unwrap();
    assert_eq!(read.len(), 2);
    let bank = &read[0];
    assert_eq!(
        (
            bank.tenant.as_str(),
            bank.in_flight,
            bank.waiting,
            bank.slots,
            bank.hand_backs,
            bank.workers
        ),
        ("acme-bank", 16, 8, 100, 10, 2)
    );
    assert!((bank.send_rate - 5.0).abs() < 1e-9, "{bank:?}");
    assert_eq!(read[1].tenant, "acme-invest");

    // A token scoped to one tenant reads only it.
    let invest = [TenantId::parse("acme-invest").unwrap()];
    let scoped = board.read(Some(&invest), t0, live_for).await.unwrap();
    assert_eq!(scoped.iter().map(|a| a.tenant.as_str()).collect::<Vec<_>>(), ["acme-invest"]);

    // A worker that stops withdraws.
    board.withdraw("w1").await.unwrap();
    board.withdraw("never-published").await.unwrap();
    let read = board.read(None, t0, live_for).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].in_flight, read[0].workers), (6, 1));
}
