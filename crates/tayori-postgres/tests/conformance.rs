//! The delivery store conformance suite, run unchanged against PostgreSQL (a fresh database per
//! test on the cluster `scripts/test` provides).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use async_trait::async_trait;
use tayori_app::ports::DeliveryStore;
use tayori_app::store_conformance_tests;
use tayori_app::testing::store_conformance::StoreUnderTest;
use tayori_postgres::testing::fresh_database;
use tayori_postgres::{PostgresConfig, PostgresStore};

struct Harness {
    config: PostgresConfig,
    store: PostgresStore,
}

#[async_trait]
impl StoreUnderTest for Harness {
    fn store(&self) -> Arc<dyn DeliveryStore> {
        Arc::new(self.store.clone())
    }

    async fn reconnect(&self) -> Arc<dyn DeliveryStore> {
        self.store.close().await;
        Arc::new(PostgresStore::connect(&self.config).await.expect("reconnect"))
    }
}

async fn postgres_harness() -> Harness {
    let config = fresh_database().await;
    let store = PostgresStore::connect(&config).await.expect("connect");
    Harness { config, store }
}

// In a module, so every case shows as `postgres::<case>` in the test output.
mod postgres {
    use super::*;
    store_conformance_tests!(postgres_harness());
}
