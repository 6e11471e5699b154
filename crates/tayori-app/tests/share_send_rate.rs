//! Dividing the account's send rate among live workers, against an in-memory registry (live =
//! heartbeat younger than `live_for`, by the given clock) and a sender that records the rates
//! it is given. The PostgreSQL registry is tested in tayori-postgres, the whole of it with
//! three worker processes in the binary's `rate_sharing` test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::executor::block_on;
use tayori_app::ports::{AccountRateError, Clock, SendRateControl, StoreError, WorkerRegistry};
use tayori_app::testing::ManualClock;
use tayori_app::{AccountRateSettings, RateSource, ShareSendRate, Sharing};

#[derive(Default)]
struct FakeRegistry {
    beats: Mutex<HashMap<String, DateTime<Utc>>>,
    down: Mutex<bool>,
}

#[async_trait]
impl WorkerRegistry for FakeRegistry {
    async fn heartbeat(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        live_for: Duration,
    ) -> Result<u32, StoreError> {
        if *self.down.lock().unwrap() {
            return Err(StoreError::Unavailable("down".into()));
        }
        let mut beats = self.beats.lock().unwrap();
        beats.insert(worker.to_owned(), now);
        let cutoff = now - chrono::Duration::from_std(live_for).unwrap();
        Ok(beats.values().filter(|at| **at > cutoff).count() as u32)
    }

    async fn leave(&self, worker: &str) -> Result<(), StoreError> {
        self.beats.lock().unwrap().remove(worker);
        Ok(())
    }
}

/// Answers `account` (or an error when `None`) and records every rate set.
struct FakeSender {
    account: Mutex<Option<f64>>,
    reads: Mutex<u32>,
    rates: Mutex<Vec<f64>>,
}

impl FakeSender {
    fn new(account: Option<f64>) -> Arc<Self> {
        Arc::new(Self {
            account: Mutex::new(account),
            reads: Mutex::new(0),
            rates: Mutex::default(),
        })
    }
}

#[async_trait]
impl SendRateControl for FakeSender {
    async fn account_send_rate(&self) -> Result<f64, AccountRateError> {
        *self.reads.lock().unwrap() += 1;
        self.account
            .lock()
            .unwrap()
            .ok_or_else(|| AccountRateError::Denied { reason: "AccessDenied".into() })
    }

    fn set_send_rate(&self, per_second: f64) {
        self.rates.lock().unwrap().push(per_second);
    }
}

const SETTINGS: AccountRateSettings = AccountRateSettings {
    read_from_account: true,
    configured: 2.0,
    refresh_every: Duration::from_secs(300),
};

fn among(registry: &Arc<FakeRegistry>, worker: &str) -> Sharing {
    Sharing::AmongLiveWorkers {
        registry: registry.clone(),
        worker: worker.into(),
        headroom: 0.9,
        heartbeat_every: Duration::from_secs(2),
        live_for: Duration::from_secs(10),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn workers_divide_headroom_times_the_account_rate_and_re_divide_on_join_leave_and_death() {
    let clock = Arc::new(ManualClock::new());
    let registry = Arc::new(FakeRegistry::default());
    let senders: Vec<_> = (0..3).map(|_| FakeSender::new(Some(30.0))).collect();
    let workers: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, sender)| {
            ShareSendRate::new(
                sender.clone(),
                clock.clone(),
                SETTINGS,
                among(&registry, &format!("w{i}")),
            )
        })
        .collect();

    // Alone, the first takes 0.9 × 30.
    let share = block_on(workers[0].round());
    assert_eq!((share.live_workers, share.source), (1, RateSource::Account));
    assert!(close(share.rate, 27.0), "{share:?}");
    // Three join; at their next rounds all take a third.
    block_on(workers[1].round());
    block_on(workers[2].round());
    clock.advance(Duration::from_secs(2));
    let rates: Vec<f64> = workers.iter().map(|w| block_on(w.round()).rate).collect();
    assert!(rates.iter().all(|rate| close(*rate, 9.0)), "{rates:?}");
    assert!(close(rates.iter().sum::<f64>(), 27.0));
    assert!(close(*senders[0].rates.lock().unwrap().last().unwrap(), 9.0));

    // One leaves gracefully: the two others take 13.5 each at their next round.
    block_on(workers[2].leave());
    clock.advance(Duration::from_secs(2));
    for worker in &workers[..2] {
        assert!(close(block_on(worker.round()).rate, 13.5));
    }

    // One is killed (no more heartbeats after the last round's): counted out once its last
    // beat is 10 s old, not before.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(2));
        assert!(close(block_on(workers[0].round()).rate, 13.5), "still within 10 s");
    }
    clock.advance(Duration::from_secs(2));
    let share = block_on(workers[0].round());
    assert_eq!(share.live_workers, 1);
    assert!(close(share.rate, 27.0));

    // The rate is set on the sender only when it changes.
    assert_eq!(*senders[0].rates.lock().unwrap(), [27.0, 9.0, 13.5, 27.0]);
    // The account's rate was read once (no refresh due within 300 s).
    assert_eq!(*senders[0].reads.lock().unwrap(), 1);
}

