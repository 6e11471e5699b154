//! Loading: every problem in a broken templates directory is reported, each with its path and,
//! for a file, its line.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use tayori_templates::{LoadError, TemplateSet};

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

const TENANT: &str = "from = \"a@b.example\"\ndefault_locale = \"ja\"\nevent_types = [\"e1\"]\n";

fn good_tenant(root: &Path, tenant: &str) {
    write(root, &format!("{tenant}/tenant.toml"), TENANT);
    write(root, &format!("{tenant}/e1/subject.ja.txt"), "s");
    write(root, &format!("{tenant}/e1/body.ja.html"), "h");
    write(root, &format!("{tenant}/e1/body.ja.txt"), "t");
    write(root, &format!("{tenant}/e1/samples/default.json"), "{}");
}

fn load_err(root: &Path) -> LoadError {
    match TemplateSet::load(root) {
        Ok(set) => panic!("expected a load error, got {set:?}"),
        Err(error) => error,
    }
}

/// The report's lines with the temporary directory replaced by `<dir>`.
fn lines(root: &Path, error: &LoadError) -> Vec<String> {
    let prefix = format!("{}/", root.display());
    error.to_string().lines().map(|line| line.replace(&prefix, "<dir>/")).collect()
}

/// `location` is `path` or `path:line`.
fn assert_has(lines: &[String], location: &str, fragment: &str) {
    let prefix = format!("<dir>/{location}: ");
    assert!(
        lines.iter().any(|line| line.starts_with(&prefix) && line.contains(fragment)),
        "no line for {location} containing {fragment:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_good_directory_loads_and_skips_notes_and_hidden_entries() {
    let dir = tempfile::tempdir().unwrap();
    good_tenant(dir.path(), "t1");
    write(dir.path(), "README.md", "# notes");
    write(dir.path(), ".git/config", "junk");
    write(dir.path(), "_shared/README.md", "# notes");
    write(dir.path(), "_shared/_partials/p.html", "<b>{{ x }}</b>");
    write(dir.path(), "t1/e1/.body.ja.html.swp", "junk");
    write(dir.path(), "t1/e1/samples/notes.md", "notes");
    write(dir.path(), "t1/notes.md", "notes");
    let set = TemplateSet::load(dir.path()).unwrap();
    assert_eq!(set.tenants().count(), 1);
}

#[test]
fn reports_every_problem_with_its_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A fine tenant, whose presence must not hide the others' problems.
    good_tenant(root, "good");
    // A tenant.toml with an unknown key.
    good_tenant(root, "typo");
    write(root, "typo/tenant.toml", &format!("{TENANT}from_nmae = \"X\"\n"));
    // A tenant.toml with two bad values, and an event type missing its HTML body.
    write(
        root,
        "bad/tenant.toml",
        "from = \"nobody\"\ndefault_locale = \"ja_JP\"\nevent_types = [\"e1\"]\n",
    );
    write(root, "bad/e1/subject.ja.txt", "s");
    write(root, "bad/e1/body.ja.txt", "t");
    write(root, "bad/e1/samples/default.json", "{}");
    // No tenant.toml (so the checks that need its default locale are skipped); a broken
    // template; an unexpected file.
    write(root, "bare/e1/subject.ja.txt", "s");
    write(root, "bare/e1/body.ja.html", "h");
    write(root, "bare/e1/samples/default.json", "{}");
    write(root, "bare/e2/subject.ja.txt", "ok\n{{ unclosed");
    write(root, "bare/e2/body.ja.html", "h");
    write(root, "bare/e2/body.ja.htm", "h");
    write(root, "bare/e2/samples/default.json", "{}");
    // Names that are not tenants or event types.
    write(root, "Not_A_Tenant/tenant.toml", "");
    good_tenant(root, "names");
    write(root, "names/Bad Type/subject.txt", "s");
    // The default locale has no template; a text body that no HTML goes with; an empty event
    // directory; no samples; a listed event type without a directory.
    good_tenant(root, "nodefault");
    write(
        root,
        "nodefault/tenant.toml",
        "from = \"a@b.example\"\ndefault_locale = \"ja\"\nevent_types = [\n  \"e1\",\n  \"e9\",\n]\n",
    );
    write(root, "nodefault/e2/subject.en.txt", "s");
    write(root, "nodefault/e2/body.en.html", "h");
    write(root, "nodefault/e2/samples/default.json", "{}");
    write(root, "nodefault/e3/subject.txt", "s");
    write(root, "nodefault/e3/body.html", "h");
    write(root, "nodefault/e3/body.en-US.txt", "t");
    write(root, "nodefault/e3/samples/default.json", "{}");
    write(root, "nodefault/e4/.keep", "");
    write(root, "nodefault/e5/subject.ja.txt", "s");
    write(root, "nodefault/e5/body.ja.html", "h");
    // Reserved directories that do not exist, and layouts with a bad name.
    write(root, "_layouts/base.html", "x");
    write(root, "good/_layout/base.html", "x");
    write(root, "good/_partials/Button.htm", "x");

    let error = load_err(root);
    let lines = lines(root, &error);
    assert_eq!(lines.len(), error.problems().len(), "one problem per line:\n{}", lines.join("\n"));
    assert_has(&lines, "typo/tenant.toml:4", "unknown field `from_nmae`");
    assert_has(&lines, "bad/tenant.toml:1", "from: address must contain exactly one '@'");
    assert_has(&lines, "bad/tenant.toml:2", "default_locale: locale must be a BCP 47 tag");
    assert_has(&lines, "bad/e1/body.ja.html", "missing: subject.ja.txt needs an HTML body");
    assert_has(&lines, "bare/tenant.toml", "missing");
    assert_has(&lines, "bare/e2/subject.ja.txt:2", "expected");
    assert_has(&lines, "bare/e2/body.ja.htm:1", "unexpected file");
    assert_has(&lines, "Not_A_Tenant", "directory name is not a tenant id");
    assert_has(&lines, "names/Bad Type", "directory name is not an event type");
    assert_has(&lines, "nodefault/tenant.toml:5", "e9 is listed but has no directory");
    assert_has(&lines, "nodefault/e2", "no template for the tenant's default locale ja");
    assert_has(&lines, "nodefault/e3/body.en-US.txt:1", "never used");
    assert_has(&lines, "nodefault/e4", "no templates");
    assert_has(&lines, "nodefault/e4/samples", "missing: every event type needs samples");
    assert_has(&lines, "nodefault/e5/samples", "missing");
    assert_has(&lines, "_layouts", "unexpected directory");
    assert_has(&lines, "good/_layout", "unexpected directory");
    assert_has(&lines, "good/_partials/Button.htm:1", "unexpected file");
    assert_eq!(lines.len(), 18, "unexpected extra problems:\n{}", lines.join("\n"));
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = load_err(&missing);
    assert_eq!(error.problems().len(), 1);
    assert_eq!(error.problems()[0].path, missing);
    assert_eq!(error.problems()[0].line, None);
    assert!(error.to_string().contains("cannot read directory"), "{error}");
}

