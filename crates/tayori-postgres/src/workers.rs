//! The registry of running workers, in `workers` (migration `0019_workers.sql`): one row per
//! process, its heartbeat moved forward by each beat, deleted when it leaves.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use tayori_app::ports::{StoreError, WorkerRegistry};

use crate::errors::store_error;

/// How long a worker's row stays after its last heartbeat (a killed worker's): long enough for
/// an operator to see which one went, short enough that the table stays a handful of rows.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(3600);

/// The worker registry on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresWorkerRegistry {
    pool: PgPool,
    name: String,
}

impl PostgresWorkerRegistry {
    /// Wraps a pool (the schema must be migrated); `name` is written beside each id this
    /// registry beats for (the worker_id of logs and claims).
    pub fn new(pool: PgPool, name: impl Into<String>) -> Self {
        Self { pool, name: name.into() }
    }
}

fn before(now: DateTime<Utc>, by: Duration) -> Result<DateTime<Utc>, StoreError> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| now.checked_sub_signed(by))
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("a duration out of range: {by:?}")))
}

#[async_trait]
impl WorkerRegistry for PostgresWorkerRegistry {
    async fn heartbeat(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        live_for: Duration,
    ) -> Result<u32, StoreError> {
        let live_since = before(now, live_for)?;
        let forgotten_before = before(now, FORGOTTEN_AFTER.max(live_for))?;
        // One round trip. The statements of a `with` see the table as it was before any of
        // them, so the count leaves this worker out and adds it back: it is live, whether its
        // row was there or not.
        let others: i64 = sqlx::query_scalar(
            "with beat as ( \
                 insert into workers (id, name, started_at, heartbeat_at) values ($1, $2, $3, $3) \
                 on conflict (id) do update set heartbeat_at = excluded.heartbeat_at), \
             gone as ( \
                 delete from workers where heartbeat_at < $5 and id <> $1) \
             select count(*) from workers where id <> $1 and heartbeat_at > $4",
        )
        .bind(worker)
        .bind(&self.name)
        .bind(now)
        .bind(live_since)
        .bind(forgotten_before)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(u32::try_from(others).unwrap_or(u32::MAX - 1) + 1)
    }

    async fn leave(&self, worker: &str) -> Result<(), StoreError> {
        sqlx::query("delete from workers where id = $1")
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
