//! Operators' tokens as stored: roles, tenant scopes, and the token records kept by hash.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::TenantId;

use super::AuditEntry;
use crate::ports::StoreError;

/// What a token may do. `admin` does everything; `operator` reads and acts (resend, replay,
/// suppressions); `viewer` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and acts on deliveries and suppressions.
    Operator,
    /// Everything, including unmasked recipients and tokens.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Not a role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be admin, operator or viewer, got {0:?}")]
pub struct UnknownRole(pub String);

/// Which tenants a token may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant, also rows without a tenant (unkeyed rejections).
    All,
    /// Only these (never empty).
    Only(Vec<TenantId>),
}

impl TenantScope {
    /// Whether the tenant is in scope.
    pub fn includes(&self, tenant: &TenantId) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(tenants) => tenants.contains(tenant),
        }
    }

    /// The tenants to filter on: `None` for every tenant.
    pub fn filter(&self) -> Option<Vec<TenantId>> {
        match self {
            TenantScope::All => None,
            TenantScope::Only(tenants) => Some(tenants.clone()),
        }
    }

    /// The filter for a request that may narrow the scope to one tenant: `Err(())` when that
    /// tenant is out of scope (callers answer as if it did not exist).
    #[allow(clippy::result_unit_err)]
    pub fn narrowed(&self, tenant: Option<&TenantId>) -> Result<Option<Vec<TenantId>>, ()> {
        match tenant {
            Some(tenant) if self.includes(tenant) => Ok(Some(vec![tenant.clone()])),
            Some(_) => Err(()),
            None => Ok(self.filter()),
        }
    }
}

/// A token as stored (never the token itself: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id, shown in the audit log.
    pub token_id: String,
    /// What it may do.
    pub role: Role,
    /// Which tenants it sees.
    pub scope: TenantScope,
    /// A note on whom it is for.
    pub label: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Operators' tokens, stored by the SHA-256 of their secret; each change audited with it.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token by the SHA-256 (hex) of its secret. It MUST record `audit` in the same
    /// transaction.
    async fn create_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// The token whose secret has this SHA-256 (hex), revoked or not, or `None`.
    async fn token_by_hash(&self, secret_sha256: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Notes that a token was used.
    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; `false` when there is no such token or it was revoked already. It MUST
    /// record `audit` in the same transaction when it revokes.
    async fn revoke_token(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
}
