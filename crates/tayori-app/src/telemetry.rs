//! tayori's metrics: every name, label and unit, in one place.
//!
//! The use case and the adapters report what happened by calling the typed functions here
//! (`event_received`, `send_finished`, `rate_limiter_waited`, ...); none of them names a metric.
//! They go through the [`metrics`] facade, which, like `tracing`, is an API without IO: with no
//! recorder installed (unit tests, tools) every call is a no-op. The binary installs the
//! Prometheus recorder and serves `/metrics`. `docs/metrics.md` documents each metric; a test of
//! the binary scrapes `/metrics` during a worker run and fails when that page and [`METRICS`]
//! drift apart.
//!
//! Labels are bounded: `tenant` is a configured tenant's id, or `_unknown` for an event naming
//! a tenant that is not configured, or `_none` when the body had no readable tenant. Nothing a
//! producer writes becomes a label value unchecked.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use tayori_domain::{DeliveryStatus, TenantId};

use crate::handle_event::{Handled, RetryLater};
use crate::ports::{SendError, TenantActivity, TenantDirectory};

/// The kind of a metric, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution in buckets.
    Histogram,
}

/// One metric tayori exports.
#[derive(Debug, Clone, Copy)]
pub struct MetricInfo {
    /// Its name on `/metrics`.
    pub name: &'static str,
    /// Its type.
    pub kind: MetricKind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it counts, for the `# HELP` line.
    pub help: &'static str,
}

/// Events whose body was read (decodable or not).
pub const EVENTS_RECEIVED: &str = "tayori_events_received_total";
/// Decided deliveries by outcome.
pub const OUTCOMES: &str = "tayori_outcomes_total";
/// Redelivered events whose delivery was already decided.
pub const DUPLICATES: &str = "tayori_duplicates_total";
/// Events left for a later delivery.
pub const RETRIES: &str = "tayori_retries_total";
/// Events left on the queue because SES paused their tenant's sending (also counted in
/// [`RETRIES`]); an operator's pause holds them instead ([`HELD`]).
pub const PAUSED_WAITS: &str = "tayori_paused_waits_total";
/// Events of a paused tenant held in the store until the resume.
pub const HELD: &str = "tayori_events_held_total";
/// Held events handed back to the worker's path after their tenant's resume.
pub const HELD_RELEASED: &str = "tayori_held_events_released_total";
/// Events held now, per tenant (the store's count).
pub const HELD_NOW: &str = "tayori_held_events";
/// Age of the oldest event held now, per tenant.
pub const HELD_OLDEST: &str = "tayori_held_events_oldest_seconds";
/// 1 while a tenant is paused by an operator or the reputation guard.
pub const TENANT_PAUSED: &str = "tayori_tenant_paused";
/// Messages of a tenant being handled by this worker now.
pub const TENANT_IN_FLIGHT: &str = "tayori_tenant_in_flight";
/// Messages of a tenant over its share, waiting off the worker's capacity for a slot.
pub const TENANT_WAITING: &str = "tayori_tenant_waiting";
/// The slots a tenant may hold now: its share while others have work, else the whole worker.
pub const TENANT_SLOTS: &str = "tayori_tenant_slots";
/// Messages of a tenant handed back to the queue with a delay instead of holding a slot.
pub const TENANT_HAND_BACKS: &str = "tayori_tenant_hand_backs_total";
/// Send errors by kind.
pub const SEND_ERRORS: &str = "tayori_send_errors_total";
/// Duration of one send call.
pub const SEND_DURATION: &str = "tayori_send_duration_seconds";
/// From the message in hand to the mail service's acceptance.
pub const RECEIVE_TO_SEND: &str = "tayori_receive_to_send_seconds";
/// Events being handled right now.
pub const IN_FLIGHT: &str = "tayori_events_in_flight";
/// Age of the oldest message in the last batch received.
pub const QUEUE_LAG: &str = "tayori_queue_lag_seconds";
/// Template reloads.
pub const TEMPLATE_RELOADS: &str = "tayori_template_reloads_total";
/// Sends that waited for a slot under the rate limits.
pub const RATE_LIMITER_WAITS: &str = "tayori_rate_limiter_waits_total";
/// How long sends waited for a slot.
pub const RATE_LIMITER_WAIT: &str = "tayori_rate_limiter_wait_seconds";
/// SES feedback messages by kind and result.
pub const FEEDBACK: &str = "tayori_feedback_total";
/// Emails per second this worker takes of the account's send rate.
pub const SEND_RATE_SHARE: &str = "tayori_send_rate_share";
/// The account's send rate in use.
pub const ACCOUNT_SEND_RATE: &str = "tayori_account_send_rate";
/// Worker processes live in the registry.
pub const LIVE_WORKERS: &str = "tayori_live_workers";
/// Always 1; the version is a label.
pub const BUILD_INFO: &str = "tayori_build_info";
/// Transactions of the PostgreSQL store's group commit.
pub const STORE_WRITE_BATCHES: &str = "tayori_store_write_batches_total";
/// Writes those transactions carried.
pub const STORE_WRITES: &str = "tayori_store_writes_total";
/// Group-commit transactions that failed before their commit and were replayed write by write.
pub const STORE_WRITE_BATCHES_REPLAYED: &str = "tayori_store_write_batches_replayed_total";

