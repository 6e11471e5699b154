//! tayori's delivery store on PostgreSQL: the production store.
//!
//! It owns the SQL that claims idempotency keys with leases, records attempts and outcomes, and
//! lists deliveries; SES feedback (timeline, feedback status, automatic suppressions); the events
//! held while their tenant is paused; what each worker's tenants are doing (for the console); the admin
//! store (tokens, audit log, suppressions, links, searches; the console's sessions) and the suppression list; the deletion
//! of records past their retention (`tayori prune`); the registry of running workers that divide
//! the SES account's send rate; and the embedded migrations in
//! `migrations/postgres/` ([`MIGRATOR`]). The
//! event path's writes are group-committed: concurrent calls share one transaction and one
//! commit, and each call still returns only once its own write is durable (`group_commit.rs`). It
//! implements [`tayori_app::ports::DeliveryStore`] and passes the same conformance suite as the
//! SQLite store. It must not know about queues, templates or senders, and it never reads the
//! environment: the binary hands it a [`PostgresConfig`].

mod activity;
mod admin;
mod batch;
mod coalesce;
mod config;
mod errors;
mod feedback;
mod group_commit;
mod held;
mod listing;
mod retention;
mod sessions;
mod store;
mod suppressions;
#[cfg(feature = "testing")]
pub mod testing;
mod workers;
mod writes;

pub use activity::PostgresActivityBoard;
pub use admin::PostgresAdminStore;
pub use config::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_WRITES_PER_BATCH, DEFAULT_WRITE_BATCHES_IN_FLIGHT,
    PostgresConfig, SessionLimits, redacted_url,
};
pub use feedback::{FEEDBACK_ACTOR, PostgresFeedbackStore, TimelineEntry};
pub use group_commit::WriteBatchStats;
pub use held::PostgresHeldEvents;
pub use retention::PostgresRetention;
pub use store::PostgresStore;
pub use suppressions::PostgresSuppressions;
pub use workers::PostgresWorkerRegistry;

/// The migrations, embedded in the binary; applied by `tayori migrate` (and at the start of the
/// worker and the admin server). Migrations applied by a newer version and unknown to this one
/// are ignored rather than refused: a rollback to the previous version must start against the
/// schema the new version left (docs/operations.md, "Deploy a new version"), which is why no
/// migration may break the version before it.
pub static MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| {
        let mut migrator = sqlx::migrate!("../../migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator
    });
