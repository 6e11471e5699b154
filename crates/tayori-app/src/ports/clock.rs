use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The time, from one place, so that leases, timestamps and backoff can be tested.
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time. It MUST not go backwards by more than clock adjustments do.
    fn now(&self) -> DateTime<Utc>;

    /// Waits for `duration` (a fake clock MAY just move its time forward).
    async fn sleep(&self, duration: Duration);
}
