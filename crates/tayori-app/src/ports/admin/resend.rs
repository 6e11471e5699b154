//! What resends and replays record: the links from a new delivery to its origin, `unknown` sends
//! made resendable once SES stayed silent, and replays of unkeyed rejections.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tayori_domain::{DeliveryId, TenantId};

use super::AuditEntry;
use crate::ports::{StoreError, UnkeyedRejectionRecord};

/// How a delivery was made from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// An operator sent the email again.
    Resend,
    /// An operator fed a rejected event through again after a fix.
    Replay,
}

impl LinkKind {
    /// The name stored, and the event source of the derived key (`tayori:<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Resend => "resend",
            LinkKind::Replay => "replay",
        }
    }
}

/// A delivery made from another one by an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLink {
    /// The tenant of both.
    pub tenant: TenantId,
    /// The new delivery.
    pub delivery_id: DeliveryId,
    /// The one it was made from.
    pub origin: DeliveryId,
    /// Resend or replay.
    pub kind: LinkKind,
    /// The how-many-th of its kind from this origin (1, 2, ...): part of the derived key.
    pub n: u32,
    /// Why the operator did it.
    pub reason: String,
    /// The token that did it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Links from resent and replayed deliveries to their origin, numbered per origin and kind.
#[async_trait]
pub trait DeliveryLinks: Send + Sync {
    /// The highest `n` of links of this kind from this origin (0 when none).
    async fn last_link_number(
        &self,
        tenant: &TenantId,
        origin: DeliveryId,
        kind: LinkKind,
    ) -> Result<u32, StoreError>;

    /// Records a link with its audit entry in one transaction. `false` (and nothing recorded)
    /// when a link of this kind and `n` from this origin exists already: the caller takes the
    /// next `n`.
    async fn record_link(
        &self,
        link: &DeliveryLink,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// The links that start or end at this delivery.
    async fn links(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<Vec<DeliveryLink>, StoreError>;
}

/// Sends whose result is unknown, made `failed` once the unknown-send window passed without
/// an SES report, so that a resend can take them.
#[async_trait]
pub trait UnknownSends: Send + Sync {
    /// Makes the tenant's `unknown` deliveries (sends whose result is unknown) decided before
    /// `decided_before` `failed`, `reason_prefix` put before their reason, so that they can be
    /// resent: no SES report came for them within the unknown-send window. Only `only`, when
    /// given. It MUST write one audit entry per delivery changed (the entry given, with the
    /// delivery as its object) in the same transaction, and return the deliveries changed.
    async fn expire_unknown_sends(
        &self,
        tenant: &TenantId,
        only: Option<DeliveryId>,
        decided_before: DateTime<Utc>,
        reason_prefix: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<DeliveryId>, StoreError>;
}

/// Rejected bodies without a usable key, listed and replayed. With `tenants`, reads MUST
/// return only those naming one of them.
#[async_trait]
pub trait UnkeyedRejectionLog: Send + Sync {
    /// Unkeyed rejections, most recently seen first; with `tenants`, only those naming one of
    /// them.
    async fn unkeyed_rejections(
        &self,
        tenants: Option<&[TenantId]>,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError>;

    /// One unkeyed rejection by the SHA-256 of its body.
    async fn unkeyed_rejection(
        &self,
        body_sha256: &str,
    ) -> Result<Option<UnkeyedRejectionRecord>, StoreError>;

    /// Notes a replay of an unkeyed rejection and what came of it, with its audit entry.
    async fn record_unkeyed_replay(
        &self,
        body_sha256: &str,
        at: DateTime<Utc>,
        result: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
}
