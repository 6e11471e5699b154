use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, QueryBuilder, Row};
use tayori_app::ports::{
    AttemptEnd, AttemptRecord, AttemptResult, Claim, ClaimRequest, DeliveryCursor, DeliveryPage,
    DeliveryQuery, DeliveryRecord, DeliveryStore, RecordOutcome, StoreError, UnkeyedRejection,
    UnkeyedRejectionRecord,
};
use tayori_domain::{DeliveryId, DeliveryStatus, IdempotencyKey, Outcome, Subject, TenantId};
use tokio::sync::Mutex;

use crate::PostgresConfig;
use crate::errors::store_error;
use crate::group_commit::{GroupCommit, WriteBatchStats};
use crate::listing::{push_older_than, push_status};
use crate::writes::{
    AttemptFinishedWrite, OutcomeWrite, WriteAnswer, WriteRequest, count, parse_status,
};

/// The delivery store on a PostgreSQL pool. Clones share the pool and the group committer.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The event path's writes go through it (`group_commit.rs`); reads and rare writes use
    /// the pool directly.
    writes: Arc<GroupCommit>,
    /// The health probe's own connection.
    probe: Arc<Probe>,
}

/// The health probe (`DeliveryStore::probe`) runs on a connection of its own, outside the
/// pool, so that a pool busy with the event path's work is not taken for an outage, and an
/// outage is seen as soon as a fresh connection cannot be made.
#[derive(Debug)]
struct Probe {
    /// How to connect (`None`: a store made from a pool probes through the pool).
    options: Option<PgConnectOptions>,
    connection: Mutex<Option<PgConnection>>,
}

/// The longest one probe may take, connecting included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Probe {
    /// Writes are possible: the server answers and is not a read-only standby (a failover can
    /// leave the URL on one).
    async fn check(&self, pool: &PgPool) -> Result<(), StoreError> {
        const SQL: &str = "select pg_is_in_recovery()";
        let Some(options) = &self.options else {
            let in_recovery: bool =
                sqlx::query_scalar(SQL).fetch_one(pool).await.map_err(store_error)?;
            return read_write(in_recovery);
        };
        let mut slot = self.connection.lock().await;
        let attempt = async {
            let connection = match slot.as_mut() {
                Some(connection) => connection,
                None => slot.insert(PgConnection::connect_with(options).await?),
            };
            sqlx::query_scalar::<_, bool>(SQL).fetch_one(connection).await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(Ok(in_recovery)) => read_write(in_recovery),
            Ok(Err(error)) => {
                // Connect again next time: the server may be back by then.
                *slot = None;
                Err(store_error(error))
            }
            Err(_elapsed) => {
                *slot = None;
                Err(StoreError::Unavailable(format!("no answer within {PROBE_TIMEOUT:?}")))
            }
        }
    }
}

/// Says once, at connect, when a server beyond this machine is reached without checking its
/// certificate: `prefer` (the default) and `require` encrypt but accept anyone's certificate.
fn warn_if_unverified(options: &PgConnectOptions) {
    use sqlx::postgres::PgSslMode;
    let local = options.get_socket().is_some()
        || matches!(options.get_host(), "localhost" | "127.0.0.1" | "::1");
    let mode = options.get_ssl_mode();
    if !local && !matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull) {
        tracing::warn!(
            host = options.get_host(),
            sslmode = ?mode,
            "the database server's certificate is not verified: set sslmode=verify-full and \
             sslrootcert in the database URL (docs/operations.md, Security)"
        );
    }
}

/// The `sslrootcert` file a database URL names, if any.
fn ssl_root_cert(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("sslrootcert=")).filter(|p| !p.is_empty())
}

fn read_write(in_recovery: bool) -> Result<(), StoreError> {
    if in_recovery {
        return Err(StoreError::Unavailable(
            "the server is a read-only standby (in recovery)".to_owned(),
        ));
    }
    Ok(())
}

