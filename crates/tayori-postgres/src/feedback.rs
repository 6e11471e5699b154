//! SES feedback on PostgreSQL: the `feedback_events` seen (deduplication, unmatched and invalid
//! ones kept), the per-delivery timeline in `delivery_feedback`, the deliveries' feedback status
//! and the suppressions a permanent bounce or a complaint adds, each with its audit entry. One
//! transaction per feedback message (migration `0005_feedback.sql`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
use tayori_app::admin::COMMAND_LINE_TOKEN_ID;
use tayori_app::ports::{
    AuditEntry, FeedbackPolicy, FeedbackRecord, FeedbackRecorded, FeedbackStore, ReputationCount,
    ReputationGuard, StoreError, TenantPauseList,
};
use tayori_domain::{
    DeliveryId, EmailAddress, FeedbackEvent, FeedbackKind, FeedbackStatus, MAX_KEPT_RAW_BYTES,
    TenantId,
};
use uuid::Uuid;

use crate::admin::insert_audit;
use crate::errors::store_error;

/// Who the suppressions and audit entries the feedback loop writes are by.
pub const FEEDBACK_ACTOR: &str = "ses-feedback";

/// The feedback store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresFeedbackStore {
    pool: PgPool,
}

/// One entry of a delivery's feedback timeline, as read (the admin port's type).
pub use tayori_app::ports::FeedbackEntry as TimelineEntry;

impl PostgresFeedbackStore {
    /// Wraps a pool; the schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A delivery's timeline, in SES's order (then in the order it was recorded).
    pub async fn timeline(
        &self,
        tenant: &TenantId,
        delivery_id: DeliveryId,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows = sqlx::query(
            "select feedback_id, kind, detail, recipients, occurred_at, received_at \
             from delivery_feedback where tenant_id = $1 and delivery_id = $2 \
             order by occurred_at nulls last, received_at, feedback_id",
        )
        .bind(tenant.as_str())
        .bind(delivery_id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(TimelineEntry {
                    feedback_id: row.try_get("feedback_id").map_err(store_error)?,
                    kind: row.try_get("kind").map_err(store_error)?,
                    detail: row.try_get("detail").map_err(store_error)?,
                    recipients: row.try_get("recipients").map_err(store_error)?,
                    occurred_at: row.try_get("occurred_at").map_err(store_error)?,
                    received_at: row.try_get("received_at").map_err(store_error)?,
                })
            })
            .collect()
    }

    /// A delivery's feedback status, if any feedback moved it.
    pub async fn feedback_status(
        &self,
        tenant: &TenantId,
        delivery_id: DeliveryId,
    ) -> Result<Option<FeedbackStatus>, StoreError> {
        let status: Option<Option<String>> = sqlx::query_scalar(
            "select feedback_status from deliveries where tenant_id = $1 and delivery_id = $2",
        )
        .bind(tenant.as_str())
        .bind(delivery_id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(status.flatten().as_deref().and_then(FeedbackStatus::parse))
    }
}

/// Text PostgreSQL accepts: it refuses NUL in `text`.
fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// JSON PostgreSQL accepts in `text` and `jsonb`: `jsonb` refuses the escape `\u0000`, so a NUL
/// in the event (never seen from SES, but the input is not ours) becomes U+FFFD rather than a
/// store error that would send the message round until its dead-letter queue.
fn storable_json(value: &serde_json::Value) -> String {
    without_nul(&value.to_string()).replace("\\u0000", "\\ufffd")
}

/// The delivery a feedback event is about, as found.
struct Found {
    tenant: String,
    delivery_id: Uuid,
    feedback_status: Option<String>,
    status: String,
    /// Whether the delivery has no provider message id (its send's result was unknown, or it
    /// has none yet).
    without_message_id: bool,
}

