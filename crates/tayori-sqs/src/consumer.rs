//! The polling loops and the life of one message.
//!
//! About 700 lines: the poll loop, the life of a message and the SQS calls they share read
//! best together; the store's health (`health`) and the tenants' slots (`slots`) live beside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use backon::{BackoffBuilder, ExponentialBuilder};
use tayori_app::{InboundMessage, MessageHandler};
use tayori_domain::{Publisher, TenantId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{Id as TaskId, JoinSet};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::ConsumerConfig;
use crate::batched::{Deleter, VisibilityChanger};
use crate::health::ConsumerHealth;
use crate::slots::{TenantSlot, TenantSlots};

/// What a consumer did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerReport {
    /// Messages received.
    pub received: u64,
    /// Messages whose event was decided (or found decided) and that were deleted.
    pub deleted: u64,
    /// Messages the use case could not decide yet, left on the queue with a backoff.
    pub backed_off: u64,
    /// Messages received after the stop was asked for, released at once (visibility 0).
    pub released_unstarted: u64,
    /// Messages still being worked on when the grace period ran out, released.
    pub abandoned: u64,
    /// Messages of a tenant over its share handed back to the queue with a delay, because the
    /// waiting room was full (see `slots`).
    pub handed_back: u64,
    /// Messages whose handling outlasted `handling_deadline`, left to come back.
    pub timed_out: u64,
    /// Messages put back unhandled because the store was down when their turn came.
    pub released_store_down: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    deleted: AtomicU64,
    backed_off: AtomicU64,
    released_unstarted: AtomicU64,
    abandoned: AtomicU64,
    handed_back: AtomicU64,
    timed_out: AtomicU64,
    released_store_down: AtomicU64,
}

impl Counters {
    fn report(&self) -> ConsumerReport {
        ConsumerReport {
            received: self.received.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            backed_off: self.backed_off.load(Ordering::Relaxed),
            released_unstarted: self.released_unstarted.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            released_store_down: self.released_store_down.load(Ordering::Relaxed),
        }
    }
}

/// Consumes an SQS queue into a use case: the events one
/// ([`EventHandler`](tayori_app::EventHandler)) or the SES feedback one
/// ([`FeedbackHandler`](tayori_app::FeedbackHandler)).
pub struct SqsConsumer {
    client: Client,
    config: ConsumerConfig,
    handler: Arc<dyn MessageHandler>,
    health: Arc<ConsumerHealth>,
}

/// A received message with the capacity it holds until it is finished: one of `max_in_flight`
/// (given up while it waits for its tenant's share) and its bytes.
struct Received {
    message: Message,
    count: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
    /// Received by a probe receive while the store was down: handled anyway, to find out.
    probe: bool,
}

struct Shared {
    client: Client,
    config: ConsumerConfig,
    handler: Arc<dyn MessageHandler>,
    deleter: Deleter,
    /// Backoffs and hand-backs, batched.
    later: VisibilityChanger,
    counters: Counters,
    /// `max_in_flight`, taken by the pollers before each receive.
    count_capacity: Arc<Semaphore>,
    /// Each tenant's share of it.
    slots: TenantSlots,
    /// Places for messages over their tenant's share to wait off `count_capacity`.
    waiting_room: Arc<Semaphore>,
    /// The queue's redrive policy's `maxReceiveCount`, when it has one (read at start).
    max_receive_count: Option<u32>,
    /// Turns true when the consumer is asked to stop.
    shutdown: watch::Receiver<bool>,
    /// The queue's and the store's health; its store gate holds the pollers off.
    health: Arc<ConsumerHealth>,
}

const KIB: usize = 1024;
/// The largest SQS message: capacity for it is reserved before each receive.
const MAX_MESSAGE_KIB: usize = 1024;
/// While the store is down, each poller still receives once this often: a probe of its own,
/// in case the store works while its probe fails (a handled message reopens the gate). It costs
/// those messages one receive each.
const PROBE_RECEIVE_EVERY: Duration = Duration::from_secs(30);
/// A message put back while the store is down comes back after this long (not at once, where
/// the next probe receive could take it again and spend another of its receives).
const STORE_DOWN_DELAY_SECONDS: i32 = 15;

