//! SES feedback: the events SES publishes about a sent email (send, delivery, bounce, complaint,
//! …), parsed from a feedback-queue message body into a validated [`FeedbackEvent`].
//!
//! Three shapes arrive: an SNS `Notification` whose `Message` is the SES event (configuration
//! set → SNS → SQS without raw delivery), the SES event itself (raw delivery), and an
//! EventBridge event (`detail-type`, `detail`). A body that is none of these, or an SES event
//! this module cannot read, is an [`InvalidFeedback`] with its reason and identity: the caller
//! records it, it is never dropped. Nothing here panics on input.
//!
//! How a delivery's feedback status moves is [`FeedbackStatus::after`]: see `docs/feedback.md`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::json::{StrictJsonError, parse_strict_json};
use crate::{DeliveryId, EmailAddress, TenantId};

/// The tag the SES sender sets to the tenant (see `tayori-ses`).
pub const FEEDBACK_TENANT_TAG: &str = "tayori-tenant";
/// The tag the SES sender sets to the delivery id.
pub const FEEDBACK_DELIVERY_ID_TAG: &str = "tayori-delivery-id";

/// The longest SES message id kept (real ones are about 60 characters).
const MAX_MESSAGE_ID: usize = 256;

/// What identifies one feedback event across redeliveries: `sns:<MessageId>`,
/// `eventbridge:<id>`, or `sha256:<hex>` of the SES event (raw delivery) or of the whole body
/// (a body that could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FeedbackIdentity(String);

impl FeedbackIdentity {
    /// The identity as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of_bytes(bytes: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    fn prefixed(prefix: &str, id: &str) -> Option<Self> {
        let id = id.trim();
        let fits = !id.is_empty() && id.len() <= 256 && !id.chars().any(char::is_control);
        fits.then(|| Self(format!("{prefix}:{id}")))
    }
}

impl fmt::Display for FeedbackIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How SES classifies a bounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BounceType {
    /// The address does not exist or refuses mail for good: suppress it.
    Permanent,
    /// A full mailbox, a message too large, …: SES gave up on this email only.
    Transient,
    /// SES could not tell.
    Undetermined,
}

impl BounceType {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "Permanent" => Some(BounceType::Permanent),
            "Transient" => Some(BounceType::Transient),
            "Undetermined" => Some(BounceType::Undetermined),
            _ => None,
        }
    }

    /// The name SES uses.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::Permanent => "Permanent",
            BounceType::Transient => "Transient",
            BounceType::Undetermined => "Undetermined",
        }
    }
}

/// What happened, with the details worth keeping in a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FeedbackKind {
    /// SES accepted the email for sending.
    Send,
    /// The receiving server accepted the email.
    Delivery,
    /// The email bounced.
    Bounce {
        /// Permanent, transient or undetermined.
        bounce_type: BounceType,
        /// SES's subtype (`General`, `NoEmail`, `Suppressed`, `MailboxFull`, …).
        sub_type: String,
    },
    /// The recipient marked the email as spam.
    Complaint {
        /// The feedback report's type (`abuse`, …), when the ISP sent one.
        feedback_type: Option<String>,
    },
    /// SES refused to send it (a virus was found).
    Reject {
        /// SES's reason.
        reason: String,
    },
    /// Delivery is delayed; SES keeps trying.
    DeliveryDelay {
        /// SES's delay type (`TransientCommunicationFailure`, `MailboxFull`, …).
        delay_type: String,
    },
    /// An SES template could not be rendered (tayori sends raw content, so this is unexpected).
    RenderingFailure {
        /// SES's error message.
        error: String,
    },
    /// The recipient opened the email.
    Open,
    /// The recipient clicked a link.
    Click {
        /// The link.
        link: String,
    },
    /// The recipient changed subscription preferences (SES list management).
    Subscription {
        /// They unsubscribed from everything of the contact list (`unsubscribeAll`): tayori
        /// suppresses the tenant's `subscription` mail for them.
        unsubscribe_all: bool,
    },
}