/// Every metric tayori exports, in the order of `docs/metrics.md`.
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        name: EVENTS_RECEIVED,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Events received from the queue (or the dev intake), decodable or not.",
    },
    MetricInfo {
        name: OUTCOMES,
        kind: MetricKind::Counter,
        labels: &["tenant", "outcome"],
        help: "Deliveries decided, by outcome: sent, failed, rejected, suppressed.",
    },
    MetricInfo {
        name: DUPLICATES,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Redelivered events whose delivery was already decided; nothing was sent again.",
    },
    MetricInfo {
        name: RETRIES,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Events left on the queue for a later try (store down, lease held, throttled, paused).",
    },
    MetricInfo {
        name: PAUSED_WAITS,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Of the retries, events left on the queue because SES paused their tenant's sending.",
    },
    MetricInfo {
        name: HELD,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Events of a tenant paused by an operator or the reputation guard, held in the store (and deleted from the queue) until the tenant is resumed.",
    },
    MetricInfo {
        name: HELD_RELEASED,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Held events handed back to the worker's path after their tenant was resumed.",
    },
    MetricInfo {
        name: HELD_NOW,
        kind: MetricKind::Gauge,
        labels: &["tenant"],
        help: "Events held now for a paused tenant or waiting for release after its resume (read from the store every 15 s).",
    },
    MetricInfo {
        name: HELD_OLDEST,
        kind: MetricKind::Gauge,
        labels: &["tenant"],
        help: "Age of the tenant's oldest held event; 0 when none is held.",
    },
    MetricInfo {
        name: TENANT_PAUSED,
        kind: MetricKind::Gauge,
        labels: &["tenant"],
        help: "1 while the tenant is paused by an operator or the reputation guard, else 0.",
    },
    MetricInfo {
        name: TENANT_IN_FLIGHT,
        kind: MetricKind::Gauge,
        labels: &["tenant"],
        help: "The tenant's messages being handled by this worker now (each holds one of queue.max_in_flight).",
    },
    MetricInfo {
        name: TENANT_WAITING,
        kind: MetricKind::Gauge,
        labels: &["tenant"],
        help: "The tenant's messages over its share, waiting off the worker's capacity for one of its slots.",
    },
    MetricInfo {
        name: TENANT_SLOTS,
        kind: MetricKind::Gauge,
        labels: &["tenant"],
        help: "The slots the tenant may hold now: its share (queue.tenant_share or its override) while other tenants have work, else queue.max_in_flight.",
    },
    MetricInfo {
        name: TENANT_HAND_BACKS,
        kind: MetricKind::Counter,
        labels: &["tenant", "reason"],
        help: "The tenant's messages handed back to the queue with a delay instead of holding a slot, by reason: over_share, throttled, rate_capped.",
    },
    MetricInfo {
        name: SEND_ERRORS,
        kind: MetricKind::Counter,
        labels: &["tenant", "kind"],
        help: "Errors from the mail service (SES), by kind: throttled, unavailable, paused, rejected, ambiguous.",
    },
    MetricInfo {
        name: SEND_DURATION,
        kind: MetricKind::Histogram,
        labels: &["tenant", "result"],
        help: "Duration of one send call to the mail service, rate-limit wait included.",
    },
    MetricInfo {
        name: RECEIVE_TO_SEND,
        kind: MetricKind::Histogram,
        labels: &["tenant"],
        help: "From the message in hand to the mail service accepting the email.",
    },
    MetricInfo {
        name: IN_FLIGHT,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Events being handled by this process right now.",
    },
    MetricInfo {
        name: QUEUE_LAG,
        kind: MetricKind::Gauge,
        labels: &["queue"],
        help: "Age of the oldest message in the last batch received: how far behind the queue this worker is.",
    },
    MetricInfo {
        name: TEMPLATE_RELOADS,
        kind: MetricKind::Counter,
        labels: &["result"],
        help: "Template reloads, by result: ok, error (the previous templates stay in use).",
    },
    MetricInfo {
        name: RATE_LIMITER_WAITS,
        kind: MetricKind::Counter,
        labels: &["tenant"],
        help: "Sends that waited 1 ms or more for a slot under the global or tenant send rate.",
    },
    MetricInfo {
        name: RATE_LIMITER_WAIT,
        kind: MetricKind::Histogram,
        labels: &["tenant"],
        help: "How long each send waited for its slot under the send rates (SES sender only).",
    },
    MetricInfo {
        name: FEEDBACK,
        kind: MetricKind::Counter,
        labels: &["kind", "result"],
        help: "SES feedback messages by event kind and result: matched, unmatched, duplicate, invalid, retry.",
    },
    MetricInfo {
        name: STORE_WRITE_BATCHES,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Write transactions of the PostgreSQL store's group commit (a lone write is one too).",
    },
    MetricInfo {
        name: STORE_WRITES,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Writes (claims, attempts, outcomes, duplicates) in those transactions.",
    },
    MetricInfo {
        name: STORE_WRITE_BATCHES_REPLAYED,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Group-commit transactions that failed before their commit and were replayed write by write.",
    },
    MetricInfo {
        name: SEND_RATE_SHARE,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Emails per second this worker currently takes: headroom x account rate / live workers (SES sender only).",
    },
    MetricInfo {
        name: ACCOUNT_SEND_RATE,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "The SES account's send rate in use, in emails per second: MaxSendRate from GetAccount, or sender.send_rate when it cannot be read.",
    },
    MetricInfo {
        name: LIVE_WORKERS,
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Worker processes live in the registry (heartbeat younger than sender.registry_dead_after_seconds), this one included; 1 without PostgreSQL.",
    },
    MetricInfo {
        name: BUILD_INFO,
        kind: MetricKind::Gauge,
        labels: &["version"],
        help: "Always 1; the running version is the label.",
    },
];

