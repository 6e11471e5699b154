//! The dead-letter queues as operators see them: depth and a sample of messages (never their
//! bodies), and the redrive back to the source queue once the cause is fixed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tayori_domain::{
    DeliveryId, EventType, IdempotencyKey, TenantId, decode_message_body, mask_addresses,
};
use tracing::info;

use super::{AdminError, AdminService, Principal, required_reason};
use crate::ports::{DeadLetterDepth, DeadLetterError, DeadLetters, TenantScope};

/// Dead letters one [`AdminService::redrive_dead_letters`] call moves at most: a call stays
/// within an HTTP request's time.
pub const MAX_REDRIVE: u64 = 10_000;

/// Which dead-letter queue: the events queue's or the SES feedback queue's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeadLetterQueue {
    /// Products' events the workers could not decide.
    #[default]
    Events,
    /// SES notifications the workers could not record.
    Feedback,
}

impl DeadLetterQueue {
    /// Its name in the API and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Feedback => "feedback",
        }
    }

    /// From its name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "events" => Some(Self::Events),
            "feedback" => Some(Self::Feedback),
            _ => None,
        }
    }
}

/// The dead-letter queues a process can look at (none on the command line).
#[derive(Clone, Default)]
pub struct DeadLetterQueues {
    /// The events queue's.
    pub events: Option<Arc<dyn DeadLetters>>,
    /// The SES feedback queue's, when the workers consume feedback.
    pub feedback: Option<Arc<dyn DeadLetters>>,
}

/// What a dead letter carries, read from its body (never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterContent {
    /// A product's event.
    Event {
        /// Its idempotency key.
        key: IdempotencyKey,
        /// Its type.
        event_type: EventType,
    },
    /// An SES notification.
    Feedback {
        /// `bounce`, `complaint`, `delivery`, ...
        kind: &'static str,
        /// The email's SES message id.
        ses_message_id: Option<String>,
        /// The tenant and delivery from the email's tags.
        tenant: Option<TenantId>,
        /// The delivery from the email's tags.
        delivery_id: Option<DeliveryId>,
    },
    /// Why the body could not be read (a worker rejects or records it as invalid once
    /// redriven).
    Unreadable(String),
}

impl DeadLetterContent {
    /// The tenant it names, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Event { key, .. } => Some(&key.tenant),
            Self::Feedback { tenant, .. } => tenant.as_ref(),
            Self::Unreadable(_) => None,
        }
    }

    fn read(queue: DeadLetterQueue, body: &[u8]) -> Self {
        match queue {
            DeadLetterQueue::Events => match decode_message_body(body) {
                Ok(event) => Self::Event { key: event.key, event_type: event.event_type },
                Err(error) => Self::Unreadable(error.to_string()),
            },
            DeadLetterQueue::Feedback => match tayori_domain::parse_feedback(body) {
                Ok(feedback) => Self::Feedback {
                    kind: feedback.kind.name(),
                    ses_message_id: feedback.ses_message_id,
                    tenant: feedback.tenant,
                    delivery_id: feedback.delivery_id,
                },
                Err(error) => Self::Unreadable(error.reason),
            },
        }
    }
}

/// A message of a dead-letter queue as operators see it: when, how often received, and what it
/// carries; never the body (it holds the recipient's data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSummary {
    /// The queue's id of the message.
    pub message_id: String,
    /// First sent to its source queue.
    pub sent_at: Option<DateTime<Utc>>,
    /// Receives so far, peeks included.
    pub receive_count: u32,
    /// The body's size in bytes.
    pub size: usize,
    /// What it carries.
    pub content: DeadLetterContent,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Messages moved back to the events queue.
    pub moved: u64,
    /// Why it stopped before `max` with messages left (the queue service failing part way);
    /// what it moved stays moved.
    pub stopped: Option<String>,
}

/// What the dead-letter queue holds, as a principal may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// The queue's depth; only for tokens of every tenant (it counts every tenant's messages).
    pub depth: Option<DeadLetterDepth>,
    /// A sample of its messages in the principal's tenants, oldest first.
    pub messages: Vec<DeadLetterSummary>,
}

