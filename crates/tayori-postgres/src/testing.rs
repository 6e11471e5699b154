//! A fresh database per test on the throwaway cluster that `scripts/test` starts, a cluster of
//! a test's own ([`Cluster`]) for tests that configure, stop or restart the server, a sent
//! delivery recorded the way a worker records it, and an operator's audit entry about a tenant.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tayori_app::ports::{
    AttemptEnd, AttemptResult, AuditEntry, Claim, ClaimRequest, DeliveryStore,
};
use tayori_domain::{EmailAddress, EventId, EventSource, IdempotencyKey, Outcome, TenantId};

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

/// The key of acme-invest's event `id` from the source core-banking.
pub fn acme_key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new(
        TenantId::parse("acme-invest").expect("a valid tenant"),
        EventSource::parse("core-banking").expect("a valid source"),
        EventId::parse(id).expect("a valid event id"),
    )
}

/// A worker's claim of `key` at `at` (recipient taro@example.com, a one-minute lease).
pub fn claim_request(key: &IdempotencyKey, at: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        key: key.clone(),
        event_type: None,
        recipient: EmailAddress::parse("taro@example.com").ok(),
        event_json: Some(r#"{"specversion":"1.0"}"#.into()),
        raw_body: None,
        owner: "test".into(),
        receive_count: 1,
        lease: Duration::from_secs(60),
        now: at,
    }
}

/// Records a delivery of acme-invest's event `id` (source core-banking) sent at `at`, the way a
/// worker records it: the claim with its first attempt, then the attempt's result (accepted, SES
/// message id `ses-<id>`) with the outcome `sent`. Panics if the key was claimed before.
pub async fn record_sent(store: &PostgresStore, id: &str, at: DateTime<Utc>) -> IdempotencyKey {
    let key = acme_key(id);
    let claim = store
        .claim_and_start_attempt(&claim_request(&key, at))
        .await
        .expect("the claim is recorded");
    assert_eq!(claim, Claim::Claimed { attempt: 1 }, "{id} is a new key");
    let message_id = format!("ses-{id}");
    let end = AttemptEnd { attempt: 1, result: AttemptResult::Accepted, detail: &message_id };
    let outcome = Outcome::Sent { provider_message_id: message_id.clone() };
    store
        .record_attempt_finished_and_outcome(&key, end, &outcome, None, at)
        .await
        .expect("the outcome is recorded");
    key
}

/// The token id of the operator in [`operator_audit`].
pub const OPERATOR_TOKEN_ID: &str = "6f1e2c0a-8d4b-4e57-9a31-54c91f0b7d22";

/// An operator's audit entry (now, token [`OPERATOR_TOKEN_ID`]) of `action` on `tenant`, for
/// `reason`: what the admin use cases write with a pause or a resume.
pub fn operator_audit(tenant: &TenantId, action: &str, reason: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        token_id: OPERATOR_TOKEN_ID.into(),
        role: "operator".into(),
        action: action.into(),
        tenant: Some(tenant.clone()),
        object_kind: Some("tenant".into()),
        object_id: Some(tenant.to_string()),
        reason: Some(reason.into()),
        detail: serde_json::json!({}),
    }
}

/// A PostgreSQL cluster of a test's own (the TLS and outage tests need to configure, stop and
/// start one), from the server binaries in `TAYORI_TEST_PG_BIN` (set by `scripts/test`), on
/// 127.0.0.1 and a free port, in a temporary directory. As root the server runs as `postgres`.
/// Stopped (immediately) when dropped.
pub struct Cluster {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
}

impl Cluster {
    /// An initialised, not yet started cluster; `None`, with a message past the test harness's
    /// capture, when `TAYORI_TEST_PG_BIN` is not set.
    pub fn init(purpose: &str) -> Option<Self> {
        use std::io::Write as _;
        let Some(bin) = std::env::var_os("TAYORI_TEST_PG_BIN") else {
            let _ = std::io::stderr().write_all(
                format!(
                    "\n*** SKIPPED: TAYORI_TEST_PG_BIN is not set: the {purpose} test needs the \
                     PostgreSQL server binaries' directory (scripts/test sets it) ***\n"
                )
                .as_bytes(),
            );
            return None;
        };
        let as_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        let dir = tempfile::Builder::new().prefix("tayori-test-pg").tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let cluster = Self { bin: bin.into(), dir, port, as_root };
        cluster.hand_over();
        cluster.run(&format!(
            "'{}/initdb' -D '{}/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8",
            cluster.bin.display(),
            cluster.dir().display()
        ));
        Some(cluster)
    }

    /// Starts the server with `options` besides its port, address and socket directory (e.g.
    /// `-c ssl=on ...`); files written into [`Cluster::dir`] meanwhile are handed to the server.
    pub fn start(&self, options: &str) {
        self.hand_over();
        let dir = self.dir().display();
        self.pg_ctl(&format!(
            "-o \"-p {} -c listen_addresses=127.0.0.1 -k {dir} {options}\" start",
            self.port
        ));
    }

    /// A fast shutdown: sessions are ended, as in a restart or a failover.
    pub fn stop(&self) {
        self.pg_ctl("-m fast stop");
    }

    /// The cluster's directory: its data, log, and any files the test puts there.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The URL of the `postgres` database through `host` (`127.0.0.1`, `localhost`).
    pub fn url(&self, host: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }

    fn pg_ctl(&self, action: &str) {
        let dir = self.dir().display();
        self.run(&format!(
            "'{}/pg_ctl' -D '{dir}/data' -l '{dir}/server.log' -w {action}",
            self.bin.display()
        ));
    }

    /// As root, the server (user `postgres`) must own its directory and what is in it.
    fn hand_over(&self) {
        if self.as_root {
            let chown = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(self.dir())
                .status();
            assert!(chown.is_ok_and(|s| s.success()), "chown of {}", self.dir().display());
        }
    }

    fn command(&self, command: &str) -> std::io::Result<std::process::Output> {
        if self.as_root {
            std::process::Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", command])
                .output()
        } else {
            std::process::Command::new("sh").args(["-c", command]).output()
        }
    }

    fn run(&self, command: &str) {
        let out = self.command(command);
        let log = std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "{command}: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(error) => panic!("{command}: {error}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir().display();
        let command = format!("'{}/pg_ctl' -D '{dir}/data' -m immediate stop", self.bin.display());
        let _ = self.command(&command);
    }
}
