//! One-click unsubscribe tokens (RFC 8058): sealed, expiring, carrying the tenant, the address
//! and the event type the email was for. The token is the URL path segment of
//! `List-Unsubscribe`; only [`UnsubscribeKey::verify`] turns one back into a claim.
//!
//! Format (v2, what [`UnsubscribeKey::sign`] writes): `"v2." hex(nonce ‖ AES-256-GCM-SIV(payload))`,
//! payload `<tenant>\n<address>\n<event type>\n<expiry as Unix seconds>`. The cipher's key and the
//! 12-byte nonce are derived from the unsubscribe key with HMAC-SHA256 (the nonce over the
//! payload: no randomness here, and GCM-SIV stays safe when a payload repeats). A link therefore
//! reveals no address, and a changed byte fails authentication. Hex keeps it URL-safe.
//!
//! Links written before v2 (`hex(payload) "." hex(HMAC)`, payload starting `v1\n`, the address
//! readable) are still accepted until they expire, so mail already sent keeps working; none are
//! written any more.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
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
        let mut mac = match <HmacSha256 as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(payload);
        mac
    }

    /// The cipher v2 tokens are sealed with: its key derived from this key.
    fn cipher(&self) -> Aes256GcmSiv {
        let key = self.mac(V2_KEY_LABEL).finalize().into_bytes();
        Aes256GcmSiv::new(&key)
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
            "{}\n{}\n{}\n{}",
            tenant.as_str(),
            address.as_str(),
            event_type.as_str(),
            expires_at.timestamp()
        );
        let mut nonce_mac = self.mac(V2_NONCE_LABEL);
        nonce_mac.update(payload.as_bytes());
        let nonce_bytes = nonce_mac.finalize().into_bytes();
        let nonce = Nonce::from_slice(&nonce_bytes[..NONCE_BYTES]);
        let sealed =
            match self.cipher().encrypt(nonce, Payload { msg: payload.as_bytes(), aad: V2_AAD }) {
                Ok(sealed) => sealed,
                // Fails only for plaintexts over 64 GiB.
                Err(_) => unreachable!("AES-GCM-SIV seals any payload under 64 GiB"),
            };
        let mut token = Vec::with_capacity(NONCE_BYTES + sealed.len());
        token.extend_from_slice(nonce);
        token.extend_from_slice(&sealed);
        format!("{V2_PREFIX}{}", hex::encode(token))
    }

    /// A v1 token (address readable), as links sent before v2 carry; only for tests now.
    #[cfg(test)]
    fn sign_v1(
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

    /// The claim of a token this key signed (v2, or v1 from before) that has not expired at
    /// `now`.
    pub fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<UnsubscribeClaim, InvalidUnsubscribeToken> {
        use InvalidUnsubscribeToken::{BadSignature, Malformed};
        if token.len() > 2_048 {
            return Err(Malformed);
        }
        if let Some(sealed) = token.strip_prefix(V2_PREFIX) {
            let sealed = hex::decode(sealed).map_err(|_| Malformed)?;
            if sealed.len() < NONCE_BYTES + TAG_BYTES {
                return Err(Malformed);
            }
            let (nonce, sealed) = sealed.split_at(NONCE_BYTES);
            // Authenticated decryption: any changed byte, or another key, fails here.
            let payload = self
                .cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: V2_AAD })
                .map_err(|_| BadSignature)?;
            let payload = String::from_utf8(payload).map_err(|_| Malformed)?;
            let parts: Vec<&str> = payload.split('\n').collect();
            let [tenant, address, event_type, expiry] = parts.as_slice() else {
                return Err(Malformed);
            };
            return claim(tenant, address, event_type, expiry, now);
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
        claim(tenant, address, event_type, expiry, now)
    }
}

