//! The event contract v1: a CloudEvents 1.0 envelope in structured JSON mode, optionally
//! wrapped in an SNS `Notification`. See `docs/contract.md` and `schemas/event-v1.json`.

use chrono::{DateTime, FixedOffset, Timelike};
use serde_json::{Map, Value};

use crate::ids::{is_c0_or_del, truncate_for_message};
use crate::json::{StrictJsonError, parse_strict_json};
use crate::{
    DisplayName, EmailAddress, EventId, EventSource, EventType, IdempotencyKey, Locale, TenantId,
};

/// The largest message body accepted: SQS's own limit (1 MiB). Larger bodies are rejected before
/// any field is trusted.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The one recipient of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `data.to.email`.
    pub email: EmailAddress,
    /// `data.to.name`.
    pub name: Option<DisplayName>,
    /// `data.to.locale`; when absent the tenant's default applies.
    pub locale: Option<Locale>,
}

/// An event that meets the contract. Only [`decode_message_body`] builds one.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// (tenant, source, id).
    pub key: IdempotencyKey,
    /// Selects the template.
    pub event_type: EventType,
    /// When the producer says it happened.
    pub time: Option<DateTime<FixedOffset>>,
    /// Who gets the email.
    pub recipient: Recipient,
    /// `data.variables`, handed to the template (empty when absent).
    pub variables: Map<String, Value>,
    /// The CloudEvents envelope as received (after SNS unwrapping), kept as the event's copy.
    pub envelope: Value,
    /// True when it arrived inside an SNS `Notification`.
    pub sns_wrapped: bool,
}

/// Why a body does not meet the contract, with as much of the event's identity as could be read
/// so that the rejection is recorded against its key and a redelivery is counted as a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// What is wrong, naming the field (`data.to.email: address must contain exactly one '@'`).
    pub reason: String,
    /// The idempotency key, when `tenant`, `source` and `id` themselves were valid.
    pub key: Option<IdempotencyKey>,
    /// The event type, when it was valid.
    pub event_type: Option<EventType>,
}

impl DecodeError {
    fn bare(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), key: None, event_type: None }
    }
}

