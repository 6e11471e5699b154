//! The delivery store conformance suite, run unchanged against SQLite (a fresh file per test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use async_trait::async_trait;
use tayori_app::ports::DeliveryStore;
use tayori_app::store_conformance_tests;
use tayori_app::testing::store_conformance::StoreUnderTest;
use tayori_sqlite::SqliteStore;
use tempfile::TempDir;

struct Harness {
    dir: TempDir,
    store: SqliteStore,
}

impl Harness {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("tayori.db")
    }
}

#[async_trait]
impl StoreUnderTest for Harness {
    fn store(&self) -> Arc<dyn DeliveryStore> {
        Arc::new(self.store.clone())
    }

    async fn reconnect(&self) -> Arc<dyn DeliveryStore> {
        self.store.close().await;
        Arc::new(SqliteStore::open(&self.path()).await.expect("reopen"))
    }
}

async fn sqlite_harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("tayori.db")).await.expect("open");
    Harness { dir, store }
}

// In a module, so every case shows as `sqlite::<case>` in the test output.
mod sqlite {
    use super::*;
    store_conformance_tests!(sqlite_harness());
}
