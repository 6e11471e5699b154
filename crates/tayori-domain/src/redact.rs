//! What personal data looks like to someone who may not see it: addresses anywhere in a text,
//! links, and event bodies (the recipient, names, sensitive variables) masked.
//!
//! The rules are the domain's so that the API, the console and anything later mask alike; who
//! sees what (the role) is the use cases' call.

use serde_json::Value;

use crate::address::mask_parts;

/// What a masked value is shown as.
pub const MASKED: &str = "***";

/// `text` with every email address in it masked (`t***@e***.com`): SES error texts and
/// diagnostics quote the recipient ("550 5.1.1 <taro@example.com>: unknown user").
pub fn mask_addresses(text: &str) -> String {
    // Characters an address token is made of, looked for on both sides of each `@`.
    fn local_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c)
    }
    fn domain_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '-' || c == '.'
    }
    if !text.contains('@') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '@' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > copied && local_char(chars[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < chars.len() && domain_char(chars[end]) {
            end += 1;
        }
        // A trailing dot ends a sentence, not the domain.
        while end > i + 1 && chars[end - 1] == '.' {
            end -= 1;
        }
        let local: String = chars[start..i].iter().collect();
        let domain: String = chars[i + 1..end].iter().collect();
        if local.is_empty() || !domain.contains('.') {
            i += 1;
            continue;
        }
        out.extend(&chars[copied..start]);
        // The same shape as `EmailAddress::masked` (`crate::EmailAddress`), also for what its parser refuses.
        out.push_str(&mask_parts(&local, &domain));
        copied = end;
        i = end;
    }
    out.extend(&chars[copied..]);
    out
}

/// A link shown without what may carry a secret (a reset link's token sits in its path or
/// query): `https://acme.example/reset?t=…` → `https://acme.example/***`.
pub fn mask_link(link: &str) -> String {
    let Some((scheme, rest)) = link.split_once("://") else {
        return mask_addresses(link);
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // `user:password@host` has no business in a link shown to anyone.
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    format!("{scheme}://{host}/{MASKED}")
}

/// Which of an event's variables to mask.
#[derive(Debug, Clone, Copy)]
pub enum MaskVariables<'a> {
    /// The ones its template declares sensitive (`sensitive_variables` in `event.toml`).
    Declared(&'a [String]),
    /// All of them: the body broke the contract, or no template says which are sensitive.
    All,
}

/// An event body as someone who may not see personal data is shown it: the recipient's address
/// masked, their name hidden, the variables `variables` names hidden, and every address
/// anywhere else (in any string or member name, an SNS notification's message included)
/// masked. A body that is not JSON is not shown at all: there is no telling what in it is
/// personal.
pub fn mask_body(raw: &[u8], variables: MaskVariables<'_>) -> String {
    // Lenient on purpose: a body refused for a repeated member is still shown, masked.
    match serde_json::from_slice::<Value>(raw) {
        Ok(mut value) => {
            mask_event(&mut value, variables);
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| MASKED.into())
        }
        Err(_) => format!("[{} bytes, not JSON: shown to admins only]", raw.len()),
    }
}

fn mask_event(value: &mut Value, variables: MaskVariables<'_>) {
    // An SNS notification carries the event as a string: mask inside it.
    if let Some(Value::String(message)) = value.get_mut("Message")
        && let Ok(mut inner) = serde_json::from_str::<Value>(message)
    {
        mask_event(&mut inner, variables);
        *message = inner.to_string();
    }
    if let Some(to) = value.pointer_mut("/data/to").and_then(Value::as_object_mut)
        && let Some(name) = to.get_mut("name")
        && !name.is_null()
    {
        *name = Value::String(MASKED.into());
    }
    if let Some(found) = value.pointer_mut("/data/variables") {
        match (found.as_object_mut(), variables) {
            (Some(map), MaskVariables::Declared(names)) => {
                for name in names {
                    if let Some(v) = map.get_mut(name) {
                        *v = Value::String(MASKED.into());
                    }
                }
            }
            (Some(map), MaskVariables::All) => {
                map.values_mut().for_each(|v| *v = Value::String(MASKED.into()));
            }
            (None, _) => *found = Value::String(MASKED.into()),
        }
    }
    mask_strings(value);
}

/// Masks addresses in every string and member name below `value`.
fn mask_strings(value: &mut Value) {
    match value {
        Value::String(text) => {
            if text.contains('@') {
                *text = mask_addresses(text);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_strings),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('@')) {
                let members = std::mem::take(map);
                for (name, mut member) in members {
                    mask_strings(&mut member);
                    map.insert(mask_addresses(&name), member);
                }
            } else {
                map.values_mut().for_each(mask_strings);
            }
        }
        Value::Bool(_) | Value::Null | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn addresses_in_error_texts_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_addresses("550 5.1.1 <taro.yamada@example.com>: unknown user; cc ab@cd.co.jp."),
            "550 5.1.1 <t***@e***.com>: unknown user; cc a***@c***.jp."
        );
        assert_eq!(mask_addresses("no address @ all, a@b"), "no address @ all, a@b");
        assert_eq!(mask_addresses("MessageRejected"), "MessageRejected");
        // Refused by the parser (leading dot), still masked.
        assert_eq!(mask_addresses("x .bad..dots@evil.example y"), "x .***@e***.example y");
    }

    #[test]
    fn links_keep_only_their_host() {
        assert_eq!(
            mask_link("https://acme.example/reset/8f2c?token=abc#x"),
            "https://acme.example/***"
        );
        assert_eq!(mask_link("https://u:p@acme.example"), "https://acme.example/***");
        assert_eq!(mask_link("mailto:taro@example.com"), "mailto:t***@e***.com");
    }

    #[test]
    fn a_hostile_body_shows_nothing_personal() {
        let body = json!({
            "specversion": "1.0",
            "id": "id-of-victim@corp.example",
            "source": "acme-invest/accounts",
            "type": "auth.password_reset",
            "tenant": "acme-invest",
            "subject": "for victim@corp.example",
            "data": {
                "to": { "email": "victim@corp.example", "name": "Victim Person" },
                "variables": {
                    "reset_url": "https://acme.example/reset?t=SECRET-TOKEN",
                    "contact": "other.person@corp.example",
                    "nested": { "again@corp.example": ["third@corp.example"] },
                    "amount": 1200
                }
            }
        });
        let declared = ["reset_url".to_owned()];
        let shown = mask_body(body.to_string().as_bytes(), MaskVariables::Declared(&declared));
        for personal in ["victim@", "other.person@", "again@", "third@", "Victim Person", "SECRET"]
        {
            assert!(!shown.contains(personal), "{personal} in {shown}");
        }
        assert!(shown.contains("\"amount\": 1200"), "undeclared variables stay: {shown}");
        let all = mask_body(body.to_string().as_bytes(), MaskVariables::All);
        assert!(!all.contains("1200"), "{all}");

        let sns = json!({"Type": "Notification", "Message": body.to_string()});
        let shown = mask_body(sns.to_string().as_bytes(), MaskVariables::All);
        assert!(!shown.contains("victim@") && !shown.contains("Victim Person"), "{shown}");

        let text = body.to_string();
        let shown = mask_body(&text.as_bytes()[..120], MaskVariables::All);
        assert_eq!(shown, "[120 bytes, not JSON: shown to admins only]");
        let twice =
            br#"{"data":{"to":{"email":"a.first@x.example","email":"b.second@y.example"}}}"#;
        let shown = mask_body(twice, MaskVariables::All);
        assert!(!shown.contains("first@") && !shown.contains("second@"), "{shown}");
    }
}
