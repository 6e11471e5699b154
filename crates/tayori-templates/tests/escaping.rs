//! Property test: whatever a variable holds, it reaches an HTML body escaped, in text, in an
//! attribute, inside a loop and through a layout and a partial; the text body is left as it is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use tayori_app::ports::{TemplateRenderer, TenantDirectory};
use tayori_domain::{TenantId, decode_message_body};
use tayori_templates::TemplateSet;

/// Put around every place a value lands, so the test can find it; never in a value.
const MARK: char = '§';

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Tenant `t1` with event type `e1`, whose HTML body puts `x`, `y.inner` and each of `list` in
/// text, in attributes (quoted, and in a URL), and through a layout and a partial.
fn template_set(root: &Path) -> TemplateSet {
    write(
        root,
        "t1/tenant.toml",
        "from = \"no-reply@t1.example\"\nfrom_name = \"T1\"\ndefault_locale = \"ja\"\nevent_types = [\"e1\"]\n",
    );
    write(root, "t1/e1/subject.txt", "s");
    write(
        root,
        "t1/e1/body.html",
        "{% extends \"_layouts/base.html\" %}{% block b %}<p>§{{ x }}§</p>\
         <a href=\"https://x.example/?q=§{{ x }}§\" title='§{{ y.inner }}§'>§{{ y.inner }}§</a>\
         <ul>{% for v in list %}<li data-v=\"§{{ v }}§\">§{{ v }}§</li>{% endfor %}</ul>\
         {% include \"_partials/p.html\" %}{% endblock %}",
    );
    write(root, "t1/e1/body.txt", "§{{ x }}§");
    write(
        root,
        "t1/_layouts/base.html",
        "<div title=\"§{{ x }}§\">{% block b %}{% endblock %}</div>",
    );
    write(root, "t1/_partials/p.html", "<em>§{{ x | upper }}§</em>");
    write(
        root,
        "t1/e1/samples/default.json",
        "{\"variables\": {\"x\": \"a\", \"y\": {\"inner\": \"b\"}, \"list\": [\"c\"]}}",
    );
    TemplateSet::load(root).unwrap()
}

/// Strings meant to break out of HTML: markup, quotes of both kinds, entities, tera syntax,
/// and any Unicode.
fn values() -> impl Strategy<Value = String> {
    prop_oneof![
        "[<>\"'&/;#=a-z ]{0,40}",
        "\\PC{0,40}",
        "\\PC{0,10}(<script>alert\\(1\\)</script>|\"><img src=x onerror=alert\\(1\\)>|' onmouseover='x|&amp;|&lt;|&#x3C;|\\{\\{ x \\}\\}|\\{% raw %\\}|javascript:)\\PC{0,10}",
    ]
    .prop_map(|value| value.replace(MARK, ""))
}

/// The value back from its escaped form; `None` when the form is not escaped text: a raw `<`,
/// `>`, `"` or `'`, or a `&` that does not start an entity.
fn unescape(html: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = html;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.push_str(&rest[..at]);
        if !rest[at..].starts_with('&') {
            return None;
        }
        let end = rest[at..].find(';')? + at;
        let entity = &rest[at + 1..end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let hex = entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X"));
                let code = match hex {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(decoded);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The pieces of `rendered` between pairs of marks, in order.
fn marked(rendered: &str) -> Vec<&str> {
    rendered.split(MARK).skip(1).step_by(2).collect()
}

#[test]
fn any_variable_value_stays_escaped_in_html_and_as_is_in_text() {
    let dir = tempfile::tempdir().unwrap();
    let set = template_set(dir.path());
    let profile = set.tenant(&TenantId::parse("t1").unwrap()).unwrap();
    let strategy = (values(), values(), prop::collection::vec(values(), 0..4));
    let mut runner = TestRunner::new(Config::default());
    runner
        .run(&strategy, |(x, inner, list)| {
            let envelope = json!({
                "specversion": "1.0", "id": "1", "source": "t1/tests", "type": "e1", "tenant": "t1",
                "data": {
                    "to": { "email": "a@example.com" },
                    "variables": { "x": x, "y": { "inner": inner }, "list": list },
                }
            });
            let event = decode_message_body(envelope.to_string().as_bytes()).unwrap();
            let email = set.render(&profile, &event).expect("renders");

            // In the HTML, every place holds the value escaped, and unescapes to it exactly.
            let mut expected = vec![x.clone(), x.clone(), inner.clone(), inner.clone()];
            for v in &list {
                expected.extend([v.clone(), v.clone()]);
            }
            expected.push(x.to_uppercase());
            let found = marked(&email.html);
            prop_assert_eq!(found.len(), expected.len() + 1, "{}", email.html);
            // The layout's attribute comes first, then the body's places in order.
            let mut wanted = vec![x.clone()];
            wanted.extend(expected);
            for (piece, value) in found.iter().zip(&wanted) {
                let back = unescape(piece);
                prop_assert!(back.is_some(), "not escaped: {:?} in {}", piece, email.html);
                prop_assert_eq!(back.as_deref(), Some(value.as_str()), "{}", email.html);
            }
            // Outside the marks, nothing of a value shows: the markup is the template's own.
            let markup: String = email.html.split(MARK).step_by(2).collect();
            prop_assert!(!markup.contains("script") && !markup.contains("onerror"), "{markup}");

            // The text body is not HTML: the value as it is.
            prop_assert_eq!(marked(&email.text), vec![x.as_str()]);
            Ok(())
        })
        .unwrap();
}

#[test]
fn unescape_refuses_raw_markup_and_reads_entities() {
    assert_eq!(unescape("a&lt;b&#x2F;&#39;&quot;&amp;").as_deref(), Some("a<b/'\"&"));
    for raw in ["<", ">", "\"", "'", "a & b", "&unterminated"] {
        assert_eq!(unescape(raw), None, "{raw:?}");
    }
}
