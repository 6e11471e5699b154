//! The audit log on PostgreSQL (`admin_audit`), read newest first.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Row};
use tayori_app::ports::{AuditEntry, AuditLog, AuditQuery, AuditRecord, StoreError};
use tayori_domain::TenantId;
use uuid::Uuid;

use super::{PostgresAdminStore, insert_audit, tenant_names, unexpected};
use crate::errors::store_error;

#[async_trait]
impl AuditLog for PostgresAdminStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new("select * from admin_audit where true");
        if let Some(tenants) = &query.tenants {
            sql.push(" and tenant_id = any(").push_bind(tenant_names(tenants)).push(")");
        }
        if let Some(token_id) = &query.token_id {
            // Not a UUID: matches nothing, like any other unknown token.
            let id = Uuid::try_parse(token_id).unwrap_or(Uuid::nil());
            sql.push(" and token_id = ").push_bind(id);
        }
        if let Some(action) = &query.action {
            sql.push(" and action = ").push_bind(action.clone());
        }
        if let Some(object_id) = &query.object_id {
            sql.push(" and object_id = ").push_bind(object_id.clone());
        }
        if let Some(before) = query.before {
            sql.push(" and audit_id < ").push_bind(before);
        }
        sql.push(" order by audit_id desc limit ").push_bind(i64::from(query.limit.clamp(1, 500)));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: Option<String> = row.try_get("tenant_id").map_err(store_error)?;
                Ok(AuditRecord {
                    audit_id: row.try_get("audit_id").map_err(store_error)?,
                    entry: AuditEntry {
                        at: row.try_get("at").map_err(store_error)?,
                        token_id: row
                            .try_get::<Uuid, _>("token_id")
                            .map_err(store_error)?
                            .to_string(),
                        role: row.try_get("role").map_err(store_error)?,
                        action: row.try_get("action").map_err(store_error)?,
                        tenant: tenant
                            .as_deref()
                            .map(TenantId::parse)
                            .transpose()
                            .map_err(unexpected)?,
                        object_kind: row.try_get("object_kind").map_err(store_error)?,
                        object_id: row.try_get("object_id").map_err(store_error)?,
                        reason: row.try_get("reason").map_err(store_error)?,
                        detail: row.try_get("detail").map_err(store_error)?,
                    },
                })
            })
            .collect()
    }
}
