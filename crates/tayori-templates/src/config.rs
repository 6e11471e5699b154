//! What template authors write about a tenant (`<tenant>/tenant.toml`) and about an event type
//! (`<tenant>/<event-type>/event.toml`).

use serde::Deserialize;
use tayori_app::ports::{MessageClass, TenantProfile};
use tayori_domain::{
    DisplayName, EmailAddress, EventSource, EventType, Locale, Mailbox, PublisherRules,
    RESERVED_SOURCE_PREFIX, SendingOptions, TenantId,
};

/// `tenant.toml` as written. Every field is text here and becomes a domain type in
/// [`TenantConfig::into_settings`], which reports each bad field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantConfig {
    /// The sender's address: `no-reply@acme-invest.example`.
    from: String,
    /// The name shown beside it: `Acme Invest`.
    from_name: Option<String>,
    /// Where replies go, when not to `from`.
    reply_to: Option<String>,
    /// The locale of events that name none, and the last step of every fallback chain.
    default_locale: String,
    /// Locales tried, in order, after the recipient's and before the default.
    #[serde(default)]
    fallback_locales: Vec<String>,
    /// The event types the tenant sends emails for.
    event_types: Vec<String>,
    /// The most emails per second for this tenant.
    max_send_rate: Option<i64>,
    /// SQS `SenderId`s allowed to publish for the tenant (absent: anyone who can send to the
    /// queue).
    producers: Option<Vec<String>>,
    /// Prefixes of the CloudEvents `source` allowed for the tenant (absent: any).
    sources: Option<Vec<String>>,
    /// Its share of the send rate beside other busy tenants (1-1000, default 1).
    weight: Option<i64>,
    /// Options for Amazon SES.
    ses: Option<SesConfig>,
}

/// The highest `weight`: a tenant may get a thousand sends for another's one, no more.
const MAX_WEIGHT: u32 = 1000;

/// `[ses]` in `tenant.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SesConfig {
    /// The configuration set emails are sent through.
    configuration_set: Option<String>,
    /// The SES tenant (`TenantName`) the emails are sent as.
    tenant_name: Option<String>,
}

/// A tenant's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct TenantSettings {
    pub(crate) profile: TenantProfile,
    /// Tried after the recipient's locale and before the default (already without duplicates).
    pub(crate) fallback_locales: Vec<Locale>,
    /// The event types it accepts.
    pub(crate) event_types: Vec<EventType>,
}

/// A bad value in a settings file: which key (to find its line) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The key as written (`from`, `configuration_set`).
    pub(crate) key: &'static str,
    /// The value, when the key holds a list and one item is wrong (its line is searched for).
    pub(crate) item: Option<String>,
    /// `from: address must contain exactly one '@'`.
    pub(crate) message: String,
}

impl FieldError {
    fn new(key: &'static str, message: impl std::fmt::Display) -> Self {
        Self { key, item: None, message: format!("{key}: {message}") }
    }

    fn item(key: &'static str, item: &str, message: impl std::fmt::Display) -> Self {
        Self { key, item: Some(item.to_owned()), message: format!("{key}: {message}") }
    }

    /// The 1-based line of the key (or of the list item) in `text`, when it can be found.
    pub(crate) fn line(&self, text: &str) -> Option<usize> {
        if let Some(item) = &self.item {
            let quoted = [format!("\"{item}\""), format!("'{item}'")];
            if let Some(line) =
                text.lines().position(|line| quoted.iter().any(|q| line.contains(q.as_str())))
            {
                return Some(line + 1);
            }
        }
        text.lines()
            .position(|line| {
                line.trim_start()
                    .strip_prefix(self.key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|line| line + 1)
    }
}

/// A parse error: its 1-based line when known, and the message on one line.
pub(crate) type ParseError = (Option<usize>, String);

/// Parses a TOML settings file. The error names the line: `(Some(3), "unknown field ...")`.
pub(crate) fn parse_toml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, ParseError> {
    toml::from_str(text).map_err(|error| {
        let message = crate::one_line(error.message());
        match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                (Some(line), format!("{message} (column {column})"))
            }
            None => (None, message),
        }
    })
}

