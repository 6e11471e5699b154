//! The audit log: every operator action, written with the change it records (each admin port
//! takes its entry) and read back newest first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::TenantId;

use crate::ports::StoreError;

/// One entry of the audit log, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: the token's id (the nil UUID for the command line).
    pub token_id: String,
    /// The role it had.
    pub role: String,
    /// What, e.g. `delivery.resend`.
    pub action: String,
    /// On which tenant, when the object has one.
    pub tenant: Option<TenantId>,
    /// The kind of object, e.g. `delivery`.
    pub object_kind: Option<String>,
    /// The object's id.
    pub object_id: Option<String>,
    /// The reason the operator gave.
    pub reason: Option<String>,
    /// Anything else worth keeping, as a JSON object.
    pub detail: serde_json::Value,
}

/// One entry of the audit log, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position in the log (grows).
    pub audit_id: i64,
    /// The entry.
    pub entry: AuditEntry,
}

/// A search of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only these tenants' entries; `None` also includes entries without a tenant.
    pub tenants: Option<Vec<TenantId>>,
    /// Only this token's.
    pub token_id: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only entries about this object.
    pub object_id: Option<String>,
    /// Entries older than this one.
    pub before: Option<i64>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// The audit log: appended to, and read newest first.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends to the audit log.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Reads the audit log, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
}
