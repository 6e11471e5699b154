use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to reach PostgreSQL. Its `Debug` shows the URL with the password masked.
#[derive(Clone, Deserialize)]
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
    /// What the server does to each connection's statements and sessions (timeouts, keepalive).
    #[serde(default)]
    pub session: SessionLimits,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redacted_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("write_batches_in_flight", &self.write_batches_in_flight)
            .field("max_writes_per_batch", &self.max_writes_per_batch)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// A database URL fit to print or log: the password, in the user part
/// (`postgres://user:secret@host/db`) or a `password=` parameter, replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    let Some(query) = query else { return base };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Limits set on every connection as PostgreSQL session parameters (in the startup packet, so
/// that they hold from the first statement and survive `RESET ALL`). They bound how long one
/// stuck statement, lock wait or dead connection can hold a worker's message, so that a
/// half-open connection or an operator's open transaction ends in an error the use case retries
/// instead of a message kept invisible forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionLimits {
    /// `statement_timeout`: the longest one statement may run (0 turns it off). Migrations run
    /// without it (`PostgresStore::migrate`).
    #[serde(with = "seconds")]
    pub statement_timeout: Duration,
    /// `lock_timeout`: the longest a statement may wait for a row or table lock; shorter than
    /// the statement timeout, so that a row held by someone else costs one write a retry
    /// rather than stalling a whole group-committed batch (0 turns it off).
    #[serde(with = "seconds")]
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: a session that sits in an open transaction this
    /// long is ended by the server, releasing its locks (0 turns it off).
    #[serde(with = "seconds")]
    pub idle_in_transaction_timeout: Duration,
    /// `tcp_keepalives_idle`: after this long without traffic the server probes the
    /// connection (every `tcp_keepalives_interval` = a third of it, 3 times) and drops it when
    /// the worker's end is gone, so that a vanished worker's transaction and locks end.
    #[serde(with = "seconds")]
    pub keepalive_idle: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(2),
            idle_in_transaction_timeout: Duration::from_secs(60),
            keepalive_idle: Duration::from_secs(30),
        }
    }
}

impl SessionLimits {
    /// The session parameters, as PostgreSQL takes them (milliseconds, or seconds for the
    /// keepalive ones; at least 1 where 0 would mean "off" by accident).
    pub fn parameters(&self) -> [(&'static str, String); 6] {
        let ms = |d: Duration| d.as_millis().to_string();
        let keepalive = self.keepalive_idle.as_secs().max(1);
        [
            ("statement_timeout", ms(self.statement_timeout)),
            ("lock_timeout", ms(self.lock_timeout)),
            ("idle_in_transaction_session_timeout", ms(self.idle_in_transaction_timeout)),
            ("tcp_keepalives_idle", keepalive.to_string()),
            ("tcp_keepalives_interval", (keepalive / 3).max(1).to_string()),
            ("tcp_keepalives_count", "3".to_owned()),
        ]
    }
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
            session: SessionLimits::default(),
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
        // `try_`: a negative or non-finite number is an error to report, not a panic.
        Duration::try_from_secs_f64(f64::deserialize(deserializer)?)
            .map_err(serde::de::Error::custom)
    }

    /// Written as seconds, the way it is read (`tayori config check`).
    pub fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        for (url, shown) in [
            ("postgres://u:s3cret@h:5432/d", "postgres://u:***@h:5432/d"),
            ("postgres://u:p@ss@h/d?sslmode=require", "postgres://u:***@h/d?sslmode=require"),
            (
                "postgres://u@h/d?password=s3cret&sslmode=verify-full",
                "postgres://u@h/d?password=***&sslmode=verify-full",
            ),
            ("postgres://u@h/d", "postgres://u@h/d"),
        ] {
            assert_eq!(redacted_url(url), shown);
        }
        let config = PostgresConfig::new("postgres://tayori:s3cret@db/tayori");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret") && debug.contains("tayori:***@db"), "{debug}");
    }
}
