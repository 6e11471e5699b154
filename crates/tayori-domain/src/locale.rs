//! Locales of recipients and templates.

use std::fmt;

use serde::{Serialize, Serializer};

/// A BCP 47 language tag such as `ja`, `en` or `en-US`, normalised to conventional case
/// (`en-US`, `zh-Hant-TW`).
///
/// Checked as a language of 2–8 letters followed by subtags of 1–8 letters or digits, 35
/// characters at most; the registry of subtags is not consulted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locale(String);

/// Why a string is not a [`Locale`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("locale must be a BCP 47 tag such as ja, en or en-US, got {0:?}")]
pub struct InvalidLocale(String);

impl Locale {
    /// Parses a language tag.
    pub fn parse(raw: &str) -> Result<Self, InvalidLocale> {
        let invalid = || InvalidLocale(crate::ids::truncate_for_message(raw));
        if raw.is_empty() || raw.len() > 35 {
            return Err(invalid());
        }
        let mut normalised = Vec::new();
        for (index, subtag) in raw.split('-').enumerate() {
            let ok = if index == 0 {
                (2..=8).contains(&subtag.len()) && subtag.chars().all(|c| c.is_ascii_alphabetic())
            } else {
                (1..=8).contains(&subtag.len()) && subtag.chars().all(|c| c.is_ascii_alphanumeric())
            };
            if !ok {
                return Err(invalid());
            }
            normalised.push(match (index, subtag.len()) {
                (0, _) => subtag.to_ascii_lowercase(),
                (_, 2) if subtag.chars().all(|c| c.is_ascii_alphabetic()) => {
                    subtag.to_ascii_uppercase()
                }
                (_, 4) if subtag.chars().all(|c| c.is_ascii_alphabetic()) => {
                    let lower = subtag.to_ascii_lowercase();
                    lower[..1].to_ascii_uppercase() + &lower[1..]
                }
                _ => subtag.to_ascii_lowercase(),
            });
        }
        Ok(Self(normalised.join("-")))
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This tag and its truncations, most specific first: `ja-JP` gives `ja-JP`, `ja`.
    pub fn fallbacks(&self) -> Vec<Locale> {
        let parts: Vec<&str> = self.0.split('-').collect();
        (1..=parts.len()).rev().map(|n| Locale(parts[..n].join("-"))).collect()
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Locale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case() {
        assert_eq!(Locale::parse("EN-us").unwrap().as_str(), "en-US");
        assert_eq!(Locale::parse("zh-hant-tw").unwrap().as_str(), "zh-Hant-TW");
        assert_eq!(Locale::parse("ja").unwrap().as_str(), "ja");
    }

    #[test]
    fn fallback_chain_goes_from_specific_to_general() {
        let chain: Vec<String> = Locale::parse("zh-Hant-TW")
            .unwrap()
            .fallbacks()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(chain, ["zh-Hant-TW", "zh-Hant", "zh"]);
    }

    #[test]
    fn refuses_garbage() {
        for bad in ["", "j", "ja_JP", "ja-", "-ja", "ja--JP", "日本", "en-US-toolongsubtag"] {
            assert!(Locale::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in "\\PC{0,40}") {
            let _ = Locale::parse(&raw);
        }
    }
}
