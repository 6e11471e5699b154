//! The admin store on PostgreSQL: operators' tokens (hashed), the audit log, suppressions,
//! delivery links, and the searches and counts of the admin API. Every action's audit entry is
//! written in the same transaction as the action.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use tayori_app::ports::{
    AdminStore, AuditEntry, AuditQuery, AuditRecord, DeliveryCursor, DeliveryFeedback,
    DeliveryLink, DeliveryPage, DeliveryRecord, DeliverySearch, LinkKind, OutcomeCount,
    ReputationCount, Role, StoreError, SuppressionEntry, SuppressionQuery, TenantPause,
    TenantScope, TokenRecord, UnkeyedRejectionRecord, UnmatchedFeedbackCursor,
    UnmatchedFeedbackRecord,
};
use tayori_domain::{DeliveryId, EmailAddress, TenantId};
use uuid::Uuid;

use crate::errors::store_error;
use crate::listing::{push_older_than, push_status};

/// The admin store on a PostgreSQL pool (the same database as the delivery store).
#[derive(Debug, Clone)]
pub struct PostgresAdminStore {
    pub(crate) pool: PgPool,
}

impl PostgresAdminStore {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// PostgreSQL's plan for the statement [`AdminStore::search_deliveries`] runs, as text, so
    /// that tests can check which index a search walks.
    #[cfg(feature = "testing")]
    pub async fn explain_search(&self, search: &DeliverySearch) -> Result<String, StoreError> {
        let mut sql = search_query(
            &format!("explain select {SUMMARY_COLUMNS}"),
            search,
            search.limit.clamp(1, 500),
        );
        let lines: Vec<String> =
            sql.build_query_scalar().fetch_all(&self.pool).await.map_err(store_error)?;
        Ok(lines.join("\n"))
    }
}

fn unexpected(error: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unexpected(error.into())
}

fn tenant_names(tenants: &[TenantId]) -> Vec<String> {
    tenants.iter().map(ToString::to_string).collect()
}

pub(crate) fn parse_uuid(raw: &str) -> Result<Uuid, StoreError> {
    Uuid::try_parse(raw).map_err(unexpected)
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or_default()
}

/// The search's statement after `head` (the select list, or `explain ...` in tests), with the
/// filters that are set, newest first, at most `limit` rows.
fn search_query(head: &str, search: &DeliverySearch, limit: u32) -> QueryBuilder<Postgres> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("{head} from deliveries where true"));
    match search.tenants.as_deref() {
        // One tenant: plain equality, so the planner walks a (tenant_id, ..., created_at)
        // index in order instead of sorting every match of `= any(...)`.
        Some([tenant]) => {
            sql.push(" and tenant_id = ").push_bind(tenant.to_string());
        }
        Some(tenants) => {
            sql.push(" and tenant_id = any(").push_bind(tenant_names(tenants)).push(")");
        }
        None => {}
    }
    if let Some(status) = search.status {
        push_status(&mut sql, status);
    }
    if let Some(event_type) = &search.event_type {
        sql.push(" and event_type = ").push_bind(event_type.to_string());
    }
    if let Some(recipient) = &search.recipient {
        sql.push(" and recipient = ").push_bind(recipient.as_str().to_owned());
    }
    if let Some(from) = search.from {
        sql.push(" and created_at >= ").push_bind(from);
    }
    if let Some(until) = search.until {
        sql.push(" and created_at < ").push_bind(until);
    }
    if search.not_resent {
        // The links' unique (tenant_id, origin_delivery_id, kind, n) and the deliveries'
        // unique delivery id answer this per row. A resend still `processing` (throttled, or
        // its sender stopped) or never made (a crash after its link) does not count.
        sql.push(
            " and not exists (select 1 from delivery_links l \
                 join deliveries r on r.delivery_id = l.delivery_id \
               where l.tenant_id = deliveries.tenant_id \
                 and l.origin_delivery_id = deliveries.delivery_id and l.kind = 'resend' \
                 and r.status <> 'processing')",
        );
    }
    if let Some(after) = &search.after {
        push_older_than(&mut sql, after);
    }
    sql.push(" order by created_at desc, delivery_id desc limit ").push_bind(i64::from(limit));
    sql
}

