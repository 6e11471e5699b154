use async_trait::async_trait;

/// The pace of a sender whose rate is set from outside: the account's rate, read from the mail
/// service, divided among the running workers.
#[async_trait]
pub trait SendRateControl: Send + Sync {
    /// The account's maximum send rate, in emails per second, as the mail service reports it
    /// now. MUST send nothing, and MUST return an error when the service cannot tell (no
    /// permission, unreachable, not implemented by a stand-in).
    async fn account_send_rate(&self) -> Result<f64, AccountRateError>;

    /// Paces every send from now on at `per_second` emails in all (above 0; tenants' own caps
    /// still apply). Sends already waiting for their turn MUST be paced by the new rate too.
    fn set_send_rate(&self, per_second: f64);
}

/// Why the account's rate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRateError {
    /// The credentials may not read it (`ses:GetAccount` not granted): an operator must act.
    #[error("not allowed to read the account's send quota: {reason}")]
    Denied {
        /// The service's answer.
        reason: String,
    },
    /// The service failed, could not be reached, or answered without a usable rate.
    #[error("the account's send quota could not be read: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
}