impl PostgresStore {
    /// Connects a pool (without applying migrations). Every connection carries the session
    /// limits of `config.session` (timeouts, keepalive).
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        // sqlx reads the CA file at each handshake and reports a missing one without its path.
        if let Some(path) = ssl_root_cert(&config.url) {
            std::fs::metadata(path).map_err(|e| {
                StoreError::Unavailable(format!("sslrootcert {path} in the database URL: {e}"))
            })?;
        }
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(store_error)?
            .options(config.session.parameters());
        warn_if_unverified(&options);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(store_error)?;
        let writes = GroupCommit::new(
            pool.clone(),
            config.write_batches_in_flight,
            config.max_writes_per_batch,
        );
        let probe = Arc::new(Probe { options: Some(options), connection: Mutex::default() });
        Ok(Self { pool, writes: Arc::new(writes), probe })
    }

    /// Wraps an existing pool, with the default group commit settings (its probe goes through
    /// the pool).
    pub fn from_pool(pool: PgPool) -> Self {
        let defaults = PostgresConfig::new("");
        let writes = GroupCommit::new(
            pool.clone(),
            defaults.write_batches_in_flight,
            defaults.max_writes_per_batch,
        );
        let probe = Arc::new(Probe { options: None, connection: Mutex::default() });
        Self { pool, writes: Arc::new(writes), probe }
    }

    /// What the group committer has done so far (batches, writes, replays).
    pub fn write_batch_stats(&self) -> WriteBatchStats {
        self.writes.stats()
    }

    async fn submit_done(&self, request: WriteRequest) -> Result<(), StoreError> {
        match self.writes.submit(request).await? {
            WriteAnswer::Done => Ok(()),
            other => Err(wrong_answer("write", &other)),
        }
    }

    /// Applies the embedded migrations that are not applied yet, on a connection of its own
    /// without the statement and lock timeouts (a migration may rewrite a large table, or wait
    /// for the workers' locks); the connection is closed afterwards, not returned to the pool.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        let mut connection = self.pool.acquire().await?.detach();
        sqlx::query("set statement_timeout = 0").execute(&mut connection).await?;
        sqlx::query("set lock_timeout = 0").execute(&mut connection).await?;
        let migrated = crate::MIGRATOR.run(&mut connection).await;
        let _ = connection.close().await;
        migrated
    }

    /// The pool, for health checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn status(row: &PgRow, column: &str) -> Result<DeliveryStatus, StoreError> {
    let raw: String = row.try_get(column).map_err(store_error)?;
    parse_status(&raw)
}

fn wrong_answer(call: &str, answer: &WriteAnswer) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("{call} got the answer of another write: {answer:?}"))
}

fn delivery_record(row: &PgRow) -> Result<DeliveryRecord, StoreError> {
    let get_err = store_error;
    let tenant: String = row.try_get("tenant_id").map_err(get_err)?;
    Ok(DeliveryRecord {
        delivery_id: DeliveryId::from_uuid(row.try_get("delivery_id").map_err(get_err)?),
        tenant: TenantId::parse(&tenant).map_err(|e| StoreError::Unexpected(e.into()))?,
        source: row.try_get("source").map_err(get_err)?,
        event_id: row.try_get("event_id").map_err(get_err)?,
        event_type: row.try_get("event_type").map_err(get_err)?,
        recipient: row.try_get("recipient").map_err(get_err)?,
        status: status(row, "status")?,
        reason: row.try_get("reason").map_err(get_err)?,
        provider_message_id: row.try_get("provider_message_id").map_err(get_err)?,
        subject: row.try_get("subject").map_err(get_err)?,
        claim_count: count(row.try_get("claim_count").map_err(get_err)?),
        duplicate_count: count(row.try_get("duplicate_count").map_err(get_err)?),
        receive_count: count(row.try_get("receive_count").map_err(get_err)?),
        lease_expires_at: row.try_get("lease_expires_at").map_err(get_err)?,
        event_json: row.try_get("event_json").map_err(get_err)?,
        raw_body: row.try_get("raw_body").map_err(get_err)?,
        created_at: row.try_get("created_at").map_err(get_err)?,
        updated_at: row.try_get("updated_at").map_err(get_err)?,
        decided_at: row.try_get("decided_at").map_err(get_err)?,
        reconciled_at: row.try_get("reconciled_at").map_err(get_err)?,
    })
}

const DELIVERY_COLUMNS: &str = "tenant_id, source, event_id, delivery_id, event_type, recipient, \
    status, reason, provider_message_id, subject, claim_count, duplicate_count, receive_count, \
    lease_expires_at, \
    event_json, raw_body, created_at, updated_at, decided_at, reconciled_at";