impl FeedbackKind {
    /// The stored name: `send`, `delivery`, `bounce`, `complaint`, `reject`, `delivery_delay`,
    /// `rendering_failure`, `open`, `click`, `subscription`.
    pub fn name(&self) -> &'static str {
        match self {
            FeedbackKind::Send => "send",
            FeedbackKind::Delivery => "delivery",
            FeedbackKind::Bounce { .. } => "bounce",
            FeedbackKind::Complaint { .. } => "complaint",
            FeedbackKind::Reject { .. } => "reject",
            FeedbackKind::DeliveryDelay { .. } => "delivery_delay",
            FeedbackKind::RenderingFailure { .. } => "rendering_failure",
            FeedbackKind::Open => "open",
            FeedbackKind::Click { .. } => "click",
            FeedbackKind::Subscription { .. } => "subscription",
        }
    }

    /// A one-line detail for the timeline (`Permanent/General`, `abuse`, the reject reason, …).
    pub fn detail(&self) -> Option<String> {
        match self {
            FeedbackKind::Bounce { bounce_type, sub_type } => {
                Some(format!("{}/{sub_type}", bounce_type.as_str()))
            }
            FeedbackKind::Complaint { feedback_type } => feedback_type.clone(),
            FeedbackKind::Reject { reason } => Some(reason.clone()),
            FeedbackKind::DeliveryDelay { delay_type } => Some(delay_type.clone()),
            FeedbackKind::RenderingFailure { error } => Some(error.clone()),
            FeedbackKind::Click { link } => Some(link.clone()),
            FeedbackKind::Subscription { unsubscribe_all: true } => Some("unsubscribe all".into()),
            FeedbackKind::Send
            | FeedbackKind::Delivery
            | FeedbackKind::Open
            | FeedbackKind::Subscription { .. } => None,
        }
    }

    /// The feedback status this kind of event moves a delivery towards, if any. Opens, clicks,
    /// subscription changes, rejects and rendering failures only add to the timeline.
    pub fn status(&self) -> Option<FeedbackStatus> {
        match self {
            FeedbackKind::Send => Some(FeedbackStatus::Sent),
            FeedbackKind::Delivery => Some(FeedbackStatus::Delivered),
            FeedbackKind::Bounce { .. } => Some(FeedbackStatus::Bounced),
            FeedbackKind::Complaint { .. } => Some(FeedbackStatus::Complained),
            FeedbackKind::DeliveryDelay { .. } => Some(FeedbackStatus::Delayed),
            FeedbackKind::Reject { .. }
            | FeedbackKind::RenderingFailure { .. }
            | FeedbackKind::Open
            | FeedbackKind::Click { .. }
            | FeedbackKind::Subscription { .. } => None,
        }
    }

    /// Whether this event suppresses the recipients automatically for their tenant: a
    /// permanent bounce or a complaint (see `docs/feedback.md`).
    pub fn suppresses(&self) -> bool {
        matches!(
            self,
            FeedbackKind::Bounce { bounce_type: BounceType::Permanent, .. }
                | FeedbackKind::Complaint { .. }
        )
    }

    /// Whether this event is a transient bounce: it suppresses only once enough of them
    /// arrived for the address within a window (the feedback policy).
    pub fn is_transient_bounce(&self) -> bool {
        matches!(self, FeedbackKind::Bounce { bounce_type: BounceType::Transient, .. })
    }

    /// Whether this event unsubscribes the recipients from the tenant's `subscription` mail.
    pub fn unsubscribes(&self) -> bool {
        matches!(self, FeedbackKind::Subscription { unsubscribe_all: true })
    }
}

/// Where a sent email stands according to SES's feedback, by precedence:
/// `complained` > `bounced` > `delivered` > `delayed` > `sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackStatus {
    /// SES accepted it.
    Sent,
    /// Delivery is delayed.
    Delayed,
    /// Delivered to the receiving server.
    Delivered,
    /// Bounced.
    Bounced,
    /// The recipient complained.
    Complained,
}

impl FeedbackStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackStatus::Sent => "sent",
            FeedbackStatus::Delayed => "delayed",
            FeedbackStatus::Delivered => "delivered",
            FeedbackStatus::Bounced => "bounced",
            FeedbackStatus::Complained => "complained",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            FeedbackStatus::Sent,
            FeedbackStatus::Delayed,
            FeedbackStatus::Delivered,
            FeedbackStatus::Bounced,
            FeedbackStatus::Complained,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// The status after an event moving towards `new` arrives at a delivery standing at
    /// `current`: the higher of the two, so that events arriving out of order (a Delivery
    /// before its Send, a late DeliveryDelay after the Delivery) never move it back.
    pub fn after(current: Option<FeedbackStatus>, new: FeedbackStatus) -> FeedbackStatus {
        current.map_or(new, |current| current.max(new))
    }
}

