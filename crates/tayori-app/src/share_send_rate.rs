//! One SES account's send rate, divided among the worker processes that are running.
//!
//! Every worker runs [`ShareSendRate::run`] beside its consumer. Every heartbeat interval it
//! beats its heartbeat in the [`WorkerRegistry`] (which answers how many workers are live), every
//! refresh interval it reads the account's maximum rate from the sender, and after each it sets
//! its sender's rate to `headroom × account rate ÷ live workers`. A worker that joins is counted by the others at
//! their next heartbeat, one that stops gracefully leaves the registry ([`ShareSendRate::leave`])
//! and is counted out at once, and a killed one after `live_for`: the sum of the shares comes
//! back to `headroom × account rate` within one heartbeat of any change the registry sees.
//! Without a registry (SQLite: one machine), the sender takes a fixed fraction of the account's
//! rate, refreshed the same way.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::ports::{Clock, SendRateControl, WorkerRegistry};
use crate::telemetry;

/// How this worker's share of the account's rate is found.
#[derive(Clone)]
pub enum Sharing {
    /// `headroom × account rate ÷ live workers`, the live workers counted in a registry.
    AmongLiveWorkers {
        /// Where the workers beat their heartbeats.
        registry: Arc<dyn WorkerRegistry>,
        /// This process's name in the registry; unique per process.
        worker: String,
        /// The fraction of the account's rate all workers together use (0 < h <= 1).
        headroom: f64,
        /// The time between heartbeats (and rounds).
        heartbeat_every: Duration,
        /// A worker whose last heartbeat is this old counts as gone.
        live_for: Duration,
    },
    /// A fixed fraction of a rate read from the account; the configured rate as it is.
    Fixed {
        /// The fraction (0 < f <= 1).
        fraction_of_account: f64,
    },
}

/// Where the account's rate comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountRateSettings {
    /// Ask the sender for the account's rate; when false, `configured` is the account's rate.
    pub read_from_account: bool,
    /// The account's rate, in emails per second, when it cannot be read (or is not to be).
    pub configured: f64,
    /// How often the account's rate is read again.
    pub refresh_every: Duration,
}

/// Where the account's rate in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSource {
    /// Read from the mail service.
    Account,
    /// The configured rate.
    Configured,
}

/// The share in force after a round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// The account's rate in use, in emails per second.
    pub account_rate: f64,
    /// Where it came from.
    pub source: RateSource,
    /// Live workers, this one included (1 without a registry).
    pub live_workers: u32,
    /// This worker's rate, in emails per second.
    pub rate: f64,
}

#[derive(Default)]
struct State {
    account: Option<(f64, RateSource)>,
    refreshed_at: Option<DateTime<Utc>>,
    /// The last count the registry gave; kept while it cannot be reached.
    live_workers: Option<u32>,
    registry_failing: bool,
    share: Option<Share>,
}

/// Divides the account's rate among the live workers (see the module documentation).
pub struct ShareSendRate {
    control: Arc<dyn SendRateControl>,
    clock: Arc<dyn Clock>,
    account: AccountRateSettings,
    sharing: Sharing,
    state: Mutex<State>,
}

impl ShareSendRate {
    /// Shares the rate of `control`'s account as `sharing` says.
    pub fn new(
        control: Arc<dyn SendRateControl>,
        clock: Arc<dyn Clock>,
        account: AccountRateSettings,
        sharing: Sharing,
    ) -> Self {
        Self { control, clock, account, sharing, state: Mutex::new(State::default()) }
    }

    /// One round: the account's rate when a refresh is due, the heartbeat, then the share set on
    /// the sender (and logged when it changed) and the gauges.
    pub async fn round(&self) -> Share {
        let now = self.clock.now();
        let refresh_due = {
            let state = self.lock();
            state.refreshed_at.is_none_or(|at| {
                (now - at).to_std().is_ok_and(|since| since >= self.account.refresh_every)
            })
        };
        if refresh_due {
            self.refresh_account_rate().await;
        }
        self.beat().await;
        self.apply()
    }

    /// Reads the account's rate (or takes the configured one).
    async fn refresh_account_rate(&self) {
        let now = self.clock.now();
        let read = match self.account.read_from_account {
            true => Some(self.control.account_send_rate().await),
            false => None,
        };
        let mut state = self.lock();
        state.refreshed_at = Some(now);
        state.account = Some(match (read, state.account) {
            (Some(Ok(rate)), _) => (rate, RateSource::Account),
            (Some(Err(error)), Some((last, RateSource::Account))) => {
                // A hiccup must not drop a large account to the configured rate (often the
                // sandbox's 1/s): the last rate read stays until one is read again.
                warn!(
                    %error,
                    account_send_rate = last,
                    "Could not read the SES account's send rate again; keeping the last one read."
                );
                (last, RateSource::Account)
            }
            (Some(Err(error)), _) => {
                warn!(
                    %error,
                    send_rate = self.account.configured,
                    "Could not read the SES account's send rate; using sender.send_rate as the account's rate."
                );
                (self.account.configured, RateSource::Configured)
            }
            (None, _) => (self.account.configured, RateSource::Configured),
        });
    }

