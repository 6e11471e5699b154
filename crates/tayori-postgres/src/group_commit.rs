//! Group commit: the event path's writes from all concurrent callers, committed together.
//!
//! Each worker task handles one event top-down and awaits each store call in turn; with a
//! hundred events in flight that is a few hundred small writes a second per core, each its own
//! statement and commit, and PostgreSQL's per-statement and per-commit work was the worker's
//! bottleneck (`docs/benchmarks.md`). Here every write goes into a queue instead
//! (`coalesce.rs`); a few writer tasks (`PostgresConfig::write_batches_in_flight`) each take
//! everything queued (up to `max_writes_per_batch`), execute it as one transaction of set-based
//! statements (`batch.rs`), commit once, and then answer each caller. There is no timer: a
//! write that arrives while a writer is free goes at once (alone, as its own statement); writes
//! that arrive while the writers are busy wait for the next free one, so batches grow with the
//! load and the latency stays one transaction or two.
//!
//! What callers can rely on is unchanged: a call returns only after its write is committed (so
//! the attempt row is durable before the send, as `docs/idempotency.md` requires), and it gets
//! the answer its own statement would have given. A batch that meets a row another session holds
//! (an operator's open transaction) gives up on it within 200 ms and runs again skipping the
//! rows held, answering their writes as unavailable (`batch.rs`), so that such a row holds up
//! only its own key. If a batch
//! fails before its commit (a bad row, a deadlock with another worker's batch), nothing of it
//! happened, and its writes are replayed one by one, in arrival order, so that only the bad
//! write's caller sees an error. If
//! the connection fails during the commit, whether the batch happened is unknown, and every
//! caller in it gets the error, as each would from its own statement.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;
use tayori_app::ports::StoreError;
use tracing::warn;

use crate::batch::{BatchError, copy_error, execute_batch};
use crate::coalesce::{Coalesce, Coalescer};
use crate::errors::store_error;
use crate::writes::{WriteAnswer, WriteRequest, execute_one};

/// What the group committer has done since the store was connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteBatchStats {
    /// Transactions (or single statements) the writers ran.
    pub batches: u64,
    /// Writes they carried: `writes / batches` is the mean batch size.
    pub writes: u64,
    /// Batches that failed before their commit and were replayed write by write.
    pub replayed: u64,
}

/// The queue and its writers (`coalesce.rs`). The writers start with the first write (inside
/// the caller's runtime) and stop when the last clone of the store is dropped.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    writes: Coalescer<Writes>,
}

impl GroupCommit {
    pub(crate) fn new(pool: PgPool, writers: usize, max_writes_per_batch: usize) -> Self {
        let writes = Writes { pool, replayed: AtomicU64::new(0) };
        Self { writes: Coalescer::new(writes, writers, max_writes_per_batch) }
    }

    /// Queues a write and waits until it is committed (or failed).
    pub(crate) async fn submit(&self, request: WriteRequest) -> Result<WriteAnswer, StoreError> {
        self.writes.submit(request).await
    }

    pub(crate) fn stats(&self) -> WriteBatchStats {
        let counters = self.writes.counters();
        WriteBatchStats {
            batches: counters.batches.load(Ordering::Relaxed),
            writes: counters.items.load(Ordering::Relaxed),
            replayed: self.writes.handler().replayed.load(Ordering::Relaxed),
        }
    }
}

/// How writes are executed: alone as their own statement, together as one transaction.
#[derive(Debug)]
struct Writes {
    pool: PgPool,
    replayed: AtomicU64,
}

impl Coalesce for Writes {
    type Request = WriteRequest;
    type Answer = Result<WriteAnswer, StoreError>;

    async fn one(&self, request: &WriteRequest) -> Self::Answer {
        tayori_app::telemetry::store_write_batch(1);
        execute_one(&self.pool, request).await
    }

    async fn many(&self, requests: &[WriteRequest]) -> Vec<Self::Answer> {
        tayori_app::telemetry::store_write_batch(requests.len());
        match execute_batch(&self.pool, requests).await {
            Ok(answers) => answers,
            Err(BatchError::NotApplied(error)) => {
                self.replayed.fetch_add(1, Ordering::Relaxed);
                tayori_app::telemetry::store_write_batch_replayed();
                warn!(
                    error = %error,
                    writes = requests.len(),
                    "a batch of store writes failed before its commit; replaying them one by one"
                );
                // In arrival order, one after another, as the batch would have applied them.
                let mut answers = Vec::with_capacity(requests.len());
                for request in requests {
                    answers.push(execute_one(&self.pool, request).await);
                }
                answers
            }
            Err(BatchError::Unknown(error)) => {
                let error = store_error(error);
                requests.iter().map(|_| Err(copy_error(&error))).collect()
            }
        }
    }

