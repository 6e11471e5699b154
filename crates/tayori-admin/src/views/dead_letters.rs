//! A dead-letter queue's depth and sample, and what a redrive moved.

use serde::Serialize;
use utoipa::ToSchema;

/// A dead-letter queue, as a principal may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLettersView {
    /// `events` or `feedback`.
    pub queue: String,
    /// The queue's name and counts; absent for tokens scoped to tenants (it counts every
    /// tenant's messages).
    pub depth: Option<DeadLetterDepthView>,
    /// A sample of its messages (up to `limit`), oldest first, in the token's tenants.
    pub messages: Vec<DeadLetterView>,
}

/// How many messages the dead-letter queue holds (SQS's approximate counts).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterDepthView {
    /// The queue's name.
    pub queue: String,
    /// Messages waiting.
    pub visible: u64,
    /// Messages being received (a redrive under way).
    pub in_flight: u64,
}

/// One dead letter: what it carries, never its body.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The queue's id of the message.
    pub message_id: String,
    /// First sent to its source queue (RFC 3339).
    pub sent_at: Option<String>,
    /// Receives so far (looks at the queue included).
    pub receive_count: u32,
    /// The body's size in bytes.
    pub size: usize,
    /// The tenant the event or the email's tags name.
    pub tenant: Option<String>,
    /// An event's source.
    pub source: Option<String>,
    /// An event's id.
    pub event_id: Option<String>,
    /// An event's type.
    pub event_type: Option<String>,
    /// A notification's kind: `bounce`, `complaint`, `delivery`, ...
    pub feedback_kind: Option<String>,
    /// A notification's SES message id.
    pub ses_message_id: Option<String>,
    /// The delivery the event's key or the email's tags name.
    pub delivery_id: Option<String>,
    /// Why the body could not be read (a worker rejects an event, or keeps a notification as
    /// invalid, once redriven).
    pub unreadable: Option<String>,
}

impl DeadLettersView {
    /// The page of `queue`.
    pub fn of(
        queue: tayori_app::admin::DeadLetterQueue,
        page: &tayori_app::admin::DeadLetterPage,
    ) -> Self {
        use tayori_app::admin::DeadLetterContent;
        Self {
            queue: queue.as_str().to_owned(),
            depth: page.depth.as_ref().map(|depth| DeadLetterDepthView {
                queue: depth.queue.clone(),
                visible: depth.visible,
                in_flight: depth.in_flight,
            }),
            messages: page
                .messages
                .iter()
                .map(|m| {
                    let view = DeadLetterView {
                        message_id: m.message_id.clone(),
                        sent_at: m.sent_at.map(|t| t.to_rfc3339()),
                        receive_count: m.receive_count,
                        size: m.size,
                        tenant: m.content.tenant().map(ToString::to_string),
                        ..DeadLetterView::default()
                    };
                    match &m.content {
                        DeadLetterContent::Event { key, event_type } => DeadLetterView {
                            source: Some(key.source.to_string()),
                            event_id: Some(key.id.to_string()),
                            event_type: Some(event_type.to_string()),
                            delivery_id: Some(key.delivery_id().to_string()),
                            ..view
                        },
                        DeadLetterContent::Feedback {
                            kind, ses_message_id, delivery_id, ..
                        } => DeadLetterView {
                            feedback_kind: Some((*kind).to_owned()),
                            ses_message_id: ses_message_id.clone(),
                            delivery_id: delivery_id.map(|id| id.to_string()),
                            ..view
                        },
                        DeadLetterContent::Unreadable(why) => {
                            DeadLetterView { unreadable: Some(why.clone()), ..view }
                        }
                    }
                })
                .collect(),
        }
    }
}

/// What a redrive moved.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveView {
    /// Messages moved back to the events queue.
    pub moved: u64,
    /// Why it stopped part way (the queue service failed); absent when it finished. What it
    /// moved stays moved: run it again.
    pub stopped: Option<String>,
}