pub(crate) fn token_record(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role").map_err(store_error)?;
    let tenants: Option<Vec<String>> = row.try_get("tenants").map_err(store_error)?;
    let scope = match tenants {
        None => TenantScope::All,
        Some(names) => TenantScope::Only(
            names
                .iter()
                .map(|t| TenantId::parse(t))
                .collect::<Result<_, _>>()
                .map_err(unexpected)?,
        ),
    };
    Ok(TokenRecord {
        token_id: row.try_get::<Uuid, _>("token_id").map_err(store_error)?.to_string(),
        role: role.parse::<Role>().map_err(unexpected)?,
        scope,
        label: row.try_get("label").map_err(store_error)?,
        created_at: row.try_get("created_at").map_err(store_error)?,
        expires_at: row.try_get("expires_at").map_err(store_error)?,
        revoked_at: row.try_get("revoked_at").map_err(store_error)?,
        last_used_at: row.try_get("last_used_at").map_err(store_error)?,
    })
}

/// The columns of a search result: everything but the stored event and raw body, which only the
/// detail shows.
const SUMMARY_COLUMNS: &str = "tenant_id, source, event_id, delivery_id, event_type, recipient, \
    status, reason, provider_message_id, subject, claim_count, duplicate_count, receive_count, \
    lease_expires_at, created_at, updated_at, decided_at, reconciled_at";

fn delivery_summary(row: &PgRow) -> Result<DeliveryRecord, StoreError> {
    let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
    let status: String = row.try_get("status").map_err(store_error)?;
    Ok(DeliveryRecord {
        delivery_id: DeliveryId::from_uuid(row.try_get("delivery_id").map_err(store_error)?),
        tenant: TenantId::parse(&tenant).map_err(unexpected)?,
        source: row.try_get("source").map_err(store_error)?,
        event_id: row.try_get("event_id").map_err(store_error)?,
        event_type: row.try_get("event_type").map_err(store_error)?,
        recipient: row.try_get("recipient").map_err(store_error)?,
        status: status.parse().map_err(unexpected)?,
        reason: row.try_get("reason").map_err(store_error)?,
        provider_message_id: row.try_get("provider_message_id").map_err(store_error)?,
        subject: row.try_get("subject").map_err(store_error)?,
        claim_count: count(row.try_get("claim_count").map_err(store_error)?),
        duplicate_count: count(row.try_get("duplicate_count").map_err(store_error)?),
        receive_count: count(row.try_get("receive_count").map_err(store_error)?),
        lease_expires_at: row.try_get("lease_expires_at").map_err(store_error)?,
        event_json: None,
        raw_body: None,
        created_at: row.try_get("created_at").map_err(store_error)?,
        updated_at: row.try_get("updated_at").map_err(store_error)?,
        decided_at: row.try_get("decided_at").map_err(store_error)?,
        reconciled_at: row.try_get("reconciled_at").map_err(store_error)?,
    })
}

fn link_record(row: &PgRow) -> Result<DeliveryLink, StoreError> {
    let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
    let kind: String = row.try_get("kind").map_err(store_error)?;
    Ok(DeliveryLink {
        tenant: TenantId::parse(&tenant).map_err(unexpected)?,
        delivery_id: DeliveryId::from_uuid(row.try_get("delivery_id").map_err(store_error)?),
        origin: DeliveryId::from_uuid(row.try_get("origin_delivery_id").map_err(store_error)?),
        kind: if kind == "replay" { LinkKind::Replay } else { LinkKind::Resend },
        n: count(row.try_get("n").map_err(store_error)?),
        reason: row.try_get("reason").map_err(store_error)?,
        created_by: row.try_get::<Uuid, _>("created_by").map_err(store_error)?.to_string(),
        created_at: row.try_get("created_at").map_err(store_error)?,
    })
}

