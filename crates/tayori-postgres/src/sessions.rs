//! The console's sessions on PostgreSQL (`console_sessions`), beside the tokens they belong to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tayori_app::ports::{AuditEntry, ConsoleSessionStore, SessionRecord, StoreError, TokenRecord};

use crate::admin::{PostgresAdminStore, insert_audit, parse_uuid, token_record};
use crate::errors::store_error;

#[async_trait]
impl ConsoleSessionStore for PostgresAdminStore {
    async fn create_session(
        &self,
        session: &SessionRecord,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "insert into console_sessions (session_sha256, token_id, created_at, last_seen_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(&session.session_sha256)
        .bind(parse_uuid(&session.token_id)?)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn session_by_hash(
        &self,
        session_sha256: &str,
    ) -> Result<Option<(SessionRecord, TokenRecord)>, StoreError> {
        let row = sqlx::query(
            "select t.*, s.session_sha256, s.created_at as session_created_at, \
                 s.last_seen_at as session_last_seen_at \
             from console_sessions s join admin_tokens t using (token_id) \
             where s.session_sha256 = $1",
        )
        .bind(session_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let token = token_record(&row)?;
        let session = SessionRecord {
            session_sha256: row.try_get("session_sha256").map_err(store_error)?,
            token_id: token.token_id.clone(),
            created_at: row.try_get("session_created_at").map_err(store_error)?,
            last_seen_at: row.try_get("session_last_seen_at").map_err(store_error)?,
        };
        Ok(Some((session, token)))
    }

    async fn touch_session(
        &self,
        session: &SessionRecord,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One statement: the session and its token's last use move together.
        sqlx::query(
            "with seen as (update console_sessions set last_seen_at = $2 \
                 where session_sha256 = $1 returning token_id) \
             update admin_tokens set last_used_at = $2 \
             where token_id = (select token_id from seen)",
        )
        .bind(&session.session_sha256)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn delete_session(&self, session_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("delete from console_sessions where session_sha256 = $1")
            .bind(session_sha256)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_expired_sessions(
        &self,
        idle_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "delete from console_sessions s where s.last_seen_at < $1 or s.created_at < $2 \
                 or exists (select 1 from admin_tokens t where t.token_id = s.token_id \
                     and (t.revoked_at is not null or t.expires_at <= $3))",
        )
        .bind(idle_before)
        .bind(created_before)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