impl fmt::Display for FeedbackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the event reached the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackEnvelope {
    /// Inside an SNS `Notification`.
    Sns,
    /// The SES event itself (SNS raw delivery).
    Raw,
    /// An EventBridge event.
    EventBridge,
}

/// One SES event, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackEvent {
    /// What identifies it across redeliveries.
    pub identity: FeedbackIdentity,
    /// How it arrived.
    pub envelope: FeedbackEnvelope,
    /// What happened.
    pub kind: FeedbackKind,
    /// SES's message id (`mail.messageId`): the provider message id the sender recorded.
    pub ses_message_id: Option<String>,
    /// The tenant from the email's `tayori-tenant` tag, when present and valid.
    pub tenant: Option<TenantId>,
    /// The delivery from the email's `tayori-delivery-id` tag, when present and valid.
    pub delivery_id: Option<DeliveryId>,
    /// The recipients the event is about (the bounced, complained, delayed or delivered ones;
    /// for other kinds the email's destination). Addresses that do not parse are left out.
    pub recipients: Vec<EmailAddress>,
    /// When it happened, by SES's clock (the event's own timestamp, else the mail's).
    pub occurred_at: Option<DateTime<Utc>>,
    /// The SES event as received (after unwrapping), kept with the timeline entry.
    pub ses_event: Value,
}

/// A feedback body that could not be read: recorded with its reason, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SES feedback: {reason}")]
pub struct InvalidFeedback {
    /// What identifies it across redeliveries (the envelope's id when one was read, else a
    /// hash of the body).
    pub identity: FeedbackIdentity,
    /// Why it could not be read.
    pub reason: String,
}

/// Why `what` (the body itself when `None`) was refused before any field was read.
fn json_refusal(what: Option<&str>, error: &StrictJsonError) -> String {
    match (what, error) {
        (None, StrictJsonError::Syntax(e)) => format!("not JSON: {e}"),
        (Some(what), StrictJsonError::Syntax(e)) => format!("{what} is not JSON: {e}"),
        (None, StrictJsonError::DuplicateMember(e)) => format!("names a member twice: {e}"),
        (Some(what), StrictJsonError::DuplicateMember(e)) => {
            format!("{what} names a member twice: {e}")
        }
    }
}

/// Parses a feedback-queue message body: see the module documentation.
pub fn parse_feedback(body: &[u8]) -> Result<FeedbackEvent, InvalidFeedback> {
    let body_identity = FeedbackIdentity::of_bytes(body);
    let fail = |identity: FeedbackIdentity, reason: String| InvalidFeedback { identity, reason };
    let value =
        parse_strict_json(body).map_err(|e| fail(body_identity.clone(), json_refusal(None, &e)))?;
    if !value.is_object() {
        return Err(fail(body_identity, "not a JSON object".into()));
    }
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);

    let (envelope, identity, ses_event, detail_type) = if str_of(&value, "Type").as_deref()
        == Some("Notification")
    {
        let identity = str_of(&value, "MessageId")
            .and_then(|id| FeedbackIdentity::prefixed("sns", &id))
            .ok_or_else(|| {
                fail(body_identity.clone(), "SNS notification without a MessageId".into())
            })?;
        let Some(message) = str_of(&value, "Message") else {
            return Err(fail(identity, "SNS notification: Message must be a string".into()));
        };
        let inner = parse_strict_json(message.as_bytes()).map_err(|e| {
            fail(identity.clone(), json_refusal(Some("SNS notification: Message"), &e))
        })?;
        (FeedbackEnvelope::Sns, identity, inner, None)
    } else if value.get("detail-type").is_some() || value.get("detail").is_some() {
        let identity = str_of(&value, "id")
            .and_then(|id| FeedbackIdentity::prefixed("eventbridge", &id))
            .ok_or_else(|| fail(body_identity.clone(), "EventBridge event without an id".into()))?;
        let Some(detail) = value.get("detail").filter(|d| d.is_object()).cloned() else {
            return Err(fail(identity, "EventBridge event: detail must be an object".into()));
        };
        (FeedbackEnvelope::EventBridge, identity, detail, str_of(&value, "detail-type"))
    } else {
        // Raw delivery: the same SES event redelivered hashes the same.
        (FeedbackEnvelope::Raw, body_identity, value, None)
    };

    parse_ses_event(&ses_event, detail_type.as_deref())
        .map(|parsed| FeedbackEvent { identity: identity.clone(), envelope, ses_event, ..parsed })
        .map_err(|reason| fail(identity, reason))
}

