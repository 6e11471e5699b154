//! Email addresses and the names shown beside them.

use std::fmt;

use serde::{Serialize, Serializer};

/// A single deliverable address (RFC 5321 / 5322 `addr-spec`). Only [`EmailAddress::parse`]
/// builds one.
///
/// Accepted: a dot-atom local part of at most 64 characters, `@`, and a domain of two or more
/// DNS labels (letters, digits, inner hyphens; at most 63 each, 253 in all); 254 characters at
/// most. Refused on purpose: quoted local parts, IP literals, display names, comments, non-ASCII
/// (SMTPUTF8) and anything with CR/LF. The domain is lowercased; the local part is kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

/// Why a string is not an [`EmailAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAddress {
    /// The input is empty.
    #[error("address is empty")]
    Empty,
    /// The input is longer than 254 characters.
    #[error("address is longer than 254 characters")]
    TooLong,
    /// The input has no `@`, or more than one outside a quoted part.
    #[error("address must contain exactly one '@'")]
    AtSign,
    /// The local part breaks the dot-atom rules.
    #[error("local part before '@' is not a valid dot-atom of 1 to 64 characters")]
    LocalPart,
    /// The domain breaks the DNS label rules.
    #[error("domain after '@' must be two or more DNS labels")]
    Domain,
}

impl EmailAddress {
    /// Parses an `addr-spec`.
    pub fn parse(raw: &str) -> Result<Self, InvalidAddress> {
        if raw.is_empty() {
            return Err(InvalidAddress::Empty);
        }
        if raw.len() > 254 {
            return Err(InvalidAddress::TooLong);
        }
        let mut parts = raw.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidAddress::AtSign);
        };
        if !is_dot_atom(local) || local.len() > 64 {
            return Err(InvalidAddress::LocalPart);
        }
        if !is_hostname(domain) {
            return Err(InvalidAddress::Domain);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (lowercase).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }

    /// The address for logs and for operators without the right to see it: the first letter of
    /// the local part and of the domain, and the top-level domain (`t***@e***.com`).
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((&self.0, ""));
        mask_parts(local, domain)
    }
}

/// `t***@e***.com` from the local part and the domain: also for address-like text the parser
/// refuses (`crate::redact`), so that both look alike.
pub(crate) fn mask_parts(local: &str, domain: &str) -> String {
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = domain.rsplit_once('.').map_or("", |(_, tld)| tld);
    format!("{}***@{}***.{}", first(local), first(domain), tld)
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn is_hostname(s: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    s.len() <= 253 && s.split('.').count() >= 2 && s.split('.').all(label_ok)
}

/// A display name shown beside an address: UTF-8, at most 256 characters, no control characters
/// (so no CR/LF can reach a header).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

/// Why a string is not a [`DisplayName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDisplayName {
    /// CR, LF or another control character.
    #[error("name must not contain CR, LF or other control characters")]
    ControlCharacter,
    /// More than 256 characters.
    #[error("name must be at most 256 characters")]
    TooLong,
}

impl DisplayName {
    /// Parses a display name.
    pub fn parse(raw: &str) -> Result<Self, InvalidDisplayName> {
        if raw.chars().any(char::is_control) {
            return Err(InvalidDisplayName::ControlCharacter);
        }
        if raw.chars().count() > 256 {
            return Err(InvalidDisplayName::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for DisplayName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// An address with an optional display name, as in `From:` or `To:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    /// The address.
    pub address: EmailAddress,
    /// The name shown beside it.
    pub name: Option<DisplayName>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        let a = EmailAddress::parse("Taro.Yamada+dep@Example.COM").unwrap();
        assert_eq!(a.as_str(), "Taro.Yamada+dep@example.com");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn refuses_what_the_contract_refuses() {
        for bad in [
            "",
            "plain",
            "a@b@c.com",
            "Taro <taro@example.com>",
            "taro@example.com\r\nBcc: x@evil.com",
            "taro@localhost",
            ".taro@example.com",
            "taro.@example.com",
            "ta..ro@example.com",
            "taro@-example.com",
            "taro@example-.com",
            "\"taro\"@example.com",
            "taro@[127.0.0.1]",
            "太郎@example.com",
            "taro@exa mple.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
    }

    #[test]
    fn masks_for_logs() {
        let a = EmailAddress::parse("taro.yamada@example.com").unwrap();
        assert_eq!(a.masked(), "t***@e***.com");
    }

    #[test]
    fn display_name_refuses_line_breaks() {
        assert!(DisplayName::parse("山田 太郎").is_ok());
        assert_eq!(
            DisplayName::parse("Taro\r\nBcc: x@evil.com"),
            Err(InvalidDisplayName::ControlCharacter)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in "\\PC{0,300}") {
            let _ = EmailAddress::parse(&raw);
        }

        #[test]
        fn accepted_addresses_have_no_line_breaks_or_spaces(raw in "[ -~\\r\\n]{0,80}") {
            if let Ok(address) = EmailAddress::parse(&raw) {
                prop_assert!(!address.as_str().contains(['\r', '\n', ' ', '<', '>']));
            }
        }

        #[test]
        fn generated_valid_addresses_parse(
            local in "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-z0-9_-]{1,10}){0,2}",
            domain in "[a-z0-9]{1,10}(-[a-z0-9]{1,5})?\\.[a-z]{2,6}",
        ) {
            let raw = format!("{local}@{domain}");
            let parsed = EmailAddress::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }
    }
}
