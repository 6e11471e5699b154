//! What each worker's tenants are doing, in `worker_activity` (migration
//! `0020_worker_activity.sql`): a worker's rows are replaced by each of its publications.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use tayori_app::ports::{ActivityBoard, StoreError, TenantActivity};
use tayori_domain::TenantId;

use crate::errors::store_error;

/// How long the rows of a worker that stopped without withdrawing (killed) are kept.
const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// The activity board on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresActivityBoard {
    pool: PgPool,
}

impl PostgresActivityBoard {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl ActivityBoard for PostgresActivityBoard {
    async fn publish(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        tenants: &[TenantActivity],
    ) -> Result<(), StoreError> {
        let column = |f: fn(&TenantActivity) -> i64| tenants.iter().map(f).collect::<Vec<i64>>();
        let names: Vec<&str> = tenants.iter().map(|t| t.tenant.as_str()).collect();
        let rates: Vec<f64> = tenants.iter().map(|t| t.send_rate).collect();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("delete from worker_activity where worker = $1 or published_at < $2")
            .bind(worker)
            .bind(now - FORGET_AFTER)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "insert into worker_activity \
                 (worker, tenant, in_flight, waiting, slots, send_rate, hand_backs, published_at) \
             select $1, t.tenant, t.in_flight, t.waiting, t.slots, t.send_rate, t.hand_backs, $2 \
             from unnest($3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
                         $7::float8[], $8::bigint[]) \
                  as t(tenant, in_flight, waiting, slots, send_rate, hand_backs)",
        )
        .bind(worker)
        .bind(now)
        .bind(&names)
        .bind(column(|t| t.in_flight as i64))
        .bind(column(|t| t.waiting as i64))
        .bind(column(|t| t.slots as i64))
        .bind(&rates)
        .bind(column(|t| t.hand_backs as i64))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    async fn read(
        &self,
        tenants: Option<&[TenantId]>,
        now: DateTime<Utc>,
        live_for: Duration,
    ) -> Result<Vec<TenantActivity>, StoreError> {
        let since = now - chrono::Duration::from_std(live_for).unwrap_or_default();
        let scope: Option<Vec<&str>> = tenants.map(|t| t.iter().map(TenantId::as_str).collect());
        let rows: Vec<(String, i64, i64, i64, f64, i64, i64)> = sqlx::query_as(
            "select tenant, sum(in_flight)::bigint, sum(waiting)::bigint, sum(slots)::bigint, \
                    sum(send_rate)::float8, sum(hand_backs)::bigint, count(*) \
             from worker_activity \
             where published_at > $1 and ($2::text[] is null or tenant = any($2)) \
             group by tenant order by tenant",
        )
        .bind(since)
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(tenant, in_flight, waiting, slots, send_rate, hand_backs, workers)| {
                TenantActivity {
                    tenant,
                    in_flight: in_flight.max(0) as u64,
                    waiting: waiting.max(0) as u64,
                    slots: slots.max(0) as u64,
                    send_rate,
                    hand_backs: hand_backs.max(0) as u64,
                    workers: u32::try_from(workers).unwrap_or(u32::MAX),
                }
            })
            .collect())
    }

    async fn withdraw(&self, worker: &str) -> Result<(), StoreError> {
        sqlx::query("delete from worker_activity where worker = $1")
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
