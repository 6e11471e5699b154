use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tayori_app::ports::{
    AttemptEnd, AttemptRecord, AttemptResult, Claim, ClaimRequest, DeliveryCursor, DeliveryPage,
    DeliveryQuery, DeliveryRecord, DeliveryStore, RecordOutcome, StoreError, UnkeyedRejection,
    UnkeyedRejectionRecord, refuse_nul,
};
use tayori_domain::{DeliveryId, DeliveryStatus, IdempotencyKey, Outcome, Subject, TenantId};

/// The delivery store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets readers (the console) work while a worker writes; FULL makes every
            // recorded outcome survive a power cut, not only a crash.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // One writer at a time: others wait for the lock instead of failing at once.
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(store_error)?;
        crate::MIGRATOR.run(&pool).await.map_err(|e| StoreError::Unexpected(e.into()))?;
        Ok(Self { pool })
    }

    /// The pool, for health checks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps sqlx errors: a busy or locked database and a lost pool are worth a retry.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(error.to_string())
        }
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without extended codes.
        sqlx::Error::Database(db)
            if db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6)) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        // SQLITE_TOOBIG (18): a value past the size limit is refused again however often.
        sqlx::Error::Database(db)
            if db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 18) =>
        {
            StoreError::Refused(error.to_string())
        }
        _ => StoreError::Unexpected(anyhow::Error::new(error)),
    }
}

/// SQLite keeps NUL in text, PostgreSQL does not: refused here too (the port's rule), so that an
/// event meets the same fate on both stores.
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column).map_err(store_error)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("{column} out of range: {value}")))
}

fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let value: Option<i64> = row.try_get(column).map_err(store_error)?;
    Ok(value.and_then(DateTime::from_timestamp_micros))
}

fn count(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column).map_err(store_error)?;
    Ok(u32::try_from(value).unwrap_or_default())
}

fn status(row: &SqliteRow) -> Result<DeliveryStatus, StoreError> {
    let raw: String = row.try_get("status").map_err(store_error)?;
    raw.parse().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))
}

fn delivery_id(row: &SqliteRow) -> Result<DeliveryId, StoreError> {
    let raw: String = row.try_get("delivery_id").map_err(store_error)?;
    DeliveryId::parse(&raw)
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("bad delivery id {raw:?}")))
}

