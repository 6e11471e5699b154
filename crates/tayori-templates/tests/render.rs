//! Rendering: the shipped `templates/` with the contract's example event, and small template
//! sets written to a temporary directory for the rules (escaping, strictness, schemas, subject
//! lines, `get_env`, generated text, sensitive variables).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tayori_app::ports::{
    MessageClass, RenderError, RenderedEmail, TemplateRenderer, TenantDirectory,
};
use tayori_domain::{Event, EventType, TenantId, decode_message_body};
use tayori_templates::TemplateSet;

/// The example of `docs/contract.md`, verbatim.
const CONTRACT_EXAMPLE: &str = r#"{
  "specversion": "1.0",
  "id": "01JD8Z6Q7K2V4X9M3N5P1R0T8W",
  "source": "acme-invest/accounts",
  "type": "account.deposit_completed",
  "time": "2026-11-27T10:00:00Z",
  "tenant": "acme-invest",
  "datacontenttype": "application/json",
  "data": {
    "to": { "email": "taro.yamada@example.com", "name": "山田 太郎", "locale": "ja" },
    "variables": { "amount": 50000, "currency": "JPY", "deposited_at": "2026-11-27T09:58:00+09:00" }
  }
}"#;

fn shipped() -> PathBuf {
    manifest_dir().join("../../templates")
}

fn example() -> Value {
    serde_json::from_str(CONTRACT_EXAMPLE).unwrap()
}

fn event(envelope: &Value) -> Event {
    decode_message_body(envelope.to_string().as_bytes()).unwrap()
}

/// The contract example with `data.to.locale` replaced (`None` removes it).
fn example_with_locale(locale: Option<&str>) -> Event {
    let mut envelope = example();
    match locale {
        Some(locale) => envelope["data"]["to"]["locale"] = json!(locale),
        None => {
            envelope["data"]["to"].as_object_mut().unwrap().remove("locale");
        }
    }
    event(&envelope)
}

fn render(set: &TemplateSet, event: &Event) -> Result<RenderedEmail, RenderError> {
    let profile = set.tenant(&event.key.tenant).unwrap();
    set.render(&profile, event)
}

fn template_reason(result: Result<RenderedEmail, RenderError>) -> String {
    match result {
        Err(RenderError::Template { reason }) => reason,
        other => panic!("expected RenderError::Template, got {other:?}"),
    }
}

const JA_SUBJECT: &str = "【Acme Invest】ご入金が完了しました";
const EN_SUBJECT: &str = "[Acme Invest] Your deposit has been completed";