#[async_trait]
impl DeliveryStore for PostgresStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        match self.writes.submit(WriteRequest::Claim(request.clone())).await? {
            WriteAnswer::Claim(claim) => Ok(claim),
            other => Err(wrong_answer("claim", &other)),
        }
    }

    async fn claim_and_start_attempt(&self, request: &ClaimRequest) -> Result<Claim, StoreError> {
        match self.writes.submit(WriteRequest::ClaimToSend(request.clone())).await? {
            WriteAnswer::Claim(claim) => Ok(claim),
            other => Err(wrong_answer("claim_and_start_attempt", &other)),
        }
    }

    async fn release(&self, key: &IdempotencyKey, at: DateTime<Utc>) -> Result<(), StoreError> {
        // Rare (after transient failures): its own statement, outside the batches.
        sqlx::query(
            "update deliveries set lease_expires_at = $4, updated_at = $4 \
             where tenant_id = $1 and source = $2 and event_id = $3 and status = 'processing'",
        )
        .bind(key.tenant.to_string())
        .bind(key.source.to_string())
        .bind(key.id.to_string())
        .bind(at)
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
        let request = WriteRequest::Outcome(outcome_write(key, outcome, subject, at));
        match self.writes.submit(request).await? {
            WriteAnswer::Outcome(recorded) => Ok(recorded),
            other => Err(wrong_answer("record_outcome", &other)),
        }
    }

    async fn record_duplicate(
        &self,
        key: &IdempotencyKey,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.submit_done(WriteRequest::Duplicate { key: key.clone(), at }).await
    }

    async fn record_attempt_started(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.submit_done(WriteRequest::AttemptStarted { key: key.clone(), attempt, at }).await
    }

    async fn record_attempt_finished(
        &self,
        key: &IdempotencyKey,
        attempt: u32,
        result: AttemptResult,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let end = AttemptEnd { attempt, result, detail };
        self.submit_done(WriteRequest::AttemptFinished(attempt_finished_write(key, end, at))).await
    }

    async fn record_attempt_finished_and_outcome(
        &self,
        key: &IdempotencyKey,
        end: AttemptEnd<'_>,
        outcome: &Outcome,
        subject: Option<&Subject>,
        at: DateTime<Utc>,
    ) -> Result<RecordOutcome, StoreError> {
        // One write, so one wait for a group commit instead of two (and one transaction).
        let request = WriteRequest::AttemptFinishedAndOutcome(
            attempt_finished_write(key, end, at),
            outcome_write(key, outcome, subject, at),
        );
        match self.writes.submit(request).await? {
            WriteAnswer::Outcome(recorded) => Ok(recorded),
            other => Err(wrong_answer("record_attempt_finished_and_outcome", &other)),
        }
    }

    async fn record_unkeyed_rejection(
        &self,
        rejection: &UnkeyedRejection,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into unkeyed_rejections (body_sha256, tenant_id, reason, raw_body, body_size, \
                 times_seen, first_seen_at, last_seen_at) \
             values ($1, $2, $3, $4, $5, 1, $6, $6) \
             on conflict (body_sha256) do update \
                 set times_seen = unkeyed_rejections.times_seen + 1, last_seen_at = excluded.last_seen_at",
        )
        .bind(rejection.raw_body.sha256.clone())
        .bind(rejection.tenant.as_ref().map(ToString::to_string))
        .bind(rejection.reason.clone())
        .bind(rejection.raw_body.kept.clone())
        .bind(i32::try_from(rejection.raw_body.original_len).unwrap_or(i32::MAX))
        .bind(rejection.now)
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
        let tenant_names: Option<Vec<String>> =
            tenants.map(|t| t.iter().map(ToString::to_string).collect());
        let sql = format!(
            "select {DELIVERY_COLUMNS} from deliveries \
             where delivery_id = $1 and ($2::text[] is null or tenant_id = any($2))"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(tenant_names)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(delivery_record).transpose()
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        id: DeliveryId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "select attempt, started_at, finished_at, result, detail from delivery_attempts \
             where tenant_id = $1 and delivery_id = $2 order by attempt",
        )
        .bind(tenant.to_string())
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let result: Option<String> = row.try_get("result").map_err(store_error)?;
                Ok(AttemptRecord {
                    attempt: count(row.try_get("attempt").map_err(store_error)?),
                    started_at: row.try_get("started_at").map_err(store_error)?,
                    finished_at: row.try_get("finished_at").map_err(store_error)?,
                    result: result.as_deref().and_then(AttemptResult::parse),
                    detail: row.try_get("detail").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.probe.check(&self.pool).await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError> {
        let limit = query.limit.clamp(1, 500);
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("select {DELIVERY_COLUMNS} from deliveries where true"));
        if let Some(tenants) = &query.tenants {
            sql.push(" and tenant_id = any(")
                .push_bind(tenants.iter().map(ToString::to_string).collect::<Vec<_>>())
                .push(")");
        }
        if let Some(status) = query.status {
            push_status(&mut sql, status);
        }
        if let Some(after) = &query.after {
            push_older_than(&mut sql, after);
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
             from unkeyed_rejections order by last_seen_at desc limit $1",
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
                    body_size: u64::try_from(
                        row.try_get::<i32, _>("body_size").map_err(store_error)?,
                    )
                    .unwrap_or_default(),
                    times_seen: count(row.try_get("times_seen").map_err(store_error)?),
                    first_seen_at: row.try_get("first_seen_at").map_err(store_error)?,
                    last_seen_at: row.try_get("last_seen_at").map_err(store_error)?,
                })
            })
            .collect()
    }
}

fn attempt_finished_write(
    key: &IdempotencyKey,
    end: AttemptEnd<'_>,
    at: DateTime<Utc>,
) -> AttemptFinishedWrite {
    AttemptFinishedWrite {
        key: key.clone(),
        attempt: end.attempt,
        result: end.result,
        detail: end.detail.to_owned(),
        at,
    }
}

fn outcome_write(
    key: &IdempotencyKey,
    outcome: &Outcome,
    subject: Option<&Subject>,
    at: DateTime<Utc>,
) -> OutcomeWrite {
    OutcomeWrite { key: key.clone(), outcome: outcome.clone(), subject: subject.cloned(), at }
}
