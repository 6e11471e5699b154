//! Reloading: a reload swaps the whole set or keeps the last good one and says why; the watcher
//! reloads on file changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tayori_app::ports::{TemplatePreviews, TemplateRenderer, TenantDirectory};
use tayori_domain::{EventType, TenantId, decode_message_body};
use tayori_templates::ReloadableTemplates;

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn tenant(root: &Path, subject: &str) {
    write(
        root,
        "t1/tenant.toml",
        "from = \"a@t1.example\"\ndefault_locale = \"ja\"\nevent_types = [\"e1\"]\n",
    );
    write(root, "t1/e1/subject.txt", subject);
    write(root, "t1/e1/body.html", "<p>{{ x }}</p>");
    write(root, "t1/e1/samples/default.json", "{\"variables\": {\"x\": \"1\"}}");
}

fn subject(templates: &ReloadableTemplates) -> String {
    let event = decode_message_body(
        br#"{"specversion": "1.0", "id": "1", "source": "t1/s", "type": "e1", "tenant": "t1",
            "data": {"to": {"email": "a@example.com"}, "variables": {"x": "2"}}}"#,
    )
    .unwrap();
    let profile = templates.tenant(&TenantId::parse("t1").unwrap()).unwrap();
    templates.render(&profile, &event).unwrap().subject.as_str().to_owned()
}

#[test]
fn a_failed_reload_keeps_the_last_good_set_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    tenant(dir.path(), "first");
    let templates = ReloadableTemplates::load(dir.path()).unwrap();
    assert_eq!(templates.version().version, 1);
    assert_eq!(subject(&templates), "first");

    write(dir.path(), "t1/e1/subject.txt", "second");
    assert_eq!(templates.reload().unwrap(), 2);
    assert_eq!(subject(&templates), "second");

    write(dir.path(), "t1/e1/body.html", "<p>\n{{ x }</p>");
    let error = templates.reload().unwrap_err();
    assert!(error.to_string().ends_with("t1/e1/body.html:2: expected `or`, `and`, `not`, `<=`, `>=`, `<`, `>`, `==`, `!=`, `+`, `-`, `*`, `/`, `%`, a filter, or a variable end (`}}`) (column 6)"), "{error}");
    let version = templates.version();
    assert_eq!(version.version, 2, "the set in use did not change");
    assert_eq!(version.reload_error, Some(error.to_string()));
    assert_eq!(subject(&templates), "second");

    write(dir.path(), "t1/e1/body.html", "<p>{{ x }}</p>");
    write(dir.path(), "t1/e1/subject.txt", "third");
    assert_eq!(templates.reload().unwrap(), 3);
    assert_eq!(templates.version().reload_error, None);
    assert_eq!(subject(&templates), "third");
}

#[test]
fn a_render_keeps_the_set_it_started_with() {
    let dir = tempfile::tempdir().unwrap();
    tenant(dir.path(), "first");
    let templates = ReloadableTemplates::load(dir.path()).unwrap();
    let before = templates.current();
    write(dir.path(), "t1/e1/subject.txt", "second");
    templates.reload().unwrap();
    // The old set is still whole for whoever holds it.
    let t1 = TenantId::parse("t1").unwrap();
    let e1 = EventType::parse("e1").unwrap();
    assert_eq!(
        before.render_sample(&t1, &e1, "default", None).unwrap().email.subject.as_str(),
        "first"
    );
    assert_eq!(
        templates
            .current()
            .render_sample(&t1, &e1, "default", None)
            .unwrap()
            .email
            .subject
            .as_str(),
        "second"
    );
}

#[test]
fn the_watcher_reloads_when_a_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    tenant(dir.path(), "first");
    let templates = Arc::new(ReloadableTemplates::load(dir.path()).unwrap());
    let watcher = templates.watch().unwrap();
    write(dir.path(), "t1/e1/subject.txt", "edited");
    let deadline = Instant::now() + Duration::from_secs(10);
    while templates.version().version < 2 {
        assert!(Instant::now() < deadline, "no reload within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(subject(&templates), "edited");
    // Reading the files for the reload did not trigger another one.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(templates.version().version, 2);
    drop(watcher);
}
