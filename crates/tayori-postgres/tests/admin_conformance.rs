//! The admin conformance suite, run unchanged against PostgreSQL (a fresh database per test on
//! the cluster `scripts/test` provides).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::sync::Arc;

use tayori_app::admin_store_conformance_tests;
use tayori_app::ports::{
    AdminStore, ConsoleSessionStore, DeliveryStore, HeldEvents, SuppressionList, TenantPauseList,
};
use tayori_app::testing::admin_conformance::AdminStoreUnderTest;
use tayori_postgres::testing::fresh_database;
use tayori_postgres::{
    PostgresAdminStore, PostgresFeedbackStore, PostgresHeldEvents, PostgresStore,
    PostgresSuppressions,
};

struct Harness {
    store: PostgresStore,
}

impl AdminStoreUnderTest for Harness {
    fn deliveries(&self) -> Arc<dyn DeliveryStore> {
        Arc::new(self.store.clone())
    }
    fn admin(&self) -> Arc<dyn AdminStore> {
        Arc::new(PostgresAdminStore::new(self.store.pool().clone()))
    }
    fn sessions(&self) -> Arc<dyn ConsoleSessionStore> {
        Arc::new(PostgresAdminStore::new(self.store.pool().clone()))
    }
    fn suppressions(&self) -> Arc<dyn SuppressionList> {
        Arc::new(PostgresSuppressions::new(self.store.pool().clone()))
    }
    fn held(&self) -> Arc<dyn HeldEvents> {
        Arc::new(PostgresHeldEvents::new(self.store.pool().clone()))
    }
    fn pauses(&self) -> Arc<dyn TenantPauseList> {
        Arc::new(PostgresFeedbackStore::new(self.store.pool().clone()))
    }
}

async fn postgres_harness() -> Harness {
    let config = fresh_database().await;
    Harness { store: PostgresStore::connect(&config).await.expect("connect") }
}

// In a module, so every case shows as `postgres::<case>` in the test output.
mod postgres {
    use super::*;
    admin_store_conformance_tests!(postgres_harness());
}
