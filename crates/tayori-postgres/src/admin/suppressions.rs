//! Operators' suppressions on PostgreSQL: searched, added and removed with their audit entry.

use async_trait::async_trait;
use sqlx::Row;
use tayori_app::ports::{
    AuditEntry, StoreError, SuppressionAdmin, SuppressionEntry, SuppressionQuery,
};
use tayori_domain::{EmailAddress, TenantId};

use super::{PostgresAdminStore, audited_change, tenant_names, unexpected};
use crate::errors::store_error;

#[async_trait]
impl SuppressionAdmin for PostgresAdminStore {
    async fn suppressions(
        &self,
        query: &SuppressionQuery,
    ) -> Result<Vec<SuppressionEntry>, StoreError> {
        let rows = sqlx::query(
            "select tenant_id, address, reason, cause, created_by, created_at from suppressions \
             where ($1::text[] is null or tenant_id = any($1)) \
                 and ($2::text is null or lower(address) = lower($2)) \
             order by created_at desc, suppression_id desc limit $3",
        )
        .bind(query.tenants.as_deref().map(tenant_names))
        .bind(query.address.as_ref().map(|a| a.as_str().to_owned()))
        .bind(i64::from(query.limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                let address: String = row.try_get("address").map_err(store_error)?;
                Ok(SuppressionEntry {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    address: EmailAddress::parse(&address).map_err(unexpected)?,
                    reason: row.try_get("reason").map_err(store_error)?,
                    cause: row.try_get("cause").map_err(store_error)?,
                    created_by: row.try_get("created_by").map_err(store_error)?,
                    created_at: row.try_get("created_at").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn add_suppression(
        &self,
        entry: &SuppressionEntry,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "insert into suppressions (tenant_id, address, message_class, reason, cause, \
                 created_by, created_at) values ($1, $2, null, $3, $4, $5, $6) \
             on conflict do nothing",
        )
        .bind(entry.tenant.to_string())
        .bind(entry.address.as_str())
        .bind(&entry.reason)
        .bind(&entry.cause)
        .bind(&entry.created_by)
        .bind(entry.created_at);
        audited_change(&self.pool, change, audit).await
    }

    async fn remove_suppression(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "delete from suppressions \
             where tenant_id = $1 and lower(address) = lower($2) and message_class is null",
        )
        .bind(tenant.to_string())
        .bind(address.as_str());
        audited_change(&self.pool, change, audit).await
    }
}
