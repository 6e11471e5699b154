//! Tenants paused by an operator or the reputation guard, and their resume.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::TenantId;

use super::AuditEntry;
use crate::ports::StoreError;

/// A tenant whose sending is paused for every worker until an operator resumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPause {
    /// The tenant.
    pub tenant: TenantId,
    /// Why: the operator's reason, or the reputation guard's rates and thresholds.
    pub reason: String,
    /// Since when.
    pub paused_at: DateTime<Utc>,
    /// The operator's token id; `None` when the reputation guard paused it.
    pub paused_by: Option<String>,
    /// The tenant's events held until the resume.
    pub held_events: u64,
    /// When the oldest of them was held.
    pub oldest_held_at: Option<DateTime<Utc>>,
}

/// Pauses of a tenant's sending, for every worker, until an operator resumes it.
#[async_trait]
pub trait TenantPauses: Send + Sync {
    /// Pauses the tenant's sending for every worker, as the audit entry's token with its reason
    /// and time: MUST record the pause and write the audit entry in one transaction and return
    /// true; when the tenant is paused already (by anyone) it MUST change nothing, audit
    /// nothing, and return false.
    async fn pause_tenant(&self, tenant: &TenantId, audit: &AuditEntry)
    -> Result<bool, StoreError>;

    /// Lifts the tenant's pause (an operator's or the reputation guard's): MUST set its resume
    /// time and write the audit entry in one transaction and return true; when the tenant is not
    /// paused it MUST change nothing, audit nothing, and return false.
    async fn resume_tenant(
        &self,
        tenant: &TenantId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// The tenants paused now (only `tenants`, when given), by tenant.
    async fn paused_tenants(
        &self,
        tenants: Option<&[TenantId]>,
    ) -> Result<Vec<TenantPause>, StoreError>;
}
