//! A suppressed address as listed.

use serde::Serialize;
use tayori_app::admin::ShownSuppression;
use utoipa::ToSchema;

/// A suppressed address.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    /// The tenant.
    pub tenant: String,
    /// The address (masked unless the role is admin).
    pub address: String,
    /// Why.
    pub reason: String,
    /// `operator`, later `bounce` or `complaint`.
    pub cause: String,
    /// Who added it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
}

impl From<&ShownSuppression> for SuppressionView {
    fn from(s: &ShownSuppression) -> Self {
        Self {
            tenant: s.tenant.to_string(),
            address: s.address.clone(),
            reason: s.reason.clone(),
            cause: s.cause.clone(),
            created_by: s.created_by.clone(),
            created_at: s.created_at.to_rfc3339(),
        }
    }
}
