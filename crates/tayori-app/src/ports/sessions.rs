//! What the console's sessions need from storage: a session by the hash of its id, tied to the
//! token that signed it in.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AuditEntry, StoreError, TokenRecord};

/// A console session as stored: never its id, only the id's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The SHA-256 (hex) of the session id the browser holds.
    pub session_sha256: String,
    /// The token that signed in; the session dies with it.
    pub token_id: String,
    /// When it was signed in (the absolute expiry counts from here).
    pub created_at: DateTime<Utc>,
    /// When it was last used (the idle expiry counts from here; updated about once a minute).
    pub last_seen_at: DateTime<Utc>,
}

/// Storage of console sessions, beside the tokens and the audit log (the admin store's
/// database). Times come from the caller.
#[async_trait]
pub trait ConsoleSessionStore: Send + Sync {
    /// Stores a new session. It MUST record `audit` (the sign-in) in the same transaction.
    async fn create_session(
        &self,
        session: &SessionRecord,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// The session whose id has this SHA-256 (hex), with its token as stored now (revoked or
    /// not), or `None`.
    async fn session_by_hash(
        &self,
        session_sha256: &str,
    ) -> Result<Option<(SessionRecord, TokenRecord)>, StoreError>;

    /// Notes that a session was used (and its token with it).
    async fn touch_session(
        &self,
        session: &SessionRecord,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Deletes a session; `false` when there was none. Once it returns, `session_by_hash` MUST
    /// not find it.
    async fn delete_session(&self, session_sha256: &str) -> Result<bool, StoreError>;

    /// Deletes the sessions last seen before `idle_before` or created before `created_before`,
    /// and those whose token is revoked or expired at `now`; returns how many.
    async fn delete_expired_sessions(
        &self,
        idle_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}
