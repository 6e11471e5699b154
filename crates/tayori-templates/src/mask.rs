//! Masking sensitive variables (declared in `event.toml`) in what tayori shows or stores: render
//! errors, previews.

use serde_json::{Map, Value};

/// What a masked value is shown as.
pub(crate) const MASK: &str = "***";

/// Values shorter than this are not searched for in text: replacing every `1` or `ab` would
/// garble the text without hiding anything that matters.
const MIN_MASKED_CHARS: usize = 3;

/// `text` with every occurrence of a sensitive variable's value (and of its HTML-escaped form)
/// replaced by `***`. A value that is an object or an array has each of its strings and numbers
/// masked.
pub(crate) fn mask_text(
    text: &str,
    variables: &Map<String, Value>,
    sensitive: &[String],
) -> String {
    let mut needles: Vec<String> = Vec::new();
    for name in sensitive {
        if let Some(value) = variables.get(name) {
            collect_leaves(value, &mut needles);
        }
    }
    if needles.is_empty() {
        return text.to_owned();
    }
    let escaped: Vec<String> = needles.iter().map(|n| tera::escape_html(n)).collect();
    needles.extend(escaped);
    // Longest first, so that a value containing another is replaced whole.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    let mut out = text.to_owned();
    for needle in needles {
        if needle.chars().count() >= MIN_MASKED_CHARS && out.contains(&needle) {
            out = out.replace(&needle, MASK);
        }
    }
    out
}

fn collect_leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => {
            // Also as `number_format` writes it: 1234567 → 1,234,567.
            if let Ok(Value::String(grouped)) =
                crate::engine::number_format(value, &std::collections::HashMap::new())
            {
                out.push(grouped);
            }
            out.push(n.to_string());
        }
        Value::Array(items) => items.iter().for_each(|v| collect_leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_leaves(v, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// A copy of `data` (an event's `data`: `to` and `variables`) with the sensitive variables'
/// values replaced by `"***"`.
pub(crate) fn mask_data(data: &Value, sensitive: &[String]) -> Value {
    let mut copy = data.clone();
    if let Some(variables) = copy.get_mut("variables").and_then(Value::as_object_mut) {
        for name in sensitive {
            if let Some(value) = variables.get_mut(name) {
                *value = Value::String(MASK.into());
            }
        }
    }
    copy
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_values_and_their_escaped_forms() {
        let variables = json!({
            "code": "123456", "account": {"number": "AB<12>"}, "short": "7", "name": "Taro",
            "balance": 1234567
        });
        let variables = variables.as_object().unwrap();
        let sensitive = ["code", "account", "short", "balance"].map(String::from);
        let text = "code 123456, account AB&lt;12&gt; / AB<12>, short 7, Taro, 1,234,567円";
        assert_eq!(
            mask_text(text, variables, &sensitive),
            "code ***, account *** / ***, short 7, Taro, ***円"
        );
        assert_eq!(mask_text(text, variables, &[]), text);
    }

    #[test]
    fn masks_data() {
        let data = json!({"to": {"email": "a@b.example"}, "variables": {"code": "1", "x": 2}});
        let masked = mask_data(&data, &["code".to_owned(), "missing".to_owned()]);
        assert_eq!(
            masked,
            json!({"to": {"email": "a@b.example"}, "variables": {"code": "***", "x": 2}})
        );
    }
}