/// Parses a queue message body into an [`Event`].
///
/// Never panics, whatever the bytes; every refusal says which rule was broken.
pub fn decode_message_body(body: &[u8]) -> Result<Event, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::bare("body is empty"));
    }
    if body.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::bare(format!(
            "body is {} bytes, more than the limit of {MAX_EVENT_BYTES} bytes",
            body.len()
        )));
    }
    let value = parse_strict_json(body).map_err(|e| DecodeError::bare(json_refusal("body", &e)))?;
    let (envelope, sns_wrapped) = unwrap_sns(value)?;
    let Value::Object(fields) = &envelope else {
        return Err(DecodeError::bare(format!(
            "body must be a JSON object, got {}",
            json_kind(&envelope)
        )));
    };

    // Read the key first, so that every later error can be recorded against it.
    let tenant = required_str(fields, "tenant")
        .and_then(|s| TenantId::parse(s).map_err(|e| format!("tenant: {e}")));
    let source = required_str(fields, "source")
        .and_then(|s| EventSource::parse(s).map_err(|e| format!("source: {e}")));
    let id =
        required_str(fields, "id").and_then(|s| EventId::parse(s).map_err(|e| format!("id: {e}")));
    let event_type = required_str(fields, "type")
        .and_then(|s| EventType::parse(s).map_err(|e| format!("type: {e}")));
    let key = match (&tenant, &source, &id) {
        (Ok(t), Ok(s), Ok(i)) => Some(IdempotencyKey::new(t.clone(), s.clone(), i.clone())),
        _ => None,
    };
    let fail = |reason: String| DecodeError {
        reason,
        key: key.clone(),
        event_type: event_type.as_ref().ok().cloned(),
    };

    match fields.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(other) => {
            return Err(fail(format!("specversion: must be \"1.0\", got {}", shown(other))));
        }
        None => return Err(fail("specversion: missing".into())),
    }
    let id = id.map_err(fail)?;
    let source = source.map_err(fail)?;
    let event_type = event_type.clone().map_err(fail)?;
    let tenant = tenant.map_err(fail)?;
    // Optional attributes given as `null` are absent (CloudEvents JSON format).
    let time = match optional(fields, "time") {
        None => None,
        Some(Value::String(t)) => Some(parse_time(t).map_err(|e| fail(format!("time: {e}")))?),
        Some(other) => {
            return Err(fail(format!("time: must be a string, got {}", json_kind(other))));
        }
    };
    match optional(fields, "datacontenttype") {
        None => {}
        Some(Value::String(t)) if t == "application/json" => {}
        Some(other) => {
            return Err(fail(format!(
                "datacontenttype: must be \"application/json\", got {}",
                shown(other)
            )));
        }
    }
    match optional(fields, "subject") {
        None => {}
        Some(Value::String(s)) if !s.chars().any(is_c0_or_del) => {}
        Some(Value::String(s)) => {
            return Err(fail(format!(
                "subject: must not contain control characters (U+0000-U+001F, U+007F), got {:?}",
                truncate_for_message(s)
            )));
        }
        Some(other) => {
            return Err(fail(format!("subject: must be a string, got {}", json_kind(other))));
        }
    }
    let data = match fields.get("data") {
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(fail(format!("data: must be an object, got {}", json_kind(other))));
        }
        None => return Err(fail("data: missing".into())),
    };
    let to = match data.get("to") {
        Some(Value::Object(to)) => to,
        Some(other) => {
            return Err(fail(format!("data.to: must be an object, got {}", json_kind(other))));
        }
        None => return Err(fail("data.to: missing".into())),
    };
    let email = required_str(to, "email")
        .map_err(|e| format!("data.to.{e}"))
        .and_then(|s| EmailAddress::parse(s).map_err(|e| format!("data.to.email: {e}")))
        .map_err(fail)?;
    let name = match optional(to, "name") {
        None => None,
        Some(Value::String(s)) => {
            Some(DisplayName::parse(s).map_err(|e| fail(format!("data.to.name: {e}")))?)
        }
        Some(other) => {
            return Err(fail(format!("data.to.name: must be a string, got {}", json_kind(other))));
        }
    };
    let locale = match optional(to, "locale") {
        None => None,
        Some(Value::String(s)) => {
            Some(Locale::parse(s).map_err(|e| fail(format!("data.to.locale: {e}")))?)
        }
        Some(other) => {
            return Err(fail(format!(
                "data.to.locale: must be a string, got {}",
                json_kind(other)
            )));
        }
    };
    let variables = match optional(data, "variables") {
        None => Map::new(),
        Some(Value::Object(vars)) => vars.clone(),
        Some(other) => {
            return Err(fail(format!(
                "data.variables: must be an object, got {}",
                json_kind(other)
            )));
        }
    };

    Ok(Event {
        key: IdempotencyKey::new(tenant, source, id),
        event_type,
        time,
        recipient: Recipient { email, name, locale },
        variables,
        envelope,
        sns_wrapped,
    })
}

/// Why `what` (the body, or an SNS Message) was refused before any field was read.
fn json_refusal(what: &str, error: &StrictJsonError) -> String {
    match error {
        StrictJsonError::Syntax(e) => format!("{what} is not valid JSON: {e}"),
        StrictJsonError::DuplicateMember(e) => {
            format!("{what}: {e} (a repeated member is ambiguous)")
        }
    }
}