    /// Beats the heartbeat and keeps the count of live workers (the last one while the registry
    /// fails).
    async fn beat(&self) {
        let Sharing::AmongLiveWorkers { registry, worker, live_for, .. } = &self.sharing else {
            return;
        };
        let beat = registry.heartbeat(worker, self.clock.now(), *live_for).await;
        let mut state = self.lock();
        match beat {
            Ok(live) => {
                if state.registry_failing {
                    info!(live_workers = live, "The worker registry answers again.");
                }
                state.registry_failing = false;
                state.live_workers = Some(live.max(1));
            }
            Err(error) => {
                if !state.registry_failing {
                    warn!(
                        %error,
                        "Cannot beat this worker's heartbeat; keeping the last count of live workers."
                    );
                }
                state.registry_failing = true;
            }
        }
    }

    /// Sets the share that the account's rate and the live workers known now give.
    fn apply(&self) -> Share {
        let mut state = self.lock();
        let (account_rate, source) =
            state.account.unwrap_or((self.account.configured, RateSource::Configured));
        let live_workers = match &self.sharing {
            Sharing::AmongLiveWorkers { .. } => state.live_workers.unwrap_or(1),
            Sharing::Fixed { .. } => 1,
        };
        let rate = match (&self.sharing, source) {
            (Sharing::AmongLiveWorkers { headroom, .. }, _) => {
                headroom * account_rate / f64::from(live_workers)
            }
            (Sharing::Fixed { fraction_of_account }, RateSource::Account) => {
                fraction_of_account * account_rate
            }
            (Sharing::Fixed { .. }, RateSource::Configured) => account_rate,
        };
        let share = Share { account_rate, source, live_workers, rate };
        if state.share.is_none_or(|last| last.rate != rate) {
            self.control.set_send_rate(rate);
            info!(
                send_rate = rate,
                account_send_rate = account_rate,
                source = ?source,
                live_workers,
                "This worker's share of the SES send rate changed."
            );
        }
        state.share = Some(share);
        telemetry::send_rate_shared(account_rate, live_workers, rate);
        share
    }

    /// The first round, before the worker takes any message. When other workers are live, it
    /// waits one heartbeat interval and rounds again: by then each of them has counted this
    /// one and lowered its share, so a joining worker never pushes the sum above `headroom ×`
    /// the account's rate.
    pub async fn join(&self) -> Share {
        let share = self.round().await;
        match &self.sharing {
            Sharing::AmongLiveWorkers { heartbeat_every, .. } if share.live_workers > 1 => {
                self.clock.sleep(*heartbeat_every).await;
                self.round().await
            }
            _ => share,
        }
    }

    /// Runs forever: a heartbeat every interval, and the account's rate read again every
    /// refresh, in two loops so that a slow `GetAccount` never delays a heartbeat (a late one
    /// would let the others count this worker out while it still sends). Stop it by dropping
    /// (aborting) it, then call [`Self::leave`].
    pub async fn run(&self) {
        let heartbeats = async {
            let Sharing::AmongLiveWorkers { heartbeat_every, .. } = &self.sharing else {
                return std::future::pending().await;
            };
            loop {
                self.clock.sleep(*heartbeat_every).await;
                self.beat().await;
                self.apply();
            }
        };
        let refreshes = async {
            loop {
                self.clock.sleep(self.account.refresh_every).await;
                self.refresh_account_rate().await;
                self.apply();
            }
        };
        futures::future::join(heartbeats, refreshes).await;
    }

    /// Leaves the registry, so that the other workers take this one's share at their next
    /// heartbeat. Call it once the sends are done (graceful shutdown).
    pub async fn leave(&self) {
        if let Sharing::AmongLiveWorkers { registry, worker, .. } = &self.sharing {
            match registry.leave(worker).await {
                Ok(()) => info!(worker, "Left the worker registry."),
                Err(error) => {
                    warn!(%error, worker, "Cannot leave the worker registry; the others count this worker out once its heartbeat ages.");
                }
            }
        }
    }

    /// The share set by the last round, if any.
    pub fn share(&self) -> Option<Share> {
        self.lock().share
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
