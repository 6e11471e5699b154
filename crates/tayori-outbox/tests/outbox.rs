//! The file outbox against a real temporary directory.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::MessageParser;
use tayori_app::ports::{EmailSender, SendError};
use tayori_domain::{
    DeliveryId, DisplayName, EmailAddress, EventType, Mailbox, OutgoingEmail, Subject, TenantId,
};
use tayori_outbox::{FileOutbox, OutboxConfig};

fn email(delivery_id: &str) -> OutgoingEmail {
    OutgoingEmail {
        delivery_id: DeliveryId::parse(delivery_id).unwrap(),
        tenant: TenantId::parse("acme-invest").unwrap(),
        event_type: EventType::parse("deposit.completed").unwrap(),
        from: Mailbox {
            address: EmailAddress::parse("noreply@acme.example.com").unwrap(),
            name: Some(DisplayName::parse("アクメ証券").unwrap()),
        },
        reply_to: None,
        to: Mailbox {
            address: EmailAddress::parse("taro.yamada@example.com").unwrap(),
            name: Some(DisplayName::parse("山田 太郎").unwrap()),
        },
        subject: Subject::parse("入金完了のお知らせ").unwrap(),
        html_body: "<p>入金を確認しました。</p>\n".to_owned(),
        text_body: "入金を確認しました。\n".to_owned(),
        sending: Default::default(),
        list_unsubscribe: None,
    }
}

const FIRST: &str = "0b6c2d8e-5f1a-5c3e-9d7b-2a4e6f8c0d1b";
const SECOND: &str = "7d1e3f5a-2b4c-5d6e-8f9a-0b1c2d3e4f5a";

fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

fn outbox(dir: &Path) -> FileOutbox {
    FileOutbox::new(OutboxConfig { dir: dir.to_path_buf() })
}

/// Every entry of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn two_emails_become_two_eml_files_that_parse() {
    let temp = tempfile::tempdir().unwrap();
    let outbox = outbox(temp.path());

    let first = outbox.send(&email(FIRST)).await.unwrap();
    let second = outbox.send(&email(SECOND)).await.unwrap();

    let names = entries(temp.path());
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&first.provider_message_id), "{names:?}");
    assert!(names.contains(&second.provider_message_id), "{names:?}");
    for (sent, delivery_id) in [(&first, FIRST), (&second, SECOND)] {
        let name = &sent.provider_message_id;
        // 20261127T100000Z-<delivery id>.eml
        let (stamp, rest) = name.split_once('-').unwrap();
        assert_eq!(stamp.len(), 16, "{name}");
        assert!(chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").is_ok(), "{name}");
        assert_eq!(rest, format!("{delivery_id}.eml"));

        let bytes = fs::read(temp.path().join(name)).unwrap();
        let message = MessageParser::default().parse(&bytes).expect("parses");
        assert_eq!(message.subject(), Some("入金完了のお知らせ"));
        assert_eq!(message.header_raw("X-Tayori-Delivery-Id").map(str::trim), Some(delivery_id));
        assert_eq!(
            message.to().and_then(|to| to.first()).and_then(|to| to.name()),
            Some("山田 太郎")
        );
        assert_eq!(message.body_text(0).as_deref(), Some("入金を確認しました。\r\n"));
    }
}

#[tokio::test]
async fn the_file_name_and_date_come_from_the_clock() {
    let temp = tempfile::tempdir().unwrap();
    let outbox = outbox(temp.path()).with_now(fixed_now);

    let sent = outbox.send(&email(FIRST)).await.unwrap();

    let name = format!("20261127T100000Z-{FIRST}.eml");
    assert_eq!(sent.provider_message_id, name);
    assert_eq!(entries(temp.path()), vec![name.clone()]);
    let bytes = fs::read(temp.path().join(&name)).unwrap();
    let message = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(message.date().map(|date| date.to_timestamp()), Some(fixed_now().timestamp()));
}

#[tokio::test]
async fn a_missing_directory_is_created() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("var").join("outbox");
    let outbox = outbox(&dir);
    assert_eq!(outbox.dir(), dir);

    let sent = outbox.send(&email(FIRST)).await.unwrap();

    assert_eq!(entries(&dir), vec![sent.provider_message_id]);
}

#[tokio::test]
async fn concurrent_sends_leave_only_complete_files() {
    let temp = tempfile::tempdir().unwrap();
    let outbox = Arc::new(outbox(temp.path()));
    let ids: Vec<String> =
        (0..8).map(|n| format!("00000000-0000-5000-8000-00000000000{n}")).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let outbox = Arc::clone(&outbox);
        tasks.spawn(async move { outbox.send(&email(&id)).await });
    }
    let mut sent = Vec::new();
    while let Some(result) = tasks.join_next().await {
        sent.push(result.unwrap().unwrap().provider_message_id);
    }
    sent.sort();

    let names = entries(temp.path());
    assert_eq!(names, sent, "exactly the reported files, no temporary ones");
    assert_eq!(names.len(), ids.len());
    for name in &names {
        assert!(name.ends_with(".eml") && !name.starts_with('.'), "{name}");
        let bytes = fs::read(temp.path().join(name)).unwrap();
        assert!(MessageParser::default().parse(&bytes).is_some(), "{name}");
    }
}

#[tokio::test]
async fn a_directory_that_cannot_be_written_is_unavailable() {
    let temp = tempfile::tempdir().unwrap();
    // A regular file where a directory should be: fails even for root, unlike permissions.
    let file = temp.path().join("not-a-directory");
    fs::write(&file, b"").unwrap();
    for dir in [file.clone(), file.join("outbox")] {
        let outbox = outbox(&dir);

        let error = outbox.send(&email(FIRST)).await.unwrap_err();

        assert!(
            matches!(&error, SendError::Unavailable { reason } if reason.contains("not-a-directory")),
            "{error:?}"
        );
        assert!(error.is_transient());
    }
    assert_eq!(entries(temp.path()), vec!["not-a-directory".to_owned()]);
}

#[tokio::test]
async fn a_file_is_never_overwritten_so_every_send_stays_visible() {
    let temp = tempfile::tempdir().unwrap();
    let outbox = outbox(temp.path()).with_now(fixed_now);
    // The same delivery twice in the same second (a resend, or a test counting duplicates).
    outbox.send(&email(FIRST)).await.unwrap();
    let second = outbox.send(&email(FIRST)).await.unwrap();

    let first = format!("20261127T100000Z-{FIRST}.eml");
    let copy = format!("20261127T100000Z-{FIRST}-2.eml");
    assert_eq!(second.provider_message_id, copy);
    let mut names = entries(temp.path());
    names.sort();
    let mut expected = vec![first, copy];
    expected.sort();
    assert_eq!(names, expected, "both files, and no temporary file left");
}

#[test]
fn config_deserializes_and_refuses_unknown_settings() {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        outbox: OutboxConfig,
    }
    let config: Wrapper =
        serde_json::from_str(r#"{"outbox": {"dir": "/var/tmp/outbox"}}"#).unwrap();
    assert_eq!(config.outbox.dir, Path::new("/var/tmp/outbox"));
    let typo = serde_json::from_str::<Wrapper>(r#"{"outbox": {"directory": "/x"}}"#);
    assert!(typo.is_err());
}