impl SqsConsumer {
    /// A consumer of `config.queue_url`; call [`SqsConsumer::run`].
    pub fn new(client: Client, config: ConsumerConfig, handler: Arc<dyn MessageHandler>) -> Self {
        // A long poll and its call timeout, and some slack: a queue silent for longer is down.
        let fresh_for = Duration::from_secs(config.wait_time_seconds.max(0) as u64)
            + config.call_timeout
            + Duration::from_secs(15);
        let health = Arc::new(ConsumerHealth::new(fresh_for));
        Self { client, config, handler, health }
    }

    /// The consumer's view of its queue and store, for `/readyz`.
    pub fn health(&self) -> Arc<ConsumerHealth> {
        self.health.clone()
    }

    /// Polls until `shutdown` turns true, then stops polling, lets work in flight finish within
    /// the grace period, releases what is left, flushes pending deletes, and returns a report.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> ConsumerReport {
        let (deleter, deleter_task) = Deleter::spawn_deleter(
            self.client.clone(),
            self.config.queue_url.clone(),
            self.config.call_timeout,
        );
        let (later, later_task) = VisibilityChanger::spawn_visibility_changer(
            self.client.clone(),
            self.config.queue_url.clone(),
            self.config.call_timeout,
        );
        let max_receive_count = max_receive_count(&self.client, &self.config, &self.health).await;
        let shared = Arc::new(Shared {
            max_receive_count,
            shutdown: shutdown.clone(),
            health: self.health,
            // One batch more than the slots: with one tenant in every slot the pollers still
            // receive, so that other tenants' messages are seen (and that tenant's wait, or are
            // handed back, off the worker's capacity).
            count_capacity: Arc::new(Semaphore::new(
                self.config.max_in_flight + self.config.batch_size as usize,
            )),
            slots: TenantSlots::new(&self.config),
            waiting_room: Arc::new(Semaphore::new(self.config.max_in_flight)),
            client: self.client,
            config: self.config,
            handler: self.handler,
            deleter,
            later,
            counters: Counters::default(),
        });
        let count_capacity = shared.count_capacity.clone();
        let byte_capacity = Arc::new(Semaphore::new(shared.config.max_in_flight_bytes / KIB));
        let (to_dispatch, mut dispatch) = mpsc::channel::<Received>(shared.config.max_in_flight);

        let prober = tokio::spawn(crate::health::probe_store(
            shared.handler.clone(),
            shared.health.clone(),
            shutdown.clone(),
        ));
        let mut pollers = JoinSet::new();
        for poller in 0..shared.config.pollers {
            pollers.spawn(
                poll(
                    shared.clone(),
                    count_capacity.clone(),
                    byte_capacity.clone(),
                    to_dispatch.clone(),
                    shutdown.clone(),
                )
                .instrument(info_span!("sqs_poller", poller)),
            );
        }
        drop(to_dispatch);

        // Dispatch received messages until every poller has stopped (the channel closes).
        let mut working: JoinSet<()> = JoinSet::new();
        let mut receipts: HashMap<TaskId, String> = HashMap::new();
        loop {
            tokio::select! {
                received = dispatch.recv() => match received {
                    Some(received) => {
                        let receipt = received.message.receipt_handle().unwrap_or_default().to_owned();
                        let handle = working.spawn(work(shared.clone(), received));
                        receipts.insert(handle.id(), receipt);
                    }
                    None => break,
                },
                Some(done) = working.join_next_with_id() => {
                    receipts.remove(&finished_task(done));
                }
            }
        }
        while pollers.join_next().await.is_some() {}

        // Let the work in flight finish within the grace period.
        info!(in_flight = working.len(), "stopped polling; finishing the work in flight");
        let deadline = tokio::time::Instant::now() + shared.config.shutdown_grace;
        loop {
            match tokio::time::timeout_at(deadline, working.join_next_with_id()).await {
                Ok(Some(done)) => {
                    receipts.remove(&finished_task(done));
                }
                Ok(None) => break,
                Err(_deadline) => {
                    let left: Vec<String> = receipts.drain().map(|(_, r)| r).collect();
                    warn!(count = left.len(), "grace period over; releasing unfinished messages");
                    working.abort_all();
                    shared.counters.abandoned.fetch_add(left.len() as u64, Ordering::Relaxed);
                    release(&shared, left).await;
                    break;
                }
            }
        }
        let _ = prober.await;
        let report = shared.counters.report();
        drop(shared);
        let _ = tokio::join!(deleter_task, later_task);
        info!(?report, "SQS consumer stopped");
        report
    }
}

