//! What the handle-event use case reports through `tayori_app::telemetry`, read back from a
//! recording metrics recorder: received, outcomes by tenant, duplicates, retries (and those held
//! back by a pause), send errors by kind, the send and receive-to-send latencies, and the in-flight gauge back at zero.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::sync::Arc;

use futures::executor::block_on;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use tayori_app::handle_event::SendingPauses;
use tayori_app::ports::SendError;
use tayori_app::telemetry::{self, MetricKind};
use tayori_app::testing::{
    FakePauseList, FakeRenderer, FakeSuppressions, FakeTenants, InMemoryStore, ManualClock,
    RecordingSender, example_event,
};
use tayori_app::{DeliveryPolicy, EventHandler, InboundMessage};

fn handler(sender: RecordingSender) -> EventHandler {
    EventHandler {
        store: Arc::new(InMemoryStore::default()),
        tenants: Arc::new(FakeTenants::with(&["acme-invest", "acme-bank"])),
        suppressions: Arc::new(FakeSuppressions::default()),
        renderer: Arc::new(FakeRenderer::knowing(&["account.deposit_completed"])),
        sender: Arc::new(sender),
        clock: Arc::new(ManualClock::new()),
        policy: DeliveryPolicy::default(),
        worker_id: "test-worker".into(),
        pauses: Default::default(),
    }
}

/// Every series as `name{label=value,...}` (labels sorted) → its value; histograms as their
/// sample count.
fn series(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let mut labels: Vec<String> =
            key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        };
        out.insert(name, value);
    }
    out
}

#[test]
fn the_use_case_reports_each_message_once_with_bounded_tenant_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let throttled = SendError::Throttled { reason: "slow down".into(), retry_after: None };
    let clock = Arc::new(ManualClock::new());
    let handler = EventHandler {
        clock: clock.clone(),
        ..handler(RecordingSender::failing_with(vec![throttled]))
    };
    let message = |v: &serde_json::Value| InboundMessage::first(v.to_string().into_bytes());
    let mut stranger = example_event();
    stranger["tenant"] = json!("someone-we-do-not-serve");
    stranger["id"] = json!("stranger-1");

    metrics::with_local_recorder(&recorder, || {
        telemetry::describe("test", &[]);
        // Throttled (a retry), then sent once the throttling wait is over, then a duplicate; an
        // unknown tenant; garbage.
        for body in [&example_event(), &example_event(), &example_event(), &stranger] {
            let _ = block_on(handler.handle(&message(body)));
            clock.advance(std::time::Duration::from_secs(1));
        }
        let _ = block_on(handler.handle(&InboundMessage::first(b"not json".to_vec())));
    });

    let got = series(&snapshotter);
    let at = |name: &str| got.get(name).copied().unwrap_or_else(|| panic!("{name}: {got:#?}"));
    assert_eq!(at("tayori_events_received_total{tenant=acme-invest}"), 3.0);
    assert_eq!(at("tayori_retries_total{tenant=acme-invest}"), 1.0);
    let paused_waits = got.get("tayori_paused_waits_total{tenant=acme-invest}").copied();
    assert_eq!(paused_waits.unwrap_or(0.0), 0.0, "throttled, not paused");
    assert_eq!(at("tayori_outcomes_total{outcome=sent,tenant=acme-invest}"), 1.0);
    assert_eq!(at("tayori_duplicates_total{tenant=acme-invest}"), 1.0);
    assert_eq!(at("tayori_send_errors_total{kind=throttled,tenant=acme-invest}"), 1.0);
    assert_eq!(at("tayori_send_duration_seconds{result=error,tenant=acme-invest}"), 1.0);
    assert_eq!(at("tayori_send_duration_seconds{result=accepted,tenant=acme-invest}"), 1.0);
    assert_eq!(at("tayori_receive_to_send_seconds{tenant=acme-invest}"), 1.0);
    // A tenant nobody configured is not a label value: the producer does not choose labels.
    assert_eq!(at("tayori_events_received_total{tenant=_unknown}"), 1.0);
    assert_eq!(at("tayori_outcomes_total{outcome=rejected,tenant=_unknown}"), 1.0);
    assert_eq!(at("tayori_outcomes_total{outcome=rejected,tenant=_none}"), 1.0);
    assert!(got.keys().all(|k| !k.contains("someone-we-do-not-serve")), "{got:#?}");
    assert_eq!(at("tayori_events_in_flight{}"), 0.0, "every message left the gauge");
    assert_eq!(at("tayori_build_info{version=test}"), 1.0);
}

