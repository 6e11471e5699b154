//! A fast, in-memory stand-in for SQS and SES v2, served over HTTP on 127.0.0.1 so that the
//! real SDK clients talk to it exactly as they talk to AWS.
//!
//! - SQS: the AWS JSON 1.0 protocol aws-sdk-sqs speaks (`POST /`, `X-Amz-Target:
//!   AmazonSQS.<Operation>`, `application/x-amz-json-1.0`): `ReceiveMessage` (visibility
//!   timeout, `MaxNumberOfMessages`, `WaitTimeSeconds`, `ApproximateReceiveCount`,
//!   `SentTimestamp`, `ApproximateFirstReceiveTimestamp`), `DeleteMessage(Batch)`,
//!   `ChangeMessageVisibility(Batch)`, `SendMessage(Batch)` and `GetQueueAttributes`. A long
//!   poll returns as soon as a message is available, else when its wait time is over. Messages
//!   whose visibility runs out come back. Shapes follow `aws-sdk-sqs`'s
//!   `src/protocol_serde/` (`MD5OfBody` is left out: the Rust SDK does not check it).
//!   `MessageGroupId` is accepted on a standard queue and returned with `SenderId` (the
//!   caller's access key id: SQS reports the IAM user or role behind it) when asked for.
//!   Receives follow Amazon SQS fair queues (quiet groups' messages before a noisy group's, see
//!   `fair_queue`) unless [`StandIn::set_fair_queues`] switches them to plain delivery.
//! - SES v2: `POST /v2/email/outbound-emails` (`SendEmail`) answers `{"MessageId": ...}` and
//!   records when it accepted the email, its `tayori-delivery-id` and `tayori-tenant` tags. Per
//!   tenant it can answer throttling errors instead, or accept after a delay
//!   ([`StandIn::set_ses_answer`]).
//!
//! It runs on a runtime and thread of its own, so the CPU it uses can be read apart from the
//! worker's (`/proc/self/task/<tid>/stat`). Each queue is its visible messages per group plus a
//! map of those in flight behind one mutex; the work per call is a few map operations.
//!
//! The file is longer than the guide's ~600 lines because the tests of the SDK shapes sit at its
//! end, next to the handlers they check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::cpu::ThreadCpu;
use crate::fair_queue::{Group, GroupCounts, Visible};

const AMZ_JSON_1_0: &str = "application/x-amz-json-1.0";
/// SQS's default visibility timeout, for a receive that names none.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// The stand-in, running until the process exits.
pub struct StandIn {
    state: Arc<StandInState>,
    endpoint: String,
    cpu: ThreadCpu,
}

/// One message that was deleted: when it was sent, first received and deleted.
#[derive(Debug, Clone)]
pub struct MessageRecord {
    /// The id SQS gave it (`SendMessageBatch` returns it).
    pub message_id: String,
    /// When it was enqueued.
    pub sent_at: Instant,
    /// When a receive first handed it out.
    pub first_received: Instant,
    /// When it was deleted.
    pub deleted_at: Instant,
}

/// One `SendEmail` call that was accepted.
#[derive(Debug, Clone)]
pub struct SesRecord {
    /// The `tayori-delivery-id` tag, when the call had one.
    pub delivery_id: Option<String>,
    /// The `tayori-tenant` tag, when the call had one.
    pub tenant: Option<String>,
    /// When the stand-in accepted the email (after the delay, for a tenant answered slowly).
    pub at: Instant,
}

/// How `SendEmail` answers a tenant's emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SesAnswer {
    /// Accepts them at once.
    Accept,
    /// Refuses them with HTTP 400 `TooManyRequestsException`, as SES when the account's or the
    /// tenant's sending rate is exceeded (no `Retry-After`).
    Throttle,
    /// Accepts them after this delay.
    Delay(Duration),
}

/// A queue's counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Waiting to be received.
    pub visible: usize,
    /// Received and neither deleted nor visible again.
    pub in_flight: usize,
    /// Deleted so far.
    pub deleted: usize,
    /// Receives that handed out a message already received before.
    pub redelivered: u64,
    /// Times a group was found noisy (fair queues).
    pub noisy_episodes: u64,
    /// Messages handed out ahead of a noisy group's older ones (fair queues).
    pub reordered: u64,
}

