//! One-click unsubscribe tokens (RFC 8058): signed with HMAC-SHA256, expiring, carrying the
//! tenant, the address and the event type the email was for. The token is the URL path segment
//! of `List-Unsubscribe`; only [`UnsubscribeKey::verify`] turns one back into a claim.
//!
//! Format: `hex(payload) "." hex(mac)`, payload `v1\n<tenant>\n<address>\n<event type>\n<expiry
//! as Unix seconds>`. Hex keeps it URL-safe and free of CR/LF whatever the inputs.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{EmailAddress, EventType, TenantId};

type HmacSha256 = Hmac<Sha256>;

/// The secret tokens are signed with (`[unsubscribe] key` in the configuration).
#[derive(Clone)]
pub struct UnsubscribeKey(Vec<u8>);

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(***)")
    }
}

/// A key shorter than 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the unsubscribe key must be at least 32 bytes, got {0}")]
pub struct WeakUnsubscribeKey(pub usize);

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeClaim {
    /// The tenant whose subscription mail stops.
    pub tenant: TenantId,
    /// The address.
    pub address: EmailAddress,
    /// The event type of the email that carried the link.
    pub event_type: EventType,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Why a token is refused. The web page says only "invalid or expired link".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUnsubscribeToken {
    /// Not the format tayori writes.
    #[error("malformed unsubscribe token")]
    Malformed,
    /// The signature does not match: tampered, or signed with another key.
    #[error("unsubscribe token signature does not match")]
    BadSignature,
    /// Past its expiry.
    #[error("unsubscribe token expired at {0}")]
    Expired(DateTime<Utc>),
}

impl UnsubscribeKey {
    /// A key of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self, WeakUnsubscribeKey> {
        if secret.len() < 32 {
            return Err(WeakUnsubscribeKey(secret.len()));
        }
        Ok(Self(secret.to_vec()))
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(payload);
        mac
    }

    /// A token for this tenant, address and event type, valid until `expires_at`.
    pub fn sign(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        event_type: &EventType,
        expires_at: DateTime<Utc>,
    ) -> String {
        let payload = format!(
            "v1\n{}\n{}\n{}\n{}",
            tenant.as_str(),
            address.as_str(),
            event_type.as_str(),
            expires_at.timestamp()
        );
        let tag = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{}.{}", hex::encode(payload), hex::encode(tag))
    }

    /// The claim of a token signed by `current` or, while a key is being rotated, by one of
    /// `previous` (still accepted, no longer used to sign), that has not expired at `now`.
    /// A signature none of them matches is `BadSignature`.
    pub fn verify_with_rotation(
        current: &UnsubscribeKey,
        previous: &[UnsubscribeKey],
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<UnsubscribeClaim, InvalidUnsubscribeToken> {
        let mut result = current.verify(token, now);
        for key in previous {
            if result != Err(InvalidUnsubscribeToken::BadSignature) {
                break;
            }
            result = key.verify(token, now);
        }
        result
    }

    /// The claim of a token this key signed that has not expired at `now`.
    pub fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<UnsubscribeClaim, InvalidUnsubscribeToken> {
        use InvalidUnsubscribeToken::{BadSignature, Expired, Malformed};
        if token.len() > 2_048 {
            return Err(Malformed);
        }
        let (payload, tag) = token.split_once('.').ok_or(Malformed)?;
        let payload = hex::decode(payload).map_err(|_| Malformed)?;
        let tag = hex::decode(tag).map_err(|_| Malformed)?;
        // Constant-time comparison.
        self.mac(&payload).verify_slice(&tag).map_err(|_| BadSignature)?;
        let payload = String::from_utf8(payload).map_err(|_| Malformed)?;
        let parts: Vec<&str> = payload.split('\n').collect();
        let ["v1", tenant, address, event_type, expiry] = parts.as_slice() else {
            return Err(Malformed);
        };
        let expires_at = expiry
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(Malformed)?;
        if now >= expires_at {
            return Err(Expired(expires_at));
        }
        Ok(UnsubscribeClaim {
            tenant: TenantId::parse(tenant).map_err(|_| Malformed)?,
            address: EmailAddress::parse(address).map_err(|_| Malformed)?,
            event_type: EventType::parse(event_type).map_err(|_| Malformed)?,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn key(byte: u8) -> UnsubscribeKey {
        UnsubscribeKey::new(&[byte; 32]).unwrap()
    }

    fn token(key: &UnsubscribeKey, expires_at: DateTime<Utc>) -> String {
        key.sign(
            &TenantId::parse("acme-bank").unwrap(),
            &EmailAddress::parse("misaki@example.com").unwrap(),
            &EventType::parse("report.monthly_ready").unwrap(),
            expires_at,
        )
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let now = Utc::now();
        let expires = now + Duration::days(30);
        let claim = key(1).verify(&token(&key(1), expires), now).unwrap();
        assert_eq!(claim.tenant.as_str(), "acme-bank");
        assert_eq!(claim.address.as_str(), "misaki@example.com");
        assert_eq!(claim.event_type.as_str(), "report.monthly_ready");
        assert_eq!(claim.expires_at.timestamp(), expires.timestamp());
        let late = key(1).verify(&token(&key(1), expires), expires + Duration::seconds(1));
        assert!(matches!(late, Err(InvalidUnsubscribeToken::Expired(_))));
    }

    #[test]
    fn during_a_rotation_links_signed_with_a_previous_key_still_work() {
        let now = Utc::now();
        let (current, old, retired) = (key(2), key(1), key(9));
        let signed_before = token(&old, now + Duration::days(1));
        let signed_after = token(&current, now + Duration::days(1));
        let verify = |token: &str, previous: &[UnsubscribeKey]| {
            UnsubscribeKey::verify_with_rotation(&current, previous, token, now)
        };
        assert!(verify(&signed_after, &[]).is_ok());
        assert!(verify(&signed_before, std::slice::from_ref(&old)).is_ok());
        assert!(verify(&signed_before, &[retired.clone(), old.clone()]).is_ok());
        // Once the old key is removed, its links stop working.
        assert_eq!(verify(&signed_before, &[]), Err(InvalidUnsubscribeToken::BadSignature));
        assert_eq!(verify(&signed_before, &[retired]), Err(InvalidUnsubscribeToken::BadSignature));
        // An expired link stays expired whichever key signed it.
        let expired = token(&old, now - Duration::seconds(1));
        assert!(matches!(verify(&expired, &[old]), Err(InvalidUnsubscribeToken::Expired(_))));
    }

    #[test]
    fn tampered_foreign_and_malformed_tokens_are_refused() {
        let now = Utc::now();
        let good = token(&key(1), now + Duration::days(1));
        assert_eq!(key(2).verify(&good, now), Err(InvalidUnsubscribeToken::BadSignature));
        // Another address in the payload, the old signature kept.
        let (_, tag) = good.split_once('.').unwrap();
        let forged = format!(
            "{}.{tag}",
            hex::encode(format!(
                "v1\nacme-bank\nsomeone@example.com\nreport.monthly_ready\n{}",
                (now + Duration::days(1)).timestamp()
            ))
        );
        assert_eq!(key(1).verify(&forged, now), Err(InvalidUnsubscribeToken::BadSignature));
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(key(1).verify(&flipped, now), Err(InvalidUnsubscribeToken::BadSignature));
        assert!(key(1).verify(".", now).is_err());
        for bad in ["", "zz.zz", "abc", &"a".repeat(3_000)] {
            assert_eq!(key(1).verify(bad, now), Err(InvalidUnsubscribeToken::Malformed), "{bad}");
        }
        assert!(UnsubscribeKey::new(b"short").is_err());
    }

    #[test]
    fn tokens_are_url_safe() {
        let token = token(&key(3), Utc::now());
        assert!(token.chars().all(|c| c.is_ascii_hexdigit() || c == '.'), "{token}");
    }
}
