//! Resending and replaying: one delivery, a window's failed deliveries, a rejected event, or an
//! unkeyed rejection's body, each as a new delivery under a key derived from the original and
//! fed through the workers' [`EventHandler`](crate::handle_event::EventHandler).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tayori_domain::{
    DeliveryId, DeliveryStatus, EventSource, EventType, IdempotencyKey, MaskVariables, TenantId,
    mask_addresses, mask_body,
};
use tracing::info;

use super::{AdminError, AdminService, Principal, no_tenant, required_reason};
use crate::handle_event::{Handled, InboundMessage};
use crate::ports::{
    DeliveryCursor, DeliveryLink, DeliveryRecord, DeliverySearch, LinkKind, TenantScope,
    UnkeyedRejectionRecord,
};

/// What came of a resend or replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionResult {
    /// The new delivery; `None` when a replayed body still yields no key.
    pub delivery_id: Option<DeliveryId>,
    /// Its status after handling (`processing` when a transient failure left it for later).
    pub status: DeliveryStatus,
    /// The outcome's reason, or what was transient.
    pub reason: Option<String>,
}

/// Which of a tenant's failed deliveries a bulk resend takes ([`AdminService::resend_failed`]).
#[derive(Debug, Clone)]
pub struct FailedResends {
    /// Created at or after: the start of the incident. Required, as is `until`, so that a bulk
    /// resend names its window and a later call over the same window cannot reach the resends
    /// it made (which may fail too).
    pub from: DateTime<Utc>,
    /// Created before.
    pub until: DateTime<Utc>,
    /// Only this event type.
    pub event_type: Option<EventType>,
    /// Go on after this delivery: the previous page's `next`.
    pub after: Option<DeliveryCursor>,
    /// Deliveries taken by this call, 1 to [`MAX_FAILED_RESENDS`].
    pub limit: u32,
    /// Only say what would be resent; send nothing, record nothing.
    pub dry_run: bool,
}

/// Failed deliveries one [`AdminService::resend_failed`] call takes at most: each is sent in
/// turn while the request waits.
pub const MAX_FAILED_RESENDS: u32 = 500;

/// One failed delivery taken by a bulk resend.
#[derive(Debug)]
pub struct FailedResend {
    /// The failed delivery (the recipient masked unless the role is admin).
    pub origin: DeliveryRecord,
    /// What came of its resend; `None` in a dry run for one that would be resent. An error
    /// says why it cannot be resent (sensitive variables, no kept body).
    pub result: Option<Result<ActionResult, AdminError>>,
}

/// A page of a bulk resend: the deliveries it took, newest first, and where the next call goes
/// on (`None` once the window has no more failed deliveries not yet resent).
#[derive(Debug)]
pub struct FailedResendPage {
    /// The deliveries taken.
    pub items: Vec<FailedResend>,
    /// The cursor for the next call.
    pub next: Option<DeliveryCursor>,
}

impl AdminService {
    /// Sends a delivery's email again as a new delivery linked to it. See the module docs.
    pub async fn resend(
        &self,
        who: &Principal,
        id: DeliveryId,
        reason: &str,
    ) -> Result<ActionResult, AdminError> {
        let mut origin = self.visible_delivery(who, id).await?;
        who.require_act()?;
        if origin.status == DeliveryStatus::Unknown {
            if let Some(until) = self.unknown_until(&origin) {
                return Err(AdminError::Invalid(format!(
                    "this delivery cannot be resent yet: {}",
                    unknown_not_resendable(until)
                )));
            }
            let tenant = origin.tenant.clone();
            self.expire_unknown(who, &tenant, Some(id)).await?;
            origin = self.visible_delivery(who, id).await?;
        }
        self.derive_and_handle(who, &origin, LinkKind::Resend, reason, Numbering::Next).await
    }

    /// Until when an `unknown` delivery waits for an SES report before it may be resent;
    /// `None` for any other delivery, or once the window has passed.
    pub(super) fn unknown_until(&self, record: &DeliveryRecord) -> Option<DateTime<Utc>> {
        if record.status != DeliveryStatus::Unknown {
            return None;
        }
        let window = Duration::from_std(self.unknown_send_window).unwrap_or(Duration::MAX);
        let until = record.decided_at.unwrap_or(record.updated_at).checked_add_signed(window)?;
        (until > self.clock.now()).then_some(until)
    }