fn unkeyed_record(row: &PgRow) -> Result<UnkeyedRejectionRecord, StoreError> {
    Ok(UnkeyedRejectionRecord {
        body_sha256: row.try_get("body_sha256").map_err(store_error)?,
        tenant: row.try_get("tenant_id").map_err(store_error)?,
        reason: row.try_get("reason").map_err(store_error)?,
        raw_body: row.try_get("raw_body").map_err(store_error)?,
        body_size: u64::try_from(row.try_get::<i32, _>("body_size").map_err(store_error)?)
            .unwrap_or_default(),
        times_seen: count(row.try_get("times_seen").map_err(store_error)?),
        first_seen_at: row.try_get("first_seen_at").map_err(store_error)?,
        last_seen_at: row.try_get("last_seen_at").map_err(store_error)?,
    })
}

const UNKEYED_COLUMNS: &str = "body_sha256, tenant_id, reason, raw_body, body_size, times_seen, \
    first_seen_at, last_seen_at";

pub(crate) async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into admin_audit (at, token_id, role, action, tenant_id, object_kind, object_id, \
             reason, detail) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(entry.at)
    .bind(parse_uuid(&entry.token_id)?)
    .bind(&entry.role)
    .bind(&entry.action)
    .bind(entry.tenant.as_ref().map(ToString::to_string))
    .bind(&entry.object_kind)
    .bind(&entry.object_id)
    .bind(&entry.reason)
    .bind(&entry.detail)
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;
    Ok(())
}

/// Runs `change` and, when it changed a row, writes the audit entry in the same transaction: an
/// action is audited once, and only when it did something. Returns whether it did.
async fn audited_change(
    pool: &PgPool,
    change: sqlx::query::Query<'_, Postgres, PgArguments>,
    audit: &AuditEntry,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let changed = change.execute(&mut *tx).await.map_err(store_error)?.rows_affected() > 0;
    if changed {
        insert_audit(&mut tx, audit).await?;
    }
    tx.commit().await.map_err(store_error)?;
    Ok(changed)
}

#[async_trait]
impl AdminStore for PostgresAdminStore {
    async fn create_token(
        &self,
        token: &TokenRecord,
        secret_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let tenants = match &token.scope {
            TenantScope::All => None,
            TenantScope::Only(tenants) => Some(tenant_names(tenants)),
        };
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "insert into admin_tokens (token_id, token_sha256, role, tenants, label, created_at, \
                 expires_at) values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(parse_uuid(&token.token_id)?)
        .bind(secret_sha256)
        .bind(token.role.as_str())
        .bind(tenants)
        .bind(&token.label)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn token_by_hash(&self, secret_sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query("select * from admin_tokens where token_sha256 = $1")
            .bind(secret_sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(token_record).transpose()
    }

    async fn touch_token(&self, token_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("update admin_tokens set last_used_at = $2 where token_id = $1")
            .bind(parse_uuid(token_id)?)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query("select * from admin_tokens order by created_at desc")
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(token_record).collect()
    }

    async fn revoke_token(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let Ok(id) = Uuid::try_parse(token_id) else { return Ok(false) };
        let change = sqlx::query(
            "update admin_tokens set revoked_at = $2 where token_id = $1 and revoked_at is null",
        )
        .bind(id)
        .bind(at);
        audited_change(&self.pool, change, audit).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new("select * from admin_audit where true");
        if let Some(tenants) = &query.tenants {
            sql.push(" and tenant_id = any(").push_bind(tenant_names(tenants)).push(")");
        }
        if let Some(token_id) = &query.token_id {
            // Not a UUID: matches nothing, like any other unknown token.
            let id = Uuid::try_parse(token_id).unwrap_or(Uuid::nil());
            sql.push(" and token_id = ").push_bind(id);
        }
        if let Some(action) = &query.action {
            sql.push(" and action = ").push_bind(action.clone());
        }
        if let Some(object_id) = &query.object_id {
            sql.push(" and object_id = ").push_bind(object_id.clone());
        }
        if let Some(before) = query.before {
            sql.push(" and audit_id < ").push_bind(before);
        }
        sql.push(" order by audit_id desc limit ").push_bind(i64::from(query.limit.clamp(1, 500)));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: Option<String> = row.try_get("tenant_id").map_err(store_error)?;
                Ok(AuditRecord {
                    audit_id: row.try_get("audit_id").map_err(store_error)?,
                    entry: AuditEntry {
                        at: row.try_get("at").map_err(store_error)?,
                        token_id: row
                            .try_get::<Uuid, _>("token_id")
                            .map_err(store_error)?
                            .to_string(),
                        role: row.try_get("role").map_err(store_error)?,
                        action: row.try_get("action").map_err(store_error)?,
                        tenant: tenant
                            .as_deref()
                            .map(TenantId::parse)
                            .transpose()
                            .map_err(unexpected)?,
                        object_kind: row.try_get("object_kind").map_err(store_error)?,
                        object_id: row.try_get("object_id").map_err(store_error)?,
                        reason: row.try_get("reason").map_err(store_error)?,
                        detail: row.try_get("detail").map_err(store_error)?,
                    },
                })
            })
            .collect()
    }

