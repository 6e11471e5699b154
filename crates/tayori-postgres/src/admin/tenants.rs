//! Tenant pauses on PostgreSQL: one open pause per tenant, with the events held meanwhile.

use async_trait::async_trait;
use sqlx::Row;
use tayori_app::ports::{AuditEntry, StoreError, TenantPause, TenantPauses};
use tayori_domain::TenantId;

use super::{PostgresAdminStore, audited_change, tenant_names, unexpected};
use crate::errors::store_error;

#[async_trait]
impl TenantPauses for PostgresAdminStore {
    async fn pause_tenant(
        &self,
        tenant: &TenantId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        // A new pause, or the tenant's last one reopened once it was resumed; never a second
        // pause over a running one (its reason and author stay).
        let change = sqlx::query(
            "insert into tenant_pauses (tenant_id, reason, paused_at, paused_by) \
             values ($1, $2, $3, $4) \
             on conflict (tenant_id) do update \
                 set reason = excluded.reason, paused_at = excluded.paused_at, \
                     paused_by = excluded.paused_by, resumed_at = null, resumed_by = null \
                 where tenant_pauses.resumed_at is not null",
        )
        .bind(tenant.as_str())
        .bind(audit.reason.as_deref().unwrap_or_default())
        .bind(audit.at)
        .bind(&audit.token_id);
        audited_change(&self.pool, change, audit).await
    }

    async fn resume_tenant(
        &self,
        tenant: &TenantId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "update tenant_pauses set resumed_at = $2, resumed_by = $3 \
             where tenant_id = $1 and resumed_at is null",
        )
        .bind(tenant.as_str())
        .bind(audit.at)
        .bind(&audit.token_id);
        audited_change(&self.pool, change, audit).await
    }

    async fn paused_tenants(
        &self,
        tenants: Option<&[TenantId]>,
    ) -> Result<Vec<TenantPause>, StoreError> {
        let rows = sqlx::query(
            "select p.tenant_id, p.reason, p.paused_at, p.paused_by, \
                    count(h.tenant_id) as held_events, min(h.held_at) as oldest_held_at \
             from tenant_pauses p left join held_events h on h.tenant_id = p.tenant_id \
             where p.resumed_at is null and ($1::text[] is null or p.tenant_id = any($1)) \
             group by p.tenant_id order by p.tenant_id",
        )
        .bind(tenants.map(tenant_names))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                Ok(TenantPause {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    reason: row.try_get("reason").map_err(store_error)?,
                    paused_at: row.try_get("paused_at").map_err(store_error)?,
                    paused_by: row.try_get("paused_by").map_err(store_error)?,
                    held_events: row
                        .try_get::<i64, _>("held_events")
                        .map_err(store_error)?
                        .try_into()
                        .unwrap_or(0),
                    oldest_held_at: row.try_get("oldest_held_at").map_err(store_error)?,
                })
            })
            .collect()
    }
}
