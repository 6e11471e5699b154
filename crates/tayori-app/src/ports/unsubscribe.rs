use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::UnsubscribeClaim;

use super::StoreError;

/// Records one-click unsubscribes.
#[async_trait]
pub trait UnsubscribeStore: Send + Sync {
    /// MUST add a suppression of the claim's tenant's `subscription` mail for its address (cause
    /// `unsubscribe`) together with its audit entry (action `suppression.add`, the token's
    /// SHA-256 in the detail), in one transaction, and return true. When the address is already
    /// unsubscribed (an entry for `subscription` mail exists), it MUST change nothing, audit
    /// nothing, and return false: a second click is not a second action.
    async fn record_unsubscribe(
        &self,
        claim: &UnsubscribeClaim,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
