//! The tera instance every tenant's templates are compiled into: escaping, our filters, and the
//! built-ins that are switched off.

use std::collections::HashMap;

use tera::{Tera, Value};

/// A tera instance configured for email templates:
/// - autoescaping on names ending in `.html` only, said explicitly rather than relying on
///   tera's defaults (which also escape `.htm` and `.xml`), so that subjects and text bodies are
///   never escaped and HTML bodies always are (the loader names them accordingly);
/// - `get_env` replaced by a function that always fails, so templates cannot read the worker's
///   environment (credentials live there);
/// - the `number_format` filter.
pub(crate) fn engine() -> Tera {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.register_function("get_env", disabled_get_env);
    tera.register_filter("number_format", number_format);
    tera
}

fn disabled_get_env(_args: &HashMap<String, Value>) -> tera::Result<Value> {
    Err(tera::Error::msg(
        "function `get_env` is disabled: templates cannot read the worker's environment",
    ))
}

/// `{{ amount | number_format }}`: a number, or a string holding a plain decimal number, with a
/// comma every three digits of its integer part: `50000` → `50,000`, `1234.5` → `1,234.5`,
/// `"-1234567.50"` → `-1,234,567.50` (a string keeps its decimals exactly as written, which is
/// how producers should send amounts that must not go through a float). Takes no arguments.
pub(crate) fn number_format(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    if !args.is_empty() {
        return Err(tera::Error::msg("filter `number_format` takes no arguments"));
    }
    let raw = match value {
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            // Rust's `Display` for f64 is the shortest exact form and never uses an exponent.
            (None, None, Some(f)) => f.to_string(),
            (None, None, None) => number.to_string(),
        },
        Value::String(text) => text.trim().to_owned(),
        other => {
            return Err(tera::Error::msg(format!(
                "filter `number_format` needs a number or a numeric string, got {}",
                kind(other)
            )));
        }
    };
    group_thousands(&raw).map(Value::String).ok_or_else(|| {
        tera::Error::msg(format!(
            "filter `number_format` needs a plain decimal number such as 1234.5, got {value}"
        ))
    })
}

/// Inserts `,` every three digits of the integer part of `-?\d+(\.\d+)?`; `None` for anything
/// else.
fn group_thousands(raw: &str) -> Option<String> {
    let (sign, unsigned) = match raw.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", raw),
    };
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(integer) || !fraction.is_none_or(all_digits) {
        return None;
    }
    let mut out = String::with_capacity(raw.len() + integer.len() / 3);
    out.push_str(sign);
    for (index, digit) in integer.chars().enumerate() {
        if index > 0 && (integer.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

fn kind(value: &Value) -> &'static str {
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn format(value: Value) -> tera::Result<Value> {
        number_format(&value, &HashMap::new())
    }

    #[test]
    fn number_format_groups_thousands() {
        let cases = [
            (json!(50000), "50,000"),
            (json!(1234.5), "1,234.5"),
            (json!(0), "0"),
            (json!(999), "999"),
            (json!(1000), "1,000"),
            (json!(-1234567), "-1,234,567"),
            (json!(u64::MAX), "18,446,744,073,709,551,615"),
            (json!(0.25), "0.25"),
            (json!(1e21), "1,000,000,000,000,000,000,000"),
            (json!("1234567.50"), "1,234,567.50"),
            (json!(" -100000 "), "-100,000"),
        ];
        for (input, expected) in cases {
            assert_eq!(format(input.clone()).unwrap(), json!(expected), "{input}");
        }
    }

    #[test]
    fn number_format_refuses_what_is_not_a_number() {
        for bad in [json!("abc"), json!(""), json!("1,000"), json!("1."), json!(".5"), json!("1e5")]
        {
            assert!(format(bad.clone()).is_err(), "{bad}");
        }
        for bad in [json!(null), json!(true), json!([1]), json!({"a": 1})] {
            assert!(format(bad.clone()).is_err(), "{bad}");
        }
        let mut args = HashMap::new();
        args.insert("decimals".to_owned(), json!(2));
        assert!(number_format(&json!(1), &args).is_err());
    }

    #[test]
    fn number_format_in_a_template() {
        let mut tera = engine();
        tera.add_raw_template("t.txt", "{{ amount | number_format }}").unwrap();
        let mut context = tera::Context::new();
        context.insert("amount", &50000);
        assert_eq!(tera.render("t.txt", &context).unwrap(), "50,000");
    }

    #[test]
    fn get_env_is_disabled() {
        let mut tera = engine();
        tera.add_raw_template("t.txt", r#"{{ get_env(name="PATH", default="x") }}"#).unwrap();
        let error = tera.render("t.txt", &tera::Context::new()).unwrap_err();
        assert!(crate::error_chain(&error).contains("`get_env` is disabled"));
    }
}