fn delivery_record(row: &SqliteRow) -> Result<DeliveryRecord, StoreError> {
    let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
    Ok(DeliveryRecord {
        delivery_id: delivery_id(row)?,
        tenant: TenantId::parse(&tenant).map_err(|e| StoreError::Unexpected(e.into()))?,
        source: row.try_get("source").map_err(store_error)?,
        event_id: row.try_get("event_id").map_err(store_error)?,
        event_type: row.try_get("event_type").map_err(store_error)?,
        recipient: row.try_get("recipient").map_err(store_error)?,
        status: status(row)?,
        reason: row.try_get("reason").map_err(store_error)?,
        provider_message_id: row.try_get("provider_message_id").map_err(store_error)?,
        subject: row.try_get("subject").map_err(store_error)?,
        claim_count: count(row, "claim_count")?,
        duplicate_count: count(row, "duplicate_count")?,
        receive_count: count(row, "receive_count")?,
        lease_expires_at: optional_time(row, "lease_expires_at")?,
        event_json: row.try_get("event_json").map_err(store_error)?,
        raw_body: row.try_get("raw_body").map_err(store_error)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        decided_at: optional_time(row, "decided_at")?,
        reconciled_at: optional_time(row, "reconciled_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "tenant_id, source, event_id, delivery_id, event_type, recipient, \
    status, reason, provider_message_id, subject, claim_count, duplicate_count, receive_count, \
    lease_expires_at, \
    event_json, raw_body, created_at, updated_at, decided_at, reconciled_at";

fn lease_end(request: &ClaimRequest) -> DateTime<Utc> {
    request.now + chrono::Duration::from_std(request.lease).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let key = &request.key;
        refuse_nul(&[
            ("event_json", request.event_json.as_deref()),
            ("lease_owner", Some(&request.owner)),
        ])?;
        // The same single-statement claim as on PostgreSQL; SQLite runs it under its one write
        // lock, so concurrent claims are serialised and exactly one gets a row back.
        let claimed: Option<i64> = sqlx::query_scalar(
            "insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, \
                 recipient, status, claim_count, lease_owner, lease_expires_at, event_json, \
                 raw_body, raw_body_size, created_at, updated_at, receive_count) \
             values (?1, ?2, ?3, ?4, ?5, ?6, 'processing', 1, ?7, ?8, ?9, ?10, ?11, ?12, ?12, \
                 ?13) \
             on conflict (tenant_id, source, event_id) do update \
                 set claim_count = deliveries.claim_count + 1, \
                     lease_owner = excluded.lease_owner, \
                     lease_expires_at = excluded.lease_expires_at, \
                     updated_at = excluded.updated_at, \
                     receive_count = excluded.receive_count \
                 where deliveries.status = 'processing' \
                   and deliveries.lease_expires_at <= excluded.updated_at \
             returning claim_count",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .bind(key.delivery_id().to_string())
        .bind(request.event_type.as_ref().map(ToString::to_string))
        .bind(request.recipient.as_ref().map(ToString::to_string))
        .bind(request.owner.clone())
        .bind(micros(lease_end(request)))
        .bind(request.event_json.clone())
        .bind(request.raw_body.as_ref().map(|r| r.kept.clone()))
        .bind(request.raw_body.as_ref().map(|r| i64::try_from(r.original_len).unwrap_or(i64::MAX)))
        .bind(micros(request.now))
        .bind(i64::from(request.receive_count))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        if let Some(attempt) = claimed {
            return Ok(Claim::Claimed { attempt: u32::try_from(attempt).unwrap_or_default() });
        }

        let row = sqlx::query(
            "select status, lease_expires_at from deliveries \
             where tenant_id = ?1 and source = ?2 and event_id = ?3",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        let current = status(&row)?;
        if current.is_decided() {
            return Ok(Claim::AlreadyDecided { status: current });
        }
        let lease_expires_at = optional_time(&row, "lease_expires_at")?;
        Ok(Claim::InFlight { lease_expires_at: lease_expires_at.unwrap_or(request.now) })
    }

    async fn release(&self, key: &IdempotencyKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "update deliveries set lease_expires_at = ?4, updated_at = ?4 \
             where tenant_id = ?1 and source = ?2 and event_id = ?3 and status = 'processing'",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn record_outcome(
        &self,
        key: &IdempotencyKey,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        refuse_nul(&[
            ("reason", outcome.reason()),
            ("provider_message_id", outcome.provider_message_id()),
            ("subject", subject.map(Subject::as_str)),
        ])?;
        let updated = sqlx::query(
            "update deliveries \
             set status = ?4, reason = ?5, provider_message_id = ?6, \
                 subject = coalesce(?7, subject), lease_owner = null, lease_expires_at = null, \
                 decided_at = ?8, updated_at = ?8 \
             where tenant_id = ?1 and source = ?2 and event_id = ?3 and status = 'processing'",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .bind(outcome.status().as_str())
        .bind(outcome.reason().map(str::to_owned))
        .bind(outcome.provider_message_id().map(str::to_owned))
        .bind(subject.map(|s| s.as_str().to_owned()))
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 1 {
            return Ok(RecordOutcome::Recorded);
        }
        let current: Option<String> = sqlx::query_scalar(
            "select status from deliveries where tenant_id = ?1 and source = ?2 and event_id = ?3",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        match current.map(|s| s.parse::<DeliveryStatus>()) {
            Some(Ok(status)) => Ok(RecordOutcome::AlreadyDecided { status }),
            Some(Err(e)) => Err(StoreError::Unexpected(e.into())),
            None => Err(StoreError::Unexpected(anyhow::anyhow!(
                "no delivery for {key}: an outcome needs a claim first"
            ))),
        }
    }

    async fn record_duplicate(
        &self,
        key: &IdempotencyKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update deliveries set duplicate_count = duplicate_count + 1, updated_at = ?4 \
             where tenant_id = ?1 and source = ?2 and event_id = ?3",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn record_attempt_started(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at) \
             values (?1, ?2, ?3, ?4) on conflict do nothing",
        )
        .bind(key.tenant.to_string())
        .bind(key.delivery_id().to_string())
        .bind(i64::from(attempt))
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn record_attempt_finished(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        refuse_nul(&[("detail", Some(detail))])?;
        sqlx::query(
            "update delivery_attempts set finished_at = ?4, result = ?5, detail = ?6 \
             where tenant_id = ?1 and delivery_id = ?2 and attempt = ?3",
        )
        .bind(key.tenant.to_string())
        .bind(key.delivery_id().to_string())
        .bind(i64::from(attempt))
        .bind(micros(at))
        .bind(result.as_str())
        .bind(detail.to_owned())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn record_attempt_finished_and_outcome(
        &self,
        key: &IdempotencyKey,
        end: AttemptEnd<'_>,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        // Refused before either write, as PostgreSQL's one transaction refuses both.
        refuse_nul(&[
            ("detail", Some(end.detail)),
            ("reason", outcome.reason()),
            ("provider_message_id", outcome.provider_message_id()),
            ("subject", subject.map(Subject::as_str)),
        ])?;
        self.record_attempt_finished(key, end.attempt, end.result, end.detail, at).await?;
        self.record_outcome(key, outcome, subject, at).await
    }

    async fn record_unkeyed_rejection(
        &self,
        rejection: &UnkeyedRejection,
    ) -> Result<(), StoreError> {
        refuse_nul(&[("reason", Some(&rejection.reason))])?;
        sqlx::query(
            "insert into unkeyed_rejections (body_sha256, tenant_id, reason, raw_body, body_size, \
                 times_seen, first_seen_at, last_seen_at) \
             values (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6) \
             on conflict (body_sha256) do update \
                 set times_seen = unkeyed_rejections.times_seen + 1, \
                     last_seen_at = excluded.last_seen_at",
        )
        .bind(rejection.raw_body.sha256.clone())
        .bind(rejection.tenant.as_ref().map(ToString::to_string))
        .bind(rejection.reason.clone())
        .bind(rejection.raw_body.kept.clone())
        .bind(i64::try_from(rejection.raw_body.original_len).unwrap_or(i64::MAX))
        .bind(micros(rejection.now))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn delivery(
        &self,
        id: DeliveryId,
        tenants: Option<&[TenantId]>,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "select {DELIVERY_COLUMNS} from deliveries where delivery_id = "
        ));
        sql.push_bind(id.to_string());
        push_tenant_filter(&mut sql, tenants);
        let row = sql.build().fetch_optional(&self.pool).await.map_err(store_error)?;
        row.as_ref().map(delivery_record).transpose()
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        id: DeliveryId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "select attempt, started_at, finished_at, result, detail from delivery_attempts \
             where tenant_id = ?1 and delivery_id = ?2 order by attempt",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let result: Option<String> = row.try_get("result").map_err(store_error)?;
                Ok(AttemptRecord {
                    attempt: count(row, "attempt")?,
                    started_at: time(row, "started_at")?,
                    finished_at: optional_time(row, "finished_at")?,
                    result: result.as_deref().and_then(AttemptResult::parse),
                    detail: row.try_get("detail").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError> {
        let limit = query.limit.clamp(1, 500);
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("select {DELIVERY_COLUMNS} from deliveries where 1 = 1"));
        push_tenant_filter(&mut sql, query.tenants.as_deref());
        if let Some(status) = query.status {
            sql.push(" and status = ").push_bind(status.as_str());
        }
        if let Some(after) = &query.after {
            // Keyset pagination: rows strictly older than the last one shown.
            sql.push(" and (created_at, delivery_id) < (")
                .push_bind(micros(after.created_at))
                .push(", ")
                .push_bind(after.delivery_id.to_string())
                .push(")");
        }
        sql.push(" order by created_at desc, delivery_id desc limit ").push_bind(i64::from(limit));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(store_error)?;
        let deliveries = rows.iter().map(delivery_record).collect::<Result<Vec<_>, _>>()?;
        let next = (deliveries.len() == limit as usize).then(|| {
            let last = &deliveries[deliveries.len() - 1];
            DeliveryCursor { created_at: last.created_at, delivery_id: last.delivery_id }
        });
        Ok(DeliveryPage { deliveries, next })
    }

    async fn unkeyed_rejections(
        &self,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError> {
        let rows = sqlx::query(
            "select body_sha256, tenant_id, reason, raw_body, body_size, times_seen, \
                 first_seen_at, last_seen_at \
             from unkeyed_rejections order by last_seen_at desc limit ?1",
        )
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(UnkeyedRejectionRecord {
                    body_sha256: row.try_get("body_sha256").map_err(store_error)?,
                    tenant: row.try_get("tenant_id").map_err(store_error)?,
                    reason: row.try_get("reason").map_err(store_error)?,
                    raw_body: row.try_get("raw_body").map_err(store_error)?,
                    body_size: u64::from(count(row, "body_size")?),
                    times_seen: count(row, "times_seen")?,
                    first_seen_at: time(row, "first_seen_at")?,
                    last_seen_at: time(row, "last_seen_at")?,
                })
            })
            .collect()
    }
}

/// `and tenant_id in (...)`, or nothing when every tenant is in scope. An empty scope matches
/// nothing.
fn push_tenant_filter(sql: &mut QueryBuilder<Sqlite>, tenants: Option<&[TenantId]>) {
    let Some(tenants) = tenants else { return };
    if tenants.is_empty() {
        sql.push(" and 1 = 0");
        return;
    }
    sql.push(" and tenant_id in (");
    let mut list = sql.separated(", ");
    for tenant in tenants {
        list.push_bind(tenant.to_string());
    }
    sql.push(")");
}
