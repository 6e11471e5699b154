//! Previews of the shipped templates: what `tayori dev` and the console show, with sensitive
//! variables masked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tayori_app::ports::{MessageClass, PreviewError, PreviewRequest, TemplatePreviews};
use tayori_domain::{EventType, Locale, TenantId};
use tayori_templates::TemplateSet;

fn shipped() -> PathBuf {
    manifest_dir().join("../../templates")
}

fn request(tenant: &str, event_type: &str, sample: &str, locale: Option<&str>) -> PreviewRequest {
    PreviewRequest {
        tenant: TenantId::parse(tenant).unwrap(),
        event_type: EventType::parse(event_type).unwrap(),
        sample: sample.to_owned(),
        locale: locale.map(|l| Locale::parse(l).unwrap()),
    }
}

#[test]
fn the_catalog_lists_every_tenant_event_type_sample_and_locale() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let catalog = set.catalog();
    assert_eq!(catalog.version.version, 1);
    let tenants: Vec<&str> = catalog.tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tenants, ["acme-bank", "acme-invest", "acme-pay"]);
    let bank = &catalog.tenants[0];
    assert_eq!(bank.events.len(), 6);
    let alert = bank.events.iter().find(|e| e.event_type.as_str() == "security.alert").unwrap();
    assert_eq!(alert.samples, ["limit-changed", "new-device"]);
    assert!(alert.accepted);
    let report =
        bank.events.iter().find(|e| e.event_type.as_str() == "report.monthly_ready").unwrap();
    assert_eq!(report.message_class, MessageClass::Subscription);
}

#[test]
fn a_preview_shows_headers_parts_and_masks_sensitive_variables() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let preview =
        set.preview(&request("acme-bank", "auth.password_reset", "default", Some("en"))).unwrap();
    let headers: Vec<(&str, &str)> =
        preview.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        headers,
        [
            ("From", "アクメ銀行 Acme Bank <notice@acme-bank.example>"),
            ("To", "田中 美咲 <misaki.tanaka@example.com>"),
            ("Reply-To", "help@acme-bank.example"),
            ("Subject", "[Acme Bank] Code to reset your password"),
            ("Message class", "transactional"),
            ("Locale", "en"),
            ("SES configuration set", "acme-bank-notices"),
            ("SES tenant", "acme-bank"),
            ("Masked variables", "code"),
        ]
    );
    // The sample's code is 905127: rendered into the email, masked in what is shown.
    for shown in [&preview.html, &preview.text, &preview.data_json] {
        assert!(!shown.contains("905127"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    assert!(preview.html.contains("<html lang=\"en\">"));
    assert!(!preview.text_generated);
    // The email itself (`tayori templates render`) is not masked.
    let email = set
        .render_sample(
            &TenantId::parse("acme-bank").unwrap(),
            &EventType::parse("auth.password_reset").unwrap(),
            "default",
            None,
        )
        .unwrap()
        .email;
    assert!(email.text.contains("905127"));
}

#[test]
fn a_number_variable_is_masked_as_formatted_too() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let preview =
        set.preview(&request("acme-bank", "account.deposit_completed", "salary", None)).unwrap();
    // balance 1204733 is shown as 1,204,733 円 in the email.
    for shown in [&preview.html, &preview.text] {
        assert!(!shown.contains("1,204,733"), "{shown}");
    }
    assert!(preview.text.contains("ご入金後の残高：***円"), "{}", preview.text);
    assert!(preview.data_json.contains("\"balance\": \"***\""), "{}", preview.data_json);
}

#[test]
fn unknown_names_are_not_found() {
    let set = TemplateSet::load(&shipped()).unwrap();
    for request in [
        request("nobody", "security.alert", "default", None),
        request("acme-bank", "nothing.here", "default", None),
        request("acme-bank", "security.alert", "nope", None),
    ] {
        assert!(matches!(set.preview(&request), Err(PreviewError::NotFound { .. })), "{request:?}");
    }
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
