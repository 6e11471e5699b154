//! Suppressions as operators manage them: searched, added and removed, each change audited.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{EmailAddress, TenantId};

use super::AuditEntry;
use crate::ports::StoreError;

/// An address a tenant must not mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionEntry {
    /// The tenant.
    pub tenant: TenantId,
    /// The address.
    pub address: EmailAddress,
    /// Why (shown to operators and recorded as the delivery's reason).
    pub reason: String,
    /// What caused it: `operator` for now; the feedback loop adds `bounce` and `complaint`.
    pub cause: String,
    /// Who added it (a token id, or the feedback loop).
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A search of suppressions.
#[derive(Debug, Clone, Default)]
pub struct SuppressionQuery {
    /// Only these tenants; `None` means every tenant.
    pub tenants: Option<Vec<TenantId>>,
    /// Only this address.
    pub address: Option<EmailAddress>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// Operators' view of suppressions: every read that takes tenants MUST return nothing of
/// another tenant.
#[async_trait]
pub trait SuppressionAdmin: Send + Sync {
    /// Suppressions, newest first.
    async fn suppressions(
        &self,
        query: &SuppressionQuery,
    ) -> Result<Vec<SuppressionEntry>, StoreError>;

    /// Adds a suppression for all mail of the tenant, with its audit entry; `false` (nothing
    /// changed, nothing audited) when the address is suppressed already.
    async fn add_suppression(
        &self,
        entry: &SuppressionEntry,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Removes the tenant's suppression of the address, with its audit entry; `false` (nothing
    /// audited) when there was none.
    async fn remove_suppression(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
}
