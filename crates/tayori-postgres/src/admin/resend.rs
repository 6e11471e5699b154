//! What resends and replays record on PostgreSQL: delivery links, `unknown` sends made failed,
//! and replays of unkeyed rejections, each with its audit entry in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tayori_app::ports::{
    AuditEntry, DeliveryLink, DeliveryLinks, LinkKind, StoreError, UnkeyedRejectionLog,
    UnkeyedRejectionRecord, UnknownSends,
};
use tayori_domain::{DeliveryId, TenantId};
use uuid::Uuid;

use super::{
    PostgresAdminStore, audited_change, count, insert_audit, parse_uuid, tenant_names, unexpected,
};
use crate::errors::store_error;

fn link_record(row: &PgRow) -> Result<DeliveryLink, StoreError> {
    let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
    let kind: String = row.try_get("kind").map_err(store_error)?;
    Ok(DeliveryLink {
        tenant: TenantId::parse(&tenant).map_err(unexpected)?,
        delivery_id: DeliveryId::from_uuid(row.try_get("delivery_id").map_err(store_error)?),
        origin: DeliveryId::from_uuid(row.try_get("origin_delivery_id").map_err(store_error)?),
        kind: if kind == "replay" { LinkKind::Replay } else { LinkKind::Resend },
        n: count(row.try_get("n").map_err(store_error)?),
        reason: row.try_get("reason").map_err(store_error)?,
        created_by: row.try_get::<Uuid, _>("created_by").map_err(store_error)?.to_string(),
        created_at: row.try_get("created_at").map_err(store_error)?,
    })
}

fn unkeyed_record(row: &PgRow) -> Result<UnkeyedRejectionRecord, StoreError> {
    Ok(UnkeyedRejectionRecord {
        body_sha256: row.try_get("body_sha256").map_err(store_error)?,
        tenant: row.try_get("tenant_id").map_err(store_error)?,
        reason: row.try_get("reason").map_err(store_error)?,
        raw_body: row.try_get("raw_body").map_err(store_error)?,
        body_size: u64::try_from(row.try_get::<i32, _>("body_size").map_err(store_error)?)
            .unwrap_or_default(),
        times_seen: count(row.try_get("times_seen").map_err(store_error)?),
        first_seen_at: row.try_get("first_seen_at").map_err(store_error)?,
        last_seen_at: row.try_get("last_seen_at").map_err(store_error)?,
    })
}

const UNKEYED_COLUMNS: &str = "body_sha256, tenant_id, reason, raw_body, body_size, times_seen, \
    first_seen_at, last_seen_at";

#[async_trait]
impl DeliveryLinks for PostgresAdminStore {
    async fn last_link_number(
        &self,
        tenant: &TenantId,
        origin: DeliveryId,
        kind: LinkKind,
    ) -> Result<u32, StoreError> {
        let n: Option<i32> = sqlx::query_scalar(
            "select max(n) from delivery_links \
             where tenant_id = $1 and origin_delivery_id = $2 and kind = $3",
        )
        .bind(tenant.to_string())
        .bind(origin.as_uuid())
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(n.map(count).unwrap_or(0))
    }

    async fn record_link(
        &self,
        link: &DeliveryLink,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "insert into delivery_links (tenant_id, delivery_id, origin_delivery_id, kind, n, \
                 reason, created_by, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict do nothing",
        )
        .bind(link.tenant.to_string())
        .bind(link.delivery_id.as_uuid())
        .bind(link.origin.as_uuid())
        .bind(link.kind.as_str())
        .bind(i32::try_from(link.n).map_err(unexpected)?)
        .bind(&link.reason)
        .bind(parse_uuid(&link.created_by)?)
        .bind(link.created_at);
        audited_change(&self.pool, change, audit).await
    }

    async fn links(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<Vec<DeliveryLink>, StoreError> {
        let rows = sqlx::query(
            "select * from delivery_links where tenant_id = $1 \
                 and (delivery_id = $2 or origin_delivery_id = $2) order by created_at, n",
        )
        .bind(tenant.to_string())
        .bind(delivery.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(link_record).collect()
    }
}

#[async_trait]
impl UnknownSends for PostgresAdminStore {
    async fn expire_unknown_sends(
        &self,
        tenant: &TenantId,
        only: Option<DeliveryId>,
        decided_before: DateTime<Utc>,
        reason_prefix: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let expired: Vec<Uuid> = sqlx::query_scalar(
            "update deliveries set status = 'failed', reason = $4 || coalesce(reason, ''), \
                 updated_at = $5 \
             where tenant_id = $1 and status = 'unknown' and decided_at < $2 \
                 and ($3::uuid is null or delivery_id = $3) \
             returning delivery_id",
        )
        .bind(tenant.as_str())
        .bind(decided_before)
        .bind(only.map(|id| id.as_uuid()))
        .bind(reason_prefix)
        .bind(audit.at)
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        for id in &expired {
            let entry = AuditEntry { object_id: Some(id.to_string()), ..audit.clone() };
            insert_audit(&mut tx, &entry).await?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(expired.into_iter().map(DeliveryId::from_uuid).collect())
    }
}

#[async_trait]
impl UnkeyedRejectionLog for PostgresAdminStore {
    async fn unkeyed_rejections(
        &self,
        tenants: Option<&[TenantId]>,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError> {
        let sql = format!(
            "select {UNKEYED_COLUMNS} from unkeyed_rejections \
             where ($1::text[] is null or tenant_id = any($1)) \
             order by last_seen_at desc limit $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenants.map(tenant_names))
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(unkeyed_record).collect()
    }

    async fn unkeyed_rejection(
        &self,
        body_sha256: &str,
    ) -> Result<Option<UnkeyedRejectionRecord>, StoreError> {
        let sql =
            format!("select {UNKEYED_COLUMNS} from unkeyed_rejections where body_sha256 = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(body_sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(unkeyed_record).transpose()
    }

    async fn record_unkeyed_replay(
        &self,
        body_sha256: &str,
        at: DateTime<Utc>,
        result: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "update unkeyed_rejections set replayed_at = $2, replay_result = $3 \
             where body_sha256 = $1",
        )
        .bind(body_sha256)
        .bind(at)
        .bind(result)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }
}
