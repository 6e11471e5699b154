//! The contract of the admin ports ([`AdminStore`]'s parts, the console's sessions, the
//! suppression list and the held events), as tests every store adapter runs unchanged, so the
//! console and the API behave the same on PostgreSQL and on SQLite (`tayori dev`).
//!
//! An adapter's test file provides an [`AdminStoreUnderTest`] on a fresh database and invokes
//! [`admin_store_conformance_tests!`](crate::admin_store_conformance_tests), which expands to one
//! `#[tokio::test]` per case, so a failing case is named in the test output. The cases live by
//! capability: `access` (tokens, audit log, sessions, tenant pauses and held events,
//! suppressions, readiness) and `deliveries` (searches, feedback, links, unknown sends, unkeyed
//! rejections, statistics).

use std::sync::Arc;

use crate::ports::{
    AdminStore, ConsoleSessionStore, DeliveryStore, HeldEvents, SuppressionList, TenantPauseList,
};

pub mod access;
pub mod deliveries;

/// One store on a fresh, empty database, seen through each port the admin side uses. Every
/// accessor returns the same database.
pub trait AdminStoreUnderTest: Send + Sync {
    /// Deliveries, as the event path writes them (to seed what the admin ports read).
    fn deliveries(&self) -> Arc<dyn DeliveryStore>;
    /// The admin store.
    fn admin(&self) -> Arc<dyn AdminStore>;
    /// The console's sessions.
    fn sessions(&self) -> Arc<dyn ConsoleSessionStore>;
    /// The suppression list the event path checks.
    fn suppressions(&self) -> Arc<dyn SuppressionList>;
    /// The events held for paused tenants.
    fn held(&self) -> Arc<dyn HeldEvents>;
    /// The paused tenants, as the event path reads them.
    fn pauses(&self) -> Arc<dyn TenantPauseList>;
}

/// Expands to one `#[tokio::test]` (multi-threaded) per admin conformance case, each calling
/// `$make` (an async expression) for a fresh [`AdminStoreUnderTest`]. The calling crate needs
/// `tokio` with `macros` and `rt-multi-thread`.
#[macro_export]
macro_rules! admin_store_conformance_tests {
    ($make:expr) => {
        $crate::admin_access_conformance_cases!($make);
        $crate::admin_delivery_conformance_cases!($make);
    };
    (@cases $module:ident, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let harness = $make.await;
                $crate::testing::admin_conformance::$module::$case(&harness).await;
            }
        )*
    };
}