#[test]
fn the_account_rate_is_read_again_every_refresh_and_a_failed_read_keeps_the_last_one() {
    let clock = Arc::new(ManualClock::new());
    let registry = Arc::new(FakeRegistry::default());
    let sender = FakeSender::new(Some(30.0));
    let worker = ShareSendRate::new(sender.clone(), clock.clone(), SETTINGS, among(&registry, "w"));
    assert!(close(block_on(worker.round()).rate, 27.0));
    // SES raises the quota: seen at the first round 300 s after the last read.
    *sender.account.lock().unwrap() = Some(100.0);
    clock.advance(Duration::from_secs(298));
    assert!(close(block_on(worker.round()).rate, 27.0));
    clock.advance(Duration::from_secs(2));
    assert!(close(block_on(worker.round()).rate, 90.0));
    // A read that fails later keeps the rate read last, not the configured one.
    *sender.account.lock().unwrap() = None;
    clock.advance(Duration::from_secs(300));
    let share = block_on(worker.round());
    assert_eq!(share.source, RateSource::Account);
    assert!(close(share.rate, 90.0));
    assert_eq!(*sender.reads.lock().unwrap(), 3);
}

#[test]
fn without_the_account_rate_the_configured_rate_is_divided() {
    let clock = Arc::new(ManualClock::new());
    let registry = Arc::new(FakeRegistry::default());
    let denied = FakeSender::new(None);
    let a = ShareSendRate::new(denied.clone(), clock.clone(), SETTINGS, among(&registry, "a"));
    let not_read = FakeSender::new(Some(30.0));
    let settings = AccountRateSettings { read_from_account: false, ..SETTINGS };
    let b = ShareSendRate::new(not_read.clone(), clock.clone(), settings, among(&registry, "b"));
    block_on(a.round());
    block_on(b.round());
    let share = block_on(a.round());
    assert_eq!((share.source, share.live_workers), (RateSource::Configured, 2));
    assert!(close(share.rate, 0.9 * 2.0 / 2.0), "{share:?}");
    assert!(close(block_on(b.round()).rate, 0.9));
    assert_eq!(*not_read.reads.lock().unwrap(), 0, "read_from_account = false asks nothing");
}

#[test]
fn a_worker_joining_others_waits_a_heartbeat_so_the_sum_never_exceeds_the_headroom() {
    let clock = Arc::new(ManualClock::new());
    let registry = Arc::new(FakeRegistry::default());
    let first_sender = FakeSender::new(Some(30.0));
    let first =
        ShareSendRate::new(first_sender.clone(), clock.clone(), SETTINGS, among(&registry, "a"));
    let started = clock.now();
    assert!(close(block_on(first.join()).rate, 27.0));
    assert_eq!(clock.now(), started, "alone: no wait");

    let second = ShareSendRate::new(
        FakeSender::new(Some(30.0)),
        clock.clone(),
        SETTINGS,
        among(&registry, "b"),
    );
    // The newcomer starts sending only after one heartbeat interval, by which time the first
    // worker's loop has counted it.
    let joining = async {
        let share = second.join().await;
        (share, clock.now())
    };
    let (share, joined_at) = block_on(joining);
    assert_eq!(joined_at - started, chrono::Duration::seconds(2), "one heartbeat interval");
    assert!(close(share.rate, 13.5));
    assert!(close(block_on(first.round()).rate, 13.5));
}

#[test]
fn a_registry_outage_keeps_the_last_count() {
    let clock = Arc::new(ManualClock::new());
    let registry = Arc::new(FakeRegistry::default());
    let sender = FakeSender::new(Some(30.0));
    let a = ShareSendRate::new(sender.clone(), clock.clone(), SETTINGS, among(&registry, "a"));
    let b = ShareSendRate::new(
        FakeSender::new(Some(30.0)),
        clock.clone(),
        SETTINGS,
        among(&registry, "b"),
    );
    block_on(b.round());
    assert!(close(block_on(a.round()).rate, 13.5));
    *registry.down.lock().unwrap() = true;
    clock.advance(Duration::from_secs(60));
    let share = block_on(a.round());
    assert_eq!(share.live_workers, 2, "not 1: that would double the rate");
    assert!(close(share.rate, 13.5));
}

#[test]
fn without_a_registry_a_fixed_fraction_of_the_account_is_taken() {
    let clock = Arc::new(ManualClock::new());
    let sender = FakeSender::new(Some(30.0));
    let solo = ShareSendRate::new(
        sender.clone(),
        clock.clone(),
        SETTINGS,
        Sharing::Fixed { fraction_of_account: 0.5 },
    );
    let share = block_on(solo.round());
    assert_eq!(share.live_workers, 1);
    assert!(close(share.rate, 15.0));
    // Failing from the start: the configured rate as it is (as before the registry existed).
    let denied = ShareSendRate::new(
        FakeSender::new(None),
        clock.clone(),
        SETTINGS,
        Sharing::Fixed { fraction_of_account: 0.5 },
    );
    assert!(close(block_on(denied.round()).rate, 2.0));
}
