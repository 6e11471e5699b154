//! An email ready to hand to a sender.

use serde::Serialize;

use crate::{DeliveryId, EventType, Mailbox, TenantId};

/// A rendered subject line: one line, no CR/LF or other control characters, at most 998
/// characters (RFC 5322's line limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Subject(String);

/// Why a rendered subject cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSubject {
    /// Empty after trimming.
    #[error("subject is empty")]
    Empty,
    /// CR, LF or another control character.
    #[error("subject must be one line without control characters")]
    ControlCharacter,
    /// Longer than 998 characters.
    #[error("subject is {0} characters, more than 998")]
    TooLong(usize),
}

impl Subject {
    /// Checks a rendered subject. Leading and trailing whitespace is trimmed, since templates
    /// often end with a newline.
    pub fn parse(rendered: &str) -> Result<Self, InvalidSubject> {
        let trimmed = rendered.trim();
        if trimmed.is_empty() {
            return Err(InvalidSubject::Empty);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidSubject::ControlCharacter);
        }
        let count = trimmed.chars().count();
        if count > 998 {
            return Err(InvalidSubject::TooLong(count));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Per-tenant options for the mail service, both optional: SES's configuration set (event
/// publishing, IP pool) and SES's tenant (`TenantName`, for per-tenant reputation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SendingOptions {
    /// The configuration set to send through.
    pub configuration_set: Option<String>,
    /// The mail service's own tenant name for this tenant.
    pub provider_tenant: Option<String>,
}

/// Everything a sender needs to build and send one email. Senders build the MIME message from
/// this, all in the same way, so every sender sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutgoingEmail {
    /// The delivery this email belongs to (also the basis of its `Message-ID`).
    pub delivery_id: DeliveryId,
    /// The tenant sending it.
    pub tenant: TenantId,
    /// The event type it answers.
    pub event_type: EventType,
    /// The tenant's sender.
    pub from: Mailbox,
    /// Where replies go, when the tenant names one.
    pub reply_to: Option<Mailbox>,
    /// The one recipient.
    pub to: Mailbox,
    /// The subject line.
    pub subject: Subject,
    /// The HTML part.
    pub html_body: String,
    /// The plain-text part.
    pub text_body: String,
    /// The tenant's options for the mail service.
    pub sending: SendingOptions,
    /// The one-click unsubscribe URL (RFC 8058) of `subscription` mail: the MIME builder writes
    /// `List-Unsubscribe: <url>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
    /// `None` for transactional mail, which carries neither.
    pub list_unsubscribe: Option<String>,
}

impl OutgoingEmail {
    /// The `Message-ID` (without angle brackets): stable per delivery, in the sender's domain, so
    /// a resent copy of the same delivery is recognisable downstream.
    pub fn message_id(&self) -> String {
        format!("{}@{}", self.delivery_id, self.from.address.domain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_rules() {
        assert_eq!(
            Subject::parse("  入金完了のお知らせ\n").unwrap().as_str(),
            "入金完了のお知らせ"
        );
        assert_eq!(Subject::parse("a\r\nBcc: x"), Err(InvalidSubject::ControlCharacter));
        assert_eq!(Subject::parse(" \n"), Err(InvalidSubject::Empty));
        assert!(Subject::parse(&"あ".repeat(998)).is_ok());
        assert_eq!(Subject::parse(&"a".repeat(999)), Err(InvalidSubject::TooLong(999)));
    }
}
