//! The console's sessions: a token signs in once and the browser holds an opaque random session
//! id instead of the token. Only the id's SHA-256 is stored, beside the token it belongs to; a
//! session ends at sign-out, after `idle` without use, `absolute` after sign-in, or when its token
//! is revoked or expires. Sign-ins, failed ones included, are audited with the client's address.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tracing::{info, warn};

use crate::admin::{AdminError, AdminTokens, Principal, token_hash};
use crate::ports::{AuditEntry, Clock, ConsoleSessionStore, SessionRecord};

/// The token id of audit entries about a sign-in that named no valid token.
pub const ANONYMOUS_TOKEN_ID: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Without a request for this long, it ends.
    pub idle: Duration,
    /// This long after sign-in it ends, however busy.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle: Duration::minutes(30), absolute: Duration::hours(12) }
    }
}

/// A session just made: `session_id` goes into the cookie and nowhere else.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The opaque id (64 hex characters).
    pub session_id: String,
    /// Who signed in.
    pub principal: Principal,
}

/// Sign-in, the check of every console request, and sign-out.
pub struct ConsoleSessions {
    /// Where sessions live.
    pub store: Arc<dyn ConsoleSessionStore>,
    /// The tokens that sign in, and the audit log.
    pub tokens: AdminTokens,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// How long sessions live.
    pub policy: SessionPolicy,
}

impl ConsoleSessions {
    /// Signs `secret` in from `client` (an address, for the audit log): a new session whose id is
    /// made of `random`, which must come from a cryptographically secure source. A token that
    /// is unknown, revoked or expired is [`AdminError::Unauthenticated`] and audited as
    /// `console.sign_in_failed`; a success as `console.sign_in`.
    pub async fn sign_in(
        &self,
        secret: &str,
        client: &str,
        random: [u8; 32],
    ) -> Result<SignedIn, AdminError> {
        let principal = match self.tokens.authenticate(secret).await {
            Ok(principal) => principal,
            Err(AdminError::Unauthenticated) => {
                // Never the presented secret: it may be a real token with a typo.
                warn!(client, "console sign-in failed: unknown, revoked or expired token");
                let now = self.clock.now();
                let mut audit = anonymous_audit(now, "console.sign_in_failed");
                audit.detail = json!({ "client": client });
                self.tokens.admin.record_audit(&audit).await?;
                return Err(AdminError::Unauthenticated);
            }
            Err(other) => return Err(other),
        };
        let now = self.clock.now();
        // Expired sessions go here: sign-ins are rare, and no other job has to know about them.
        let pruned = self
            .store
            .delete_expired_sessions(now - self.policy.idle, now - self.policy.absolute, now)
            .await?;
        let session_id = hex::encode(random);
        let record = SessionRecord {
            session_sha256: token_hash(&session_id),
            token_id: principal.token_id.clone(),
            created_at: now,
            last_seen_at: now,
        };
        let mut audit = principal.audit(now, "console.sign_in");
        audit.object_kind = Some("token".into());
        audit.object_id = Some(principal.token_id.clone());
        audit.detail = json!({ "client": client });
        self.store.create_session(&record, &audit).await?;
        info!(client, token_id = %principal.token_id, pruned, "console sign-in");
        Ok(SignedIn { session_id, principal })
    }

    /// The principal of a live session; [`AdminError::Unauthenticated`] when there is no such
    /// session, it is past its idle or absolute expiry (then it is deleted), or its token is
    /// revoked or expired.
    pub async fn resume(&self, session_id: &str) -> Result<Principal, AdminError> {
        let hash = token_hash(session_id);
        let Some((session, token)) = self.store.session_by_hash(&hash).await? else {
            return Err(AdminError::Unauthenticated);
        };
        let now = self.clock.now();
        let token_dead =
            token.revoked_at.is_some() || token.expires_at.is_some_and(|end| end <= now);
        if token_dead || !self.alive(&session, now) {
            self.store.delete_session(&hash).await?;
            return Err(AdminError::Unauthenticated);
        }
        // Written at most once a minute per session, so page views stay reads.
        if now - session.last_seen_at > Duration::minutes(1) {
            self.store.touch_session(&session, now).await?;
        }
        Ok(Principal { token_id: token.token_id, role: token.role, scope: token.scope })
    }

    /// Ends a session at once: its id no longer works, even if it is replayed.
    pub async fn sign_out(&self, session_id: &str) -> Result<(), AdminError> {
        self.store.delete_session(&token_hash(session_id)).await?;
        Ok(())
    }

    fn alive(&self, session: &SessionRecord, now: DateTime<Utc>) -> bool {
        now - session.last_seen_at < self.policy.idle
            && now - session.created_at < self.policy.absolute
    }
}

fn anonymous_audit(at: DateTime<Utc>, action: &str) -> AuditEntry {
    AuditEntry {
        at,
        token_id: ANONYMOUS_TOKEN_ID.into(),
        role: "anonymous".into(),
        action: action.to_owned(),
        tenant: None,
        object_kind: None,
        object_id: None,
        reason: None,
        detail: json!({}),
    }
}