#[test]
fn shipped_templates_load_with_the_three_demo_tenants() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let ids: Vec<&str> = set.tenants().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["acme-bank", "acme-invest", "acme-pay"]);
    let six = [
        "account.deposit_completed",
        "account.email_verification",
        "account.withdrawal_requested",
        "auth.password_reset",
        "report.monthly_ready",
        "security.alert",
    ];
    // The two financial tenants send the same six types in Japanese and English; Acme Pay
    // (onboarded by docs/tenancy.md) sends two, in English only.
    let expected: [(&str, &[&str], &[&str]); 3] = [
        ("acme-bank", &six, &["en", "ja"]),
        ("acme-invest", &six, &["en", "ja"]),
        ("acme-pay", &["payment.received", "payment.refunded"], &["en"]),
    ];
    for (id, event_types, locales) in expected {
        let tenant = TenantId::parse(id).unwrap();
        let types: Vec<&str> = set.event_types(&tenant).map(|t| t.as_str()).collect();
        assert_eq!(types, event_types, "{id}");
        for event_type in set.event_types(&tenant) {
            assert!(set.accepts(&tenant, event_type), "{id} {event_type}");
            let found: Vec<String> =
                set.locales(&tenant, event_type).iter().map(ToString::to_string).collect();
            assert_eq!(found, locales, "{id} {event_type}");
            assert!(!set.samples(&tenant, event_type).is_empty());
        }
    }

    let acme = TenantId::parse("acme-invest").unwrap();
    let profile = set.tenant(&acme).unwrap();
    assert_eq!(profile.from.address.as_str(), "no-reply@acme-invest.example");
    assert_eq!(profile.from.name.as_ref().unwrap().as_str(), "Acme Invest");
    assert_eq!(profile.reply_to.as_ref().unwrap().address.as_str(), "support@acme-invest.example");
    assert_eq!(profile.default_locale.as_str(), "ja");

    let bank = set.tenant(&TenantId::parse("acme-bank").unwrap()).unwrap();
    assert_eq!(bank.sending.configuration_set.as_deref(), Some("acme-bank-notices"));
    assert_eq!(bank.sending.provider_tenant.as_deref(), Some("acme-bank"));
    assert_eq!(bank.max_send_rate, Some(10));

    let pay = set.tenant(&TenantId::parse("acme-pay").unwrap()).unwrap();
    assert_eq!(pay.from.address.as_str(), "receipts@acme-pay.example");
    assert_eq!(pay.default_locale.as_str(), "en");
    assert_eq!(pay.sending.configuration_set.as_deref(), Some("acme-pay-receipts"));
    assert_eq!(pay.sending.provider_tenant.as_deref(), Some("acme-pay"));
    assert_eq!(pay.max_send_rate, Some(5));
    assert_eq!(pay.weight, 1);
    // Bound to moto's fixed SenderId and its own sources (docs/tenancy.md); the two financial
    // tenants list neither, so the worker warns about them at start.
    assert_eq!(
        pay.publishers.producers.as_deref(),
        Some(&["AIDAIT2UOQQY3AUEKVGXU".to_owned()][..])
    );
    assert_eq!(pay.publishers.sources.as_deref(), Some(&["acme-pay/".to_owned()][..]));
    assert!(bank.publishers.is_open());

    assert!(set.tenant(&TenantId::parse("nobody").unwrap()).is_none());
    assert_eq!(set.event_types(&TenantId::parse("nobody").unwrap()).count(), 0);
}

