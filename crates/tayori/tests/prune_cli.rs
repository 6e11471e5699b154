//! `tayori prune` as an operator (or a CronJob) runs it, on a real PostgreSQL database: the
//! retention floor, a dry run, a run in batches with its progress and summary, and SIGTERM in the
//! middle of a long run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use sqlx::PgPool;
use tayori_postgres::PostgresStore;

mod support;

use support::tayori;

/// A delivery sent `days_ago`, recorded as a worker records it.
async fn sent(store: &PostgresStore, id: &str, days_ago: i64) {
    tayori_postgres::testing::record_sent(store, id, Utc::now() - TimeDelta::days(days_ago)).await;
}

async fn deliveries(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from deliveries").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn prune_refuses_a_short_retention_counts_on_a_dry_run_and_deletes_in_paced_batches() {
    let database = tayori_postgres::testing::fresh_database().await;
    let url = database.url.clone();
    let store = PostgresStore::connect(&database).await.unwrap();
    for n in 0..3 {
        sent(&store, &format!("old-{n}"), 400).await;
    }
    sent(&store, "young", 20).await;

    let (ok, _, err) = tayori(&["prune", "--keep-days", "7", "--database-url", &url]);
    assert!(!ok, "a week is shorter than SQS keeps a message");
    assert!(err.contains("--keep-days") && err.contains("at least 15 days, got 7"), "{err}");

    let (ok, out, err) =
        tayori(&["prune", "--keep-days", "365", "--dry-run", "--database-url", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("(kept 365 days)") && out.contains("would delete 3 deliveries"), "{out}");
    assert_eq!(deliveries(store.pool()).await, 4);

    let (ok, _, err) =
        tayori(&["prune", "--keep-days", "365", "--max-rate", "0", "--database-url", &url]);
    assert!(!ok && err.contains("--max-rate") && err.contains("at least 1 a second"), "{err}");

    // Paced at 4 a second in batches of 2: the second batch waits half a second.
    let started = std::time::Instant::now();
    let (ok, out, err) = tayori(&[
        "prune",
        "--keep-days",
        "365",
        "--batch-size",
        "2",
        "--max-rate",
        "4",
        "--database-url",
        &url,
    ]);
    assert!(ok, "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500), "{:?}", started.elapsed());
    assert!(
        out.contains("deleted 3 deliveries (with their attempts, feedback and links)"),
        "{out}"
    );
    assert!(err.contains("deliveries: 3 of 3 deleted (100 %)"), "the last progress line: {err}");
    assert_eq!(deliveries(store.pool()).await, 1, "the young one stays");

    let (ok, out, _) = tayori(&["prune", "--keep-days", "15", "--database-url", &url]);
    assert!(ok && out.contains("deleted 1 deliveries"), "{out}");
    assert!(out.contains("the audit log is kept whole"), "{out}");
    assert_eq!(deliveries(store.pool()).await, 0);

    // The audit log only under its own retention, never shorter than the records'.
    let (ok, _, err) =
        tayori(&["prune", "--keep-days", "90", "--audit-keep-days", "30", "--database-url", &url]);
    assert!(
        !ok && err.contains("--audit-keep-days (30) must be at least --keep-days (90)"),
        "{err}"
    );
    let admin = tayori_postgres::PostgresAdminStore::new(store.pool().clone());
    let tenant = tayori_domain::TenantId::parse("acme-invest").unwrap();
    for days in [800, 10] {
        let mut entry = tayori_postgres::testing::operator_audit(&tenant, "tenant.pause", "x");
        entry.at = Utc::now() - TimeDelta::days(days);
        tayori_app::ports::AuditLog::record_audit(&admin, &entry).await.unwrap();
    }
    let (ok, out, err) =
        tayori(&["prune", "--keep-days", "90", "--audit-keep-days", "730", "--database-url", &url]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted 1 audit entries recorded before"), "{out}");
    let audit: i64 = sqlx::query_scalar("select count(*) from admin_audit")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(audit, 1, "the young entry stays");
}

#[tokio::test]
async fn sigterm_stops_a_long_prune_after_its_current_batch_and_the_next_run_finishes() {
    let database = tayori_postgres::testing::fresh_database().await;
    let url = database.url.clone();
    let store = PostgresStore::connect(&database).await.unwrap();
    // 20,000 old deliveries, written directly: one batch per row takes a commit each, so the run
    // lasts seconds, long enough to be stopped in the middle.
    sqlx::query(
        "insert into deliveries (tenant_id, source, event_id, delivery_id, status, created_at, \
             updated_at, decided_at) \
         select 'acme-invest', 'core-banking', 'e-' || n, gen_random_uuid(), 'sent', \
             now() - interval '400 days', now() - interval '400 days', now() - interval '400 days' \
         from generate_series(1, 20000) as n",
    )
    .execute(store.pool())
    .await
    .unwrap();

    let prune = Command::new(env!("CARGO_BIN_EXE_tayori"))
        .args(["prune", "--keep-days", "90", "--batch-size", "1", "--database-url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has started deleting.
    let started = Instant::now();
    while deliveries(store.pool()).await == 20_000 {
        assert!(started.elapsed() < Duration::from_secs(30), "prune never started deleting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = Command::new("kill").args(["-TERM", &prune.id().to_string()]).status().unwrap();
    assert!(status.success());
    let stopped_at = Instant::now();
    let out = prune.wait_with_output().unwrap();
    assert!(stopped_at.elapsed() < Duration::from_secs(5), "it stops after one batch");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "an unfinished run is not a success: {stderr}");
    assert!(stderr.contains("stopping after the current batch"), "{stderr}");
    assert!(stderr.contains("run it again to go on where it stopped"), "{stderr}");
    let left = deliveries(store.pool()).await;
    assert!(left > 0 && left < 20_000, "stopped in the middle: {left} left");
    let reported: i64 = stdout
        .split("deleted ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a summary of what was deleted: {stdout}"));
    assert_eq!(reported, 20_000 - left, "the summary says what was deleted");

    let (ok, out, err) = tayori(&["prune", "--keep-days", "90", "--database-url", &url]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("deleted {left} deliveries")), "{out}");
    assert_eq!(deliveries(store.pool()).await, 0);
}
