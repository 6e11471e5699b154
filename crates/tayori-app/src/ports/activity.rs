use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::TenantId;

use super::StoreError;

/// What one tenant is doing in one worker (as published), or in every running worker (as read:
/// the sum).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantActivity {
    /// The tenant.
    pub tenant: String,
    /// Its messages being handled now.
    pub in_flight: u64,
    /// Its messages over its share, waiting for one of its slots.
    pub waiting: u64,
    /// The slots it may hold now (its share while others have work, else the whole worker).
    pub slots: u64,
    /// Emails per second the mail service accepted for it lately.
    pub send_rate: f64,
    /// Its messages handed back to the queue since the worker started.
    pub hand_backs: u64,
    /// Workers reporting it (1 as published).
    pub workers: u32,
}

/// Where each worker publishes what its tenants are doing, so that the operators' console (in
/// another process) can show it.
#[async_trait]
pub trait ActivityBoard: Send + Sync {
    /// Replaces what `worker` published before with `tenants`, as of `now`.
    async fn publish(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        tenants: &[TenantActivity],
    ) -> Result<(), StoreError>;

    /// Each tenant's activity summed over the workers that published within `live_for` of
    /// `now`, in `tenants` (all when `None`), by tenant. MUST leave out what a worker published
    /// longer ago (it stopped or died) and what a worker withdrew ([`Self::withdraw`]).
    async fn read(
        &self,
        tenants: Option<&[TenantId]>,
        now: DateTime<Utc>,
        live_for: Duration,
    ) -> Result<Vec<TenantActivity>, StoreError>;

    /// Removes what `worker` published (it stops). MUST succeed when there is nothing.
    async fn withdraw(&self, worker: &str) -> Result<(), StoreError>;
}
