//! The suppression list on PostgreSQL: the tenant's entries that the worker checks before
//! rendering (operators add them through the admin API; the SES feedback loop adds its own).
//!
//! The worker checks once per event. Like the store's writes (`group_commit.rs`; both run on
//! `coalesce.rs`), concurrent checks are answered together: two reader tasks each take every
//! check queued and answer them with one statement (one round trip, one plan, however many
//! addresses), so that the check costs a fraction of a query per event under load and one query
//! at light load.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::postgres::PgPool;
use tayori_app::admin::COMMAND_LINE_TOKEN_ID;
use tayori_app::ports::{
    AuditEntry, MessageClass, StoreError, Suppression, SuppressionError, SuppressionList,
    UnsubscribeStore,
};
use tayori_domain::{EmailAddress, TenantId, UnsubscribeClaim};

use crate::admin::insert_audit;
use crate::coalesce::{Coalesce, Coalescer};
use crate::errors::store_error;

/// The tenants' suppression lists in the `suppressions` table.
#[derive(Debug, Clone)]
pub struct PostgresSuppressions {
    pool: PgPool,
    checks: Arc<Coalescer<Checks>>,
}

/// The statement one check runs; the batched form below must give the same answers.
const CHECK_ONE: &str = "select reason from suppressions \
     where tenant_id = $1 and lower(address) = lower($2) \
         and (message_class is null or message_class = $3) \
     order by message_class nulls first, created_at limit 1";

/// The same for many checks: one row per check, in its order, `reason` null when none applies.
const CHECK_MANY: &str = "select q.i, (select s.reason from suppressions s \
         where s.tenant_id = q.tenant_id and lower(s.address) = lower(q.address) \
             and (s.message_class is null or s.message_class = q.class) \
         order by s.message_class nulls first, s.created_at limit 1) as reason \
     from unnest($1::int4[], $2::text[], $3::text[], $4::text[]) \
         as q(i, tenant_id, address, class) \
     order by q.i";

/// Checks waiting to be answered together: at most this many in one statement.
const MAX_CHECKS_PER_QUERY: usize = 256;
/// Reader tasks: one statement runs while the next batch gathers.
const READERS: usize = 2;

/// One check: the tenant, the address, the message class.
struct Check {
    tenant: String,
    address: String,
    class: &'static str,
}

/// How checks are answered: alone with [`CHECK_ONE`], together with [`CHECK_MANY`].
#[derive(Debug)]
struct Checks {
    pool: PgPool,
}

impl Coalesce for Checks {
    type Request = Check;
    type Answer = Result<Option<String>, String>;

    async fn one(&self, check: &Check) -> Self::Answer {
        check_one(&self.pool, check).await
    }

    async fn many(&self, checks: &[Check]) -> Vec<Self::Answer> {
        match check_many(&self.pool, checks).await {
            Ok(reasons) => reasons.into_iter().map(Ok).collect(),
            Err(error) => checks.iter().map(|_| Err(error.clone())).collect(),
        }
    }

    fn stopped(&self) -> Self::Answer {
        Err("the suppression reader stopped before answering".into())
    }
}

async fn check_one(pool: &PgPool, check: &Check) -> Result<Option<String>, String> {
    sqlx::query_scalar(CHECK_ONE)
        .bind(&check.tenant)
        .bind(&check.address)
        .bind(check.class)
        .fetch_optional(pool)
        .await
        .map_err(|e| e.to_string())
}

async fn check_many(pool: &PgPool, checks: &[Check]) -> Result<Vec<Option<String>>, String> {
    let order: Vec<i32> = (0..checks.len()).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect();
    let tenants: Vec<&str> = checks.iter().map(|c| c.tenant.as_str()).collect();
    let addresses: Vec<&str> = checks.iter().map(|c| c.address.as_str()).collect();
    let classes: Vec<&str> = checks.iter().map(|c| c.class).collect();
    let rows: Vec<(i32, Option<String>)> = sqlx::query_as(CHECK_MANY)
        // Planned with its arrays in hand, like the store's batch statements.
        .persistent(false)
        .bind(order)
        .bind(tenants)
        .bind(addresses)
        .bind(classes)
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
    if rows.len() != checks.len() {
        return Err(format!("{} answers to {} suppression checks", rows.len(), checks.len()));
    }
    Ok(rows.into_iter().map(|(_, reason)| reason).collect())
}

impl PostgresSuppressions {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        let checks = Coalescer::new(Checks { pool: pool.clone() }, READERS, MAX_CHECKS_PER_QUERY);
        Self { pool, checks: Arc::new(checks) }
    }
}

#[async_trait]
impl SuppressionList for PostgresSuppressions {
    async fn check(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        class: MessageClass,
    ) -> Result<Option<Suppression>, SuppressionError> {
        // Without regard to case (see the migration). An entry without a class applies to every
        // class and wins over one limited to this class (its reason is the stronger one).
        let check = Check {
            tenant: tenant.as_str().to_owned(),
            address: address.as_str().to_owned(),
            class: class.as_str(),
        };
        let reason = self.checks.submit(check).await.map_err(SuppressionError::Unavailable)?;
        Ok(reason.map(|reason| Suppression { reason }))
    }
}

