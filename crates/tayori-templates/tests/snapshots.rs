//! Snapshots of every shipped template: each tenant's event types, rendered with each of their
//! samples in each of their locales, subject, text and HTML (as the worker would send them).
//!
//! A change to a template shows up as a snapshot diff to review: `cargo insta review`, or
//! `INSTA_UPDATE=always cargo test -p tayori-templates --test snapshots` and `git diff`. In CI
//! (`CI=true`) a missing or different snapshot fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tayori_templates::TemplateSet;

fn shipped() -> PathBuf {
    manifest_dir().join("../../templates")
}

#[test]
fn every_shipped_template_in_every_locale_with_every_sample() {
    let set = TemplateSet::load(&shipped()).unwrap();
    let mut count = 0;
    let tenants: Vec<_> = set.tenants().map(|t| t.id.clone()).collect();
    for tenant in &tenants {
        for event_type in set.event_types(tenant) {
            for sample in set.samples(tenant, event_type) {
                for locale in set.locales(tenant, event_type) {
                    let rendered =
                        set.render_sample(tenant, event_type, sample, Some(&locale)).unwrap();
                    let email = &rendered.email;
                    assert_eq!(email.locale, locale, "{tenant} {event_type} {sample}");
                    let snapshot = format!(
                        "subject: {}\nlocale: {}\nclass: {}\ntext: {}\n\n----- text -----\n{}\n----- html -----\n{}\n",
                        email.subject.as_str(),
                        email.locale,
                        email.message_class,
                        if rendered.text_generated {
                            "generated from the HTML"
                        } else {
                            "template"
                        },
                        email.text,
                        email.html,
                    );
                    let name = format!("{tenant}__{event_type}__{sample}__{locale}");
                    insta::assert_snapshot!(name, snapshot);
                    count += 1;
                }
            }
        }
    }
    assert!(count >= 24, "only {count} renders: is templates/ there?");
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
