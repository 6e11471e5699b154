//! Identifiers of tenants, events and deliveries.

use std::fmt;

use serde::{Serialize, Serializer};
use uuid::Uuid;

/// Generates `as_str`, `Display`, `Serialize` and `into_inner` for a string newtype.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Gives back the owned string.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A product that publishes events: `[a-z][a-z0-9-]{1,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Why a string is not a [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant must match [a-z][a-z0-9-]{{1,62}}, got {0:?}")]
pub struct InvalidTenantId(String);

impl TenantId {
    /// Parses a tenant name.
    pub fn parse(raw: &str) -> Result<Self, InvalidTenantId> {
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if first_ok && rest_ok && (2..=63).contains(&raw.len()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidTenantId(truncate_for_message(raw)))
        }
    }
}
string_newtype!(TenantId);

/// The type of an event, which selects the template: `[a-z0-9][a-z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

/// Why a string is not an [`EventType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("type must match [a-z0-9][a-z0-9._-]{{0,127}}, got {0:?}")]
pub struct InvalidEventType(String);

impl EventType {
    /// Parses an event type.
    pub fn parse(raw: &str) -> Result<Self, InvalidEventType> {
        let is_first = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(is_first);
        let rest_ok = chars.all(|c| is_first(c) || matches!(c, '.' | '_' | '-'));
        if first_ok && rest_ok && raw.len() <= 128 {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidEventType(truncate_for_message(raw)))
        }
    }
}
string_newtype!(EventType);

/// The producer of an event (CloudEvents `source`): a non-empty URI-reference.
///
/// Checked as 1–1024 characters drawn from RFC 3986's URI characters (unreserved, reserved and
/// `%`); the JSON Schema uses the same character class, so both agree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventSource(String);

/// Why a string is not an [`EventSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source must be a non-empty URI-reference of at most 1024 characters, got {0:?}")]
pub struct InvalidEventSource(String);

impl EventSource {
    /// Parses an event source.
    pub fn parse(raw: &str) -> Result<Self, InvalidEventSource> {
        let uri_char = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
        if !raw.is_empty() && raw.len() <= 1024 && raw.chars().all(uri_char) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidEventSource(truncate_for_message(raw)))
        }
    }
}
string_newtype!(EventSource);

/// The producer's id of an event (CloudEvents `id`): 1–256 characters without control
/// characters, unique per source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

/// Why a string is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventId {
    /// Empty, or longer than 256 characters.
    #[error("id must be 1 to 256 characters, got {0} characters")]
    Length(usize),
    /// A character in U+0000–U+001F or U+007F.
    #[error("id must not contain control characters (U+0000-U+001F, U+007F), got {0:?}")]
    ControlCharacter(String),
}

impl EventId {
    /// Parses an event id: any characters but the C0 controls and DEL. CloudEvents allows
    /// those too, but the id is part of the key every store must keep, and PostgreSQL refuses
    /// NUL in text; an id that some store cannot keep would leave its event without an outcome.
    pub fn parse(raw: &str) -> Result<Self, InvalidEventId> {
        let count = raw.chars().count();
        if !(1..=256).contains(&count) {
            return Err(InvalidEventId::Length(count));
        }
        if raw.chars().any(is_c0_or_del) {
            return Err(InvalidEventId::ControlCharacter(truncate_for_message(raw)));
        }
        Ok(Self(raw.to_owned()))
    }
}

string_newtype!(EventId);

/// The control characters the contract refuses in the envelope's identifying attributes:
/// U+0000–U+001F and U+007F (the C0 set and DEL; JSON Schema: `[\u0000-\u001F\u007F]`).
pub(crate) fn is_c0_or_del(c: char) -> bool {
    c <= '\u{1f}' || c == '\u{7f}'
}

/// The identity of an event for deduplication: (tenant, source, id).
///
/// However often SQS delivers an event with this key, at most one email is handed to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IdempotencyKey {
    /// The tenant the event belongs to.
    pub tenant: TenantId,
    /// The producer within the tenant.
    pub source: EventSource,
    /// The producer's id of the event.
    pub id: EventId,
}

impl IdempotencyKey {
    /// Builds a key from its validated parts.
    pub fn new(tenant: TenantId, source: EventSource, id: EventId) -> Self {
        Self { tenant, source, id }
    }

