use std::time::Duration;

use serde::Deserialize;

/// How the SES sender connects, times out and paces itself. Every field has a default; see
/// `docs/configuration.md` ("SES sender") for the reasoning behind each. In `tayori worker`'s
/// file the fields sit in the `[sender]` section next to `kind = "ses"`, so errors name them
/// `sender.<field>`.
///
/// Where SES is (region, endpoint, credentials) is not here: it comes from the AWS SDK's standard
/// chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, profiles, roles), through the `SdkConfig` given to
/// [`SesSender::from_sdk_config`](crate::SesSender::from_sdk_config).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SesConfig {
    /// Emails per second for the whole sender (all tenants together) when the account's own
    /// rate is not used: when `read_account_send_rate` is false, or when `GetAccount` fails.
    /// Fractions are allowed (`0.5` is one email every two seconds). Default `1.0`, the rate of
    /// an SES account in the sandbox.
    pub send_rate: f64,
    /// At start-up, ask SES for the account's maximum send rate (`GetAccount` →
    /// `SendQuota.MaxSendRate`) and use it instead of `send_rate`. When the call fails (no
    /// `ses:GetAccount` permission, or a stand-in such as moto that does not implement it), the
    /// sender logs a warning and uses `send_rate`. Default `true`.
    pub read_account_send_rate: bool,
    /// The share of the account's rate this process uses, above 0 and at most 1: set it to
    /// `1/N` when N worker processes send through one SES account, since each reads the whole
    /// account's rate. Applies only to a rate read from `GetAccount`. Default `1.0`.
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
             send_burst = 3\n\
             max_rate_wait = 2.5\nconnect_timeout = 1\ncall_timeout = 4\n",
        )
        .unwrap();
        assert_eq!(
            config,
            SesConfig {
                send_rate: 14.5,
                read_account_send_rate: false,
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