/// The id of a finished message task. A task that panicked left its message undeleted: it comes
/// back after its visibility timeout.
fn finished_task(done: Result<(TaskId, ()), tokio::task::JoinError>) -> TaskId {
    match done {
        Ok((id, ())) => id,
        Err(error) => {
            if error.is_panic() {
                warn!(error = %error, "a message task panicked; the message will come back");
            }
            error.id()
        }
    }
}

/// One long-poll loop: reserve capacity, receive, hand the messages to the dispatcher.
async fn poll(
    shared: Arc<Shared>,
    count_capacity: Arc<Semaphore>,
    byte_capacity: Arc<Semaphore>,
    dispatch: mpsc::Sender<Received>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let batch = config.batch_size as usize;
    let mut failures = 0u32;
    let mut store_up = shared.health.subscribe_store();
    let mut last_receive = tokio::time::Instant::now();
    loop {
        // Reserve room for a full batch of the largest messages before asking for it, so that
        // what is received can always start at once (its visibility is already ticking).
        let reserve = async {
            let count = count_capacity.clone().acquire_many_owned(batch as u32).await.ok()?;
            let bytes = byte_capacity
                .clone()
                .acquire_many_owned((batch * MAX_MESSAGE_KIB) as u32)
                .await
                .ok()?;
            Some((count, bytes))
        };
        let (mut count_permit, mut byte_permit) = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            reserved = reserve => match reserved {
                Some(reserved) => reserved,
                None => return,
            },
        };
        // While the store is down, receive only once per PROBE_RECEIVE_EVERY: each receive
        // counts towards the dead-letter queue's maxReceiveCount, and nothing can be decided.
        // Checked after the reservation, which may have waited for the work in flight.
        if !*store_up.borrow_and_update() {
            let probe_at = last_receive + PROBE_RECEIVE_EVERY;
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = store_up.wait_for(|up| *up) => {},
                _ = tokio::time::sleep_until(probe_at) => {
                    info!("the store is still down; one probe receive");
                },
            }
        }
        let probe = !*store_up.borrow();
        // The long poll is not cancelled by a stop: messages SQS hands out in a cancelled call
        // would stay invisible. It ends within its wait time; what it brings is released below.
        let receive = shared
            .client
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(config.batch_size)
            .wait_time_seconds(config.wait_time_seconds)
            .visibility_timeout(config.visibility_timeout_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            // Who sent it (set by SQS from the caller's credentials) and its group, which the
            // use case checks against the tenant's producers.
            .message_system_attribute_names(MessageSystemAttributeName::SenderId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send();
        let limit = Duration::from_secs(config.wait_time_seconds as u64) + config.call_timeout;
        last_receive = tokio::time::Instant::now();
        shared.health.receiving();
        let messages = match tokio::time::timeout(limit, receive).await {
            Ok(Ok(output)) => {
                failures = 0;
                shared.health.queue_answered(Ok(()));
                output.messages.unwrap_or_default()
            }
            Ok(Err(error)) => {
                failures += 1;
                let error = DisplayErrorContext(&error).to_string();
                shared.health.queue_answered(Err(error.clone()));
                warn!(error = %error, failures, "receiving from SQS failed");
                pause_after_failure(failures, &mut shutdown).await;
                continue;
            }
            Err(_elapsed) => {
                failures += 1;
                shared.health.queue_answered(Err(format!("no answer within {limit:?}")));
                warn!(?limit, failures, "receiving from SQS timed out (a hung long poll)");
                pause_after_failure(failures, &mut shutdown).await;
                continue;
            }
        };
        shared.counters.received.fetch_add(messages.len() as u64, Ordering::Relaxed);
        // An empty receive means the queue is drained: the lag is zero, not the last batch's.
        let lag = oldest_age(&messages).unwrap_or_default();
        tayori_app::telemetry::queue_lag(queue_name(&config.queue_url), lag);
        if *shutdown.borrow() {
            let receipts = messages.iter().filter_map(|m| m.receipt_handle().map(str::to_owned));
            let receipts: Vec<String> = receipts.collect();
            shared.counters.released_unstarted.fetch_add(receipts.len() as u64, Ordering::Relaxed);
            release(&shared, receipts).await;
            return;
        }
        for message in messages {
            let kib = message.body().map_or(0, str::len).div_ceil(KIB).max(1);
            let (Some(count), bytes) = (count_permit.split(1), byte_permit.split(kib)) else {
                break; // cannot happen: at most `batch` messages of at most 1 MiB each
            };
            let received = Received { message, count: Some(count), _bytes: bytes, probe };
            if dispatch.send(received).await.is_err() {
                return;
            }
        }
        // Unused reservations return to the pools as the permits drop here.
    }
}

