//! The suppression list on PostgreSQL: the tenant's entries that the worker checks before
//! rendering (operators add them through the admin API; the SES feedback loop will add its own).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::postgres::PgPool;
use tayori_app::admin::COMMAND_LINE_TOKEN_ID;
use tayori_app::ports::{
    AuditEntry, MessageClass, StoreError, Suppression, SuppressionError, SuppressionList,
    UnsubscribeStore,
};
use tayori_domain::{EmailAddress, TenantId, UnsubscribeClaim};

use crate::admin::insert_audit;
use crate::errors::store_error;

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

#[async_trait]
impl UnsubscribeStore for PostgresSuppressions {
    async fn record_unsubscribe(
        &self,
        claim: &UnsubscribeClaim,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let reason =
            format!("unsubscribed with the one-click link of a {} email", claim.event_type);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The unique index (tenant, lower(address), class) makes a second click a no-op.
        let added = sqlx::query(
            "insert into suppressions (tenant_id, address, message_class, reason, cause, \
                 created_by, created_at) values ($1, $2, 'subscription', $3, 'unsubscribe', \
                 'one-click-unsubscribe', $4) \
             on conflict do nothing",
        )
        .bind(claim.tenant.as_str())
        .bind(claim.address.as_str())
        .bind(&reason)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected()
            == 1;
        if added {
            let audit = AuditEntry {
                at: now,
                token_id: COMMAND_LINE_TOKEN_ID.into(),
                role: "one-click-unsubscribe".into(),
                action: "suppression.add".into(),
                tenant: Some(claim.tenant.clone()),
                object_kind: Some("suppression".into()),
                object_id: Some(claim.address.masked()),
                reason: Some(reason),
                detail: json!({
                    "cause": "unsubscribe",
                    "message_class": "subscription",
                    "event_type": claim.event_type.as_str(),
                    "unsubscribe_token_sha256": token_sha256,
                }),
            };
            insert_audit(&mut tx, &audit).await?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(added)
    }
}
