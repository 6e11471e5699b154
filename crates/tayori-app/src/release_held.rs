//! Handing the events held for a paused tenant back to the event path once it is resumed.
//!
//! [`EventHandler::handle`] holds the events of a tenant paused by an operator or the reputation
//! guard in a [`HeldEvents`] store (and the queue then deletes them), so that a pause of hours
//! does not push them into the dead-letter queue. Every worker runs [`ReleaseHeldEvents::run`]
//! beside its consumer: it leases a batch of held events of tenants no longer paused, hands each
//! to the same [`EventHandler::handle`] as a queue message, and forgets the ones it decided. A
//! worker that dies mid-batch leaves its lease to run out; the next round takes the events
//! again, and the idempotency key makes a second handling of a decided one a duplicate.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::{info, warn};

use crate::handle_event::{EventHandler, Handled, InboundMessage};
use crate::ports::{Clock, HeldEvent, HeldEvents, LeasedEvent, StoreError};
use crate::telemetry;

/// How often the release loop reads the held events' counts for the gauges: one grouped count
/// per worker, cheap beside the rounds, and well inside any alert's window.
pub const GAUGES_EVERY: Duration = Duration::from_secs(15);

/// How the release rounds go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseSettings {
    /// Held events leased per round; their bodies are in memory together (32 × 1 MiB at worst,
    /// beside the consumer's own `max_in_flight_bytes`).
    pub batch_size: u32,
    /// Events of one round handled at once.
    pub concurrency: usize,
    /// How long a leased event is left to this worker: a worker that dies mid-round delays its
    /// events by this much. Above the longest handling of a batch (sends wait for rate-limit
    /// slots).
    pub lease_for: Duration,
    /// The wait between rounds once nothing is left to release (after a resume, the held events
    /// start going out within this time).
    pub every: Duration,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            batch_size: 32,
            // 1,431 events/s released on the bench (8: 740, 64: 1,649; docs/benchmarks.md),
            // about half of what the consumer takes, so live traffic keeps its share.
            concurrency: 32,
            lease_for: Duration::from_secs(300),
            every: Duration::from_secs(5),
        }
    }
}

/// What release rounds did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Events decided (or found decided before) and forgotten.
    pub decided: u64,
    /// Events held again: their tenant was paused again meanwhile.
    pub held_again: u64,
    /// Events left to a later round (store unavailable, the key busy elsewhere); their lease
    /// runs out first.
    pub later: u64,
}

impl Released {
    /// The events leased.
    pub fn leased(&self) -> u64 {
        self.decided + self.held_again + self.later
    }

    fn add(&mut self, other: Released) {
        self.decided += other.decided;
        self.held_again += other.held_again;
        self.later += other.later;
    }
}

/// Releases the held events of resumed tenants (see the module's documentation).
pub struct ReleaseHeldEvents {
    /// Where the events are held.
    pub held: Arc<dyn HeldEvents>,
    /// The event path they go back to.
    pub handler: Arc<EventHandler>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Batch, concurrency, lease, pace.
    pub settings: ReleaseSettings,
}

impl ReleaseHeldEvents {
    /// One round: leases up to a batch of released events and hands each to the event path.
    pub async fn release_batch(&self) -> Result<Released, StoreError> {
        let now = self.clock.now();
        let lease_until = now + self.settings.lease_for;
        let leased = self.held.lease_released(self.settings.batch_size, now, lease_until).await?;
        let mut released = Released::default();
        let mut handled = futures::stream::iter(leased)
            .map(|leased| self.release_one(leased))
            .buffer_unordered(self.settings.concurrency.max(1));
        while let Some(one) = handled.next().await {
            released.add(one);
        }
        Ok(released)
    }