#[test]
fn renders_the_contract_example_in_japanese() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let email = render(&set, &event(&example())).unwrap();
    assert_eq!(email.subject.as_str(), JA_SUBJECT);
    assert_eq!(email.locale.as_str(), "ja");
    assert_eq!(email.message_class, MessageClass::Transactional);
    for part in [&email.html, &email.text] {
        assert!(part.contains("山田 太郎 様"), "{part}");
        assert!(part.contains("50,000円"), "{part}");
        assert!(part.contains("2026年11月27日 09:58"), "{part}");
    }
    assert!(email.html.starts_with("<!DOCTYPE html>"));
    assert!(email.html.contains(r#"<html lang="ja">"#));
    assert!(!email.text.contains('<'), "{}", email.text);
}

#[test]
fn the_stylesheet_is_inlined_at_load() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let email = render(&set, &event(&example())).unwrap();
    // From acme-invest/_layouts/style.css, into the layout and into the body's own elements.
    assert!(
        email
            .html
            .contains(r#"<td class="header" style="padding: 20px 32px;background-color: #0b3d6e;"#),
        "{}",
        email.html
    );
    assert!(
        email.html.contains(r#"<p style="margin: 0 0 16px;">山田 太郎 様</p>"#),
        "{}",
        email.html
    );
    // Into the shared macros too, with this tenant's colours.
    let sample = set
        .render_sample(
            &TenantId::parse("acme-invest").unwrap(),
            &EventType::parse("auth.password_reset").unwrap(),
            "default",
            None,
        )
        .unwrap();
    assert!(
        sample.email.html.contains(
            r#"<td class="button-cell" style="border-radius: 4px;background-color: #0b3d6e;">"#
        ),
        "{}",
        sample.email.html
    );
    // @media rules cannot be inlined: they stay in a <style>.
    assert!(email.html.contains("@media only screen and (max-width: 620px)"));
}

#[test]
fn renders_the_contract_example_in_english() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let email = render(&set, &example_with_locale(Some("en"))).unwrap();
    assert_eq!(email.subject.as_str(), EN_SUBJECT);
    assert_eq!(email.locale.as_str(), "en");
    for part in [&email.html, &email.text] {
        assert!(part.contains("Dear 山田 太郎,"), "{part}");
        assert!(part.contains("JPY 50,000"), "{part}");
        assert!(part.contains("November 27, 2026, 09:58"), "{part}");
    }
    assert!(email.html.contains(r#"<html lang="en">"#));
}

#[test]
fn falls_back_through_the_locale_chain() {
    let set = TemplateSet::load(&shipped()).unwrap();
    // (recipient locale, expected locale used, expected subject)
    let cases = [
        (Some("ja-JP"), "ja", JA_SUBJECT),
        (Some("en-US"), "en", EN_SUBJECT),
        (None, "ja", JA_SUBJECT),
        (Some("fr"), "ja", JA_SUBJECT),
    ];
    for (locale, used, subject) in cases {
        let email = render(&set, &example_with_locale(locale)).unwrap();
        assert_eq!(email.locale.as_str(), used, "{locale:?}");
        assert_eq!(email.subject.as_str(), subject, "{locale:?}");
        assert!(email.html.contains("50,000"), "{locale:?}");
        assert!(email.text.contains("50,000"), "{locale:?}");
        assert!(email.html.contains("山田 太郎"), "{locale:?}");
    }
}

#[test]
fn a_tenant_s_fallback_locales_come_before_its_default() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let bank = TenantId::parse("acme-bank").unwrap();
    let welcome = EventType::parse("account.email_verification").unwrap();
    // The sample's recipient is fr-FR: acme-bank falls back to English, not to its default.
    let french = set.render_sample(&bank, &welcome, "foreign-resident", None).unwrap();
    assert_eq!(french.email.locale.as_str(), "en");
    assert_eq!(french.email.subject.as_str(), "[Acme Bank] Your verification code");
    // A recipient without a locale gets the default.
    let mut data = json!({ "to": { "email": "a@example.com" }, "variables": { "code": "123456", "expires_in_minutes": 5 } });
    let none = set.render_data(&bank, &welcome, &data, None).unwrap();
    assert_eq!(none.email.locale.as_str(), "ja");
    data["to"]["locale"] = json!("fr");
    let fr = set.render_data(&bank, &welcome, &data, None).unwrap();
    assert_eq!(fr.email.locale.as_str(), "en");
}

#[test]
fn greets_recipients_without_a_name() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let mut envelope = example();
    envelope["data"]["to"].as_object_mut().unwrap().remove("name");
    let email = render(&set, &event(&envelope)).unwrap();
    assert!(email.text.starts_with("お客様\n"), "{}", email.text);
}

#[test]
fn html_is_escaped_and_text_is_not_in_the_shipped_templates() {
    let set = TemplateSet::load(&shipped()).unwrap();
    for locale in ["ja", "en"] {
        let mut envelope = example();
        envelope["data"]["to"]["locale"] = json!(locale);
        envelope["data"]["to"]["name"] = json!("<script>alert(1)</script>");
        let email = render(&set, &event(&envelope)).unwrap();
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(
            email.html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{}",
            email.html
        );
        assert!(email.text.contains("<script>alert(1)</script>"), "{}", email.text);
    }
    // Through a shared macro (the button's link and label) as well.
    let bank = TenantId::parse("acme-bank").unwrap();
    let statement = EventType::parse("report.monthly_ready").unwrap();
    let data = json!({
        "to": { "email": "a@example.com", "locale": "en" },
        "variables": {
            "period_start": "2026-10-01",
            "statement_url": "https://x.example/\"><script>alert(1)</script>",
            "unsubscribe_url": "https://x.example/u"
        }
    });
    let email = set.render_data(&bank, &statement, &data, None).unwrap().email;
    assert!(!email.html.contains("<script>"), "{}", email.html);
    assert!(email.html.contains("&quot;&gt;&lt;script&gt;"), "{}", email.html);
}

#[test]
fn a_schema_mismatch_at_send_time_is_a_template_error_without_the_value() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let mut envelope = example();
    envelope["data"]["variables"]["amount"] = json!("a lot of yen");
    let reason = template_reason(render(&set, &event(&envelope)));
    assert!(
        reason.starts_with("acme-invest/account.deposit_completed/schema.json: the event's variables do not match the schema: /amount: "),
        "{reason}"
    );
    assert!(!reason.contains("a lot of yen"), "values are masked: {reason}");
    envelope["data"]["variables"].as_object_mut().unwrap().remove("deposited_at");
    let reason = template_reason(render(&set, &event(&envelope)));
    assert!(reason.contains("deposited_at"), "{reason}");
}