/// SES names a configuration set or a tenant with 1 to 64 letters, digits, `-` and `_`.
fn check_ses_name(raw: &str) -> Result<String, &'static str> {
    let ok = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(raw.to_owned()) } else { Err("must be 1 to 64 letters, digits, '-' or '_'") }
}

/// `producers`: SQS sender ids (`AIDA…` users, `AROA…` roles, or `AROA…:session`), each once.
fn check_producers(list: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut producers: Vec<String> = Vec::new();
    for raw in list {
        let well_formed = (1..=128).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:.@=,+-".contains(&b));
        if !well_formed {
            let problem = "must be an SQS SenderId: an IAM user or role id such as AROAEXAMPLE \
                           (letters, digits and _:.@=,+-, at most 128)";
            errors.push(FieldError::item("producers", raw, problem));
        } else if producers.contains(raw) {
            errors.push(FieldError::item("producers", raw, format!("{raw} listed twice")));
        } else {
            producers.push(raw.clone());
        }
    }
    producers
}

/// `sources`: prefixes of CloudEvents sources; tayori's own (`tayori:`) are never a producer's.
fn check_sources(list: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut sources: Vec<String> = Vec::new();
    for raw in list {
        if raw.is_empty() {
            errors.push(FieldError::item("sources", raw, "a source prefix cannot be empty"));
        } else if raw.starts_with(RESERVED_SOURCE_PREFIX) {
            let problem =
                format!("{raw}: sources starting with {RESERVED_SOURCE_PREFIX} are tayori's own");
            errors.push(FieldError::item("sources", raw, problem));
        } else if EventSource::parse(raw).is_err() {
            let problem =
                format!("{raw}: not the start of a CloudEvents source (URI characters only)");
            errors.push(FieldError::item("sources", raw, problem));
        } else if sources.contains(raw) {
            errors.push(FieldError::item("sources", raw, format!("{raw} listed twice")));
        } else {
            sources.push(raw.clone());
        }
    }
    sources
}

impl TenantConfig {
    /// Parses the file's text.
    pub(crate) fn parse(text: &str) -> Result<Self, ParseError> {
        parse_toml(text)
    }

