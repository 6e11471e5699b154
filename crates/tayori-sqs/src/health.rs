//! What a consumer knows about its two dependencies, for readiness and for holding off: the
//! queue (did the last receive succeed, and recently?) and the store behind its handler (did
//! the last probe succeed?). While the store is down the pollers stop receiving, so that an
//! outage does not spend the messages' receives towards the dead-letter queue.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tayori_app::MessageHandler;
use tokio::sync::watch;
use tracing::{info, warn};

/// A consumer's view of its queue and its store; [`SqsConsumer::health`](crate::SqsConsumer::health)
/// hands it out, and `/readyz` reads it.
#[derive(Debug)]
pub struct ConsumerHealth {
    state: Mutex<State>,
    /// True while the store is usable (the gate the pollers wait on).
    store_up: watch::Sender<bool>,
    /// How old the last contact with the queue may be: a long poll plus its call timeout, and
    /// some slack.
    fresh_for: Duration,
}

#[derive(Debug)]
struct State {
    /// The last receive's result (or the start-up read of the queue's attributes).
    queue: Option<Result<(), String>>,
    /// When the queue was last heard from, or a receive last started.
    queue_active_at: Instant,
    /// The last probe's result, or the last handled message's success.
    store: Option<Result<(), String>>,
    /// Since when the store is down.
    store_down_since: Option<Instant>,
}

impl ConsumerHealth {
    pub(crate) fn new(fresh_for: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                queue: None,
                queue_active_at: Instant::now(),
                store: None,
                store_down_since: None,
            }),
            store_up: watch::Sender::new(true),
            fresh_for,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ok` with a detail while the queue answered recently, else the reason.
    pub fn queue(&self) -> Result<String, String> {
        let state = self.state();
        let age = state.queue_active_at.elapsed();
        match &state.queue {
            None => Err("no answer from the queue yet".to_owned()),
            Some(Err(reason)) => Err(format!("the last receive failed: {reason}")),
            Some(Ok(())) if age > self.fresh_for => Err(format!(
                "no receive for {} s{}",
                age.as_secs(),
                if state.store_down_since.is_some() {
                    " (holding off while the store is unavailable)"
                } else {
                    ""
                }
            )),
            Some(Ok(())) => Ok(format!("receiving (last answer {} s ago)", age.as_secs())),
        }
    }

    /// `Ok` while the store's last probe (or handled message) succeeded, else the reason.
    pub fn store(&self) -> Result<String, String> {
        let state = self.state();
        match (&state.store, state.store_down_since) {
            (None, _) => Err("not probed yet".to_owned()),
            (Some(Err(reason)), Some(since)) => {
                Err(format!("unavailable for {} s: {reason}", since.elapsed().as_secs()))
            }
            (Some(Err(reason)), None) => Err(reason.clone()),
            (Some(Ok(())), _) => Ok("writable".to_owned()),
        }
    }

    /// Whether the store is usable now.
    pub fn store_is_up(&self) -> bool {
        *self.store_up.borrow()
    }

    pub(crate) fn subscribe_store(&self) -> watch::Receiver<bool> {
        self.store_up.subscribe()
    }

    /// A receive starts: the queue is not stale while it runs.
    pub(crate) fn receiving(&self) {
        self.state().queue_active_at = Instant::now();
    }

    /// The queue answered (a receive, the start-up read), or failed to.
    pub(crate) fn queue_answered(&self, result: Result<(), String>) {
        let mut state = self.state();
        if result.is_ok() {
            state.queue_active_at = Instant::now();
        }
        state.queue = Some(result);
    }

    /// A probe of the store ended; a message handled successfully counts as a good probe.
    pub(crate) fn store_answered(&self, result: Result<(), String>) {
        let mut state = self.state();
        match (&result, state.store_down_since) {
            (Err(reason), None) => {
                warn!(
                    reason = %reason,
                    "the store is unavailable: no more receives until it is back (one probe \
                     receive per poller every 30 s)"
                );
                state.store_down_since = Some(Instant::now());
                self.store_up.send_replace(false);
            }
            (Ok(()), Some(since)) => {
                info!(down_for_seconds = since.elapsed().as_secs(), "the store is back; receiving");
                state.store_down_since = None;
                self.store_up.send_replace(true);
            }
            _ => {}
        }
        state.store = Some(result);
    }
}

/// How often the store is probed, and the longest one probe may take: an outage is seen within
/// about 3 s, and the pollers stop.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes the handler's store ([`MessageHandler::probe`]) every `PROBE_EVERY` until the stop;
/// the answers open and close the pollers' gate.
pub(crate) async fn probe_store(
    handler: Arc<dyn MessageHandler>,
    health: Arc<ConsumerHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {},
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, handler.probe()).await {
            Ok(answer) => answer,
            Err(_elapsed) => {
                Err(format!("the store's probe gave no answer within {PROBE_TIMEOUT:?}"))
            }
        };
        health.store_answered(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_good_answers_and_down_until_a_good_probe() {
        let health = ConsumerHealth::new(Duration::from_secs(45));
        assert!(health.queue().is_err() && health.store().is_err(), "nothing known yet");
        health.queue_answered(Ok(()));
        health.store_answered(Ok(()));
        assert!(health.queue().is_ok() && health.store().is_ok());
        assert!(health.store_is_up());

        health.store_answered(Err("connection refused".into()));
        assert!(!health.store_is_up());
        let reason = health.store().unwrap_err();
        assert!(reason.contains("connection refused"), "{reason}");
        health.store_answered(Ok(()));
        assert!(health.store_is_up() && health.store().is_ok());

        health.queue_answered(Err("dispatch failure".into()));
        assert!(health.queue().unwrap_err().contains("dispatch failure"));
    }

    #[test]
    fn a_queue_not_heard_from_for_too_long_is_not_ready() {
        let health = ConsumerHealth::new(Duration::ZERO);
        health.queue_answered(Ok(()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(health.queue().unwrap_err().contains("no receive for"));
    }
}