/// The delivery an event is about: by tags when both are present (and the message id agrees,
/// when the event has one and the delivery has one), else by SES message id. Locks the row
/// until the transaction ends, so that concurrent feedback for one delivery applies the
/// precedence one at a time.
async fn find_delivery(
    tx: &mut Transaction<'_, Postgres>,
    event: &FeedbackEvent,
) -> Result<Option<Found>, StoreError> {
    let row = match (&event.tenant, &event.delivery_id) {
        (Some(tenant), Some(delivery_id)) => sqlx::query(
            "select tenant_id, delivery_id, feedback_status, status, \
                 coalesce(provider_message_id, '') = '' as without_message_id \
             from deliveries \
             where tenant_id = $1 and delivery_id = $2 \
                 and ($3::text is null or provider_message_id = $3 \
                      or coalesce(provider_message_id, '') = '') \
             for update",
        )
        .bind(tenant.as_str())
        .bind(delivery_id.as_uuid())
        .bind(&event.ses_message_id),
        _ => sqlx::query(
            "select tenant_id, delivery_id, feedback_status, status, false as without_message_id \
             from deliveries where provider_message_id = $1 limit 1 for update",
        )
        .bind(&event.ses_message_id),
    }
    .fetch_optional(&mut **tx)
    .await
    .map_err(store_error)?;
    row.map(|row| {
        Ok(Found {
            tenant: row.try_get("tenant_id").map_err(store_error)?,
            delivery_id: row.try_get("delivery_id").map_err(store_error)?,
            feedback_status: row.try_get("feedback_status").map_err(store_error)?,
            status: row.try_get("status").map_err(store_error)?,
            without_message_id: row.try_get("without_message_id").map_err(store_error)?,
        })
    })
    .transpose()
}

/// Inserts the identity; false when it was recorded before.
#[allow(clippy::too_many_arguments)] // one column each
async fn claim_identity(
    tx: &mut Transaction<'_, Postgres>,
    feedback_id: &str,
    result: &str,
    kind: Option<&str>,
    delivery: Option<(&str, Uuid)>,
    ses_message_id: Option<&str>,
    reason: Option<&str>,
    body: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "insert into feedback_events (feedback_id, result, kind, tenant_id, delivery_id, \
             ses_message_id, reason, body, received_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (feedback_id) do nothing",
    )
    .bind(feedback_id)
    .bind(result)
    .bind(kind)
    .bind(delivery.map(|(tenant, _)| tenant))
    .bind(delivery.map(|(_, id)| id))
    .bind(ses_message_id)
    .bind(reason)
    .bind(body)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(store_error)?
    .rows_affected();
    Ok(inserted == 1)
}

/// A suppression the feedback loop adds: for which class, why.
struct AutoSuppression<'a> {
    /// `None`: every class of mail; `Some("subscription")`: an unsubscribe.
    class: Option<&'a str>,
    cause: &'a str,
    reason: String,
}

/// Suppresses `addresses` for the tenant, auditing each new entry; returns how many were new.
async fn suppress(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    delivery_id: Uuid,
    event: &FeedbackEvent,
    addresses: &[&EmailAddress],
    suppression: &AutoSuppression<'_>,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let tenant_id = TenantId::parse(tenant).map_err(|e| StoreError::Unexpected(e.into()))?;
    let mut added = 0;
    for address in addresses {
        let inserted = sqlx::query(
            "insert into suppressions (tenant_id, address, message_class, reason, cause, \
                 created_by, created_at) values ($1, $2, $3, $4, $5, $6, $7) \
             on conflict do nothing",
        )
        .bind(tenant)
        .bind(address.as_str())
        .bind(suppression.class)
        .bind(&suppression.reason)
        .bind(suppression.cause)
        .bind(FEEDBACK_ACTOR)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        if inserted == 1 {
            added += 1;
            let audit = AuditEntry {
                at: now,
                token_id: COMMAND_LINE_TOKEN_ID.into(),
                role: FEEDBACK_ACTOR.into(),
                action: "suppression.add".into(),
                tenant: Some(tenant_id.clone()),
                object_kind: Some("suppression".into()),
                object_id: Some(address.masked()),
                reason: Some(suppression.reason.clone()),
                detail: json!({
                    "cause": suppression.cause,
                    "message_class": suppression.class,
                    "feedback_id": event.identity.as_str(),
                    "delivery_id": delivery_id.to_string(),
                    "ses_message_id": event.ses_message_id,
                }),
            };
            insert_audit(tx, &audit).await?;
        }
    }
    Ok(added)
}