/// Label of events whose tenant is not configured.
pub const UNKNOWN_TENANT: &str = "_unknown";
/// Label of bodies without a readable tenant.
pub const NO_TENANT: &str = "_none";

const OUTCOME_LABELS: [DeliveryStatus; 5] = [
    DeliveryStatus::Sent,
    DeliveryStatus::Failed,
    DeliveryStatus::Rejected,
    DeliveryStatus::Suppressed,
    DeliveryStatus::Unknown,
];
const SEND_ERROR_KINDS: [&str; 5] = ["throttled", "unavailable", "paused", "rejected", "ambiguous"];

/// Registers the descriptions and units with the installed recorder, sets `tayori_build_info`,
/// and creates every series of the configured tenants at zero, so that dashboards and alerts
/// see a flat line rather than no data before the first event (and `rate()` works from the
/// first increment).
pub fn describe(version: &'static str, tenants: &[TenantId]) {
    for metric in METRICS {
        let unit = metric.name.ends_with("_seconds").then_some(Unit::Seconds);
        match (metric.kind, unit) {
            (MetricKind::Counter, _) => describe_counter!(metric.name, metric.help),
            (MetricKind::Gauge, Some(unit)) => describe_gauge!(metric.name, unit, metric.help),
            (MetricKind::Gauge, None) => describe_gauge!(metric.name, metric.help),
            (MetricKind::Histogram, Some(unit)) => {
                describe_histogram!(metric.name, unit, metric.help)
            }
            (MetricKind::Histogram, None) => describe_histogram!(metric.name, metric.help),
        }
    }
    gauge!(BUILD_INFO, "version" => version).set(1.0);
    gauge!(IN_FLIGHT).set(0.0);
    counter!(TEMPLATE_RELOADS, "result" => "ok").absolute(0);
    counter!(TEMPLATE_RELOADS, "result" => "error").absolute(0);
    counter!(STORE_WRITE_BATCHES).absolute(0);
    counter!(STORE_WRITES).absolute(0);
    counter!(STORE_WRITE_BATCHES_REPLAYED).absolute(0);
    // The feedback series alerts watch (bounces and complaints recorded, or matching nothing).
    for kind in ["bounce", "complaint"] {
        for result in ["matched", "unmatched"] {
            counter!(FEEDBACK, "kind" => kind, "result" => result).absolute(0);
        }
    }
    let labels = tenants
        .iter()
        .map(|t| t.as_str().to_owned())
        .chain([UNKNOWN_TENANT.to_owned(), NO_TENANT.to_owned()]);
    for tenant in labels {
        counter!(EVENTS_RECEIVED, "tenant" => tenant.clone()).absolute(0);
        for outcome in OUTCOME_LABELS {
            counter!(OUTCOMES, "tenant" => tenant.clone(), "outcome" => outcome.as_str())
                .absolute(0);
        }
        counter!(DUPLICATES, "tenant" => tenant.clone()).absolute(0);
        counter!(RETRIES, "tenant" => tenant.clone()).absolute(0);
        counter!(PAUSED_WAITS, "tenant" => tenant.clone()).absolute(0);
        counter!(HELD, "tenant" => tenant.clone()).absolute(0);
        counter!(HELD_RELEASED, "tenant" => tenant.clone()).absolute(0);
        tenant_holding(&tenant, false, 0, Duration::ZERO);
        for reason in HAND_BACK_REASONS {
            counter!(TENANT_HAND_BACKS, "tenant" => tenant.clone(), "reason" => reason).absolute(0);
        }
        for kind in SEND_ERROR_KINDS {
            counter!(SEND_ERRORS, "tenant" => tenant.clone(), "kind" => kind).absolute(0);
        }
        counter!(RATE_LIMITER_WAITS, "tenant" => tenant).absolute(0);
    }
}

