//! The store's writes on the event path, as values, and how each is executed on its own.
//!
//! [`WriteRequest`] is what the group committer (`group_commit.rs`) queues and batches; the
//! functions here are the one-statement-per-call SQL it falls back on (a batch of one, or a
//! batch that failed and is replayed write by write so that each caller gets its own answer).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tayori_app::ports::{AttemptResult, Claim, ClaimRequest, RecordOutcome, StoreError};
use tayori_domain::{DeliveryStatus, IdempotencyKey, Outcome, Subject};

use crate::errors::store_error;

/// One write of the event path, owned so that it can wait in a queue.
#[derive(Debug, Clone)]
pub(crate) enum WriteRequest {
    Claim(ClaimRequest),
    /// A claim that, when it is the key's first, also starts send attempt 1 at the claim's
    /// `now`, in the same transaction; answered like a claim.
    ClaimToSend(ClaimRequest),
    AttemptStarted {
        key: IdempotencyKey,
        attempt: u32,
        at: DateTime<Utc>,
    },
    AttemptFinished(AttemptFinishedWrite),
    Outcome(OutcomeWrite),
    /// Both, in one transaction; answered like the outcome.
    AttemptFinishedAndOutcome(AttemptFinishedWrite, OutcomeWrite),
    Duplicate {
        key: IdempotencyKey,
        at: DateTime<Utc>,
    },
}

/// How a send attempt ended.
#[derive(Debug, Clone)]
pub(crate) struct AttemptFinishedWrite {
    pub(crate) key: IdempotencyKey,
    pub(crate) attempt: u32,
    pub(crate) result: AttemptResult,
    pub(crate) detail: String,
    pub(crate) at: DateTime<Utc>,
}

/// A delivery's outcome.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeWrite {
    pub(crate) key: IdempotencyKey,
    pub(crate) outcome: Outcome,
    pub(crate) subject: Option<Subject>,
    pub(crate) at: DateTime<Utc>,
}

impl WriteRequest {
    /// The key whose rows the write touches (writes of different keys touch different rows).
    pub(crate) fn key(&self) -> &IdempotencyKey {
        match self {
            WriteRequest::Claim(request) | WriteRequest::ClaimToSend(request) => &request.key,
            WriteRequest::AttemptStarted { key, .. } | WriteRequest::Duplicate { key, .. } => key,
            WriteRequest::AttemptFinished(finished)
            | WriteRequest::AttemptFinishedAndOutcome(finished, _) => &finished.key,
            WriteRequest::Outcome(outcome) => &outcome.key,
        }
    }

    /// The claim this write makes, if any, and whether it starts the first attempt.
    pub(crate) fn claim(&self) -> Option<(&ClaimRequest, bool)> {
        match self {
            WriteRequest::Claim(request) => Some((request, false)),
            WriteRequest::ClaimToSend(request) => Some((request, true)),
            _ => None,
        }
    }

    /// The attempt result this write records, if any.
    pub(crate) fn attempt_finished(&self) -> Option<&AttemptFinishedWrite> {
        match self {
            WriteRequest::AttemptFinished(finished)
            | WriteRequest::AttemptFinishedAndOutcome(finished, _) => Some(finished),
            _ => None,
        }
    }

    /// The outcome this write records, if any.
    pub(crate) fn outcome(&self) -> Option<&OutcomeWrite> {
        match self {
            WriteRequest::Outcome(outcome)
            | WriteRequest::AttemptFinishedAndOutcome(_, outcome) => Some(outcome),
            _ => None,
        }
    }
}

/// The answer to one write, once it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteAnswer {
    Claim(Claim),
    Outcome(RecordOutcome),
    Done,
}

/// The three columns of the `deliveries` primary key.
pub(crate) type KeyColumns = (String, String, String);

pub(crate) fn key_columns(key: &IdempotencyKey) -> KeyColumns {
    (key.tenant.to_string(), key.source.to_string(), key.id.to_string())
}

pub(crate) fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

pub(crate) fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

pub(crate) fn parse_status(raw: &str) -> Result<DeliveryStatus, StoreError> {
    raw.parse().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))
}

pub(crate) fn lease_end(request: &ClaimRequest) -> DateTime<Utc> {
    request.now + chrono::Duration::from_std(request.lease).unwrap_or(chrono::Duration::MAX)
}

