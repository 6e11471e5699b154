//! Operators' tokens: made (shown once, stored hashed), listed, revoked, and checked on each
//! request; usable without the rest of the service, as the command line does.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AdminError, AdminService, COMMAND_LINE_TOKEN_ID, Principal};
use crate::ports::{AdminStore, AuditEntry, Clock, Role, TenantScope, TokenRecord};

/// Every token starts with this, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "tyr_";

/// A token just made: the secret is shown once and never stored (nor in `Debug`).
#[derive(Clone)]
pub struct IssuedToken {
    /// What to put in `Authorization: Bearer ...`.
    pub secret: String,
    /// What is stored.
    pub record: TokenRecord,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("secret", &"***").field("record", &self.record).finish()
    }
}

/// The SHA-256 (hex) under which a token's secret is stored.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Operators' tokens: made (shown once, stored hashed), listed, revoked, checked. Usable without
/// the rest of the service, as the command line does.
pub struct AdminTokens {
    /// Where tokens and the audit log live.
    pub admin: Arc<dyn AdminStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl AdminTokens {
    /// Makes a token. `by` is the admin who asks, or `None` on the command line. `random` must
    /// come from a cryptographically secure source: 32 bytes of secret, 16 of token id.
    pub async fn issue(
        &self,
        by: Option<&Principal>,
        role: Role,
        scope: TenantScope,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
        random: [u8; 48],
    ) -> Result<IssuedToken, AdminError> {
        if let Some(by) = by
            && by.role != Role::Admin
        {
            return Err(AdminError::Forbidden("only the admin role manages tokens".into()));
        }
        if matches!(&scope, TenantScope::Only(tenants) if tenants.is_empty()) {
            return Err(AdminError::Invalid("a scoped token needs at least one tenant".into()));
        }
        let now = self.clock.now();
        let mut id_bytes = [0u8; 16];
        id_bytes.copy_from_slice(&random[32..]);
        let secret = format!("{TOKEN_PREFIX}{}", hex::encode(&random[..32]));
        let record = TokenRecord {
            token_id: format_uuid_v4(id_bytes),
            role,
            scope,
            label: label.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let mut audit = match by {
            Some(by) => by.audit(now, "token.create"),
            None => command_line_audit(now, "token.create"),
        };
        audit.object_kind = Some("token".into());
        audit.object_id = Some(record.token_id.clone());
        audit.detail = serde_json::json!({
            "role": role.as_str(),
            "tenants": scope_names(&record.scope),
            "label": label,
            "expires_at": expires_at,
        });
        self.admin.create_token(&record, &token_hash(&secret), &audit).await?;
        Ok(IssuedToken { secret, record })
    }

    /// Every token (admins of every tenant, and the command line).
    pub async fn list(&self, by: Option<&Principal>) -> Result<Vec<TokenRecord>, AdminError> {
        if by.is_some_and(|p| p.role != Role::Admin || p.scope != TenantScope::All) {
            return Err(AdminError::Forbidden(
                "only the admin role of every tenant lists tokens".into(),
            ));
        }
        Ok(self.admin.tokens().await?)
    }

    /// Revokes a token at once.
    pub async fn revoke(&self, by: Option<&Principal>, token_id: &str) -> Result<(), AdminError> {
        if by.is_some_and(|p| p.role != Role::Admin) {
            return Err(AdminError::Forbidden("only the admin role manages tokens".into()));
        }
        let now = self.clock.now();
        let mut audit = match by {
            Some(by) => by.audit(now, "token.revoke"),
            None => command_line_audit(now, "token.revoke"),
        };
        audit.object_kind = Some("token".into());
        audit.object_id = Some(token_id.to_owned());
        if self.admin.revoke_token(token_id, now, &audit).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!("no active token {token_id}")))
        }
    }

    /// The principal behind a presented secret: unknown, revoked and expired tokens are
    /// [`AdminError::Unauthenticated`].
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, AdminError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Err(AdminError::Unauthenticated);
        }
        let token = self
            .admin
            .token_by_hash(&token_hash(secret))
            .await?
            .ok_or(AdminError::Unauthenticated)?;
        let now = self.clock.now();
        if token.revoked_at.is_some() || token.expires_at.is_some_and(|end| end <= now) {
            return Err(AdminError::Unauthenticated);
        }
        // Written at most once a minute per token, so reads stay reads.
        if token.last_used_at.is_none_or(|last| now - last > Duration::minutes(1)) {
            self.admin.touch_token(&token.token_id, now).await?;
        }
        Ok(Principal { token_id: token.token_id, role: token.role, scope: token.scope })
    }
}

impl AdminService {
    /// Token management over this service's store and clock.
    pub fn token_manager(&self) -> AdminTokens {
        AdminTokens { admin: self.admin.clone(), clock: self.clock.clone() }
    }

    /// See [`AdminTokens::issue`].
    pub async fn issue_token(
        &self,
        by: Option<&Principal>,
        role: Role,
        scope: TenantScope,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
        random: [u8; 48],
    ) -> Result<IssuedToken, AdminError> {
        self.token_manager().issue(by, role, scope, label, expires_at, random).await
    }

    /// See [`AdminTokens::list`].
    pub async fn tokens(&self, by: Option<&Principal>) -> Result<Vec<TokenRecord>, AdminError> {
        self.token_manager().list(by).await
    }

    /// See [`AdminTokens::revoke`].
    pub async fn revoke_token(
        &self,
        by: Option<&Principal>,
        token_id: &str,
    ) -> Result<(), AdminError> {
        self.token_manager().revoke(by, token_id).await
    }

    /// See [`AdminTokens::authenticate`].
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, AdminError> {
        self.token_manager().authenticate(secret).await
    }
}

fn command_line_audit(at: DateTime<Utc>, action: &str) -> AuditEntry {
    AuditEntry {
        at,
        token_id: COMMAND_LINE_TOKEN_ID.into(),
        role: "command-line".into(),
        action: action.to_owned(),
        tenant: None,
        object_kind: None,
        object_id: None,
        reason: None,
        detail: Value::Object(Default::default()),
    }
}

fn scope_names(scope: &TenantScope) -> Value {
    match scope {
        TenantScope::All => Value::Null,
        TenantScope::Only(tenants) => {
            tenants.iter().map(|t| Value::String(t.to_string())).collect()
        }
    }
}

/// Formats 16 random bytes as a version 4 UUID.
fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_v4_uuids() {
        let id = format_uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }
}