/// The `tenant` label of an event: its id when the tenant is configured, `_unknown` otherwise.
pub fn tenant_label(tenants: &dyn TenantDirectory, tenant: &TenantId) -> String {
    match tenants.tenant(tenant) {
        Some(_) => tenant.as_str().to_owned(),
        None => UNKNOWN_TENANT.to_owned(),
    }
}

/// An event's body was received.
pub fn event_received(tenant: &str) {
    counter!(EVENTS_RECEIVED, "tenant" => tenant.to_owned()).increment(1);
}

/// What the use case made of one event.
pub fn event_handled(tenant: &str, result: &Result<Handled, RetryLater>) {
    let tenant = tenant.to_owned();
    match result {
        Ok(Handled::Decided { outcome, .. }) => {
            counter!(OUTCOMES, "tenant" => tenant, "outcome" => outcome.status().as_str())
                .increment(1);
        }
        Ok(Handled::Duplicate { .. }) => counter!(DUPLICATES, "tenant" => tenant).increment(1),
        Ok(Handled::Held { .. }) => counter!(HELD, "tenant" => tenant).increment(1),
        Ok(Handled::RejectedWithoutKey { .. }) => {
            let outcome = DeliveryStatus::Rejected.as_str();
            counter!(OUTCOMES, "tenant" => tenant, "outcome" => outcome).increment(1);
        }
        Err(_) => counter!(RETRIES, "tenant" => tenant).increment(1),
    }
}

/// An event waits on the queue because its tenant's sending is paused (its retry is counted by
/// [`event_handled`] too).
pub fn event_waits_for_pause(tenant: &str) {
    counter!(PAUSED_WAITS, "tenant" => tenant.to_owned()).increment(1);
}

/// A held event was handed back to the worker's path.
pub fn held_event_released(tenant: &str) {
    counter!(HELD_RELEASED, "tenant" => tenant.to_owned()).increment(1);
}