#[async_trait]
impl UnsubscribeStore for PostgresSuppressions {
    async fn record_unsubscribe(
        &self,
        claim: &UnsubscribeClaim,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let reason =
            format!("unsubscribed with the one-click link of a {} email", claim.event_type);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The unique index (tenant, lower(address), class) makes a second click a no-op.
        let added = sqlx::query(
            "insert into suppressions (tenant_id, address, message_class, reason, cause, \
                 created_by, created_at) values ($1, $2, 'subscription', $3, 'unsubscribe', \
                 'one-click-unsubscribe', $4) \
             on conflict do nothing",
        )
        .bind(claim.tenant.as_str())
        .bind(claim.address.as_str())
        .bind(&reason)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected()
            == 1;
        if added {
            let audit = AuditEntry {
                at: now,
                token_id: COMMAND_LINE_TOKEN_ID.into(),
                role: "one-click-unsubscribe".into(),
                action: "suppression.add".into(),
                tenant: Some(claim.tenant.clone()),
                object_kind: Some("suppression".into()),
                object_id: Some(claim.address.masked()),
                reason: Some(reason),
                detail: json!({
                    "cause": "unsubscribe",
                    "message_class": "subscription",
                    "event_type": claim.event_type.as_str(),
                    "unsubscribe_token_sha256": token_sha256,
                }),
            };
            insert_audit(&mut tx, &audit).await?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(added)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::PostgresStore;

    /// Entries of two tenants: every class, subscription only, and one of each for one address
    /// (the class-less one wins), in mixed case.
    async fn list() -> (PgPool, PostgresSuppressions) {
        let config = crate::testing::fresh_database().await;
        let pool = PostgresStore::connect(&config).await.unwrap().pool().clone();
        for (tenant, address, class, reason) in [
            ("acme-invest", "Bounced@Example.com", None, "bounced"),
            ("acme-invest", "unsub@example.com", Some("subscription"), "unsubscribed"),
            ("acme-invest", "both@example.com", Some("subscription"), "unsubscribed"),
            ("acme-invest", "both@example.com", None, "complained"),
            ("acme-bank", "bounced@example.com", Some("transactional"), "operator"),
        ] {
            sqlx::query(
                "insert into suppressions (tenant_id, address, message_class, reason, \
                     created_by, created_at) values ($1, $2, $3, $4, 'test', now())",
            )
            .bind(tenant)
            .bind(address)
            .bind(class)
            .bind(reason)
            .execute(&pool)
            .await
            .unwrap();
        }
        (pool.clone(), PostgresSuppressions::new(pool))
    }

    fn checks() -> Vec<(&'static str, &'static str, &'static str)> {
        let mut all = Vec::new();
        for tenant in ["acme-invest", "acme-bank", "nobody"] {
            for address in
                ["bounced@example.com", "UNSUB@example.com", "both@example.com", "fine@example.com"]
            {
                for class in ["transactional", "subscription"] {
                    all.push((tenant, address, class));
                }
            }
        }
        all
    }

    fn check(tenant: &str, address: &str, class: &'static str) -> Check {
        Check { tenant: tenant.into(), address: address.into(), class }
    }

    /// The batched statement answers every check as the single one does, in order.
    #[tokio::test]
    async fn a_batch_of_checks_gets_the_answers_of_single_checks() {
        let (pool, _) = list().await;
        let batch: Vec<Check> = checks().into_iter().map(|(t, a, c)| check(t, a, c)).collect();
        let mut expected = Vec::new();
        for one in &batch {
            expected.push(check_one(&pool, one).await.unwrap());
        }
        assert_eq!(check_many(&pool, &batch).await.unwrap(), expected);
        // The cases the list was built for, so that a wrong statement cannot agree by accident.
        let got = |t: &str, a: &str, c: &str| {
            let i = checks().iter().position(|x| *x == (t, a, c)).unwrap();
            expected[i].clone()
        };
        assert_eq!(
            got("acme-invest", "bounced@example.com", "transactional").as_deref(),
            Some("bounced")
        );
        assert_eq!(
            got("acme-invest", "UNSUB@example.com", "subscription").as_deref(),
            Some("unsubscribed")
        );
        assert_eq!(got("acme-invest", "UNSUB@example.com", "transactional"), None);
        assert_eq!(
            got("acme-invest", "both@example.com", "subscription").as_deref(),
            Some("complained")
        );
        assert_eq!(got("acme-bank", "bounced@example.com", "subscription"), None);
        assert_eq!(got("nobody", "bounced@example.com", "transactional"), None);
    }

    /// Many checks at once through the port: each gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_each_get_their_own_answer() {
        let (pool, suppressions) = list().await;
        let mut tasks = tokio::task::JoinSet::new();
        for round in 0..10 {
            for (i, (tenant, address, class)) in checks().into_iter().enumerate() {
                let suppressions = suppressions.clone();
                tasks.spawn(async move {
                    let class_of = match class {
                        "subscription" => MessageClass::Subscription,
                        _ => MessageClass::Transactional,
                    };
                    let tenant_id = TenantId::parse(tenant).unwrap();
                    let address_id = EmailAddress::parse(address).unwrap();
                    let got = suppressions.check(&tenant_id, &address_id, class_of).await.unwrap();
                    (round, i, got.map(|s| s.reason))
                });
            }
        }
        let all = checks();
        let mut answered = 0;
        while let Some(joined) = tasks.join_next().await {
            let (_, i, got) = joined.unwrap();
            let (tenant, address, class) = all[i];
            let expected = check_one(&pool, &check(tenant, address, class)).await.unwrap();
            assert_eq!(got, expected, "{tenant} {address} {class}");
            answered += 1;
        }
        assert_eq!(answered, 10 * all.len());
    }
}