    /// Makes the tenant's `unknown` deliveries past the window `failed` ("not seen by SES"), so
    /// that a resend can take them (only `only`, when given).
    async fn expire_unknown(
        &self,
        who: &Principal,
        tenant: &TenantId,
        only: Option<DeliveryId>,
    ) -> Result<(), AdminError> {
        let now = self.clock.now();
        let window = Duration::from_std(self.unknown_send_window).unwrap_or(Duration::MAX);
        let Some(decided_before) = now.checked_sub_signed(window) else { return Ok(()) };
        let reason = format!(
            "not seen by SES: no SES report within {} s of a send whose result was unknown; \
             resendable. Before: ",
            self.unknown_send_window.as_secs()
        );
        let mut audit = who.audit(now, "delivery.unknown_expired");
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("delivery".into());
        audit.reason = Some("not seen by SES within the unknown-send window".into());
        audit.detail = serde_json::json!({ "window_seconds": self.unknown_send_window.as_secs() });
        let expired =
            self.admin.expire_unknown_sends(tenant, only, decided_before, &reason, &audit).await?;
        if !expired.is_empty() {
            info!(%tenant, count = expired.len(), "unknown sends not seen by SES are now failed");
        }
        Ok(())
    }

    /// Feeds a rejected delivery's event through again (after a fix, e.g. a template added) as a
    /// new delivery linked to it.
    pub async fn replay_delivery(
        &self,
        who: &Principal,
        id: DeliveryId,
        reason: &str,
    ) -> Result<ActionResult, AdminError> {
        let origin = self.visible_delivery(who, id).await?;
        who.require_act()?;
        if origin.status != DeliveryStatus::Rejected {
            return Err(AdminError::Invalid(format!(
                "only rejected deliveries are replayed; this one is {} (resend it instead)",
                origin.status
            )));
        }
        self.derive_and_handle(who, &origin, LinkKind::Replay, reason, Numbering::Next).await
    }

    /// Resends a page of `tenant`'s failed deliveries that have no decided resend, each as
    /// [`resend`](Self::resend) would (a new linked delivery, audited `delivery.resend`), after
    /// the cause of a run of failures is fixed: a sending identity verified again, a
    /// configuration set restored; `unknown` ones (a send without an answer) only once the
    /// unknown-send window has passed without an SES report ("not seen by SES"). Safe to
    /// repeat: each is only ever given its *first* resend (one key per failed delivery), so a
    /// delivery resent once is never mailed again, two calls racing for one mail it once, and a
    /// first resend left undecided (throttled, or the call stopped) is taken again by the next
    /// call and finishes. One that cannot be resent is reported with why and passed over.
    pub async fn resend_failed(
        &self,
        who: &Principal,
        tenant: &TenantId,
        request: FailedResends,
        reason: &str,
    ) -> Result<FailedResendPage, AdminError> {
        let tenants = who.scope.narrowed(Some(tenant)).map_err(|()| no_tenant(Some(tenant)))?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        if request.from >= request.until {
            return Err(AdminError::Invalid("`from` must be before `until`".into()));
        }
        if !(1..=MAX_FAILED_RESENDS).contains(&request.limit) {
            return Err(AdminError::Invalid(format!("limit must be 1 to {MAX_FAILED_RESENDS}")));
        }
        // Sends whose result is unknown wait for SES's report; those past the window without
        // one become `failed` ("not seen by SES") here, and this search takes them. Also on a
        // dry run: it records what the window decided, not a resend.
        self.expire_unknown(who, tenant, None).await?;
        let search = DeliverySearch {
            tenants,
            status: Some(DeliveryStatus::Failed),
            event_type: request.event_type,
            recipient: None,
            from: Some(request.from),
            until: Some(request.until),
            not_resent: true,
            after: request.after,
            limit: request.limit,
        };
        let page = self.admin.search_deliveries(&search).await?;
        let mut items = Vec::with_capacity(page.deliveries.len());
        for summary in page.deliveries {
            // The search's rows leave the kept event out; a resend needs it.
            let mut origin = self.visible_delivery(who, summary.delivery_id).await?;
            let result = match self.resend_body(&origin, LinkKind::Resend, 1) {
                Err(why) => Some(Err(AdminError::Invalid(format!("cannot be resent: {why}")))),
                Ok(_) if request.dry_run => None,
                Ok(_) => Some(
                    self.derive_and_handle(
                        who,
                        &origin,
                        LinkKind::Resend,
                        reason,
                        Numbering::First,
                    )
                    .await,
                ),
            };
            self.mask_for(who, &mut origin);
            items.push(FailedResend { origin, result });
        }
        Ok(FailedResendPage { items, next: page.next })
    }

