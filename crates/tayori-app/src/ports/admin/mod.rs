//! What the admin use cases need from storage, one small port per capability (named like the
//! use-case modules in `crate::admin`): operators' tokens, the audit log, searches over
//! deliveries, links from resent and replayed deliveries to their origin, suppressions, tenant
//! pauses and counts. [`AdminStore`] bundles them for the wiring, which hands one store to the
//! whole admin service.

mod audit;
mod deliveries;
mod insight;
mod resend;
mod suppressions;
mod tenants;
mod tokens;

use async_trait::async_trait;

use crate::ports::StoreError;

pub use audit::{AuditEntry, AuditLog, AuditQuery, AuditRecord};
pub use deliveries::{
    DeliveryFeedback, DeliveryQueries, DeliverySearch, FeedbackEntry, UnmatchedFeedbackCursor,
    UnmatchedFeedbackRecord,
};
pub use insight::{DeliveryStats, OutcomeCount, ReputationCount};
pub use resend::{DeliveryLink, DeliveryLinks, LinkKind, UnkeyedRejectionLog, UnknownSends};
pub use suppressions::{SuppressionAdmin, SuppressionEntry, SuppressionQuery};
pub use tenants::{TenantPause, TenantPauses};
pub use tokens::{Role, TenantScope, TokenRecord, TokenStore, UnknownRole};

/// Whether the admin store can be reached, for the admin listener's readiness.
#[async_trait]
pub trait StoreReadiness: Send + Sync {
    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Storage for the admin use cases: tokens, the audit log, suppressions, delivery links, and
/// searches over deliveries. Every read that takes tenants MUST return nothing of another
/// tenant; times come from the caller. Implemented for every type that implements its parts.
pub trait AdminStore:
    TokenStore
    + AuditLog
    + DeliveryQueries
    + DeliveryLinks
    + UnknownSends
    + UnkeyedRejectionLog
    + SuppressionAdmin
    + TenantPauses
    + DeliveryStats
    + StoreReadiness
{
}

impl<T> AdminStore for T where
    T: TokenStore
        + AuditLog
        + DeliveryQueries
        + DeliveryLinks
        + UnknownSends
        + UnkeyedRejectionLog
        + SuppressionAdmin
        + TenantPauses
        + DeliveryStats
        + StoreReadiness
        + ?Sized
{
}