/// What v2 tokens start with.
const V2_PREFIX: &str = "v2.";
/// What the cipher's key is derived from (HMAC with the unsubscribe key).
const V2_KEY_LABEL: &[u8] = b"tayori unsubscribe token v2: AES-256-GCM-SIV key";
/// What a token's nonce is derived from, followed by the payload.
const V2_NONCE_LABEL: &[u8] = b"tayori unsubscribe token v2: nonce\n";
/// Bound to every v2 token: a ciphertext made for something else does not open as one.
const V2_AAD: &[u8] = b"tayori unsubscribe token v2";
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

fn claim(
    tenant: &str,
    address: &str,
    event_type: &str,
    expiry: &str,
    now: DateTime<Utc>,
) -> Result<UnsubscribeClaim, InvalidUnsubscribeToken> {
    use InvalidUnsubscribeToken::{Expired, Malformed};
    let expires_at =
        expiry.parse::<i64>().ok().and_then(|s| DateTime::from_timestamp(s, 0)).ok_or(Malformed)?;
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
        // Every single changed hex digit, anywhere in the sealed part, is refused.
        for at in V2_PREFIX.len()..good.len() {
            let mut changed = good.clone().into_bytes();
            changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(
                key(1).verify(&changed, now),
                Err(InvalidUnsubscribeToken::BadSignature),
                "{at}"
            );
        }
        // A v1 token with another address under the old signature.
        let old = key(1).sign_v1(
            &TenantId::parse("acme-bank").unwrap(),
            &EmailAddress::parse("misaki@example.com").unwrap(),
            &EventType::parse("report.monthly_ready").unwrap(),
            now + Duration::days(1),
        );
        let (_, tag) = old.split_once('.').unwrap();
        let forged = format!(
            "{}.{tag}",
            hex::encode(format!(
                "v1\nacme-bank\nsomeone@example.com\nreport.monthly_ready\n{}",
                (now + Duration::days(1)).timestamp()
            ))
        );
        assert_eq!(key(1).verify(&forged, now), Err(InvalidUnsubscribeToken::BadSignature));
        assert!(key(1).verify(".", now).is_err());
        for bad in ["", "zz.zz", "abc", "v2.", "v2.00", "v2.zz", &"a".repeat(3_000)] {
            assert_eq!(key(1).verify(bad, now), Err(InvalidUnsubscribeToken::Malformed), "{bad}");
        }
        assert!(UnsubscribeKey::new(b"short").is_err());
    }

    #[test]
    fn links_sent_before_v2_still_work_with_the_current_and_previous_keys() {
        let now = Utc::now();
        let sign_v1 = |key: &UnsubscribeKey| {
            key.sign_v1(
                &TenantId::parse("acme-bank").unwrap(),
                &EmailAddress::parse("misaki@example.com").unwrap(),
                &EventType::parse("report.monthly_ready").unwrap(),
                now + Duration::days(1),
            )
        };
        let claim = UnsubscribeKey::verify_with_rotation(&key(2), &[], &sign_v1(&key(2)), now);
        assert_eq!(claim.unwrap().address.as_str(), "misaki@example.com");
        let rotated =
            UnsubscribeKey::verify_with_rotation(&key(2), &[key(1)], &sign_v1(&key(1)), now);
        assert!(rotated.is_ok());
    }

    #[test]
    fn a_token_reveals_no_address() {
        let token = token(&key(3), Utc::now() + Duration::days(1));
        let sealed = token.strip_prefix(V2_PREFIX).unwrap();
        let bytes = hex::decode(sealed).unwrap();
        for needle in ["misaki", "example.com", "acme-bank", "report.monthly_ready"] {
            assert!(!token.contains(needle), "{token}");
            assert!(!token.contains(&hex::encode(needle)), "{token}");
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{token}");
        }
    }

    #[test]
    fn tokens_are_url_safe() {
        let token = token(&key(3), Utc::now());
        let sealed = token.strip_prefix(V2_PREFIX).unwrap();
        assert!(sealed.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    }
}
