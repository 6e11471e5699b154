//! One-click unsubscribe (RFC 8058): the use case behind `POST /unsubscribe/{token}` and the
//! confirmation page of `GET`. A token that does not verify (tampered, foreign, expired) changes
//! nothing; a valid one suppresses the tenant's `subscription` mail to the address, once.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tayori_domain::{InvalidUnsubscribeToken, UnsubscribeClaim, UnsubscribeKey};
use tracing::info;

use crate::ports::{Clock, StoreError, UnsubscribeStore};

/// Why an unsubscribe did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    /// The token is not one tayori signed, or it expired: a 400, nothing changed.
    #[error(transparent)]
    Invalid(#[from] InvalidUnsubscribeToken),
    /// The store could not be reached: try again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an unsubscribe did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    /// What the token said.
    pub claim: UnsubscribeClaim,
    /// False when the address was already unsubscribed (a second click).
    pub newly: bool,
}

/// The one-click unsubscribe use case.
pub struct UnsubscribeService {
    /// Where unsubscribes are recorded.
    pub store: Arc<dyn UnsubscribeStore>,
    /// The key tokens are signed with (the worker's).
    pub key: UnsubscribeKey,
    /// Keys tokens were signed with before a rotation, still accepted until removed
    /// (docs/operations.md, "Rotate the unsubscribe key").
    pub previous_keys: Vec<UnsubscribeKey>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

impl UnsubscribeService {
    /// What a token says, without acting on it (the confirmation page).
    pub fn check(&self, token: &str) -> Result<UnsubscribeClaim, UnsubscribeError> {
        let now = self.clock.now();
        Ok(UnsubscribeKey::verify_with_rotation(&self.key, &self.previous_keys, token, now)?)
    }

    /// Acts on a token: suppresses the tenant's subscription mail to the address, once.
    pub async fn unsubscribe(&self, token: &str) -> Result<Unsubscribed, UnsubscribeError> {
        let claim = self.check(token)?;
        let token_sha256 = hex::encode(Sha256::digest(token.as_bytes()));
        let newly = self.store.record_unsubscribe(&claim, &token_sha256, self.clock.now()).await?;
        info!(
            tenant = %claim.tenant,
            recipient = %claim.address.masked(),
            event_type = %claim.event_type,
            newly,
            "one-click unsubscribe"
        );
        Ok(Unsubscribed { claim, newly })
    }
}
