//! Finding deliveries and seeing what happened to one: the search, the detail page (attempts,
//! links, SES's feedback) and the SES feedback that matched no delivery.

use sha2::{Digest, Sha256};
use tayori_domain::{DeliveryId, TenantId, mask_addresses, mask_link};

use super::resend::unknown_not_resendable;
use super::{AdminError, AdminService, Principal, masked, no_tenant};
use crate::ports::{
    AttemptRecord, DeliveryFeedback, DeliveryLink, DeliveryPage, DeliveryRecord, DeliverySearch,
    LinkKind, TenantScope, UnmatchedFeedbackCursor, UnmatchedFeedbackRecord,
};

/// A delivery with everything the detail page shows.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    /// The delivery (recipient masked unless the role is admin).
    pub record: DeliveryRecord,
    /// The send attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// Deliveries made from this one, and the one it was made from.
    pub links: Vec<DeliveryLink>,
    /// What SES said about it (recipients masked unless the role is admin).
    pub feedback: DeliveryFeedback,
    /// Why it cannot be resent, when it cannot.
    pub not_resendable: Option<String>,
}

/// A page of SES feedback kept without a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedFeedbackPage {
    /// Newest first.
    pub feedback: Vec<UnmatchedFeedbackRecord>,
    /// Where the next page starts, if there is one.
    pub next: Option<UnmatchedFeedbackCursor>,
}

impl AdminService {
    /// Searches deliveries in the principal's tenants (narrowed to `tenant` when given).
    pub async fn search_deliveries(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        mut search: DeliverySearch,
    ) -> Result<DeliveryPage, AdminError> {
        search.tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let mut page = self.admin.search_deliveries(&search).await?;
        // A role that sees addresses masked can still ask whether one was mailed: that
        // question is personal data too, so it is on the record (the address only as a hash).
        if let Some(address) = search.recipient.as_ref().filter(|_| !who.sees_addresses()) {
            let mut audit = who.audit(self.clock.now(), "deliveries.search_by_address");
            audit.tenant = tenant.cloned();
            audit.object_kind = Some("address".into());
            audit.object_id = Some(address.masked());
            audit.detail = serde_json::json!({
                "address_sha256": hex::encode(Sha256::digest(address.as_str().as_bytes())),
                "found": page.deliveries.len(),
            });
            self.admin.record_audit(&audit).await?;
        }
        for record in &mut page.deliveries {
            self.mask_for(who, record);
        }
        Ok(page)
    }

    /// One delivery with its attempts and links; `NotFound` outside the principal's tenants.
    pub async fn delivery(
        &self,
        who: &Principal,
        id: DeliveryId,
    ) -> Result<DeliveryDetail, AdminError> {
        let mut record = self.visible_delivery(who, id).await?;
        let mut attempts = self.deliveries.attempts(&record.tenant, id).await?;
        let links = self.admin.links(&record.tenant, id).await?;
        let mut feedback = self.admin.feedback(&record.tenant, id).await?;
        let not_resendable = match self.unknown_until(&record) {
            Some(until) => Some(unknown_not_resendable(until)),
            None => self.resend_body(&record, LinkKind::Resend, 1).err(),
        };
        self.mask_for(who, &mut record);
        if !who.sees_addresses() {
            for attempt in &mut attempts {
                attempt.detail = attempt.detail.as_deref().map(mask_addresses);
            }
            for entry in &mut feedback.timeline {
                entry.recipients.iter_mut().for_each(|address| *address = masked(address));
                // A click's detail is the link clicked: a reset link carries its token.
                let mask = if entry.kind == "click" { mask_link } else { mask_addresses };
                entry.detail = entry.detail.as_deref().map(mask);
            }
        }
        Ok(DeliveryDetail { record, attempts, links, feedback, not_resendable })
    }

    /// SES feedback kept without a delivery, newest first, a page of `limit` (1 to 500). It
    /// names no tenant, so only tokens of every tenant see it; others get an empty page.
    pub async fn unmatched_feedback(
        &self,
        who: &Principal,
        after: Option<&UnmatchedFeedbackCursor>,
        limit: u32,
    ) -> Result<UnmatchedFeedbackPage, AdminError> {
        if who.scope != TenantScope::All {
            return Ok(UnmatchedFeedbackPage { feedback: Vec::new(), next: None });
        }
        let limit = limit.clamp(1, 500);
        // One row more than the page tells whether there is a next one.
        let mut feedback = self.admin.unmatched_feedback(after, limit + 1).await?;
        if !who.sees_addresses() {
            for record in &mut feedback {
                record.reason = record.reason.as_deref().map(mask_addresses);
            }
        }
        let more = feedback.len() > limit as usize;
        feedback.truncate(limit as usize);
        let next = more.then(|| feedback.last()).flatten().map(|last| UnmatchedFeedbackCursor {
            received_at: last.received_at,
            feedback_id: last.feedback_id.clone(),
        });
        Ok(UnmatchedFeedbackPage { feedback, next })
    }
}
