//! A token as listed.

use serde::Serialize;
use tayori_app::ports::TokenRecord;
use utoipa::ToSchema;

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub token_id: String,
    /// Its role.
    pub role: String,
    /// Its tenants; absent means every tenant.
    pub tenants: Option<Vec<String>>,
    /// A note on whom it is for.
    pub label: String,
    /// When it was made.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When it was last used.
    pub last_used_at: Option<String>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        Self {
            token_id: t.token_id.clone(),
            role: t.role.to_string(),
            tenants: t.scope.filter().map(|ts| ts.iter().map(ToString::to_string).collect()),
            label: t.label.clone(),
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|x| x.to_rfc3339()),
            revoked_at: t.revoked_at.map(|x| x.to_rfc3339()),
            last_used_at: t.last_used_at.map(|x| x.to_rfc3339()),
        }
    }
}
