//! Deleting records past their retention, for `tayori prune`: one transaction per batch, oldest
//! first, skipping rows other transactions hold.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tayori_app::ports::{PrunableCounts, RetentionStore, StoreError};

use crate::errors::store_error;

/// The [`RetentionStore`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresRetention {
    pool: PgPool,
}

impl PostgresRetention {
    /// Deletes through `pool` (the store's: [`crate::PostgresStore::pool`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait]
impl RetentionStore for PostgresRetention {
    async fn count_prunable(&self, cutoff: DateTime<Utc>) -> Result<PrunableCounts, StoreError> {
        // Through `deliveries_created` (created_at, delivery_id) and the two indexes below: no
        // scan of the young part of any table.
        let row = sqlx::query(
            "select \
                (select count(*) from deliveries d \
                  where created_at < $1 \
                    and (status <> 'processing' or lease_expires_at < $1) \
                    and not exists (select 1 from held_events h where h.tenant_id = d.tenant_id \
                                    and h.source = d.source and h.event_id = d.event_id)) \
                  as deliveries, \
                (select count(*) from deliveries \
                  where created_at < $1 \
                    and status = 'processing' and lease_expires_at >= $1) as processing, \
                (select count(*) from unkeyed_rejections where last_seen_at < $1) as unkeyed, \
                (select count(*) from feedback_events \
                  where received_at < $1 and result <> 'matched') as unmatched",
        )
        .bind(cutoff)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(PrunableCounts {
            deliveries: count(row.get("deliveries")),
            processing_kept: count(row.get("processing")),
            unkeyed_rejections: count(row.get("unkeyed")),
            unmatched_feedback: count(row.get("unmatched")),
            // Under its own cutoff, counted apart (`count_audit`).
            audit_entries: 0,
        })
    }

    async fn prune_deliveries(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        // One statement, so one transaction: the attempts, the feedback timeline, the feedback
        // messages matched to it (each matches one delivery) and the links go with their delivery
        // or not at all. The foreign keys are checked at the statement's end, when the rows that point at each delivery are
        // gone too; the checks find those rows through the indexes on `delivery_id` (0013, 0015)
        // and `feedback_id` (0016). A delivery still `processing` goes only when its last lease
        // ended before the cutoff: no worker has seen its event since. `skip locked` leaves alone
        // a delivery a worker is claiming again (a late copy of an old event), and a delivery
        // whose event has a copy in `held_events` stays while it is held: that copy's release
        // must find the key decided (a pause that outlasts the retention), not mail it again.
        let deleted: i64 = sqlx::query_scalar(
            "with doomed as ( \
                 select tenant_id, delivery_id from deliveries d \
                 where created_at < $1 \
                   and (status <> 'processing' or lease_expires_at < $1) \
                   and not exists (select 1 from held_events h where h.tenant_id = d.tenant_id \
                                   and h.source = d.source and h.event_id = d.event_id) \
                 order by created_at, delivery_id \
                 limit $2 \
                 for update skip locked), \
             attempts as ( \
                 delete from delivery_attempts a using doomed d \
                 where a.delivery_id = d.delivery_id), \
             timeline as ( \
                 delete from delivery_feedback f using doomed d \
                 where f.delivery_id = d.delivery_id \
                 returning f.feedback_id), \
             matched as ( \
                 delete from feedback_events e using timeline t \
                 where e.feedback_id = t.feedback_id), \
             links as ( \
                 delete from delivery_links l using doomed d \
                 where l.tenant_id = d.tenant_id and l.delivery_id = d.delivery_id), \
             gone as ( \
                 delete from deliveries x using doomed d \
                 where x.delivery_id = d.delivery_id \
                 returning 1) \
             select count(*) from gone",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(count(deleted))
    }

    async fn prune_unkeyed_rejections(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.delete_oldest(
            "delete from unkeyed_rejections where body_sha256 in ( \
                 select body_sha256 from unkeyed_rejections where last_seen_at < $1 \
                 order by last_seen_at limit $2 for update skip locked)",
            cutoff,
            limit,
        )
        .await
    }

    async fn count_audit(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        // Through `admin_audit_at` (at, audit_id).
        let row = sqlx::query("select count(*) as n from admin_audit where at < $1")
            .bind(cutoff)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(count(row.get("n")))
    }

    async fn prune_audit(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        // Nothing points at an audit entry.
        self.delete_oldest(
            "delete from admin_audit where audit_id in ( \
                 select audit_id from admin_audit where at < $1 \
                 order by at limit $2 for update skip locked)",
            cutoff,
            limit,
        )
        .await
    }

    async fn prune_unmatched_feedback(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Matched messages go with their delivery (above); these matched none, so nothing points
        // at them.
        self.delete_oldest(
            "delete from feedback_events where feedback_id in ( \
                 select feedback_id from feedback_events \
                 where received_at < $1 and result <> 'matched' \
                 order by received_at limit $2 for update skip locked)",
            cutoff,
            limit,
        )
        .await
    }
}

impl PostgresRetention {
    /// Runs a delete of at most `$2` rows older than `$1`; returns how many it deleted.
    async fn delete_oldest(
        &self,
        statement: &'static str,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let deleted = sqlx::query(statement)
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(deleted.rows_affected())
    }
}