    async fn search_deliveries(&self, search: &DeliverySearch) -> Result<DeliveryPage, StoreError> {
        let limit = search.limit.clamp(1, 500);
        let mut sql = search_query(&format!("select {SUMMARY_COLUMNS}"), search, limit);
        let rows = sql.build().fetch_all(&self.pool).await.map_err(store_error)?;
        let deliveries = rows.iter().map(delivery_summary).collect::<Result<Vec<_>, _>>()?;
        let next = (deliveries.len() == limit as usize).then(|| {
            let last = &deliveries[deliveries.len() - 1];
            DeliveryCursor { created_at: last.created_at, delivery_id: last.delivery_id }
        });
        Ok(DeliveryPage { deliveries, next })
    }

    async fn reputation_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<ReputationCount>, StoreError> {
        let rows = sqlx::query(
            "select tenant_id, count(*) as sent, \
                 count(*) filter (where feedback_status = 'bounced') as bounced, \
                 count(*) filter (where feedback_status = 'complained') as complained \
             from deliveries \
             where status = 'sent' and decided_at >= $1 \
                 and ($2::text[] is null or tenant_id = any($2)) \
             group by tenant_id order by tenant_id",
        )
        .bind(since)
        .bind(tenants.map(tenant_names))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let count = |row: &PgRow, column: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(column).map_err(store_error)?)
                .unwrap_or_default())
        };
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                Ok(ReputationCount {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    sent: count(row, "sent")?,
                    bounced: count(row, "bounced")?,
                    complained: count(row, "complained")?,
                })
            })
            .collect()
    }

    async fn pause_tenant(
        &self,
        tenant: &TenantId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        // A new pause, or the tenant's last one reopened once it was resumed; never a second
        // pause over a running one (its reason and author stay).
        let change = sqlx::query(
            "insert into tenant_pauses (tenant_id, reason, paused_at, paused_by) \
             values ($1, $2, $3, $4) \
             on conflict (tenant_id) do update \
                 set reason = excluded.reason, paused_at = excluded.paused_at, \
                     paused_by = excluded.paused_by, resumed_at = null, resumed_by = null \
                 where tenant_pauses.resumed_at is not null",
        )
        .bind(tenant.as_str())
        .bind(audit.reason.as_deref().unwrap_or_default())
        .bind(audit.at)
        .bind(&audit.token_id);
        audited_change(&self.pool, change, audit).await
    }

    async fn expire_unknown_sends(
        &self,
        tenant: &TenantId,
        only: Option<DeliveryId>,
        decided_before: DateTime<Utc>,
        reason_prefix: &str,
        audit: &AuditEntry,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let expired: Vec<Uuid> = sqlx::query_scalar(
            "update deliveries set status = 'failed', reason = $4 || coalesce(reason, ''), \
                 updated_at = $5 \
             where tenant_id = $1 and status = 'unknown' and decided_at < $2 \
                 and ($3::uuid is null or delivery_id = $3) \
             returning delivery_id",
        )
        .bind(tenant.as_str())
        .bind(decided_before)
        .bind(only.map(|id| id.as_uuid()))
        .bind(reason_prefix)
        .bind(audit.at)
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        for id in &expired {
            let entry = AuditEntry { object_id: Some(id.to_string()), ..audit.clone() };
            insert_audit(&mut tx, &entry).await?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(expired.into_iter().map(DeliveryId::from_uuid).collect())
    }

    async fn resume_tenant(
        &self,
        tenant: &TenantId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "update tenant_pauses set resumed_at = $2, resumed_by = $3 \
             where tenant_id = $1 and resumed_at is null",
        )
        .bind(tenant.as_str())
        .bind(audit.at)
        .bind(&audit.token_id);
        audited_change(&self.pool, change, audit).await
    }

    async fn paused_tenants(
        &self,
        tenants: Option<&[TenantId]>,
    ) -> Result<Vec<TenantPause>, StoreError> {
        let rows = sqlx::query(
            "select p.tenant_id, p.reason, p.paused_at, p.paused_by, \
                    count(h.tenant_id) as held_events, min(h.held_at) as oldest_held_at \
             from tenant_pauses p left join held_events h on h.tenant_id = p.tenant_id \
             where p.resumed_at is null and ($1::text[] is null or p.tenant_id = any($1)) \
             group by p.tenant_id order by p.tenant_id",
        )
        .bind(tenants.map(tenant_names))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                Ok(TenantPause {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    reason: row.try_get("reason").map_err(store_error)?,
                    paused_at: row.try_get("paused_at").map_err(store_error)?,
                    paused_by: row.try_get("paused_by").map_err(store_error)?,
                    held_events: row
                        .try_get::<i64, _>("held_events")
                        .map_err(store_error)?
                        .try_into()
                        .unwrap_or(0),
                    oldest_held_at: row.try_get("oldest_held_at").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn outcome_counts(
        &self,
        tenants: Option<&[TenantId]>,
        since: DateTime<Utc>,
    ) -> Result<Vec<OutcomeCount>, StoreError> {
        let rows = sqlx::query(
            "select tenant_id, status, count(*) as n from deliveries \
             where created_at >= $1 and ($2::text[] is null or tenant_id = any($2)) \
             group by tenant_id, status order by tenant_id, status",
        )
        .bind(since)
        .bind(tenants.map(tenant_names))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                let status: String = row.try_get("status").map_err(store_error)?;
                Ok(OutcomeCount {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    status: status.parse().map_err(unexpected)?,
                    count: u64::try_from(row.try_get::<i64, _>("n").map_err(store_error)?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn last_link_number(
        &self,
        tenant: &TenantId,
        origin: DeliveryId,
        kind: LinkKind,
    ) -> Result<u32, StoreError> {
        let n: Option<i32> = sqlx::query_scalar(
            "select max(n) from delivery_links \
             where tenant_id = $1 and origin_delivery_id = $2 and kind = $3",
        )
        .bind(tenant.to_string())
        .bind(origin.as_uuid())
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(n.map(count).unwrap_or(0))
    }

    async fn record_link(
        &self,
        link: &DeliveryLink,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "insert into delivery_links (tenant_id, delivery_id, origin_delivery_id, kind, n, \
                 reason, created_by, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict do nothing",
        )
        .bind(link.tenant.to_string())
        .bind(link.delivery_id.as_uuid())
        .bind(link.origin.as_uuid())
        .bind(link.kind.as_str())
        .bind(i32::try_from(link.n).map_err(unexpected)?)
        .bind(&link.reason)
        .bind(parse_uuid(&link.created_by)?)
        .bind(link.created_at);
        audited_change(&self.pool, change, audit).await
    }

    async fn links(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<Vec<DeliveryLink>, StoreError> {
        let rows = sqlx::query(
            "select * from delivery_links where tenant_id = $1 \
                 and (delivery_id = $2 or origin_delivery_id = $2) order by created_at, n",
        )
        .bind(tenant.to_string())
        .bind(delivery.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(link_record).collect()
    }

    async fn feedback(
        &self,
        tenant: &TenantId,
        delivery: DeliveryId,
    ) -> Result<DeliveryFeedback, StoreError> {
        let feedback = crate::PostgresFeedbackStore::new(self.pool.clone());
        Ok(DeliveryFeedback {
            status: feedback.feedback_status(tenant, delivery).await?,
            timeline: feedback.timeline(tenant, delivery).await?,
        })
    }

    async fn unkeyed_rejections(
        &self,
        tenants: Option<&[TenantId]>,
        limit: u32,
    ) -> Result<Vec<UnkeyedRejectionRecord>, StoreError> {
        let sql = format!(
            "select {UNKEYED_COLUMNS} from unkeyed_rejections \
             where ($1::text[] is null or tenant_id = any($1)) \
             order by last_seen_at desc limit $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenants.map(tenant_names))
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(unkeyed_record).collect()
    }

    async fn unmatched_feedback(
        &self,
        after: Option<&UnmatchedFeedbackCursor>,
        limit: u32,
    ) -> Result<Vec<UnmatchedFeedbackRecord>, StoreError> {
        // The partial index feedback_events_kept (received_at desc where result <> 'matched')
        // serves the order and the cursor.
        let rows = sqlx::query(
            "select feedback_id, result, kind, ses_message_id, reason, received_at \
             from feedback_events where result <> 'matched' \
                 and ($1::timestamptz is null or (received_at, feedback_id) < ($1, $2)) \
             order by received_at desc, feedback_id desc limit $3",
        )
        .bind(after.map(|c| c.received_at))
        .bind(after.map(|c| c.feedback_id.clone()))
        .bind(i64::from(limit.clamp(1, 501)))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(UnmatchedFeedbackRecord {
                    feedback_id: row.try_get("feedback_id").map_err(store_error)?,
                    result: row.try_get("result").map_err(store_error)?,
                    kind: row.try_get("kind").map_err(store_error)?,
                    ses_message_id: row.try_get("ses_message_id").map_err(store_error)?,
                    reason: row.try_get("reason").map_err(store_error)?,
                    received_at: row.try_get("received_at").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn unkeyed_rejection(
        &self,
        body_sha256: &str,
    ) -> Result<Option<UnkeyedRejectionRecord>, StoreError> {
        let sql =
            format!("select {UNKEYED_COLUMNS} from unkeyed_rejections where body_sha256 = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(body_sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(unkeyed_record).transpose()
    }

    async fn record_unkeyed_replay(
        &self,
        body_sha256: &str,
        at: DateTime<Utc>,
        result: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "update unkeyed_rejections set replayed_at = $2, replay_result = $3 \
             where body_sha256 = $1",
        )
        .bind(body_sha256)
        .bind(at)
        .bind(result)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(store_error)
    }

    async fn suppressions(
        &self,
        query: &SuppressionQuery,
    ) -> Result<Vec<SuppressionEntry>, StoreError> {
        let rows = sqlx::query(
            "select tenant_id, address, reason, cause, created_by, created_at from suppressions \
             where ($1::text[] is null or tenant_id = any($1)) \
                 and ($2::text is null or lower(address) = lower($2)) \
             order by created_at desc, suppression_id desc limit $3",
        )
        .bind(query.tenants.as_deref().map(tenant_names))
        .bind(query.address.as_ref().map(|a| a.as_str().to_owned()))
        .bind(i64::from(query.limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                let address: String = row.try_get("address").map_err(store_error)?;
                Ok(SuppressionEntry {
                    tenant: TenantId::parse(&tenant).map_err(unexpected)?,
                    address: EmailAddress::parse(&address).map_err(unexpected)?,
                    reason: row.try_get("reason").map_err(store_error)?,
                    cause: row.try_get("cause").map_err(store_error)?,
                    created_by: row.try_get("created_by").map_err(store_error)?,
                    created_at: row.try_get("created_at").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn add_suppression(
        &self,
        entry: &SuppressionEntry,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "insert into suppressions (tenant_id, address, message_class, reason, cause, \
                 created_by, created_at) values ($1, $2, null, $3, $4, $5, $6) \
             on conflict do nothing",
        )
        .bind(entry.tenant.to_string())
        .bind(entry.address.as_str())
        .bind(&entry.reason)
        .bind(&entry.cause)
        .bind(&entry.created_by)
        .bind(entry.created_at);
        audited_change(&self.pool, change, audit).await
    }

    async fn remove_suppression(
        &self,
        tenant: &TenantId,
        address: &EmailAddress,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let change = sqlx::query(
            "delete from suppressions \
             where tenant_id = $1 and lower(address) = lower($2) and message_class is null",
        )
        .bind(tenant.to_string())
        .bind(address.as_str());
        audited_change(&self.pool, change, audit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }
}