#[test]
fn an_event_type_not_accepted_is_no_template() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[("subject.txt", "s"), ("body.html", "h"), ("samples/default.json", "{}")],
    );
    let toml = dir.path().join("t1/tenant.toml");
    let text = fs::read_to_string(&toml).unwrap().replace("[\"e1\"]", "[\"e2\"]");
    fs::write(&toml, text).unwrap();
    fs::create_dir_all(dir.path().join("t1/e2/samples")).unwrap();
    for (name, content) in
        [("subject.txt", "s2"), ("body.html", "h2"), ("samples/default.json", "{}")]
    {
        fs::write(dir.path().join("t1/e2").join(name), content).unwrap();
    }
    let set = TemplateSet::load(dir.path()).unwrap();
    let t1 = TenantId::parse("t1").unwrap();
    assert!(!set.accepts(&t1, &EventType::parse("e1").unwrap()));
    match render(&set, &t1_event(None, json!({}))) {
        Err(RenderError::NoTemplate { tenant, event_type }) => {
            assert_eq!((tenant.as_str(), event_type.as_str()), ("t1", "e1"));
        }
        other => panic!("expected NoTemplate, got {other:?}"),
    }
    // Still checked and previewable.
    let sample = set.render_sample(&t1, &EventType::parse("e1").unwrap(), "default", None).unwrap();
    assert_eq!(sample.email.subject.as_str(), "s");
}

#[test]
fn undefined_variable_names_the_file_the_line_and_the_variable() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let mut envelope = example();
    envelope["data"]["variables"] =
        json!({ "amount": 1, "currency": "JPY", "deposited_at": "2026-11-27T09:58:00+09:00" });
    envelope["type"] = json!("account.withdrawal_requested");
    let reason = template_reason(render(&set, &event(&envelope)));
    // The schema says what is missing first.
    assert!(reason.contains("schema.json"), "{reason}");

    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "s"),
            (
                "body.html",
                "<p>{{ to.name }}</p>\n<p>\n  {{ amount }} {{ deposited_at | date(format=\"%Y\") }}\n</p>",
            ),
            ("body.txt", "t"),
            (
                "samples/default.json",
                r#"{"variables": {"amount": 1, "deposited_at": "2026-11-27T09:58:00+09:00"}}"#,
            ),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let reason = template_reason(render(&set, &t1_event(None, json!({ "amount": 5 }))));
    assert_eq!(
        reason,
        "t1/e1/body.html:3: variable `deposited_at` is not defined (if it is optional, test it \
         with `{% if deposited_at is defined %}` or give it a `default`)"
    );
}

#[test]
fn undefined_variable_in_a_layout_or_partial_names_that_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "s"),
            (
                "body.html",
                "{% extends \"_layouts/base.html\" %}\n{% block content %}{% include \"_partials/p.html\" %}{% endblock %}",
            ),
            ("samples/default.json", r#"{"variables": {"brand": "B", "x": "1"}}"#),
        ],
    );
    write(
        dir.path(),
        "t1/_layouts/base.html",
        "<html><body>\n<h1>{{ brand }}</h1>\n{% block content %}{% endblock %}\n</body></html>",
    );
    write(dir.path(), "t1/_partials/p.html", "<p>\n\n{{ x }}</p>");
    let set = TemplateSet::load(dir.path()).unwrap();
    let reason = template_reason(render(&set, &t1_event(None, json!({ "x": "1" }))));
    assert!(
        reason.starts_with("t1/_layouts/base.html:2: variable `brand` is not defined"),
        "{reason}"
    );
    let reason = template_reason(render(&set, &t1_event(None, json!({ "brand": "B" }))));
    assert!(reason.starts_with("t1/_partials/p.html:3: variable `x` is not defined"), "{reason}");
}