/// What the event suppresses, and for whom: see the port's contract.
async fn suppress_for(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    delivery_id: Uuid,
    event: &FeedbackEvent,
    policy: &FeedbackPolicy,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let everyone: Vec<&EmailAddress> = event.recipients.iter().collect();
    let (addresses, suppression) = match &event.kind {
        FeedbackKind::Complaint { .. } => {
            let reason = "the recipient complained (marked the email as spam)".to_owned();
            (everyone, AutoSuppression { class: None, cause: "complaint", reason })
        }
        FeedbackKind::Bounce { sub_type, .. } if event.kind.suppresses() => {
            let reason = format!("permanent bounce ({sub_type}) reported by SES");
            (everyone, AutoSuppression { class: None, cause: "bounce", reason })
        }
        _ if event.kind.is_transient_bounce() && policy.transient_bounce_limit > 0 => {
            let since = now
                - chrono::Duration::from_std(policy.transient_bounce_window).unwrap_or_default();
            let mut over = Vec::new();
            for address in everyone {
                // This event's entry is already in the timeline, so it counts.
                let count: i64 = sqlx::query_scalar(
                    "select count(*) from delivery_feedback \
                     where tenant_id = $1 and kind = 'bounce' and detail like 'Transient/%' \
                         and received_at >= $3 \
                         and exists (select 1 from unnest(recipients) r where lower(r) = lower($2))",
                )
                .bind(tenant)
                .bind(address.as_str())
                .bind(since)
                .fetch_one(&mut **tx)
                .await
                .map_err(store_error)?;
                if count >= i64::from(policy.transient_bounce_limit) {
                    over.push(address);
                }
            }
            let reason = format!(
                "{} transient bounces within {} h reported by SES",
                policy.transient_bounce_limit,
                policy.transient_bounce_window.as_secs() / 3600
            );
            (over, AutoSuppression { class: None, cause: "transient-bounces", reason })
        }
        _ if event.kind.unsubscribes() => {
            let reason = "unsubscribed from subscription mail (SES subscription event)".to_owned();
            (
                everyone,
                AutoSuppression { class: Some("subscription"), cause: "unsubscribe", reason },
            )
        }
        _ => return Ok(0),
    };
    suppress(tx, tenant, delivery_id, event, &addresses, &suppression, now).await
}

