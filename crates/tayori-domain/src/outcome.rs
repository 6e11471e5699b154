//! How a delivery ends.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The one outcome every event that reaches tayori ends in (the event contract's table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The sender accepted the email.
    Sent {
        /// The sender's id of the message (the SES message id, or the outbox file name).
        provider_message_id: String,
    },
    /// The recipient is on a suppression list; nothing was sent.
    Suppressed {
        /// Which list and why.
        reason: String,
    },
    /// Bad input: the event cannot be mailed as it is.
    Rejected {
        /// What is wrong, for the operator.
        reason: String,
    },
    /// The sender refused permanently, or transient errors outlasted the retry policy.
    Failed {
        /// The sender's refusal or the last transient error.
        reason: String,
    },
    /// The send's result is unknown (no answer, or the worker died mid-send): the mail service
    /// may have accepted it. An SES report about the email later makes it `sent` (reconciled);
    /// without one it becomes resendable once the unknown-send window has passed.
    Unknown {
        /// What left the result unknown.
        reason: String,
    },
}

impl Outcome {
    /// The status a delivery has once it has this outcome.
    pub fn status(&self) -> DeliveryStatus {
        match self {
            Outcome::Sent { .. } => DeliveryStatus::Sent,
            Outcome::Suppressed { .. } => DeliveryStatus::Suppressed,
            Outcome::Rejected { .. } => DeliveryStatus::Rejected,
            Outcome::Failed { .. } => DeliveryStatus::Failed,
            Outcome::Unknown { .. } => DeliveryStatus::Unknown,
        }
    }

    /// The reason recorded with the outcome (none for `sent`).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Sent { .. } => None,
            Outcome::Suppressed { reason }
            | Outcome::Rejected { reason }
            | Outcome::Failed { reason }
            | Outcome::Unknown { reason } => Some(reason),
        }
    }

    /// The sender's message id, for `sent`.
    pub fn provider_message_id(&self) -> Option<&str> {
        match self {
            Outcome::Sent { provider_message_id } => Some(provider_message_id),
            _ => None,
        }
    }
}

/// Where a delivery stands: `processing` while a worker holds its lease, then its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed by a worker; not decided yet.
    Processing,
    /// See [`Outcome::Sent`].
    Sent,
    /// See [`Outcome::Suppressed`].
    Suppressed,
    /// See [`Outcome::Rejected`].
    Rejected,
    /// See [`Outcome::Failed`].
    Failed,
    /// See [`Outcome::Unknown`]. Decided (a redelivery sends nothing), but not final: an SES
    /// report about it makes it `sent`.
    Unknown,
}

impl DeliveryStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Processing,
        DeliveryStatus::Sent,
        DeliveryStatus::Suppressed,
        DeliveryStatus::Rejected,
        DeliveryStatus::Failed,
        DeliveryStatus::Unknown,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Processing => "processing",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Unknown => "unknown",
        }
    }

    /// True once the delivery has an outcome; a decided delivery never re-opens.
    pub fn is_decided(self) -> bool {
        self != DeliveryStatus::Processing
    }
}

/// A stored status name that tayori does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.as_str().parse::<DeliveryStatus>(), Ok(status));
        }
        assert!("delivered?".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn only_processing_is_undecided() {
        let undecided: Vec<_> =
            DeliveryStatus::ALL.into_iter().filter(|s| !s.is_decided()).collect();
        assert_eq!(undecided, [DeliveryStatus::Processing]);
    }
}
