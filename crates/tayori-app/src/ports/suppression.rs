use async_trait::async_trait;
use tayori_domain::{EmailAddress, TenantId};

use super::MessageClass;

/// Why an address must not be mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// `tenant` or `global`, and the cause (a bounce, a complaint, an operator).
    pub reason: String,
}

/// The suppression list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    /// The backing store is unreachable; try again later.
    #[error("suppression list unavailable: {0}")]
    Unavailable(String),
}

/// The tenant's and the global suppression lists.
#[async_trait]
pub trait SuppressionList: Send + Sync {
    /// MUST return the suppression that applies to this address for this tenant and this class
    /// of mail, or `None`. An entry without a class (a permanent bounce, a complaint, most
    /// operator entries) applies to every class; an entry limited to a class (an unsubscribe:
    /// `subscription`) applies only to that class. Addresses MUST match without regard to case.
    async fn check(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        class: MessageClass,
    ) -> Result<Option<Suppression>, SuppressionError>;
}

/// The empty list: suppresses nobody. Stands in until the feedback loop fills real lists.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSuppressions;

#[async_trait]
impl SuppressionList for NoSuppressions {
    async fn check(
        &self,
        _tenant: &TenantId,
        _address: &EmailAddress,
        _class: MessageClass,
    ) -> Result<Option<Suppression>, SuppressionError> {
        Ok(None)
    }
}