    /// Unkeyed rejections (bodies without a usable key) the principal may see.
    pub async fn unkeyed_rejections(
        &self,
        who: &Principal,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, AdminError> {
        let tenants = who.scope.filter();
        let mut rejections = self.admin.unkeyed_rejections(tenants.as_deref(), limit).await?;
        if !who.sees_addresses() {
            for rejection in &mut rejections {
                rejection.reason = mask_addresses(&rejection.reason);
                rejection.raw_body =
                    mask_body(&rejection.raw_body, MaskVariables::All).into_bytes();
            }
        }
        Ok(rejections)
    }

    /// Feeds an unkeyed rejection's body through the handler again, as received.
    pub async fn replay_unkeyed(
        &self,
        who: &Principal,
        body_sha256: &str,
        reason: &str,
    ) -> Result<ActionResult, AdminError> {
        let not_found = || AdminError::NotFound(format!("no rejected body {body_sha256}"));
        let rejection = self.admin.unkeyed_rejection(body_sha256).await?.ok_or_else(not_found)?;
        let tenant = rejection.tenant.as_deref().and_then(|t| TenantId::parse(t).ok());
        let visible = match (&who.scope, &tenant) {
            (TenantScope::All, _) => true,
            (scope, Some(tenant)) => scope.includes(tenant),
            (TenantScope::Only(_), None) => false,
        };
        if !visible {
            return Err(not_found());
        }
        who.require_act()?;
        let reason = required_reason(reason)?;
        if (rejection.raw_body.len() as u64) < rejection.body_size {
            return Err(AdminError::Invalid(format!(
                "only the first {} of {} bytes were kept; the body cannot be replayed",
                rejection.raw_body.len(),
                rejection.body_size
            )));
        }
        let handled = self.handler.handle(&InboundMessage::first(rejection.raw_body)).await;
        let result = action_result(handled, None);
        let outcome = match &result {
            Ok(done) => format!("{}: {}", done.status, done.reason.as_deref().unwrap_or("")),
            Err(other) => other.to_string(),
        };
        let mut audit = who.audit(self.clock.now(), "rejection.replay");
        audit.tenant = tenant;
        audit.object_kind = Some("unkeyed_rejection".into());
        audit.object_id = Some(body_sha256.to_owned());
        audit.reason = Some(reason.to_owned());
        let new_delivery = result.as_ref().ok().and_then(|done| done.delivery_id);
        audit.detail = serde_json::json!({ "result": outcome, "new_delivery_id": new_delivery });
        self.admin.record_unkeyed_replay(body_sha256, self.clock.now(), &outcome, &audit).await?;
        result
    }

    /// The body to handle for a resend or replay number `n` of `origin`: its stored event (or,
    /// for an event that broke the contract, its raw body) under the derived key.
    pub(super) fn resend_body(
        &self,
        origin: &DeliveryRecord,
        kind: LinkKind,
        n: u32,
    ) -> Result<Vec<u8>, String> {
        let stored = match (&origin.event_json, &origin.raw_body) {
            (Some(json), _) => json.as_bytes().to_vec(),
            (None, Some(raw)) => raw.clone(),
            (None, None) => return Err("no copy of the event was kept".into()),
        };
        let mut envelope: Value = serde_json::from_slice(&stored)
            .map_err(|_| "the kept body is not JSON: fix it at the producer".to_owned())?;
        let Some(fields) = envelope.as_object_mut() else {
            return Err("the kept body is not a JSON object".into());
        };
        if let Some(event_type) = fields.get("type").and_then(Value::as_str)
            && let Ok(event_type) = EventType::parse(event_type)
        {
            let sensitive = self.handler.renderer.sensitive_variables(&origin.tenant, &event_type);
            let lost: Vec<&str> = sensitive
                .iter()
                .filter(|name| {
                    fields
                        .get("data")
                        .and_then(|d| d.get("variables"))
                        .and_then(|v| v.get(name.as_str()))
                        .is_some_and(|v| v == "***")
                })
                .map(String::as_str)
                .collect();
            if !lost.is_empty() {
                return Err(format!(
                    "its sensitive variables ({}) are not kept by tayori; ask the producer to \
                     publish the event again",
                    lost.join(", ")
                ));
            }
        }
        fields.insert("source".into(), Value::String(format!("tayori:{}", kind.as_str())));
        fields.insert("id".into(), Value::String(format!("{}:{n}", origin.delivery_id)));
        serde_json::to_vec(&envelope).map_err(|e| e.to_string())
    }

    async fn derive_and_handle(
        &self,
        who: &Principal,
        origin: &DeliveryRecord,
        kind: LinkKind,
        reason: &str,
        numbering: Numbering,
    ) -> Result<ActionResult, AdminError> {
        let reason = required_reason(reason)?;
        let tenant = &origin.tenant;
        let mut n = match numbering {
            Numbering::Next => {
                self.admin.last_link_number(tenant, origin.delivery_id, kind).await? + 1
            }
            Numbering::First => 1,
        };
        // Another operator may take the same number at the same moment: take the next one.
        let (body, delivery_id) = loop {
            let body = self.resend_body(origin, kind, n).map_err(|why| {
                let done = match kind {
                    LinkKind::Resend => "resent",
                    LinkKind::Replay => "replayed",
                };
                AdminError::Invalid(format!("this delivery cannot be {done}: {why}"))
            })?;
            let delivery_id = derived_key(tenant, kind, origin.delivery_id, n)?.delivery_id();
            let now = self.clock.now();
            let link = DeliveryLink {
                tenant: tenant.clone(),
                delivery_id,
                origin: origin.delivery_id,
                kind,
                n,
                reason: reason.to_owned(),
                created_by: who.token_id.clone(),
                created_at: now,
            };
            let mut audit = who.audit(now, &format!("delivery.{}", kind.as_str()));
            audit.tenant = Some(tenant.clone());
            audit.object_kind = Some("delivery".into());
            audit.object_id = Some(origin.delivery_id.to_string());
            audit.reason = Some(reason.to_owned());
            audit.detail = serde_json::json!({ "new_delivery_id": delivery_id, "n": n });
            if self.admin.record_link(&link, &audit).await? {
                break (body, delivery_id);
            }
            if numbering == Numbering::First {
                // Its first resend exists: another call's, or one a throttle or a stop left
                // undecided. The same derived event again: its key makes a decided one a
                // duplicate and lets an undecided one finish, never a second email.
                audit.detail["again"] = serde_json::Value::Bool(true);
                self.admin.record_audit(&audit).await?;
                break (body, delivery_id);
            }
            n += 1;
            if n > 10_000 {
                return Err(AdminError::Invalid("too many resends of this delivery".into()));
            }
        };
        info!(origin = %origin.delivery_id, %delivery_id, kind = kind.as_str(), "operator action");
        let handled = self.handler.handle(&InboundMessage::first(body)).await;
        action_result(handled, Some(delivery_id))
    }
}

/// Which resend (or replay) of a delivery a new one may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Numbering {
    /// The next number free: an operator asked for one more.
    Next,
    /// Only the first: a bulk resend never adds a second; an existing first is handled again
    /// (its key makes that safe).
    First,
}

