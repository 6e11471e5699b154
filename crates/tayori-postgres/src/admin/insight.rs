//! The operators' counts on PostgreSQL: deliveries per outcome, and sent, bounced and
//! complained per tenant.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tayori_app::ports::{DeliveryStats, OutcomeCount, ReputationCount, StoreError};
use tayori_domain::TenantId;

use super::{PostgresAdminStore, tenant_names, unexpected};
use crate::errors::store_error;

#[async_trait]
impl DeliveryStats for PostgresAdminStore {
    async fn reputation_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<ReputationCount>, StoreError> {
        let rows = sqlx::query(
            "select tenant_id, count(*) as sent, \
                 count(*) filter (where feedback_status = 'bounced') as bounced, \
                 count(*) filter (where feedback_status = 'complained') as complained \
             from deliveries \
             where status = 'sent' and decided_at >= $1 \
                 and ($2::text[] is null or tenant_id = any($2)) \
             group by tenant_id order by tenant_id",
        )
        .bind(since)
        .bind(tenants.map(tenant_names))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let count = |row: &PgRow, column: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(column).map_err(store_error)?)
                .unwrap_or_default())
        };
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                Ok(ReputationCount {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    sent: count(row, "sent")?,
                    bounced: count(row, "bounced")?,
                    complained: count(row, "complained")?,
                })
            })
            .collect()
    }

    async fn outcome_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutcomeCount>, StoreError> {
        let rows = sqlx::query(
            "select tenant_id, status, count(*) as n from deliveries \
             where created_at >= $1 and ($2::text[] is null or tenant_id = any($2)) \
             group by tenant_id, status order by tenant_id, status",
        )
        .bind(since)
        .bind(tenants.map(tenant_names))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                let status: String = row.try_get("status").map_err(store_error)?;
                Ok(OutcomeCount {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    status: status.parse().map_err(unexpected)?,
                    count: u64::try_from(row.try_get::<i64, _>("n").map_err(store_error)?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}
