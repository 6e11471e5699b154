use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the SES sender connects, times out and paces itself. Every field has a default; see
/// `docs/configuration.md` ("SES sender") for the reasoning behind each. In `tayori worker`'s
/// file the fields sit in the `[sender]` section next to `kind = "ses"`, so errors name them
/// `sender.<field>`.
///
/// Where SES is (region, endpoint, credentials) is not here: it comes from the AWS SDK's standard
/// chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, profiles, roles), through the `SdkConfig` given to
/// [`SesSender::from_sdk_config`](crate::SesSender::from_sdk_config).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SesConfig {
    /// The account's rate, in emails per second, when its own is not used: when
    /// `read_account_send_rate` is false, or when `GetAccount` fails. Workers on PostgreSQL
    /// divide it like a rate read from the account; a sender without the registry uses it as
    /// it is. Fractions are allowed (`0.5` is one email every two seconds). Default `1.0`, the
    /// rate of an SES account in the sandbox.
    pub send_rate: f64,
    /// Ask SES for the account's maximum send rate (`GetAccount` → `SendQuota.MaxSendRate`) at
    /// start and every `quota_refresh_seconds`, and use it instead of `send_rate`. When the
    /// call fails (no `ses:GetAccount` permission, or a stand-in such as moto that does not
    /// implement it), the sender logs a warning and uses `send_rate` (or, after a success, the
    /// rate read last). Default `true`.
    pub read_account_send_rate: bool,
    /// How often the account's rate is read again, in seconds (SES raises quotas without
    /// notice). At least 1; default `300`.
    #[serde(rename = "quota_refresh_seconds", with = "seconds")]
    pub quota_refresh: Duration,
    /// The fraction of the account's rate the workers on PostgreSQL use together, divided
    /// equally among the live ones: above 0 and at most 1. The rest is left for other senders
    /// on the account (the admin server's resends) and for the moments after a worker joins.
    /// Default `0.9`.
    pub headroom: f64,
    /// How often a worker on PostgreSQL beats its heartbeat in the `workers` table (and
    /// re-divides the rate), in seconds. Default `2`.
    #[serde(rename = "registry_heartbeat_seconds", with = "seconds")]
    pub registry_heartbeat: Duration,
    /// A worker whose last heartbeat is this old counts as gone (killed, or cut off), in seconds;
    /// the others then take its share. More than twice `registry_heartbeat_seconds`. Default
    /// `10`.
    #[serde(rename = "registry_dead_after_seconds", with = "seconds")]
    pub registry_dead_after: Duration,
    /// Replaced by the registry for workers on PostgreSQL, which ignore it. Kept for senders
    /// without the registry: a worker on SQLite and `tayori admin serve`'s resends take this
    /// share of a rate read from `GetAccount` (above 0, at most 1). Default `1.0`.
    pub account_rate_share: f64,
    /// How many emails may go out back to back before the rate applies. Default `1`: sends are
    /// spaced evenly, never more than the rate within any second.
    pub send_burst: u32,
    /// The longest one email waits for its turn under the rate limits before the send gives up
    /// with `Throttled` (nothing sent; the message comes back later), in seconds. Keeps a
    /// backlog from holding messages past their visibility and leases. Default `20`.
    #[serde(with = "seconds")]
    pub max_rate_wait: Duration,
    /// The longest opening a connection to SES may take (DNS, TCP and TLS), in seconds. A
    /// failure within it means the request never left: `Unavailable`. Must be shorter than
    /// `call_timeout`. Default `3`.
    #[serde(with = "seconds")]
    pub connect_timeout: Duration,
    /// The longest one `SendEmail` call may take from start to answer, in seconds (the SDK has
    /// no read timeout of its own). Running out after the request was sent means SES may or may
    /// not have accepted the email: `Ambiguous`. Default `10`.
    #[serde(with = "seconds")]
    pub call_timeout: Duration,
}

