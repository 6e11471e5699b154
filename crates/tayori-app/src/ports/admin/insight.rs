//! Counts operators read: deliveries per outcome, and sent, bounced and complained per tenant.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{DeliveryStatus, TenantId};

use crate::ports::StoreError;

/// How many deliveries a tenant has in one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The tenant.
    pub tenant: TenantId,
    /// The outcome (or `processing`).
    pub status: DeliveryStatus,
    /// How many.
    pub count: u64,
}

/// A tenant's sent deliveries over a window and how many of them SES reported bounced or
/// complained about (each delivery counted once, by its feedback status: a complaint wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReputationCount {
    /// The tenant.
    pub tenant: TenantId,
    /// Deliveries decided `sent` in the window.
    pub sent: u64,
    /// Of those, with feedback status `bounced`.
    pub bounced: u64,
    /// Of those, with feedback status `complained`.
    pub complained: u64,
}

/// Counts over deliveries, per tenant (only `tenants`, when given); times come from the caller.
#[async_trait]
pub trait DeliveryStats: Send + Sync {
    /// Per tenant (only `tenants`, when given), deliveries decided `sent` at or after `since`
    /// and how many of them bounced or drew a complaint (see [`ReputationCount`]). Tenants
    /// without such deliveries MUST be left out.
    async fn reputation_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<ReputationCount>, StoreError>;

    /// Counts of deliveries created at or after `since`, per tenant and status.
    async fn outcome_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutcomeCount>, StoreError>;
}
