//! Group commit: the event path's writes from all concurrent callers, committed together.
//!
//! Each worker task handles one event top-down and awaits each store call in turn; with a
//! hundred events in flight that is a few hundred small writes a second per core, each its own
//! statement and commit, and PostgreSQL's per-statement and per-commit work was the worker's
//! bottleneck (`docs/benchmarks.md`). Here every write goes into a queue instead; a few writer
//! tasks (`PostgresConfig::write_batches_in_flight`) each take everything queued (up to
//! `max_writes_per_batch`), execute it as one transaction of set-based statements
//! (`batch.rs`), commit once, and then answer each caller. There is no timer: a write that
//! arrives while a writer is free goes at once (alone, as its own statement); writes that
//! arrive while the writers are busy wait for the next free one, so batches grow with the load
//! and the latency stays one transaction or two.
//!
//! What callers can rely on is unchanged: a call returns only after its write is committed (so
//! the attempt row is durable before the send, as `docs/idempotency.md` requires), and it gets
//! the answer its own statement would have given. If a batch fails before its commit (a bad
//! row, a deadlock with another worker's batch), nothing of it happened, and its writes are
//! replayed one by one, in arrival order, so that only the bad write's caller sees an error. If the connection
//! fails during the commit, whether the batch happened is unknown, and every caller in it gets
//! the error, as each would from its own statement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::PgPool;
use tayori_app::ports::StoreError;
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::warn;

use crate::batch::{BatchError, copy_error, execute_batch};
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

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    replayed: AtomicU64,
}

struct Write {
    request: WriteRequest,
    reply: oneshot::Sender<Result<WriteAnswer, StoreError>>,
}

/// The queue and its writers. The writers start with the first write (inside the caller's
/// runtime) and stop when the last clone of the store is dropped.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    pool: PgPool,
    queue: OnceLock<mpsc::UnboundedSender<Write>>,
    writers: usize,
    max_writes_per_batch: usize,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.request.fmt(f)
    }
}

impl GroupCommit {
    pub(crate) fn new(pool: PgPool, writers: usize, max_writes_per_batch: usize) -> Self {
        Self {
            pool,
            queue: OnceLock::new(),
            writers: writers.max(1),
            max_writes_per_batch: max_writes_per_batch.max(1),
            counters: Arc::default(),
        }
    }

    /// Queues a write and waits until it is committed (or failed).
    pub(crate) async fn submit(&self, request: WriteRequest) -> Result<WriteAnswer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.get_or_init(|| self.start_writers());
        if let Err(mpsc::error::SendError(write)) = queue.send(Write { request, reply }) {
            // The writers are gone (the runtime they were started on has shut down): write
            // directly rather than fail.
            return execute_one(&self.pool, &write.request).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable("the store's writer stopped before answering".into()))
        })
    }

    pub(crate) fn stats(&self) -> WriteBatchStats {
        WriteBatchStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            replayed: self.counters.replayed.load(Ordering::Relaxed),
        }
    }

    fn start_writers(&self) -> mpsc::UnboundedSender<Write> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..self.writers {
            tokio::spawn(writer(
                self.pool.clone(),
                receiver.clone(),
                self.max_writes_per_batch,
                self.counters.clone(),
            ));
        }
        sender
    }
}

/// Takes whatever is queued (waiting for at least one write), executes it, answers, repeats.
/// Only one writer at a time waits on the queue, so the others' batches are not split.
async fn writer(
    pool: PgPool,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Write>>>,
    max_writes_per_batch: usize,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(max_writes_per_batch);
    loop {
        let received = queue.lock().await.recv_many(&mut batch, max_writes_per_batch).await;
        if received == 0 {
            return; // every sender is gone: the store was dropped
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        flush(&pool, std::mem::take(&mut batch), &counters).await;
    }
}

async fn flush(pool: &PgPool, mut batch: Vec<Write>, counters: &Counters) {
    if batch.len() == 1 {
        if let Some(write) = batch.pop() {
            let answer = execute_one(pool, &write.request).await;
            // A caller that stopped waiting does not need its answer.
            let _ = write.reply.send(answer);
        }
        return;
    }
    let (requests, replies): (Vec<WriteRequest>, Vec<_>) =
        batch.into_iter().map(|write| (write.request, write.reply)).unzip();
    let answers = match execute_batch(pool, &requests).await {
        Ok(answers) => answers,
        Err(BatchError::NotApplied(error)) => {
            counters.replayed.fetch_add(1, Ordering::Relaxed);
            warn!(
                error = %error,
                writes = requests.len(),
                "a batch of store writes failed before its commit; replaying them one by one"
            );
            // In arrival order, one after another, as the batch would have applied them.
            let mut answers = Vec::with_capacity(requests.len());
            for request in &requests {
                answers.push(execute_one(pool, request).await);
            }
            answers
        }
        Err(BatchError::Unknown(error)) => {
            let error = store_error(error);
            requests.iter().map(|_| Err(copy_error(&error))).collect()
        }
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
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

    /// A batch the database refuses because of one write is replayed write by write: the
    /// others are committed and answered as usual, and only that write's caller gets the error.
    #[tokio::test]
    async fn one_refused_write_fails_only_its_own_caller() {
        let config = crate::testing::fresh_database().await;
        let pool = PgPool::connect(&config.url).await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).single().unwrap();
        let claim = ClaimRequest {
            key: key("good"),
            event_type: None,
            recipient: None,
            event_json: None,
            raw_body: None,
            owner: "w1".into(),
            receive_count: 1,
            lease: Duration::from_secs(60),
            now,
        };
        let requests = [
            WriteRequest::Claim(claim),
            WriteRequest::AttemptStarted { key: key("unclaimed"), attempt: 1, at: now },
            WriteRequest::Duplicate { key: key("good"), at: now },
        ];
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for request in requests {
            let (reply, answer) = oneshot::channel();
            batch.push(Write { request, reply });
            answers.push(answer);
        }
        let counters = Counters::default();
        flush(&pool, batch, &counters).await;

        let mut answers = futures::future::join_all(answers).await.into_iter();
        let claimed = answers.next().unwrap().unwrap().expect("the good claim is committed");
        assert_eq!(claimed, WriteAnswer::Claim(Claim::Claimed { attempt: 1 }));
        let refused = answers.next().unwrap().unwrap().expect_err("the bad write fails");
        assert!(refused.to_string().contains("foreign key"), "{refused}");
        assert_eq!(answers.next().unwrap().unwrap().unwrap(), WriteAnswer::Done);
        assert_eq!(counters.replayed.load(Ordering::Relaxed), 1);
        let duplicates: i32 =
            sqlx::query_scalar("select duplicate_count from deliveries where event_id = 'good'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(duplicates, 1, "the replay applied the duplicate once");
    }
}