/// What a claim that inserted or took over nothing finds: decided, or leased by someone else.
pub(crate) fn lost_claim(
    status: &str,
    lease_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Claim, StoreError> {
    let current = parse_status(status)?;
    if current.is_decided() {
        return Ok(Claim::AlreadyDecided { status: current });
    }
    Ok(Claim::InFlight { lease_expires_at: lease_expires_at.unwrap_or(now) })
}

/// What an outcome that updated nothing finds: the delivery was decided before, or never
/// claimed (a bug in the caller).
pub(crate) fn outcome_not_recorded(
    key: &IdempotencyKey,
    current: Option<&str>,
) -> Result<RecordOutcome, StoreError> {
    match current {
        Some(status) => Ok(RecordOutcome::AlreadyDecided { status: parse_status(status)? }),
        None => Err(StoreError::Unexpected(anyhow::anyhow!(
            "no delivery for {key}: an outcome needs a claim first"
        ))),
    }
}

/// Executes one write in its own statements and commits (autocommit).
pub(crate) async fn execute_one(
    pool: &PgPool,
    request: &WriteRequest,
) -> Result<WriteAnswer, StoreError> {
    match request {
        WriteRequest::Claim(request) => claim(pool, request, false).await.map(WriteAnswer::Claim),
        WriteRequest::ClaimToSend(request) => {
            claim(pool, request, true).await.map(WriteAnswer::Claim)
        }
        WriteRequest::AttemptStarted { key, attempt, at } => {
            attempt_started(pool, key, *attempt, *at).await.map(|()| WriteAnswer::Done)
        }
        WriteRequest::AttemptFinished(finished) => {
            let mut conn = pool.acquire().await.map_err(store_error)?;
            attempt_finished(&mut conn, finished).await.map(|()| WriteAnswer::Done)
        }
        WriteRequest::Outcome(outcome) => {
            let mut conn = pool.acquire().await.map_err(store_error)?;
            record_outcome(&mut conn, outcome).await.map(WriteAnswer::Outcome)
        }
        WriteRequest::AttemptFinishedAndOutcome(finished, outcome) => {
            let mut tx = pool.begin().await.map_err(store_error)?;
            attempt_finished(&mut tx, finished).await?;
            let recorded = record_outcome(&mut tx, outcome).await?;
            tx.commit().await.map_err(store_error)?;
            Ok(WriteAnswer::Outcome(recorded))
        }
        WriteRequest::Duplicate { key, at } => {
            duplicate(pool, key, *at).await.map(|()| WriteAnswer::Done)
        }
    }
}

/// The claim statement: see [`crate::batch`] for the batched form, which must stay equivalent.
/// With `start_attempt`, a first claim (a new row, `claim_count` 1) also inserts send attempt 1,
/// in the same statement.
async fn claim(
    pool: &PgPool,
    request: &ClaimRequest,
    start_attempt: bool,
) -> Result<Claim, StoreError> {
    let key = &request.key;
    // One statement decides: a new key is inserted; a processing key whose lease has passed
    // is taken over; anything else is left alone and returns no row. Concurrent claims of
    // one key serialise on the row, so exactly one of them gets a row back. The attempt's
    // foreign key is checked at the end of the statement, when the delivery row exists.
    let claimed: Option<i32> = sqlx::query_scalar(
        "with claimed as ( \
             insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, \
                 recipient, status, claim_count, lease_owner, lease_expires_at, event_json, \
                 raw_body, raw_body_size, created_at, updated_at, receive_count) \
             values ($1, $2, $3, $4, $5, $6, 'processing', 1, $7, $8, $9, $10, $11, $12, $12, \
                 $13) \
             on conflict (tenant_id, source, event_id) do update \
                 set claim_count = deliveries.claim_count + 1, \
                     lease_owner = excluded.lease_owner, \
                     lease_expires_at = excluded.lease_expires_at, \
                     updated_at = excluded.updated_at, \
                     receive_count = excluded.receive_count \
                 where deliveries.status = 'processing' \
                   and deliveries.lease_expires_at <= excluded.updated_at \
             returning claim_count), \
         started as ( \
             insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at) \
             select $1, $4, 1, $12 from claimed where $14 and claim_count = 1 \
             on conflict do nothing) \
         select claim_count from claimed",
    )
    .bind(key.tenant.to_string())
    .bind(key.source.to_string())
    .bind(key.id.to_string())
    .bind(key.delivery_id().as_uuid())
    .bind(request.event_type.as_ref().map(ToString::to_string))
    .bind(request.recipient.as_ref().map(ToString::to_string))
    .bind(request.owner.clone())
    .bind(lease_end(request))
    .bind(request.event_json.clone())
    .bind(request.raw_body.as_ref().map(|r| r.kept.clone()))
    .bind(request.raw_body.as_ref().map(|r| i32::try_from(r.original_len).unwrap_or(i32::MAX)))
    .bind(request.now)
    .bind(to_i32(request.receive_count))
    .bind(start_attempt)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    if let Some(attempt) = claimed {
        return Ok(Claim::Claimed { attempt: count(attempt) });
    }

    let (status, lease_expires_at): (String, Option<DateTime<Utc>>) = sqlx::query_as(
        "select status, lease_expires_at from deliveries \
         where tenant_id = $1 and source = $2 and event_id = $3",
    )
    .bind(key.tenant.to_string())
    .bind(key.source.to_string())
    .bind(key.id.to_string())
    .fetch_one(pool)
    .await
    .map_err(store_error)?;
    lost_claim(&status, lease_expires_at, request.now)
}

async fn record_outcome(
    conn: &mut PgConnection,
    write: &OutcomeWrite,
) -> Result<RecordOutcome, StoreError> {
    let OutcomeWrite { key, outcome, subject, at } = write;
    let updated = sqlx::query(
        "update deliveries \
         set status = $4, reason = $5, provider_message_id = $6, \
             subject = coalesce($7, subject), lease_owner = null, lease_expires_at = null, \
             decided_at = $8, updated_at = $8 \
         where tenant_id = $1 and source = $2 and event_id = $3 and status = 'processing'",
    )
    .bind(key.tenant.to_string())
    .bind(key.source.to_string())
    .bind(key.id.to_string())
    .bind(outcome.status().as_str())
    .bind(outcome.reason().map(str::to_owned))
    .bind(outcome.provider_message_id().map(str::to_owned))
    .bind(subject.as_ref().map(|s| s.as_str().to_owned()))
    .bind(*at)
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    if updated.rows_affected() == 1 {
        return Ok(RecordOutcome::Recorded);
    }
    let current: Option<String> = sqlx::query_scalar(
        "select status from deliveries where tenant_id = $1 and source = $2 and event_id = $3",
    )
    .bind(key.tenant.to_string())
    .bind(key.source.to_string())
    .bind(key.id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    outcome_not_recorded(key, current.as_deref())
}

async fn duplicate(
    pool: &PgPool,
    key: &IdempotencyKey,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update deliveries set duplicate_count = duplicate_count + 1, updated_at = $4 \
         where tenant_id = $1 and source = $2 and event_id = $3",
    )
    .bind(key.tenant.to_string())
    .bind(key.source.to_string())
    .bind(key.id.to_string())
    .bind(at)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

async fn attempt_started(
    pool: &PgPool,
    key: &IdempotencyKey,
    attempt: u32,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // A retried call after a lost answer finds its own row: keep the first start time.
    sqlx::query(
        "insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at) \
         values ($1, $2, $3, $4) on conflict do nothing",
    )
    .bind(key.tenant.to_string())
    .bind(key.delivery_id().as_uuid())
    .bind(to_i32(attempt))
    .bind(at)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

async fn attempt_finished(
    conn: &mut PgConnection,
    write: &AttemptFinishedWrite,
) -> Result<(), StoreError> {
    let AttemptFinishedWrite { key, attempt, result, detail, at } = write;
    sqlx::query(
        "update delivery_attempts set finished_at = $4, result = $5, detail = $6 \
         where tenant_id = $1 and delivery_id = $2 and attempt = $3",
    )
    .bind(key.tenant.to_string())
    .bind(key.delivery_id().as_uuid())
    .bind(to_i32(*attempt))
    .bind(*at)
    .bind(result.as_str())
    .bind(detail.clone())
    .execute(&mut *conn)
    .await
    .map_err(store_error)?;
    Ok(())
}
