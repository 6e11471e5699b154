//! Property tests: whatever names, subject and bodies an email has (any Unicode, long lines,
//! CR and LF anywhere, non-ASCII), mail-parser, an independent MIME parser, reads back the same
//! names, subject and bodies from the bytes `build_message` writes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use chrono::{TimeZone, Utc};
use mail_parser::MessageParser;
use proptest::prelude::*;
use tayori_domain::{
    DeliveryId, DisplayName, EmailAddress, EventType, Mailbox, OutgoingEmail, Subject, TenantId,
};
use tayori_mime::build_message;

/// Display names the domain accepts: printable ASCII with every special (`"`, `\`, `,`, `<`,
/// `(`), text that looks like RFC 2047 encoded words (which readers would decode unless it is
/// encoded itself), any Unicode without controls, long ones, and blank ones (written without a
/// name).
fn names() -> impl Strategy<Value = Option<DisplayName>> {
    prop_oneof![
        Just(None),
        "[ -~]{0,80}".prop_map(Some),
        "\\PC{0,80}".prop_map(Some),
        encoded_lookalikes().prop_map(Some),
        "\\PC{200,256}".prop_map(Some),
    ]
    .prop_filter_map("not a display name", |name| match name {
        None => Some(None),
        Some(name) => DisplayName::parse(&name).ok().map(Some),
    })
}

/// Text that a reader would decode as RFC 2047 encoded words if it were written as it is.
fn encoded_lookalikes() -> impl Strategy<Value = String> {
    "[ -~]{0,10}=\\?(utf-8|UTF-8|iso-8859-1)\\?[BbQq]\\?[ -~]{0,30}\\?=[ -~]{0,10}"
}

/// Subjects the domain accepts: one line, any characters but controls, up to 998 of them.
fn subjects() -> impl Strategy<Value = Subject> {
    prop_oneof![
        "[ -~]{1,120}",
        "\\PC{1,120}",
        "[a-zA-Z0-9]{200,998}",
        "(\\PC{1,30} ){5,30}",
        "\\PC{900,998}",
        encoded_lookalikes(),
    ]
    .prop_filter_map("not a subject", |subject| Subject::parse(&subject).ok())
}

/// Bodies as a template may render them: any Unicode, with CR, LF and CRLF anywhere, lines past
/// MIME's 998-byte limit, trailing spaces and dots at line starts (quoted-printable's and SMTP's
/// special cases), other control characters a variable may carry, and nothing at all.
fn bodies() -> impl Strategy<Value = String> {
    prop_oneof![
        "(\\PC|\r|\n|\r\n|\t){0,300}",
        "([ -~]|\r\n|\n){0,300}",
        "[a-z ]{990,3000}",
        "(\\PC{1,2000}\n){1,4}",
        "(\\.|From |[ \t]+\n|=|\\PC){0,200}",
        "[\u{0}-\u{1f}\u{7f}a]{0,40}",
        Just(String::new()),
    ]
}

fn mailbox(address: &str, name: Option<DisplayName>) -> Mailbox {
    Mailbox { address: EmailAddress::parse(address).unwrap(), name }
}

/// What a body reads as once decoded: MIME's canonical line breaks (CRLF) are the builder's,
/// so a bare CR or LF comes back as CRLF; compared with both written as LF.
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// The name a reader is shown: a blank name is left out.
fn shown(name: &Option<DisplayName>) -> Option<String> {
    name.as_ref().map(|n| n.as_str().to_owned()).filter(|n| !n.trim().is_empty())
}

proptest! {
    #[test]
    fn names_subject_and_bodies_read_back_equal(
        from_name in names(),
        to_name in names(),
        subject in subjects(),
        text_body in bodies(),
        html_body in bodies(),
    ) {
        let email = OutgoingEmail {
            delivery_id: DeliveryId::parse("0b6c2d8e-5f1a-5c3e-9d7b-2a4e6f8c0d1b").unwrap(),
            tenant: TenantId::parse("acme-invest").unwrap(),
            event_type: EventType::parse("deposit.completed").unwrap(),
            from: mailbox("noreply@acme.example.com", from_name.clone()),
            reply_to: None,
            to: mailbox("taro.yamada@example.com", to_name.clone()),
            subject: subject.clone(),
            html_body: html_body.clone(),
            text_body: text_body.clone(),
            sending: Default::default(),
            list_unsubscribe: None,
        };
        let date = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let bytes = build_message(&email, date).unwrap();
        for line in bytes.split(|byte| *byte == b'\n') {
            prop_assert!(line.len() <= 1000, "a line of {} bytes", line.len());
        }

        let message = MessageParser::default().parse(&bytes).expect("parses");
        let mailbox_of = |address: Option<&mail_parser::Address<'_>>| {
            let first = address.and_then(|a| a.first()).expect("a mailbox");
            (first.name().map(str::to_owned), first.address().map(str::to_owned))
        };
        prop_assert_eq!(
            mailbox_of(message.from()),
            (shown(&from_name), Some("noreply@acme.example.com".to_owned()))
        );
        prop_assert_eq!(
            mailbox_of(message.to()),
            (shown(&to_name), Some("taro.yamada@example.com".to_owned()))
        );
        prop_assert_eq!(message.subject(), Some(subject.as_str()));
        let text = message.body_text(0).map(|t| lines(&t)).unwrap_or_default();
        prop_assert_eq!(text, lines(&text_body));
        let html = message.body_html(0).map(|h| lines(&h)).unwrap_or_default();
        prop_assert_eq!(html, lines(&html_body));
    }
}