    /// The delivery that this key decides: the same key always names the same delivery, so a
    /// producer can be told the delivery id before the event is processed.
    pub fn delivery_id(&self) -> DeliveryId {
        // NUL cannot occur in tenant or source, so the concatenation is unambiguous.
        let name = format!("{}\0{}\0{}", self.tenant, self.source, self.id);
        DeliveryId(Uuid::new_v5(&DELIVERY_NAMESPACE, name.as_bytes()))
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.source, self.id)
    }
}

/// tayori's UUID namespace for delivery ids (a random v4, fixed forever).
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x6f1e_2c0a_8d4b_4e57_9a31_54c9_1f0b_7d22);

/// The id of one delivery: derived from its idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeliveryId(Uuid);

impl DeliveryId {
    /// Wraps a UUID read back from storage.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID, for storage.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Parses the hyphenated text form.
    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::try_parse(raw).ok().map(Self)
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Keeps error messages short when the offending input is huge.
pub(crate) fn truncate_for_message(raw: &str) -> String {
    const LIMIT: usize = 80;
    if raw.chars().count() <= LIMIT {
        raw.to_owned()
    } else {
        let mut cut: String = raw.chars().take(LIMIT).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tenant_rules() {
        assert!(TenantId::parse("acme-invest").is_ok());
        assert!(TenantId::parse("a").is_err(), "one character is too short");
        assert!(TenantId::parse("1acme").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse(&"a".repeat(63)).is_ok());
        assert!(TenantId::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn event_type_rules() {
        assert!(EventType::parse("account.deposit_completed").is_ok());
        assert!(EventType::parse("0.a-b_c").is_ok());
        assert!(EventType::parse(".x").is_err());
        assert!(EventType::parse("").is_err());
        assert!(EventType::parse("Account.x").is_err());
        assert!(EventType::parse(&"a".repeat(128)).is_ok());
        assert!(EventType::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn event_id_counts_characters_not_bytes() {
        assert!(EventId::parse(&"便".repeat(256)).is_ok());
        assert!(EventId::parse(&"a".repeat(257)).is_err());
        assert!(EventId::parse("").is_err());
    }

    #[test]
    fn event_id_refuses_control_characters_only() {
        for bad in ["a\0b", "\0", "tab\there", "line\n", "\u{1f}", "del\u{7f}"] {
            let err = EventId::parse(bad).unwrap_err();
            assert!(matches!(err, InvalidEventId::ControlCharacter(_)), "{bad:?}: {err}");
            // The reason is written with escapes, so it is storable text itself.
            assert!(!err.to_string().chars().any(is_c0_or_del), "{err}");
        }
        // C1 controls, spaces and any other Unicode stay allowed, as CloudEvents allows them.
        for good in ["a b", "\u{80}\u{9f}", "便り", "id with / and : and \u{2028}"] {
            assert!(EventId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn source_rules() {
        assert!(EventSource::parse("acme-invest/accounts").is_ok());
        assert!(EventSource::parse("https://acme.example/accounts?x=1#y").is_ok());
        assert!(EventSource::parse("").is_err());
        assert!(EventSource::parse("has space").is_err());
        assert!(EventSource::parse("line\nbreak").is_err());
    }

    #[test]
    fn delivery_id_is_stable_per_key() {
        let key = |id: &str| {
            IdempotencyKey::new(
                TenantId::parse("acme-invest").unwrap(),
                EventSource::parse("acme-invest/accounts").unwrap(),
                EventId::parse(id).unwrap(),
            )
        };
        assert_eq!(key("1").delivery_id(), key("1").delivery_id());
        assert_ne!(key("1").delivery_id(), key("2").delivery_id());
    }

    proptest! {
        #[test]
        fn tenant_parse_never_panics_and_accepts_only_the_pattern(raw in "\\PC{0,70}") {
            let ok = TenantId::parse(&raw).is_ok();
            let pattern_ok = raw.len() >= 2 && raw.len() <= 63
                && raw.starts_with(|c: char| c.is_ascii_lowercase())
                && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert_eq!(ok, pattern_ok);
        }

        #[test]
        fn valid_tenants_round_trip(raw in "[a-z][a-z0-9-]{1,62}") {
            let parsed = TenantId::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }

        #[test]
        fn valid_event_types_parse(raw in "[a-z0-9][a-z0-9._-]{0,127}") {
            prop_assert!(EventType::parse(&raw).is_ok());
        }
    }
}