#[test]
fn events_held_back_by_a_pause_are_counted_apart_from_other_retries() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let paused = SendError::Paused {
        reason: "sending paused for this configuration set".into(),
        scope: tayori_app::ports::PauseScope::Tenant,
    };
    let mut handler = handler(RecordingSender::failing_with(vec![paused]));
    handler.pauses = SendingPauses::with_shared(
        Arc::new(FakePauseList::pausing("acme-bank", "an operator: bad template")),
        std::time::Duration::from_secs(1),
    );
    let event = |tenant: &str, id: &str| {
        let mut event = example_event();
        event["tenant"] = json!(tenant);
        event["id"] = json!(id);
        InboundMessage::first(event.to_string().into_bytes())
    };

    metrics::with_local_recorder(&recorder, || {
        telemetry::describe("test", &[]);
        // acme-bank: paused by an operator (the shared list), twice.
        for id in ["b-1", "b-2"] {
            assert!(block_on(handler.handle(&event("acme-bank", id))).is_err());
        }
        // acme-invest: SES says its sending is paused (a retry, not yet a wait), then the next
        // event waits for that pause without a send.
        assert!(block_on(handler.handle(&event("acme-invest", "i-1"))).is_err());
        assert!(block_on(handler.handle(&event("acme-invest", "i-2"))).is_err());
    });

    let got = series(&snapshotter);
    let at = |name: &str| got.get(name).copied().unwrap_or_else(|| panic!("{name}: {got:#?}"));
    assert_eq!(at("tayori_paused_waits_total{tenant=acme-bank}"), 2.0);
    assert_eq!(at("tayori_retries_total{tenant=acme-bank}"), 2.0);
    assert_eq!(at("tayori_paused_waits_total{tenant=acme-invest}"), 1.0);
    assert_eq!(at("tayori_retries_total{tenant=acme-invest}"), 2.0);
    assert_eq!(at("tayori_send_errors_total{kind=paused,tenant=acme-invest}"), 1.0);
}

#[test]
fn the_release_loop_gauges_paused_tenants_and_their_held_events() {
    use tayori_app::ports::{Clock, HeldEntry, HeldEvent, HeldEvents};
    use tayori_app::testing::FakeHeldEvents;
    use tayori_app::{ReleaseHeldEvents, ReleaseSettings};
    use tayori_domain::{EventId, EventSource, EventType, IdempotencyKey, TenantId};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let handler = Arc::new(handler(RecordingSender::default()));
    let clock = Arc::new(ManualClock::new());
    let held = Arc::new(FakeHeldEvents::default());
    let release = ReleaseHeldEvents {
        held: held.clone(),
        handler: handler.clone(),
        clock: clock.clone(),
        settings: ReleaseSettings::default(),
    };
    let hold = |tenant: &str, id: &str| {
        let entry = HeldEntry {
            key: IdempotencyKey::new(
                TenantId::parse(tenant).unwrap(),
                EventSource::parse("core").unwrap(),
                EventId::parse(id).unwrap(),
            ),
            event_type: EventType::parse("account.deposit_completed").unwrap(),
            receive_count: 1,
            reason: "bad template".into(),
            held_at: clock.now(),
        };
        block_on(held.hold(&HeldEvent { entry, body: b"{}".to_vec() })).unwrap();
    };

    // acme-bank paused with two events held, the older 60 s old; a tenant nobody configured
    // with one held (counted under `_unknown`, whatever its name).
    held.pause("acme-bank", "bad template");
    hold("acme-bank", "b-1");
    clock.advance(std::time::Duration::from_secs(30));
    hold("acme-bank", "b-2");
    hold("someone-we-do-not-serve", "s-1");
    clock.advance(std::time::Duration::from_secs(30));
    let mut gauged = std::collections::BTreeSet::new();
    metrics::with_local_recorder(&recorder, || {
        telemetry::describe("test", &[TenantId::parse("acme-invest").unwrap()]);
        block_on(release.refresh_gauges(&mut gauged)).unwrap();
    });
    // One snapshot per phase: the debugging recorder hands each value out once.
    let got = series(&snapshotter);
    let at = |name: &str| got.get(name).copied().unwrap_or_else(|| panic!("{name}: {got:#?}"));
    assert_eq!(at("tayori_tenant_paused{tenant=acme-bank}"), 1.0);
    assert_eq!(at("tayori_held_events{tenant=acme-bank}"), 2.0);
    assert_eq!(at("tayori_held_events_oldest_seconds{tenant=acme-bank}"), 60.0);
    assert_eq!(at("tayori_held_events{tenant=_unknown}"), 1.0);
    assert_eq!(at("tayori_tenant_paused{tenant=_unknown}"), 0.0);
    assert_eq!(at("tayori_tenant_paused{tenant=acme-invest}"), 0.0, "configured: there from start");
    assert_eq!(at("tayori_held_events{tenant=acme-invest}"), 0.0);

    // Resumed and released (the fake's lease and forget): every gauge of acme-bank back to 0.
    held.resume("acme-bank");
    let now = clock.now();
    for leased in
        block_on(held.lease_released(10, now, now + chrono::Duration::minutes(5))).unwrap()
    {
        assert!(block_on(held.forget(&leased.event.entry.key, leased.lease)).unwrap());
    }
    metrics::with_local_recorder(&recorder, || {
        block_on(release.refresh_gauges(&mut gauged)).unwrap();
    });
    let got = series(&snapshotter);
    let at = |name: &str| got.get(name).copied().unwrap_or_else(|| panic!("{name}: {got:#?}"));
    assert_eq!(at("tayori_tenant_paused{tenant=acme-bank}"), 0.0);
    assert_eq!(at("tayori_held_events{tenant=acme-bank}"), 0.0);
    assert_eq!(at("tayori_held_events_oldest_seconds{tenant=acme-bank}"), 0.0);
    assert_eq!(at("tayori_held_events{tenant=_unknown}"), 0.0);
    assert!(gauged.is_empty(), "{gauged:?}");
}

