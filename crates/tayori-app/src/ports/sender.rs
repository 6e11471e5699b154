use std::time::Duration;

use async_trait::async_trait;
use tayori_domain::{OutgoingEmail, TenantId};

/// The sender accepted an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    /// The sender's id for it (SES message id, outbox file name).
    pub provider_message_id: String,
}

/// Whom a sending pause applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseScope {
    /// Only the tenant of this email (SES `SendingPausedException` on its configuration set or
    /// tenant).
    Tenant,
    /// Every tenant (SES `AccountSuspendedException`).
    Account,
}

/// Why a send did not succeed, in the terms callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The sender asks us to slow down; nothing was sent. Retry after a backoff.
    #[error("throttled: {reason}")]
    Throttled {
        /// The sender's words.
        reason: String,
        /// A hint from the sender, when it gives one.
        retry_after: Option<Duration>,
    },
    /// The sender could not be reached or failed before accepting; nothing was sent. Retry.
    #[error("sender unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// Sending is paused for this tenant or for the whole account; nothing was sent. Retry much
    /// later; other tenants may go on when only this one is paused.
    #[error("sending paused ({scope:?}): {reason}")]
    Paused {
        /// The sender's words.
        reason: String,
        /// Whom the pause applies to.
        scope: PauseScope,
    },
    /// The sender refused this email for good (bad address, unverified sender, ...).
    #[error("rejected by sender: {reason}")]
    Rejected {
        /// The sender's words.
        reason: String,
    },
    /// The request went out but no answer came back: the email may or may not have been
    /// accepted. Resending risks a duplicate.
    #[error("result unknown: {reason}")]
    Ambiguous {
        /// What happened.
        reason: String,
    },
}

impl SendError {
    /// True when trying again later may succeed and nothing was sent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SendError::Throttled { .. } | SendError::Unavailable { .. } | SendError::Paused { .. }
        )
    }
}

/// Hands emails to a mail service.
#[async_trait]
pub trait EmailSender: Send + Sync {
    /// MUST hand the email to the service at most once per call (no hidden retries that could
    /// send twice), and MUST return `Ok` only when the service accepted it. Errors MUST be
    /// mapped to the variant that says whether anything may have been sent.
    async fn send(&self, email: &OutgoingEmail) -> Result<SentEmail, SendError>;

    /// About how long an email of `tenant` handed over now would wait for its turn under the
    /// sender's rate limits (its tenant's `max_send_rate`, its weighted share of the account's
    /// rate), so that the use case can hand a message back to the queue instead of holding a
    /// slot for that long. A guess from the emails waiting now; zero for a sender without
    /// limits.
    fn expected_wait(&self, _tenant: &TenantId) -> Duration {
        Duration::ZERO
    }
}
