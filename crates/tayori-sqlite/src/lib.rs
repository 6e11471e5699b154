//! tayori's delivery store on SQLite: the embedded default, so `tayori dev` needs no database
//! server.
//!
//! It owns the SQLite twin of the PostgreSQL schema (`migrations/sqlite/`, embedded as
//! [`MIGRATOR`]) and the same claim/lease/outcome semantics, proven by the same conformance
//! suite; text PostgreSQL cannot keep (NUL) it refuses too, so that both stores agree. It must not know about queues, templates or senders, and never reads the environment.
//! One file, one writer at a time: fine for a developer's machine and small deployments, not for
//! a fleet of workers (use PostgreSQL there).

mod admin;
mod store;

pub use admin::SqliteAdminStore;
pub use store::SqliteStore;

/// The migrations, embedded in the binary; applied when the store opens.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