#[test]
fn every_metric_is_documented_in_docs_metrics_md() {
    let doc = std::fs::read_to_string(manifest_dir().join("../../docs/metrics.md")).unwrap();
    for metric in telemetry::METRICS {
        let kind = match metric.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        let row = doc
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", metric.name)))
            .unwrap_or_else(|| panic!("docs/metrics.md has no row for {}", metric.name));
        assert!(
            row.contains(&format!("| {kind} |")),
            "{}: documented type; row: {row}",
            metric.name
        );
        for label in metric.labels {
            assert!(
                row.contains(&format!("`{label}`")),
                "{}: label {label}; row: {row}",
                metric.name
            );
        }
    }
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}

/// Keeps what was published, by worker.
#[derive(Default)]
struct Board {
    published: std::sync::Mutex<Vec<Vec<tayori_app::ports::TenantActivity>>>,
    withdrawn: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl tayori_app::ports::ActivityBoard for Board {
    async fn publish(
        &self,
        _worker: &str,
        _now: chrono::DateTime<chrono::Utc>,
        tenants: &[tayori_app::ports::TenantActivity],
    ) -> Result<(), tayori_app::ports::StoreError> {
        self.published.lock().unwrap().push(tenants.to_vec());
        Ok(())
    }
    async fn read(
        &self,
        _tenants: Option<&[tayori_domain::TenantId]>,
        _now: chrono::DateTime<chrono::Utc>,
        _live_for: std::time::Duration,
    ) -> Result<Vec<tayori_app::ports::TenantActivity>, tayori_app::ports::StoreError> {
        Ok(Vec::new())
    }
    async fn withdraw(&self, _worker: &str) -> Result<(), tayori_app::ports::StoreError> {
        self.withdrawn.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_worker_publishes_its_tenants_slots_hand_backs_and_send_rate_then_withdraws() {
    use std::time::Duration;
    // A tenant name of its own: the activity table is the process's, shared by these tests.
    let tenant = tayori_domain::TenantId::parse("acme-activity").unwrap();
    telemetry::tenant_slots("acme-activity", 7, 3, 50);
    telemetry::tenant_handed_back("acme-activity", "over_share");
    let board = Arc::new(Board::default());
    let clock = Arc::new(ManualClock::new());
    let publish = tayori_app::PublishActivity {
        board: board.clone(),
        worker: "w/1".into(),
        clock: clock.clone(),
        every: Duration::from_secs(5),
    };
    let rounds = std::sync::atomic::AtomicU32::new(0);
    let should_stop = || {
        // Between the first and the second round (each waits in 250 ms sleeps on the manual
        // clock), 10 emails are accepted: 2 a second over the 5 s.
        let polls = rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if polls == 1 {
            for _ in 0..10 {
                telemetry::send_finished(&tenant, Ok(()), Duration::from_millis(5));
            }
        }
        board.published.lock().unwrap().len() >= 2
    };
    block_on(publish.run(&should_stop));
    let published = board.published.lock().unwrap();
    let ours = |round: usize| {
        published[round].iter().find(|a| a.tenant == "acme-activity").cloned().unwrap()
    };
    let first = ours(0);
    assert_eq!((first.in_flight, first.waiting, first.slots, first.hand_backs), (7, 3, 50, 1));
    assert_eq!(first.send_rate, 0.0, "no rate before a second reading");
    assert!((ours(1).send_rate - 2.0).abs() < 1e-9, "{:?}", ours(1));
    assert!(board.withdrawn.load(std::sync::atomic::Ordering::SeqCst), "withdrawn at the stop");
}