/// How long the oldest message of a batch waited in the queue (from SQS's `SentTimestamp`).
fn oldest_age(messages: &[Message]) -> Option<Duration> {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    messages
        .iter()
        .filter_map(|m| m.attributes()?.get(&MessageSystemAttributeName::SentTimestamp))
        .filter_map(|sent| sent.parse::<u64>().ok())
        .min()
        .map(|oldest| Duration::from_millis(now_ms.saturating_sub(oldest)))
}

/// The queue's name, the last part of its URL: the `queue` label of metrics.
fn queue_name(queue_url: &str) -> &str {
    queue_url.rsplit('/').next().unwrap_or(queue_url)
}

/// Waits before polling again after a failed receive: 1 s, 2 s, … up to 30 s; a stop ends it.
async fn pause_after_failure(failures: u32, shutdown: &mut watch::Receiver<bool>) {
    let wait =
        Duration::from_secs(1 << failures.min(5).saturating_sub(1)).min(Duration::from_secs(30));
    tokio::select! {
        _ = tokio::time::sleep(wait) => {},
        _ = shutdown.wait_for(|stop| *stop) => {},
    }
}

/// The life of one message: hand it to the use case while a heartbeat keeps it invisible, then
/// delete it (decided) or leave it with a backoff (retry later).
async fn work(shared: Arc<Shared>, received: Received) {
    // The capacity is taken apart from the message: a message over its tenant's share gives it
    // up while it waits.
    let Received { message, mut count, _bytes, probe } = received;
    let message = &message;
    let message_id = message.message_id().unwrap_or_default().to_owned();
    let receipt = message.receipt_handle().unwrap_or_default().to_owned();
    let receive_count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(1);
    let span = info_span!("sqs_message", sqs.message_id = %message_id, receive_count);
    async {
        let inbound = InboundMessage {
            body: message.body().unwrap_or_default().as_bytes().to_vec(),
            receive_count,
            publisher: Some(publisher(&shared.config, message)),
        };
        // The tenant's slot, held until the message is finished; without one (its tenant is
        // over its share and the waiting room is full) the message was handed back.
        let tenant = shared.handler.tenant_of(&inbound);
        let _slot = match &tenant {
            None => None,
            Some(tenant) => match shared.slots.try_take(tenant) {
                Some(slot) => Some(slot),
                None => match wait_for_slot(
                    &shared,
                    tenant,
                    &mut count,
                    &receipt,
                    receive_count,
                )
                .await
                {
                    Some(slot) => Some(slot),
                    None => return,
                },
            },
        };
        // The store went down while it waited: back to the queue, without spending a
        // handler's timeouts on it.
        if !probe && !shared.health.store_is_up() {
            debug!("the store is down; putting the message back");
            shared.later.set(receipt, STORE_DOWN_DELAY_SECONDS);
            shared.counters.released_store_down.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Bounded: a call stuck on a dead connection must not keep the message invisible
        // forever through the heartbeat. Past the deadline it is dropped, and the message
        // comes back when its last renewal runs out.
        let handling = async {
            tokio::select! {
                handled = shared.handler.handle_message(&inbound) => handled,
                never = heartbeat(&shared, &receipt) => match never {},
            }
        };
        let Ok(handled) = tokio::time::timeout(shared.config.handling_deadline, handling).await
        else {
            warn!(
                deadline_seconds = shared.config.handling_deadline.as_secs(),
                "handling the message outlasted its deadline; abandoned, it will come back"
            );
            shared.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match handled {
            Ok(()) => {
                shared.deleter.delete(receipt);
                shared.counters.deleted.fetch_add(1, Ordering::Relaxed);
                // Decided, so the store took its writes: a probe that failed was wrong.
                if !shared.health.store_is_up() {
                    shared.health.store_answered(Ok(()));
                }
            }
            Err(retry) => {
                let mut delay = retry_delay(&shared.config, retry.retry_after, receive_count);
                if !shared.health.store_is_up() {
                    // An outage: come back once it may be over, not into the next probe receive.
                    delay = delay.max(STORE_DOWN_DELAY_SECONDS);
                }
                info!(reason = %retry.reason, delay_seconds = delay, "leaving the message for a retry");
                shared.later.set(receipt, delay);
                shared.counters.backed_off.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    .instrument(span)
    .await;
}

/// A message whose tenant holds all the slots it may: it waits for one of them in the waiting
/// room, off the worker's capacity (so the pollers can bring other tenants' messages) and kept
/// invisible by the heartbeat, then takes a place in the worker's capacity again to run. When
/// the room is full it is handed back to the queue with a delay instead (`None`).
async fn wait_for_slot<'a>(
    shared: &'a Shared,
    tenant: &TenantId,
    count: &mut Option<OwnedSemaphorePermit>,
    receipt: &str,
    receive_count: u32,
) -> Option<TenantSlot<'a>> {
    let place = shared.waiting_room.clone().try_acquire_owned().ok();
    // With the room full the message waits here anyway, keeping its place in the worker's
    // capacity (so the pollers pause), when handing it back could do harm or no good: near the
    // dead-letter queue's maxReceiveCount another return could move it there, and with every
    // slot in use no other tenant could start meanwhile (handing back would only churn the
    // queue: measured, a fifth of the throughput with two tenants at their shares).
    let last_chance =
        shared.max_receive_count.is_some_and(|max| receive_count.saturating_add(1) >= max);
    let saturated = shared.slots.running() >= shared.config.max_in_flight;
    if place.is_none() && !last_chance && !saturated {
        let delay = shared.slots.hand_back(tenant);
        // Counted (`tayori_tenant_hand_backs_total`); a flood would fill the info log.
        debug!(%tenant, delay_seconds = delay.as_secs(), "tenant over its share; handing the message back");
        shared.later.set(receipt.to_owned(), delay.as_secs() as i32);
        tayori_app::telemetry::tenant_handed_back(tenant.as_str(), "over_share");
        shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let line = shared.slots.wait_in_line(tenant);
    if place.is_some() {
        drop(count.take());
    }
    let mut shutdown = shared.shutdown.clone();
    let slot = tokio::select! {
        slot = shared.slots.take(tenant) => Some(slot),
        never = heartbeat(shared, receipt) => match never {},
        // Not started yet: let the next worker have it at once.
        _ = shutdown.wait_for(|stop| *stop) => None,
    };
    let Some(slot) = slot else {
        drop((line, place));
        shared.counters.released_unstarted.fetch_add(1, Ordering::Relaxed);
        release(shared, vec![receipt.to_owned()]).await;
        return None;
    };
    drop((line, place));
    if count.is_none() {
        *count = shared.count_capacity.clone().acquire_owned().await.ok();
    }
    Some(slot)
}

/// The queue's `maxReceiveCount`, or `None` without a redrive policy (or when it cannot be
/// read: then hand-backs are not limited by it, which the log says).
///
/// The queue's first answer, for readiness (`health`).
async fn max_receive_count(
    client: &Client,
    config: &ConsumerConfig,
    health: &ConsumerHealth,
) -> Option<u32> {
    let call = client
        .get_queue_attributes()
        .queue_url(&config.queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send();
    let attributes = match tokio::time::timeout(config.call_timeout, call).await {
        Ok(Ok(output)) => {
            health.queue_answered(Ok(()));
            output.attributes.unwrap_or_default()
        }
        Ok(Err(error)) => {
            let error = DisplayErrorContext(&error).to_string();
            warn!(error = %error, "could not read the queue's redrive policy");
            health.queue_answered(Err(error));
            return None;
        }
        Err(_elapsed) => {
            warn!("reading the queue's redrive policy timed out");
            health.queue_answered(Err(format!("no answer within {:?}", config.call_timeout)));
            return None;
        }
    };
    let policy = attributes.get(&QueueAttributeName::RedrivePolicy)?;
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    // SQS writes it as a number, some tools as a string.
    let count = &policy["maxReceiveCount"];
    count.as_u64().or_else(|| count.as_str()?.parse().ok()).and_then(|c| u32::try_from(c).ok())
}

/// Who sent a message, as SQS reports it; tayori's own senders (`queue.trusted_producers`) are
/// marked trusted.
fn publisher(config: &ConsumerConfig, message: &Message) -> Publisher {
    let attribute =
        |name: MessageSystemAttributeName| message.attributes().and_then(|a| a.get(&name)).cloned();
    let mut publisher = Publisher {
        sender_id: attribute(MessageSystemAttributeName::SenderId),
        group_id: attribute(MessageSystemAttributeName::MessageGroupId),
        trusted: false,
    };
    publisher.trusted = publisher.sent_by_one_of(&config.trusted_producers);
    publisher
}

/// Renews the message's visibility while it is worked on (unless the heartbeat is off). Never
/// returns.
async fn heartbeat(shared: &Shared, receipt: &str) -> std::convert::Infallible {
    if shared.config.heartbeat_interval.is_zero() {
        return std::future::pending().await;
    }
    let mut ticks = tokio::time::interval(shared.config.heartbeat_interval);
    ticks.tick().await; // the first tick is immediate; the receive just set the visibility
    loop {
        ticks.tick().await;
        set_visibility(shared, receipt, shared.config.visibility_timeout_seconds).await;
    }
}

async fn set_visibility(shared: &Shared, receipt: &str, seconds: i32) {
    let call = shared
        .client
        .change_message_visibility()
        .queue_url(&shared.config.queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds)
        .send();
    match tokio::time::timeout(shared.config.call_timeout, call).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            warn!(error = %DisplayErrorContext(&error), "could not change a message's visibility")
        }
        Err(_elapsed) => warn!("changing a message's visibility timed out"),
    }
}

/// Makes messages visible again at once (visibility 0), in batches of ten.
async fn release(shared: &Shared, receipts: Vec<String>) {
    for chunk in receipts.chunks(10) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        let call = shared
            .client
            .change_message_visibility_batch()
            .queue_url(&shared.config.queue_url)
            .set_entries(Some(entries))
            .send();
        match tokio::time::timeout(shared.config.call_timeout, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(
                error = %DisplayErrorContext(&error),
                "could not release messages; they return after their visibility timeout"
            ),
            Err(_elapsed) => warn!("releasing messages timed out"),
        }
    }
}

/// The visibility to leave an undecided message with, in seconds: the use case's hint when it
/// gives one (a lease's end, a throttling hint, a pause), else exponential in the receive count
/// from `backoff_first`, with jitter so retries of a burst do not return together; capped at
/// `backoff_max` and SQS's 12 hours.
fn retry_delay(config: &ConsumerConfig, hint: Option<Duration>, receive_count: u32) -> i32 {
    let mut backoff = ExponentialBuilder::new()
        .with_min_delay(config.backoff_first)
        .with_max_delay(config.backoff_max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let exponential =
        backoff.nth(receive_count.saturating_sub(1) as usize).unwrap_or(config.backoff_max);
    let delay = match hint {
        // A hint is a floor: waiting less would only meet the same answer again.
        Some(hint) => hint.max(Duration::from_secs(1)),
        None => exponential.min(config.backoff_max),
    };
    delay.as_secs().min(43_200) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_with_the_receive_count_and_is_capped() {
        let config = ConsumerConfig {
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            ..ConsumerConfig::default()
        };
        for (count, low, high) in [(1, 2, 4), (2, 4, 8), (3, 8, 16), (10, 60, 60)] {
            let delay = retry_delay(&config, None, count);
            assert!(
                (low..=high).contains(&delay),
                "receive {count}: {delay}s not in {low}..={high}"
            );
        }
        assert_eq!(retry_delay(&config, Some(Duration::from_secs(90)), 1), 90, "a hint wins");
        assert_eq!(retry_delay(&config, Some(Duration::ZERO), 1), 1);
        let huge = Some(Duration::from_secs(100_000));
        assert_eq!(retry_delay(&config, huge, 1), 43_200, "SQS's limit");
    }
}
