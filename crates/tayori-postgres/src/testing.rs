//! A fresh database per test on the throwaway cluster that `scripts/test` starts.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

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