/// Unwraps an SNS `Notification` (fan-out through SNS without raw delivery); anything else is
/// returned as it is.
fn unwrap_sns(value: Value) -> Result<(Value, bool), DecodeError> {
    let is_notification = value.get("Type").and_then(Value::as_str) == Some("Notification")
        && value.get("specversion").is_none();
    if !is_notification {
        return Ok((value, false));
    }
    let Some(Value::String(message)) = value.get("Message") else {
        return Err(DecodeError::bare("SNS notification: Message must be a string"));
    };
    let inner = parse_strict_json(message.as_bytes())
        .map_err(|e| DecodeError::bare(json_refusal("SNS notification: Message", &e)))?;
    Ok((inner, true))
}

/// Parses `time`: an RFC 3339 `date-time` (section 5.6), the same set as JSON Schema's
/// `"format": "date-time"`.
///
/// chrono's parser is more lenient than the RFC's grammar in three ways, each refused here: a
/// space instead of `T` between date and time (the RFC only notes it as a readability option,
/// outside its `date-time` production), U+2212 MINUS SIGN in the offset, and a leap second
/// (`:60`) anywhere but at 23:59 UTC (section 5.7).
fn parse_time(raw: &str) -> Result<DateTime<FixedOffset>, String> {
    let refuse = |why: &str| Err(format!("must be an RFC 3339 date-time ({why}), got {raw:?}"));
    if !raw.is_ascii() {
        return refuse("ASCII only");
    }
    if !matches!(raw.as_bytes().get(10), Some(b'T' | b't')) {
        return refuse("date and time separated by 'T'");
    }
    let time = match DateTime::parse_from_rfc3339(raw) {
        Ok(time) => time,
        Err(e) => return refuse(&e.to_string()),
    };
    if time.nanosecond() >= 1_000_000_000 {
        let utc = time.naive_utc();
        if (utc.hour(), utc.minute()) != (23, 59) {
            return refuse("a leap second only at 23:59:60 UTC");
        }
    }
    Ok(time)
}

/// An optional member: `null` is the same as absent, as the CloudEvents JSON format says of
/// attributes, so that producers whose serializers write `null` for an unset field are not
/// refused. The contract applies the rule to every optional field (`data.to.name`, ...).
fn optional<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn required_str<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match fields.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("{name}: must be a string, got {}", json_kind(other))),
        None => Err(format!("{name}: missing")),
    }
}