/// What the store holds for a tenant now: paused or not, its held events and the age of the
/// oldest.
pub fn tenant_holding(tenant: &str, paused: bool, held_events: u64, oldest: Duration) {
    gauge!(TENANT_PAUSED, "tenant" => tenant.to_owned()).set(if paused { 1.0 } else { 0.0 });
    gauge!(HELD_NOW, "tenant" => tenant.to_owned()).set(held_events as f64);
    gauge!(HELD_OLDEST, "tenant" => tenant.to_owned()).set(oldest.as_secs_f64());
}

/// Why a message was handed back to the queue instead of holding a slot.
const HAND_BACK_REASONS: [&str; 3] = ["over_share", "throttled", "rate_capped"];

/// Each tenant's activity in this process, kept beside the metrics so that the worker can publish
/// it for the console ([`tenant_activity`]). A process-wide table like the metrics recorder it
/// sits beside: the consumer and the use case report into it from wherever they run.
static ACTIVITY: std::sync::LazyLock<Mutex<HashMap<String, LocalActivity>>> =
    std::sync::LazyLock::new(Mutex::default);

#[derive(Debug, Default, Clone, Copy)]
struct LocalActivity {
    in_flight: usize,
    waiting: usize,
    slots: usize,
    hand_backs: u64,
    accepted: u64,
}

fn activity(tenant: &str, change: impl FnOnce(&mut LocalActivity)) {
    let mut table = ACTIVITY.lock().unwrap_or_else(PoisonError::into_inner);
    // Called twice per message: a lookup first, so a known tenant costs no allocation.
    match table.get_mut(tenant) {
        Some(activity) => change(activity),
        None => change(table.entry(tenant.to_owned()).or_default()),
    }
}

/// This process's tenants as the console shows them: slots now, hand-backs since the start, and
/// `accepted`, the emails the mail service accepted since the start (the caller turns two
/// readings into a rate). Tenants seen once stay listed.
pub fn tenant_activity() -> Vec<(TenantActivity, u64)> {
    let table = ACTIVITY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut tenants: Vec<_> = table
        .iter()
        .map(|(tenant, local)| {
            let activity = TenantActivity {
                tenant: tenant.clone(),
                in_flight: local.in_flight as u64,
                waiting: local.waiting as u64,
                slots: local.slots as u64,
                send_rate: 0.0,
                hand_backs: local.hand_backs,
                workers: 1,
            };
            (activity, local.accepted)
        })
        .collect();
    tenants.sort_by(|a, b| a.0.tenant.cmp(&b.0.tenant));
    tenants
}

/// A tenant's slots in this worker now: in use, waited for, and how many it may hold.
pub fn tenant_slots(tenant: &str, in_flight: usize, waiting: usize, slots: usize) {
    activity(tenant, |a| {
        a.in_flight = in_flight;
        a.waiting = waiting;
        a.slots = slots;
    });
    gauge!(TENANT_IN_FLIGHT, "tenant" => tenant.to_owned()).set(in_flight as f64);
    gauge!(TENANT_WAITING, "tenant" => tenant.to_owned()).set(waiting as f64);
    gauge!(TENANT_SLOTS, "tenant" => tenant.to_owned()).set(slots as f64);
}

/// A message of `tenant` was handed back to the queue: `over_share` (its tenant held all the
/// slots it may, and the waiting room was full), `throttled` (the mail service throttled the
/// tenant's sends a moment ago) or `rate_capped` (its send rate would make it wait).
pub fn tenant_handed_back(tenant: &str, reason: &'static str) {
    activity(tenant, |a| a.hand_backs += 1);
    counter!(TENANT_HAND_BACKS, "tenant" => tenant.to_owned(), "reason" => reason).increment(1);
}