/// The SES event inside whatever envelope it came in. The identity, envelope and event copy are
/// filled in by the caller.
fn parse_ses_event(event: &Value, detail_type: Option<&str>) -> Result<FeedbackEvent, String> {
    if !event.is_object() {
        return Err("the SES event is not a JSON object".into());
    }
    // `eventType` in event publishing; `notificationType` in identity notifications.
    let event_type = event
        .get("eventType")
        .or_else(|| event.get("notificationType"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| detail_type.and_then(event_type_of_detail_type).map(str::to_owned))
        .ok_or("the SES event has no eventType")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(clean);
    let section = |key: &str| event.get(key).filter(|v| v.is_object());
    let required = |key: &str| section(key).ok_or_else(|| format!("{event_type} without {key}"));

    let (kind, about, timestamp) = match event_type.as_str() {
        "Send" => (FeedbackKind::Send, None, None),
        "Delivery" => {
            let delivery = required("delivery")?;
            (FeedbackKind::Delivery, delivery.get("recipients"), delivery.get("timestamp"))
        }
        "Bounce" => {
            let bounce = required("bounce")?;
            let raw_type = text(bounce.get("bounceType")).unwrap_or_default();
            let bounce_type = BounceType::parse(&raw_type)
                .ok_or_else(|| format!("unknown bounceType {raw_type:?}"))?;
            let sub_type = text(bounce.get("bounceSubType")).unwrap_or_else(|| "General".into());
            let kind = FeedbackKind::Bounce { bounce_type, sub_type };
            (kind, bounce.get("bouncedRecipients"), bounce.get("timestamp"))
        }
        "Complaint" => {
            let complaint = required("complaint")?;
            let feedback_type = text(complaint.get("complaintFeedbackType"));
            let kind = FeedbackKind::Complaint { feedback_type };
            (kind, complaint.get("complainedRecipients"), complaint.get("timestamp"))
        }
        "Reject" => {
            let reason = text(required("reject")?.get("reason")).unwrap_or_default();
            (FeedbackKind::Reject { reason }, None, None)
        }
        "DeliveryDelay" => {
            let delay = required("deliveryDelay")?;
            let delay_type = text(delay.get("delayType")).unwrap_or_else(|| "Undetermined".into());
            let kind = FeedbackKind::DeliveryDelay { delay_type };
            (kind, delay.get("delayedRecipients"), delay.get("timestamp"))
        }
        "Rendering Failure" | "RenderingFailure" => {
            let error = text(required("failure")?.get("errorMessage")).unwrap_or_default();
            (FeedbackKind::RenderingFailure { error }, None, None)
        }
        "Open" => {
            let open = required("open")?;
            (FeedbackKind::Open, None, open.get("timestamp"))
        }
        "Click" => {
            let click = required("click")?;
            let link = text(click.get("link")).unwrap_or_default();
            (FeedbackKind::Click { link }, None, click.get("timestamp"))
        }
        "Subscription" => {
            let subscription = required("subscription")?;
            let unsubscribe_all = subscription
                .pointer("/newTopicPreferences/unsubscribeAll")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (FeedbackKind::Subscription { unsubscribe_all }, None, subscription.get("timestamp"))
        }
        other => return Err(format!("unknown SES event type {other:?}")),
    };

    let mail = event.get("mail").filter(|m| m.is_object()).ok_or("the SES event has no mail")?;
    let ses_message_id = text(mail.get("messageId"))
        .filter(|id| !id.is_empty() && id.len() <= MAX_MESSAGE_ID)
        .filter(|id| !id.chars().any(|c| c.is_control() || c.is_whitespace()));
    let tag = |name: &str| {
        let values = mail.get("tags")?.get(name)?;
        values.as_array()?.first()?.as_str().map(str::to_owned)
    };
    let tenant = tag(FEEDBACK_TENANT_TAG).and_then(|t| TenantId::parse(&t).ok());
    let delivery_id = tag(FEEDBACK_DELIVERY_ID_TAG).and_then(|d| DeliveryId::parse(&d));
    if ses_message_id.is_none() && delivery_id.is_none() {
        return Err("the SES event names no message id and no tayori-delivery-id tag".into());
    }
    let recipients = recipients(about.or_else(|| mail.get("destination")));
    let occurred_at = timestamp
        .or_else(|| mail.get("timestamp"))
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));

    Ok(FeedbackEvent {
        identity: FeedbackIdentity(String::new()),
        envelope: FeedbackEnvelope::Raw,
        kind,
        ses_message_id,
        tenant,
        delivery_id,
        recipients,
        occurred_at,
        ses_event: Value::Null,
    })
}