#[test]
fn unknown_event_type_is_no_template() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let mut envelope = example();
    envelope["type"] = json!("account.withdrawal_completed");
    match render(&set, &event(&envelope)) {
        Err(RenderError::NoTemplate { tenant, event_type }) => {
            assert_eq!(tenant, "acme-invest");
            assert_eq!(event_type, "account.withdrawal_completed");
        }
        other => panic!("expected NoTemplate, got {other:?}"),
    }
}

#[test]
fn unknown_tenant_is_no_template() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let mut profile = (*set.tenant(&TenantId::parse("acme-invest").unwrap()).unwrap()).clone();
    profile.id = TenantId::parse("other-product").unwrap();
    let result = set.render(&profile, &event(&example()));
    assert!(matches!(result, Err(RenderError::NoTemplate { .. })), "{result:?}");
}

#[test]
fn sensitive_variables_are_declared_per_event_type_and_masked_in_errors() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let bank = TenantId::parse("acme-bank").unwrap();
    let reset = EventType::parse("auth.password_reset").unwrap();
    assert_eq!(set.sensitive_variables(&bank, &reset), ["code"]);
    assert!(
        set.sensitive_variables(&bank, &EventType::parse("account.withdrawal_requested").unwrap())
            .is_empty()
    );
    assert!(set.sensitive_variables(&TenantId::parse("nobody").unwrap(), &reset).is_empty());

    // A filter error quotes the value; the reason must not.
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "s"),
            ("body.html", "{{ code | number_format }}"),
            ("event.toml", "sensitive_variables = [\"code\"]"),
            ("samples/default.json", r#"{"variables": {"code": "123456"}}"#),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let reason = template_reason(render(&set, &t1_event(None, json!({ "code": "98x765" }))));
    assert!(reason.starts_with("t1/e1/body.html:1: "), "{reason}");
    assert!(!reason.contains("98x765"), "{reason}");
    assert!(reason.contains("***"), "{reason}");
}

/// Writes `content` at `path` under `root`.
fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Writes a tenant `t1` (default locale `ja`, accepting `e1`) with one event type `e1` from
/// `(file, content)`; a sample `default` is added when none is given.
fn write_tenant(root: &Path, files: &[(&str, &str)]) {
    write(
        root,
        "t1/tenant.toml",
        "from = \"no-reply@t1.example\"\nfrom_name = \"T1\"\ndefault_locale = \"ja\"\nevent_types = [\"e1\"]\n",
    );
    for (name, content) in files {
        write(root, &format!("t1/e1/{name}"), content);
    }
    if !files.iter().any(|(name, _)| name.starts_with("samples/")) {
        write(root, "t1/e1/samples/default.json", "{\"variables\": {\"x\": \"sample\"}}");
    }
}

fn t1_event(locale: Option<&str>, variables: Value) -> Event {
    let mut to = json!({ "email": "a@example.com", "name": "Aiko" });
    if let Some(locale) = locale {
        to["locale"] = json!(locale);
    }
    event(&json!({
        "specversion": "1.0",
        "id": "1",
        "source": "t1/tests",
        "type": "e1",
        "time": "2026-11-27T10:00:00Z",
        "tenant": "t1",
        "data": { "to": to, "variables": variables }
    }))
}

#[test]
fn a_variable_holding_markup_is_escaped_only_in_html() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "Hello {{ x }}"),
            ("body.html", "<p>{{ x }}</p>"),
            ("body.txt", "{{ x }}"),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let email = render(&set, &t1_event(None, json!({ "x": "<script>alert(1)</script>" }))).unwrap();
    assert_eq!(email.html, "<p>&lt;script&gt;alert(1)&lt;&#x2F;script&gt;</p>");
    assert_eq!(email.text, "<script>alert(1)</script>");
    assert_eq!(email.subject.as_str(), "Hello <script>alert(1)</script>");
    // Locale-neutral templates report the tenant's default locale.
    assert_eq!(email.locale.as_str(), "ja");
}