    async fn release_one(&self, leased: LeasedEvent) -> Released {
        let LeasedEvent { event, lease } = leased;
        let HeldEvent { entry, body } = event;
        let message = InboundMessage::internal(body, entry.receive_count);
        let tenant = telemetry::tenant_label(&*self.handler.tenants, &entry.key.tenant);
        match self.handler.handle(&message).await {
            // The hold ended this lease; the event waits for the next resume.
            Ok(Handled::Held { .. }) => Released { held_again: 1, ..Released::default() },
            Ok(_) => {
                telemetry::held_event_released(&tenant);
                if let Err(error) = self.held.forget(&entry.key, lease).await {
                    // Decided but still held: the next lease hands it over again, as a duplicate.
                    warn!(%error, key = %entry.key, "a released event could not be forgotten");
                }
                Released { decided: 1, ..Released::default() }
            }
            Err(retry) => {
                info!(reason = %retry.reason, key = %entry.key, "held event left to a later round");
                Released { later: 1, ..Released::default() }
            }
        }
    }

    /// Reads what the store holds per tenant and sets the gauges operators alert on (paused,
    /// held events, the oldest's age); a tenant gauged before and gone now is set back to zero.
    /// Tenants that are not configured are added up under `_unknown`.
    pub async fn refresh_gauges(&self, gauged: &mut BTreeSet<String>) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut by_label: BTreeMap<String, (bool, u64, Duration)> = BTreeMap::new();
        for holding in self.held.holdings().await? {
            let label = telemetry::tenant_label(&*self.handler.tenants, &holding.tenant);
            let age = holding
                .oldest_held_at
                .and_then(|oldest| (now - oldest).to_std().ok())
                .unwrap_or_default();
            let entry = by_label.entry(label).or_default();
            *entry = (entry.0 || holding.paused, entry.1 + holding.held_events, entry.2.max(age));
        }
        for gone in gauged.iter().filter(|label| !by_label.contains_key(*label)) {
            telemetry::tenant_holding(gone, false, 0, Duration::ZERO);
        }
        for (label, (paused, held_events, oldest)) in &by_label {
            telemetry::tenant_holding(label, *paused, *held_events, *oldest);
        }
        *gauged = by_label.into_keys().collect();
        Ok(())
    }

    /// Runs rounds until `should_stop` says so (asked between rounds and every second while
    /// waiting): a batch decided in full is followed by the next at once, anything less by a
    /// wait of `settings.every`. A store error is logged and waited out. Every
    /// [`GAUGES_EVERY`] it refreshes the gauges too. Returns what it did.
    pub async fn run(&self, should_stop: &(dyn Fn() -> bool + Sync)) -> Released {
        let mut total = Released::default();
        // Logged every ten seconds while a backlog goes out, and when it is done: one line per
        // round would be dozens a second.
        let mut unlogged = (Released::default(), self.clock.now());
        let (mut gauged, mut gauges_due) = (BTreeSet::new(), self.clock.now());
        while !should_stop() {
            if self.clock.now() >= gauges_due {
                if let Err(error) = self.refresh_gauges(&mut gauged).await {
                    warn!(%error, "cannot read the held events' counts for the gauges");
                }
                gauges_due = self.clock.now() + GAUGES_EVERY;
            }
            let full = match self.release_batch().await {
                Ok(released) => {
                    total.add(released);
                    unlogged.0.add(released);
                    let full = released.decided >= u64::from(self.settings.batch_size);
                    let due = self.clock.now() - unlogged.1 >= chrono::Duration::seconds(10);
                    if unlogged.0.leased() > 0 && (due || !full) {
                        info!(released = ?unlogged.0, "released held events");
                        unlogged = (Released::default(), self.clock.now());
                    }
                    full
                }
                Err(error) => {
                    warn!(%error, "cannot lease held events; trying again later");
                    false
                }
            };
            if !full {
                self.wait(self.settings.every, should_stop).await;
            }
        }
        total
    }

    async fn wait(&self, duration: Duration, should_stop: &(dyn Fn() -> bool + Sync)) {
        let mut left = duration;
        while !left.is_zero() && !should_stop() {
            let step = left.min(Duration::from_secs(1));
            self.clock.sleep(step).await;
            left -= step;
        }
    }
}
