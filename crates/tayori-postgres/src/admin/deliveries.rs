//! The operators' searches over deliveries on PostgreSQL, a delivery's feedback timeline, and
//! the feedback that matched no delivery.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use tayori_app::ports::{
    DeliveryCursor, DeliveryFeedback, DeliveryPage, DeliveryQueries, DeliveryRecord,
    DeliverySearch, StoreError, UnmatchedFeedbackCursor, UnmatchedFeedbackRecord,
};
use tayori_domain::{DeliveryId, TenantId};

use super::{PostgresAdminStore, count, tenant_names, unexpected};
use crate::errors::store_error;
use crate::listing::{push_older_than, push_status};

impl PostgresAdminStore {
    /// PostgreSQL's plan for the statement [`DeliveryQueries::search_deliveries`] runs, as text, so
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

#[async_trait]
impl DeliveryQueries for PostgresAdminStore {
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
}
