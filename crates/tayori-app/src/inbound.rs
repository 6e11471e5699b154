//! What a driving adapter (the SQS consumer) hands its messages to: the events use case or the
//! feedback use case, behind one trait so that one consumer serves both queues.

use async_trait::async_trait;
use tayori_domain::{Publisher, TenantId};
use tracing::debug;

use crate::{EventHandler, FeedbackHandler, Handled, InboundMessage, RetryLater};

/// Handles one queue message.
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// MUST return `Ok` only once what the message asks for is recorded (the message may then be
    /// deleted), and `Err` when it must come back later, having changed nothing that would stop
    /// a later delivery of the same message from succeeding.
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater>;

    /// The configured tenant a message is for, cheaply and before it is handled, so that the
    /// driving adapter can share its capacity between tenants; `None` when it cannot tell (the
    /// message is then handled outside any tenant's share). A guess, never a decision: the
    /// handler checks the message in full.
    fn tenant_of(&self, _message: &InboundMessage) -> Option<TenantId> {
        None
    }

    /// Whether what handling needs (the store) is reachable now, with the reason when not; the
    /// driving adapter asks every second or so and stops taking messages while it fails, so
    /// that an outage does not spend their receives (and send them to the dead-letter queue).
    /// MUST answer within a few seconds. The default has nothing to check.
    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}

#[async_trait]
impl MessageHandler for EventHandler {
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater> {
        let handled = self.handle(message).await?;
        if let Handled::Duplicate { delivery_id, .. } = &handled {
            debug!(%delivery_id, "duplicate delivery of a decided event");
        }
        Ok(())
    }

    /// The tenant of the message's group (`<tenant>` or `<tenant>:<key>`), else of the body's
    /// `tenant` attribute (inside an SNS notification too); only a configured one.
    fn tenant_of(&self, message: &InboundMessage) -> Option<TenantId> {
        let grouped = message.publisher.as_ref().and_then(Publisher::group_tenant);
        let named = match grouped {
            Some(tenant) => tenant.to_owned(),
            None => tenant_in_body(&message.body)?,
        };
        let tenant = TenantId::parse(&named).ok()?;
        self.tenants.tenant(&tenant).map(|profile| profile.id.clone())
    }

    /// The delivery store's [`probe`](crate::ports::DeliveryStore::probe).
    async fn probe(&self) -> Result<(), String> {
        self.store.probe().await.map_err(|error| error.to_string())
    }
}

/// The `tenant` attribute of a CloudEvent body, or of the one an SNS notification carries,
/// without validating anything else.
fn tenant_in_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        tenant: Option<String>,
        #[serde(rename = "Type")]
        kind: Option<String>,
        #[serde(rename = "Message")]
        message: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    match (envelope.tenant, envelope.kind.as_deref(), envelope.message) {
        (Some(tenant), _, _) => Some(tenant),
        (None, Some("Notification"), Some(inner)) => {
            serde_json::from_str::<Envelope>(&inner).ok()?.tenant
        }
        _ => None,
    }
}

#[async_trait]
impl MessageHandler for FeedbackHandler {
    async fn handle_message(&self, message: &InboundMessage) -> Result<(), RetryLater> {
        self.handle(message).await.map(|_| ())
    }
}
