//! How long delivery records are kept before `tayori prune` deletes them.

use chrono::{DateTime, TimeDelta, Utc};

/// How many days delivery records are kept. Never less than [`RetentionDays::MINIMUM`]: a
/// delivery's row is what makes a redelivered event a duplicate, so it must outlive every copy of
/// the event that a queue can still hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetentionDays(u32);

/// Why a number of days is not a [`RetentionDays`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRetention {
    /// Shorter than SQS can keep a message.
    #[error(
        "records must be kept at least {minimum} days, got {0}: SQS keeps a message up to 14 days, \
         and a delivery's row must outlive every copy of its event, or a late copy is mailed again",
        minimum = RetentionDays::MINIMUM
    )]
    TooShort(u32),
    /// Longer than any date the database can hold is away.
    #[error("records cannot be kept more than {maximum} days, got {0}", maximum = RetentionDays::MAXIMUM)]
    TooLong(u32),
}

impl RetentionDays {
    /// SQS keeps a message at most 14 days (`MessageRetentionPeriod`), one day more for clock skew
    /// and the lease of a message received on its last day.
    pub const MINIMUM: u32 = 15;
    /// A hundred years: longer is a typo.
    pub const MAXIMUM: u32 = 36_500;

    /// Checks a number of days.
    pub fn new(days: u32) -> Result<Self, InvalidRetention> {
        if days < Self::MINIMUM {
            Err(InvalidRetention::TooShort(days))
        } else if days > Self::MAXIMUM {
            Err(InvalidRetention::TooLong(days))
        } else {
            Ok(Self(days))
        }
    }

    /// The number of days.
    pub fn days(self) -> u32 {
        self.0
    }

    /// Records created before this instant are past the retention at `now`.
    pub fn cutoff(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - TimeDelta::days(i64::from(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_least_the_longest_time_sqs_keeps_a_message() {
        assert_eq!(RetentionDays::new(14), Err(InvalidRetention::TooShort(14)));
        assert_eq!(RetentionDays::new(0), Err(InvalidRetention::TooShort(0)));
        assert_eq!(RetentionDays::new(15).map(RetentionDays::days), Ok(15));
        assert_eq!(RetentionDays::new(36_500).map(RetentionDays::days), Ok(36_500));
        assert_eq!(RetentionDays::new(36_501), Err(InvalidRetention::TooLong(36_501)));
        let message = InvalidRetention::TooShort(7).to_string();
        assert!(message.contains("at least 15 days, got 7"), "{message}");
    }

    #[test]
    fn the_cutoff_is_whole_days_before_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().to_utc();
        let cutoff = RetentionDays::new(90).unwrap().cutoff(now);
        assert_eq!(cutoff.to_rfc3339(), "2026-09-06T10:00:00+00:00");
    }
}
