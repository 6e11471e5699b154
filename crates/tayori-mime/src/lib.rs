//! The MIME message of an email: turns an [`OutgoingEmail`] into the RFC 5322 bytes that every
//! sender hands on (SES raw send, the file outbox, ...), so every sender sends the same message.
//! It owns the header set (`From`, `To`, `Reply-To`, `Subject`, `Date`, `Message-ID`,
//! `MIME-Version`, `X-Tayori-Delivery-Id`, and any extra headers a caller adds), their encoding
//! (RFC 2047 for non-ASCII names and subjects, by `mail-builder`, and for names and subjects
//! that look like encoded words, by the encoder it uses, `encodify`; never by hand) and the
//! `multipart/alternative` body with the text part first and the HTML part second. It is pure:
//! it must not touch IO of any kind (no files, network, clock or environment; the caller passes
//! the `Date`), and it implements no port.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use encodify::Fold;
use encodify::rfc2047::{self, WordEncoder};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use tayori_domain::{Mailbox, OutgoingEmail};

/// The header that carries the delivery id, so support staff can trace an email they are shown
/// back to its delivery.
pub const DELIVERY_ID_HEADER: &str = "X-Tayori-Delivery-Id";

/// Headers this crate writes itself, or that would change who receives the email or how its
/// body is read. Callers cannot add them as extra headers (compared ignoring ASCII case; every
/// `Content-*` header is refused too).
const RESERVED_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "To",
    "Cc",
    "Bcc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    DELIVERY_ID_HEADER,
];

/// The longest extra header name accepted, so that `Name: ` fits on a 78-character line.
const MAX_HEADER_NAME_LEN: usize = 76;

/// Why a message could not be built. Only extra headers can be refused: everything taken from an
/// [`OutgoingEmail`] is already valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MimeError {
    /// The name is empty, longer than 76 characters, or has a character outside printable ASCII
    /// or a `:` (RFC 5322 `field-name`).
    #[error("header name {name:?} must be 1 to 76 printable ASCII characters without ':'")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// The header is one this crate writes itself, a recipient header or a `Content-*` header.
    #[error("header {name} is written by tayori-mime itself and cannot be added")]
    ReservedHeader {
        /// The name as given.
        name: String,
    },
    /// The value contains CR or LF, which would let it start a new header.
    #[error("value of header {name} contains CR or LF")]
    LineBreakInHeader {
        /// The header's name.
        name: String,
    },
    /// The value contains a control character other than tab, or a non-ASCII character.
    #[error("value of header {name} must be printable ASCII (tab allowed)")]
    UnprintableHeaderValue {
        /// The header's name.
        name: String,
    },
}

/// Builds the RFC 5322 message of `email`, dated `date`.
///
/// Same as [`build_message_with_headers`] without extra headers; see there for what is written.
pub fn build_message(email: &OutgoingEmail, date: DateTime<Utc>) -> Result<Vec<u8>, MimeError> {
    build_message_with_headers(email, date, &[])
}