    fn stopped(&self) -> Self::Answer {
        Err(StoreError::Unavailable("the store's writer stopped before answering".into()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use tayori_app::ports::{Claim, ClaimRequest};
    use tayori_domain::{EventId, EventSource, IdempotencyKey, TenantId};

    use super::*;

    fn key(id: &str) -> IdempotencyKey {
        IdempotencyKey::new(
            TenantId::parse("acme-invest").unwrap(),
            EventSource::parse("acme/accounts").unwrap(),
            EventId::parse(id).unwrap(),
        )
    }

    /// Worker w1's first claim of `id`, leased for a minute.
    fn claim(id: &str, now: chrono::DateTime<Utc>) -> ClaimRequest {
        ClaimRequest {
            key: key(id),
            event_type: None,
            recipient: None,
            event_json: None,
            raw_body: None,
            owner: "w1".into(),
            receive_count: 1,
            lease: Duration::from_secs(60),
            now,
        }
    }

    /// A batch the database refuses because of one write is replayed write by write: the
    /// others are committed and answered as usual, and only that write's caller gets the error.
    #[tokio::test]
    async fn one_refused_write_fails_only_its_own_caller() {
        let config = crate::testing::fresh_database().await;
        let pool = PgPool::connect(&config.url).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().unwrap();
        let claim = claim("good", now);
        let requests = [
            WriteRequest::Claim(claim),
            WriteRequest::AttemptStarted { key: key("unclaimed"), attempt: 1, at: now },
            WriteRequest::Duplicate { key: key("good"), at: now },
        ];
        let writes = Writes { pool: pool.clone(), replayed: AtomicU64::new(0) };
        let answers = writes.many(&requests).await;

        assert_eq!(answers.len(), 3);
        let mut answers = answers.into_iter();
        let claimed = answers.next().unwrap().expect("the good claim is committed");
        assert_eq!(claimed, WriteAnswer::Claim(Claim::Claimed { attempt: 1 }));
        let refused = answers.next().unwrap().expect_err("the bad write fails");
        assert!(refused.to_string().contains("foreign key"), "{refused}");
        assert_eq!(answers.next().unwrap().unwrap(), WriteAnswer::Done);
        assert_eq!(writes.replayed.load(Ordering::Relaxed), 1);
        let duplicates: i32 =
            sqlx::query_scalar("select duplicate_count from deliveries where event_id = 'good'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(duplicates, 1, "the replay applied the duplicate once");
    }

    /// A row another session holds locked (an operator's open transaction) holds up only its
    /// own key's write, and not for the session's lock_timeout: the batch gives up on it,
    /// answers it as unavailable (to be retried), and commits the other keys' writes while the
    /// lock is still held, though the locked key's write came first.
    #[tokio::test]
    async fn a_locked_row_holds_up_only_its_own_keys_write() {
        let config = crate::testing::fresh_database().await;
        let options: sqlx::postgres::PgConnectOptions = config.url.parse().unwrap();
        // A session limit longer than the test lets the batch take.
        let pool = PgPool::connect_with(options.options([("lock_timeout", "8s")])).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().unwrap();
        let ids = ["locked", "free-1", "free-2", "free-3"];
        let writes = Writes { pool: pool.clone(), replayed: AtomicU64::new(0) };
        for id in ids {
            writes.one(&WriteRequest::Claim(claim(id, now))).await.unwrap();
        }
        let mut locker = pool.begin().await.unwrap();
        sqlx::query("select 1 from deliveries where event_id = 'locked' for update")
            .execute(&mut *locker)
            .await
            .unwrap();

        let requests: Vec<WriteRequest> =
            ids.iter().map(|id| WriteRequest::Duplicate { key: key(id), at: now }).collect();
        let answers = tokio::time::timeout(Duration::from_secs(4), writes.many(&requests))
            .await
            .expect("the batch waited for a lock another session holds");
        let counted = |id: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i32>(
                    "select duplicate_count from deliveries where event_id = $1",
                )
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        let mut answers = answers.into_iter();
        let locked = answers.next().unwrap().expect_err("the locked key's write is not made");
        assert!(matches!(locked, StoreError::Unavailable(_)), "to be retried: {locked:?}");
        for (id, answer) in ids[1..].iter().zip(answers) {
            assert_eq!(answer.unwrap(), WriteAnswer::Done);
            assert_eq!(counted(id).await, 1, "{id} committed while the other row is locked");
        }
        assert_eq!(writes.replayed.load(Ordering::Relaxed), 0, "nothing to replay");
        locker.commit().await.unwrap();
        assert_eq!(counted("locked").await, 0);
    }
}