/// Addresses from a list of strings (`destination`, `delivery.recipients`) or of objects with
/// `emailAddress` (bounced, complained, delayed recipients).
fn recipients(list: Option<&Value>) -> Vec<EmailAddress> {
    let Some(list) = list.and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|entry| entry.as_str().or_else(|| entry.get("emailAddress")?.as_str()))
        .filter_map(|raw| EmailAddress::parse(raw).ok())
        .collect()
}

/// Event data as kept in a timeline: control characters (CR, LF, …) become spaces, at most
/// 1,000 characters.
fn clean(raw: &str) -> String {
    raw.chars().take(1_000).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// EventBridge's `detail-type` for SES events, when the detail lacks `eventType`.
fn event_type_of_detail_type(detail_type: &str) -> Option<&'static str> {
    Some(match detail_type {
        "Email Sent" => "Send",
        "Email Delivered" => "Delivery",
        "Email Bounced" => "Bounce",
        "Email Complaint Received" => "Complaint",
        "Email Rejected" => "Reject",
        "Email Delivery Delayed" => "DeliveryDelay",
        "Email Rendering Failed" => "Rendering Failure",
        "Email Opened" => "Open",
        "Email Clicked" => "Click",
        "Email Subscribed" => "Subscription",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_precedence_and_never_regresses() {
        use FeedbackStatus::*;
        assert_eq!(FeedbackStatus::after(None, Delivered), Delivered);
        assert_eq!(FeedbackStatus::after(Some(Delivered), Sent), Delivered, "Send after Delivery");
        assert_eq!(FeedbackStatus::after(Some(Delivered), Delayed), Delivered);
        assert_eq!(FeedbackStatus::after(Some(Delayed), Delivered), Delivered);
        assert_eq!(FeedbackStatus::after(Some(Delivered), Bounced), Bounced);
        assert_eq!(FeedbackStatus::after(Some(Complained), Bounced), Complained);
        assert_eq!(FeedbackStatus::after(Some(Bounced), Complained), Complained);
        for s in [Sent, Delayed, Delivered, Bounced, Complained] {
            assert_eq!(FeedbackStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn garbage_is_invalid_with_a_stable_identity() {
        for body in [&b"not json"[..], b"[]", b"{}", b"{\"eventType\":\"Bounce\"}", b"\xff\xfe"] {
            let first = parse_feedback(body).unwrap_err();
            let again = parse_feedback(body).unwrap_err();
            assert_eq!(first, again);
            assert!(first.identity.as_str().starts_with("sha256:"), "{first:?}");
        }
        let sns = br#"{"Type":"Notification","MessageId":"m-1","Message":"nope"}"#;
        let error = parse_feedback(sns).unwrap_err();
        assert_eq!(error.identity.as_str(), "sns:m-1");
        assert!(error.reason.contains("not JSON"), "{error}");
    }

    #[test]
    fn a_member_named_twice_is_invalid_not_read_either_way() {
        // A forged complaint could otherwise name one recipient for a log and another for us.
        let inner = r#"{"eventType":"Complaint","eventType":"Delivery","mail":{}}"#;
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m-2", "Message": inner});
        let error = parse_feedback(sns.to_string().as_bytes()).unwrap_err();
        assert_eq!(error.identity.as_str(), "sns:m-2");
        assert!(error.reason.contains(r#""eventType" appears twice"#), "{error}");
        let outer =
            br#"{"Type":"Notification","MessageId":"m-3","MessageId":"m-4","Message":"{}"}"#;
        let error = parse_feedback(outer).unwrap_err();
        assert!(error.reason.contains("names a member twice"), "{error}");
    }

    #[test]
    fn detail_never_carries_line_breaks() {
        assert_eq!(clean("a\r\nb"), "a  b");
    }
}
