//! JSON read strictly: an object that names one member twice is refused.
//!
//! RFC 8259 leaves duplicate names to the parser ("SHOULD be unique"), and `serde_json` keeps
//! the last value. For a body that decides who gets mailed that is an attack: appending a
//! second `tenant` or `email` member would switch the tenant or the recipient for this parser
//! while another (a producer's validator, a gateway's log, a WAF rule) saw the first. Every
//! body from outside is parsed here, so there is only one reading of it.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    /// Not JSON at all (syntax, truncation, invalid UTF-8, nesting too deep).
    #[error("{0}")]
    Syntax(String),
    /// JSON, but an object names a member twice.
    #[error("{0}")]
    DuplicateMember(String),
}

/// Parses `bytes` as one JSON value, refusing any object with a member named twice (at any
/// depth, compared after unescaping: `"tenant"` and `"\u0074enant"` are the same name).
pub fn parse_strict_json(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = Strict::deserialize(&mut deserializer).and_then(|Strict(value)| {
        deserializer.end()?;
        Ok(value)
    });
    result.map_err(|error| {
        // Our visitor's only custom error is the duplicate; serde_json files it under `Data`.
        if error.classify() == serde_json::error::Category::Data {
            StrictJsonError::DuplicateMember(error.to_string())
        } else {
            StrictJsonError::Syntax(error.to_string())
        }
    })
}

/// A [`Value`] whose objects had unique member names.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so `from_f64` always succeeds here.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4_096));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(format_args!(
                    "member {name:?} appears twice in one object"
                )));
            }
            let Strict(value) = access.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_serde_json_reads_when_names_are_unique() {
        let text = r#"{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}},"d":18446744073709551615}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_strict_json(text.as_bytes()).unwrap(), expected);
    }

    #[test]
    fn refuses_a_member_named_twice_at_any_depth_with_its_name() {
        for (text, name) in [
            (r#"{"tenant":"a","tenant":"b"}"#, "tenant"),
            (r#"{"data":{"to":{"email":"a@x.io","email":"b@y.io"}}}"#, "email"),
            (r#"[{"k":1},{"k":1,"k":1}]"#, "k"),
            (r#"{"tenant":"a","\u0074enant":"b"}"#, "tenant"),
        ] {
            match parse_strict_json(text.as_bytes()) {
                Err(StrictJsonError::DuplicateMember(reason)) => {
                    assert!(reason.contains(&format!("{name:?} appears twice")), "{reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_same_name_in_two_objects_is_fine() {
        let value = parse_strict_json(br#"{"a":{"k":1},"b":{"k":2}}"#).unwrap();
        assert_eq!(value, json!({"a": {"k": 1}, "b": {"k": 2}}));
    }

    #[test]
    fn syntax_errors_and_trailing_text_stay_syntax_errors() {
        for text in ["{", "{}x", "", "nul", "\u{ff}"] {
            assert!(
                matches!(parse_strict_json(text.as_bytes()), Err(StrictJsonError::Syntax(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_strict_json(deep.as_bytes()), Err(StrictJsonError::Syntax(_))));
    }
}