    /// Validates every field, reporting all the bad ones.
    pub(crate) fn into_settings(self, id: TenantId) -> Result<TenantSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let address = EmailAddress::parse(&self.from)
            .map_err(|e| errors.push(FieldError::new("from", e)))
            .ok();
        let name = match self.from_name.as_deref().map(DisplayName::parse) {
            None => None,
            Some(Ok(name)) => Some(name),
            Some(Err(e)) => {
                errors.push(FieldError::new("from_name", e));
                None
            }
        };
        let reply_to = match self.reply_to.as_deref().map(EmailAddress::parse) {
            None => None,
            Some(Ok(address)) => Some(Mailbox { address, name: None }),
            Some(Err(e)) => {
                errors.push(FieldError::new("reply_to", e));
                None
            }
        };
        let default_locale = Locale::parse(&self.default_locale)
            .map_err(|e| errors.push(FieldError::new("default_locale", e)))
            .ok();
        let mut fallback_locales: Vec<Locale> = Vec::new();
        for raw in &self.fallback_locales {
            match Locale::parse(raw) {
                Ok(locale) if fallback_locales.contains(&locale) => {
                    errors.push(FieldError::item("fallback_locales", raw, "listed twice"));
                }
                Ok(locale) => fallback_locales.push(locale),
                Err(e) => errors.push(FieldError::item("fallback_locales", raw, e)),
            }
        }
        let mut event_types: Vec<EventType> = Vec::new();
        if self.event_types.is_empty() {
            errors.push(FieldError::new("event_types", "list at least one event type"));
        }
        for raw in &self.event_types {
            match EventType::parse(raw) {
                Ok(event_type) if event_types.contains(&event_type) => {
                    errors.push(FieldError::item(
                        "event_types",
                        raw,
                        format!("{raw} listed twice"),
                    ));
                }
                Ok(event_type) => event_types.push(event_type),
                Err(e) => errors.push(FieldError::item("event_types", raw, e)),
            }
        }
        let max_send_rate = match self.max_send_rate {
            None => None,
            Some(rate) => match u32::try_from(rate) {
                Ok(rate) if rate > 0 => Some(rate),
                _ => {
                    errors.push(FieldError::new(
                        "max_send_rate",
                        "must be a whole number of emails per second, at least 1",
                    ));
                    None
                }
            },
        };
        let publishers = PublisherRules {
            producers: self.producers.map(|list| check_producers(&list, &mut errors)),
            sources: self.sources.map(|list| check_sources(&list, &mut errors)),
        };
        let weight = match self.weight {
            None => 1,
            Some(weight) => match u32::try_from(weight) {
                Ok(weight @ 1..=MAX_WEIGHT) => weight,
                _ => {
                    errors.push(FieldError::new(
                        "weight",
                        format!("must be a whole number from 1 to {MAX_WEIGHT}"),
                    ));
                    1
                }
            },
        };
        let mut sending = SendingOptions::default();
        if let Some(ses) = self.ses {
            if let Some(raw) = ses.configuration_set {
                match check_ses_name(&raw) {
                    Ok(name) => sending.configuration_set = Some(name),
                    Err(e) => errors.push(FieldError::new("configuration_set", e)),
                }
            }
            if let Some(raw) = ses.tenant_name {
                match check_ses_name(&raw) {
                    Ok(name) => sending.provider_tenant = Some(name),
                    Err(e) => errors.push(FieldError::new("tenant_name", e)),
                }
            }
        }
        match (address, default_locale) {
            (Some(address), Some(default_locale)) if errors.is_empty() => {
                // The default ends every chain anyway; listing it among the fallbacks changes
                // nothing, so it is dropped rather than refused.
                fallback_locales.retain(|locale| *locale != default_locale);
                Ok(TenantSettings {
                    profile: TenantProfile {
                        id,
                        from: Mailbox { address, name },
                        reply_to,
                        default_locale,
                        sending,
                        max_send_rate,
                        publishers,
                        weight,
                    },
                    fallback_locales,
                    event_types,
                })
            }
            _ => Err(errors),
        }
    }
}

/// `event.toml` as written: the settings of one event type, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventConfig {
    /// `transactional` (the default) or `subscription`.
    #[serde(default)]
    message_class: ClassConfig,
    /// Variables masked wherever tayori shows or stores event data.
    #[serde(default)]
    sensitive_variables: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ClassConfig {
    #[default]
    Transactional,
    Subscription,
}

/// An event type's settings, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EventSettings {
    pub(crate) message_class: MessageClass,
    pub(crate) sensitive_variables: Vec<String>,
}

impl EventConfig {
    /// Parses the file's text.
    pub(crate) fn parse(text: &str) -> Result<Self, ParseError> {
        parse_toml(text)
    }

