//! Operators' suppressions: listed (addresses masked unless the role is admin), added and
//! removed, each change audited.

use chrono::{DateTime, Utc};
use tayori_domain::{EmailAddress, TenantId};

use super::{AdminError, AdminService, Principal, no_tenant, required_reason};
use crate::ports::{SuppressionEntry, SuppressionQuery};

/// A suppression as shown to a principal: the address masked unless the role is admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownSuppression {
    /// The tenant.
    pub tenant: TenantId,
    /// The address, or its masked form.
    pub address: String,
    /// Why.
    pub reason: String,
    /// What caused it.
    pub cause: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl AdminService {
    /// Suppressions in the principal's tenants (narrowed to `tenant` when given), addresses
    /// masked unless the role is admin.
    pub async fn suppressions(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        address: Option<EmailAddress>,
        limit: u32,
    ) -> Result<Vec<ShownSuppression>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let query = SuppressionQuery { tenants, address, limit };
        let entries = self.admin.suppressions(&query).await?;
        Ok(entries
            .into_iter()
            .map(|entry| ShownSuppression {
                address: if who.sees_addresses() {
                    entry.address.to_string()
                } else {
                    entry.address.masked()
                },
                tenant: entry.tenant,
                reason: entry.reason,
                cause: entry.cause,
                created_by: entry.created_by,
                created_at: entry.created_at,
            })
            .collect())
    }

    /// Stops all mail from the tenant to the address. `false` when it was suppressed already.
    pub async fn add_suppression(
        &self,
        who: &Principal,
        tenant: &TenantId,
        address: &EmailAddress,
        reason: &str,
    ) -> Result<bool, AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let now = self.clock.now();
        let entry = SuppressionEntry {
            tenant: tenant.clone(),
            address: address.clone(),
            reason: format!("suppressed by an operator: {reason}"),
            cause: "operator".into(),
            created_by: who.token_id.clone(),
            created_at: now,
        };
        let mut audit = who.audit(now, "suppression.add");
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("suppression".into());
        audit.object_id = Some(address.masked());
        audit.reason = Some(reason.to_owned());
        Ok(self.admin.add_suppression(&entry, &audit).await?)
    }

    /// Lets the tenant mail the address again; `NotFound` when it was not suppressed.
    pub async fn remove_suppression(
        &self,
        who: &Principal,
        tenant: &TenantId,
        address: &EmailAddress,
        reason: &str,
    ) -> Result<(), AdminError> {
        self.require_tenant(who, tenant)?;
        who.require_act()?;
        let reason = required_reason(reason)?;
        let mut audit = who.audit(self.clock.now(), "suppression.remove");
        audit.tenant = Some(tenant.clone());
        audit.object_kind = Some("suppression".into());
        audit.object_id = Some(address.masked());
        audit.reason = Some(reason.to_owned());
        if self.admin.remove_suppression(tenant, address, &audit).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound("that address is not suppressed for the tenant".into()))
        }
    }
}