#[test]
fn a_missing_body_file_is_named_by_the_path_it_should_have() {
    let dir = tempfile::tempdir().unwrap();
    good_tenant(dir.path(), "t1");
    write(dir.path(), "t1/e2/body.en.html", "h");
    write(dir.path(), "t1/e2/subject.ja.txt", "s");
    write(dir.path(), "t1/e2/body.ja.txt", "t");
    write(dir.path(), "t1/e2/samples/default.json", "{}");
    let error = load_err(dir.path());
    let paths: Vec<_> = error.problems().iter().map(|p| p.path.clone()).collect();
    assert_eq!(
        paths,
        [dir.path().join("t1/e2/subject.en.txt"), dir.path().join("t1/e2/body.ja.html")],
        "{error}"
    );
}

#[test]
fn tenant_layouts_and_partials_win_over_shared_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    good_tenant(root, "t1");
    good_tenant(root, "t2");
    for tenant in ["t1", "t2"] {
        write(
            root,
            &format!("{tenant}/e1/body.ja.html"),
            "{% extends \"_layouts/base.html\" %}{% block b %}{% include \"_partials/p.html\" %}{% endblock %}",
        );
    }
    write(root, "_shared/_layouts/base.html", "shared-layout:{% block b %}{% endblock %}");
    write(root, "_shared/_partials/p.html", "shared-partial");
    write(root, "t2/_partials/p.html", "t2-partial");
    let set = TemplateSet::load(root).unwrap();
    let render = |tenant: &str| {
        set.render_sample(
            &tayori_domain::TenantId::parse(tenant).unwrap(),
            &tayori_domain::EventType::parse("e1").unwrap(),
            "default",
            None,
        )
        .unwrap()
        .email
        .html
    };
    assert_eq!(render("t1"), "shared-layout:shared-partial");
    assert_eq!(render("t2"), "shared-layout:t2-partial");
}

#[test]
fn a_problem_in_a_shared_file_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    good_tenant(dir.path(), "t1");
    good_tenant(dir.path(), "t2");
    write(dir.path(), "_shared/_partials/p.html", "<p>\n{% if %}</p>");
    let error = load_err(dir.path());
    let lines = lines(dir.path(), &error);
    assert_eq!(lines.len(), 1, "{}", lines.join("\n"));
    assert_has(&lines, "_shared/_partials/p.html:2", "expected");
}

#[test]
fn a_missing_parent_names_the_file_that_extends_it() {
    let dir = tempfile::tempdir().unwrap();
    good_tenant(dir.path(), "t1");
    write(dir.path(), "t1/e1/body.ja.html", "\n{% extends \"_layouts/nope.html\" %}");
    let error = load_err(dir.path());
    let lines = lines(dir.path(), &error);
    assert_has(&lines, "t1/e1/body.ja.html:2", "_layouts/nope.html");
}