#[test]
fn html_is_escaped_whatever_the_layouts_and_partials_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "s"),
            (
                "body.html",
                "{% extends \"_layouts/base.txt\" %}{% block b %}{% include \"_partials/p.txt\" %}{% endblock %}",
            ),
            (
                "body.txt",
                "{% extends \"_layouts/base.txt\" %}{% block b %}{% include \"_partials/p.txt\" %}{% endblock %}",
            ),
        ],
    );
    write(dir.path(), "t1/_layouts/base.txt", "[{{ x }}]{% block b %}{% endblock %}");
    write(dir.path(), "t1/_partials/p.txt", "({{ x }})");
    let set = TemplateSet::load(dir.path()).unwrap();
    let email = render(&set, &t1_event(None, json!({ "x": "<script>" }))).unwrap();
    assert_eq!(email.html, "[&lt;script&gt;](&lt;script&gt;)");
    assert_eq!(email.text, "[<script>](<script>)");
}

#[test]
fn the_text_part_is_generated_from_the_html_when_there_is_no_text_template() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.ja.txt", "件名"),
            ("body.ja.html", "<p>本文 {{ x }}</p>"),
            ("body.ja.txt", "本文"),
            ("subject.en.txt", "Subject"),
            (
                "body.en.html",
                "<html><head><title>T</title></head><body><h1>Hello</h1><p>Body <a href=\"https://x.example/a\">link</a> {{ x }}</p></body></html>",
            ),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let email = render(&set, &t1_event(Some("en-US"), json!({ "x": "<b>" }))).unwrap();
    assert_eq!((email.subject.as_str(), email.locale.as_str()), ("Subject", "en"));
    // Never the Japanese text: the English HTML, as text.
    assert_eq!(email.text, "# Hello\n\nBody [link][1] <b>\n\n[1]: https://x.example/a\n");
    let email = render(&set, &t1_event(Some("ja"), json!({ "x": "1" }))).unwrap();
    assert_eq!(email.text, "本文");
}

#[test]
fn get_env_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "s"),
            ("body.html", r#"{% if x %}{{ get_env(name="PATH", default="none") }}{% endif %}"#),
            ("body.txt", "t"),
            ("samples/default.json", r#"{"variables": {"x": false}}"#),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let reason = template_reason(render(&set, &t1_event(None, json!({ "x": true }))));
    assert!(reason.starts_with("t1/e1/body.html:1: "), "{reason}");
    assert!(reason.contains("`get_env` is disabled"), "{reason}");
}

#[test]
fn reserved_keys_win_over_variables() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "{{ tenant.from_name }} {{ event.type }}"),
            (
                "body.html",
                "{{ to.email }}|{{ to.name }}|{{ to.locale }}|{{ event.id }}|{{ event.source }}|\
                 {{ event.time }}|{{ event.tenant }}|{{ tenant.id }}|{{ tenant.from }}|{{ other }}",
            ),
            ("body.txt", "{{ to.name }}"),
            (
                "samples/default.json",
                r#"{"to": {"email": "a@example.com", "name": "A", "locale": "ja"}, "variables": {"other": "o"}}"#,
            ),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let variables = json!({ "to": "overridden", "tenant": 1, "event": [], "other": "kept" });
    let email = render(&set, &t1_event(Some("ja-JP"), variables)).unwrap();
    assert_eq!(email.subject.as_str(), "T1 e1");
    assert_eq!(
        email.html,
        "a@example.com|Aiko|ja-JP|1|t1&#x2F;tests|2026-11-27T10:00:00+00:00|t1|t1|no-reply@t1.example|kept"
    );
    assert_eq!(email.text, "Aiko");
}

#[test]
fn an_invalid_subject_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[("subject.ja.txt", "{{ x }}"), ("body.ja.html", "h"), ("body.ja.txt", "t")],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let reason = template_reason(render(&set, &t1_event(None, json!({ "x": "two\nlines" }))));
    assert!(reason.starts_with("t1/e1/subject.ja.txt:1: "), "{reason}");
    assert!(reason.contains("one line"), "{reason}");
    let reason = template_reason(render(&set, &t1_event(None, json!({ "x": "  " }))));
    assert!(reason.contains("subject is empty"), "{reason}");
    let reason = template_reason(render(&set, &t1_event(None, json!({ "x": "あ".repeat(999) }))));
    assert!(reason.contains("999 characters, more than 998"), "{reason}");
    let ok = render(&set, &t1_event(None, json!({ "x": "あ".repeat(998) }))).unwrap();
    assert_eq!(ok.subject.as_str().chars().count(), 998);
}