impl AdminService {
    /// What a dead-letter queue holds: its depth and up to `limit` (1 to 100) of its messages,
    /// read without taking them out. Tokens scoped to tenants see only their tenants' messages
    /// and no depth; a message whose body names no tenant only tokens of every tenant see.
    pub async fn dead_letters(
        &self,
        who: &Principal,
        which: DeadLetterQueue,
        limit: u32,
    ) -> Result<DeadLetterPage, AdminError> {
        if !(1..=100).contains(&limit) {
            return Err(AdminError::Invalid(format!("limit must be 1 to 100, got {limit}")));
        }
        let queue = self.dead_letter_queue(which)?;
        let every_tenant = who.scope == TenantScope::All;
        let depth = match every_tenant {
            true => Some(queue.depth().await.map_err(dead_letter_error)?),
            false => None,
        };
        let mut messages: Vec<DeadLetterSummary> = queue
            .peek(limit)
            .await
            .map_err(dead_letter_error)?
            .into_iter()
            .map(|message| DeadLetterSummary {
                size: message.body.len(),
                content: DeadLetterContent::read(which, &message.body),
                message_id: message.message_id,
                sent_at: message.sent_at,
                receive_count: message.receive_count,
            })
            .filter(|summary| match summary.content.tenant() {
                Some(tenant) => who.scope.includes(tenant),
                None => every_tenant,
            })
            .collect();
        messages.sort_by(|a, b| (a.sent_at, &a.message_id).cmp(&(b.sent_at, &b.message_id)));
        if !who.sees_addresses() {
            // A reason can quote what it refused ("data.to.email: ... taro@example").
            for message in &mut messages {
                if let DeadLetterContent::Unreadable(reason) = &mut message.content {
                    *reason = mask_addresses(reason);
                }
            }
        }
        Ok(DeadLetterPage { depth, messages })
    }

    /// Moves up to `max` (1 to [`MAX_REDRIVE`]) dead letters back to the events queue once
    /// their cause is fixed, audited `dlq.redrive` with the reason and the count (also when it
    /// stops part way: the answer says how far it got and why it stopped). Operators and admins
    /// of every tenant only: it moves every tenant's messages. Each event then goes through the
    /// workers' path: one already decided is a duplicate, not a second email.
    pub async fn redrive_dead_letters(
        &self,
        who: &Principal,
        which: DeadLetterQueue,
        max: u64,
        reason: &str,
    ) -> Result<Redriven, AdminError> {
        who.require_act()?;
        if who.scope != TenantScope::All {
            return Err(AdminError::Forbidden(
                "a redrive moves every tenant's dead letters: it needs a token of every tenant"
                    .into(),
            ));
        }
        let reason = required_reason(reason)?;
        if !(1..=MAX_REDRIVE).contains(&max) {
            return Err(AdminError::Invalid(format!("max must be 1 to {MAX_REDRIVE}, got {max}")));
        }
        let queue = self.dead_letter_queue(which)?;
        let result = queue.redrive(max).await;
        let moved = match &result {
            Ok(moved) | Err(DeadLetterError::RedriveStopped { moved, .. }) => *moved,
            Err(_) => 0,
        };
        let mut audit = who.audit(self.clock.now(), "dlq.redrive");
        audit.object_kind = Some("dead_letter_queue".into());
        audit.object_id = Some(which.as_str().into());
        audit.reason = Some(reason.to_owned());
        audit.detail = serde_json::json!({
            "moved": moved, "max": max,
            "error": result.as_ref().err().map(ToString::to_string),
        });
        self.admin.record_audit(&audit).await?;
        info!(moved, max, "operator redrove dead letters");
        match result {
            Ok(moved) => Ok(Redriven { moved, stopped: None }),
            Err(DeadLetterError::RedriveStopped { moved, reason }) => {
                Ok(Redriven { moved, stopped: Some(reason) })
            }
            Err(other) => Err(dead_letter_error(other)),
        }
    }

    fn dead_letter_queue(
        &self,
        which: DeadLetterQueue,
    ) -> Result<&Arc<dyn DeadLetters>, AdminError> {
        let queue = match which {
            DeadLetterQueue::Events => &self.dead_letters.events,
            DeadLetterQueue::Feedback => &self.dead_letters.feedback,
        };
        queue.as_ref().ok_or_else(|| {
            AdminError::NotFound(match which {
                DeadLetterQueue::Events => "this process reads no queue: no dead letters".into(),
                DeadLetterQueue::Feedback => {
                    "no feedback queue is configured (feedback.queue_url): no dead letters".into()
                }
            })
        })
    }
}

fn dead_letter_error(error: DeadLetterError) -> AdminError {
    match error {
        DeadLetterError::NoDeadLetterQueue(_) => AdminError::NotFound(error.to_string()),
        DeadLetterError::Unavailable(_) | DeadLetterError::RedriveStopped { .. } => {
            AdminError::Unavailable(error.to_string())
        }
    }
}
