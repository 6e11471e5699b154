//! Operators' tokens on PostgreSQL: stored by the SHA-256 of their secret, each change audited
//! in its transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tayori_app::ports::{AuditEntry, Role, StoreError, TenantScope, TokenRecord, TokenStore};
use tayori_domain::TenantId;
use uuid::Uuid;

use super::{
    PostgresAdminStore, audited_change, insert_audit, parse_uuid, tenant_names, unexpected,
};
use crate::errors::store_error;

pub(crate) fn token_record(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role").map_err(store_error)?;
    let tenants: Option<Vec<String>> = row.try_get("tenants").map_err(store_error)?;
    let scope = match tenants {
        None => TenantScope::All,
        Some(names) => TenantScope::Only(
            names
                .iter()
                .map(|t| TenantId::parse(t))
                .collect::<Result<_, _>>()
                .map_err(unexpected)?,
        ),
    };
    Ok(TokenRecord {
        token_id: row.try_get::<Uuid, _>("token_id").map_err(store_error)?.to_string(),
        role: role.parse::<Role>().map_err(unexpected)?,
        scope,
        label: row.try_get("label").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
        expires_at: row.try_get("expires_at").map_err(store_error)?,
        revoked_at: row.try_get("revoked_at").map_err(store_error)?,
        last_used_at: row.try_get("last_used_at").map_err(store_error)?,
    })
}

#[async_trait]
impl TokenStore for PostgresAdminStore {
    async fn create_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let tenants = match &token.scope {
            TenantScope::All => None,
            TenantScope::Only(tenants) => Some(tenant_names(tenants)),
        };
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "insert into admin_tokens (token_id, token_sha256, role, tenants, label, created_at, \
                 expires_at) values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(parse_uuid(&token.token_id)?)
        .bind(secret_sha256)
        .bind(token.role.as_str())
        .bind(tenants)
        .bind(&token.label)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn token_by_hash(&self, secret_sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query("select * from admin_tokens where token_sha256 = $1")
            .bind(secret_sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(token_record).transpose()
    }

    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("update admin_tokens set last_used_at = $2 where token_id = $1")
            .bind(parse_uuid(token_id)?)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query("select * from admin_tokens order by created_at desc")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(token_record).collect()
    }

    async fn revoke_token(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let Ok(id) = Uuid::try_parse(token_id) else { return Ok(false) };
        let change = sqlx::query(
            "update admin_tokens set revoked_at = $2 where token_id = $1 and revoked_at is null",
        )
        .bind(id)
        .bind(at);
        audited_change(&self.pool, change, audit).await
    }
}
