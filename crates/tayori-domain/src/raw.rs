//! The raw bytes of a message that could not be accepted, kept for operators.

use sha2::{Digest, Sha256};

/// How much of a rejected body is kept. Bodies up to SQS's 1 MiB arrive; keeping 64 KiB of each
/// is enough to diagnose it without letting poison messages fill the database.
pub const MAX_KEPT_RAW_BYTES: usize = 64 * 1024;

/// A message body as received, size-capped for storage, with a digest of the whole body so that
/// a redelivered copy of the same bad body is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody {
    /// The first [`MAX_KEPT_RAW_BYTES`] bytes.
    pub kept: Vec<u8>,
    /// The size of the whole body.
    pub original_len: usize,
    /// SHA-256 of the whole body, lowercase hex.
    pub sha256: String,
}

impl RawBody {
    /// Captures a body.
    pub fn capture(body: &[u8]) -> Self {
        Self {
            kept: body[..body.len().min(MAX_KEPT_RAW_BYTES)].to_vec(),
            original_len: body.len(),
            sha256: hex::encode(Sha256::digest(body)),
        }
    }

    /// True when only a prefix was kept.
    pub fn is_truncated(&self) -> bool {
        self.kept.len() < self.original_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_what_it_keeps_but_digests_everything() {
        let small = RawBody::capture(b"{}");
        assert_eq!(small.kept, b"{}");
        assert!(!small.is_truncated());

        let big = vec![b'x'; 2 * 1024 * 1024];
        let kept = RawBody::capture(&big);
        assert_eq!(kept.kept.len(), MAX_KEPT_RAW_BYTES);
        assert_eq!(kept.original_len, big.len());
        assert!(kept.is_truncated());
        assert_ne!(kept.sha256, RawBody::capture(&big[..MAX_KEPT_RAW_BYTES]).sha256);
    }
}