#[async_trait]
impl FeedbackStore for PostgresFeedbackStore {
    async fn record_feedback(
        &self,
        record: FeedbackRecord<'_>,
        policy: &FeedbackPolicy,
        now: DateTime<Utc>,
    ) -> Result<FeedbackRecorded, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let recorded = match record {
            FeedbackRecord::Invalid { invalid, body } => {
                let kept = String::from_utf8_lossy(&body[..body.len().min(MAX_KEPT_RAW_BYTES)]);
                let kept = without_nul(&kept);
                let id = invalid.identity.as_str();
                let reason = Some(invalid.reason.as_str());
                let new =
                    claim_identity(&mut tx, id, "invalid", None, None, None, reason, &kept, now)
                        .await?;
                if new { FeedbackRecorded::Invalid } else { FeedbackRecorded::Duplicate }
            }
            FeedbackRecord::Event(event) => {
                let body = storable_json(&event.ses_event);
                let kind = Some(event.kind.name());
                let message_id = event.ses_message_id.as_deref();
                let id = event.identity.as_str();
                match find_delivery(&mut tx, event).await? {
                    None => {
                        let reason = Some("no delivery has this SES message id or these tags");
                        let new = claim_identity(
                            &mut tx,
                            id,
                            "unmatched",
                            kind,
                            None,
                            message_id,
                            reason,
                            &body,
                            now,
                        )
                        .await?;
                        if new { FeedbackRecorded::Unmatched } else { FeedbackRecorded::Duplicate }
                    }
                    // Its outcome is being recorded (or its worker died): the report comes back
                    // later rather than find an undecided delivery (nothing is written).
                    Some(found) if found.status == "processing" && found.without_message_id => {
                        return Ok(FeedbackRecorded::NotDecidedYet);
                    }
                    Some(found) => {
                        let delivery = Some((found.tenant.as_str(), found.delivery_id));
                        let new = claim_identity(
                            &mut tx, id, "matched", kind, delivery, message_id, None, &body, now,
                        )
                        .await?;
                        if !new {
                            FeedbackRecorded::Duplicate
                        } else {
                            let reconciled = match message_id {
                                Some(message_id) => {
                                    reconcile(&mut tx, &found, event, message_id, now).await?
                                }
                                None => false,
                            };
                            let mut recorded =
                                record_matched(&mut tx, &found, event, policy, now).await?;
                            if let FeedbackRecorded::Matched { reconciled: r, .. } = &mut recorded {
                                *r = reconciled;
                            }
                            recorded
                        }
                    }
                }
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(recorded)
    }
}

/// Makes a delivery whose send's result was unknown (`unknown`, or `failed` after the window,
/// without a provider message id) `sent` with the reported message id, audited: SES only
/// reports on emails it accepted. True when it did.
async fn reconcile(
    tx: &mut Transaction<'_, Postgres>,
    found: &Found,
    event: &FeedbackEvent,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !found.without_message_id || !matches!(found.status.as_str(), "unknown" | "failed") {
        return Ok(false);
    }
    let previous_reason: Option<String> = sqlx::query_scalar(
        "update deliveries d set status = 'sent', provider_message_id = $3, reason = null, \
             reconciled_at = $4, updated_at = $4 \
         from deliveries old \
         where d.tenant_id = $1 and d.delivery_id = $2 \
             and old.tenant_id = d.tenant_id and old.delivery_id = d.delivery_id \
         returning old.reason",
    )
    .bind(&found.tenant)
    .bind(found.delivery_id)
    .bind(message_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(store_error)?;
    let tenant = TenantId::parse(&found.tenant).map_err(|e| StoreError::Unexpected(e.into()))?;
    let audit = AuditEntry {
        at: now,
        token_id: COMMAND_LINE_TOKEN_ID.into(),
        role: FEEDBACK_ACTOR.into(),
        action: "delivery.reconcile".into(),
        tenant: Some(tenant),
        object_kind: Some("delivery".into()),
        object_id: Some(found.delivery_id.to_string()),
        reason: Some(format!(
            "SES reported {} for this email: its send, whose result was unknown, was accepted",
            event.kind.name()
        )),
        detail: json!({
            "previous_status": found.status,
            "previous_reason": previous_reason,
            "ses_message_id": message_id,
            "feedback_id": event.identity.as_str(),
        }),
    };
    insert_audit(tx, &audit).await?;
    Ok(true)
}

/// Timeline entry, feedback status, suppressions.
async fn record_matched(
    tx: &mut Transaction<'_, Postgres>,
    found: &Found,
    event: &FeedbackEvent,
    policy: &FeedbackPolicy,
    now: DateTime<Utc>,
) -> Result<FeedbackRecorded, StoreError> {
    let (tenant, delivery_id) = (found.tenant.as_str(), found.delivery_id);
    let current = found.feedback_status.clone();
    let recipients: Vec<String> = event.recipients.iter().map(|r| r.as_str().to_owned()).collect();
    sqlx::query(
        "insert into delivery_feedback (tenant_id, delivery_id, feedback_id, kind, detail, \
             recipients, occurred_at, received_at, ses_event) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
    )
    .bind(tenant)
    .bind(delivery_id)
    .bind(event.identity.as_str())
    .bind(event.kind.name())
    .bind(event.kind.detail())
    .bind(&recipients)
    .bind(event.occurred_at)
    .bind(now)
    .bind(storable_json(&event.ses_event))
    .execute(&mut **tx)
    .await
    .map_err(store_error)?;

    let current = current.as_deref().and_then(FeedbackStatus::parse);
    let status = match event.kind.status() {
        Some(new) => {
            let after = FeedbackStatus::after(current, new);
            if Some(after) != current {
                sqlx::query(
                    "update deliveries set feedback_status = $3, feedback_at = $4 \
                     where tenant_id = $1 and delivery_id = $2",
                )
                .bind(tenant)
                .bind(delivery_id)
                .bind(after.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(store_error)?;
            }
            Some(after)
        }
        None => current,
    };
    let suppressed = suppress_for(tx, tenant, delivery_id, event, policy, now).await?;
    let is_bad = matches!(event.kind, FeedbackKind::Bounce { .. } | FeedbackKind::Complaint { .. });
    let paused = match (&policy.reputation, is_bad) {
        (Some(guard), true) => guard_reputation(tx, tenant, guard, event, now).await?,
        _ => false,
    };
    let tenant = TenantId::parse(tenant).map_err(|e| StoreError::Unexpected(e.into()))?;
    Ok(FeedbackRecorded::Matched {
        tenant,
        delivery_id: DeliveryId::from_uuid(delivery_id),
        status,
        suppressed,
        paused,
        reconciled: false,
    })
}

/// Pauses the tenant when its rates over the guard's window are above the thresholds (this
/// event's status already counted), unless it is paused or was resumed less than a window ago.
/// True when this call paused it.
async fn guard_reputation(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    guard: &ReputationGuard,
    event: &FeedbackEvent,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let window = chrono::Duration::from_std(guard.window).unwrap_or_default();
    let row = sqlx::query(
        "select count(*) as sent, \
             count(*) filter (where feedback_status = 'bounced') as bounced, \
             count(*) filter (where feedback_status = 'complained') as complained \
         from deliveries where tenant_id = $1 and status = 'sent' and decided_at >= $2",
    )
    .bind(tenant)
    .bind(now - window)
    .fetch_one(&mut **tx)
    .await
    .map_err(store_error)?;
    let count = |column: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.try_get::<i64, _>(column).map_err(store_error)?).unwrap_or_default())
    };
    let tenant_id = TenantId::parse(tenant).map_err(|e| StoreError::Unexpected(e.into()))?;
    let counts = ReputationCount {
        tenant: tenant_id.clone(),
        sent: count("sent")?,
        bounced: count("bounced")?,
        complained: count("complained")?,
    };
    let judged = guard.thresholds.judge(counts);
    if !judged.over_threshold {
        return Ok(false);
    }
    let reason = format!(
        "reputation guard: {:.2} % bounces, {:.3} % complaints of {} sent in the last {} h \
         (thresholds {:.2} %, {:.3} %)",
        judged.bounce_rate * 100.0,
        judged.complaint_rate * 100.0,
        judged.counts.sent,
        guard.window.as_secs() / 3600,
        guard.thresholds.bounce_rate * 100.0,
        guard.thresholds.complaint_rate * 100.0,
    );
    // A new pause, or a renewed one once the last resume of a guard's pause is a window old (the
    // bounces that caused it must not pause it again at once; an operator's pause, resumed, holds
    // nothing back); never over a running pause.
    let paused = sqlx::query(
        "insert into tenant_pauses (tenant_id, reason, paused_at) values ($1, $2, $3) \
         on conflict (tenant_id) do update \
             set reason = excluded.reason, paused_at = excluded.paused_at, paused_by = null, \
                 resumed_at = null, resumed_by = null \
             where tenant_pauses.resumed_at is not null \
                 and (tenant_pauses.resumed_at <= $4 or tenant_pauses.paused_by is not null)",
    )
    .bind(tenant)
    .bind(&reason)
    .bind(now)
    .bind(now - window)
    .execute(&mut **tx)
    .await
    .map_err(store_error)?
    .rows_affected()
        == 1;
    if paused {
        let audit = AuditEntry {
            at: now,
            token_id: COMMAND_LINE_TOKEN_ID.into(),
            role: FEEDBACK_ACTOR.into(),
            action: "tenant.pause".into(),
            tenant: Some(tenant_id.clone()),
            object_kind: Some("tenant".into()),
            object_id: Some(tenant.to_owned()),
            reason: Some(reason),
            detail: json!({
                "sent": judged.counts.sent,
                "bounced": judged.counts.bounced,
                "complained": judged.counts.complained,
                "feedback_id": event.identity.as_str(),
            }),
        };
        insert_audit(tx, &audit).await?;
    }
    Ok(paused)
}

#[async_trait]
impl TenantPauseList for PostgresFeedbackStore {
    async fn pause_reason(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "select reason from tenant_pauses where tenant_id = $1 and resumed_at is null",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)
    }
}