/// Builds the RFC 5322 message of `email`, dated `date`, with `extra_headers` added after the
/// standard ones in the order given.
///
/// Written, in this order: `From` (with the display name, RFC 2047-encoded when not ASCII),
/// `To` (with the recipient's name when there is one), `Reply-To` when the email has one,
/// `Subject` (encoded when not ASCII), `Date`, `Message-ID: <{email.message_id()}>`,
/// `MIME-Version: 1.0`, [`DELIVERY_ID_HEADER`], the extra headers, then a
/// `multipart/alternative` body with the `text/plain` part first and the `text/html` part
/// second, both `charset=utf-8` with a transfer encoding chosen by `mail-builder`. Every line
/// ends in CRLF, including the line breaks inside the bodies (LF in a template becomes CRLF, as
/// MIME's canonical form for text requires).
///
/// Why a slice of `(name, value)` pairs rather than a builder: the headers a later caller adds
/// (`List-Unsubscribe`, `List-Unsubscribe-Post`, `Feedback-ID`, ...) are plain data computed
/// from the tenant and the delivery, so one call with a slice keeps every sender's call site a
/// single expression, with nothing to forget to finish. The values are written as given (only
/// folded at whitespace when long), because such headers are structured and must not be
/// RFC 2047-encoded; hence every extra header is checked first and the whole call fails with a
/// [`MimeError`] when one is not safe:
/// - the name must be an RFC 5322 field name of at most 76 characters
///   ([`MimeError::InvalidHeaderName`]), and not one this function owns: the headers above,
///   `Sender`, `Cc`, `Bcc`, or any `Content-*` ([`MimeError::ReservedHeader`]);
/// - the value must not contain CR or LF ([`MimeError::LineBreakInHeader`]) and must otherwise
///   be printable ASCII or tab ([`MimeError::UnprintableHeaderValue`]).
pub fn build_message_with_headers(
    email: &OutgoingEmail,
    date: DateTime<Utc>,
    extra_headers: &[(&str, String)],
) -> Result<Vec<u8>, MimeError> {
    // One-click unsubscribe (RFC 8058) on subscription mail; checked like any extra header, so
    // a URL with a line break cannot become a header of its own.
    let list_headers = email.list_unsubscribe.as_ref().map(|url| {
        [
            ("List-Unsubscribe", format!("<{url}>")),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_owned()),
        ]
    });
    let extra_headers: Vec<(&str, String)> =
        list_headers.into_iter().flatten().chain(extra_headers.iter().cloned()).collect();
    let extra_headers = extra_headers.as_slice();
    for (name, value) in extra_headers {
        check_extra_header(name, value)?;
    }

    let mut message = mailbox_header(MessageBuilder::new(), "From", &email.from);
    message = mailbox_header(message, "To", &email.to);
    if let Some(reply_to) = &email.reply_to {
        message = mailbox_header(message, "Reply-To", reply_to);
    }
    let subject = email.subject.as_str();
    message = if needs_encoded_words(subject) {
        message.header("Subject", Raw::new(encoded_words(rfc2047::Q_TEXT, subject)))
    } else {
        message.subject(subject)
    };
    message = message
        .date(Date::new(date.timestamp()))
        .message_id(email.message_id())
        .header("MIME-Version", Raw::new("1.0"))
        .header(DELIVERY_ID_HEADER, Raw::new(email.delivery_id.to_string()));
    for (name, value) in extra_headers {
        message = message.header(*name, Raw::new(value.as_str()));
    }
    // With both bodies set and no attachments, mail-builder writes exactly
    // multipart/alternative [text/plain, text/html].
    message =
        message.text_body(crlf_lines(&email.text_body)).html_body(crlf_lines(&email.html_body));

    let mut bytes = Vec::new();
    message.serialize(&mut bytes);
    Ok(bytes)
}

/// Adds `From`, `To` or `Reply-To` for `mailbox`: as mail-builder writes it, or, when the name
/// would not read back as written (`needs_encoded_words`), as encoded words itself.
fn mailbox_header<'x>(
    message: MessageBuilder<'x>,
    header: &'static str,
    mailbox: &'x Mailbox,
) -> MessageBuilder<'x> {
    match mailbox.name.as_ref().map(|name| name.as_str()) {
        Some(name) if needs_encoded_words(name) => {
            let name = encoded_words(rfc2047::Q_PHRASE, name);
            message.header(header, Raw::new(format!("{name} <{}>", mailbox.address.as_str())))
        }
        _ => match header {
            "From" => message.from(address(mailbox)),
            "To" => message.to(address(mailbox)),
            _ => message.reply_to(address(mailbox)),
        },
    }
}

/// Text that would not read back as written if mail-builder wrote it as it is, so it is
/// written as encoded words here: text a reader would take for RFC 2047 encoded words
/// (`=?utf-8?B?QWRtaW4=?=` reads as `Admin`; readers decode it even inside a quoted name), and
/// text with a run of spaces or tabs, which a long header loses when it is folded there (found
/// by the property test: `Aa   Aa` read back as `Aa Aa`).
fn needs_encoded_words(text: &str) -> bool {
    text.contains("=?")
        || text.as_bytes().windows(2).any(|pair| pair.iter().all(|b| *b == b' ' || *b == b'\t'))
}

/// `text` as UTF-8 encoded words separated by spaces, on one line: the header writer folds
/// between them, and readers join adjacent encoded words without the space.
fn encoded_words(encoder: WordEncoder, text: &str) -> String {
    let one_line = Fold::new(usize::MAX, b" ", 0);
    let mut words = String::new();
    encoder.encode_words("utf-8", text, &mut 0, one_line, &mut words);
    words
}

/// A mailbox as mail-builder takes it. An empty or blank name is left out rather than written
/// as `""`.
fn address(mailbox: &Mailbox) -> Address<'_> {
    let name = mailbox
        .name
        .as_ref()
        .map(|name| Cow::Borrowed(name.as_str()))
        .filter(|name| !name.trim().is_empty());
    Address::new_address(name, mailbox.address.as_str())
}

