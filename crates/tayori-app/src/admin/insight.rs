//! What operators read to see how sending goes: what the workers are doing now, counts per
//! outcome, bounce and complaint rates, and the audit log.

use chrono::Duration;
use tayori_domain::TenantId;

use super::{AdminError, AdminService, Principal, TenantReputation, no_tenant};
use crate::ports::{AuditQuery, AuditRecord, OutcomeCount, TenantActivity};

/// A time window for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsWindow {
    /// The last hour.
    Hour,
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
}

impl StatsWindow {
    /// Parses `hour`, `day` or `week`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
            Self::Week => Duration::days(7),
        }
    }
}

impl AdminService {
    /// What each of the principal's tenants is doing in the running workers now (slots, waiting
    /// messages, send rate, hand-backs), summed over the workers heard from lately; empty when
    /// no worker publishes here.
    pub async fn tenant_activity(
        &self,
        who: &Principal,
    ) -> Result<Vec<TenantActivity>, AdminError> {
        let Some(board) = &self.activity else { return Ok(Vec::new()) };
        let tenants = who.scope.narrowed(None).map_err(|()| no_tenant(None))?;
        let live_for = crate::PublishActivity::live_for(crate::publish_activity::PUBLISH_EVERY);
        Ok(board.read(tenants.as_deref(), self.clock.now(), live_for).await?)
    }

    /// Counts per tenant and outcome over the window, in the principal's tenants.
    pub async fn stats(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        window: StatsWindow,
    ) -> Result<Vec<OutcomeCount>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let since = self.clock.now() - window.length();
        Ok(self.admin.outcome_counts(tenants.as_deref(), since).await?)
    }

    /// Bounce and complaint rates per tenant over the window, against the thresholds a
    /// sending service is held to (see [`ReputationThresholds`](super::ReputationThresholds)).
    pub async fn reputation(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        window: StatsWindow,
    ) -> Result<Vec<TenantReputation>, AdminError> {
        let tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        let since = self.clock.now() - window.length();
        let counts = self.admin.reputation_counts(tenants.as_deref(), since).await?;
        let thresholds = self.reputation_thresholds;
        Ok(counts.into_iter().map(|counts| thresholds.judge(counts)).collect())
    }

    /// The audit log in the principal's tenants (entries without a tenant, such as token
    /// changes, only for tokens that see every tenant).
    pub async fn audit(
        &self,
        who: &Principal,
        tenant: Option<&TenantId>,
        mut query: AuditQuery,
    ) -> Result<Vec<AuditRecord>, AdminError> {
        query.tenants = who.scope.narrowed(tenant).map_err(|()| no_tenant(tenant))?;
        Ok(self.admin.audit(&query).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ReputationThresholds;

    #[test]
    fn reputation_is_judged_only_from_the_minimum_volume() {
        let thresholds = ReputationThresholds::default();
        let counts = |sent, bounced, complained| crate::ports::ReputationCount {
            tenant: TenantId::parse("acme-bank").unwrap_or_else(|e| panic!("{e}")),
            sent,
            bounced,
            complained,
        };
        let judged = thresholds.judge(counts(1_000, 41, 0));
        assert!(judged.over_threshold, "4.1 % bounces");
        assert!((judged.bounce_rate - 0.041).abs() < 1e-9);
        assert!(!thresholds.judge(counts(1_000, 40, 0)).over_threshold, "4 % is not above");
        assert!(thresholds.judge(counts(10_000, 0, 9)).over_threshold, "0.09 % complaints");
        assert!(!thresholds.judge(counts(199, 100, 100)).over_threshold, "too few to judge");
        assert_eq!(thresholds.judge(counts(0, 0, 0)).bounce_rate, 0.0);
    }
}
