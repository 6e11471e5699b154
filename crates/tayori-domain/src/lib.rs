//! The domain of tayori: the value types that cross its edges and the invariants they keep.
//!
//! It owns the event contract v1 (parsing a queue message body, plain or SNS-wrapped, into a
//! validated [`Event`]), the newtypes built only by parsing ([`TenantId`], [`EventType`],
//! [`EmailAddress`], [`Locale`], [`IdempotencyKey`]), the outcomes a delivery can end in, and the
//! shape of an email ready to send, who may publish for a tenant ([`PublisherRules`]), and SES feedback ([`parse_feedback`]). It must not touch IO of any kind: no async runtime, no
//! database, no AWS, no HTTP, no template engine. A check in `scripts/test` enforces that.

mod address;
mod email;
mod event;
mod feedback;
mod ids;
mod json;
mod locale;
mod outcome;
mod publisher;
mod raw;
mod redact;
mod retention;
mod unsubscribe;

pub use address::{DisplayName, EmailAddress, InvalidAddress, InvalidDisplayName, Mailbox};
pub use email::{InvalidSubject, OutgoingEmail, SendingOptions, Subject};
pub use event::{DecodeError, Event, MAX_EVENT_BYTES, Recipient, decode_message_body};
pub use feedback::{
    BounceType, FEEDBACK_DELIVERY_ID_TAG, FEEDBACK_TENANT_TAG, FeedbackEnvelope, FeedbackEvent,
    FeedbackIdentity, FeedbackKind, FeedbackStatus, InvalidFeedback, parse_feedback,
};
pub use ids::{
    DeliveryId, EventId, EventSource, EventType, IdempotencyKey, InvalidEventId,
    InvalidEventSource, InvalidEventType, InvalidTenantId, TenantId,
};
pub use json::{StrictJsonError, parse_strict_json};
pub use locale::{InvalidLocale, Locale};
pub use outcome::{DeliveryStatus, Outcome, UnknownStatus};
pub use publisher::{Publisher, PublisherRules, RESERVED_SOURCE_PREFIX};
pub use raw::{MAX_KEPT_RAW_BYTES, RawBody};
pub use redact::{MASKED, MaskVariables, mask_addresses, mask_body, mask_link};
pub use retention::{InvalidRetention, RetentionDays};
pub use unsubscribe::{
    InvalidUnsubscribeToken, UnsubscribeClaim, UnsubscribeKey, WeakUnsubscribeKey,
};
