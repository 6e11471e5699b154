//! The admin store on PostgreSQL: operators' tokens (hashed), the audit log, suppressions,
//! delivery links, and the searches and counts of the admin API. Every action's audit entry is
//! written in the same transaction as the action.

mod audit;
mod deliveries;
mod insight;
mod resend;
mod suppressions;
mod tenants;
mod tokens;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgPool};
use sqlx::{Postgres, Transaction};
use tayori_app::ports::{AuditEntry, StoreError, StoreReadiness};
use tayori_domain::TenantId;
use uuid::Uuid;

use crate::errors::store_error;

pub(crate) use tokens::token_record;

/// The admin store on a PostgreSQL pool (the same database as the delivery store).
#[derive(Debug, Clone)]
pub struct PostgresAdminStore {
    pub(crate) pool: PgPool,
}

impl PostgresAdminStore {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn unexpected(error: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unexpected(error.into())
}

fn tenant_names(tenants: &[TenantId]) -> Vec<String> {
    tenants.iter().map(ToString::to_string).collect()
}

pub(crate) fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(raw).map_err(unexpected)
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

pub(crate) async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into admin_audit (at, token_id, role, action, tenant_id, object_kind, object_id, \
             reason, detail) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(entry.at)
    .bind(parse_uuid(&entry.token_id)?)
    .bind(&entry.role)
    .bind(&entry.action)
    .bind(entry.tenant.as_ref().map(ToString::to_string))
    .bind(&entry.object_kind)
    .bind(&entry.object_id)
    .bind(&entry.reason)
    .bind(&entry.detail)
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(())
}

/// Runs `change` and, when it changed a row, writes the audit entry in the same transaction: an
/// action is audited once, and only when it did something. Returns whether it did.
async fn audited_change(
    pool: &PgPool,
    change: sqlx::query::Query<'_, Postgres, PgArguments>,
    audit: &AuditEntry,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let changed = change.execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
    if changed {
        insert_audit(&mut tx, audit).await?;
    }
    tx.commit().await.map_err(store_error)?;
    Ok(changed)
}

#[async_trait]
impl StoreReadiness for PostgresAdminStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }
}
