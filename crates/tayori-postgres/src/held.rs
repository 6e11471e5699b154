//! Events of paused tenants held until the resume, in `held_events` (migration
//! `0018_held_events.sql`); a tenant counts as paused while its `tenant_pauses` row has no
//! `resumed_at`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use tayori_app::ports::{
    HeldEntry, HeldEvent, HeldEvents, HeldSummary, LeasedEvent, StoreError, TenantHolding,
};
use tayori_domain::{EventId, EventSource, EventType, IdempotencyKey, TenantId};

use crate::errors::store_error;

/// The held events on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresHeldEvents {
    pool: PgPool,
}

impl PostgresHeldEvents {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Leases the oldest held events of `tenant` (paused or not; of `event_type` only when
    /// given), or of every tenant that is not paused.
    async fn lease(
        &self,
        tenant: Option<&TenantId>,
        event_type: Option<&EventType>,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        let rows = sqlx::query(
            "with picked as ( \
                 select h.tenant_id, h.source, h.event_id from held_events h \
                 where (h.leased_until is null or h.leased_until <= $2) \
                   and case when $4::text is null \
                       then not exists (select 1 from tenant_pauses p \
                                        where p.tenant_id = h.tenant_id and p.resumed_at is null) \
                       else h.tenant_id = $4 end \
                   and ($5::text is null or h.event_type = $5) \
                 order by h.held_at limit $1 \
                 for update of h skip locked) \
             update held_events h set lease = h.lease + 1, leased_until = $3 \
             from picked \
             where h.tenant_id = picked.tenant_id and h.source = picked.source \
               and h.event_id = picked.event_id \
             returning h.tenant_id, h.source, h.event_id, h.event_type, h.body, \
                       h.receive_count, h.reason, h.held_at, h.lease",
        )
        .bind(i64::from(limit))
        .bind(now)
        .bind(lease_until)
        .bind(tenant.map(TenantId::as_str))
        .bind(event_type.map(EventType::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut leased = rows.iter().map(leased_event).collect::<Result<Vec<_>, _>>()?;
        leased.sort_by_key(|leased| leased.event.entry.held_at);
        Ok(leased)
    }
}

#[async_trait]
impl HeldEvents for PostgresHeldEvents {
    async fn hold(&self, event: &HeldEvent) -> Result<(), StoreError> {
        // A key held again keeps its first `held_at` (its place in the release order) and loses
        // its lease.
        sqlx::query(
            "insert into held_events \
                 (tenant_id, source, event_id, event_type, body, receive_count, reason, held_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict (tenant_id, source, event_id) do update set \
                 event_type = excluded.event_type, \
                 body = excluded.body, \
                 receive_count = greatest(held_events.receive_count, excluded.receive_count), \
                 reason = excluded.reason, \
                 leased_until = null",
        )
        .bind(event.entry.key.tenant.as_str())
        .bind(event.entry.key.source.as_str())
        .bind(event.entry.key.id.as_str())
        .bind(event.entry.event_type.as_str())
        .bind(&event.body)
        .bind(i32::try_from(event.entry.receive_count).unwrap_or(i32::MAX))
        .bind(&event.entry.reason)
        .bind(event.entry.held_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn lease_released(
        &self,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        self.lease(None, None, limit, now, lease_until).await
    }

    async fn lease_of_tenant(
        &self,
        tenant: &TenantId,
        event_type: Option<&EventType>,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        self.lease(Some(tenant), event_type, limit, now, lease_until).await
    }

    async fn held_summary(&self, tenant: &TenantId, limit: u32) -> Result<HeldSummary, StoreError> {
        let counts = sqlx::query(
            "select event_type, count(*) as events, min(held_at) as oldest from held_events \
             where tenant_id = $1 group by event_type order by event_type",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let by_event_type = counts
            .iter()
            .map(|row| {
                let event_type: String = row.try_get("event_type").map_err(store_error)?;
                let events: i64 = row.try_get("events").map_err(store_error)?;
                Ok((
                    EventType::parse(&event_type).map_err(corrupt)?,
                    u64::try_from(events).unwrap_or(0),
                    row.try_get("oldest").map_err(store_error)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let oldest = sqlx::query(
            "select tenant_id, source, event_id, event_type, receive_count, reason, held_at \
             from held_events where tenant_id = $1 \
             order by held_at, source, event_id limit $2",
        )
        .bind(tenant.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let oldest = oldest.iter().map(held_entry).collect::<Result<Vec<_>, _>>()?;
        Ok(HeldSummary { by_event_type, oldest })
    }

    async fn holdings(&self) -> Result<Vec<TenantHolding>, StoreError> {
        let rows = sqlx::query(
            "select coalesce(h.tenant_id, p.tenant_id) as tenant_id, \
                    p.tenant_id is not null as paused, \
                    coalesce(h.events, 0) as events, h.oldest \
             from (select tenant_id, count(*) as events, min(held_at) as oldest \
                   from held_events group by tenant_id) h \
             full join (select tenant_id from tenant_pauses where resumed_at is null) p \
                 on p.tenant_id = h.tenant_id \
             order by 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get("tenant_id").map_err(store_error)?;
                let events: i64 = row.try_get("events").map_err(store_error)?;
                Ok(TenantHolding {
                    tenant: TenantId::parse(&tenant).map_err(corrupt)?,
                    paused: row.try_get("paused").map_err(store_error)?,
                    held_events: u64::try_from(events).unwrap_or(0),
                    oldest_held_at: row.try_get("oldest").map_err(store_error)?,
                })
            })
            .collect()
    }

    async fn forget(&self, key: &IdempotencyKey, lease: i64) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "delete from held_events \
             where tenant_id = $1 and source = $2 and event_id = $3 \
               and lease = $4 and leased_until is not null",
        )
        .bind(key.tenant.as_str())
        .bind(key.source.as_str())
        .bind(key.id.as_str())
        .bind(lease)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(deleted.rows_affected() == 1)
    }
}

fn leased_event(row: &PgRow) -> Result<LeasedEvent, StoreError> {
    Ok(LeasedEvent {
        event: HeldEvent {
            entry: held_entry(row)?,
            body: row.try_get("body").map_err(store_error)?,
        },
        lease: row.try_get("lease").map_err(store_error)?,
    })
}

/// A row's key, type, receive count, reason and hold time.
fn held_entry(row: &PgRow) -> Result<HeldEntry, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(store_error);
    let key = IdempotencyKey::new(
        TenantId::parse(&text("tenant_id")?).map_err(corrupt)?,
        EventSource::parse(&text("source")?).map_err(corrupt)?,
        EventId::parse(&text("event_id")?).map_err(corrupt)?,
    );
    let receive_count: i32 = row.try_get("receive_count").map_err(store_error)?;
    Ok(HeldEntry {
        key,
        event_type: EventType::parse(&text("event_type")?).map_err(corrupt)?,
        receive_count: u32::try_from(receive_count).unwrap_or(1),
        reason: text("reason")?,
        held_at: row.try_get("held_at").map_err(store_error)?,
    })
}

fn corrupt(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unexpected(anyhow::Error::new(error).context("a held event's key is not valid"))
}
