//! The SES feedback parser over every fixture in `tests/fixtures/ses-events`: the shapes AWS
//! documents for event publishing, raw, SNS-wrapped and EventBridge-wrapped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use tayori_domain::{
    BounceType, DeliveryId, FeedbackEnvelope, FeedbackKind, FeedbackStatus, parse_feedback,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = manifest_dir().join("../../tests/fixtures/ses-events").join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const MESSAGE_ID: &str = "010001900a1b2c3d-4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8-000000";

#[test]
fn every_fixture_parses_to_its_kind_with_tags_and_message_id() {
    let bounce =
        |bounce_type, sub: &str| FeedbackKind::Bounce { bounce_type, sub_type: sub.into() };
    let cases = [
        ("send", FeedbackKind::Send, Some(FeedbackStatus::Sent)),
        ("delivery", FeedbackKind::Delivery, Some(FeedbackStatus::Delivered)),
        (
            "bounce-permanent",
            bounce(BounceType::Permanent, "General"),
            Some(FeedbackStatus::Bounced),
        ),
        (
            "bounce-transient",
            bounce(BounceType::Transient, "MailboxFull"),
            Some(FeedbackStatus::Bounced),
        ),
        (
            "complaint",
            FeedbackKind::Complaint { feedback_type: Some("abuse".into()) },
            Some(FeedbackStatus::Complained),
        ),
        ("reject", FeedbackKind::Reject { reason: "Bad content".into() }, None),
        (
            "delivery-delay",
            FeedbackKind::DeliveryDelay { delay_type: "TransientCommunicationFailure".into() },
            Some(FeedbackStatus::Delayed),
        ),
        (
            "rendering-failure",
            FeedbackKind::RenderingFailure {
                error: "Attribute 'name' is not present in the rendering data.".into(),
            },
            None,
        ),
        ("open", FeedbackKind::Open, None),
        (
            "click",
            FeedbackKind::Click { link: "https://acme-invest.example/deposits".into() },
            None,
        ),
        ("subscription", FeedbackKind::Subscription { unsubscribe_all: true }, None),
    ];
    let delivery = DeliveryId::parse("0b6c2d8e-5f1a-5c3e-9d7b-2a4e6f8c0d1b").unwrap();
    for (name, kind, status) in cases {
        let event = parse_feedback(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(event.kind, kind, "{name}");
        assert_eq!(event.kind.status(), status, "{name}");
        assert_eq!(event.envelope, FeedbackEnvelope::Raw, "{name}");
        assert_eq!(event.ses_message_id.as_deref(), Some(MESSAGE_ID), "{name}");
        assert_eq!(event.tenant.as_ref().map(|t| t.as_str()), Some("acme-invest"), "{name}");
        assert_eq!(event.delivery_id, Some(delivery), "{name}");
        let recipients: Vec<_> = event.recipients.iter().map(|r| r.as_str()).collect();
        assert_eq!(recipients, ["taro@example.com"], "{name}");
        assert!(event.occurred_at.is_some(), "{name}");
        assert!(event.identity.as_str().starts_with("sha256:"), "{name}");
    }
}

#[test]
fn only_permanent_bounces_and_complaints_suppress() {
    let suppresses = |name| parse_feedback(&fixture(name)).unwrap().kind.suppresses();
    assert!(suppresses("bounce-permanent"));
    assert!(suppresses("complaint"));
    for name in ["bounce-transient", "delivery", "delivery-delay", "send", "reject", "open"] {
        assert!(!suppresses(name), "{name}");
    }
    let kind = |name| parse_feedback(&fixture(name)).unwrap().kind;
    assert!(kind("bounce-transient").is_transient_bounce());
    assert!(!kind("bounce-permanent").is_transient_bounce());
    assert!(kind("subscription").unsubscribes(), "unsubscribeAll");
    assert!(!kind("subscription").suppresses(), "only subscription mail");
    let mut opt_in: serde_json::Value = serde_json::from_slice(&fixture("subscription")).unwrap();
    opt_in["subscription"]["newTopicPreferences"]["unsubscribeAll"] = false.into();
    let opt_in = parse_feedback(opt_in.to_string().as_bytes()).unwrap();
    assert!(!opt_in.kind.unsubscribes());
}

#[test]
fn wrapped_events_parse_like_raw_ones_with_the_envelope_id_as_identity() {
    let sns = parse_feedback(&fixture("sns-bounce-permanent")).unwrap();
    assert_eq!(sns.envelope, FeedbackEnvelope::Sns);
    assert_eq!(sns.identity.as_str(), "sns:5d8f2a1c-0000-4c7e-9a3b-6f1e2d3c4b5a");
    assert_eq!(sns.kind, parse_feedback(&fixture("bounce-permanent")).unwrap().kind);
    assert_eq!(sns.ses_message_id.as_deref(), Some(MESSAGE_ID));

    for name in ["complaint", "delivery"] {
        let wrapped = parse_feedback(&fixture(&format!("eventbridge-{name}"))).unwrap();
        assert_eq!(wrapped.envelope, FeedbackEnvelope::EventBridge);
        assert_eq!(wrapped.identity.as_str(), format!("eventbridge:a1b2c3d4-eventbridge-{name}"));
        assert_eq!(wrapped.kind, parse_feedback(&fixture(name)).unwrap().kind);
    }
}

#[test]
fn eventbridge_detail_type_names_the_event_when_the_detail_does_not() {
    let mut value: serde_json::Value =
        serde_json::from_slice(&fixture("eventbridge-delivery")).unwrap();
    value["detail"].as_object_mut().unwrap().remove("eventType");
    let event = parse_feedback(value.to_string().as_bytes()).unwrap();
    assert_eq!(event.kind, FeedbackKind::Delivery);
}

#[test]
fn malformed_events_are_invalid_with_a_reason_never_a_panic() {
    let base: serde_json::Value = serde_json::from_slice(&fixture("bounce-permanent")).unwrap();
    let mut unknown_type = base.clone();
    unknown_type["eventType"] = "Teleport".into();
    let mut bad_bounce = base.clone();
    bad_bounce["bounce"]["bounceType"] = "Soft".into();
    let mut no_ids = base.clone();
    no_ids["mail"].as_object_mut().unwrap().remove("messageId");
    no_ids["mail"].as_object_mut().unwrap().remove("tags");
    let mut no_mail = base.clone();
    no_mail.as_object_mut().unwrap().remove("mail");
    for (value, expected) in [
        (unknown_type, "unknown SES event type"),
        (bad_bounce, "unknown bounceType"),
        (no_ids, "no message id"),
        (no_mail, "no mail"),
    ] {
        let error = parse_feedback(value.to_string().as_bytes()).unwrap_err();
        assert!(error.reason.contains(expected), "{error}");
    }
    // Truncations of a real event at every length: invalid or valid, never a panic.
    let body = fixture("sns-bounce-permanent");
    for end in 0..body.len() {
        let _ = parse_feedback(&body[..end]);
    }
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
