//! Concurrent calls of one kind, answered together: the mechanism under the store's group
//! commit (`group_commit.rs`) and the suppression list's batched checks (`suppressions.rs`).
//!
//! Every call goes into a queue; a few runner tasks each take everything queued (up to a
//! bound) and answer it with one round trip. There is no timer: a call that arrives while a
//! runner is free goes at once, alone; calls that arrive while the runners are busy wait for
//! the next free one, so batches grow with the load and the latency stays one round trip or
//! two. Only one runner at a time waits on the queue, so the others' batches are not split.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Mutex, mpsc, oneshot};

/// How one kind of call is answered, alone and in a batch.
pub(crate) trait Coalesce: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    type Answer: Send + 'static;

    /// Answers one call: a batch of one, and every call once the runners are gone.
    fn one(&self, request: &Self::Request) -> impl Future<Output = Self::Answer> + Send;

    /// Answers several calls, one answer per request, in order.
    fn many(&self, requests: &[Self::Request]) -> impl Future<Output = Vec<Self::Answer>> + Send;

    /// The answer of a caller whose runner stopped before answering (its runtime shut down).
    fn stopped(&self) -> Self::Answer;
}

/// What the runners have done: `items / batches` is the mean batch size.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) items: AtomicU64,
}

type Item<C> = (<C as Coalesce>::Request, oneshot::Sender<<C as Coalesce>::Answer>);

/// The queue and its runners. The runners start with the first call (inside the caller's
/// runtime) and stop when the coalescer is dropped.
pub(crate) struct Coalescer<C: Coalesce> {
    handler: Arc<C>,
    queue: OnceLock<mpsc::UnboundedSender<Item<C>>>,
    runners: usize,
    max_per_batch: usize,
    counters: Arc<Counters>,
}

impl<C: Coalesce + std::fmt::Debug> std::fmt::Debug for Coalescer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("handler", &self.handler)
            .field("runners", &self.runners)
            .field("max_per_batch", &self.max_per_batch)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<C: Coalesce> Coalescer<C> {
    pub(crate) fn new(handler: C, runners: usize, max_per_batch: usize) -> Self {
        Self {
            handler: Arc::new(handler),
            queue: OnceLock::new(),
            runners: runners.max(1),
            max_per_batch: max_per_batch.max(1),
            counters: Arc::default(),
        }
    }

    /// Queues a call and waits for its answer.
    pub(crate) async fn submit(&self, request: C::Request) -> C::Answer {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.get_or_init(|| self.start_runners());
        if let Err(mpsc::error::SendError((request, _))) = queue.send((request, reply)) {
            // The runners are gone (the runtime they were started on has shut down): answer
            // directly rather than fail.
            return self.handler.one(&request).await;
        }
        answer.await.unwrap_or_else(|_| self.handler.stopped())
    }

    pub(crate) fn handler(&self) -> &C {
        &self.handler
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    fn start_runners(&self) -> mpsc::UnboundedSender<Item<C>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..self.runners {
            tokio::spawn(run(
                self.handler.clone(),
                receiver.clone(),
                self.max_per_batch,
                self.counters.clone(),
            ));
        }
        sender
    }
}

/// Takes whatever is queued (waiting for at least one call), answers it, repeats.
async fn run<C: Coalesce>(
    handler: Arc<C>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Item<C>>>>,
    max_per_batch: usize,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(max_per_batch);
    loop {
        if queue.lock().await.recv_many(&mut batch, max_per_batch).await == 0 {
            return; // every sender is gone: the coalescer was dropped
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.items.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (requests, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let answers = match requests.as_slice() {
            [request] => vec![handler.one(request).await],
            requests => handler.many(requests).await,
        };
        // A caller that stopped waiting does not need its answer; a caller left without one
        // (fewer answers than requests) gets `stopped`.
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