fn derived_key(
    tenant: &TenantId,
    kind: LinkKind,
    origin: DeliveryId,
    n: u32,
) -> Result<IdempotencyKey, AdminError> {
    let source = EventSource::parse(&format!("tayori:{}", kind.as_str()))
        .map_err(|e| AdminError::Unexpected(e.into()))?;
    let id = tayori_domain::EventId::parse(&format!("{origin}:{n}"))
        .map_err(|e| AdminError::Unexpected(e.into()))?;
    Ok(IdempotencyKey::new(tenant.clone(), source, id))
}

fn action_result(
    handled: Result<Handled, crate::RetryLater>,
    expected: Option<DeliveryId>,
) -> Result<ActionResult, AdminError> {
    match handled {
        Ok(Handled::Decided { delivery_id, outcome }) => Ok(ActionResult {
            delivery_id: Some(delivery_id),
            status: outcome.status(),
            reason: outcome.reason().map(str::to_owned),
        }),
        Ok(Handled::Duplicate { delivery_id, status }) => Ok(ActionResult {
            delivery_id: Some(delivery_id),
            status,
            reason: Some("this event was decided before; nothing was sent again".into()),
        }),
        Ok(Handled::Held { delivery_id, reason }) => Ok(ActionResult {
            delivery_id: Some(delivery_id),
            status: DeliveryStatus::Processing,
            reason: Some(format!("the tenant is paused ({reason}): held until it is resumed")),
        }),
        Ok(Handled::RejectedWithoutKey { reason }) => Ok(ActionResult {
            delivery_id: None,
            status: DeliveryStatus::Rejected,
            reason: Some(format!("still without a key: {reason}")),
        }),
        Err(retry) => match retry.delivery_id.or(expected) {
            Some(delivery_id) => Ok(ActionResult {
                delivery_id: Some(delivery_id),
                status: DeliveryStatus::Processing,
                reason: Some(format!("not decided yet: {}; try again", retry.reason)),
            }),
            None => Err(AdminError::Unavailable(retry.reason)),
        },
    }
}

/// Why an `unknown` delivery cannot be resent before `until`.
pub(super) fn unknown_not_resendable(until: DateTime<Utc>) -> String {
    format!(
        "its send's result is unknown and SES may have accepted it; it waits for SES's report \
         (which makes it sent, reconciled) until {}, and can be resent after that if none came",
        until.to_rfc3339()
    )
}