impl Default for SesConfig {
    fn default() -> Self {
        Self {
            send_rate: 1.0,
            read_account_send_rate: true,
            quota_refresh: Duration::from_secs(300),
            headroom: 0.9,
            registry_heartbeat: Duration::from_secs(2),
            registry_dead_after: Duration::from_secs(10),
            account_rate_share: 1.0,
            send_burst: 1,
            max_rate_wait: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// A setting out of range, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct InvalidSesConfig {
    /// The setting, as written in the configuration (`sender.send_rate`, or a tenant's
    /// `max_send_rate`).
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

impl InvalidSesConfig {
    pub(crate) fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { setting: setting.into(), problem: problem.into() }
    }
}

/// The highest rate accepted anywhere: far above any SES account's, and low enough that the
/// period between two sends stays representable.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;

impl SesConfig {
    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), InvalidSesConfig> {
        check_rate("sender.send_rate", self.send_rate)?;
        if !(self.account_rate_share > 0.0 && self.account_rate_share <= 1.0) {
            return Err(InvalidSesConfig::new(
                "sender.account_rate_share",
                "must be above 0 and at most 1",
            ));
        }
        if self.quota_refresh < Duration::from_secs(1) {
            return Err(InvalidSesConfig::new(
                "sender.quota_refresh_seconds",
                "must be at least 1 second",
            ));
        }
        if !(self.headroom > 0.0 && self.headroom <= 1.0) {
            return Err(InvalidSesConfig::new("sender.headroom", "must be above 0 and at most 1"));
        }
        if self.registry_heartbeat.is_zero() {
            return Err(InvalidSesConfig::new(
                "sender.registry_heartbeat_seconds",
                "must be more than 0 seconds",
            ));
        }
        // One late heartbeat (a slow query, a pause) must not count a live worker out, which
        // would let the others take its share while it still sends.
        if self.registry_dead_after <= self.registry_heartbeat * 2 {
            return Err(InvalidSesConfig::new(
                "sender.registry_dead_after_seconds",
                format!(
                    "must be more than twice sender.registry_heartbeat_seconds ({} s)",
                    self.registry_heartbeat.as_secs_f64()
                ),
            ));
        }
        if self.send_burst == 0 {
            return Err(InvalidSesConfig::new("sender.send_burst", "must be at least 1"));
        }
        if self.max_rate_wait.is_zero() {
            return Err(InvalidSesConfig::new(
                "sender.max_rate_wait",
                "must be more than 0 seconds",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(InvalidSesConfig::new(
                "sender.connect_timeout",
                "must be more than 0 seconds",
            ));
        }
        // A hang while connecting must end as a connect failure (the request never left,
        // `Unavailable`), never as the call's timeout (`Ambiguous`, which is not retried).
        if self.connect_timeout >= self.call_timeout {
            return Err(InvalidSesConfig::new(
                "sender.connect_timeout",
                format!(
                    "must be shorter than sender.call_timeout ({} s)",
                    self.call_timeout.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }
}

/// Checks an emails-per-second rate.
pub(crate) fn check_rate(setting: &str, rate: f64) -> Result<(), InvalidSesConfig> {
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(())
    } else {
        Err(InvalidSesConfig::new(
            setting,
            format!("must be a number of emails per second above 0 and at most {MAX_RATE}"),
        ))
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

    fn parse(toml_text: &str) -> Result<SesConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SesConfig::default().validate(), Ok(()));
        assert_eq!(parse("").unwrap(), SesConfig::default());
    }

    #[test]
    fn every_field_can_be_set_and_durations_are_seconds() {
        let config = parse(
            "send_rate = 14.5\nread_account_send_rate = false\naccount_rate_share = 0.25\n\
             quota_refresh_seconds = 60\nheadroom = 0.8\nregistry_heartbeat_seconds = 0.5\n\
             registry_dead_after_seconds = 3\nsend_burst = 3\n\
             max_rate_wait = 2.5\nconnect_timeout = 1\ncall_timeout = 4\n",
        )
        .unwrap();
        assert_eq!(
            config,
            SesConfig {
                send_rate: 14.5,
                read_account_send_rate: false,
                quota_refresh: Duration::from_secs(60),
                headroom: 0.8,
                registry_heartbeat: Duration::from_millis(500),
                registry_dead_after: Duration::from_secs(3),
                account_rate_share: 0.25,
                send_burst: 3,
                max_rate_wait: Duration::from_millis(2500),
                connect_timeout: Duration::from_secs(1),
                call_timeout: Duration::from_secs(4),
            }
        );
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn it_reads_inside_an_internally_tagged_sender_section() {
        // The shape the binary's `[sender]` section has: `kind` picks the sender.
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
        enum Sender {
            Ses(SesConfig),
        }
        let Sender::Ses(config) =
            toml::from_str("kind = \"ses\"\nsend_rate = 14\nmax_rate_wait = 5\n").unwrap();
        assert_eq!(config.send_rate, 14.0);
        assert_eq!(config.max_rate_wait, Duration::from_secs(5));
        assert_eq!(config.call_timeout, SesConfig::default().call_timeout);
        let typo = toml::from_str::<Sender>("kind = \"ses\"\nsend_rat = 14\n").unwrap_err();
        assert!(typo.to_string().contains("send_rat"), "{typo}");
    }

    #[test]
    fn whole_numbers_are_accepted_for_rates_and_durations() {
        let config = parse("send_rate = 14\ncall_timeout = 5\n").unwrap();
        assert_eq!(config.send_rate, 14.0);
        assert_eq!(config.call_timeout, Duration::from_secs(5));
    }

    #[test]
    fn unknown_fields_and_negative_durations_are_refused() {
        let unknown = parse("sendrate = 3\n").unwrap_err().to_string();
        assert!(unknown.contains("sendrate"), "{unknown}");
        assert!(parse("call_timeout = -1\n").is_err());
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let setting = |config: SesConfig| config.validate().unwrap_err().setting;
        let base = SesConfig::default;
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 2_000_000.0] {
            assert_eq!(setting(SesConfig { send_rate: rate, ..base() }), "sender.send_rate");
        }
        for share in [0.0, 1.5, f64::NAN] {
            assert_eq!(
                setting(SesConfig { account_rate_share: share, ..base() }),
                "sender.account_rate_share"
            );
        }
        for headroom in [0.0, -0.1, 1.01, f64::NAN] {
            assert_eq!(setting(SesConfig { headroom, ..base() }), "sender.headroom");
        }
        assert_eq!(
            setting(SesConfig { quota_refresh: Duration::from_millis(500), ..base() }),
            "sender.quota_refresh_seconds"
        );
        assert_eq!(
            setting(SesConfig { registry_heartbeat: Duration::ZERO, ..base() }),
            "sender.registry_heartbeat_seconds"
        );
        let error = SesConfig { registry_dead_after: Duration::from_secs(4), ..base() }
            .validate()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "sender.registry_dead_after_seconds: must be more than twice \
             sender.registry_heartbeat_seconds (2 s)"
        );
        assert_eq!(SesConfig { headroom: 1.0, ..base() }.validate(), Ok(()));
        assert_eq!(setting(SesConfig { send_burst: 0, ..base() }), "sender.send_burst");
        assert_eq!(
            setting(SesConfig { max_rate_wait: Duration::ZERO, ..base() }),
            "sender.max_rate_wait"
        );
        assert_eq!(
            setting(SesConfig { connect_timeout: Duration::ZERO, ..base() }),
            "sender.connect_timeout"
        );
        let slow_connect = SesConfig { connect_timeout: Duration::from_secs(10), ..base() };
        let error = slow_connect.validate().unwrap_err();
        assert_eq!(error.setting, "sender.connect_timeout");
        assert_eq!(
            error.to_string(),
            "sender.connect_timeout: must be shorter than sender.call_timeout (10 s)"
        );
    }
}