impl StandIn {
    /// Starts the stand-in on 127.0.0.1 on a free port, on a thread of its own.
    pub fn start() -> anyhow::Result<StandIn> {
        let state = Arc::new(StandInState::default());
        let (ready, started) = std::sync::mpsc::channel();
        let serve_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("standin".into())
            .spawn(move || {
                let runtime =
                    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime,
                        Err(error) => {
                            let _ = ready.send(Err(anyhow::Error::new(error)));
                            return;
                        }
                    };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(listener) => listener,
                        Err(error) => {
                            let _ = ready.send(Err(anyhow::Error::new(error)));
                            return;
                        }
                    };
                    let address = listener.local_addr().map_err(anyhow::Error::new);
                    let _ = ready.send(address.map(|a| (a, ThreadCpu::current())));
                    let app = router(serve_state);
                    if let Err(error) = axum::serve(listener, app).await {
                        eprintln!("stand-in: the server stopped: {error}");
                    }
                });
            })
            .context("cannot start the stand-in's thread")?;
        let (address, cpu) = started.recv().context("the stand-in's thread died")??;
        Ok(StandIn { state, endpoint: format!("http://{address}"), cpu })
    }

    /// Fair queues (the default) or plain delivery, for every queue from now on.
    pub fn set_fair_queues(&self, fair: bool) {
        self.state.plain_delivery.store(!fair, Ordering::Release);
    }

    /// How `SendEmail` answers `tenant`'s emails from now on (`Accept` by default).
    pub fn set_ses_answer(&self, tenant: &str, answer: SesAnswer) {
        let mut answers = lock(&self.state.ses_answers);
        match answer {
            SesAnswer::Accept => answers.remove(tenant),
            other => answers.insert(tenant.to_owned(), other),
        };
    }

    /// `SendEmail` calls refused with a throttling error so far, by tenant tag (handed over).
    pub fn take_ses_throttled(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *lock(&self.state.ses_throttled))
    }

    /// The counts of one message group of the queue.
    pub fn group_counts(&self, name: &str, group: &str) -> GroupCounts {
        let group: Group = Some(Arc::from(group));
        self.queue(name).map(|q| q.lock().visible.group_counts(&group)).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`: the endpoint for both SDK clients.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates an empty queue and returns its URL.
    pub fn create_queue(&self, name: &str) -> String {
        lock(&self.state.queues).insert(name.to_owned(), Arc::new(Queue::default()));
        format!("{}/000000000000/{name}", self.endpoint)
    }

    /// The queue's counts.
    pub fn stats(&self, name: &str) -> QueueStats {
        self.queue(name).map(|q| q.stats()).unwrap_or_default()
    }

    /// Ends every long poll on the queue at once, now and from now on (receives no longer wait).
    pub fn close(&self, name: &str) {
        if let Some(queue) = self.queue(name) {
            queue.closed.store(true, Ordering::Release);
            queue.arrivals.notify_waiters();
        }
    }

    /// The deleted messages of the queue, handed over (and forgotten by the stand-in).
    pub fn take_deleted(&self, name: &str) -> Vec<MessageRecord> {
        self.queue(name).map(|q| std::mem::take(&mut q.lock().deleted)).unwrap_or_default()
    }

    /// The `SendEmail` calls so far, handed over (and forgotten by the stand-in).
    pub fn take_ses(&self) -> Vec<SesRecord> {
        std::mem::take(&mut *lock(&self.state.ses))
    }

    /// The stand-in's thread, whose CPU time can be read.
    pub fn cpu(&self) -> ThreadCpu {
        self.cpu.clone()
    }

    fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        lock(&self.state.queues).get(name).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct StandInState {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    next_message: AtomicU64,
    ses: Mutex<Vec<SesRecord>>,
    ses_calls: AtomicU64,
    /// Plain delivery instead of fair queues.
    plain_delivery: AtomicBool,
    /// Tenants whose emails are not simply accepted.
    ses_answers: Mutex<HashMap<String, SesAnswer>>,
    ses_throttled: Mutex<HashMap<String, u64>>,
}

impl StandInState {
    fn queue(&self, url: &str) -> Result<Arc<Queue>, SqsError> {
        let name = url.rsplit('/').next().unwrap_or_default();
        lock(&self.queues).get(name).cloned().ok_or_else(|| {
            SqsError::new("QueueDoesNotExist", format!("The specified queue does not exist: {url}"))
        })
    }
}

#[derive(Default)]
struct Queue {
    inner: Mutex<QueueInner>,
    /// Woken when messages become visible (sent, released) and when the queue closes.
    arrivals: Notify,
    closed: AtomicBool,
}

#[derive(Default)]
struct QueueInner {
    visible: Visible,
    messages: HashMap<u64, Stored>,
    in_flight: HashMap<u64, InFlight>,
    /// The earliest `visible_at` in `in_flight` (or earlier): no scan is needed before it.
    next_expiry: Option<Instant>,
    deleted: Vec<MessageRecord>,
    deleted_count: usize,
    redelivered: u64,
}

struct Stored {
    body: Arc<str>,
    group: Group,
    sender_id: Arc<str>,
    sent_at: Instant,
    sent_epoch_ms: u128,
    receive_count: u32,
    first_received: Option<(Instant, u128)>,
}

struct InFlight {
    /// Which receive of the message this is: its receipt handle is `m<id>.<receive>`.
    receive: u32,
    visible_at: Instant,
}

/// A message as `ReceiveMessage` returns it (shape `Message`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct OutMessage {
    message_id: String,
    receipt_handle: String,
    body: Arc<str>,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    attributes: HashMap<&'static str, String>,
}

/// Which system attributes a receive asked for.
#[derive(Clone, Copy, Default)]
struct Wanted {
    receive_count: bool,
    sent_timestamp: bool,
    first_receive_timestamp: bool,
    group_id: bool,
    sender_id: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        lock(&self.inner)
    }

    fn stats(&self) -> QueueStats {
        let inner = self.lock();
        let (noisy_episodes, reordered) = inner.visible.fairness_counts();
        QueueStats {
            visible: inner.visible.len(),
            in_flight: inner.in_flight.len(),
            deleted: inner.deleted_count,
            redelivered: inner.redelivered,
            noisy_episodes,
            reordered,
        }
    }
}

impl QueueInner {
    /// Makes messages whose visibility ran out visible again.
    fn requeue_expired(&mut self, now: Instant) {
        if self.next_expiry.is_none_or(|at| at > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        let mut expired = Vec::new();
        self.in_flight.retain(|id, flight| {
            if flight.visible_at <= now {
                expired.push(*id);
                false
            } else {
                next = Some(next.map_or(flight.visible_at, |n| n.min(flight.visible_at)));
                true
            }
        });
        expired.sort_unstable();
        for id in expired {
            if let Some(message) = self.messages.get(&id) {
                self.visible.end_flight(&message.group);
                self.visible.push(&message.group, id, false);
            }
        }
        self.next_expiry = next;
    }

    fn take(
        &mut self,
        max: usize,
        visibility: Duration,
        wanted: Wanted,
        fair: bool,
    ) -> Vec<OutMessage> {
        let now = Instant::now();
        self.requeue_expired(now);
        if fair {
            self.visible.classify(now);
        }
        let now_ms = epoch_ms();
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, id)) = self.visible.pop(fair) else { break };
            let Some(message) = self.messages.get_mut(&id) else { continue };
            message.receive_count += 1;
            if message.receive_count > 1 {
                self.redelivered += 1;
            }
            let (_, first_ms) = *message.first_received.get_or_insert((now, now_ms));
            let visible_at = now + visibility;
            self.in_flight.insert(id, InFlight { receive: message.receive_count, visible_at });
            self.next_expiry = Some(self.next_expiry.map_or(visible_at, |n| n.min(visible_at)));
            let mut attributes = HashMap::new();
            if wanted.receive_count {
                attributes.insert("ApproximateReceiveCount", message.receive_count.to_string());
            }
            if wanted.sent_timestamp {
                attributes.insert("SentTimestamp", message.sent_epoch_ms.to_string());
            }
            if wanted.first_receive_timestamp {
                attributes.insert("ApproximateFirstReceiveTimestamp", first_ms.to_string());
            }
            if wanted.group_id
                && let Some(group) = &message.group
            {
                attributes.insert("MessageGroupId", group.to_string());
            }
            if wanted.sender_id {
                attributes.insert("SenderId", message.sender_id.to_string());
            }
            out.push(OutMessage {
                message_id: message_id(id),
                receipt_handle: format!("m{id}.{}", message.receive_count),
                body: Arc::clone(&message.body),
                attributes,
            });
        }
        out
    }

    /// Deletes the message if `receipt` is its latest receipt handle. SQS answers success for
    /// a stale handle of a message received again since, without deleting it; so does this.
    fn delete(&mut self, receipt: &str) -> Result<(), SqsError> {
        let (id, receive) = parse_receipt(receipt)?;
        let latest = self.messages.get(&id).map(|m| m.receive_count);
        if latest != Some(receive) {
            return Ok(()); // already deleted, or received again since
        }
        let was_in_flight = self.in_flight.remove(&id).is_some();
        if let Some(message) = self.messages.remove(&id) {
            if was_in_flight {
                self.visible.end_flight(&message.group);
            } else {
                // Its visibility had run out: it waits among the visible ones (rare; a scan).
                self.visible.remove(&message.group, id);
            }
            let now = Instant::now();
            self.deleted_count += 1;
            self.deleted.push(MessageRecord {
                message_id: message_id(id),
                sent_at: message.sent_at,
                first_received: message.first_received.map_or(now, |(at, _)| at),
                deleted_at: now,
            });
        }
        Ok(())
    }

    /// Sets the visibility of a message in flight; 0 makes it visible at once. Returns whether
    /// it became visible.
    fn change_visibility(&mut self, receipt: &str, seconds: i32) -> Result<bool, SqsError> {
        let (id, receive) = parse_receipt(receipt)?;
        let Some(flight) = self.in_flight.get_mut(&id).filter(|f| f.receive == receive) else {
            return Err(SqsError::new(
                "MessageNotInflight",
                format!("The message referred to by {receipt} is not in flight."),
            ));
        };
        if seconds <= 0 {
            self.in_flight.remove(&id);
            if let Some(message) = self.messages.get(&id) {
                self.visible.end_flight(&message.group);
                self.visible.push(&message.group, id, false);
            }
            return Ok(true);
        }
        let visible_at = Instant::now() + Duration::from_secs(seconds.unsigned_abs().into());
        flight.visible_at = visible_at;
        self.next_expiry = Some(self.next_expiry.map_or(visible_at, |n| n.min(visible_at)));
        Ok(false)
    }

    fn send(&mut self, id: u64, body: &str, group: Group, sender_id: Arc<str>) {
        self.visible.push(&group, id, true);
        self.messages.insert(
            id,
            Stored {
                body: Arc::from(body),
                group,
                sender_id,
                sent_at: Instant::now(),
                sent_epoch_ms: epoch_ms(),
                receive_count: 0,
                first_received: None,
            },
        );
    }
}

fn message_id(id: u64) -> String {
    format!("m{id}")
}

fn parse_receipt(receipt: &str) -> Result<(u64, u32), SqsError> {
    let parsed = receipt
        .strip_prefix('m')
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(id, receive)| Some((id.parse().ok()?, receive.parse().ok()?)));
    parsed.ok_or_else(|| {
        SqsError::new(
            "ReceiptHandleIsInvalid",
            format!("The receipt handle {receipt:?} is not valid."),
        )
    })
}

fn epoch_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn router(state: Arc<StandInState>) -> Router {
    Router::new()
        .route("/", post(sqs))
        .route("/v2/email/outbound-emails", post(ses_send_email))
        .with_state(state)
}

/// An SQS error in the JSON protocol's shape: `__type` names it, HTTP 400.
#[derive(Debug)]
struct SqsError {
    code: &'static str,
    message: String,
}

impl SqsError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl IntoResponse for SqsError {
    /// As SQS answers: the JSON protocol's `__type`, and the `x-amzn-query-error` header with
    /// the older (query protocol) code, which is what aws-sdk-sqs matches its error variants on.
    fn into_response(self) -> Response {
        let query_code = match self.code {
            "QueueDoesNotExist" => "AWS.SimpleQueueService.NonExistentQueue",
            "MessageNotInflight"
            | "UnsupportedOperation"
            | "EmptyBatchRequest"
            | "TooManyEntriesInBatchRequest" => &format!("AWS.SimpleQueueService.{}", self.code),
            other => other,
        };
        let status = match self.code {
            "InternalError" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let fault = if status.is_server_error() { "Receiver" } else { "Sender" };
        let body = json!({ "__type": format!("com.amazonaws.sqs#{}", self.code), "message": self.message });
        let headers = [
            (header::CONTENT_TYPE.as_str(), AMZ_JSON_1_0.to_owned()),
            ("x-amzn-query-error", format!("{query_code};{fault}")),
        ];
        (status, headers, body.to_string()).into_response()
    }
}

fn amz_json(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, AMZ_JSON_1_0)], body).into_response(),
        Err(error) => SqsError::new("InternalError", error.to_string()).into_response(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, SqsError> {
    serde_json::from_slice(body).map_err(|e| SqsError::new("InvalidParameterValue", e.to_string()))
}

async fn sqs(State(state): State<Arc<StandInState>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|t| t.to_str().ok()).unwrap_or_default();
    let result = match target.strip_prefix("AmazonSQS.").unwrap_or_default() {
        "ReceiveMessage" => receive_message(&state, &body).await,
        "DeleteMessageBatch" => delete_message_batch(&state, &body),
        "DeleteMessage" => delete_message(&state, &body),
        "ChangeMessageVisibility" => change_message_visibility(&state, &body),
        "ChangeMessageVisibilityBatch" => change_message_visibility_batch(&state, &body),
        "SendMessageBatch" => send_message_batch(&state, &body, sender_id(&headers)),
        "SendMessage" => send_message(&state, &body, sender_id(&headers)),
        "GetQueueAttributes" => get_queue_attributes(&state, &body),
        other => Err(SqsError::new(
            "UnsupportedOperation",
            format!("the stand-in does not implement {other:?}"),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveInput {
    queue_url: String,
    max_number_of_messages: Option<i32>,
    visibility_timeout: Option<i32>,
    wait_time_seconds: Option<i32>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
}

async fn receive_message(state: &StandInState, body: &[u8]) -> Result<Response, SqsError> {
    let input: ReceiveInput = parse(body)?;
    let queue = state.queue(&input.queue_url)?;
    let max = usize::try_from(input.max_number_of_messages.unwrap_or(1).clamp(1, 10)).unwrap_or(1);
    let visibility = input.visibility_timeout.map_or(DEFAULT_VISIBILITY, |s| {
        Duration::from_secs(s.clamp(0, 43_200).unsigned_abs().into())
    });
    let wait = Duration::from_secs(
        input.wait_time_seconds.unwrap_or(0).clamp(0, 20).unsigned_abs().into(),
    );
    let names = input.attribute_names.iter().chain(&input.message_system_attribute_names);
    let mut wanted = Wanted::default();
    for name in names {
        let all = name == "All";
        wanted.receive_count |= all || name == "ApproximateReceiveCount";
        wanted.sent_timestamp |= all || name == "SentTimestamp";
        wanted.first_receive_timestamp |= all || name == "ApproximateFirstReceiveTimestamp";
        wanted.group_id |= all || name == "MessageGroupId";
        wanted.sender_id |= all || name == "SenderId";
    }

    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Registered before looking, so an arrival between the look and the wait is not missed.
        let arrival = queue.arrivals.notified();
        tokio::pin!(arrival);
        arrival.as_mut().enable();
        let (messages, next_expiry) = {
            let mut inner = queue.lock();
            let fair = !state.plain_delivery.load(Ordering::Relaxed);
            let messages = inner.take(max, visibility, wanted, fair);
            (messages, inner.next_expiry)
        };
        let now = tokio::time::Instant::now();
        if !messages.is_empty() || now >= deadline || queue.closed.load(Ordering::Acquire) {
            return Ok(amz_json(&json!({ "Messages": messages })));
        }
        // Wake for an arrival, for a message whose visibility runs out, or at the deadline.
        let wake = next_expiry.map_or(deadline, |at| deadline.min(at.into()));
        tokio::select! {
            () = &mut arrival => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiptEntry {
    id: String,
    receipt_handle: String,
    #[serde(default)]
    visibility_timeout: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchInput<E> {
    queue_url: String,
    entries: Vec<E>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchOutput {
    successful: Vec<Value>,
    failed: Vec<Value>,
}

impl BatchOutput {
    fn new() -> Self {
        Self { successful: Vec::new(), failed: Vec::new() }
    }

    fn fail(&mut self, id: &str, error: SqsError) {
        self.failed.push(
            json!({ "Id": id, "SenderFault": true, "Code": error.code, "Message": error.message }),
        );
    }
}

fn check_batch<E>(entries: &[E]) -> Result<(), SqsError> {
    match entries.len() {
        0 => Err(SqsError::new("EmptyBatchRequest", "There should be at least one entry.")),
        1..=10 => Ok(()),
        _ => Err(SqsError::new("TooManyEntriesInBatchRequest", "At most 10 entries.")),
    }
}

fn delete_message_batch(state: &StandInState, body: &[u8]) -> Result<Response, SqsError> {
    let input: BatchInput<ReceiptEntry> = parse(body)?;
    check_batch(&input.entries)?;
    let queue = state.queue(&input.queue_url)?;
    let mut output = BatchOutput::new();
    let mut inner = queue.lock();
    for entry in &input.entries {
        match inner.delete(&entry.receipt_handle) {
            Ok(()) => output.successful.push(json!({ "Id": entry.id })),
            Err(error) => output.fail(&entry.id, error),
        }
    }
    drop(inner);
    Ok(amz_json(&output))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SingleReceipt {
    queue_url: String,
    receipt_handle: String,
    #[serde(default)]
    visibility_timeout: i32,
}

fn delete_message(state: &StandInState, body: &[u8]) -> Result<Response, SqsError> {
    let input: SingleReceipt = parse(body)?;
    state.queue(&input.queue_url)?.lock().delete(&input.receipt_handle)?;
    Ok(amz_json(&json!({})))
}

fn change_message_visibility(state: &StandInState, body: &[u8]) -> Result<Response, SqsError> {
    let input: SingleReceipt = parse(body)?;
    let queue = state.queue(&input.queue_url)?;
    let released =
        queue.lock().change_visibility(&input.receipt_handle, input.visibility_timeout)?;
    if released {
        queue.arrivals.notify_waiters();
    }
    Ok(amz_json(&json!({})))
}

fn change_message_visibility_batch(
    state: &StandInState,
    body: &[u8],
) -> Result<Response, SqsError> {
    let input: BatchInput<ReceiptEntry> = parse(body)?;
    check_batch(&input.entries)?;
    let queue = state.queue(&input.queue_url)?;
    let mut output = BatchOutput::new();
    let mut released = false;
    let mut inner = queue.lock();
    for entry in &input.entries {
        match inner.change_visibility(&entry.receipt_handle, entry.visibility_timeout) {
            Ok(now_visible) => {
                released |= now_visible;
                output.successful.push(json!({ "Id": entry.id }));
            }
            Err(error) => output.fail(&entry.id, error),
        }
    }
    drop(inner);
    if released {
        queue.arrivals.notify_waiters();
    }
    Ok(amz_json(&output))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendEntry {
    id: String,
    message_body: String,
    message_group_id: Option<String>,
}

/// Who calls: the access key id of the request's SigV4 `Credential` (SQS reports the IAM user
/// or role behind it; the bench gives each producer its own key).
fn sender_id(headers: &HeaderMap) -> Arc<str> {
    let authorization =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let key = authorization
        .split_once("Credential=")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or("anonymous");
    Arc::from(key)
}

fn send_message_batch(
    state: &StandInState,
    body: &[u8],
    sender_id: Arc<str>,
) -> Result<Response, SqsError> {
    let input: BatchInput<SendEntry> = parse(body)?;
    check_batch(&input.entries)?;
    let queue = state.queue(&input.queue_url)?;
    let mut output = BatchOutput::new();
    let mut inner = queue.lock();
    for entry in &input.entries {
        let id = state.next_message.fetch_add(1, Ordering::Relaxed);
        let group = entry.message_group_id.as_deref().map(Arc::from);
        inner.send(id, &entry.message_body, group, sender_id.clone());
        output.successful.push(json!({ "Id": entry.id, "MessageId": message_id(id) }));
    }
    drop(inner);
    queue.arrivals.notify_waiters();
    Ok(amz_json(&output))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendInput {
    queue_url: String,
    message_body: String,
    message_group_id: Option<String>,
}

fn send_message(
    state: &StandInState,
    body: &[u8],
    sender_id: Arc<str>,
) -> Result<Response, SqsError> {
    let input: SendInput = parse(body)?;
    let queue = state.queue(&input.queue_url)?;
    let id = state.next_message.fetch_add(1, Ordering::Relaxed);
    let group = input.message_group_id.map(Arc::from);
    queue.lock().send(id, &input.message_body, group, sender_id);
    queue.arrivals.notify_waiters();
    Ok(amz_json(&json!({ "MessageId": message_id(id) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributesInput {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
}

fn get_queue_attributes(state: &StandInState, body: &[u8]) -> Result<Response, SqsError> {
    let input: AttributesInput = parse(body)?;
    let stats = state.queue(&input.queue_url)?.stats();
    let all = input.attribute_names.iter().any(|n| n == "All");
    let mut attributes = serde_json::Map::new();
    for (name, value) in [
        ("ApproximateNumberOfMessages", stats.visible),
        ("ApproximateNumberOfMessagesNotVisible", stats.in_flight),
        ("ApproximateNumberOfMessagesDelayed", 0),
    ] {
        if all || input.attribute_names.iter().any(|n| n == name) {
            attributes.insert(name.into(), Value::String(value.to_string()));
        }
    }
    Ok(amz_json(&json!({ "Attributes": attributes })))
}

#[derive(Deserialize)]
struct SendEmailInput {
    #[serde(rename = "EmailTags", default)]
    email_tags: Vec<EmailTag>,
}

#[derive(Deserialize)]
struct EmailTag {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value")]
    value: String,
}

/// SES v2 `SendEmail`: accepts anything that parses (after a delay, for a tenant answered
/// slowly), records the call, answers a message id; or refuses it with a throttling error, for
/// a tenant answered so.
async fn ses_send_email(State(state): State<Arc<StandInState>>, body: Bytes) -> Response {
    let mut at = Instant::now();
    let input: SendEmailInput = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(error) => {
            let body = json!({ "message": format!("cannot read the request: {error}") });
            return (
                StatusCode::BAD_REQUEST,
                [("x-amzn-errortype", "BadRequestException")],
                axum::Json(body),
            )
                .into_response();
        }
    };
    let tag =
        |name: &str| input.email_tags.iter().find(|t| t.name == name).map(|t| t.value.clone());
    let (delivery_id, tenant) = (tag(tayori_ses::DELIVERY_ID_TAG), tag(tayori_ses::TENANT_TAG));
    let answer = match &tenant {
        Some(tenant) => lock(&state.ses_answers).get(tenant).copied(),
        None => None,
    };
    match answer {
        None | Some(SesAnswer::Accept) => {}
        Some(SesAnswer::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            at = Instant::now();
        }
        Some(SesAnswer::Throttle) => {
            *lock(&state.ses_throttled).entry(tenant.unwrap_or_default()).or_default() += 1;
            let body = json!({ "message": "Maximum sending rate exceeded." });
            return (
                StatusCode::BAD_REQUEST,
                [("x-amzn-errortype", "TooManyRequestsException")],
                axum::Json(body),
            )
                .into_response();
        }
    }
    let n = state.ses_calls.fetch_add(1, Ordering::Relaxed);
    lock(&state.ses).push(SesRecord { delivery_id, tenant, at });
    axum::Json(json!({ "MessageId": format!("standin-{n:010}") })).into_response()
}

#[cfg(test)]
mod tests {
    //! The stand-in through the real SDK client, as the bench uses it (about a second).

    use aws_sdk_sqs::types::{
        ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
        SendMessageBatchRequestEntry,
    };

    use super::*;

    async fn client(standin: &StandIn) -> aws_sdk_sqs::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("t", "t", None, None, "t"))
            .endpoint_url(standin.endpoint())
            .load()
            .await;
        aws_sdk_sqs::Client::new(&sdk)
    }

    #[tokio::test]
    async fn sqs_calls_behave_as_the_consumer_expects() {
        let standin = StandIn::start().unwrap();
        let sqs = client(&standin).await;
        let url = standin.create_queue("q");
        let entries = (0..3)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(format!("body {i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        let sent = sqs.send_message_batch().queue_url(&url).set_entries(Some(entries)).send().await;
        assert_eq!(sent.unwrap().successful().len(), 3);

        // A long poll returns at once when messages are there, with the receive count.
        let started = Instant::now();
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(2)
            .wait_time_seconds(20)
            .visibility_timeout(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        let messages = received.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].body(), Some("body 0"));
        let count = |m: &aws_sdk_sqs::types::Message| {
            m.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount].clone()
        };
        assert_eq!(count(&messages[0]), "1");

        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let attributes = attributes.attributes().unwrap();
        assert_eq!(attributes[&QueueAttributeName::ApproximateNumberOfMessages], "1");
        assert_eq!(attributes[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible], "2");

        // Release the second at once; let the first's visibility run out (1 s).
        let release = ChangeMessageVisibilityBatchRequestEntry::builder()
            .id("r")
            .receipt_handle(messages[1].receipt_handle().unwrap())
            .visibility_timeout(0)
            .build()
            .unwrap();
        let released = sqs
            .change_message_visibility_batch()
            .queue_url(&url)
            .entries(release)
            .send()
            .await
            .unwrap();
        assert_eq!(released.successful().len(), 1);
        let stale = sqs
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(messages[1].receipt_handle().unwrap())
            .visibility_timeout(5)
            .send()
            .await
            .unwrap_err();
        assert!(stale.into_service_error().is_message_not_inflight());

        let mut bodies = Vec::new();
        let started = Instant::now();
        while bodies.len() < 3 && started.elapsed() < Duration::from_secs(5) {
            let received = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(2)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            for message in received.messages() {
                bodies.push((message.body().unwrap().to_owned(), count(message)));
                let deleted = sqs
                    .delete_message_batch()
                    .queue_url(&url)
                    .entries(
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id("d")
                            .receipt_handle(message.receipt_handle().unwrap())
                            .build()
                            .unwrap(),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(deleted.successful().len(), 1);
            }
        }
        bodies.sort();
        let expected = [("body 0", "2"), ("body 1", "2"), ("body 2", "1")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(b, c)| ((*b).to_owned(), (*c).to_owned())).collect();
        assert_eq!(bodies, expected);
        assert!(started.elapsed() >= Duration::from_millis(500), "body 0 came back after 1 s");
        assert_eq!(standin.stats("q").deleted, 3);
        assert_eq!(standin.take_deleted("q").len(), 3);

        // An empty queue's long poll waits, and a close ends it.
        let waiting = tokio::spawn({
            let (sqs, url) = (sqs.clone(), url.clone());
            async move {
                let started = Instant::now();
                sqs.receive_message().queue_url(&url).wait_time_seconds(20).send().await.unwrap();
                started.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        standin.close("q");
        let waited = waiting.await.unwrap();
        assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(5));

        let missing = sqs.receive_message().queue_url("http://x/0/nope").send().await.unwrap_err();
        assert!(missing.into_service_error().is_queue_does_not_exist());
    }

    #[tokio::test]
    async fn groups_and_senders_are_returned_and_ses_answers_per_tenant() {
        let standin = StandIn::start().unwrap();
        let sqs = client(&standin).await;
        let url = standin.create_queue("g");
        sqs.send_message()
            .queue_url(&url)
            .message_body("b")
            .message_group_id("acme-bank")
            .send()
            .await
            .unwrap();
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::SenderId)
            .send()
            .await
            .unwrap();
        let attributes = received.messages()[0].attributes().unwrap();
        assert_eq!(attributes[&MessageSystemAttributeName::MessageGroupId], "acme-bank");
        assert_eq!(attributes[&MessageSystemAttributeName::SenderId], "t", "the access key id");
        assert_eq!(standin.group_counts("g", "acme-bank").in_flight, 1);

        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("t", "t", None, None, "t"))
            .endpoint_url(standin.endpoint())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let ses = aws_sdk_sesv2::Client::new(&sdk);
        let send = || {
            let tag = aws_sdk_sesv2::types::MessageTag::builder()
                .name(tayori_ses::TENANT_TAG)
                .value("acme-invest")
                .build()
                .unwrap();
            let content = aws_sdk_sesv2::types::EmailContent::builder()
                .raw(
                    aws_sdk_sesv2::types::RawMessage::builder()
                        .data(aws_sdk_sesv2::primitives::Blob::new("x"))
                        .build()
                        .unwrap(),
                )
                .build();
            ses.send_email().content(content).email_tags(tag).send()
        };
        standin.set_ses_answer("acme-invest", SesAnswer::Throttle);
        let refused = send().await.unwrap_err().into_service_error();
        assert!(refused.is_too_many_requests_exception(), "{refused:?}");
        assert_eq!(standin.take_ses_throttled()["acme-invest"], 1);
        standin.set_ses_answer("acme-invest", SesAnswer::Delay(Duration::from_millis(300)));
        let started = Instant::now();
        send().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        standin.set_ses_answer("acme-invest", SesAnswer::Accept);
        send().await.unwrap();
        let accepted = standin.take_ses();
        assert_eq!(accepted.len(), 2);
        assert_eq!(accepted[0].tenant.as_deref(), Some("acme-invest"));
    }
}
