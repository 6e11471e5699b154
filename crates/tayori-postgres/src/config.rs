use std::time::Duration;

use serde::Deserialize;

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// The pool's size. Each worker task holds a connection only for one statement at a time.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection from the pool before reporting the store unavailable.
    #[serde(default = "default_acquire_timeout", with = "seconds")]
    pub acquire_timeout: Duration,
    /// Group commit: how many write batches may run at once, each on its own connection.
    /// Writes (claims, attempts, outcomes, duplicates) that arrive while these are busy wait
    /// and go together in the next batch: one transaction, one commit. See `group_commit.rs`.
    #[serde(default = "default_write_batches_in_flight")]
    pub write_batches_in_flight: usize,
    /// Group commit: at most this many writes in one batch.
    #[serde(default = "default_max_writes_per_batch")]
    pub max_writes_per_batch: usize,
}

impl PostgresConfig {
    /// A config with defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: default_max_connections(),
            acquire_timeout: default_acquire_timeout(),
            write_batches_in_flight: default_write_batches_in_flight(),
            max_writes_per_batch: default_max_writes_per_batch(),
        }
    }
}

/// The default of [`PostgresConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The default of [`PostgresConfig::write_batches_in_flight`]. Two: one batch commits (waits
/// for its WAL flush) while the next gathers and executes. One makes the biggest batches but
/// serialises every write behind one connection; more make smaller batches that cost
/// PostgreSQL more CPU per write (`docs/benchmarks.md`).
pub const DEFAULT_WRITE_BATCHES_IN_FLIGHT: usize = 2;

/// The default of [`PostgresConfig::max_writes_per_batch`].
pub const DEFAULT_MAX_WRITES_PER_BATCH: usize = 256;

fn default_max_connections() -> u32 {
    DEFAULT_MAX_CONNECTIONS
}

fn default_write_batches_in_flight() -> usize {
    DEFAULT_WRITE_BATCHES_IN_FLIGHT
}

fn default_max_writes_per_batch() -> usize {
    DEFAULT_MAX_WRITES_PER_BATCH
}

fn default_acquire_timeout() -> Duration {
    Duration::from_secs(5)
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        f64::deserialize(deserializer).map(Duration::from_secs_f64)
    }
}
