use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the consumer polls and paces itself. Every field has a default but `queue_url`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// The events queue (standard or FIFO); `url` in the configuration file.
    #[serde(rename = "url")]
    pub queue_url: String,
    /// Long-poll loops running at once.
    pub pollers: usize,
    /// Long-poll wait, 1–20 s.
    pub wait_time_seconds: i32,
    /// Messages per receive, 1–10.
    pub batch_size: i32,
    /// At most this many messages received and not yet finished.
    pub max_in_flight: usize,
    /// At most this many bytes of message bodies received and not yet finished (bodies can be
    /// 1 MiB each).
    pub max_in_flight_bytes: usize,
    /// Visibility set on receive and renewed by the heartbeat, in seconds. Shorter than the
    /// store's lease: see docs/idempotency.md.
    pub visibility_timeout_seconds: i32,
    /// How often the heartbeat renews the visibility of a message still being worked on; zero
    /// turns the heartbeat off (a message whose handling outlasts the visibility timeout then
    /// comes back to another consumer, which finds the store's lease held and leaves it).
    #[serde(with = "seconds")]
    pub heartbeat_interval: Duration,
    /// The longest the use case may work on one message (waiting for a tenant's slot not
    /// counted): past it the message is abandoned, its visibility no longer renewed, so it
    /// comes back rather than staying invisible behind a stuck call. Shorter than the store's
    /// lease (`delivery.lease_seconds`, checked by the binary).
    #[serde(rename = "handling_deadline_seconds", with = "seconds")]
    pub handling_deadline: Duration,
    /// The longest any SQS call other than the long poll may take.
    #[serde(with = "seconds")]
    pub call_timeout: Duration,
    /// First delay for a message the use case could not decide (then doubling, with jitter).
    #[serde(with = "seconds")]
    pub backoff_first: Duration,
    /// Longest such delay (SQS allows up to 12 h).
    #[serde(with = "seconds")]
    pub backoff_max: Duration,
    /// After a stop is asked for, how long work in flight may take before it is abandoned (its
    /// messages released).
    #[serde(with = "seconds")]
    pub shutdown_grace: Duration,
    /// SQS `SenderId`s of tayori's own roles (the one that redrives dead letters back onto the
    /// queue): their messages pass every tenant's `producers` list. An entry matches like a
    /// tenant's `producers` entry (a user id, or a role id for every session of the role).
    pub trusted_producers: Vec<String>,
    /// The share of `max_in_flight` one tenant may hold while other tenants have messages in
    /// this worker, above 0 and at most 1; a tenant alone may use every slot.
    pub tenant_share: f64,
    /// Per-tenant replacements of that share, in messages (`[queue.tenant_max_in_flight]`,
    /// `acme-bank = 80`).
    pub tenant_max_in_flight: HashMap<String, usize>,
    /// This queue's share of the worker's slots when the worker consumes several events queues
    /// (`[[dedicated_queues]]`), against theirs; at least 1.
    pub weight: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            queue_url: String::new(),
            pollers: 2,
            wait_time_seconds: 20,
            batch_size: 10,
            max_in_flight: 100,
            max_in_flight_bytes: 64 * 1024 * 1024,
            visibility_timeout_seconds: 60,
            heartbeat_interval: Duration::from_secs(20),
            handling_deadline: Duration::from_secs(90),
            call_timeout: Duration::from_secs(10),
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            shutdown_grace: Duration::from_secs(25),
            trusted_producers: Vec::new(),
            tenant_share: 0.5,
            tenant_max_in_flight: HashMap::new(),
            weight: 1,
        }
    }
}

/// A setting out of range, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue.{setting}: {problem}")]
pub struct InvalidConsumerConfig {
    /// The setting.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConsumerConfig {
    /// Checks the ranges SQS and the design impose.
    pub fn validate(&self) -> Result<(), InvalidConsumerConfig> {
        let fail = |setting, problem: &str| {
            Err(InvalidConsumerConfig { setting, problem: problem.to_owned() })
        };
        if self.queue_url.is_empty() {
            return fail("url", "must be set to the events queue's URL");
        }
        if !(1..=20).contains(&self.wait_time_seconds) {
            return fail("wait_time_seconds", "must be between 1 and 20");
        }
        if !(1..=10).contains(&self.batch_size) {
            return fail("batch_size", "must be between 1 and 10");
        }
        if self.pollers == 0 {
            return fail("pollers", "must be at least 1");
        }
        if self.max_in_flight < self.batch_size as usize {
            return fail("max_in_flight", "must be at least batch_size");
        }
        if self.max_in_flight_bytes < 1024 * 1024 {
            return fail("max_in_flight_bytes", "must be at least 1 MiB (one message)");
        }
        if !(5..=43_200).contains(&self.visibility_timeout_seconds) {
            return fail("visibility_timeout_seconds", "must be between 5 and 43200");
        }
        if self.heartbeat_interval.as_secs_f64() * 2.0 > f64::from(self.visibility_timeout_seconds)
        {
            return fail("heartbeat_interval", "must be at most half the visibility timeout");
        }
        if self.handling_deadline < Duration::from_secs(1) {
            return fail("handling_deadline_seconds", "must be at least 1");
        }
        if self.trusted_producers.iter().any(|p| p.is_empty() || p.contains(char::is_whitespace)) {
            return fail("trusted_producers", "entries must be SQS SenderIds (no spaces)");
        }
        if self.weight == 0 {
            return fail("weight", "must be at least 1");
        }
        if !(self.tenant_share > 0.0 && self.tenant_share <= 1.0) {
            return fail("tenant_share", "must be above 0 and at most 1");
        }
        for (tenant, slots) in &self.tenant_max_in_flight {
            if tayori_domain::TenantId::parse(tenant).is_err() {
                return Err(InvalidConsumerConfig {
                    setting: "tenant_max_in_flight",
                    problem: format!("{tenant:?} is not a tenant id"),
                });
            }
            if *slots == 0 || *slots > self.max_in_flight {
                return Err(InvalidConsumerConfig {
                    setting: "tenant_max_in_flight",
                    problem: format!("{tenant}: must be between 1 and max_in_flight"),
                });
            }
        }
        if self.backoff_max > Duration::from_secs(43_200) {
            return fail("backoff_max", "must be at most 12 hours (SQS's limit)");
        }
        Ok(())
    }
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }

    /// Written as seconds, the way it is read (`tayori config check`).
    pub fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_once_a_queue_is_named() {
        let mut config = ConsumerConfig::default();
        assert_eq!(config.validate().unwrap_err().setting, "url");
        config.queue_url = "http://localhost/q".into();
        assert_eq!(config.validate(), Ok(()));
        config.heartbeat_interval = Duration::from_secs(40);
        assert_eq!(config.validate().unwrap_err().setting, "heartbeat_interval");
    }
}
