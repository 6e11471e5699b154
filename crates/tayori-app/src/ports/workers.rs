use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// Which worker processes are running, so that they can divide the account's send rate.
///
/// Times come from the caller's clock, as with the delivery store: the hosts' clocks must agree
/// to well within `live_for` (NTP does).
#[async_trait]
pub trait WorkerRegistry: Send + Sync {
    /// Records that `worker` is alive at `now`, registering it when it is new, and returns how
    /// many workers are live: those whose last heartbeat is later than `now - live_for`.
    ///
    /// - The count MUST include `worker` itself, so it is at least 1.
    /// - A worker that left ([`Self::leave`]) MUST not be counted, nor one whose last heartbeat
    ///   is `live_for` old or older (it was killed, or lost its connection).
    /// - A heartbeat of a worker that left registers it again.
    async fn heartbeat(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        live_for: Duration,
    ) -> Result<u32, StoreError>;

    /// Removes `worker` (graceful shutdown), so that the others count it out at their next
    /// heartbeat rather than after `live_for`. MUST succeed when `worker` is not registered.
    async fn leave(&self, worker: &str) -> Result<(), StoreError>;
}
