//! A tenant's sending paused and resumed by an operator, the events held meanwhile, and their
//! discard when they went wrong.

use chrono::Duration;
use tayori_domain::{EventType, TenantId};
use tracing::info;

use super::{AdminError, AdminService, Principal, no_tenant, required_reason};
use crate::handle_event::InboundMessage;
use crate::ports::{AuditEntry, HeldEvent, HeldSummary, LeasedEvent, TenantPause};

/// Held events one [`AdminService::discard_held`] call decides at most: a call stays within an
/// HTTP request's time; the operator calls again for the rest.
pub const DISCARD_PER_CALL: u64 = 10_000;

/// How long a discard leases each held event: the release rounds leave it alone meanwhile.
const DISCARD_LEASE: Duration = Duration::minutes(5);

/// What a discard of held events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Events decided `rejected` (or found decided before) and no longer held.
    pub discarded: u64,
    /// Events that could not be decided now; still held.
    pub left: u64,
    /// The tenant's held events after the call (of the event type asked for, when one was),
    /// the ones beyond this call's limit included.
    pub remaining: u64,
}

impl AdminService {
    /// Pauses the tenant's sending for every worker until an operator resumes it (audited with
    /// the reason): its events are held until the resume, nothing is claimed or sent, other
    /// tenants go on. Returns false when it was paused already; `NotFound` for a tenant that has no
    /// templates here, so that a misspelt name does not look paused.
    pub async fn pause_tenant(
        &self,
        who: &Principal,
        tenant: &TenantId,
        reason: &str,
    ) -> Result<bool, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        if !self.previews.catalog().tenants.iter().any(|t| &t.id == tenant) {
            return Err(AdminError::NotFound(format!("no tenant {tenant} is configured")));
        }
        let audit = self.tenant_audit(who, "tenant.pause", tenant, reason);
        Ok(self.admin.pause_tenant(tenant, &audit).await?)
    }

    /// Lifts the tenant's pause, an operator's or the reputation guard's (audited with the
    /// reason); returns false when it was not paused.
    pub async fn resume_tenant(
        &self,
        who: &Principal,
        tenant: &TenantId,
        reason: &str,
    ) -> Result<bool, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let audit = self.tenant_audit(who, "tenant.resume", tenant, reason);
        Ok(self.admin.resume_tenant(tenant, &audit).await?)
    }

    /// What the tenant has held (any role in scope): counts by event type and the `limit`
    /// (1–500) oldest events, without their bodies.
    pub async fn held_events(
        &self,
        who: &Principal,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<HeldSummary, AdminError> {
        self.require_tenant(who, tenant)?;
        if !(1..=500).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be 1 to 500, got {limit}")));
        }
        Ok(self.held.held_summary(tenant, limit).await?)
    }

    /// Discards up to [`DISCARD_PER_CALL`] of a paused tenant's held events (of `event_type`
    /// only, when given: the one whose events went wrong), oldest first (one audit entry
    /// `tenant.discard_held` with the reason, the event type and the counts): each is decided
    /// `rejected` ("discarded while the tenant was paused: <reason>") through the event path, so
    /// that it is listed among the deliveries and a later copy of it is a duplicate, never sent.
    /// Refused while the tenant is not paused: its held events are being sent then. Events that
    /// cannot be decided now (the store unreachable, the key in flight elsewhere) stay held.
    pub async fn discard_held(
        &self,
        who: &Principal,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        reason: &str,
    ) -> Result<Discarded, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let tenants = std::slice::from_ref(tenant);
        if self.admin.paused_tenants(Some(tenants)).await?.is_empty() {
            return Err(AdminError::Invalid(format!(
                "{tenant} is not paused: its held events are being sent; pause it first"
            )));
        }
        let outcome = format!("discarded while the tenant was paused: {reason}");
        let mut done = Discarded::default();
        while done.discarded + done.left < DISCARD_PER_CALL {
            let now = self.clock.now();
            let limit = (DISCARD_PER_CALL - done.discarded - done.left).min(100) as u32;
            let until = now + DISCARD_LEASE;
            let leased = self.held.lease_of_tenant(tenant, event_type, limit, now, until).await?;
            if leased.is_empty() {
                break;
            }
            for LeasedEvent { event: HeldEvent { entry, body }, lease } in leased {
                let message = InboundMessage::internal(body, entry.receive_count);
                match self.handler.discard(&message, &outcome).await {
                    Ok(_) => {
                        self.held.forget(&entry.key, lease).await?;
                        done.discarded += 1;
                    }
                    // Leased: it stays held, and is not leased again within this call.
                    Err(_) => done.left += 1,
                }
            }
        }
        done.remaining = match event_type {
            Some(event_type) => {
                let summary = self.held.held_summary(tenant, 0).await?;
                let of_type = summary.by_event_type.iter().find(|(t, ..)| t == event_type);
                of_type.map_or(0, |(_, events, _)| *events)
            }
            None => self
                .admin
                .paused_tenants(Some(tenants))
                .await?
                .first()
                .map_or(0, |pause| pause.held_events),
        };
        let mut audit = self.tenant_audit(who, "tenant.discard_held", tenant, reason);
        audit.detail = serde_json::json!({
            "event_type": event_type.map(EventType::as_str),
            "discarded": done.discarded, "left": done.left, "remaining": done.remaining,
        });
        self.admin.record_audit(&audit).await?;
        info!(%tenant, ?done, "discarded held events");
        Ok(done)
    }

    /// The audit entry of an action on the tenant itself, with its reason.
    fn tenant_audit(
        &self,
        who: &Principal,
        action: &str,
        tenant: &TenantId,
        reason: &str,
    ) -> AuditEntry {
        let mut audit = who.audit(self.clock.now(), action);
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("tenant".into());
        audit.object_id = Some(tenant.to_string());
        audit.reason = Some(reason.to_owned());
        audit
    }

    /// The principal's tenants paused now, by an operator or the reputation guard.
    pub async fn paused_tenants(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<TenantPause>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        Ok(self.admin.paused_tenants(tenants.as_deref()).await?)
    }
}