    /// Validates the variable names.
    pub(crate) fn into_settings(self) -> Result<EventSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut sensitive: Vec<String> = Vec::new();
        for name in self.sensitive_variables {
            if !is_identifier(&name) {
                errors.push(FieldError::item(
                    "sensitive_variables",
                    &name,
                    format!("{name:?} is not a variable name (letters, digits and _)"),
                ));
            } else if ["to", "event", "tenant"].contains(&name.as_str()) {
                errors.push(FieldError::item(
                    "sensitive_variables",
                    &name,
                    format!("{name} is a reserved name, not one of the event's variables"),
                ));
            } else if !sensitive.contains(&name) {
                sensitive.push(name);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let message_class = match self.message_class {
            ClassConfig::Transactional => MessageClass::Transactional,
            ClassConfig::Subscription => MessageClass::Subscription,
        };
        Ok(EventSettings { message_class, sensitive_variables: sensitive })
    }
}

/// A tera variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id() -> TenantId {
        TenantId::parse("acme-invest").unwrap()
    }

    const MINIMAL: &str =
        "from = \"a@b.example\"\ndefault_locale = \"ja\"\nevent_types = [\"e1\"]\n";

    #[test]
    fn parses_a_full_profile() {
        let text = r#"
            from = "no-reply@acme-invest.example"
            from_name = "Acme Invest"
            reply_to = "support@acme-invest.example"
            default_locale = "ja"
            fallback_locales = ["en", "ja"]
            event_types = ["account.deposit_completed", "auth.password_reset"]
            max_send_rate = 20
            weight = 3

            [ses]
            configuration_set = "acme-invest-transactional"
            tenant_name = "acme_invest"
            "#;
        let settings = TenantConfig::parse(text).unwrap().into_settings(id()).unwrap();
        let profile = settings.profile;
        assert_eq!(profile.from.address.as_str(), "no-reply@acme-invest.example");
        assert_eq!(profile.from.name.unwrap().as_str(), "Acme Invest");
        assert_eq!(profile.reply_to.unwrap().address.as_str(), "support@acme-invest.example");
        assert_eq!(profile.default_locale.as_str(), "ja");
        assert_eq!(profile.max_send_rate, Some(20));
        assert_eq!(profile.weight, 3);
        assert_eq!(profile.sending.configuration_set.as_deref(), Some("acme-invest-transactional"));
        assert_eq!(profile.sending.provider_tenant.as_deref(), Some("acme_invest"));
        let fallbacks: Vec<&str> = settings.fallback_locales.iter().map(Locale::as_str).collect();
        assert_eq!(fallbacks, ["en"], "the default is dropped from the fallbacks");
        assert_eq!(settings.event_types.len(), 2);
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let text = MINIMAL.replace("\"ja\"", "\"en-us\"");
        let settings = TenantConfig::parse(&text).unwrap().into_settings(id()).unwrap();
        let profile = settings.profile;
        assert_eq!(profile.from.name, None);
        assert_eq!(profile.reply_to, None);
        assert_eq!(profile.default_locale.as_str(), "en-US");
        assert_eq!(profile.sending, SendingOptions::default());
        assert_eq!(profile.max_send_rate, None);
        assert_eq!(profile.weight, 1);
        assert!(settings.fallback_locales.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let (line, message) =
            TenantConfig::parse(&format!("{MINIMAL}replyto = \"c@b.example\"\n")).unwrap_err();
        assert_eq!(line, Some(4));
        assert!(message.starts_with("unknown field `replyto`"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        let (line, _) =
            TenantConfig::parse(&format!("{MINIMAL}[ses]\nconfig_set = \"x\"\n")).unwrap_err();
        assert_eq!(line, Some(5));
    }

    #[test]
    fn reports_every_bad_field_with_its_line() {
        let text = "from = \"nobody\"\nfrom_name = \"A\\r\\nBcc: x\"\nreply_to = \"x@\"\n\
                    default_locale = \"ja_JP\"\nfallback_locales = [\n  \"en\",\n  \"e n\",\n]\n\
                    event_types = [\"ok\", \"Bad Type\", \"ok\"]\nmax_send_rate = 0\n\
                    [ses]\nconfiguration_set = \"has space\"\ntenant_name = \"\"\n";
        let errors = TenantConfig::parse(text).unwrap().into_settings(id()).unwrap_err();
        let found: Vec<(&str, Option<usize>)> =
            errors.iter().map(|e| (e.key, e.line(text))).collect();
        assert_eq!(
            found,
            [
                ("from", Some(1)),
                ("from_name", Some(2)),
                ("reply_to", Some(3)),
                ("default_locale", Some(4)),
                ("fallback_locales", Some(7)),
                ("event_types", Some(9)),
                ("event_types", Some(9)),
                ("max_send_rate", Some(10)),
                ("configuration_set", Some(12)),
                ("tenant_name", Some(13)),
            ],
            "{errors:?}"
        );
        assert!(errors.iter().all(|e| e.message.starts_with(e.key)), "{errors:?}");
    }

    #[test]
    fn producers_and_sources_bind_publishers_to_the_tenant() {
        let text = format!(
            "{MINIMAL}producers = [\"AIDAIT2UOQQY3AUEKVGXU\", \"AROAPAYMENTS\"]\n\
             sources = [\"acme-pay/\"]\n"
        );
        let profile = TenantConfig::parse(&text).unwrap().into_settings(id()).unwrap().profile;
        let publishers = profile.publishers;
        assert_eq!(
            publishers.producers.as_deref(),
            Some(&["AIDAIT2UOQQY3AUEKVGXU".to_owned(), "AROAPAYMENTS".to_owned()][..])
        );
        assert_eq!(publishers.sources.as_deref(), Some(&["acme-pay/".to_owned()][..]));
        let open = TenantConfig::parse(MINIMAL).unwrap().into_settings(id()).unwrap().profile;
        assert!(open.publishers.is_open());

        let text = format!(
            "{MINIMAL}producers = [\n  \"AROA ROLE\",\n]\n\
             sources = [\n  \"tayori:resend\",\n  \"a b\",\n  \"\",\n]\n"
        );
        let errors = TenantConfig::parse(&text).unwrap().into_settings(id()).unwrap_err();
        let found: Vec<(&str, Option<usize>)> =
            errors.iter().map(|e| (e.key, e.line(&text))).collect();
        assert_eq!(
            found,
            [
                ("producers", Some(5)),
                ("sources", Some(8)),
                ("sources", Some(9)),
                ("sources", Some(10))
            ],
            "{errors:?}"
        );
        assert!(errors[1].message.contains("tayori's own"), "{errors:?}");
    }

    #[test]
    fn a_weight_outside_1_to_1000_is_named() {
        for bad in ["0", "-2", "1001", "1.5", "\"3\""] {
            let text = format!("{MINIMAL}weight = {bad}\n");
            let errors = match TenantConfig::parse(&text) {
                Ok(config) => config.into_settings(id()).unwrap_err(),
                // Not a whole number: refused by the parser, which points at the key's line.
                Err((line, message)) => {
                    assert_eq!(line, Some(4), "{bad}: {message}");
                    continue;
                }
            };
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].key, "weight");
            assert_eq!(errors[0].line(&text), Some(4));
            assert_eq!(errors[0].message, "weight: must be a whole number from 1 to 1000");
        }
        for good in [1, 1000] {
            let text = format!("{MINIMAL}weight = {good}\n");
            let settings = TenantConfig::parse(&text).unwrap().into_settings(id()).unwrap();
            assert_eq!(settings.profile.weight, good);
        }
    }

    #[test]
    fn event_settings() {
        let settings = EventConfig::parse(
            "message_class = \"subscription\"\nsensitive_variables = [\"otp\", \"otp\"]\n",
        )
        .unwrap()
        .into_settings()
        .unwrap();
        assert_eq!(settings.message_class, MessageClass::Subscription);
        assert_eq!(settings.sensitive_variables, ["otp"]);
        assert_eq!(
            EventConfig::default().into_settings().unwrap(),
            EventSettings { message_class: MessageClass::Transactional, ..Default::default() }
        );
        let (line, message) = EventConfig::parse("message_class = \"marketing\"\n").unwrap_err();
        assert_eq!(line, Some(1));
        assert!(message.contains("unknown variant `marketing`"), "{message}");
        let text = "sensitive_variables = [\"a-b\", \"to\"]\n";
        let errors = EventConfig::parse(text).unwrap().into_settings().unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line(text), Some(1));
    }
}