#[test]
fn number_format_and_date_in_templates() {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "{{ amount | number_format }}"),
            (
                "body.html",
                r#"{{ price | number_format }} {{ at | date(format="%Y-%m-%d %H:%M", timezone="Asia/Tokyo") }}"#,
            ),
            ("body.txt", "{{ text_amount | number_format }}"),
            (
                "samples/default.json",
                r#"{"variables": {"amount": 1, "price": 2, "text_amount": "3", "at": "2026-11-27T00:58:00Z"}}"#,
            ),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let variables = json!({
        "amount": 50000, "price": 1234.5, "text_amount": "9876543.21", "at": "2026-11-27T00:58:00Z"
    });
    let email = render(&set, &t1_event(None, variables)).unwrap();
    assert_eq!(email.subject.as_str(), "50,000");
    assert_eq!(email.html, "1,234.5 2026-11-27 09:58");
    assert_eq!(email.text, "9,876,543.21");
}

#[test]
fn the_message_class_comes_from_event_toml() {
    let set = TemplateSet::load(&shipped()).unwrap();
    for tenant in ["acme-invest", "acme-bank"] {
        let rendered = set
            .render_sample(
                &TenantId::parse(tenant).unwrap(),
                &EventType::parse("report.monthly_ready").unwrap(),
                "default",
                None,
            )
            .unwrap();
        assert_eq!(rendered.email.message_class, MessageClass::Subscription, "{tenant}");
        assert!(rendered.text_generated, "{tenant}: the monthly reports have no text template");
        assert!(rendered.email.text.contains("https://"), "{}", rendered.email.text);
    }
}

#[test]
fn a_tenant_without_its_own_layout_gets_the_shared_one_and_its_stylesheet() {
    let dir = tempfile::tempdir().unwrap();
    for file in
        ["_layouts/base.html", "_layouts/base.txt", "_layouts/style.css", "_partials/macros.html"]
    {
        let content = fs::read_to_string(shipped().join("_shared").join(file)).unwrap();
        write(dir.path(), &format!("_shared/{file}"), &content);
    }
    write_tenant(
        dir.path(),
        &[
            ("subject.txt", "s"),
            (
                "body.html",
                "{% extends \"_layouts/base.html\" %}{% import \"_partials/macros.html\" as ui %}\
                 {% block content %}<p>{{ x }}</p>{{ ui::button(url=\"https://x.example/\", label=\"Go\") }}{% endblock %}",
            ),
            (
                "body.txt",
                "{% extends \"_layouts/base.txt\" %}{% block content %}{{ x }}{% endblock %}",
            ),
        ],
    );
    let set = TemplateSet::load(dir.path()).unwrap();
    let email = render(&set, &t1_event(None, json!({ "x": "hello" }))).unwrap();
    assert!(
        email.html.contains("<td class=\"header\" style=\"padding: 20px 32px;"),
        "{}",
        email.html
    );
    assert!(email.html.contains(">T1</td>"), "{}", email.html);
    assert!(email.html.contains("<p style=\"margin: 0 0 16px;\">hello</p>"), "{}", email.html);
    assert!(
        email.html.contains("style=\"display: inline-block;padding: 12px 24px;"),
        "{}",
        email.html
    );
    assert_eq!(email.text, "hello\n――――――――――――――――――――\nT1\n");
}

#[test]
fn the_message_class_comes_from_event_toml_and_defaults_to_transactional() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let bank = TenantId::parse("acme-bank").unwrap();
    let class = |event_type: &str| set.message_class(&bank, &EventType::parse(event_type).unwrap());
    assert_eq!(class("report.monthly_ready"), MessageClass::Subscription);
    assert_eq!(class("account.deposit_completed"), MessageClass::Transactional);
    assert_eq!(class("no.such_event"), MessageClass::Transactional);
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