/// A wrong value as JSON text, cut short: a reason quotes it, and a body may be 1 MiB.
fn shown(value: &Value) -> String {
    truncate_for_message(&value.to_string())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn example() -> Value {
        json!({
            "specversion": "1.0",
            "id": "01JD8Z6Q7K2V4X9M3N5P1R0T8W",
            "source": "acme-invest/accounts",
            "type": "account.deposit_completed",
            "time": "2026-11-27T10:00:00Z",
            "tenant": "acme-invest",
            "datacontenttype": "application/json",
            "data": {
                "to": { "email": "taro.yamada@example.com", "name": "山田 太郎", "locale": "ja" },
                "variables": { "amount": 50000, "currency": "JPY" }
            }
        })
    }

    #[test]
    fn decodes_the_contract_example() {
        let event = decode_message_body(example().to_string().as_bytes()).unwrap();
        assert_eq!(
            event.key.to_string(),
            "acme-invest/acme-invest/accounts/01JD8Z6Q7K2V4X9M3N5P1R0T8W"
        );
        assert_eq!(event.event_type.as_str(), "account.deposit_completed");
        assert_eq!(event.recipient.locale.unwrap().as_str(), "ja");
        assert_eq!(event.variables["amount"], 50000);
        assert!(!event.sns_wrapped);
    }

    #[test]
    fn unwraps_sns() {
        let wrapped = json!({
            "Type": "Notification",
            "MessageId": "abc",
            "TopicArn": "arn:aws:sns:ap-northeast-1:123456789012:events",
            "Message": example().to_string(),
        });
        let event = decode_message_body(wrapped.to_string().as_bytes()).unwrap();
        assert!(event.sns_wrapped);
        assert_eq!(event.key.tenant.as_str(), "acme-invest");
    }

    #[test]
    fn keeps_the_key_when_a_later_field_is_bad() {
        let mut bad = example();
        bad["data"]["to"]["email"] = json!("not-an-address");
        let err = decode_message_body(bad.to_string().as_bytes()).unwrap_err();
        assert!(err.reason.starts_with("data.to.email:"), "{}", err.reason);
        assert_eq!(err.key.unwrap().id.as_str(), "01JD8Z6Q7K2V4X9M3N5P1R0T8W");
        assert_eq!(err.event_type.unwrap().as_str(), "account.deposit_completed");
    }

    #[test]
    fn names_the_rule_broken() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "body is empty"),
            (b"{", "body is not valid JSON"),
            (b"[1]", "body must be a JSON object, got an array"),
            (br#"{"specversion":"0.3"}"#, "specversion"),
        ];
        for (body, expected) in cases {
            let err = decode_message_body(body).unwrap_err();
            assert!(err.reason.contains(expected), "{:?} -> {}", body, err.reason);
        }
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(decode_message_body(&huge).unwrap_err().reason.contains("more than the limit"));
    }

    #[test]
    fn time_is_an_rfc3339_date_time() {
        let decode = |time: &str| {
            let mut event = example();
            event["time"] = json!(time);
            decode_message_body(event.to_string().as_bytes())
        };
        for good in [
            "2026-11-27T10:00:00Z",
            "2026-11-27t10:00:00z",
            "2026-11-27T19:00:00.123456789012+09:00",
            "2016-12-31T23:59:60Z",
            "2017-01-01T08:59:60+09:00",
        ] {
            assert!(decode(good).is_ok(), "{good:?} should be accepted");
        }
        for bad in [
            "2026-11-27 10:00:00Z",
            "2026-11-27T10:00:00\u{2212}09:00",
            "2026-11-27T10:00:60Z",
            "2016-12-31T23:59:60+09:00",
            "2026-11-27T10:00:00",
            "2026-02-30T10:00:00Z",
        ] {
            let err = decode(bad).expect_err(bad);
            assert!(err.reason.starts_with("time:"), "{bad:?} -> {}", err.reason);
        }
    }

    #[test]
    fn null_optional_fields_are_absent() {
        let mut event = example();
        for attribute in ["time", "datacontenttype", "subject", "dataschema", "traceparent"] {
            event[attribute] = Value::Null;
        }
        event["data"]["to"]["name"] = Value::Null;
        event["data"]["to"]["locale"] = Value::Null;
        event["data"]["variables"] = Value::Null;
        let decoded = decode_message_body(event.to_string().as_bytes()).unwrap();
        assert_eq!(decoded.time, None);
        assert_eq!(decoded.recipient.name, None);
        assert_eq!(decoded.recipient.locale, None);
        assert!(decoded.variables.is_empty());

        // Required fields stay required: null is a wrong type there.
        for (path, reason) in [
            ("/id", "id: must be a string, got null"),
            ("/tenant", "tenant: must be a string, got null"),
            ("/data", "data: must be an object, got null"),
            ("/data/to/email", "data.to.email: must be a string, got null"),
        ] {
            let mut event = example();
            *event.pointer_mut(path).unwrap() = Value::Null;
            let err = decode_message_body(event.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.reason, reason);
        }
    }

    #[test]
    fn control_characters_are_refused_in_identifying_attributes() {
        for (field, value, reason) in [
            ("id", "01JD\u{0}", "id: id must not contain control characters"),
            ("id", "01JD\u{7f}", "id: id must not contain control characters"),
            ("source", "acme/\u{0}", "source: source must be a non-empty URI-reference"),
            ("type", "account.\u{0}", "type: type must match"),
            ("tenant", "acme\u{0}", "tenant: tenant must match"),
            ("subject", "line\nbreak", "subject: must not contain control characters"),
        ] {
            let mut event = example();
            event[field] = json!(value);
            let err = decode_message_body(event.to_string().as_bytes()).unwrap_err();
            assert!(err.reason.starts_with(reason), "{field}: {}", err.reason);
            // Quoted with escapes, never raw: the reason itself is text every store keeps.
            assert!(!err.reason.contains(['\0', '\n', '\u{7f}']), "{}", err.reason);
        }
        let mut event = example();
        event["subject"] = json!(42);
        let err = decode_message_body(event.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.reason, "subject: must be a string, got a number");
    }

    #[test]
    fn data_values_may_hold_any_character() {
        let mut event = example();
        event["subject"] = json!("account 42, C1 \u{85} allowed");
        event["data"]["variables"]["note"] = json!("a\u{0}b\r\n\u{7f}");
        let decoded = decode_message_body(event.to_string().as_bytes()).unwrap();
        assert_eq!(decoded.variables["note"], "a\u{0}b\r\n\u{7f}");
    }

    #[test]
    fn a_huge_wrong_value_is_quoted_short() {
        let mut event = example();
        event["specversion"] = json!("x".repeat(100_000));
        let err = decode_message_body(event.to_string().as_bytes()).unwrap_err();
        assert!(err.reason.starts_with("specversion: must be \"1.0\""), "{}", err.reason);
        assert!(err.reason.len() < 200, "{} bytes", err.reason.len());
    }

    /// Any JSON value: scalars with odd strings (controls, quotes, huge), nested arrays and
    /// objects whose keys include the envelope's own member names.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
            "[\u{0}-\u{1f}\u{7f}\"\\\\a]{0,10}".prop_map(Value::from),
        ];
        let keys = prop_oneof![
            prop::sample::select(vec![
                "specversion",
                "id",
                "source",
                "type",
                "tenant",
                "time",
                "subject",
                "datacontenttype",
                "data",
                "to",
                "email",
                "name",
                "locale",
                "variables",
                "Type",
                "Message",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,8}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A JSON pointer into the example: every member, nested ones included.
    fn example_paths() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "/specversion",
            "/id",
            "/source",
            "/type",
            "/time",
            "/tenant",
            "/datacontenttype",
            "/data",
            "/data/to",
            "/data/to/email",
            "/data/to/name",
            "/data/to/locale",
            "/data/variables",
            "/data/variables/amount",
        ])
    }

    fn event_or_reason(body: &[u8]) -> Result<(), TestCaseError> {
        if let Err(error) = decode_message_body(body) {
            prop_assert!(!error.reason.trim().is_empty(), "no reason for {:?}", body);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            event_or_reason(&body)?;
        }

        /// Any JSON at all: an event, or a rejection with a reason.
        #[test]
        fn any_json_gives_an_event_or_a_reason(value in any_json(), wrap in any::<bool>()) {
            let body = if wrap {
                json!({ "Type": "Notification", "Message": value.to_string() }).to_string()
            } else {
                value.to_string()
            };
            event_or_reason(body.as_bytes())?;
        }

        /// The example with any member replaced by any JSON, or removed.
        #[test]
        fn any_member_replaced_gives_an_event_or_a_reason(
            path in example_paths(),
            value in prop::option::of(any_json()),
        ) {
            let mut event = example();
            let (parent, member) = path.rsplit_once('/').unwrap();
            let parent = event.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            match value {
                Some(value) => parent.insert(member.to_owned(), value),
                None => parent.remove(member),
            };
            event_or_reason(event.to_string().as_bytes())?;
        }

        #[test]
        fn never_panics_on_mutated_envelopes(
            field in prop::sample::select(vec!["id", "source", "type", "tenant", "time", "specversion", "data"]),
            value in prop_oneof![
                Just(Value::Null), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from),
                "\\PC{0,300}".prop_map(Value::from)
            ],
        ) {
            let mut event = example();
            event[field] = value;
            let _ = decode_message_body(event.to_string().as_bytes());
        }
    }
}
