//! The suppression list on PostgreSQL: the tenant's entries that the worker checks before
//! rendering (operators add them through the admin API; the SES feedback loop will add its own).

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use tayori_app::ports::{MessageClass, Suppression, SuppressionError, SuppressionList};
use tayori_domain::{EmailAddress, TenantId};

/// The tenants' suppression lists in the `suppressions` table.
#[derive(Debug, Clone)]
pub struct PostgresSuppressions {
    pool: PgPool,
}

impl PostgresSuppressions {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SuppressionList for PostgresSuppressions {
    async fn check(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        class: MessageClass,
    ) -> Result<Option<Suppression>, SuppressionError> {
        // Without regard to case (see the migration). An entry without a class applies to every
        // class and wins over one limited to this class (its reason is the stronger one).
        let reason: Option<String> = sqlx::query_scalar(
            "select reason from suppressions \
             where tenant_id = $1 and lower(address) = lower($2) \
                 and (message_class is null or message_class = $3) \
             order by message_class nulls first, created_at limit 1",
        )
        .bind(tenant.as_str())
        .bind(address.as_str())
        .bind(class.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| SuppressionError::Unavailable(e.to_string()))?;
        Ok(reason.map(|reason| Suppression { reason }))
    }
}