/// Text in MIME's canonical form (RFC 2046 section 4.1.1): every line break CRLF. Templates
/// write LF; when mail-builder picks base64 for a body, the line breaks inside the encoded text
/// would otherwise stay bare LF. A bare CR or a bare LF becomes CRLF; a CRLF stays. One pass,
/// jumping from break to break: it runs on both bodies of every email.
fn crlf_lines(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut canonical: Option<String> = None;
    let mut copied_up_to = 0;
    let mut at = 0;
    while let Some(found) = memchr::memchr2(b'\r', b'\n', &bytes[at..]) {
        let found = at + found;
        if bytes[found] == b'\r' && bytes.get(found + 1) == Some(&b'\n') {
            at = found + 2;
            continue;
        }
        let out =
            canonical.get_or_insert_with(|| String::with_capacity(text.len() + text.len() / 8));
        out.push_str(&text[copied_up_to..found]);
        out.push_str("\r\n");
        copied_up_to = found + 1;
        at = found + 1;
    }
    match canonical {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied_up_to..]);
            Cow::Owned(out)
        }
    }
}

fn check_extra_header(name: &str, value: &str) -> Result<(), MimeError> {
    let is_ftext = |byte: u8| (33..=126).contains(&byte) && byte != b':';
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_ftext) {
        return Err(MimeError::InvalidHeaderName { name: name.to_owned() });
    }
    let reserved = RESERVED_HEADERS.iter().any(|reserved| reserved.eq_ignore_ascii_case(name))
        || name.get(..8).is_some_and(|prefix| prefix.eq_ignore_ascii_case("Content-"));
    if reserved {
        return Err(MimeError::ReservedHeader { name: name.to_owned() });
    }
    if value.contains(['\r', '\n']) {
        return Err(MimeError::LineBreakInHeader { name: name.to_owned() });
    }
    if !value.bytes().all(|byte| byte == b'\t' || (32..=126).contains(&byte)) {
        return Err(MimeError::UnprintableHeaderValue { name: name.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_line_breaks_become_crlf() {
        assert!(matches!(crlf_lines("a\r\nb\r\n"), Cow::Borrowed("a\r\nb\r\n")));
        assert!(matches!(crlf_lines("no breaks"), Cow::Borrowed(_)));
        assert_eq!(crlf_lines("a\nb\r\nc\rd\n"), "a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(crlf_lines("\n\n"), "\r\n\r\n");
        assert_eq!(crlf_lines("\r\r\n\n\r"), "\r\n\r\n\r\n\r\n");
        assert_eq!(crlf_lines("日本\n語"), "日本\r\n語");
    }

    /// The one-pass version against the three replacements it took over from, on every
    /// string of up to six characters from an alphabet of CR, LF, `a` and `語`.
    #[test]
    fn body_line_breaks_as_the_three_replacements_gave_them() {
        let alphabet = ["\r", "\n", "a", "語"];
        let mut longest = vec![String::new()];
        let mut texts = longest.clone();
        for _ in 0..6 {
            longest = longest
                .iter()
                .flat_map(|text| alphabet.iter().map(move |piece| format!("{text}{piece}")))
                .collect();
            texts.extend(longest.iter().cloned());
        }
        for text in &texts {
            let expected = text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
            assert_eq!(crlf_lines(text), expected, "{text:?}");
        }
        assert_eq!(texts.len(), (0..=6).map(|n| 4_usize.pow(n)).sum::<usize>());
    }

    #[test]
    fn extra_header_names_must_be_field_names() {
        for bad in ["", "List Unsubscribe", "X-Foo:", "X-Fö", "X-Foo\r\nBcc", &"X".repeat(77)] {
            assert_eq!(
                check_extra_header(bad, "v"),
                Err(MimeError::InvalidHeaderName { name: bad.to_owned() }),
                "{bad:?}"
            );
        }
        assert_eq!(check_extra_header(&"X".repeat(76), "v"), Ok(()));
        assert_eq!(
            check_extra_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            Ok(())
        );
    }

    #[test]
    fn headers_this_crate_owns_are_reserved() {
        for name in [
            "from",
            "BCC",
            "Message-Id",
            "content-type",
            "Content-Transfer-Encoding",
            "x-tayori-delivery-id",
        ] {
            assert_eq!(
                check_extra_header(name, "v"),
                Err(MimeError::ReservedHeader { name: name.to_owned() }),
                "{name}"
            );
        }
    }

    #[test]
    fn extra_header_values_must_be_one_printable_ascii_line() {
        for bad in ["a\r\nBcc: x@evil.test", "a\nb", "a\rb"] {
            assert_eq!(
                check_extra_header("X-Foo", bad),
                Err(MimeError::LineBreakInHeader { name: "X-Foo".to_owned() })
            );
        }
        for bad in ["nul\0", "bell\x07", "del\x7f", "山田"] {
            assert_eq!(
                check_extra_header("X-Foo", bad),
                Err(MimeError::UnprintableHeaderValue { name: "X-Foo".to_owned() })
            );
        }
        assert_eq!(check_extra_header("X-Foo", "a\tb <c>"), Ok(()));
    }
}