/// One send call ended after `elapsed`.
pub fn send_finished(tenant: &TenantId, result: Result<(), &SendError>, elapsed: Duration) {
    let tenant = tenant.as_str().to_owned();
    let outcome = match result {
        Ok(()) => {
            activity(&tenant, |a| a.accepted += 1);
            "accepted"
        }
        Err(error) => {
            let kind = match error {
                SendError::Throttled { .. } => "throttled",
                SendError::Unavailable { .. } => "unavailable",
                SendError::Paused { .. } => "paused",
                SendError::Rejected { .. } => "rejected",
                SendError::Ambiguous { .. } => "ambiguous",
            };
            counter!(SEND_ERRORS, "tenant" => tenant.clone(), "kind" => kind).increment(1);
            "error"
        }
    };
    histogram!(SEND_DURATION, "tenant" => tenant, "result" => outcome).record(elapsed);
}

/// The mail service accepted an email `elapsed` after its message was in hand.
pub fn receive_to_send(tenant: &TenantId, elapsed: Duration) {
    histogram!(RECEIVE_TO_SEND, "tenant" => tenant.as_str().to_owned()).record(elapsed);
}

/// Counts an event as in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    started: Instant,
}

impl InFlight {
    /// An event starts being handled.
    pub fn enter() -> Self {
        gauge!(IN_FLIGHT).increment(1.0);
        Self { started: Instant::now() }
    }

    /// Since the event was taken in hand.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// The oldest message of a batch just received from `queue` had waited `age` in it.
pub fn queue_lag(queue: &str, age: Duration) {
    gauge!(QUEUE_LAG, "queue" => queue.to_owned()).set(age.as_secs_f64());
}

/// The templates were loaded again (`ok`), or the new files had problems and the previous
/// templates stay in use.
pub fn template_reloaded(ok: bool) {
    counter!(TEMPLATE_RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
}

/// A send of `tenant` got its slot under the send rates (or gave up) after `waited`. Waits
/// under a millisecond are the limiter's own bookkeeping, not a wait for the rate, and are not
/// counted as waits.
pub fn rate_limiter_waited(tenant: &TenantId, waited: Duration) {
    let tenant = tenant.as_str().to_owned();
    if waited >= Duration::from_millis(1) {
        counter!(RATE_LIMITER_WAITS, "tenant" => tenant.clone()).increment(1);
    }
    histogram!(RATE_LIMITER_WAIT, "tenant" => tenant).record(waited);
}

/// This worker now takes `rate` emails per second of the account's `account_rate`, shared
/// among `live_workers`.
pub fn send_rate_shared(account_rate: f64, live_workers: u32, rate: f64) {
    gauge!(ACCOUNT_SEND_RATE).set(account_rate);
    gauge!(LIVE_WORKERS).set(f64::from(live_workers));
    gauge!(SEND_RATE_SHARE).set(rate);
}

/// The PostgreSQL store committed (or tried to commit) one transaction of `writes` writes.
pub fn store_write_batch(writes: usize) {
    counter!(STORE_WRITE_BATCHES).increment(1);
    counter!(STORE_WRITES).increment(writes as u64);
}

/// A group-commit transaction failed before its commit; its writes are replayed one by one.
pub fn store_write_batch_replayed() {
    counter!(STORE_WRITE_BATCHES_REPLAYED).increment(1);
}

/// What came of one SES feedback message (`None`: the store failed, it will come back).
pub fn feedback_recorded(kind: &'static str, recorded: Option<&crate::ports::FeedbackRecorded>) {
    use crate::ports::FeedbackRecorded;
    let result = match recorded {
        Some(FeedbackRecorded::Matched { reconciled: true, .. }) => "reconciled",
        Some(FeedbackRecorded::Matched { .. }) => "matched",
        Some(FeedbackRecorded::Unmatched) => "unmatched",
        Some(FeedbackRecorded::Duplicate) => "duplicate",
        Some(FeedbackRecorded::Invalid) => "invalid",
        Some(FeedbackRecorded::NotDecidedYet) | None => "retry",
    };
    counter!(FEEDBACK, "kind" => kind, "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for metric in METRICS {
            assert!(metric.name.starts_with("tayori_"), "{}", metric.name);
            match metric.kind {
                MetricKind::Counter => assert!(metric.name.ends_with("_total"), "{}", metric.name),
                MetricKind::Histogram => {
                    assert!(metric.name.ends_with("_seconds"), "{}", metric.name)
                }
                MetricKind::Gauge => assert!(!metric.name.ends_with("_total"), "{}", metric.name),
            }
        }
        let mut names: Vec<_> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a metric is listed twice");
    }
}
